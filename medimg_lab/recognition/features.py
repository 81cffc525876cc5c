"""Stage 3, recognition: named feature vectors of a stack of patches.

A patch ``x`` is described by a vector of features, the ``x`` of
``P(C_k|x)``. Every function takes a stack of patches ``(n, h, w)`` with
values in their units (HU for CT) and returns ``(features, names)``: a
``(n, m)`` float32 array and the ``m`` column names, unique across kinds.

==============  ===============================================================
``intensity``   mean, SD, percentiles, skewness and excess kurtosis (units of
                the image; skewness and kurtosis unitless)
``histogram``   fraction of the pixels in each of ``bins`` equal bins over
                ``value_range``
``glcm``        Haralick properties of the grey-level co-occurrence matrix
                of the patch quantised to ``levels`` over ``value_range``
``lbp``         histogram of uniform local binary patterns (``P=8``, ``R=1``)
``hog``         histogram of oriented gradients
``shape``       area (mm²), perimeter (mm), eccentricity and solidity of a
                mask per patch
==============  ===============================================================

:func:`extract` concatenates several kinds.

References
----------
Haralick R. M., Shanmugam K., Dinstein I. Textural features for image
classification. IEEE Trans Syst Man Cybern 1973. doi:10.1109/TSMC.1973.4309314

Ojala T., Pietikäinen M., Mäenpää T. Multiresolution gray-scale and rotation
invariant texture classification with local binary patterns. IEEE TPAMI 2002.
doi:10.1109/TPAMI.2002.1017623

Dalal N., Triggs B. Histograms of oriented gradients for human detection.
CVPR 2005. doi:10.1109/CVPR.2005.177
"""

from __future__ import annotations

import warnings
from typing import Annotated

import numpy as np

from .._checks import Spacing, check_spacing
from ..params import Param, declared

__all__ = [
    "GLCM_PROPERTIES",
    "KINDS",
    "extract",
    "glcm_features",
    "histogram_features",
    "hog_features",
    "intensity_features",
    "lbp_features",
    "shape_features",
]

#: The kinds of features :func:`extract` knows, in their default order.
KINDS = ("intensity", "histogram", "glcm", "lbp", "hog", "shape")
#: Haralick properties computed by :func:`glcm_features`.
GLCM_PROPERTIES = (
    "contrast",
    "dissimilarity",
    "homogeneity",
    "ASM",
    "energy",
    "correlation",
)

Features = tuple[np.ndarray, list[str]]


def _check_patches(patches: np.ndarray, name: str = "patches") -> np.ndarray:
    patches = np.asarray(patches)
    if patches.ndim != 3 or 0 in patches.shape:
        raise ValueError(
            f"{name} must be a stack (n, h, w) of 2D patches; got shape {patches.shape}"
        )
    if patches.dtype.kind not in "uifb":
        raise ValueError(f"{name} must hold numbers; got dtype {patches.dtype}")
    if patches.dtype.kind == "f" and not np.isfinite(patches).all():
        raise ValueError(f"{name} hold NaN or infinite values; replace them first")
    return patches


def _check_range(value_range) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in value_range)
    except (TypeError, ValueError):
        raise ValueError(
            f"value_range must be (low, high) in the image's units; got {value_range!r}"
        ) from None
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise ValueError(
            f"value_range must be finite with low < high; got ({low:g}, {high:g})"
        )
    return low, high


def intensity_features(
    patches: np.ndarray,
    *,
    percentiles: tuple[float, ...] = (5, 25, 50, 75, 95),
) -> Features:
    """Intensity statistics of each patch.

    Parameters
    ----------
    patches : (n, h, w) ndarray
        Values in their units.
    percentiles : tuple of float
        Percentiles in [0, 100].

    Returns
    -------
    features : (n, 4 + len(percentiles)) float32 ndarray
        Mean and SD (image units), the percentiles (image units), skewness
        and excess kurtosis (unitless; 0 for a constant patch).
    names : list of str
        ``intensity_mean``, ``intensity_sd``, ``intensity_p05``, ...,
        ``intensity_skewness``, ``intensity_kurtosis``.
    """
    patches = _check_patches(patches)
    q = np.asarray(percentiles, float).ravel()
    if q.size == 0 or not np.all((q >= 0) & (q <= 100)):
        raise ValueError(f"percentiles must lie in [0, 100]; got {percentiles!r}")
    x = patches.reshape(len(patches), -1).astype(np.float64)
    mean = x.mean(axis=1)
    d = x - mean[:, None]
    var = (d**2).mean(axis=1)
    sd = np.sqrt(var)
    constant = var <= 1e-12 * np.maximum(mean**2, 1.0)
    safe = np.where(constant, 1.0, var)
    skew = np.where(constant, 0.0, (d**3).mean(axis=1) / safe**1.5)
    kurt = np.where(constant, 0.0, (d**4).mean(axis=1) / safe**2 - 3.0)
    pct = np.percentile(x, q, axis=1).T
    features = np.column_stack([mean, np.where(constant, 0.0, sd), pct, skew, kurt])
    names = [
        "intensity_mean",
        "intensity_sd",
        *(f"intensity_p{v:02g}" for v in q),
        "intensity_skewness",
        "intensity_kurtosis",
    ]
    return features.astype(np.float32), names


