"""Region growing from seeds, watershed from markers, Chan–Vese contours."""

from __future__ import annotations

from typing import Annotated

import numpy as np

from ..display import auto_window
from ..params import Connectivity, Param, operation
from ._common import Spacing, check_image, check_seeds, check_spacing

__all__ = ["chan_vese", "marker_points", "region_grow", "watershed"]


#: Seeds in separate regions flooded one by one; beyond this many, one
#: labelling of every component (about 5 floods' cost) is cheaper.
_MAX_FLOODS = 4


def _within(image: np.ndarray, values, center, half_width) -> np.ndarray:
    """``|values - center| <= half_width``, ``values`` the float32 image.

    For images of at most 16-bit whole numbers the test is made
    once per possible value and applied as two comparisons in the image's own
    dtype: the same mask as the float expression (which is monotonic in the
    value, so it holds on an interval of values), without a float copy of a
    volume. ``values`` is a callable giving the float32 image otherwise.
    """
    if image.dtype.kind in "iu" and image.dtype.itemsize <= 2:
        info = np.iinfo(image.dtype)
        every = np.arange(info.min, info.max + 1)
        ok = np.flatnonzero(np.abs(every.astype(np.float32) - center) <= half_width)
        if ok.size == 0:
            return np.zeros(image.shape, bool)
        lo, hi = (image.dtype.type(every[k]) for k in (ok[0], ok[-1]))
        return (image >= lo) & (image <= hi)
    return np.abs(values() - center) <= half_width


def _connected_to(candidate: np.ndarray, seeds, connectivity: int) -> np.ndarray:
    """The pixels of ``candidate`` connected to a seed, flooded from the seeds.

    Only the seeds' regions are visited (as ``skimage.segmentation.flood``),
    not every component of ``candidate``; seeds outside ``candidate`` add
    nothing.
    """
    from skimage.segmentation import flood

    region = None
    pending = [s for s in seeds if candidate[s]]
    floods = 0
    while pending:
        if floods == _MAX_FLOODS:
            from scipy import ndimage

            structure = ndimage.generate_binary_structure(candidate.ndim, connectivity)
            labels, _ = ndimage.label(candidate, structure)
            region |= np.isin(labels, [int(labels[s]) for s in pending])
            break
        grown = flood(candidate, pending[0], connectivity=connectivity)
        region = grown if region is None else region | grown
        floods += 1
        pending = [s for s in pending[1:] if not region[s]]
    return region if region is not None else np.zeros(candidate.shape, bool)


