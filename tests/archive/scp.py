"""A DIMSE archive for the tests: a pynetdicom SCP bound to 127.0.0.1.

It answers C-ECHO, C-FIND (Study Root: study, series and image level, with
wildcards, date ranges and UID lists) and C-GET over the files it is given,
the way a PACS does. It listens on loopback only, so no other machine can
reach it (Orthanc's DICOM port binds every interface: tests/archive/orthanc.py).
"""

from __future__ import annotations

import fnmatch
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom import sop_class as sc

from medimg_lab.archive.dimse import TRANSFER_SYNTAXES, storage_contexts

_LEVEL_KEYS = {
    "STUDY": ("StudyInstanceUID",),
    "SERIES": ("StudyInstanceUID", "SeriesInstanceUID"),
    "IMAGE": ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"),
}


def _matches(wanted, value) -> bool:
    """DICOM C-FIND matching of one attribute (PS3.4 C.2.2.2), as PACS do."""
    if wanted in (None, ""):
        return True
    if isinstance(wanted, pydicom.multival.MultiValue) or (
        isinstance(wanted, list)
    ):  # a UID list
        return str(value) in {str(w) for w in wanted}
    wanted, value = str(wanted), "" if value is None else str(value)
    if "-" in wanted and wanted.replace("-", "").isdigit():  # a date range
        start, _, end = wanted.partition("-")
        return (
            bool(value) and (not start or value >= start) and (not end or value <= end)
        )
    if "*" in wanted or "?" in wanted:
        return fnmatch.fnmatchcase(value, wanted)
    return value == wanted


class LoopbackSCP:
    """Serves ``files`` by C-FIND and C-GET on 127.0.0.1 (a free port)."""

    def __init__(self, files, *, ae_title: str = "TEST-SCP", store_dir=None):
        self.ae_title = ae_title
        self.store_dir = Path(store_dir) if store_dir is not None else None
        self.records = []
        for path in files:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            self.records.append((Path(path), ds))
        self.gets = 0
        self.server = None
        self.port = None

    def _study_values(self, study_uid: str) -> dict:
        members = [ds for _, ds in self.records if ds.StudyInstanceUID == study_uid]
        return {
            "ModalitiesInStudy": sorted({str(ds.Modality) for ds in members}),
            "NumberOfStudyRelatedSeries": len({ds.SeriesInstanceUID for ds in members}),
            "NumberOfStudyRelatedInstances": len(members),
        }

    def _find(
        self, query: Dataset, *, unique: bool = True
    ) -> list[tuple[Path, Dataset]]:
        level = str(query.get("QueryRetrieveLevel", ""))
        keys = [
            e.keyword for e in query if e.keyword and e.keyword != "QueryRetrieveLevel"
        ]
        found, seen = [], set()
        for path, ds in self.records:
            ok = True
            for key in keys:
                wanted = query.get(key)
                if key == "ModalitiesInStudy":
                    if (
                        wanted
                        and str(wanted)
                        not in self._study_values(ds.StudyInstanceUID)[key]
                    ):
                        ok = False
                elif key in ds or wanted not in (None, ""):
                    ok = ok and _matches(wanted, ds.get(key))
            if not ok:
                continue
            level_key = tuple(str(ds.get(k)) for k in _LEVEL_KEYS[level])
            if unique and level != "IMAGE" and level_key in seen:
                continue
            seen.add(level_key)
            found.append((path, ds))
        return found

    def on_find(self, event):
        query = event.identifier
        level = str(query.QueryRetrieveLevel)
        if level not in _LEVEL_KEYS:
            yield 0xA900, None
            return
        for _, ds in self._find(query):
            if event.is_cancelled:
                yield 0xFE00, None
                return
            answer = Dataset()
            answer.QueryRetrieveLevel = level
            extra = self._study_values(ds.StudyInstanceUID)
            for element in query:
                key = element.keyword
                if not key or key == "QueryRetrieveLevel":
                    continue
                if key in extra:
                    setattr(answer, key, extra[key])
                elif key == "NumberOfSeriesRelatedInstances":
                    answer.NumberOfSeriesRelatedInstances = sum(
                        1
                        for _, d in self.records
                        if d.SeriesInstanceUID == ds.SeriesInstanceUID
                    )
                else:
                    setattr(answer, key, ds.get(key, ""))
            yield 0xFF00, answer

    def on_get(self, event):
        self.gets += 1
        matches = self._find(event.identifier, unique=False)  # every instance
        yield len(matches)
        for path, _ in matches:
            if event.is_cancelled:
                yield 0xFE00, None
                return
            yield 0xFF00, pydicom.dcmread(path)

    def on_store(self, event):
        """Keep a stored instance (C-STORE), searchable and retrievable at once."""
        if self.store_dir is None:
            return 0xA700
        ds = event.dataset
        ds.file_meta = event.file_meta
        path = self.store_dir / f"{ds.SOPInstanceUID}.dcm"
        ds.save_as(path, enforce_file_format=True)
        self.records.append((path, pydicom.dcmread(path, stop_before_pixels=True)))
        return 0x0000

    def start(self) -> LoopbackSCP:
        ae = AE(ae_title=self.ae_title)
        ae.require_called_aet = True  # a wrong called AE title is rejected
        ae.add_supported_context(sc.Verification)
        ae.add_supported_context(sc.StudyRootQueryRetrieveInformationModelFind)
        ae.add_supported_context(sc.StudyRootQueryRetrieveInformationModelGet)
        for cls in dict.fromkeys(c for c, _ in storage_contexts()):
            ae.add_supported_context(
                cls, list(TRANSFER_SYNTAXES), scu_role=True, scp_role=True
            )
        for attr in ("acse_timeout", "dimse_timeout", "network_timeout"):
            setattr(ae, attr, 20)
        self.server = ae.start_server(
            ("127.0.0.1", 0),
            block=False,
            evt_handlers=[
                (evt.EVT_C_FIND, self.on_find),
                (evt.EVT_C_GET, self.on_get),
                (evt.EVT_C_STORE, self.on_store),
            ],
        )
        self.port = self.server.server_address[1]
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server = None
