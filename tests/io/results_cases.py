"""Sources and known truths for the SEG and SR tests (issue 19, item 2).

:func:`ct_series` writes a multi-slice CT series made from ``CT_small.dcm``
with the geometry asked for (rows, columns, pixel spacing, slice step, a tilt
of the slice plane), in shuffled file order, and says which slice each SOP
Instance UID is. :func:`phantom` draws labels as ellipsoids sized in mm, so
that their voxel counts follow from the geometry, not from a constant.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.uid import generate_uid

from tests.helpers import dicom_file


@dataclass(frozen=True)
class Geometry:
    """One series' shape: slices of rows x cols, spacing in mm, a tilt in degrees."""

    slices: int
    rows: int
    cols: int
    pixel_mm: tuple[float, float]
    step_mm: float
    tilt_deg: float = 0.0
    #: Keep CT_small's SpacingBetweenSlices (5 mm), which the positions
    #: contradict, as scanners' headers often do.
    stale_spacing: bool = True


NON_SQUARE = Geometry(12, 96, 128, (0.7, 0.9), 3.0)
OBLIQUE = Geometry(10, 64, 64, (0.8, 0.8), 0.8, tilt_deg=20.0, stale_spacing=False)


@dataclass
class Series:
    folder: Path
    geometry: Geometry
    slice_of: dict[str, int]  # SOP Instance UID -> slice index along the normal
    positions: dict[str, np.ndarray]  # SOP Instance UID -> ImagePositionPatient
    orientation: list[float]
    series_uid: str


def ct_series(folder: Path, geometry: Geometry, *, seed: int) -> Series:
    """Single-frame CT files of one series, written in shuffled order."""
    folder.mkdir(parents=True, exist_ok=True)
    g = geometry
    template = pydicom.dcmread(dicom_file("CT_small.dcm"))
    rng = np.random.default_rng(seed)
    t = math.radians(g.tilt_deg)
    row_dir = np.array([1.0, 0.0, 0.0])
    col_dir = np.array([0.0, math.cos(t), math.sin(t)])
    normal = np.cross(row_dir, col_dir)
    origin = np.array([-40.0, -35.5, -60.0])
    orientation = [*row_dir.tolist(), *col_dir.tolist()]
    series_uid = generate_uid()
    order = list(range(g.slices))
    random.Random(seed).shuffle(order)  # noqa: S311 file order, not security
    slice_of, positions = {}, {}
    for n, k in enumerate(order):
        ds = template.copy()
        ds.Rows, ds.Columns = g.rows, g.cols
        stored = rng.integers(0, 2200, size=(g.rows, g.cols)).astype(np.int16)
        ds.PixelData = stored.tobytes()
        ds.PixelSpacing = list(g.pixel_mm)
        ds.SliceThickness = g.step_mm
        if not g.stale_spacing:
            ds.SpacingBetweenSlices = g.step_mm
        position = origin + k * g.step_mm * normal
        ds.ImagePositionPatient = [round(float(v), 4) for v in position]
        ds.ImageOrientationPatient = [round(v, 6) for v in orientation]
        ds.InstanceNumber = g.slices - n  # unrelated to the position
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.save_as(folder / f"{n:02d}_{rng.integers(1_000_000)}.dcm")
        slice_of[str(ds.SOPInstanceUID)] = k
        positions[str(ds.SOPInstanceUID)] = np.array(ds.ImagePositionPatient, float)
    return Series(folder, g, slice_of, positions, orientation, series_uid)


def phantom(
    shape: tuple[int, ...],
    spacing: tuple[float, ...],
    blobs: list[tuple[tuple[float, ...], tuple[float, ...]]],
) -> np.ndarray:
    """Labels 1, 2, ... as ellipsoids (centre as a fraction of the extent, radii mm).

    A later blob overwrites an earlier one where they overlap.
    """
    grids = np.meshgrid(
        *[np.arange(n) * s for n, s in zip(shape, spacing, strict=True)],
        indexing="ij",
    )
    labels = np.zeros(shape, np.uint8)
    for number, (centre, radii) in enumerate(blobs, 1):
        inside = np.ones(shape, bool)
        total = 0.0
        for axis, (c, r) in enumerate(zip(centre, radii, strict=True)):
            c_mm = c * (shape[axis] - 1) * spacing[axis]
            total = total + ((grids[axis] - c_mm) / r) ** 2
        inside &= total <= 1.0
        labels[inside] = number
    return labels


#: Three labels in a volume: white matter, grey matter, CSF.
THREE = [
    ((0.4, 0.4, 0.35), (7.0, 14.0, 20.0)),
    ((0.6, 0.6, 0.65), (9.0, 10.0, 16.0)),
    ((0.2, 0.8, 0.8), (4.0, 5.0, 6.0)),
]
THREE_NAMES = {1: "white matter", 2: "grey matter", 3: "csf"}