@operation("segmentation", "Region growing", seeded="seeds")
def region_grow(
    image: np.ndarray,
    seeds,
    *,
    method: Annotated[
        str,
        Param(
            choices=("tolerance", "confidence"),
            doc="fixed tolerance around the seeds' mean, or an adaptive interval",
        ),
    ] = "tolerance",
    tolerance: Annotated[
        float | None,
        Param(
            unit="image units",
            scale="span",
            doc="largest difference from the seeds' mean; default 10% of the "
            "robust value range",
            min=0.0,
        ),
    ] = None,
    multiplier: Annotated[
        float, Param(0.5, 6.0, 0.1, "SD", "confidence interval half-width in SDs")
    ] = 2.5,
    iterations: Annotated[int, Param(1, 20, 1, "", "confidence re-estimations")] = 4,
    connectivity: Connectivity = 1,
) -> np.ndarray:
    """Grow a region from seed points, in 2D or 3D.

    ``tolerance``: the pixels connected to a seed whose value lies within
    ``tolerance`` of the seeds' mean. ``confidence`` (as ITK's
    ConfidenceConnected): start from the seeds' 3×3(×3) neighbourhoods, keep
    the connected pixels within ``mean ± multiplier · SD`` of the region, and
    re-estimate mean and SD from the region ``iterations`` times.

    Parameters
    ----------
    image : ([S,] M, N) ndarray
    seeds : sequence of (row, col) or (slice, row, col)
        One or more seed points.
    method : {"tolerance", "confidence"}
        A fixed tolerance around the seeds' mean, or the adaptive confidence
        interval.
    tolerance : float, optional
        Largest difference from the seeds' mean, in the image's units, >= 0;
        default 10 % of the robust value range. For ``"tolerance"``.
    multiplier : float
        Half-width of the confidence interval in SDs, in [0.5, 6]. For
        ``"confidence"``.
    iterations : int
        Re-estimations of the mean and SD, in [1, 20]. For ``"confidence"``.
    connectivity : int
        Neighbours joined, in [1, 3]: 1 faces, 2 edges, 3 corners (at most
        the image's dimension).

    Returns
    -------
    ([S,] M, N) bool ndarray
    """
    image = check_image(image)
    seeds = check_seeds(seeds, image.shape)
    if connectivity > image.ndim:  # 1..3 is declared; this depends on the image
        raise ValueError(
            f"region_grow: connectivity must be 1..{image.ndim} for a {image.ndim}D "
            f"image; got {connectivity}"
        )
    image = np.asarray(image)
    float32 = None

    def values() -> np.ndarray:  # the float32 image, made once when needed
        nonlocal float32
        if float32 is None:
            float32 = image.astype(np.float32, copy=False)
        return float32

    seed_values = np.array([np.float32(image[s]) for s in seeds], dtype=np.float64)
    if method == "tolerance":
        if tolerance is None:
            tolerance = 0.1 * auto_window(image)[1]
        candidate = _within(image, values, seed_values.mean(), tolerance)
        return _connected_to(candidate, seeds, connectivity)
    region = np.zeros(image.shape, bool)
    for s in seeds:
        region[tuple(slice(max(v - 1, 0), v + 2) for v in s)] = True
    for _ in range(int(iterations)):
        inside = image[region].astype(np.float32, copy=False)
        mean, sd = float(inside.mean()), float(inside.std())
        sd = max(sd, 1e-6 * max(1.0, abs(mean)))
        candidate = _within(image, values, mean, multiplier * sd)
        grown = _connected_to(candidate, seeds, connectivity)
        if np.array_equal(grown, region) or not grown.any():
            break
        region = grown
    return region


def marker_points(markers: np.ndarray) -> list[list[int]]:
    """The marked pixels of ``markers`` as data: ``[[index..., label], ...]``.

    The form a recipe holds a watershed's markers in (JSON, exact);
    :func:`watershed` takes it as it takes the array.

    Parameters
    ----------
    markers : ([S,] M, N) int ndarray
        Labels > 0 where a region surely lies, 0 elsewhere.

    Returns
    -------
    list of list of int
        One ``[index..., label]`` per marked pixel, in C order.

    Examples
    --------
    >>> marker_points(np.array([[0, 2], [1, 0]]))
    [[0, 1, 2], [1, 0, 1]]
    """
    markers = np.asarray(markers)
    if markers.dtype.kind not in "iub":
        raise ValueError(f"markers must be integer labels; got dtype {markers.dtype}")
    where = np.nonzero(markers)
    points = np.column_stack([*where, markers[where]]).astype(np.int64)
    return points.tolist()


def _marker_array(markers, shape: tuple[int, ...]) -> np.ndarray:
    """Markers as an array of ``shape``, from an array or from marker points."""
    if isinstance(markers, np.ndarray) and markers.shape == shape:
        return markers
    if isinstance(markers, list | tuple) and markers and np.ndim(markers) == 2:
        points = np.asarray(markers)
        if (
            points.dtype.kind not in "iu"
            or points.shape[1] != len(shape) + 1
            or (points[:, :-1] < 0).any()
            or (points[:, :-1] >= np.asarray(shape)).any()
            or (points[:, -1] < 1).any()
        ):
            raise ValueError(
                f"markers as points must be [index..., label] rows of {len(shape) + 1} "
                f"whole numbers, indices inside the image of shape {shape} and "
                "labels from 1"
            )
        out = np.zeros(shape, np.int32)
        out[tuple(points[:, :-1].T)] = points[:, -1]
        return out
    return np.asarray(markers)