@declared
def histogram_features(
    patches: np.ndarray,
    value_range: tuple[float, float],
    *,
    bins: Annotated[int, Param(2, 256, 1, "bins", "histogram bins")] = 16,
) -> Features:
    """Fraction of each patch's pixels in equal bins over ``value_range``.

    Parameters
    ----------
    patches : (n, h, w) ndarray
        Values in their units.
    value_range : (low, high)
        The binned range, in the image's units. Pixels outside it are not
        counted, so a row sums to the fraction of pixels inside the range.
    bins : int
        Number of bins.

    Returns
    -------
    features : (n, bins) float32 ndarray
        Fractions in [0, 1].
    names : list of str
        ``histogram_<left edge>``.
    """
    patches = _check_patches(patches)
    low, high = _check_range(value_range)
    n = len(patches)
    x = patches.reshape(n, -1).astype(np.float64)
    inside = (x >= low) & (x <= high)
    idx = np.minimum(((x - low) / (high - low) * bins).astype(np.int64), bins - 1)
    offset = np.arange(n)[:, None] * bins
    counts = np.bincount((idx + offset)[inside], minlength=n * bins)
    features = counts.reshape(n, bins) / x.shape[1]
    edges = np.linspace(low, high, bins + 1)[:-1]
    return features.astype(np.float32), [f"histogram_{e:g}" for e in edges]


def _quantise(patches: np.ndarray, value_range, levels: int) -> np.ndarray:
    low, high = _check_range(value_range)
    q = np.floor((patches.astype(np.float64) - low) / (high - low) * levels)
    # A window, as on a display: values below low are level 0, above high the top.
    return np.clip(q, 0, levels - 1).astype(np.uint8)


@declared
def glcm_features(
    patches: np.ndarray,
    value_range: tuple[float, float],
    *,
    levels: Annotated[int, Param(2, 256, 1, "levels", "grey levels of the GLCM")] = 32,
    distances_px: tuple[int, ...] = (1,),
) -> Features:
    """Haralick properties of the grey-level co-occurrence matrix of each patch.

    Each patch is quantised to ``levels`` grey levels over ``value_range``
    (a window: values outside it take the end levels), and its symmetric,
    normalised co-occurrence matrix is computed for each distance at 0°,
    45°, 90° and 135°; each property of :data:`GLCM_PROPERTIES` is averaged
    over the four angles.

    Parameters
    ----------
    patches : (n, h, w) ndarray
        Values in their units.
    value_range : (low, high)
        The window quantised, in the image's units.
    levels : int
        Grey levels, 2 to 256.
    distances_px : tuple of int
        Pixel offsets, each at least 1.

    Returns
    -------
    features : (n, 6 * len(distances_px)) float32 ndarray
    names : list of str
        ``glcm_<property>_d<distance>``.
    """
    from skimage.feature import graycomatrix, graycoprops

    patches = _check_patches(patches)
    distances = [int(d) for d in distances_px]
    if not distances or min(distances) < 1:
        raise ValueError(
            f"distances_px must be one or more integers >= 1; got {distances_px!r}"
        )
    q = _quantise(patches, value_range, levels)
    angles = [0, np.pi / 4, np.pi / 2, 3 * np.pi / 4]
    features = np.empty((len(q), len(GLCM_PROPERTIES) * len(distances)))
    for i, patch in enumerate(q):
        glcm = graycomatrix(
            patch, distances, angles, levels, symmetric=True, normed=True
        )
        features[i] = np.concatenate(
            [graycoprops(glcm, p).mean(axis=1) for p in GLCM_PROPERTIES]
        )
    names = [f"glcm_{p}_d{d}" for p in GLCM_PROPERTIES for d in distances]
    return features.astype(np.float32), names


