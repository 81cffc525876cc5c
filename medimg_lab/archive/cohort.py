"""Cohorts by query: every series an archive query matches, as batch studies.

A cohort is given as a URL whose query string holds DICOM attribute
filters (keywords, or 8-digit hex tags):

- ``dicomweb://HOST:PORT/PATH?ModalitiesInStudy=CT&StudyDate=20200101-20201231``
  searches the DICOMweb root ``http://HOST:PORT/PATH`` (QIDO-RS);
  ``dicomwebs://`` is the same over ``https://``. A plain
  ``http(s)://HOST/PATH?...`` is taken as it is.
- ``dimse://AET@HOST:PORT?Modality=CT`` searches a DIMSE peer (C-FIND);
  ``AET`` is its called AE title.

Study attributes (:data:`STUDY_KEYWORDS`: ``StudyDate``, ``PatientID``,
``ModalitiesInStudy`` ...) select studies, the others (``Modality``,
``SeriesDescription`` ...) select series in them. Without a ``Modality``
filter, ``ModalitiesInStudy`` also selects the series (a CT study's SEG and
SR series are not CT images), and result objects (SEG, SR, PR, KO ...) are
never members of a cohort. Credentials come from the environment
(``MEDIMG_ARCHIVE_USER`` with ``MEDIMG_ARCHIVE_PASSWORD_FILE``, or
``MEDIMG_ARCHIVE_TOKEN_FILE``), never from the URL.

The search runs in the calling process; each study of the batch is one
:class:`ArchiveSeries`, which the worker that runs it retrieves itself
through the :class:`~medimg_lab.archive.InstanceCache` in ``cache`` (a
folder the workers see; local workers share it). A series whose record
is current is skipped without a transfer; a failed retrieval is recorded
and retried by the next run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from .._items import Item
from .query import _extra, date_range

__all__ = [
    "NON_IMAGE_MODALITIES",
    "STUDY_KEYWORDS",
    "ArchiveSeries",
    "CohortQuery",
    "cohort_items",
    "is_query",
    "parse_query",
]

#: Schemes of a cohort query, and the archive URL scheme each stands for.
SCHEMES = {
    "dicomweb": "http",
    "dicomwebs": "https",
    "http": "http",
    "https": "https",
    "dimse": "dimse",
}
#: Attributes matched at study level (the rest select series).
STUDY_KEYWORDS = frozenset(
    {
        "PatientID",
        "PatientName",
        "PatientBirthDate",
        "PatientSex",
        "IssuerOfPatientID",
        "StudyInstanceUID",
        "StudyDate",
        "StudyTime",
        "StudyDescription",
        "StudyID",
        "AccessionNumber",
        "ModalitiesInStudy",
        "ReferringPhysicianName",
    }
)
#: Modalities of result and presentation objects, never run as images.
NON_IMAGE_MODALITIES = frozenset(
    {"SEG", "SR", "PR", "KO", "REG", "RTSTRUCT", "RTPLAN", "RTRECORD", "DOC", "PLAN"}
)


def is_query(spec: object) -> bool:
    """Whether ``spec`` is a cohort query URL (one of :data:`SCHEMES`).

    Parameters
    ----------
    spec : object
        An input of :func:`medimg_lab.batch.discover` (a path, a glob, a URL).

    Returns
    -------
    bool
    """
    if not isinstance(spec, str) or "://" not in spec:
        return False
    return urlsplit(spec).scheme.lower() in SCHEMES


@dataclass(frozen=True)
class CohortQuery:
    """A parsed cohort query.

    Attributes
    ----------
    text : str
        The query as given.
    archive : str
        The archive's URL: a DICOMweb root (``http(s)://...``) or
        ``dimse://AE@host:port``.
    study : dict of str to str
        Study-level filters (keyword -> value).
    series : dict of str to str
        Series-level filters.
    """

    text: str
    archive: str
    study: dict
    series: dict

    def describe(self) -> dict:
        """The query as ``provenance.json`` records it."""
        return {
            "query": self.text,
            "archive": self.archive,
            "study_filters": dict(self.study),
            "series_filters": dict(self.series),
        }


def parse_query(text: str) -> CohortQuery:
    """A :class:`CohortQuery` from a cohort URL (see the module's forms).

    Parameters
    ----------
    text : str
        ``dicomweb(s)://HOST[:PORT]/PATH?KEY=VALUE&...``,
        ``http(s)://HOST[:PORT]/PATH?...`` or
        ``dimse://AET@HOST:PORT?KEY=VALUE&...``.

    Returns
    -------
    CohortQuery

    Raises
    ------
    ValueError
        For another scheme, a URL holding a password, a repeated or unknown
        attribute, an empty value or a date that is not a date or range.
    """
    if not isinstance(text, str):
        raise TypeError(f"a cohort query must be a str; got {type(text).__name__}")
    parts = urlsplit(text)
    scheme = SCHEMES.get(parts.scheme.lower())
    forms = (
        "dicomweb://HOST:PORT/PATH?ModalitiesInStudy=CT&StudyDate=20200101-20201231, "
        "dicomwebs://... (https) or dimse://AET@HOST:PORT?Modality=CT"
    )
    if scheme is None or not parts.hostname:
        raise ValueError(f"a cohort query is {forms}; got {text!r}")
    if parts.password is not None or (scheme != "dimse" and parts.username):
        raise ValueError(
            "a cohort query must not hold a user name or password (they would show "
            "in logs and provenance); set MEDIMG_ARCHIVE_USER and "
            "MEDIMG_ARCHIVE_PASSWORD_FILE (or MEDIMG_ARCHIVE_TOKEN_FILE) instead"
        )
    pairs = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False)
    given: dict[str, str] = {}
    for key, value in pairs:
        if key in given:
            raise ValueError(
                f"the cohort query gives {key} twice; give each attribute once "
                "(a range as StudyDate=20200101-20201231, several values as "
                "CT\\MR)"
            )
        if not value.strip():
            raise ValueError(f"the cohort query's {key} is empty; give it a value")
        given[key] = value.strip()
    filters = _extra(given)  # keywords or hex tags, else a ValueError naming it
    for key in ("StudyDate", "SeriesDate"):
        if key in filters:
            filters[key] = date_range(filters[key], key)
    if scheme == "dimse":
        archive = urlunsplit(("dimse", parts.netloc, "", "", ""))
    else:
        archive = urlunsplit((scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
    study = {k: v for k, v in filters.items() if k in STUDY_KEYWORDS}
    series = {k: v for k, v in filters.items() if k not in STUDY_KEYWORDS}
    return CohortQuery(text, archive, study, series)


# ------------------------------------------------------------ archives


_ARCHIVES: dict[tuple[str, str], Any] = {}
_LOCK = threading.Lock()


def archive_for(url: str, cache: str):
    """The client of ``url`` in this process, over the cache folder ``cache``.

    One per process and archive: a worker keeps its HTTP connections (or
    DIMSE settings) across the series of its tasks. Credentials come from
    this process's environment.
    """
    from . import open_archive

    key = (url, str(cache))
    with _LOCK:
        found = _ARCHIVES.get(key)
        if found is None:
            found = _ARCHIVES[key] = open_archive(url, cache=cache)
        return found


def _modalities(value: str | None) -> set[str]:
    return {m.strip().upper() for m in (value or "").split("\\") if m.strip()}


def find_series(query: CohortQuery, archive) -> list:
    """The image series ``query`` matches on ``archive``, in a stable order.

    Studies are searched with the study filters (every page), then each
    study's series with the series filters.

    Returns
    -------
    list of Series
        Sorted by study and series UID; result objects left out.
    """
    paged = hasattr(archive, "iter_studies")
    studies = (
        list(archive.iter_studies(filters=query.study))
        if paged
        else archive.search_studies(filters=query.study, limit=None)
    )
    wanted = _modalities(query.series.get("Modality")) or _modalities(
        query.study.get("ModalitiesInStudy")
    )
    found = []
    for study in studies:
        if paged:
            series = archive.iter_series(study.study_uid, filters=query.series)
        else:
            series = archive.search_series(
                study.study_uid, filters=query.series, limit=None
            )
        for s in series:
            modality = s.modality.upper()
            if modality in NON_IMAGE_MODALITIES:
                continue
            if wanted and modality not in wanted:
                continue
            found.append(s)
    return sorted(found, key=lambda s: (s.study_uid, s.series_uid))


def _tag(uid: str) -> str:
    return hashlib.sha256(uid.encode()).hexdigest()[:8]


def cohort_items(query: CohortQuery | str, *, cache: str | os.PathLike) -> list:
    """The batch studies of ``query``: one :class:`ArchiveSeries` per series.

    Parameters
    ----------
    query : CohortQuery or str
        A query, or its URL.
    cache : path-like
        The cache folder the workers retrieve through (absolute).

    Returns
    -------
    list of ArchiveSeries
        Not yet retrieved (``files`` empty).

    Raises
    ------
    ArchiveError
        When the search fails (credentials, unreachable, broken answers).
    """
    if isinstance(query, str):
        query = parse_query(query)
    cache = os.path.abspath(os.fspath(cache))
    archive = archive_for(query.archive, cache)
    items = []
    for s in find_series(query, archive):
        modality = "".join(c for c in s.modality if c.isalnum()) or "series"
        items.append(
            ArchiveSeries(
                id=f"{modality}__study-{_tag(s.study_uid)}__series-{_tag(s.series_uid)}",
                path=_series_address(query.archive, s.study_uid, s.series_uid),
                files=(),
                series=s.series_uid,
                archive=query.archive,
                study_uid=s.study_uid,
                cache=cache,
            )
        )
    return items


def _series_address(archive: str, study_uid: str, series_uid: str) -> str:
    if archive.startswith("dimse://"):
        return f"{archive}?StudyInstanceUID={study_uid}&SeriesInstanceUID={series_uid}"
    return f"{archive}/studies/{study_uid}/series/{series_uid}"


@dataclass(frozen=True)
class ArchiveSeries(Item):
    """One series of a cohort query; the worker that runs it retrieves it.

    Attributes
    ----------
    archive : str
        The archive's URL (no credentials).
    study_uid : str
        Its Study Instance UID (``series`` is the Series Instance UID).
    cache : str
        The cache folder it is retrieved through.
    """

    archive: str = ""
    study_uid: str = ""
    cache: str = ""

    def _client(self):
        return archive_for(self.archive, self.cache)

    def current(self, out: Path, options: dict) -> dict | None:
        """The earlier record of this series if complete and current, else None.

        Current: status ok, the same recipe, its outputs on disk, stored
        when ``options["store"]`` asks, and the same instances as the
        archive lists now (the cache's record of the series, when it holds
        one, answers without a request).

        Parameters
        ----------
        out : pathlib.Path
            The batch's output folder.
        options : dict
            The run's options (``store`` ...).

        Returns
        -------
        dict or None
        """
        try:
            record = json.loads((out / "items" / f"{self.id}.json").read_text())
        except (OSError, ValueError):
            return None
        if (
            not isinstance(record, dict)
            or record.get("status") != "ok"
            or record.get("recipe_sha256") != options["recipe_sha256"]
            or not all(Path(p).exists() for p in record.get("outputs", {}).values())
            or (options.get("store") and "stored" not in record)
        ):
            return None
        client = self._client()
        known = client.cache.series_instances(self.series)
        uids = known[1] if known else client.instance_uids(self.study_uid, self.series)
        had = [i.get("sop_instance_uid") for i in record.get("instances", [])]
        return record if had == list(uids) else None

    def fetch(self) -> ArchiveSeries:
        """The series retrieved into the cache (no transfer for what is there)."""
        got = self._client().retrieve_series(self.series, study_uid=self.study_uid)
        return dataclasses.replace(self, files=tuple(str(p) for p in got.paths))

    def load(self):
        """The retrieved series as a MedImage, as ``load`` assembles a folder."""
        from ._series import assemble

        return assemble(
            tuple(Path(f) for f in self.files), f"{self._client().name} {self.path}"
        )

    def finish(self, labels, image, out: Path, record: dict, options: dict) -> None:
        """Add to the record what a series has: instances, and the stored SEG/SR.

        ``instances`` lists each instance's SOP Instance UID and the
        SHA-256 of its file. With ``options["store"]``, the SEG and SR of
        ``labels`` are written to ``out/dicom/<id>/`` (outputs ``seg`` and
        ``sr``) and sent to the archive (STOW-RS, or C-STORE for DIMSE);
        ``stored`` lists the SOP Instance UIDs the archive took.

        Parameters
        ----------
        labels : ([S,] M, N) int ndarray or None
            The recipe's labels of the series.
        image : MedImage
            The series as loaded.
        out : pathlib.Path
            The batch's output folder.
        record : dict
            The series' record, completed in place.
        options : dict
            The run's options (``store`` ...).
        """
        import numpy as np

        digests = {f["path"]: f["sha256"] for f in record.get("files", [])}
        record["archive_series"] = {
            "archive": self.archive,
            "study_uid": self.study_uid,
            "series_uid": self.series,
        }
        record["instances"] = [
            {"sop_instance_uid": Path(f).stem, "sha256": digests.get(f)}
            for f in self.files
        ]
        if not options.get("store"):
            return
        if labels is None or not np.any(labels):
            record["stored"] = []
            record.setdefault("warnings", []).append(
                "nothing stored: the recipe made no labels for a SEG and SR"
                if labels is None
                else "nothing stored: the recipe labelled no voxel of this series"
            )
            return
        from ..io.results import export_results

        written = export_results(
            labels,
            image,
            out / "dicom" / self.id,
            sources=list(self.files),
            overwrite=True,
        )
        record.setdefault("outputs", {}).update({k: str(v) for k, v in written.items()})
        record["stored"] = self._client().store([written["seg"], written["sr"]])
