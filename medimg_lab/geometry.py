"""Geometry in millimetres: distances, discs, boxes and other grids.

Array indices become lengths through the voxel spacing (mm per axis, in the
array's axis order), as everywhere in medimg_lab: a distance is
``sqrt(sum(((p - q) · spacing)²))``, a brush of radius ``r`` mm is the set
of pixels with ``sum((d · spacing)²) <= r²``, and an image on another grid is
resampled by the ratio of the spacings, centres aligned.

These are what the panels and dashboards of :mod:`medimg_lab.widgets` show
(a ruler, an ROI's statistics, a brush stroke, image B on image A's grid);
they are computed here, without a UI, and tested so.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from .image import MedImage

__all__ = [
    "box_statistics",
    "brush_pixels",
    "disc_mask",
    "distance_mm",
    "onto_grid",
    "slice_onto",
]


def _spacing(spacing, ndim: int, name: str = "spacing") -> np.ndarray:
    values = np.asarray(spacing, dtype=np.float64).reshape(-1)
    if values.size != ndim or not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ValueError(
            f"{name} must be {ndim} positive finite lengths in mm; got {spacing!r}"
        )
    return values


def distance_mm(p, q, spacing) -> float:
    """Distance between two voxel centres in mm.

    Parameters
    ----------
    p, q : sequence of int or float
        Array indices, ``(row, col)`` or ``(slice, row, col)``.
    spacing : sequence of float
        mm per axis, in the same order.

    Returns
    -------
    float
        ``sqrt(sum(((p - q) · spacing)²))`` in mm.

    Examples
    --------
    >>> distance_mm((0, 0), (3, 4), (1.0, 1.0))
    5.0
    >>> distance_mm((0, 0, 0), (2, 0, 0), (2.5, 0.5, 0.5))
    5.0
    """
    p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
    if p.shape != q.shape or p.ndim != 1:
        raise ValueError(
            f"p and q must be indices of one length; got {tuple(p)} and {tuple(q)}"
        )
    steps = (p - q) * _spacing(spacing, p.size)
    return float(np.sqrt(np.sum(steps**2)))


def box_statistics(
    array: np.ndarray, p, q, spacing, *, normal: int | None = None
) -> dict[str, float | int]:
    """Statistics of the box with opposite corners ``p`` and ``q``, corners in.

    Parameters
    ----------
    array : ([S,] M, N[, 3]) ndarray
        The image, in its units.
    p, q : sequence of int
        Opposite corners, array indices inside the image.
    spacing : sequence of float
        mm per spatial axis.
    normal : int, optional
        For a rectangle in one plane of a volume: the axis across that plane,
        along which ``p`` and ``q`` must agree; the area is then that of the
        rectangle (the two other axes' spacings).

    Returns
    -------
    dict
        ``pixels`` (of the rectangle), ``area_mm2`` (pixels times the in-plane
        spacings) and ``mean``, ``sd`` (population), ``min``, ``max`` in the
        image's unit (of an RGB image, over its channels' levels).

    Examples
    --------
    >>> image = np.arange(12.0).reshape(3, 4)
    >>> stats = box_statistics(image, (0, 1), (1, 2), (0.5, 2.0))
    >>> stats["pixels"], stats["area_mm2"], stats["mean"]
    (4, 4.0, 3.5)
    """
    p, q = tuple(int(i) for i in p), tuple(int(i) for i in q)
    shape = np.shape(array)[: len(p)]
    spacing = _spacing(spacing, len(p))
    if len(q) != len(p) or not all(
        0 <= a < n and 0 <= b < n for a, b, n in zip(p, q, shape, strict=True)
    ):
        raise ValueError(
            f"corners {p} and {q} must be indices inside the image of shape {shape}"
        )
    in_plane = list(range(len(p)))
    if normal is not None:
        if p[normal] != q[normal]:
            raise ValueError(
                f"the corners lie on different planes across axis {normal} "
                f"({p[normal]} and {q[normal]}); give both on one plane"
            )
        in_plane.remove(normal)
    box = tuple(slice(min(a, b), max(a, b) + 1) for a, b in zip(p, q, strict=True))
    values = np.asarray(array)[box].astype(np.float64)
    pixels = int(np.prod([box[a].stop - box[a].start for a in in_plane]))
    return {
        "pixels": pixels,
        "area_mm2": pixels * float(np.prod(spacing[in_plane])),
        "mean": float(values.mean()),
        "sd": float(values.std()),
        "min": float(values.min()),
        "max": float(values.max()),
    }


def brush_pixels(
    points, radius_mm: float, spacing, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixels under a round brush of ``radius_mm`` at each ``(row, col)`` point.

    A pixel at offset ``(dy, dx)`` from a point is under the brush when
    ``(dy · s_y)² + (dx · s_x)² <= r²``: a disc in mm, an ellipse in pixels
    where the spacing is anisotropic. The brush is never smaller than the
    point's own pixel.

    Parameters
    ----------
    points : (K, 2) array_like of int
        ``(row, col)`` of each point.
    radius_mm : float
        Radius in mm, >= 0.
    spacing : (float, float)
        mm per row and per column.
    shape : (int, int)
        The plane's shape; pixels outside it are left out.

    Returns
    -------
    rows, cols, owner : (P,) int64 ndarray
        The pixels, and for each the index of the point that painted it.

    Examples
    --------
    >>> rows, cols, _ = brush_pixels([(5, 5)], 1.0, (1.0, 1.0), (10, 10))
    >>> sorted(zip(rows.tolist(), cols.tolist()))
    [(4, 5), (5, 4), (5, 5), (5, 6), (6, 5)]
    """
    radius = float(radius_mm)
    if not math.isfinite(radius) or radius < 0:
        raise ValueError(f"radius_mm must be a finite length >= 0 mm; got {radius_mm}")
    ry, rx = (max(radius / s, 0.5) for s in _spacing(spacing, 2))
    dy, dx = np.mgrid[-int(ry) : int(ry) + 1, -int(rx) : int(rx) + 1]
    inside = (dy / ry) ** 2 + (dx / rx) ** 2 <= 1
    dy, dx = dy[inside], dx[inside]
    points = np.asarray(points, dtype=np.int64).reshape(-1, 2)
    rows = (points[:, 0, None] + dy[None]).ravel()
    cols = (points[:, 1, None] + dx[None]).ravel()
    owner = np.repeat(np.arange(len(points)), dy.size)
    keep = (rows >= 0) & (rows < shape[0]) & (cols >= 0) & (cols < shape[1])
    return rows[keep], cols[keep], owner[keep]