def lbp_features(patches: np.ndarray) -> Features:
    """Histogram of uniform local binary patterns, ``P = 8``, ``R = 1``.

    Each pixel compares its 8 neighbours at radius 1 pixel with itself; the
    rotation-invariant uniform codes 0–8 count the neighbours at least as
    bright in a circular run, code 9 collects the non-uniform patterns.

    Parameters
    ----------
    patches : (n, h, w) ndarray
        Values in their units (compared exactly, not rescaled).

    Returns
    -------
    features : (n, 10) float32 ndarray
        Fraction of the pixels with each code.
    names : list of str
        ``lbp_0`` ... ``lbp_9``.
    """
    from skimage.feature import local_binary_pattern

    patches = _check_patches(patches)
    P, R = 8, 1
    features = np.empty((len(patches), P + 2))
    with warnings.catch_warnings():
        # Float patches are compared as they are, which is what we want.
        warnings.filterwarnings("ignore", "Applying `local_binary_pattern`")
        for i, patch in enumerate(patches.astype(np.float64)):
            codes = local_binary_pattern(patch, P, R, method="uniform").astype(int)
            features[i] = np.bincount(codes.ravel(), minlength=P + 2) / codes.size
    return features.astype(np.float32), [f"lbp_{c}" for c in range(P + 2)]


@declared
def hog_features(
    patches: np.ndarray,
    *,
    orientations: Annotated[
        int, Param(2, 18, 1, "bins", "orientation bins of HOG")
    ] = 8,
    cell_px: Annotated[int, Param(2, 64, 1, "px", "HOG cell side")] = 8,
    block_cells: Annotated[int, Param(1, 4, 1, "cells", "HOG block side")] = 2,
) -> Features:
    """Histogram of oriented gradients of each patch (L2-Hys block norm).

    Parameters
    ----------
    patches : (n, h, w) ndarray
        Values in their units; ``h`` and ``w`` at least
        ``cell_px * block_cells``.
    orientations : int
        Orientation bins over 0–180°.
    cell_px, block_cells : int
        Cell side in pixels and block side in cells.

    Returns
    -------
    features : (n, m) float32 ndarray
        Normalised, unitless histograms.
    names : list of str
        ``hog_<index>``.
    """
    from skimage.feature import hog

    patches = _check_patches(patches)
    side = cell_px * block_cells
    if min(patches.shape[1:]) < side:
        raise ValueError(
            f"patches of shape {patches.shape[1:]} are too small for HOG with "
            f"cell_px={cell_px} and block_cells={block_cells}; need at least "
            f"{side} pixels a side"
        )
    rows = [
        hog(
            patch,
            orientations=orientations,
            pixels_per_cell=(cell_px, cell_px),
            cells_per_block=(block_cells, block_cells),
            feature_vector=True,
        )
        for patch in patches.astype(np.float64)
    ]
    features = np.asarray(rows, dtype=np.float32)
    return features, [f"hog_{i}" for i in range(features.shape[1])]


def _perimeter_mm(mask: np.ndarray, spacing: tuple[float, float]) -> float:
    from scipy import ndimage
    from skimage.measure import find_contours

    # The 0.5 contour of the mask blurred by 0.75 px follows the boundary
    # rather than the pixel staircase (within 2 % for discs and squares).
    blurred = ndimage.gaussian_filter(np.pad(mask.astype(np.float64), 3), 0.75)
    total = 0.0
    for contour in find_contours(blurred, 0.5):
        steps = np.diff(contour, axis=0) * np.asarray(spacing)
        total += float(np.hypot(steps[:, 0], steps[:, 1]).sum())
    return total


