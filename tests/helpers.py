"""Helpers shared by the tests (import as ``from helpers import ...``)."""

from __future__ import annotations

from pathlib import Path

from pydicom.data import get_testdata_file


def dicom_file(name: str) -> Path:
    """The local path of a pydicom / pydicom-data test file (never downloads)."""
    found = get_testdata_file(name, download=False)
    if found is None:
        raise FileNotFoundError(f"{name} is not installed: pip install pydicom-data")
    return Path(found)
