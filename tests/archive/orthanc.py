"""A real Orthanc for the tests and the benchmark, and the studies it is seeded with.

The launcher and the seeding live in :mod:`medimg_lab.archive.testing`
(importable by ``notebooks/06_archive.ipynb`` too); this module keeps the
names the tests and benchmarks import, and the tests' own helpers.

Orthanc's DICOM port binds every interface and cannot be bound to loopback,
so this Orthanc's DICOM server is disabled (``DicomServerEnabled: false``):
no listener of a test is reachable from another machine. DIMSE is tested
two ways: against a pynetdicom SCP bound to 127.0.0.1 (tests/archive/scp.py;
fast, in the test process, and it can be made to misbehave), and once
end to end against a real Orthanc with its DICOM server on, run inside a
private network namespace (``unshare -rn``, whose only interface is its own
loopback) together with the DIMSE client (tests/archive/netns_dimse.py):
the client must run inside that namespace too, so that test checks what a
subprocess found rather than driving it directly.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from medimg_lab.archive.testing import (
    DICOMWEB_PLUGIN,
    ORTHANC,
    PASSWORD,
    SINGLE,
    USER,
    Orthanc,
    Seeded,
    available,
    free_port,
    seed_all,
    seed_ct_series,
    seed_single,
)

__all__ = [
    "DICOMWEB_PLUGIN",
    "ORTHANC",
    "PASSWORD",
    "SINGLE",
    "USER",
    "Orthanc",
    "Seeded",
    "available",
    "clean",
    "env_without_archive",
    "free_port",
    "seed_all",
    "seed_ct_series",
    "seed_single",
]


def clean(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def env_without_archive() -> dict:
    return {k: v for k, v in os.environ.items() if not k.startswith("MEDIMG_ARCHIVE")}
