"""Measurements per label: size in mm² or mL, intensity statistics, extent.

Below both the segmentation stage (which offers it as
:func:`medimg_lab.segmentation.measure`) and the SR writer
(:mod:`medimg_lab.io.sr`), which measures what it reports: neither imports
the other for it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._checks import Spacing, check_image, check_spacing

__all__ = ["measure"]


def measure(
    labels: np.ndarray,
    image: np.ndarray | None = None,
    *,
    spacing: Spacing = None,
    unit: str = "",
) -> Any:  # a pandas.DataFrame; pandas (~0.3 s) loads on first use
    """A table with one row per label > 0.

    Parameters
    ----------
    labels : ([S,] M, N) bool or int ndarray
        A mask (label 1) or labels; 0 is background.
    image : ndarray, optional
        Values for the intensity statistics (HU for CT).
    spacing : tuple of float, optional
        mm per axis; default 1 mm.
    unit : str
        Unit of the image's values, for the column names ("HU").

    Returns
    -------
    pandas.DataFrame
        Columns ``label``, ``pixels``, ``area_mm2`` (2D) or ``volume_ml``
        (3D), ``mean``, ``sd``, ``min``, ``max`` (with the unit in the name
        when given) and ``bbox`` as ``(start, stop)`` per axis.
    """
    import pandas as pd
    from scipy import ndimage

    labels = check_image(labels, "labels")
    if labels.dtype == bool:
        labels = labels.astype(np.uint8)
    if labels.dtype.kind not in "iu":
        raise ValueError(f"labels must be boolean or integer; got {labels.dtype}")
    sp = check_spacing(labels.shape, spacing)
    ids = np.unique(labels)
    ids = ids[ids > 0]
    size = "volume_ml" if labels.ndim == 3 else "area_mm2"
    if ids.size == 0:
        return pd.DataFrame(columns=["label", "pixels", size, "bbox"])
    counts = np.bincount(labels.ravel().astype(np.int64))
    voxel = float(np.prod(sp))
    rows = []
    boxes = ndimage.find_objects(labels.astype(np.int64))
    suffix = f"_{unit}" if unit else ""
    stats = {}
    if image is not None:
        image = check_image(image)
        if image.shape != labels.shape:
            raise ValueError(
                f"image must have the labels' shape {labels.shape}; got {image.shape}"
            )
        values = image.astype(np.float64).ravel()
        flat = labels.ravel().astype(np.int64)
        sums = np.bincount(flat, weights=values)
        means = sums[ids] / counts[ids]
        full_means = np.zeros(sums.shape)
        full_means[ids] = means
        squares = np.bincount(flat, weights=(values - full_means[flat]) ** 2)
        # np.minimum.at is one pass; ndimage.minimum sorts the whole image.
        lows = np.full(sums.shape, np.inf)
        highs = np.full(sums.shape, -np.inf)
        np.minimum.at(lows, flat, values)
        np.maximum.at(highs, flat, values)
        stats = {
            "mean": means,
            "sd": np.sqrt(squares[ids] / counts[ids]),
            "min": lows[ids],
            "max": highs[ids],
        }
    for n, label in enumerate(ids):
        row = {"label": int(label), "pixels": int(counts[label])}
        if labels.ndim == 3:
            row["volume_ml"] = counts[label] * voxel / 1000.0
        else:
            row["area_mm2"] = counts[label] * voxel
        for name, column in stats.items():
            row[f"{name}{suffix}"] = float(column[n])
        box = boxes[int(label) - 1]
        row["bbox"] = tuple((s.start, s.stop) for s in box)
        rows.append(row)
    return pd.DataFrame(rows)
