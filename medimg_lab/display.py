r"""Turning physical values into pixels on a screen, fast.

Window/level maps a range of physical values (HU for CT) onto the 256 grey
levels of a display, with DICOM's LINEAR_EXACT function (PS3.3 C.11.2.1.3.2):

.. math:: y = \mathrm{clip}\left(\left(\frac{x - c}{w} + \frac{1}{2}\right)
   \cdot 255,\ 0,\ 255\right)
"""

from __future__ import annotations

import math
from functools import lru_cache

import cv2
import numpy as np

from .image import FromValues, MedImage

__all__ = [
    "AUTO_WINDOW",
    "PLANES",
    "PRESETS",
    "WINDOW_SAMPLE",
    "apply_window",
    "auto_window",
    "draw_mark",
    "encode_png",
    "fit",
    "histogram_image",
    "label_colors",
    "overlay",
    "overlay_table",
    "plane",
    "plane_to_voxel",
    "preset",
    "probability_image",
    "resample_labels",
    "resample_plane",
    "seam_lines",
    "to_display",
    "voxel_to_plane",
    "window_sample",
]

#: Planes of a volume stored ``array[slice, row, col]`` in axial layout.
PLANES = ("axial", "coronal", "sagittal")

#: Named CT windows, ``name: (center, width)`` in Hounsfield units.
PRESETS: dict[str, tuple[float, float]] = {
    "brain": (40.0, 80.0),
    "subdural": (75.0, 215.0),
    "stroke": (40.0, 40.0),
    "lung": (-600.0, 1500.0),
    "mediastinum": (50.0, 350.0),
    "abdomen": (40.0, 400.0),
    "liver": (60.0, 150.0),
    "bone": (400.0, 1800.0),
}

# Colours for label overlays (label 1, 2, ...), RGB, readable on grey.
_LABEL_COLORS = np.array(
    [
        (230, 25, 75),
        (60, 180, 75),
        (255, 225, 25),
        (0, 130, 200),
        (245, 130, 48),
        (145, 30, 180),
        (70, 240, 240),
        (240, 50, 230),
        (210, 245, 60),
        (250, 190, 212),
    ],
    dtype=np.uint8,
)


def preset(name: str) -> tuple[float, float]:
    """The ``(center, width)`` in HU of a named CT window preset.

    Parameters
    ----------
    name : str
        One of :data:`PRESETS`: brain, subdural, stroke, lung, mediastinum,
        abdomen, liver, bone (case-insensitive).
    """
    key = str(name).strip().lower()
    if key not in PRESETS:
        raise ValueError(
            f"unknown window preset {name!r}; choose one of {', '.join(PRESETS)}"
        )
    return PRESETS[key]


def _check_window(center: float, width: float) -> tuple[float, float]:
    center, width = float(center), float(width)
    if not np.isfinite(center) or not np.isfinite(width) or width <= 0:
        raise ValueError(
            f"window needs a finite center and a width > 0; got center={center}, "
            f"width={width}"
        )
    return center, width


@lru_cache(maxsize=64)
def _lut(dtype_str: str, center: float, width: float) -> np.ndarray:
    """A lookup table indexed by the unsigned bit pattern of every value."""
    dtype = np.dtype(dtype_str)
    unsigned = np.dtype(f"u{dtype.itemsize}")
    values = np.arange(2 ** (8 * dtype.itemsize), dtype=unsigned).view(dtype)
    scaled = (values.astype(np.float64) - center) / width + 0.5
    return np.clip(scaled * 255.0 + 0.5, 0, 255).astype(np.uint8)