def disc_mask(shape: tuple[int, int], centre, radius_mm: float, spacing) -> np.ndarray:
    """A boolean disc of ``radius_mm`` around ``centre`` (row, col).

    One dab of :func:`brush_pixels`.

    Parameters
    ----------
    shape : (int, int)
        The plane's shape.
    centre : (int, int)
        ``(row, col)`` of the disc's centre.
    radius_mm : float
        Radius in mm, >= 0.
    spacing : (float, float)
        mm per row and per column.

    Returns
    -------
    (M, N) bool ndarray

    Examples
    --------
    >>> disc_mask((5, 5), (2, 2), 1.0, (1.0, 1.0)).sum()
    np.int64(5)
    """
    mask = np.zeros(shape, bool)
    rows, cols, _ = brush_pixels([centre], radius_mm, spacing, shape)
    mask[rows, cols] = True
    return mask


def onto_grid(
    plane: np.ndarray,
    spacing: tuple[float, float],
    shape: tuple[int, int],
    target_spacing: tuple[float, float],
    *,
    fill: float,
) -> np.ndarray:
    """A 2D image resampled onto another grid in mm, centres aligned.

    Output pixel ``(y, x)`` reads the image at
    ``(c_in + (y - c_out) · t_y / s_y, ...)``, the centres ``c`` in pixels,
    ``t`` the target spacing and ``s`` the image's.

    Parameters
    ----------
    plane : (M, N) ndarray
        The image, in any units.
    spacing : (float, float)
        Its mm per pixel along rows and columns.
    shape : (int, int)
        The target grid's shape.
    target_spacing : (float, float)
        The target grid's mm per pixel.
    fill : float
        Value where the image does not reach (padding).

    Returns
    -------
    (shape) float32 ndarray
        Linear interpolation; the part of the image outside the target grid
        is cropped.

    Examples
    --------
    >>> onto_grid(np.ones((4, 4)), (1.0, 1.0), (4, 8), (1.0, 1.0), fill=0.0)[0]
    array([0., 0., 1., 1., 1., 1., 0., 0.], dtype=float32)
    """
    plane = np.asarray(plane, np.float32)
    if plane.ndim != 2:
        raise ValueError(f"plane must be a 2D image; got shape {plane.shape}")
    spacing = _spacing(spacing, 2)
    target_spacing = _spacing(target_spacing, 2, "target_spacing")
    if plane.shape == tuple(shape) and np.allclose(spacing, target_spacing):
        return plane
    (rows, cols), (in_rows, in_cols) = shape, plane.shape
    ky, kx = target_spacing / spacing
    # output pixel (x, y) reads input pixel (cx_in + (x - cx) kx, cy_in + ...)
    matrix = np.array(
        [
            [kx, 0.0, (in_cols - 1) / 2 - (cols - 1) / 2 * kx],
            [0.0, ky, (in_rows - 1) / 2 - (rows - 1) / 2 * ky],
        ]
    )
    return cv2.warpAffine(
        np.ascontiguousarray(plane),
        matrix,
        (int(cols), int(rows)),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=float(fill),
    )


