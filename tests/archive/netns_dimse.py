"""DIMSE against a real Orthanc, inside a private network namespace.

Orthanc's DICOM port binds every interface. Run inside ``unshare -rn``
(a new user and network namespace whose only interface is its own
loopback), it is reachable from nothing outside that namespace. This
script runs there: it brings the namespace's loopback up, starts Orthanc
with its DICOM server on, seeds it through its REST API, and drives
:class:`medimg_lab.archive.DimseArchive` against it (C-ECHO, C-FIND at
study and series level, C-GET, C-STORE). It prints one JSON line of
results, which tests/archive/test_dimse_orthanc.py checks.

Run: ``unshare -rn python -m tests.archive.netns_dimse WORKDIR SEED...``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
from pydicom.uid import generate_uid

import medimg_lab
from medimg_lab.archive import DimseArchive
from tests.archive.orthanc import Orthanc, free_port

CALLING_AE = "MEDIMG-LAB"


class DimseOrthanc(Orthanc):
    """Orthanc with its DICOM server on (only ever inside a private namespace)."""

    def __init__(self, storage: Path):
        super().__init__(storage)
        self.dicom_port = free_port()

    def config(self) -> dict:
        conf = super().config()
        conf.update(
            DicomServerEnabled=True,
            DicomPort=self.dicom_port,
            DicomAet="ORTHANC",
            DicomCheckCalledAet=True,
            # the client must be known: C-FIND, C-GET and C-STORE from it
            DicomModalities={"medimg": [CALLING_AE, "127.0.0.1", 11112]},
            DicomCheckModalityHost=True,
        )
        return conf


def main(work: Path, folders: list[Path]) -> dict:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)  # noqa: S607 the namespace's own loopback
    server = DimseOrthanc(work / "orthanc").start()
    try:
        files = [f for folder in folders for f in sorted(folder.iterdir())]
        server.upload(files)
        pacs = DimseArchive(
            "127.0.0.1",
            server.dicom_port,
            called_ae="ORTHANC",
            calling_ae=CALLING_AE,
            cache=work / "cache",
            timeout_s=30,
        )
        pacs.echo()
        studies = pacs.search_studies()
        results = {"studies": sorted(s.study_uid for s in studies), "series": {}}
        for folder in folders:
            first = pydicom.dcmread(next(folder.iterdir()), stop_before_pixels=True)
            (series,) = pacs.search_series(str(first.StudyInstanceUID))
            got = pacs.retrieve_series(series.series_uid, study_uid=series.study_uid)
            image = pacs.load_series(series.series_uid, study_uid=series.study_uid)
            direct = medimg_lab.load(
                folder if len(list(folder.iterdir())) > 1 else next(folder.iterdir())
            )
            results["series"][folder.name] = {
                "series_uid": series.series_uid,
                "instances": len(got.paths),
                "equal": bool(np.array_equal(image.array, direct.array)),
                "spacing": [float(v) for v in image.spacing],
                "direct_spacing": [float(v) for v in direct.spacing],
                "by_patient": [
                    s.study_uid
                    for s in pacs.search_studies(patient_id=str(first.PatientID))
                ],
            }
        stored = pydicom.dcmread(next(folders[0].iterdir()))
        stored.SeriesInstanceUID = generate_uid(entropy_srcs=["netns stored series"])
        stored.SOPInstanceUID = generate_uid(entropy_srcs=["netns stored sop"])
        stored.file_meta.MediaStorageSOPInstanceUID = stored.SOPInstanceUID
        pacs.store([stored])
        results["stored_found"] = stored.SeriesInstanceUID in {
            s.series_uid for s in pacs.search_series(str(stored.StudyInstanceUID))
        }
        return results
    finally:
        server.kill()  # its storage is temporary: no need to wait for a clean stop


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]])))