def apply_window(array: np.ndarray, center: float, width: float) -> np.ndarray:
    """Map physical values to display grey levels through a window.

    Parameters
    ----------
    array : ([S,] M, N[, 3]) ndarray
        Values in their physical units (HU for CT).
    center, width : float
        The window, in the array's units; ``width > 0``. Values below
        ``center - width/2`` become 0, above ``center + width/2`` 255.

    Returns
    -------
    ([S,] M, N[, 3]) uint8 ndarray

    Examples
    --------
    >>> apply_window(np.array([-1000, 40, 1000], dtype=np.int16), 40, 80)
    array([  0, 128, 255], dtype=uint8)
    """
    center, width = _check_window(center, width)
    array = np.asarray(array)
    if array.dtype.kind in "iu" and array.dtype.itemsize <= 2:
        unsigned = np.dtype(f"u{array.dtype.itemsize}")
        lut = _lut(array.dtype.str, center, width)
        return np.take(lut, array.view(unsigned))
    if array.dtype == bool:
        array = array.astype(np.uint8)
    scale = np.float32(255.0 / width)
    offset = np.float32(127.5 - center * 255.0 / width + 0.5)
    work = array.astype(np.float32, copy=False) * scale + offset
    np.clip(work, 0, 255, out=work)
    return work.astype(np.uint8)


#: Values an automatic window is computed from: a strided subsample of the
#: image (its percentiles are those of the whole within a small fraction of
#: the window, at a fraction of the cost of millions of values).
WINDOW_SAMPLE = 1 << 18

#: Integer images whose values span at most this many levels take their
#: percentiles from a histogram of the sample instead of a partial sort.
_HISTOGRAM_LEVELS = 1 << 20


