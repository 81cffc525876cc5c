"""Search filters and results shared by DICOMweb (QIDO-RS) and DIMSE (C-FIND).

A search is given in the project's words (``patient_id=``, ``modality=``,
``date=``, ``description=``) and becomes DICOM attribute filters here, once,
for both protocols. Results are :class:`Study` and :class:`Series` records.
Patient name and ID are in them (a search of one's own archive needs them)
but never in their ``repr``, so that printing a result in a notebook does
not put a patient identifier into its saved output.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword

from .cache import check_uid
from .errors import ArchiveResponseError

__all__ = ["Series", "Study", "date_range", "series_filters", "study_filters"]

DateLike = str | _dt.date | None
_DATE = re.compile(r"^\d{8}$")


def _one_date(value: DateLike, option: str) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, _dt.datetime):
        value = value.date()
    if isinstance(value, _dt.date):
        return value.strftime("%Y%m%d")
    text = str(value).replace("-", "") if isinstance(value, str) else None
    if text is None or not _DATE.match(text):
        raise ValueError(
            f"{option} must be a date as YYYYMMDD, YYYY-MM-DD or a datetime.date; "
            f"got {value!r}"
        )
    try:
        _dt.datetime.strptime(text, "%Y%m%d")
    except ValueError:
        raise ValueError(f"{option} is not a calendar date; got {value!r}") from None
    return text


def date_range(date: Any, option: str = "date") -> str | None:
    """A DICOM date or date range (``"20200101-20201231"``) from what a person gives.

    Parameters
    ----------
    date : str, datetime.date or (start, end), optional
        One day (``"20200315"``, ``"2020-03-15"``, a ``date``), a range as
        ``"20200101-20201231"``, or a pair whose ends may be None (open).
    """
    if date is None:
        return None
    if isinstance(date, tuple | list):
        if len(date) != 2:
            raise ValueError(
                f"{option} as a range must be (start, end); got {len(date)} values"
            )
        start, end = (_one_date(d, option) for d in date)
        if start and end and start > end:
            raise ValueError(f"{option} starts after it ends; got {date!r}")
        if not (start or end):
            return None
        return f"{start}-{end}"
    if isinstance(date, str) and re.match(r"^\d{8}-\d{0,8}$|^-\d{8}$", date):
        return date_range(tuple(date.split("-")), option)
    return _one_date(date, option)


def _text(value: Any, option: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{option} must be a non-empty string; got {value!r}")
    if any(c in value for c in "\\\0\r\n"):
        raise ValueError(f"{option} must not hold a backslash or control character")
    return value.strip()


def _extra(filters: Mapping[str, Any] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in (filters or {}).items():
        keyword = key
        if re.fullmatch(r"[0-9A-Fa-f]{8}", key):
            keyword = keyword_for_tag(int(key, 16)) or ""
        if not keyword or tag_for_keyword(keyword) is None:
            raise ValueError(
                f"filters keys must be DICOM attribute keywords (such as "
                f"'StudyDescription') or 8-digit hex tags; got {key!r}"
            )
        out[keyword] = str(value)
    return out


def study_filters(
    *,
    patient_id: str | None = None,
    accession_number: str | None = None,
    modality: str | None = None,
    date: Any = None,
    description: str | None = None,
    study_uid: str | None = None,
    filters: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """DICOM attribute filters of a study search (keyword -> value).

    Parameters
    ----------
    patient_id, accession_number, modality, date, description, filters
        As :meth:`~medimg_lab.archive.DicomWebArchive.search_studies` takes
        them.
    study_uid : str, optional
        One study's Study Instance UID.

    Returns
    -------
    dict of str to str
        The attributes given, as QIDO-RS and C-FIND match them.
    """
    out = {
        "PatientID": _text(patient_id, "patient_id"),
        "AccessionNumber": _text(accession_number, "accession_number"),
        "ModalitiesInStudy": _modality(modality),
        "StudyDate": date_range(date),
        "StudyDescription": _text(description, "description"),
        "StudyInstanceUID": _uid(study_uid, "study_uid"),
    }
    return {k: v for k, v in out.items() if v} | _extra(filters)


def series_filters(
    *,
    modality: str | None = None,
    description: str | None = None,
    series_uid: str | None = None,
    patient_id: str | None = None,
    accession_number: str | None = None,
    date: Any = None,
    filters: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """DICOM attribute filters of a series search (keyword -> value).

    Parameters
    ----------
    modality, description, series_uid, patient_id, accession_number, date, filters
        As :meth:`~medimg_lab.archive.DicomWebArchive.search_series` takes
        them.

    Returns
    -------
    dict of str to str
        The attributes given, as QIDO-RS and C-FIND match them.
    """
    out = {
        "Modality": _modality(modality),
        "SeriesDescription": _text(description, "description"),
        "SeriesInstanceUID": _uid(series_uid, "series_uid"),
        "PatientID": _text(patient_id, "patient_id"),
        "AccessionNumber": _text(accession_number, "accession_number"),
        "StudyDate": date_range(date),
    }
    return {k: v for k, v in out.items() if v} | _extra(filters)


def _modality(value: Any) -> str | None:
    text = _text(value, "modality")
    if text is not None and not re.fullmatch(r"[A-Z0-9]{1,16}", text.upper()):
        raise ValueError(
            f"modality must be a DICOM modality code such as 'CT', 'MR' or 'CR'; "
            f"got {value!r}"
        )
    return text.upper() if text else None


def _uid(value: Any, option: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not re.fullmatch(r"[0-9]+(\.[0-9]+)*", value):
        raise ValueError(
            f"{option} must be a DICOM UID (digits and dots); got {value!r}"
        )
    return value


@dataclass(frozen=True)
class Study:
    """One study found by a search.

    ``patient_id`` and ``patient_name`` are kept out of the ``repr``.

    Attributes
    ----------
    study_uid : str
        Study Instance UID.
    date, description, accession_number : str
        As the archive holds them (``""`` if not given).
    modalities : tuple of str
        Modalities in the study.
    series_count, instance_count : int or None
        As the archive counts them, if it does.
    patient_id, patient_name : str
        The patient's, for finding the study; never in a repr.
    """

    study_uid: str
    date: str = ""
    description: str = ""
    accession_number: str = ""
    modalities: tuple[str, ...] = ()
    series_count: int | None = None
    instance_count: int | None = None
    patient_id: str = field(default="", repr=False)
    patient_name: str = field(default="", repr=False)


@dataclass(frozen=True)
class Series:
    """One series found by a search.

    Attributes
    ----------
    study_uid, series_uid : str
        Study and Series Instance UIDs.
    modality : str
        DICOM modality code.
    number : int or None
        Series Number.
    description : str
        Series Description.
    instance_count : int or None
        As the archive counts them, if it does.
    """

    study_uid: str
    series_uid: str
    modality: str = ""
    number: int | None = None
    description: str = ""
    instance_count: int | None = None


#: Attributes a study search asks for (QIDO includefield, C-FIND return keys).
STUDY_FIELDS = (
    "StudyInstanceUID",
    "StudyDate",
    "StudyDescription",
    "AccessionNumber",
    "ModalitiesInStudy",
    "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
    "PatientID",
    "PatientName",
)
#: Attributes a series search asks for.
SERIES_FIELDS = (
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "Modality",
    "SeriesNumber",
    "SeriesDescription",
    "NumberOfSeriesRelatedInstances",
)


def _values(record: Mapping[str, Any], keyword: str) -> list:
    """The values of ``keyword`` in a DICOM JSON record (PS3.18 F.2)."""
    tag = f"{tag_for_keyword(keyword):08X}"
    element = record.get(tag)
    if element is None:
        return []
    if not isinstance(element, dict):
        raise TypeError(keyword)
    values = element.get("Value", [])
    if not isinstance(values, list):
        raise TypeError(keyword)
    out = []
    for v in values:
        if isinstance(v, dict):  # a person name
            v = v.get("Alphabetic", "")
        if not isinstance(v, str | int | float):
            raise TypeError(keyword)
        out.append(v)
    return out


def _first(record: Mapping[str, Any], keyword: str) -> str:
    values = _values(record, keyword)
    return str(values[0]) if values else ""


def _count(record: Mapping[str, Any], keyword: str) -> int | None:
    text = _first(record, keyword)
    try:
        return int(float(text)) if text else None
    except ValueError:
        raise TypeError(keyword) from None


def _malformed(name: str, what: str, detail: str) -> ArchiveResponseError:
    return ArchiveResponseError(
        name,
        f"answered {what} with records that are not DICOM JSON ({detail}).",
        "Check that the URL is the archive's DICOMweb root; a server that sends "
        "such records is misconfigured.",
    )


def records(payload: Any, name: str, what: str) -> list[Mapping[str, Any]]:
    """Check that a QIDO answer is a list of DICOM JSON objects."""
    if isinstance(payload, dict):
        payload = [payload]
    if not isinstance(payload, list) or not all(isinstance(r, dict) for r in payload):
        raise _malformed(
            name, what, f"a {type(payload).__name__}, not a list of objects"
        )
    return payload


def study_from_json(record: Mapping[str, Any], name: str, what: str) -> Study:
    """A :class:`Study` from one QIDO-RS (DICOM JSON) record."""
    try:
        uid = check_uid(
            _first(record, "StudyInstanceUID"), "a Study Instance UID", name
        )
        return Study(
            study_uid=uid,
            date=_first(record, "StudyDate"),
            description=_first(record, "StudyDescription"),
            accession_number=_first(record, "AccessionNumber"),
            modalities=tuple(str(v) for v in _values(record, "ModalitiesInStudy")),
            series_count=_count(record, "NumberOfStudyRelatedSeries"),
            instance_count=_count(record, "NumberOfStudyRelatedInstances"),
            patient_id=_first(record, "PatientID"),
            patient_name=_first(record, "PatientName"),
        )
    except TypeError as exc:
        raise _malformed(name, what, f"a bad {exc.args[0]}") from None


def series_from_json(record: Mapping[str, Any], name: str, what: str) -> Series:
    """A :class:`Series` from one QIDO-RS (DICOM JSON) record."""
    try:
        number = _count(record, "SeriesNumber")
        return Series(
            study_uid=check_uid(
                _first(record, "StudyInstanceUID"), "a Study Instance UID", name
            ),
            series_uid=check_uid(
                _first(record, "SeriesInstanceUID"), "a Series Instance UID", name
            ),
            modality=_first(record, "Modality"),
            number=number,
            description=_first(record, "SeriesDescription"),
            instance_count=_count(record, "NumberOfSeriesRelatedInstances"),
        )
    except TypeError as exc:
        raise _malformed(name, what, f"a bad {exc.args[0]}") from None


def vr_of(keyword: str) -> str:
    """The value representation of a keyword (for C-FIND identifiers)."""
    return dictionary_VR(tag_for_keyword(keyword))