def slice_onto(moving: MedImage, reference: MedImage, k: int = 0) -> np.ndarray:
    """Image B brought onto image A's grid, at A's axial slice ``k``.

    ``moving``'s plane at the height of ``reference``'s axial slice ``k``, on
    ``reference``'s in-plane grid.

    Heights are measured in mm from each volume's centre; between two of
    B's slices the plane is interpolated linearly, and where B does not
    reach, the plane is B's minimum. A 2D B serves every slice of A; for a
    2D A, B's middle slice is used.

    Parameters
    ----------
    moving : MedImage
        B, a grey 2D image or volume.
    reference : MedImage
        A, whose grid B is brought onto.
    k : int
        A's axial slice (0 for a 2D A).

    Returns
    -------
    (M, N) float32 ndarray
        In B's units, of A's in-plane shape.
    """
    a, b = reference, moving
    n_a = a.array.shape[0] if a.is_volume else 1
    if not 0 <= int(k) < n_a:
        raise ValueError(
            f"k must be a slice of the reference in [0, {n_a - 1}]; got {k}"
        )
    fill = float(np.min(b.array))
    if not b.is_volume:
        plane = b.array
    elif not a.is_volume:
        plane = b.array[b.array.shape[0] // 2]
    elif a.array.shape[0] == b.array.shape[0] and math.isclose(
        a.spacing[0], b.spacing[0]
    ):
        plane = b.array[k]
    else:
        n_b = b.array.shape[0]
        z = (n_b - 1) / 2 + (k - (n_a - 1) / 2) * a.spacing[0] / b.spacing[0]
        if not -0.5 <= z <= n_b - 0.5:  # B does not reach this height
            return np.full(a.array.shape[-2:], fill, np.float32)
        z = min(max(z, 0.0), n_b - 1.0)
        k0 = math.floor(z)
        k1, t = min(k0 + 1, n_b - 1), z - k0
        plane = (1 - t) * b.array[k0].astype(np.float32) + t * b.array[k1]
    return onto_grid(
        plane, b.spacing[-2:], a.array.shape[-2:], a.spacing[-2:], fill=fill
    )