def window_sample(array: np.ndarray, count: int = WINDOW_SAMPLE) -> np.ndarray:
    """About ``count`` values of ``array``, evenly strided through it.

    The stride shares no factor with the row length, so that it walks
    across the columns instead of down a few of them.

    Parameters
    ----------
    array : ndarray
        An image or volume.
    count : int
        About how many values to take; all of them for a smaller array.

    Returns
    -------
    ndarray
        One-dimensional, at least ``count`` values (fewer only when the
        array has fewer), at most about twice as many.
    """
    array = np.asarray(array)
    flat = array.reshape(-1)
    step = max(1, flat.size // count)
    row = array.shape[-1] if array.ndim else 1
    while step > 1 and math.gcd(step, row) > 1:
        step += 1
    return flat[::step]


def auto_window(
    array: np.ndarray, *, percentiles: tuple[float, float] = (0.5, 99.5)
) -> tuple[float, float]:
    """A robust display window from the image's own values.

    Values equal to the image minimum are left out when they cover more than
    a tenth of the image (background, padding, outside the field of view), so
    that the window fits the anatomy. Images of more than
    :data:`WINDOW_SAMPLE` values are subsampled (:func:`window_sample`).

    Parameters
    ----------
    array : ndarray
        The image, in physical units.
    percentiles : (float, float)
        Lower and upper percentiles, in ``[0, 100]``, that the window spans.

    Returns
    -------
    (center, width) : (float, float)
        ``width`` is at least 1e-6 of the value scale, never zero.
    """
    lo_p, hi_p = percentiles
    if not 0 <= lo_p < hi_p <= 100:
        raise ValueError(
            f"percentiles must satisfy 0 <= low < high <= 100; got {percentiles}"
        )
    flat = np.asarray(array)
    flat = window_sample(flat) if flat.size > WINDOW_SAMPLE else flat.reshape(-1)
    flat = flat[np.isfinite(flat)] if flat.dtype.kind == "f" else flat
    if flat.size == 0:
        return 0.5, 1.0
    if flat.dtype == bool:
        flat = flat.view(np.uint8)
    floor, top = flat.min(), flat.max()
    if flat.dtype.kind in "iu" and int(top) - int(floor) < _HISTOGRAM_LEVELS:
        lo, hi = _histogram_percentiles(flat, int(floor), int(top), lo_p, hi_p)
    else:
        body = flat[flat != floor]
        if body.size and (flat.size - body.size) > 0.1 * flat.size:
            flat = body
        lo, hi = (float(v) for v in np.percentile(flat, [lo_p, hi_p]))
    floor, top = float(floor), float(top)
    if hi <= lo:  # (nearly) constant: span the whole range, background included
        lo, hi = floor, top
    width = max(hi - lo, 1e-6 * max(1.0, abs(hi)), 1e-12)
    return (lo + hi) / 2, width


def _auto_window_of(array: np.ndarray) -> tuple[float, float]:
    return auto_window(array)  # looked up when called: a module function pickles


#: ``window=AUTO_WINDOW`` gives a MedImage the :func:`auto_window` of its
#: array, computed the first time the window is read.
AUTO_WINDOW = FromValues(_auto_window_of)


def _histogram_percentiles(
    flat: np.ndarray, floor: int, top: int, lo_p: float, hi_p: float
) -> tuple[float, float]:
    """``np.percentile(values, [lo_p, hi_p])`` of integers, from their histogram.

    The values are those of ``flat``, without ``floor`` where it covers more
    than a tenth of them (as :func:`auto_window`). The order statistics come
    from the cumulative histogram, and are interpolated as NumPy's linear
    method does, in the same order of operations, so the result is the same
    number, without sorting.
    """
    counts = np.bincount(np.subtract(flat, floor, dtype=np.intp), minlength=1)
    n = flat.size
    if n - int(counts[0]) and int(counts[0]) > 0.1 * n:
        n -= int(counts[0])
        counts[0] = 0
    cumulative = np.cumsum(counts)
    virtual = (n - 1) * np.true_divide(np.array([lo_p, hi_p], np.float64), 100)
    previous = np.floor(virtual)
    after = previous + 1
    previous[virtual >= n - 1] = after[virtual >= n - 1] = n - 1
    previous[virtual < 0] = after[virtual < 0] = 0
    gamma = virtual - previous.astype(np.intp)
    order = np.concatenate([previous, after]).astype(np.intp)
    picked = np.searchsorted(cumulative, order, side="right") + floor
    values = picked.astype(flat.dtype)
    a, b = values[:2], values[2:]
    diff = b - a  # in the values' type, as NumPy
    result = np.add(a, diff * gamma)
    np.subtract(b, diff * (1 - gamma), out=result, where=gamma >= 0.5)
    return float(result[0]), float(result[1])


def to_display(
    image: MedImage,
    window: tuple[float, float] | str | None = None,
    *,
    max_size: int | tuple[int, int] | None = None,
) -> np.ndarray:
    """The 8-bit display rendering of a MedImage (a 2D image or a volume).

    Parameters
    ----------
    image : MedImage
    window : (center, width), preset name, or None
        ``None`` uses the image's default window. RGB images with 8-bit values
        are shown as they are.
    max_size : int or (width, height), optional
        For a 2D image: downscale to fit this display box first (see
        :func:`fit`), which is much cheaper for large radiographs.
    """
    array = image.array
    if max_size is not None and not image.is_volume:
        array = fit(array, max_size)
    if image.is_color and array.dtype == np.uint8 and window is None:
        return array
    if isinstance(window, str):
        window = preset(window)
    center, width = window if window is not None else image.window
    return apply_window(array, center, width)


def plane(
    array: np.ndarray, spacing: tuple[float, ...], name: str, index: int
) -> tuple[np.ndarray, tuple[float, float]]:
    """One plane of a volume in axial layout, as shown: superior up.

    Parameters
    ----------
    array : (S, M, N[, 3]) ndarray
        A volume (or a label volume) in axial layout: slices inferior→superior,
        rows anterior→posterior, columns right→left.
    spacing : (float, float, float)
        mm per axis.
    name : {"axial", "coronal", "sagittal"}
    index : int
        Index along the plane's normal.

    Returns
    -------
    values : (H, W[, 3]) ndarray
        A view, no copy.
    spacing : (float, float)
        mm per row and per column of ``values``.
    """
    if name not in PLANES:
        raise ValueError(f"plane must be one of {', '.join(PLANES)}; got {name!r}")
    axis = PLANES.index(name)
    if not 0 <= index < array.shape[axis]:
        raise ValueError(f"{name} index {index} is outside 0..{array.shape[axis] - 1}")
    dz, dy, dx = spacing
    if name == "axial":
        return array[index], (dy, dx)
    if name == "coronal":
        return array[:, index][::-1], (dz, dx)
    return array[:, :, index][::-1], (dz, dy)


def plane_to_voxel(
    shape: tuple[int, ...], name: str, index: int, row: int, col: int
) -> tuple[int, int, int]:
    """The voxel under pixel ``(row, col)`` of a plane as :func:`plane` shows it.

    Parameters
    ----------
    shape : (int, int, int)
        The volume's ``(S, M, N)`` (axial layout, see :func:`plane`).
    name : {"axial", "coronal", "sagittal"}
    index : int
        The plane's index along its normal.
    row, col : int
        Pixel of the shown plane, row 0 at the top (superior, for coronal
        and sagittal planes).

    Returns
    -------
    (slice, row, col) : (int, int, int)
        The array index; :func:`voxel_to_plane` is its inverse.

    Examples
    --------
    >>> plane_to_voxel((10, 20, 30), "coronal", 5, 0, 7)
    (9, 5, 7)
    """
    top = shape[0] - 1
    if name == "axial":
        return index, row, col
    if name == "coronal":
        return top - row, index, col
    if name == "sagittal":
        return top - row, col, index
    raise ValueError(f"plane must be one of {', '.join(PLANES)}; got {name!r}")


def voxel_to_plane(
    shape: tuple[int, ...], name: str, voxel: tuple[int, int, int]
) -> tuple[int, int, int]:
    """Where voxel ``(slice, row, col)`` shows in plane ``name``.

    ``(row, col, index)``, the inverse of :func:`plane_to_voxel`.

    Parameters
    ----------
    shape : (int, int, int)
        The volume's ``(S, M, N)``.
    name : {"axial", "coronal", "sagittal"}
    voxel : (int, int, int)
        ``(slice, row, col)`` of the volume.

    Returns
    -------
    (int, int, int)
        ``(row, col, index)``: the pixel of the shown plane, and the plane's
        index along its normal.

    Examples
    --------
    >>> voxel_to_plane((10, 20, 30), "coronal", (9, 5, 7))
    (0, 7, 5)
    """
    if name not in PLANES:
        raise ValueError(f"plane must be one of {', '.join(PLANES)}; got {name!r}")
    k, r, c = voxel
    axis = PLANES.index(name)
    index = (k, r, c)[axis]
    # plane_to_voxel is linear in (row, col): read the two back from it
    k0, r0, c0 = plane_to_voxel(shape, name, index, 0, 0)
    rows = {"axial": r - r0, "coronal": k0 - k, "sagittal": k0 - k}[name]
    cols = {"axial": c - c0, "coronal": c - c0, "sagittal": r - r0}[name]
    return rows, cols, index


#: What :func:`draw_mark` draws: a dot, a line (a ruler) or a box (an ROI).
MARKS = ("dot", "line", "box")


def draw_mark(
    labels: np.ndarray,
    p: tuple[int, ...],
    q: tuple[int, ...] | None = None,
    *,
    kind: str,
    label: int,
    plane_name: str = "axial",
    thickness: int = 1,
) -> np.ndarray:
    """A copy of ``labels`` with a measurement drawn in.

    A dot at ``p``, or a line or a box from ``p`` to ``q``, in the plane of a
    volume as shown.

    Parameters
    ----------
    labels : ([S,] M, N) uint8 ndarray
        A label image or volume (0 = nothing), for :func:`overlay`.
    p, q : tuple of int
        Array indices, ``(row, col)`` or ``(slice, row, col)``; ``q`` is
        not used for a dot.
    kind : {"dot", "line", "box"}
    label : int
        The value drawn, 1..255.
    plane_name : {"axial", "coronal", "sagittal"}
        For a volume: the plane ``p`` lies in (and ``q`` too for a box). A
        line between two slices of that plane marks the voxels along the
        segment instead.
    thickness : int
        Line thickness in pixels; a dot's radius is twice it.

    Returns
    -------
    ([S,] M, N) uint8 ndarray
    """
    if kind not in MARKS:
        raise ValueError(f"kind must be one of {', '.join(MARKS)}; got {kind!r}")
    out = np.array(labels, dtype=np.uint8, copy=True)
    q = p if q is None or kind == "dot" else q
    if out.ndim == 3:
        (r0, c0, k0) = voxel_to_plane(out.shape, plane_name, p)
        (r1, c1, k1) = voxel_to_plane(out.shape, plane_name, q)
        view = plane(out, (1.0, 1.0, 1.0), plane_name, k0)[0]  # a view: drawn in
    else:
        (r0, c0), (r1, c1), k0 = p, q, None
        k1, view = None, out
    if kind == "line" and k0 != k1:  # across slices: the voxels on the segment
        n = int(np.max(np.abs(np.subtract(p, q)))) + 1
        line = np.rint(np.linspace(p, q, n)).astype(int)
        out[tuple(line.T)] = label
        return out
    work = np.ascontiguousarray(view)  # OpenCV draws into contiguous planes
    if kind == "dot":
        cv2.circle(work, (c0, r0), 2 * thickness, label, -1)
    elif kind == "box":
        cv2.rectangle(work, (c0, r0), (c1, r1), label, thickness)
    else:
        cv2.line(work, (c0, r0), (c1, r1), label, thickness)
    view[...] = work
    return out


def _cv_ready(values: np.ndarray) -> np.ndarray:
    """Contiguous values of a type OpenCV resizes (others as float32)."""
    values = np.ascontiguousarray(values)
    if values.dtype not in (np.uint8, np.uint16, np.int16, np.float32, np.float64):
        values = values.astype(np.float32)
    return values


def resample_plane(
    values: np.ndarray,
    spacing: tuple[float, float],
    size: tuple[int, int],
    *,
    box: int | None = None,
) -> np.ndarray:
    """A plane's values resampled to square physical pixels, for display.

    Parameters
    ----------
    values : (M, N[, 3]) ndarray
        The plane, in its units.
    spacing : (float, float)
        mm per row and per column.
    size : (width, height)
        The encoded size in pixels, on the square-pixel grid.
    box : int, optional
        For square pixels already: fit this display box instead (area
        averaging, never upscaled; see :func:`fit`).

    Returns
    -------
    ndarray
        Area averaging where it shrinks, linear where it enlarges; square
        pixels are never enlarged (the browser zooms).
    """
    dy, dx = spacing
    if dy == dx:  # square pixels already: area-average down, never up
        return fit(_cv_ready(values), box if box is not None else size)
    if tuple(size) == values.shape[1::-1]:
        return values
    shrinking = size[0] < values.shape[1] or size[1] < values.shape[0]
    interp = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(_cv_ready(values), tuple(size), interpolation=interp)


def resample_labels(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Labels resampled to ``shape`` (rows, cols), nearest neighbour.

    Each output pixel takes the label at its centre.

    Parameters
    ----------
    labels : (M, N[, ...]) ndarray
        Labels of a plane; trailing axes (colour) are kept.
    shape : (int, int)
        ``(rows, cols)`` of the output.

    Returns
    -------
    ndarray
        Of ``shape``, the input's dtype.

    Examples
    --------
    >>> resample_labels(np.array([[1, 2]]), (2, 4))
    array([[1, 1, 2, 2],
           [1, 1, 2, 2]])
    """
    (h, w), (eh, ew) = labels.shape[:2], shape
    rows = np.minimum(((np.arange(eh) + 0.5) / eh * h).astype(int), h - 1)
    cols = np.minimum(((np.arange(ew) + 0.5) / ew * w).astype(int), w - 1)
    return labels[np.ix_(rows, cols)]


def seam_lines(seams: np.ndarray, *, width_px: int | None = None) -> np.ndarray:
    """Labels (tile + 1) on the lines where a mosaic's owning tile changes.

    Parameters
    ----------
    seams : (M, N) int ndarray
        The tile each pixel comes from, -1 where none covers it
        (:attr:`medimg_lab.composition.Stitched.seams`).
    width_px : int, optional
        Half-width of the drawn lines in pixels; default one per 300 pixels
        of the mosaic's longer side, at least 1, so that they show at any
        display size.

    Returns
    -------
    (M, N) int32 ndarray
        0 off the lines, for :func:`overlay`.
    """
    seams = np.asarray(seams)
    edge = np.zeros(seams.shape, bool)
    inner = (seams[:, 1:] != seams[:, :-1]) & (seams[:, 1:] >= 0) & (seams[:, :-1] >= 0)
    edge[:, 1:] |= inner
    inner = (seams[1:] != seams[:-1]) & (seams[1:] >= 0) & (seams[:-1] >= 0)
    edge[1:] |= inner
    width = width_px if width_px is not None else max(1, max(seams.shape) // 300)
    kernel = np.ones((2 * width + 1, 2 * width + 1), np.uint8)
    edge = cv2.dilate(edge.astype(np.uint8), kernel).astype(bool)
    return np.where(edge & (seams >= 0), seams + 1, 0).astype(np.int32)


def fit(image: np.ndarray, max_size: int | tuple[int, int]) -> np.ndarray:
    """Downscale a 2D image (grey or RGB) by area averaging to fit a box.

    Downscaling physical values before windowing is the cheap order for large
    radiographs: a 1955 x 1841 film shown at 768 pixels is windowed at a
    sixth of the cost.

    Parameters
    ----------
    image : (M, N[, 3]) ndarray
        uint8, uint16, int16 or float32 values.
    max_size : int or (width, height)
        The display box in pixels. Aspect is kept; nothing is upscaled.
    """
    box_w, box_h = (max_size, max_size) if np.isscalar(max_size) else max_size
    if box_w <= 0 or box_h <= 0:
        raise ValueError(f"max_size must be positive; got {max_size}")
    h, w = image.shape[:2]
    scale = min(box_w / w, box_h / h)
    if scale >= 1:
        return image
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if image.dtype not in (np.uint8, np.uint16, np.int16, np.float32, np.float64):
        image = image.astype(np.float32)  # OpenCV resizes these types only
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def encode_png(
    image_u8: np.ndarray,
    *,
    max_size: int | tuple[int, int] | None = None,
    compression: int = 1,
) -> bytes:
    """Encode a display image as PNG bytes, fast, for an ``ipywidgets.Image``.

    Parameters
    ----------
    image_u8 : (M, N) or (M, N, 3) uint8 ndarray
        Grey or RGB display image.
    max_size : int or (width, height), optional
        Downscale (area averaging, aspect kept) so that the image fits this
        display size in pixels. Never upscales.
    compression : int
        zlib level 0-9. Levels 0-2 keep encoding within a few milliseconds;
        3 and above cost much more for little gain.

    Returns
    -------
    bytes
        The PNG file.
    """
    img = np.asarray(image_u8)
    if img.dtype != np.uint8 or img.ndim not in (2, 3):
        raise ValueError(
            f"encode_png takes a 2D grey or (M, N, 3) RGB uint8 image; got "
            f"{img.dtype} with shape {img.shape}. Use apply_window first."
        )
    if not 0 <= int(compression) <= 9:
        raise ValueError(f"compression must be 0-9; got {compression}")
    if max_size is not None:
        img = fit(img, max_size)
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(
        ".png",
        img,
        [
            cv2.IMWRITE_PNG_COMPRESSION,
            int(compression),
            # The "up" filter with run-length coding: 2–3× faster than zlib's
            # defaults on medical slices, and smaller (measured in bench_display).
            cv2.IMWRITE_PNG_FILTER,
            cv2.IMWRITE_PNG_FILTER_UP,
            cv2.IMWRITE_PNG_STRATEGY,
            cv2.IMWRITE_PNG_STRATEGY_RLE,
        ],
    )
    if not ok:  # pragma: no cover - OpenCV fails only on invalid shapes
        raise ValueError(f"PNG encoding failed for an image of shape {img.shape}")
    return buf.tobytes()


def label_colors(n: int) -> np.ndarray:
    """``(n + 1, 3)`` uint8 RGB colours for labels 0..n (label 0 is black).

    Parameters
    ----------
    n : int
        The largest label; the palette repeats beyond its length.

    Returns
    -------
    (n + 1, 3) uint8 ndarray
    """
    reps = -(-max(n, 1) // len(_LABEL_COLORS))
    return np.vstack([[0, 0, 0], np.tile(_LABEL_COLORS, (reps, 1))[:n]]).astype(
        np.uint8
    )


def overlay(
    image_u8: np.ndarray,
    mask_or_labels: np.ndarray,
    alpha: float = 0.4,
    colors: dict[int, tuple[int, int, int]] | None = None,
) -> np.ndarray:
    """Draw a mask or label image over a display image.

    Built on the composition formula ``I = I1·M + I2·(1−M)`` with ``I1`` the
    label colours, ``I2`` the image and ``M = alpha`` inside labels, 0 outside.

    Parameters
    ----------
    image_u8 : (M, N) or (M, N, 3) uint8 ndarray
        The display image.
    mask_or_labels : (M, N) bool or integer ndarray
        A mask, or labels with 0 as background.
    alpha : float
        Opacity of the overlay in ``[0, 1]``.
    colors : dict of int to (r, g, b), optional
        Colour per label; the default palette is used for the others.

    Returns
    -------
    (M, N, 3) uint8 ndarray
    """
    img = np.asarray(image_u8)
    labels = np.asarray(mask_or_labels)
    if img.dtype != np.uint8:
        raise ValueError(f"image_u8 must be uint8; got {img.dtype}")
    if labels.shape != img.shape[:2]:
        raise ValueError(
            f"mask_or_labels must have the image's shape {img.shape[:2]}; got "
            f"{labels.shape}"
        )
    if labels.dtype.kind not in "biu":
        raise ValueError(
            f"mask_or_labels must be boolean or integer labels; got {labels.dtype}"
        )
    if not 0 <= float(alpha) <= 1:
        raise ValueError(f"alpha must lie in [0, 1]; got {alpha}")
    rgb = img if img.ndim == 3 else cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    labels = labels.astype(np.int64, copy=False)
    if labels.min(initial=0) < 0:
        raise ValueError("labels must be >= 0 (0 is background)")
    n = int(labels.max(initial=0))
    palette = label_colors(n)
    for label, color in (colors or {}).items():
        if 0 < int(label) <= n:
            palette[int(label)] = color
    inside = labels > 0
    out = rgb.copy()
    # The formula with M = alpha, evaluated where the mask is not zero (elsewhere
    # I = I2), in float32 and rounded as composition.blend does for uint8. It is
    # written here rather than imported: the stages (composition) use display,
    # never the other way round.
    m = np.float32(alpha)
    mixed = palette[labels[inside]].astype(np.float32) * m + rgb[inside] * (1 - m)
    out[inside] = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
    return out


def overlay_table(
    labels: np.ndarray, alpha: float
) -> tuple[np.ndarray, np.ndarray] | None:
    """:func:`overlay` as lookup tables, for a page that draws it itself.

    The overlay of a grey pixel ``g`` under label ``l`` is
    ``table[index[l] - 1, g]`` (``index[l] == 0``: no overlay), bit for bit
    what :func:`overlay` computes, since :func:`overlay` fills the table in.

    Parameters
    ----------
    labels : (M, N) int ndarray
        Labels, 0 = background.
    alpha : float
        Opacity in ``[0, 1]``.

    Returns
    -------
    (index, table) or None
        ``index`` : ``(M, N)`` uint8, the colour of each pixel (0 for none);
        ``table`` : ``(K, 256, 3)`` uint8, the RGB of every (colour, grey
        level). None when no pixel is labelled.

    Examples
    --------
    >>> index, table = overlay_table(np.array([[0, 1], [2, 1]]), 0.5)
    >>> index.tolist(), table.shape
    ([[0, 2], [1, 2]], (2, 256, 3))
    """
    labels = np.asarray(labels).astype(np.int64, copy=False)
    n = int(labels.max(initial=0))
    if n == 0:
        return None
    colours, index = np.unique(label_colors(n)[1:], axis=0, return_inverse=True)
    # colour index per label: 0 for background, 1.. for the colours
    lut = np.concatenate([[0], index.reshape(-1) + 1]).astype(np.uint8)
    k = len(colours)
    grey = np.tile(np.arange(256, dtype=np.uint8), (k, 1))
    rows = np.repeat(np.arange(1, k + 1), 256).reshape(k, 256)
    table = overlay(
        grey,
        rows,
        alpha,
        colors={i + 1: tuple(int(v) for v in c) for i, c in enumerate(colours)},
    )
    return lut[labels], table


def probability_image(
    probability: np.ndarray,
    *,
    background: np.ndarray | None = None,
    color: tuple[int, int, int] = (20, 40, 110),
) -> np.ndarray:
    """A probability map as RGB grey levels, 0 black and 1 white.

    Parameters
    ----------
    probability : (M, N) float ndarray
        Values in ``[0, 1]`` (clipped).
    background : (M, N) bool ndarray, optional
        Pixels drawn in ``color`` instead (those no class claims).
    color : (int, int, int)
        RGB of the background.

    Returns
    -------
    (M, N, 3) uint8 ndarray

    Examples
    --------
    >>> probability_image(np.array([[0.0, 0.5, 1.0]]))[0, :, 0]
    array([  0, 128, 255], dtype=uint8)
    """
    p = np.clip(np.asarray(probability, dtype=np.float64), 0, 1)
    grey = (p * 255 + 0.5).astype(np.uint8)
    shown = np.repeat(grey[..., None], 3, axis=-1)
    if background is not None:
        shown[np.asarray(background, bool)] = color
    return shown


def histogram_image(
    values: np.ndarray,
    value_range: tuple[float, float],
    *,
    bins: int = 128,
    size: tuple[int, int] = (256, 96),
    log: bool = True,
) -> np.ndarray:
    """A histogram drawn as a small grey image, for a live readout.

    Parameters
    ----------
    values : ndarray
        Any shape; NaN values are ignored.
    value_range : (float, float)
        The range the bins span, in the values' units; values outside are
        counted in the end bins.
    bins : int
        Number of bars.
    size : (width, height)
        Image size in pixels.
    log : bool
        Bar heights on a log scale, so that small populations stay visible
        next to a large background.

    Returns
    -------
    (height, width) uint8 ndarray
        Light bars on a dark background.
    """
    lo, hi = (float(v) for v in value_range)
    if not hi > lo:
        raise ValueError(
            f"value_range must be (low, high) with high > low; got {value_range}"
        )
    flat = np.asarray(values, dtype=np.float64).ravel()
    flat = np.clip(flat[np.isfinite(flat)], lo, hi)
    counts, _ = np.histogram(flat, bins=bins, range=(lo, hi))
    heights = np.log1p(counts) if log else counts.astype(float)
    width, height = size
    top = heights.max() or 1.0
    bars = np.rint(heights / top * height).astype(int)
    column = np.minimum((np.arange(width) * bins) // width, bins - 1)
    rows = np.arange(height)[:, np.newaxis]
    image = np.where(rows >= height - bars[column][np.newaxis, :], 220, 30)
    return image.astype(np.uint8)
