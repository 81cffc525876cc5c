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


def page_answers(*controls) -> None:
    """Deliver what the page sends once it has applied a control's last change.

    ``medimg_lab.widgets._sync`` sliders wait for it to tell the page's echoes from a
    user's moves; without a page, a test delivers it.
    """
    for control in controls:
        control.set_state({"_pong": control._ping})


def user_moves(control, value) -> None:
    """A user's move of ``control`` in a page that is up to date."""
    page_answers(control)
    control.set_state({"value": value})


def page_echoes(control, value) -> None:
    """The page sends back ``value`` before it answered the kernel's change."""
    control.set_state({"value": value})


def whole_window(values: np.ndarray) -> tuple[float, float]:
    """``auto_window``'s rule over every value, by np.percentile (no subsample).

    The reference the subsampled, histogram-based window is checked against.
    """
    flat = values.ravel()
    body = flat[flat != flat.min()]
    if body.size and flat.size - body.size > 0.1 * flat.size:
        flat = body
    lo, hi = (float(v) for v in np.percentile(flat, [0.5, 99.5]))
    return (lo + hi) / 2, hi - lo
