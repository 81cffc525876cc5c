"""Clean-up of masks: holes, components, islands by size, open and close in mm."""

from __future__ import annotations

from typing import Annotated

import cv2
import numpy as np

from ..params import Connectivity, Param, operation
from ._common import Spacing, check_mask, check_spacing

__all__ = ["binary_close", "binary_open", "fill_holes", "keep_largest", "remove_small"]


@operation("segmentation", "Fill holes", role="cleanup")
def fill_holes(
    mask: np.ndarray,
    *,
    per_slice: Annotated[
        bool, Param(doc="fill holes in each slice (2D) rather than in 3D")
    ] = False,
) -> np.ndarray:
    """Fill the background regions that the mask encloses.

    Parameters
    ----------
    mask : ([S,] M, N) bool ndarray
    per_slice : bool
        Fill the holes of each slice (2D) rather than in 3D; a volume's
        hole open at its first or last slice is filled only so.

    Returns
    -------
    ([S,] M, N) bool ndarray
    """
    from scipy import ndimage

    mask = check_mask(mask)
    if per_slice and mask.ndim == 3:
        return np.stack([ndimage.binary_fill_holes(s) for s in mask])
    return ndimage.binary_fill_holes(mask)


def _components(mask: np.ndarray, connectivity: int) -> tuple[np.ndarray, np.ndarray]:
    from scipy import ndimage

    structure = ndimage.generate_binary_structure(mask.ndim, connectivity)
    labels, n = ndimage.label(mask, structure)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    sizes[0] = 0
    return labels, sizes


@operation("segmentation", "Keep largest component", role="cleanup")
def keep_largest(
    mask: np.ndarray,
    *,
    connectivity: Connectivity = 1,
) -> np.ndarray:
    """The largest connected component of the mask (empty stays empty).

    Parameters
    ----------
    mask : ([S,] M, N) bool ndarray
    connectivity : int
        Neighbours joined, in [1, 3]: 1 faces, 2 edges, 3 corners (at most
        the mask's dimension).

    Returns
    -------
    ([S,] M, N) bool ndarray
    """
    mask = check_mask(mask)
    labels, sizes = _components(mask, min(connectivity, mask.ndim))
    if sizes.max(initial=0) == 0:
        return np.zeros_like(mask)
    return labels == int(np.argmax(sizes))


@operation("segmentation", "Remove small islands", role="cleanup")
def remove_small(
    mask: np.ndarray,
    *,
    min_size: Annotated[
        float,
        Param(
            0.0,
            1e6,
            1.0,
            "mm² / mL",
            "smallest island kept: area (2D) or volume (3D)",
            slider=(0.0, 1000.0),
        ),
    ] = 10.0,
    connectivity: Connectivity = 1,
    spacing: Spacing = None,
) -> np.ndarray:
    """Remove connected components smaller than ``min_size``.

    ``min_size`` is an area in mm² for 2D masks and a volume in mL (1 mL =
    1000 mm³) for volumes, measured with ``spacing`` (mm per axis).

    Parameters
    ----------
    mask : ([S,] M, N) bool ndarray
    min_size : float
        Smallest island kept, in mm² (2D) or mL (3D), in [0, 1000000] (a
        slider offers 0 to 1000).
    connectivity : int
        Neighbours joined, in [1, 3]: 1 faces, 2 edges, 3 corners.
    spacing : tuple of float, optional
        mm per axis; default 1 mm.

    Returns
    -------
    ([S,] M, N) bool ndarray
    """
    mask = check_mask(mask)
    sp = check_spacing(mask.shape, spacing)
    unit = float(np.prod(sp)) / (1000.0 if mask.ndim == 3 else 1.0)
    labels, sizes = _components(mask, min(connectivity, mask.ndim))
    keep = sizes * unit >= min_size
    keep[0] = False
    return keep[labels]


def _ellipsoid(radius_mm: float, spacing: tuple[float, ...]) -> np.ndarray:
    radii = [radius_mm / s for s in spacing]
    grids = np.ogrid[tuple(slice(-int(r), int(r) + 1) for r in radii)]
    return sum((g / max(r, 1e-9)) ** 2 for g, r in zip(grids, radii, strict=True)) <= 1


def _morph(mask, radius_mm, spacing, op: str) -> np.ndarray:
    mask = check_mask(mask)
    sp = check_spacing(mask.shape, spacing)
    element = _ellipsoid(radius_mm, sp)
    if element.size == 1:
        return mask.copy()
    if mask.ndim == 2:  # OpenCV is much faster in 2D
        kind = cv2.MORPH_OPEN if op == "open" else cv2.MORPH_CLOSE
        out = cv2.morphologyEx(
            mask.astype(np.uint8),
            kind,
            element.astype(np.uint8),
            borderType=cv2.BORDER_CONSTANT,
            borderValue=0,
        )
        return out.astype(bool)
    from scipy import ndimage

    fn = ndimage.binary_opening if op == "open" else ndimage.binary_closing
    pad = [(n // 2, n // 2) for n in element.shape]
    padded = np.pad(mask, pad)
    return fn(padded, structure=element)[tuple(slice(a, -a or None) for a, _ in pad)]


@operation("segmentation", "Open", role="cleanup")
def binary_open(
    mask: np.ndarray,
    *,
    radius_mm: Annotated[
        float, Param(0.0, 20.0, 0.1, "mm", "radius of the ball removed from edges")
    ] = 1.0,
    spacing: Spacing = None,
) -> np.ndarray:
    """Morphological opening with a ball of ``radius_mm``: removes thin spurs.

    Parameters
    ----------
    mask : ([S,] M, N) bool ndarray
    radius_mm : float
        Radius of the ball in mm, in [0, 20]; a ball smaller than a pixel
        gives the mask back.
    spacing : tuple of float, optional
        mm per axis; default 1 mm. The ball is an ellipsoid in pixels.

    Returns
    -------
    ([S,] M, N) bool ndarray
    """
    return _morph(mask, radius_mm, spacing, "open")


@operation("segmentation", "Close", role="cleanup")
def binary_close(
    mask: np.ndarray,
    *,
    radius_mm: Annotated[
        float, Param(0.0, 20.0, 0.1, "mm", "radius of the ball that bridges gaps")
    ] = 1.0,
    spacing: Spacing = None,
) -> np.ndarray:
    """Morphological closing with a ball of ``radius_mm``: bridges small gaps.

    Parameters
    ----------
    mask : ([S,] M, N) bool ndarray
    radius_mm : float
        Radius of the ball in mm, in [0, 20]; a ball smaller than a pixel
        gives the mask back.
    spacing : tuple of float, optional
        mm per axis; default 1 mm. The ball is an ellipsoid in pixels.

    Returns
    -------
    ([S,] M, N) bool ndarray
    """
    return _morph(mask, radius_mm, spacing, "close")
