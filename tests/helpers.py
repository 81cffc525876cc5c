"""Helpers shared by the tests (import as ``from helpers import ...``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from pydicom.data import get_testdata_file


def dicom_file(name: str) -> Path:
    """The local path of a pydicom / pydicom-data test file (never downloads)."""
    found = get_testdata_file(name, download=False)
    if found is None:
        raise FileNotFoundError(f"{name} is not installed: pip install pydicom-data")
    return Path(found)


def disc_png(path: Path, radius: int, seed: int, size: int = 64) -> None:
    """A ``size``² 8-bit PNG: a bright disc of ``radius`` px at the centre, noisy."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    c = size // 2
    image = ((yy - c) ** 2 + (xx - c) ** 2 <= radius**2) * 150.0 + 50
    image = np.clip(image + rng.normal(0, 10, image.shape), 0, 255).astype(np.uint8)
    Image.fromarray(image).save(path)
