"""Shared fixtures: real sample files, read from installed packages."""

from __future__ import annotations

import pytest
from helpers import dicom_file


@pytest.fixture
def dcm():
    """``dcm(name)`` gives the path of a real DICOM test file."""
    return dicom_file
