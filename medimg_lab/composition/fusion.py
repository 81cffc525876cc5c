r"""Composition: combining two aligned images into one picture.

Everything here is the stage's formula, the mask composite

.. math:: I(x, y) = I_1(x, y) \cdot M(x, y) + I_2(x, y) \cdot (1 - M(x, y))

with a mask :math:`M` in ``[0, 1]`` that differs from function to function:

- :func:`blend`: any mask, binary or soft; :func:`feather` softens a binary
  mask's edge over a width in mm.
- :func:`fuse`: one weight everywhere, ``w·I1 + (1−w)·I2`` (OpenCV's
  ``addWeighted`` with ``β = 1 − α``).
- :func:`color_fuse`: a colour-mapped layer over a grey base, opaque where
  the layer is above a threshold; :func:`legend` draws its colour scale.
- :func:`multiband_blend`: the formula per band of a Laplacian pyramid, so
  that coarse structure crosses a seam smoothly and fine detail stays sharp.
- :func:`checkerboard` and :func:`swipe`: masks of squares or of one cut, to
  compare two images; :func:`difference` shows ``I1 − I2``, in the window
  :func:`difference_window` chooses from the pair and
  :func:`difference_caption` states.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np

from .._checks import Spacing, check_spacing
from ..display import apply_window, auto_window
from ..params import Param, declared

__all__ = [
    "COLORMAPS",
    "blend",
    "checkerboard",
    "color_fuse",
    "difference",
    "difference_caption",
    "difference_window",
    "feather",
    "fuse",
    "legend",
    "multiband_blend",
    "pyramid_composite",
    "swipe",
]

#: Colour maps of :func:`color_fuse` (OpenCV's), by name.
COLORMAPS = ("hot", "jet", "viridis", "inferno", "magma", "plasma", "turbo", "bone")

Weight = Annotated[float, Param(0.0, 1.0, 0.01, "", "weight of the first image")]
Colormap = Annotated[str, Param(choices=COLORMAPS, doc="colour map of the layer")]
WidthMm = Annotated[float, Param(0.0, 100.0, 0.5, "mm", "width of the soft edge")]
Squares = Annotated[int, Param(2, 64, 1, "", "squares along the longer side")]
Position = Annotated[
    float, Param(0.0, 1.0, 0.01, "", "where the cut lies, as a fraction")
]
Opacity = Annotated[float, Param(0.0, 1.0, 0.01, "", "layer opacity")]

# The declared options of every function here (``squares``, ``weight``, ...)
# are checked by @declared on each call, with the recipe's message; the
# checks written in the bodies are those a declaration cannot say (shapes,
# values of arrays, relations between arguments).


def blend(i1: np.ndarray, i2: np.ndarray, mask: np.ndarray | float) -> np.ndarray:
    """Composite two images through a mask: ``I = I1·M + I2·(1−M)``.

    Parameters
    ----------
    i1, i2 : ([S,] M, N[, 3]) ndarray
        The images; ``i1`` shows where the mask is 1, ``i2`` where it is 0.
        Their shapes must match.
    mask : ([S,] M, N) ndarray or float
        Weights in ``[0, 1]``: boolean, or float for soft (feathered) edges.
        A grey-level mask is applied to every colour channel of RGB images.

    Returns
    -------
    ndarray
        The composite, with the shape of ``i1``. Integer inputs of one dtype
        give that dtype back, rounded; otherwise the result is floating point
        (float32 when both inputs are float32).

    Examples
    --------
    >>> blend(np.full(3, 10.0), np.zeros(3), np.array([1.0, 0.5, 0.0]))
    array([10.,  5.,  0.])
    """
    i1, i2 = _same_shape(i1, i2)
    m = np.asarray(mask)
    if m.dtype == bool:
        m = m.astype(np.float32)
    if m.ndim and m.shape != i1.shape:
        if m.shape == i1.shape[:-1] and i1.shape[-1] == 3:
            m = m[..., np.newaxis]
        else:
            raise ValueError(
                f"mask must be a number or have the image's shape {i1.shape} "
                f"(or {i1.shape[:-1]} for RGB); got {m.shape}"
            )
    if not np.issubdtype(m.dtype, np.number) or (
        m.size and (np.nanmin(m) < 0 or np.nanmax(m) > 1 or np.isnan(m).any())
    ):
        raise ValueError("mask values must lie in [0, 1] (0 keeps i2, 1 keeps i1)")
    work = np.result_type(i1.dtype, i2.dtype, np.float32)
    m = m.astype(work, copy=False)
    out = i1.astype(work) * m + i2.astype(work) * (1 - m)
    if i1.dtype == i2.dtype and np.issubdtype(i1.dtype, np.integer):
        info = np.iinfo(i1.dtype)
        return np.clip(np.rint(out), info.min, info.max).astype(i1.dtype)
    return out


def _same_shape(i1, i2) -> tuple[np.ndarray, np.ndarray]:
    i1, i2 = np.asarray(i1), np.asarray(i2)
    if i1.shape != i2.shape:
        raise ValueError(
            f"i1 and i2 must have the same shape; got {i1.shape} and {i2.shape}. "
            "Register or resample one onto the other first"
        )
    for name, image in (("i1", i1), ("i2", i2)):
        if image.dtype.kind not in "uifb":
            raise ValueError(f"{name} must be an array of numbers; got {image.dtype}")
    return i1, i2


@declared
def feather(
    mask: np.ndarray,
    *,
    width_mm: WidthMm = 2.0,
    spacing: Spacing = None,
) -> np.ndarray:
    """A binary mask with a soft edge: a ramp from 0 to 1 across ``width_mm``.

    ``M = clip(1/2 + d / width, 0, 1)`` with ``d`` the signed distance in mm
    to the mask's edge (positive inside), so the ramp is centred on the edge
    and the mask keeps its area.

    Parameters
    ----------
    mask : ([S,] M, N) array_like of bool
        The binary mask.
    width_mm : float
        Width of the ramp in mm; 0 gives the mask back as 0/1 floats.
    spacing : tuple of float, optional
        mm per axis; ``None`` means 1 mm.

    Returns
    -------
    ([S,] M, N) float32 ndarray
        Values in [0, 1].

    Examples
    --------
    >>> feather(np.r_[0, 0, 0, 1, 1, 1].astype(bool), width_mm=2).round(2)
    array([0.  , 0.  , 0.25, 0.75, 1.  , 1.  ], dtype=float32)
    """
    from scipy.ndimage import distance_transform_edt

    mask = np.asarray(mask)
    if mask.dtype != bool:
        if mask.dtype.kind not in "uif" or not np.isin(mask, (0, 1)).all():
            raise ValueError("mask must be binary (bool or 0/1)")
        mask = mask.astype(bool)
    step = check_spacing(mask.shape, spacing)
    if width_mm == 0 or mask.all() or not mask.any():
        return mask.astype(np.float32)
    # The distance of a pixel centre to the edge, half a pixel either side.
    inside = distance_transform_edt(mask, sampling=step)
    outside = distance_transform_edt(~mask, sampling=step)
    half = 0.5 * min(step)
    signed = np.where(mask, inside - half, half - outside)
    return np.clip(0.5 + signed / width_mm, 0, 1).astype(np.float32)


@declared
def fuse(i1: np.ndarray, i2: np.ndarray, weight: Weight = 0.5) -> np.ndarray:
    """Weighted fusion ``w·I1 + (1−w)·I2``: :func:`blend` with one weight.

    Parameters
    ----------
    i1, i2 : ndarray
        Images of the same shape, in comparable units.
    weight : float
        ``w`` in [0, 1]: 1 shows ``i1`` only, 0 ``i2`` only.

    Returns
    -------
    ndarray
        As :func:`blend`: integers of one dtype stay that dtype.

    Examples
    --------
    >>> fuse(np.array([0.0, 10.0]), np.array([10.0, 10.0]), 0.25)
    array([ 7.5, 10. ])
    """
    return blend(i1, i2, weight)


def difference(i1: np.ndarray, i2: np.ndarray, *, absolute: bool = False) -> np.ndarray:
    """``I1 − I2`` in the images' units (float32), or its magnitude.

    Aligned, identical structures cancel; what remains is misalignment or
    change.

    Parameters
    ----------
    i1, i2 : ([S,] M, N) ndarray
        The two images of one shape, in one unit (HU for CT).
    absolute : bool
        Give ``|I1 − I2|`` instead.

    Returns
    -------
    ([S,] M, N) float32 ndarray
        In the images' unit.
    """
    i1, i2 = _same_shape(i1, i2)
    out = i1.astype(np.float32) - i2.astype(np.float32)
    return np.abs(out) if absolute else out


Misregistration = Annotated[
    float,
    Param(
        0.1,
        20.0,
        0.1,
        "mm",
        "misregistration that the difference window's edge shows",
    ),
]


@declared
def difference_window(
    i1: np.ndarray,
    i2: np.ndarray,
    *,
    spacing: Spacing = None,
    misregistration_mm: Misregistration = 1.0,
) -> tuple[float, float]:
    """The display window ``(0, width)`` of ``I1 − I2``, chosen from the pair.

    The window is symmetric about 0 (mid-grey: equal) and in the images'
    unit. Its half-width ``h`` is what a misregistration of
    ``misregistration_mm`` does to the strong edges: for each image ``I``,
    the 99th percentile of ``|I(x) − I(x + d)|`` over every pixel, for a
    shift ``d`` of that many mm along the rows and, apart, along the
    columns (linear between whole pixels); ``h`` is the larger of the two
    images' figures, rounded up to two significant digits.

    So a misregistration of ``misregistration_mm`` saturates the strong
    edges (a skull's rim goes white on one side and black on the other),
    while the residue of interpolation at a perfect registration, a small
    share of an edge's contrast, stays a faint grey. A window set from a
    display window instead (brain, 0 ± 50 HU) shows that residue along
    every bone edge as a rim that reads as misregistration.

    Parameters
    ----------
    i1, i2 : (M, N) ndarray
        The two images of one shape, in one unit (HU for CT).
    spacing : (float, float), optional
        mm per pixel along rows and columns; default 1 mm.
    misregistration_mm : float
        The misregistration shown at the window's edge, 0.1 to 20 mm.

    Returns
    -------
    (center, width) : (float, float)
        ``(0.0, 2 h)``, for :func:`medimg_lab.display.apply_window`; ``h``
        is 1 when both images are flat.

    Examples
    --------
    >>> step = np.zeros((8, 8), np.float32); step[:, 4:] = 1000.0
    >>> difference_window(step, step)
    (0.0, 2000.0)
    """
    i1, i2 = _same_shape(i1, i2)
    if i1.ndim != 2:
        raise ValueError(
            f"i1 and i2 must be 2D images (M, N); got shape {i1.shape}; "
            "take one slice of a volume"
        )
    spacing = check_spacing(i1.shape, spacing)
    for name, image in (("i1", i1), ("i2", i2)):
        if not np.isfinite(image).all():
            raise ValueError(
                f"{name} must be finite; it holds NaN or infinite values "
                "(set them to a number first)"
            )
    half = max(
        _edge_difference(image.astype(np.float32), spacing, misregistration_mm)
        for image in (i1, i2)
    )
    if not half > 0:
        half = 1.0
    return 0.0, 2 * _round_up(half)


def _edge_difference(image: np.ndarray, spacing, shift_mm: float) -> float:
    """99th percentile of ``|I(x) − I(x + d)|``, ``d`` mm along each axis."""
    parts = []
    for axis, step in enumerate(spacing):
        n = image.shape[axis]
        shift = shift_mm / step
        whole = int(np.floor(shift))
        frac = np.float32(shift - whole)
        if whole + 1 >= n:  # the shift leaves the image: not this axis
            continue
        a = np.moveaxis(image, axis, 0)
        near, far = a[whole : n - 1], a[whole + 1 : n]
        moved = near + frac * (far - near)
        parts.append(np.abs(a[: n - 1 - whole] - moved).ravel())
    if not parts:
        return 0.0
    return float(np.percentile(np.concatenate(parts), 99))


def _round_up(value: float) -> float:
    """``value`` rounded up to two significant digits: 566.1 gives 570."""
    step = 10 ** (np.floor(np.log10(value)) - 1)
    return float(np.ceil(value / step - 1e-9) * step)


def difference_caption(
    window: tuple[float, float],
    unit: str,
    *,
    note: str | None = None,
    names: tuple[str, str] = ("A", "B"),
) -> str:
    """The sentence under a difference view: its window, unit and grey scale.

    Parameters
    ----------
    window : (center, width)
        The window the view was drawn in (:func:`difference_window`).
    unit : str
        The images' unit (``MedImage.unit``: "HU", "a.u." ...).
    note : str, optional
        What the unit is (``MedImage.unit_note``), said when it is not HU.
    names : (str, str)
        The images' names, ``names[0] − names[1]`` is shown.

    Examples
    --------
    >>> difference_caption((0.0, 1140.0), "HU").split(";")[0]
    'difference A − B, window ±570 HU (mid-grey = equal'
    """
    a, b = names
    half = float(window[1]) / 2
    shown = f"{half:.0f}" if half >= 100 else f"{half:.3g}"
    text = (
        f"difference {a} − {b}, window ±{shown} {unit} (mid-grey = equal; "
        f"white: {a} brighter, black: {b} brighter)"
    )
    if unit != "HU" and note and note != unit:
        text += f"; values in {note}"
    return text


@declared
def checkerboard(
    i1: np.ndarray,
    i2: np.ndarray,
    *,
    squares: Squares = 8,
) -> np.ndarray:
    """Alternate squares of ``i1`` and ``i2``, to show a misalignment.

    Edges that do not continue across a square's side show a misalignment.

    Parameters
    ----------
    i1, i2 : (M, N[, 3]) ndarray
        2D images (grey or RGB) of one shape.
    squares : int
        Squares along the longer side; the squares are square in pixels.

    Returns
    -------
    ndarray
        ``blend(i1, i2, M)`` with ``M`` 1 on the even squares.
    """
    i1, i2 = _same_shape(i1, i2)
    rows, cols = _plane_shape(i1)
    side = max(rows, cols) / squares
    r = (np.arange(rows) // side).astype(np.int64)
    c = (np.arange(cols) // side).astype(np.int64)
    return blend(i1, i2, (r[:, None] + c[None, :]) % 2 == 0)


@declared
def swipe(
    i1: np.ndarray,
    i2: np.ndarray,
    *,
    position: Position = 0.5,
    axis: Annotated[int, Param(0, 1, 1, "", "0: a horizontal cut, 1: vertical")] = 1,
) -> np.ndarray:
    """``i1`` before a cut and ``i2`` after it, like a swipe slider.

    Parameters
    ----------
    i1, i2 : (M, N[, 3]) ndarray
        2D images (grey or RGB) of one shape.
    position : float
        Place of the cut along ``axis`` as a fraction of the size.
    axis : {0, 1}
        1 cuts vertically (``i1`` on the left), 0 horizontally (``i1`` above).
    """
    i1, i2 = _same_shape(i1, i2)
    rows, cols = _plane_shape(i1)
    n = (rows, cols)[axis]
    before = np.arange(n) < round(position * n)
    mask = before[:, None] if axis == 0 else before[None, :]
    return blend(i1, i2, np.broadcast_to(mask, (rows, cols)))


def _plane_shape(image: np.ndarray) -> tuple[int, int]:
    if image.ndim == 2 or (image.ndim == 3 and image.shape[-1] == 3):
        return image.shape[0], image.shape[1]
    raise ValueError(
        f"images must be 2D, grey (M, N) or RGB (M, N, 3); got shape {image.shape}. "
        "For a volume, compare one slice"
    )


@declared
def multiband_blend(
    i1: np.ndarray,
    i2: np.ndarray,
    mask: np.ndarray,
    *,
    levels: Annotated[int, Param(1, 10, 1, "", "pyramid levels")] = 5,
) -> np.ndarray:
    """The composite formula applied per band of a Laplacian pyramid.

    Each band ``L_k`` of the two images is blended with the mask's Gaussian
    pyramid ``G_k(M)``: ``L_k(I) = L_k(I1)·G_k(M) + L_k(I2)·(1 − G_k(M))``,
    then the bands are summed back. Coarse bands meet over a wide transition,
    fine ones over a narrow one, so a seam neither shows as an edge nor
    blurs detail.

    Parameters
    ----------
    i1, i2 : (M, N[, 3]) ndarray
        2D images of one shape.
    mask : (M, N) ndarray
        Weights of ``i1`` in [0, 1] (binary is typical).
    levels : int
        Pyramid levels, 1 to 10; fewer when the image is small (the coarsest
        level keeps at least 8 pixels).

    Returns
    -------
    (M, N[, 3]) float32 ndarray

    References
    ----------
    Burt P. J., Adelson E. H. A multiresolution spline with application to
    image mosaics. ACM Trans Graph 1983. doi:10.1145/245.247
    """
    i1, i2 = _same_shape(i1, i2)
    rows, cols = _plane_shape(i1)
    m = np.asarray(mask, dtype=np.float32)
    if (
        m.shape != (rows, cols)
        or not np.isfinite(m).all()
        or m.min() < 0
        or m.max() > 1
    ):
        raise ValueError(
            f"mask must be ({rows}, {cols}) with values in [0, 1]; got shape {m.shape}"
        )
    levels = max(1, min(levels, int(np.log2(min(rows, cols) / 8)) + 1))
    return pyramid_composite([i1, i2], [m, 1 - m], bands=levels)


def pyramid_composite(
    images: list[np.ndarray], weights: list[np.ndarray], *, bands: int
) -> np.ndarray:
    """``Σ_k L(I_k)·G(W_k)`` band by band, collapsed: the multiband composite.

    Parameters
    ----------
    images : list of (M, N[, 3]) ndarray
        Images on one grid.
    weights : list of (M, N) float32 ndarray
        One weight map per image, summing to 1 at every pixel.
    bands : int
        Laplacian bands, the last one the Gaussian residual (``bands - 1``
        halvings).

    Returns
    -------
    (M, N[, 3]) float32 ndarray
    """
    import cv2

    shapes = [images[0].shape]
    for _ in range(bands - 1):
        h, w = shapes[-1][:2]
        shapes.append(((h + 1) // 2, (w + 1) // 2, *shapes[0][2:]))
    out_bands = [np.zeros(s, np.float32) for s in shapes]
    for image, weight in zip(images, weights, strict=True):
        g_img, g_w = image.astype(np.float32, copy=False), weight.astype(np.float32)
        for k in range(bands - 1):
            down = cv2.pyrDown(g_img)
            up = cv2.pyrUp(down, dstsize=(g_img.shape[1], g_img.shape[0]))
            w = g_w if g_img.ndim == 2 else g_w[..., None]
            out_bands[k] += (g_img - up) * w
            g_img, g_w = down, cv2.pyrDown(g_w)
        out_bands[-1] += g_img * (g_w if g_img.ndim == 2 else g_w[..., None])
    out = out_bands[-1]
    for k in range(bands - 2, -1, -1):
        h, w = shapes[k][:2]
        out = cv2.pyrUp(out, dstsize=(w, h)) + out_bands[k]
    return out


@declared
def color_fuse(
    base: np.ndarray,
    layer: np.ndarray,
    *,
    base_window: tuple[float, float] | None = None,
    layer_range: tuple[float, float] | None = None,
    cmap: Colormap = "hot",
    opacity: Opacity = 0.6,
    threshold: float | None = None,
) -> np.ndarray:
    """A grey anatomical base with a colour-mapped layer on top.

    ``RGB = blend(C(layer), grey(base), M)`` with ``C`` the colour map over
    ``layer_range`` and ``M = opacity`` where the layer is at or above
    ``threshold`` (0 elsewhere), so that the anatomy shows through and
    around the layer.

    Parameters
    ----------
    base : (M, N) ndarray
        The anatomy, in its units.
    layer : (M, N) ndarray
        The functional or probability map, or labels, in its units.
    base_window : (center, width), optional
        Display window of the base; default :func:`~medimg_lab.display.auto_window`.
    layer_range : (low, high), optional
        Layer values mapped to the two ends of the colour map (the legend's
        range); default the layer's 1st to 99th percentile.
    cmap : str
        One of :data:`COLORMAPS`.
    opacity : float
        ``M`` where the layer shows, in [0, 1].
    threshold : float, optional
        Layer values below it are not drawn; default ``layer_range[0]``
        (strictly above it, so that a background of 0 stays clear).

    Returns
    -------
    (M, N, 3) uint8 ndarray
        RGB.
    """
    import cv2

    base, layer = np.asarray(base), np.asarray(layer)
    if base.ndim != 2 or layer.shape != base.shape:
        raise ValueError(
            f"base must be 2D and layer of its shape; got {base.shape} and "
            f"{layer.shape}"
        )
    if layer_range is None:
        lo, hi = np.percentile(layer[np.isfinite(layer)], [1, 99])
        layer_range = (float(lo), float(hi) if hi > lo else float(lo) + 1)
    lo, hi = (float(v) for v in layer_range)
    if not hi > lo:
        raise ValueError(
            f"layer_range must be (low, high), low < high; got {layer_range}"
        )
    center, width = base_window or auto_window(base)
    grey = apply_window(base, center, width)
    scaled = np.clip((layer.astype(np.float32) - lo) / (hi - lo) * 255 + 0.5, 0, 255)
    code = getattr(cv2, f"COLORMAP_{cmap.upper()}")
    colour = cv2.applyColorMap(scaled.astype(np.uint8), code)[..., ::-1]
    shown = layer >= threshold if threshold is not None else layer > lo
    mask = np.where(shown, np.float32(opacity), np.float32(0))
    return blend(colour, np.repeat(grey[..., None], 3, axis=-1), mask)


@declared
def legend(cmap: Colormap = "hot", *, size: tuple[int, int] = (256, 12)) -> np.ndarray:
    """The colour scale of :func:`color_fuse`, low on the left.

    Parameters
    ----------
    cmap : str
        One of :data:`COLORMAPS`.
    size : (int, int)
        ``(width, height)`` of the scale in pixels.

    Returns
    -------
    (height, width, 3) uint8 ndarray
        RGB; label its ends with the ``layer_range`` and unit.
    """
    import cv2

    width, height = size
    ramp = np.linspace(0, 255, width).astype(np.uint8)[None, :].repeat(height, 0)
    code = getattr(cv2, f"COLORMAP_{cmap.upper()}")
    return np.ascontiguousarray(cv2.applyColorMap(ramp, code)[..., ::-1])