@operation("segmentation", "Watershed", keeps_units=False, seeded="markers")
def watershed(
    image: np.ndarray,
    markers: np.ndarray,
    *,
    compactness: Annotated[
        float, Param(0.0, 10.0, 0.01, "", "0: classic; larger: rounder regions")
    ] = 0.0,
    spacing: Spacing = None,
) -> np.ndarray:
    """Watershed of the gradient magnitude, flooded from markers.

    Parameters
    ----------
    image : ([S,] M, N) ndarray
    markers : ([S,] M, N) int ndarray or list of [[slice,] row, col, label]
        Labels 1..K where a region surely lies, 0 elsewhere; or the same as
        data, one ``[index..., label]`` per marked pixel
        (:func:`marker_points`), as a recipe holds them.
    compactness : float
        In [0, 10]: 0 is the classic watershed; larger gives rounder regions.
    spacing : tuple of float, optional
        mm per axis; default 1 mm. The gradient's smoothing is isotropic in
        mm.

    Returns
    -------
    ([S,] M, N) int32 ndarray
        Labels 1..K covering the image.

    References
    ----------
    Beucher S, Meyer F. The morphological approach to segmentation: the
    watershed transformation. 1993. doi:10.1201/9781482277234-12
    """
    from skimage.segmentation import watershed as skimage_watershed

    image = check_image(image)
    markers = _marker_array(markers, image.shape)
    if markers.shape != image.shape or markers.dtype.kind not in "iub":
        raise ValueError(
            f"markers must be integer labels of the image's shape {image.shape}; "
            f"got {markers.dtype} {markers.shape}"
        )
    if not markers.any():
        raise ValueError("markers must hold at least one label > 0")
    from scipy import ndimage

    sp = check_spacing(image.shape, spacing)
    gradient = ndimage.gaussian_gradient_magnitude(
        image.astype(np.float32), sigma=[1.0 / s * min(sp) for s in sp]
    )
    return skimage_watershed(
        gradient, markers.astype(np.int32), compactness=compactness
    ).astype(np.int32)


@operation("segmentation", "Chan–Vese contour")
def chan_vese(
    image: np.ndarray,
    *,
    iterations: Annotated[int, Param(1, 500, 1, "", "evolution steps")] = 100,
    smoothing: Annotated[int, Param(0, 4, 1, "", "curvature smoothing per step")] = 1,
    lambda1: Annotated[float, Param(0.1, 10.0, 0.1, "", "weight of the inside")] = 1.0,
    lambda2: Annotated[float, Param(0.1, 10.0, 0.1, "", "weight of the outside")] = 1.0,
    window: tuple[float, float] | None = None,
    init: np.ndarray | None = None,
) -> np.ndarray:
    """Active contour without edges (Chan–Vese), morphological form, 2D or 3D.

    The window (default the robust percentile range) is mapped to [0, 1];
    the contour separates two regions of near-constant intensity.

    Parameters
    ----------
    image : ([S,] M, N) ndarray
    iterations : int
        Evolution steps, in [1, 500].
    smoothing : int
        Curvature smoothing passes per step, in [0, 4].
    lambda1, lambda2 : float
        Weights of the inside and the outside region, each in [0.1, 10].
    window : (center, width), optional
        Value range mapped to [0, 1], in the image's units; default the
        robust percentile range.
    init : ([S,] M, N) bool ndarray, optional
        The starting region; default a checkerboard.

    Returns
    -------
    ([S,] M, N) bool ndarray
        The region whose mean is brighter.

    References
    ----------
    Chan TF, Vese LA. Active contours without edges. IEEE TIP 2001.
    doi:10.1109/83.902291. Márquez-Neila P et al. A morphological approach to
    curvature-based evolution of curves and surfaces. IEEE TPAMI 2014.
    doi:10.1109/TPAMI.2013.106
    """
    from skimage.segmentation import morphological_chan_vese

    image = check_image(image)
    center, width = window if window is not None else auto_window(image)
    unit = np.clip((image.astype(np.float32) - (center - width / 2)) / width, 0, 1)
    start = "checkerboard" if init is None else np.asarray(init, bool)
    level = morphological_chan_vese(
        unit,
        num_iter=int(iterations),
        init_level_set=start,
        smoothing=int(smoothing),
        lambda1=lambda1,
        lambda2=lambda2,
    ).astype(bool)
    inside, outside = unit[level], unit[~level]
    if inside.size and outside.size and inside.mean() < outside.mean():
        level = ~level
    return level