def shape_features(masks: np.ndarray, *, spacing: Spacing = None) -> Features:
    """Area, perimeter, eccentricity and solidity of one mask per patch.

    All foreground pixels of a patch form one region.

    Parameters
    ----------
    masks : (n, h, w) ndarray
        Non-zero inside; each mask must have at least one pixel.
    spacing : (row, column) tuple of float, optional
        Pixel size in mm; ``None`` means 1 mm.

    Returns
    -------
    features : (n, 4) float32 ndarray
        Area in mm² (pixel count times pixel area); perimeter in mm (length
        of the sub-pixel boundary contour, of the mask smoothed by 0.75 px so
        as not to count the pixel staircase); eccentricity in [0, 1) of the
        ellipse with the region's second moments in mm (0 for a disc);
        solidity in (0, 1], area over convex-hull area.
    names : list of str
        ``shape_area_mm2``, ``shape_perimeter_mm``, ``shape_eccentricity``,
        ``shape_solidity``.
    """
    from skimage.measure import regionprops

    masks = _check_patches(masks, "masks").astype(bool)
    dy, dx = check_spacing(masks.shape[1:], spacing)
    counts = masks.sum(axis=(1, 2))
    if np.any(counts == 0):
        empty = np.flatnonzero(counts == 0)[:5].tolist()
        raise ValueError(f"masks must not be empty; masks {empty} have no pixel")
    rows, cols = np.mgrid[: masks.shape[1], : masks.shape[2]]
    y = rows * dy
    x = cols * dx
    w = masks / counts[:, None, None]
    my = (w * y).sum(axis=(1, 2))
    mx = (w * x).sum(axis=(1, 2))
    # Second moments in mm², with each pixel's own extent (Δ²/12).
    syy = (w * y**2).sum(axis=(1, 2)) - my**2 + dy**2 / 12
    sxx = (w * x**2).sum(axis=(1, 2)) - mx**2 + dx**2 / 12
    sxy = (w * x * y).sum(axis=(1, 2)) - mx * my
    half_trace = (syy + sxx) / 2
    root = np.sqrt(((syy - sxx) / 2) ** 2 + sxy**2)
    ecc = np.sqrt(np.clip(1 - (half_trace - root) / (half_trace + root), 0, 1))
    area = counts * dy * dx
    perimeter = np.array([_perimeter_mm(m, (dy, dx)) for m in masks])
    solidity = np.array([regionprops(m.astype(np.uint8))[0].solidity for m in masks])
    features = np.column_stack([area, perimeter, ecc, solidity])
    names = [
        "shape_area_mm2",
        "shape_perimeter_mm",
        "shape_eccentricity",
        "shape_solidity",
    ]
    return features.astype(np.float32), names


def extract(
    patches: np.ndarray,
    *,
    kinds: tuple[str, ...] = ("intensity", "histogram", "glcm", "lbp"),
    value_range: tuple[float, float] | None = None,
    masks: np.ndarray | None = None,
    spacing: Spacing = None,
) -> Features:
    """Several kinds of features of each patch, side by side.

    Parameters
    ----------
    patches : (n, h, w) ndarray
        Values in their units.
    kinds : tuple of str
        Any of :data:`KINDS`, each at most once, with their default options.
    value_range : (low, high), optional
        Range of ``histogram`` and ``glcm``, in the image's units; required
        for them. It is fixed rather than taken from the data so that
        features of training and new patches are comparable.
    masks : (n, h, w) ndarray, optional
        One mask per patch; required for ``shape``.
    spacing : (row, column) tuple of float, optional
        Pixel size in mm for ``shape``; ``None`` means 1 mm.

    Returns
    -------
    features : (n, m) float32 ndarray
    names : list of str
        Column names, unique.

    Examples
    --------
    >>> patches = np.zeros((3, 16, 16), np.int16)
    >>> X, names = extract(patches, kinds=("intensity",))
    >>> X.shape, names[:2]
    ((3, 9), ['intensity_mean', 'intensity_sd'])
    """
    patches = _check_patches(patches)
    kinds = tuple(kinds)
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds or len(set(kinds)) != len(kinds):
        raise ValueError(
            f"kinds must be distinct names among {', '.join(KINDS)}; got {kinds!r}"
        )
    if value_range is None and {"histogram", "glcm"} & set(kinds):
        raise ValueError(
            "value_range=(low, high) in the image's units is required for the "
            "histogram and glcm features"
        )
    if "shape" in kinds:
        if masks is None:
            raise ValueError("masks (n, h, w) are required for the shape features")
        if np.shape(masks) != patches.shape:
            raise ValueError(
                f"masks must have the patches' shape {patches.shape}; got "
                f"{np.shape(masks)}"
            )
    compute = {
        "intensity": lambda: intensity_features(patches),
        "histogram": lambda: histogram_features(patches, value_range),
        "glcm": lambda: glcm_features(patches, value_range),
        "lbp": lambda: lbp_features(patches),
        "hog": lambda: hog_features(patches),
        "shape": lambda: shape_features(masks, spacing=spacing),
    }
    parts = [compute[k]() for k in kinds]
    features = np.concatenate([f for f, _ in parts], axis=1)
    names = [name for _, ns in parts for name in ns]
    return features, names
