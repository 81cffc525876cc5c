"""DIMSE archives (a PACS without DICOMweb): C-ECHO, C-FIND, C-GET, C-STORE.

Through ``pynetdicom``, with the Study Root information model. Retrieval is
C-GET: the archive sends the instances back over the same association, so
no port of this machine has to be opened to the archive (C-MOVE needs one,
and the archive must know it). Each instance is written to the
:class:`~medimg_lab.archive.InstanceCache` as its own Part 10 bytes, with an
atomic rename, and the series is assembled as :func:`medimg_lab.load`
assembles a folder.

A session needs an archive (tests/archive runs these steps against a real
Orthanc)::

    pacs = DimseArchive("pacs.example.org", 104, called_ae="PACS")
    pacs.echo()
    studies = pacs.search_studies(patient_id="12345")
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Mapping
from typing import Annotated, Any

from pydicom.dataset import Dataset
from pydicom.uid import (
    JPEG2000,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)
from pynetdicom import AE, build_role, evt
from pynetdicom import sop_class as sc

from ..io._source import (
    size_text,
)
from ..params import Param, declared
from ._series import SeriesLoader, uid_argument
from .cache import InstanceCache, as_cache, check_uid
from .dicomweb import _as_dataset
from .errors import (
    ArchiveAuthError,
    ArchiveError,
    ArchiveResponseError,
    ArchiveUnavailableError,
    RetrievalCancelled,
)
from .progress import _Tracker
from .query import (
    SERIES_FIELDS,
    STUDY_FIELDS,
    Series,
    Study,
    series_filters,
    study_filters,
)

__all__ = ["IMAGE_STORAGE", "TRANSFER_SYNTAXES", "DimseArchive"]

#: Transfer syntaxes accepted for retrieved images: uncompressed and every
#: compression :func:`medimg_lab.load` decodes.
TRANSFER_SYNTAXES = (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLosslessSV1,
    JPEGLossless,
    JPEGLSLossless,
    JPEGLSNearLossless,
    JPEG2000Lossless,
    JPEG2000,
    RLELossless,
)
#: Image storage classes a C-GET accepts, each with every transfer syntax
#: (one presentation context per pair: the archive picks one syntax per
#: context). With the non-image classes below they fill 120 of the 128
#: contexts an association may propose.
IMAGE_STORAGE = (
    sc.CTImageStorage,
    sc.EnhancedCTImageStorage,
    sc.MRImageStorage,
    sc.EnhancedMRImageStorage,
    sc.ComputedRadiographyImageStorage,
    sc.DigitalXRayImageStorageForPresentation,
    sc.DigitalXRayImageStorageForProcessing,
    sc.UltrasoundImageStorage,
    sc.UltrasoundMultiFrameImageStorage,
    sc.SecondaryCaptureImageStorage,
)
#: Non-image classes (results), uncompressed only.
RESULT_STORAGE = (
    sc.SegmentationStorage,
    sc.ComprehensiveSRStorage,
    sc.Comprehensive3DSRStorage,  # the SR of medimg_lab.io.results (TID 1500)
    sc.EnhancedSRStorage,
)
_FIND = sc.StudyRootQueryRetrieveInformationModelFind
_GET = sc.StudyRootQueryRetrieveInformationModelGet
_PENDING = (0xFF00, 0xFF01)
_OUT_OF_RESOURCES = 0xA702


def storage_contexts() -> list[tuple[str, tuple[str, ...]]]:
    """(SOP class, transfer syntaxes) of the storage contexts a C-GET proposes."""
    plain = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
    out = [(cls, (ts,)) for cls in IMAGE_STORAGE for ts in TRANSFER_SYNTAXES]
    return out + [(cls, (ts,)) for cls in RESULT_STORAGE for ts in plain]


class DimseArchive(SeriesLoader):
    """A DICOM archive reached by DIMSE (C-ECHO, C-FIND, C-GET, C-STORE).

    Parameters
    ----------
    host : str
        Host name or address of the archive.
    port : int
        Its DICOM port.
    called_ae : str
        The archive's AE title.
    calling_ae : str
        This application's AE title (the archive must know it).
    cache : InstanceCache or path-like, optional
        Where retrieved instances are kept.
    timeout_s : float
        Seconds to wait for the connection, the association and each
        message (s).
    max_results : int
        Most matches one C-FIND may return; more are refused (the search
        must be narrowed), so a search's memory stays bounded.
    """

    @declared
    def __init__(
        self,
        host: str,
        port: Annotated[int, Param(1, 65535, 1, "", "DICOM port")],
        *,
        called_ae: str = "ANY-SCP",
        calling_ae: str = "MEDIMG-LAB",
        cache: InstanceCache | str | os.PathLike | None = None,
        timeout_s: Annotated[
            float, Param(0, 3600, 1, "s", "network timeout", exclusive_min=True)
        ] = 30.0,
        max_results: Annotated[
            int, Param(1, 10_000_000, 1, "", "most C-FIND matches")
        ] = 100_000,
    ):
        if not isinstance(host, str) or not host:
            raise ValueError(f"host must be a host name or address; got {host!r}")
        for option, title in (("called_ae", called_ae), ("calling_ae", calling_ae)):
            if (
                not isinstance(title, str)
                or not 0 < len(title.strip()) <= 16
                or not title.isascii()
                or "\\" in title
            ):
                raise ValueError(
                    f"{option} must be an AE title of 1 to 16 ASCII characters "
                    f"without backslash; got {title!r}"
                )
        self.host, self.port = host, port
        self.called_ae, self.calling_ae = called_ae.strip(), calling_ae.strip()
        self.name = f"{self.called_ae}@{host}:{port}"
        self.cache = as_cache(cache)
        self.timeout_s = timeout_s
        self.max_results = max_results

    def __repr__(self) -> str:
        return f"DimseArchive({self.name!r}, calling_ae={self.calling_ae!r})"

    # -- associations -----------------------------------------------------------

    @contextlib.contextmanager
    def _association(
        self,
        what: str,
        contexts: list[tuple[str, tuple[str, ...]]],
        *,
        roles: list | None = None,
        handlers: list | None = None,
    ) -> Iterator[Any]:
        ae = AE(ae_title=self.calling_ae)
        for attr in ("acse_timeout", "dimse_timeout", "network_timeout"):
            setattr(ae, attr, self.timeout_s)
        ae.connection_timeout = self.timeout_s
        for abstract, syntaxes in contexts:
            ae.add_requested_context(abstract, list(syntaxes))
        assoc = ae.associate(
            self.host,
            self.port,
            ae_title=self.called_ae,
            ext_neg=roles or None,
            evt_handlers=handlers or None,
        )
        if not assoc.is_established:
            if assoc.is_rejected:
                raise ArchiveAuthError(
                    self.name,
                    f"rejected the association for {what} (it does not know "
                    f"calling AE {self.calling_ae!r} or is not {self.called_ae!r}).",
                    "Ask the archive's administrator to register this AE title "
                    "(and host), and check called_ae=.",
                )
            raise ArchiveUnavailableError(
                self.name,
                f"could not be reached for {what} (no association within "
                f"{self.timeout_s:g} s: refused, aborted or timed out).",
                "Check the host, port and that the archive is running.",
            )
        try:
            yield assoc
        finally:
            if assoc.is_established:
                assoc.release()
            else:
                assoc.abort()

    def _dropped(self, what: str) -> ArchiveUnavailableError:
        return ArchiveUnavailableError(
            self.name,
            f"stopped answering during {what} (the association timed out after "
            f"{self.timeout_s:g} s or was aborted).",
            "Check that the archive is running, then try again; a retrieval "
            "resumes from the cached instances.",
        )

    def _status_error(self, what: str, code: int) -> ArchiveError:
        kind = {0xA700: "out of resources", 0xA900: "identifier does not match"}.get(
            code & 0xFF00, ""
        )
        if code in (0xA801,):
            kind = "move destination unknown"
        if code == 0xFE00:
            return RetrievalCancelled(
                self.name, f"cancelled {what}.", "Retrieve again to resume."
            )
        return ArchiveResponseError(
            self.name,
            f"failed {what} with DIMSE status 0x{code:04X}"
            + (f" ({kind})" if kind else "")
            + ".",
            "Check the request (UIDs, query levels, SOP classes), or ask the "
            "archive's administrator what this status means there.",
        )

    # -- C-ECHO -------------------------------------------------------------------

    def echo(self) -> None:
        """Verify the archive answers (C-ECHO); raise an ArchiveError if not."""
        what = "a C-ECHO"
        with self._association(
            what, [(sc.Verification, (ExplicitVRLittleEndian,))]
        ) as a:
            status = a.send_c_echo()
            if not status:
                raise self._dropped(what)
            if status.Status != 0:
                raise self._status_error(what, int(status.Status))

    # -- C-FIND -------------------------------------------------------------------

    def _find(
        self, level: str, fields: tuple[str, ...], filters: dict
    ) -> list[Dataset]:
        query = Dataset()
        query.QueryRetrieveLevel = level
        for keyword in fields:
            setattr(query, keyword, "")
        for keyword, value in filters.items():
            setattr(query, keyword, value)
        what = f"a C-FIND at {level.lower()} level"
        found: list[Dataset] = []
        with self._association(what, [(_FIND, (ExplicitVRLittleEndian,))]) as assoc:
            for status, identifier in assoc.send_c_find(query, _FIND):
                if not status:
                    raise self._dropped(what)
                code = int(status.Status)
                if code in _PENDING:
                    if identifier is not None:
                        found.append(identifier)
                    if len(found) > self.max_results:
                        assoc.abort()
                        raise ArchiveResponseError(
                            self.name,
                            f"matched more than {self.max_results} records in {what}.",
                            "Narrow the search (patient_id, date, modality), or "
                            "pass a larger max_results=.",
                        )
                elif code != 0:
                    raise self._status_error(what, code)
        return found

    def search_studies(
        self,
        *,
        patient_id: str | None = None,
        accession_number: str | None = None,
        modality: str | None = None,
        date: Any = None,
        description: str | None = None,
        filters: Mapping[str, Any] | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Study]:
        """Studies matching every filter given (C-FIND, study level).

        The filters are those of
        :meth:`~medimg_lab.archive.DicomWebArchive.search_studies`;
        ``limit`` and ``offset`` page the matches here (C-FIND has no
        paging of its own).

        Parameters
        ----------
        patient_id, accession_number, modality, date, description, filters
            As :meth:`~medimg_lab.archive.DicomWebArchive.search_studies`
            takes them.
        limit, offset : int
            The page: at most ``limit`` results (None: all), after skipping
            ``offset``.

        Returns
        -------
        list of Study
        """
        search = study_filters(
            patient_id=patient_id,
            accession_number=accession_number,
            modality=modality,
            date=date,
            description=description,
            filters=filters,
        )
        found = self._find("STUDY", STUDY_FIELDS, search)
        studies = [_study(ds, self.name) for ds in found]
        return _window(studies, limit, offset)

    def search_series(
        self,
        study_uid: str | None = None,
        *,
        modality: str | None = None,
        description: str | None = None,
        series_uid: str | None = None,
        filters: Mapping[str, Any] | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Series]:
        """Series matching the filters (C-FIND, series level).

        ``study_uid`` narrows to one study; without it, ``series_uid`` must
        be given (a series-level C-FIND of the Study Root model names its
        study, or matches the series UID).

        Parameters
        ----------
        study_uid : str, optional
            Only this study's series.
        modality, description, series_uid, filters
            As :meth:`~medimg_lab.archive.DicomWebArchive.search_series`
            takes them.
        limit, offset : int
            The page: at most ``limit`` results (None: all), after skipping
            ``offset``.

        Returns
        -------
        list of Series
        """
        search = series_filters(
            modality=modality,
            description=description,
            series_uid=series_uid,
            filters=filters,
        )
        if study_uid is not None:
            search["StudyInstanceUID"] = uid_argument(study_uid, "study_uid")
        found = self._find("SERIES", SERIES_FIELDS, search)
        return _window([_series(ds, self.name) for ds in found], limit, offset)

    def instance_uids(self, study_uid: str, series_uid: str) -> list[str]:
        """The SOP Instance UIDs of a series (C-FIND, image level).

        Parameters
        ----------
        study_uid, series_uid : str
            The series' Study and Series Instance UIDs.

        Returns
        -------
        list of str
            In the archive's order, each once.
        """
        found = self._find(
            "IMAGE",
            ("SOPInstanceUID", "InstanceNumber"),
            {
                "StudyInstanceUID": uid_argument(study_uid, "study_uid"),
                "SeriesInstanceUID": uid_argument(series_uid, "series_uid"),
            },
        )
        uids = [
            check_uid(
                str(ds.get("SOPInstanceUID", "")), "a SOP Instance UID", self.name
            )
            for ds in found
        ]
        return list(dict.fromkeys(uids))

    # -- C-GET --------------------------------------------------------------------

    def _fetch(
        self,
        study_uid: str,
        series_uid: str,
        missing: list[str],
        *,
        whole: bool,
        tracker: _Tracker,
        keep: set[str],
        max_bytes: int,
    ) -> None:
        """C-GET: the series at series level, or the missing ones at image level."""
        failure: list[BaseException] = []
        what = f"the C-GET of series {series_uid}"

        def on_store(event) -> int:
            if failure:
                return _OUT_OF_RESOURCES
            try:
                data = event.encoded_dataset(include_meta=True)
                if len(data) > max_bytes:
                    raise ArchiveResponseError(
                        self.name,
                        f"sent an instance of {size_text(len(data))} in {what}, "
                        f"more than the {size_text(max_bytes)} allowed.",
                        "Pass a larger max_bytes= if the instance is genuine.",
                    )
                self.cache.put_bytes(data, source=self.name, keep=keep)
                tracker.received_bytes(len(data))
                tracker.instance_done()
            except BaseException as exc:  # handed to the caller's thread
                failure.append(exc)
                return _OUT_OF_RESOURCES
            return 0x0000

        query = Dataset()
        query.StudyInstanceUID = study_uid
        query.SeriesInstanceUID = series_uid
        if whole:
            query.QueryRetrieveLevel = "SERIES"
        else:
            query.QueryRetrieveLevel = "IMAGE"
            query.SOPInstanceUID = missing if len(missing) > 1 else missing[0]
        contexts = [(_GET, (ExplicitVRLittleEndian,)), *storage_contexts()]
        roles = [
            build_role(cls, scp_role=True)
            for cls in dict.fromkeys(c for c, _ in contexts[1:])
        ]
        with self._association(
            what, contexts, roles=roles, handlers=[(evt.EVT_C_STORE, on_store)]
        ) as assoc:
            for status, _ in assoc.send_c_get(query, _GET):
                if failure or tracker_cancelled(tracker):
                    assoc.abort()
                    break
                if not status:
                    raise self._dropped(what)
                code = int(status.Status)
                if code in _PENDING or code == 0:
                    continue
                if (
                    code == 0xB000 and not failure
                ):  # warning: some sub-operations failed
                    break
                raise self._status_error(what, code)
        if failure:
            raise failure[0]
        tracker.check()

    # -- C-STORE ------------------------------------------------------------------

    def store(self, instances: Iterable[Dataset | str | os.PathLike]) -> list[str]:
        """Store DICOM instances (datasets or files) on the archive (C-STORE).

        Returns the SOP Instance UIDs stored; raises an ArchiveError naming
        the status if the archive refuses one.

        Parameters
        ----------
        instances : iterable of pydicom Dataset, str or os.PathLike
            Datasets, or DICOM files.

        Returns
        -------
        list of str
        """
        datasets = [_as_dataset(item) for item in instances]
        if not datasets:
            raise ValueError(
                "instances must name at least one dataset or file to store"
            )
        contexts = {}
        for ds in datasets:
            syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
            contexts.setdefault(str(ds.SOPClassUID), set()).add(
                str(syntax or ExplicitVRLittleEndian)
            )
        what = f"storing {len(datasets)} instance(s)"
        pairs = [(cls, (ts,)) for cls, tss in contexts.items() for ts in sorted(tss)]
        if len(pairs) > 128:
            raise ValueError(
                f"instances span {len(pairs)} SOP class and transfer syntax pairs; "
                "one association holds at most 128: store them in smaller groups"
            )
        stored = []
        with self._association(what, pairs) as assoc:
            accepted = {str(c.abstract_syntax) for c in assoc.accepted_contexts}
            for ds in datasets:
                if str(ds.SOPClassUID) not in accepted:
                    sop = ds.SOPClassUID
                    raise ArchiveResponseError(
                        self.name,
                        f"accepted no storage of {getattr(sop, 'name', sop)} "
                        f"({sop}) when {what}.",
                        "Ask the archive's administrator to accept this SOP "
                        f"class from AE title {self.calling_ae}.",
                    )
                status = assoc.send_c_store(ds)
                if not status:
                    raise self._dropped(what)
                code = int(status.Status)
                if code not in (0x0000, 0xB000, 0xB007, 0xB006):
                    raise self._status_error(what, code)
                stored.append(str(ds.SOPInstanceUID))
        return stored


def tracker_cancelled(tracker: _Tracker) -> bool:
    """Whether the caller asked to stop (the Event, not the callback)."""
    event = tracker._cancel
    return event is not None and event.is_set()


def _window(items: list, limit: int | None, offset: int) -> list:
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise ValueError(f"offset must be an integer >= 0; got {offset!r}")
    if limit is not None and (
        isinstance(limit, bool) or not isinstance(limit, int) or limit < 1
    ):
        raise ValueError(f"limit must be an integer >= 1 or None; got {limit!r}")
    return items[offset : None if limit is None else offset + limit]


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword, "")
    return "" if value is None else str(value)


def _number(ds: Dataset, keyword: str) -> int | None:
    try:
        text = _text(ds, keyword)
        return int(float(text)) if text else None
    except ValueError:
        return None


def _study(ds: Dataset, name: str) -> Study:
    modalities = ds.get("ModalitiesInStudy", "")
    if isinstance(modalities, str):
        modalities = [m for m in modalities.split("\\") if m]
    return Study(
        study_uid=check_uid(
            _text(ds, "StudyInstanceUID"), "a Study Instance UID", name
        ),
        date=_text(ds, "StudyDate"),
        description=_text(ds, "StudyDescription"),
        accession_number=_text(ds, "AccessionNumber"),
        modalities=tuple(str(m) for m in modalities),
        series_count=_number(ds, "NumberOfStudyRelatedSeries"),
        instance_count=_number(ds, "NumberOfStudyRelatedInstances"),
        patient_id=_text(ds, "PatientID"),
        patient_name=_text(ds, "PatientName"),
    )


def _series(ds: Dataset, name: str) -> Series:
    return Series(
        study_uid=check_uid(
            _text(ds, "StudyInstanceUID"), "a Study Instance UID", name
        ),
        series_uid=check_uid(
            _text(ds, "SeriesInstanceUID"), "a Series Instance UID", name
        ),
        modality=_text(ds, "Modality"),
        number=_number(ds, "SeriesNumber"),
        description=_text(ds, "SeriesDescription"),
        instance_count=_number(ds, "NumberOfSeriesRelatedInstances"),
    )
