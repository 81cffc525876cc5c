r"""Stage 1, processing: enhancement, filtering and smoothing.

Filtering is the convolution of an image with a kernel,

.. math:: G(x, y) = f(x, y) * h(x, y) = \sum_{i, j} f(x - i, y - j)\, h(i, j)

Conventions, shared by every function here:

- ``fn(image, essential, *, options) -> ndarray``; the input is never
  modified.
- 2D images ``(M, N)`` and volumes ``(S, M, N)``; a 2D method is applied
  slice by slice, a 3D one (Gaussian) along all three axes.
- Values keep their units (HU stay HU). Float32 in gives float32 out; integer
  input gives float32 out where the result is fractional (Gaussian, bilateral)
  and keeps its dtype where it is not (median).
- Lengths are in mm (``sigma_mm``) and honour ``spacing`` (mm per axis);
  ``spacing=None`` means 1 mm per pixel.
- Intensity remapping (equalization, CLAHE, gamma) works on a window of the
  values, by default the image's robust 0.5–99.5 % percentile range, and maps
  back into that range: 16-bit and HU data are never silently truncated to
  8 bits.
- Parameters are checked against their declared ranges on every call,
  direct or from a recipe (:mod:`medimg_lab.params`), with the same message.

Borders: one rule for every filter here. Beyond its edge the image is
mirrored about the edge pixel, which is not repeated: ``d c b | a b c d |
c b a``. That is ``mode="mirror"`` in :mod:`scipy.ndimage` (``"reflect"``
in :func:`numpy.pad`), OpenCV's ``BORDER_REFLECT_101`` and its default. So a
filter's output at the border equals the same filter's output on the image
padded that way (``np.pad(image, r, mode="reflect")``), and equals
:mod:`scipy.ndimage` with ``mode="mirror"`` where SciPy has the filter
(convolution, Gaussian, Sobel, median). It holds for :func:`convolve`,
:func:`gaussian` (in-plane and along the slices), :func:`unsharp_mask`,
:func:`sobel`, the gradients of :func:`canny`, :func:`median` (padded
explicitly before ``cv2.medianBlur``, which would replicate the edge),
:func:`bilateral`, :func:`non_local_means` and the neighbours of
:func:`anisotropic_diffusion`; CLAHE's tiles that overhang the image are
filled the same way (by OpenCV).

OpenCV does the work where it can; it was measured 5–400× faster than
scikit-image and SciPy for these filters on this project's machine.
"""

from __future__ import annotations

import functools
from typing import Annotated

import cv2
import numpy as np

from ._checks import Spacing, check_image, check_spacing
from .display import auto_window
from .params import Param, Seed, operation

__all__ = [
    "BORDER_MODE",
    "KERNELS",
    "add_gaussian_noise",
    "add_poisson_noise",
    "add_speckle_noise",
    "anisotropic_diffusion",
    "bilateral",
    "canny",
    "clahe",
    "coarse_preview",
    "convolve",
    "equalize_hist",
    "gamma",
    "gaussian",
    "kernel",
    "median",
    "non_local_means",
    "sobel",
    "unsharp_mask",
    "window_level",
]

Window = tuple[float, float] | None

#: The one border rule of this module: scipy.ndimage's ``mode="mirror"``.
BORDER_MODE = "mirror"
_BORDER = cv2.BORDER_REFLECT_101  # OpenCV's name for it

#: Named 3×3 kernels ``h`` for :func:`convolve`, as textbooks print them.
#: The asymmetric ones (Sobel, emboss) are printed in correlation form, so
#: that a true convolution, which flips the kernel, turns them around:
#: ``convolve(f, "sobel_x")`` gives ``-df/dx`` (see :func:`sobel` for edges).
KERNELS: dict[str, np.ndarray] = {
    "identity": np.array([[0, 0, 0], [0, 1, 0], [0, 0, 0]], np.float32),
    "box": np.full((3, 3), 1 / 9, np.float32),
    "gaussian": np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], np.float32) / 16,
    "sharpen": np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], np.float32),
    "laplacian": np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], np.float32),
    "sobel_x": np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float32),
    "sobel_y": np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]], np.float32),
    "emboss": np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], np.float32),
}


# ---------------------------------------------------------------- helpers


def _float(image: np.ndarray) -> np.ndarray:
    """float32 working copy (float64 stays float64)."""
    return image if image.dtype == np.float64 else image.astype(np.float32)


def _per_slice(fn, image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return fn(image)
    return np.stack([fn(s) for s in image])


def _window(
    image: np.ndarray, window: Window, *, robust: bool = True
) -> tuple[float, float]:
    """The value range ``(lo, hi)`` an intensity mapping works in.

    By default the robust percentile range (values beyond it are clipped, as
    the enhancement functions document); ``robust=False`` takes the full
    range, for filters that must not clip.
    """
    if window is None:
        if image.dtype == np.uint8:
            return 0.0, 255.0
        if not robust:
            lo, hi = float(image.min()), float(image.max())
            return lo, hi if hi > lo else lo + 1.0
        center, width = auto_window(image)
    else:
        center, width = (float(v) for v in window)
        if not width > 0:
            raise ValueError(f"window width must be > 0; got {window}")
    return center - width / 2, center + width / 2


def _to_unit(image: np.ndarray, lo: float, hi: float) -> np.ndarray:
    unit = (image.astype(np.float32) - np.float32(lo)) / np.float32(hi - lo)
    return np.clip(unit, 0, 1, out=unit)


def _from_unit(unit: np.ndarray, lo: float, hi: float, like: np.ndarray) -> np.ndarray:
    """Back into the input's units and dtype (uint8 stays uint8)."""
    if like.dtype == np.uint8 and (lo, hi) == (0.0, 255.0):
        return np.clip(np.rint(unit * 255), 0, 255).astype(np.uint8)
    out = unit * np.float32(hi - lo) + np.float32(lo)
    return out.astype(like.dtype if like.dtype.kind == "f" else np.float32)


def _levels_8bit(image: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``rint(_to_unit(image, lo, hi) * 255)`` as uint8.

    Whole-number images of at most 16 bits take one clip and one OpenCV
    scale (``convertScaleAbs``), four times faster than the float passes,
    where :func:`_scale_is_exact` found it gives the same level for every
    value of the window; otherwise the float passes.
    """
    if image.dtype in (np.uint8, np.uint16, np.int16):
        bounds = _scale_is_exact(image.dtype.str, float(lo), float(hi))
        if bounds is not None:
            alpha, beta, first, last = bounds
            # one C-ordered 2D array: OpenCV reads a 3D array as channels (at
            # most 512) and refuses other memory layouts
            clipped = np.ascontiguousarray(np.clip(image, first, last))
            flat = clipped.reshape(-1, image.shape[-1]) if image.ndim else clipped
            levels = cv2.convertScaleAbs(flat, alpha=alpha, beta=beta)
            return levels.reshape(image.shape)
    return np.rint(_to_unit(image, lo, hi) * 255).astype(np.uint8)


@functools.lru_cache(maxsize=32)
def _scale_is_exact(dtype: str, lo: float, hi: float):
    """OpenCV's scale of the clipped values, if it equals the float passes.

    Checked once per window on every whole number from ``floor(lo)`` to
    ``ceil(hi)`` (values beyond clip to those ends, whose levels are the
    ends' levels in both); ``None`` where any level differs.
    """
    info = np.iinfo(dtype)
    first = max(int(np.floor(lo)), int(info.min))
    last = min(int(np.ceil(hi)), int(info.max))
    if last < first:
        return None
    every = np.arange(first, last + 1).astype(dtype)
    alpha = 255.0 / (hi - lo)
    beta = -lo * alpha
    fast = cv2.convertScaleAbs(every[np.newaxis], alpha=alpha, beta=beta)[0]
    slow = np.rint(_to_unit(every, lo, hi) * 255).astype(np.uint8)
    if not np.array_equal(fast, slow):
        return None
    kind = np.dtype(dtype).type
    return alpha, beta, kind(first), kind(last)


def _from_levels(
    levels: np.ndarray, lo: float, hi: float, like: np.ndarray
) -> np.ndarray:
    """``_from_unit(levels / 255)`` of uint8 levels, in one pass.

    Through a 256-entry table (OpenCV's LUT) instead of four array passes;
    the table holds the same float32 arithmetic per level.
    """
    table = _from_unit(np.arange(256, dtype=np.float32) / 255, lo, hi, like)
    flat = levels.reshape(-1, levels.shape[-1])
    return cv2.LUT(flat, table).reshape(levels.shape)


def _sigma_px(sigma_mm: float, spacing: tuple[float, ...]) -> tuple[float, ...]:
    return tuple(sigma_mm / s for s in spacing)


def _gauss1d(sigma_px: float) -> np.ndarray:
    radius = max(1, int(np.ceil(4 * sigma_px)))
    return cv2.getGaussianKernel(2 * radius + 1, sigma_px, cv2.CV_32F)


def _blur2d(plane: np.ndarray, sigma_yx, dst: np.ndarray) -> None:
    cv2.GaussianBlur(
        plane, (0, 0), sigma_yx[1], dst=dst, sigmaY=sigma_yx[0], borderType=_BORDER
    )


def gaussian_px(
    image: np.ndarray, sigma_px: tuple[float, ...], *, out: np.ndarray | None = None
) -> np.ndarray:
    """The separable Gaussian of :func:`gaussian`, with sigmas in pixels.

    OpenCV in-plane per slice, then 1D along the slice axis; reflecting
    border. The one implementation: :func:`gaussian` and the pixel
    classifier's features both call it.

    Parameters
    ----------
    image : ([S,] M, N) ndarray
        float32 or float64.
    sigma_px : tuple of float
        Standard deviation in pixels per axis (``[S,] M, N``).
    out : ndarray, optional
        Where to write the result (``image``'s shape and dtype).

    Returns
    -------
    ndarray
        ``out``, or a new array of ``image``'s shape and dtype.
    """
    if out is None:
        out = np.empty_like(image)
    if image.ndim == 2:
        _blur2d(image, sigma_px[-2:], out)
        return out
    planes = out if image.shape[0] == 1 else np.empty_like(image)
    for z in range(image.shape[0]):
        _blur2d(image[z], sigma_px[-2:], planes[z])
    if image.shape[0] > 1:
        flat = planes.reshape(image.shape[0], -1)
        kz = _gauss1d(sigma_px[0]).astype(flat.dtype)
        one = np.ones((1, 1), flat.dtype)
        dst = out.reshape(flat.shape)
        cv2.sepFilter2D(flat, -1, one, kz, dst=dst, borderType=_BORDER)
    return out


def coarse_preview(
    run, image: np.ndarray, *, factor: int, spacing: Spacing = None
) -> np.ndarray:
    """``run`` on ``image`` made ``factor`` times coarser, brought back to its grid.

    A quick look while a slider moves: the image is area-averaged to
    ``1/factor`` of its size per side (``factor²`` fewer pixels, so about that
    much less work for a filter), ``run`` is called there with the coarser
    spacing (lengths in mm keep their physical size), and its result is
    resampled back to the image's shape (linear; nearest for masks). The
    full-resolution call is the result to keep.

    Parameters
    ----------
    run : callable
        ``run(array, spacing) -> array`` of the same 2D shape.
    image : (M, N) ndarray
    factor : int
        Coarsening per side, >= 1 (1: ``run`` on the image itself).
    spacing : (float, float), optional
        mm per axis; default 1 mm.

    Returns
    -------
    (M, N) ndarray
        ``run``'s dtype.
    """
    image = check_image(image)
    if image.ndim != 2:
        raise ValueError(f"coarse_preview takes a 2D image; got shape {image.shape}")
    if (
        isinstance(factor, bool)
        or not isinstance(factor, int | np.integer)
        or factor < 1
    ):
        raise ValueError(f"factor must be a whole number >= 1; got {factor!r}")
    sp = check_spacing(image.shape, spacing)
    rows, cols = image.shape
    small = (max(1, round(cols / factor)), max(1, round(rows / factor)))
    if factor == 1 or small == (cols, rows):
        return run(image, sp)
    work = image if image.dtype in (np.uint8, np.uint16, np.int16) else _float(image)
    coarse = cv2.resize(work, small, interpolation=cv2.INTER_AREA)
    out = np.asarray(run(coarse, (sp[0] * rows / small[1], sp[1] * cols / small[0])))
    if out.dtype == bool:
        back = cv2.resize(
            out.view(np.uint8), (cols, rows), interpolation=cv2.INTER_NEAREST
        )
        return back.view(bool)
    back = cv2.resize(out, (cols, rows), interpolation=cv2.INTER_LINEAR)
    return back.astype(out.dtype, copy=False)


# ------------------------------------------------------------ enhancement


@operation("processing", "Window/level", keeps_units=False)
def window_level(
    image: np.ndarray,
    *,
    center: Annotated[
        float, Param(unit="image units", doc="window center", scale="level")
    ] = 40.0,
    width: Annotated[
        float, Param(1e-3, unit="image units", doc="window width", scale="span")
    ] = 400.0,
) -> np.ndarray:
    """Map a window of values onto display grey levels 0–255.

    The first step of most pipelines: it leaves physical units for 8-bit grey
    levels, which CLAHE, thresholds and display then work on.

    Parameters
    ----------
    image : ([S,] M, N) ndarray
    center, width : float
        The window, in the image's units (HU for CT).

    Returns
    -------
    ([S,] M, N) uint8 ndarray
    """
    from .display import apply_window

    return apply_window(check_image(image), center, width)


@operation("processing", "Histogram equalization")
def equalize_hist(
    image: np.ndarray,
    *,
    window: Window = None,
    nbins: Annotated[int, Param(16, 4096, 16, "bins", "histogram bins")] = 256,
) -> np.ndarray:
    """Global histogram equalization: the output's cumulative histogram is flat.

    Parameters
    ----------
    image : ([S,] M, N) ndarray
    window : (center, width), optional
        The value range equalized; default the robust percentile range (all of
        0–255 for uint8). Values outside are clipped to it.
    nbins : int
        Number of grey levels of the histogram.

    Returns
    -------
    ndarray
        In the window's value range; uint8 stays uint8, else float32.
    """
    image = check_image(image)
    lo, hi = _window(image, window)
    unit = _to_unit(image, lo, hi)
    levels = np.minimum((unit * nbins).astype(np.int32), nbins - 1)
    cdf = np.cumsum(np.bincount(levels.ravel(), minlength=nbins)).astype(np.float64)
    cdf = (cdf - cdf[0]) / max(cdf[-1] - cdf[0], 1)
    return _from_unit(cdf.astype(np.float32)[levels], lo, hi, image)


@operation("processing", "CLAHE")
def clahe(
    image: np.ndarray,
    *,
    clip_limit: Annotated[
        float, Param(0.5, 40.0, 0.5, "", "contrast limit per tile histogram")
    ] = 2.0,
    tiles: Annotated[int, Param(2, 32, 1, "tiles", "tiles per side")] = 8,
    window: Window = None,
) -> np.ndarray:
    """Contrast-limited adaptive histogram equalization (Zuiderveld 1994).

    Computed by OpenCV, slice by slice, on 256 levels of the window (explicit
    or the robust percentile range), then mapped back into the window's value
    range. On 8-bit levels OpenCV's CLAHE is 8× faster than on 16-bit ones,
    which keeps a slider update on a 512² slice under a millisecond.

    Parameters
    ----------
    image : ([S,] M, N) ndarray
    clip_limit : float
        Histogram clip limit; higher gives more contrast and more noise.
    tiles : int
        The image is divided into ``tiles × tiles`` regions.
    window : (center, width), optional
        Value range to enhance; default the robust 0.5–99.5 % percentile
        range. Values outside it are clipped to it.

    Returns
    -------
    ndarray
        In the window's value range; uint8 stays uint8, else float32.

    References
    ----------
    Zuiderveld K. Contrast limited adaptive histogram equalization. Graphics
    Gems IV, 1994. doi:10.1016/B978-0-12-336156-1.50061-6
    """
    image = check_image(image)
    engine = cv2.createCLAHE(clipLimit=float(clip_limit), tileGridSize=(tiles, tiles))
    if image.dtype == np.uint8 and window is None:
        return _per_slice(engine.apply, image)
    lo, hi = _window(image, window)
    levels = _levels_8bit(image, lo, hi)
    return _from_levels(_per_slice(engine.apply, levels), lo, hi, image)


@operation("processing", "Gamma")
def gamma(
    image: np.ndarray,
    *,
    gamma: Annotated[float, Param(0.1, 5.0, 0.05, "", "exponent; < 1 brightens")] = 1.0,
    window: Window = None,
) -> np.ndarray:
    """Power-law intensity mapping ``y = x ** gamma`` on the window's range.

    The window (default the robust 0.5–99.5 % percentile range) is mapped to
    ``[0, 1]``; values outside it are clipped to it.

    Parameters
    ----------
    image : ([S,] M, N) ndarray
    gamma : float
        The exponent, in [0.1, 5]; below 1 brightens, above 1 darkens.
    window : (center, width), optional
        Value range mapped, in the image's units; default the robust
        percentile range.

    Returns
    -------
    ndarray
        In the window's value range; uint8 stays uint8, else float32.
    """
    image = check_image(image)
    lo, hi = _window(image, window)
    return _from_unit(
        np.power(_to_unit(image, lo, hi), np.float32(gamma)), lo, hi, image
    )


# -------------------------------------------------------------- filtering


def kernel(name: str) -> np.ndarray:
    """A copy of a named kernel from :data:`KERNELS`.

    Parameters
    ----------
    name : str
        One of the names of :data:`KERNELS` (``"box"``, ``"sobel_x"`` ...).

    Returns
    -------
    (3, 3) float32 ndarray
    """
    if name not in KERNELS:
        raise ValueError(f"unknown kernel {name!r}; choose one of {', '.join(KERNELS)}")
    return KERNELS[name].copy()


@operation("processing", "Convolution G = f*h")
def convolve(
    image: np.ndarray,
    h: np.ndarray | str = "box",
    *,
    normalize: Annotated[
        bool, Param(doc="divide the kernel by its sum (when not zero)")
    ] = False,
) -> np.ndarray:
    """Convolve an image with a kernel: ``G = f * h``.

    A true convolution (the kernel is flipped, unlike a correlation), with
    mirrored borders (``mode="mirror"``, see the module notes). Volumes are
    filtered slice by slice.

    Parameters
    ----------
    image : ([S,] M, N) ndarray
        The image ``f``.
    h : (K, L) ndarray or str
        The kernel, with odd sides, or a name from :data:`KERNELS`.
    normalize : bool
        Divide ``h`` by its sum, so that flat regions keep their value.

    Returns
    -------
    ndarray
        float32 (float64 for float64 input), in the image's units times the
        kernel's.

    Examples
    --------
    >>> f = np.zeros((5, 5), np.float32); f[2, 2] = 1
    >>> h = np.arange(9, dtype=np.float32).reshape(3, 3)
    >>> bool((convolve(f, h)[1:4, 1:4] == h).all())
    True
    """
    image = check_image(image)
    h = kernel(h) if isinstance(h, str) else np.asarray(h, dtype=np.float32)
    if h.ndim != 2 or h.shape[0] % 2 == 0 or h.shape[1] % 2 == 0:
        raise ValueError(f"kernel must be 2D with odd sides; got shape {h.shape}")
    if not np.all(np.isfinite(h)):
        raise ValueError("kernel values must be finite")
    if normalize:
        total = float(h.sum())
        if total != 0:
            h = h / np.float32(total)
    flipped = np.ascontiguousarray(h[::-1, ::-1])
    work = _float(image)
    return _per_slice(
        lambda s: cv2.filter2D(s, -1, flipped, borderType=_BORDER),
        work,
    )


@operation("processing", "Gaussian")
def gaussian(
    image: np.ndarray,
    *,
    sigma_mm: Annotated[
        float, Param(0.1, 50.0, 0.1, "mm", "standard deviation of the Gaussian")
    ] = 1.0,
    spacing: Spacing = None,
) -> np.ndarray:
    """Gaussian smoothing with a standard deviation in mm.

    Separable: OpenCV in-plane per slice, then 1D along the slice axis, with
    a per-axis sigma in pixels of ``sigma_mm / spacing``.

    Parameters
    ----------
    image : ([S,] M, N) ndarray
    sigma_mm : float
        Standard deviation in mm (FWHM = 2.355 sigma).
    spacing : tuple of float, optional
        mm per axis; default 1 mm.

    Returns
    -------
    ndarray
        float32 (float64 for float64 input), in the image's units.
    """
    image = check_image(image)
    sig = _sigma_px(sigma_mm, check_spacing(image.shape, spacing))
    return gaussian_px(_float(image), sig)


@operation("processing", "Unsharp mask")
def unsharp_mask(
    image: np.ndarray,
    *,
    sigma_mm: Annotated[
        float, Param(0.1, 50.0, 0.1, "mm", "size of the detail enhanced")
    ] = 2.0,
    amount: Annotated[float, Param(0.0, 5.0, 0.1, "", "strength")] = 1.0,
    spacing: Spacing = None,
) -> np.ndarray:
    """Sharpen: ``image + amount * (image - gaussian(image))``.

    Parameters
    ----------
    image : ([S,] M, N) ndarray
    sigma_mm : float
        Standard deviation of the Gaussian in mm, in [0.1, 50]: the size of
        the detail enhanced.
    amount : float
        Strength, in [0, 5]; 0 gives the image back.
    spacing : tuple of float, optional
        mm per axis; default 1 mm.

    Returns
    -------
    ndarray
        float32 (float64 for float64 input), in the image's units.
    """
    work = _float(check_image(image))
    blurred = gaussian(work, sigma_mm=sigma_mm, spacing=spacing)
    return work + work.dtype.type(amount) * (work - blurred)


@operation("processing", "Sobel edges", keeps_units=False)
def sobel(image: np.ndarray, *, spacing: Spacing = None) -> np.ndarray:
    """In-plane gradient magnitude, in image units per mm.

    Parameters
    ----------
    image : ([S,] M, N) ndarray
    spacing : tuple of float, optional
        mm per axis; default 1 mm. The derivatives are divided by it.

    Returns
    -------
    ndarray
        float32, ``sqrt((df/dx)² + (df/dy)²)`` from 3×3 Sobel derivatives.
    """
    image = check_image(image)
    sp = check_spacing(image.shape, spacing)
    work = _float(image)

    def magnitude(s):
        gx = cv2.Sobel(s, -1, 1, 0, ksize=3, scale=1 / (8 * sp[-1]), borderType=_BORDER)
        gy = cv2.Sobel(s, -1, 0, 1, ksize=3, scale=1 / (8 * sp[-2]), borderType=_BORDER)
        return cv2.magnitude(gx, gy)

    return _per_slice(magnitude, work)


@operation("processing", "Canny edges", keeps_units=False)
def canny(
    image: np.ndarray,
    *,
    sigma_mm: Annotated[
        float, Param(0.1, 20.0, 0.1, "mm", "smoothing before the gradient")
    ] = 1.0,
    low: Annotated[
        float, Param(0.0, 1.0, 0.01, "", "low hysteresis threshold (of max)")
    ] = 0.1,
    high: Annotated[
        float, Param(0.0, 1.0, 0.01, "", "high hysteresis threshold (of max)")
    ] = 0.3,
    window: Window = None,
    spacing: Spacing = None,
) -> np.ndarray:
    """Canny edges (Canny 1986), slice by slice.

    The window's range (default the robust percentile range; values beyond
    it are clipped) is mapped to 8 bits and smoothed with ``sigma_mm``; its
    3×3 Sobel gradients (mirrored borders, as every filter here) go to
    OpenCV's Canny, which would otherwise replicate the edge, with hysteresis
    thresholds given as fractions of the slice's strongest gradient.

    Parameters
    ----------
    image : ([S,] M, N) ndarray
    sigma_mm : float
        Standard deviation in mm of the smoothing before the gradient, in
        [0.1, 20].
    low, high : float
        Hysteresis thresholds as fractions of the slice's strongest
        gradient, each in [0, 1], with ``low <= high``.
    window : (center, width), optional
        Value range mapped to 8 bits, in the image's units; default the
        robust percentile range.
    spacing : tuple of float, optional
        mm per axis; default 1 mm.

    Returns
    -------
    ([S,] M, N) bool ndarray

    References
    ----------
    Canny J. A computational approach to edge detection. IEEE TPAMI 1986.
    doi:10.1109/TPAMI.1986.4767851
    """
    image = check_image(image)
    if not low <= high:  # each in [0, 1] is declared
        raise ValueError(f"canny: need low <= high; got low={low:g}, high={high:g}")
    lo, hi = _window(image, window)
    smooth = gaussian(_to_unit(image, lo, hi), sigma_mm=sigma_mm, spacing=spacing)
    levels = np.clip(np.rint(smooth * 255), 0, 255).astype(np.uint8)

    def edges(s):
        gx = cv2.Sobel(s, cv2.CV_16S, 1, 0, ksize=3, borderType=_BORDER)
        gy = cv2.Sobel(s, cv2.CV_16S, 0, 1, ksize=3, borderType=_BORDER)
        magnitude = cv2.magnitude(gx.astype(np.float32), gy.astype(np.float32))
        top = float(magnitude.max()) or 1.0
        return cv2.Canny(gx, gy, low * top, high * top, L2gradient=True) > 0

    return _per_slice(edges, levels)


# --------------------------------------------------------------- smoothing


@operation("processing", "Median")
def median(
    image: np.ndarray,
    *,
    size: Annotated[int, Param(3, 15, 2, "px", "side of the square", odd=True)] = 3,
) -> np.ndarray:
    """Median filter over a ``size × size`` neighbourhood, slice by slice.

    Removes salt-and-pepper noise while keeping edges. Keeps the dtype.
    Borders are mirrored (``mode="mirror"``, see the module notes) for every
    size and dtype: OpenCV's ``medianBlur`` (uint8; uint16, int16 and
    float32 up to 5 px) gets an explicitly padded slice, and other sizes and
    dtypes go to :func:`scipy.ndimage.median_filter` with ``mode="mirror"``.

    Parameters
    ----------
    image : ([S,] M, N) ndarray
    size : int
        Side of the square neighbourhood in pixels, odd, in [3, 15].

    Returns
    -------
    ndarray
        Of the input's shape and dtype; equal to
        ``scipy.ndimage.median_filter(image, size=(1,) * (image.ndim - 2) +
        (size, size), mode="mirror")``.
    """
    image = check_image(image)
    r = size // 2

    def blur(s):
        padded = cv2.copyMakeBorder(s, r, r, r, r, _BORDER)
        return cv2.medianBlur(padded, size)[r:-r, r:-r]

    if image.dtype == np.uint8 or (
        size <= 5 and image.dtype in (np.uint16, np.int16, np.float32)
    ):
        return _per_slice(blur, image)  # int16 directly: no shift to uint16 and back
    from scipy.ndimage import median_filter

    footprint = (1, size, size) if image.ndim == 3 else (size, size)
    return median_filter(image, size=footprint, mode=BORDER_MODE)


@operation("processing", "Bilateral")
def bilateral(
    image: np.ndarray,
    *,
    sigma_mm: Annotated[
        float, Param(0.1, 20.0, 0.1, "mm", "spatial standard deviation")
    ] = 1.5,
    sigma_range: Annotated[
        float | None,
        Param(
            0.0,
            exclusive_min=True,
            unit="image units",
            scale="span",
            doc="intensity standard deviation; default 10% of the robust value range",
        ),
    ] = None,
    spacing: Spacing = None,
) -> np.ndarray:
    """Edge-preserving bilateral filter (Tomasi & Manduchi 1998), per slice.

    Parameters
    ----------
    image : ([S,] M, N) ndarray
    sigma_mm : float
        Spatial standard deviation in mm, in [0.1, 20].
    sigma_range : float, optional
        Intensity standard deviation in the image's units (> 0); default
        10 % of the robust value range.
    spacing : tuple of float, optional
        mm per axis; default 1 mm.

    Returns
    -------
    ndarray
        float32, in the image's units.

    References
    ----------
    doi:10.1109/ICCV.1998.710815
    """
    image = check_image(image)
    sp = check_spacing(image.shape, spacing)
    sigma_px = float(np.mean(_sigma_px(sigma_mm, sp[-2:])))
    if sigma_range is None:
        sigma_range = 0.1 * auto_window(image)[1]
    diameter = 2 * int(np.ceil(2 * sigma_px)) + 1
    work = image.astype(np.float32)
    return _per_slice(
        lambda s: cv2.bilateralFilter(
            s, diameter, float(sigma_range), sigma_px, borderType=_BORDER
        ),
        work,
    )


@operation("processing", "Non-local means")
def non_local_means(
    image: np.ndarray,
    *,
    h: Annotated[
        float | None,
        Param(
            0.0,
            exclusive_min=True,
            unit="image units",
            scale="span",
            doc="filter strength, about the noise SD; "
            "default 5% of the robust value range",
        ),
    ] = None,
    patch: Annotated[int, Param(3, 11, 2, "px", "patch side", odd=True)] = 5,
    search: Annotated[int, Param(5, 31, 2, "px", "search window side", odd=True)] = 11,
    window: Window = None,
) -> np.ndarray:
    """Non-local means denoising (Buades et al. 2005), per slice.

    OpenCV's implementation on 16-bit levels (L1 patch distance) of the
    window, by default the image's full value range so that nothing is
    clipped, mapped back into the image's units.

    Parameters
    ----------
    image : ([S,] M, N) ndarray
    h : float, optional
        Filter strength in the image's units (> 0), about the noise SD;
        default 5 % of the robust value range.
    patch : int
        Side of the compared patches in pixels, odd, in [3, 11].
    search : int
        Side of the search window in pixels, odd, in [5, 31].
    window : (center, width), optional
        Value range denoised, in the image's units; default the image's full
        range.

    Returns
    -------
    ndarray
        In the window's value range; uint8 stays uint8, else float32.

    References
    ----------
    doi:10.1109/CVPR.2005.38
    """
    image = check_image(image)
    lo, hi = _window(image, window, robust=False)
    if h is None:
        h = 0.05 * auto_window(image)[1]
    levels = np.rint(_to_unit(image, lo, hi) * 65535).astype(np.uint16)
    h16 = [float(h) / (hi - lo) * 65535]

    def denoise(s):
        return cv2.fastNlMeansDenoising(s, h16, None, patch, search, cv2.NORM_L1)

    out = _per_slice(denoise, levels).astype(np.float32) / 65535
    return _from_unit(out, lo, hi, image)


@operation("processing", "Anisotropic diffusion")
def anisotropic_diffusion(
    image: np.ndarray,
    *,
    iterations: Annotated[int, Param(1, 200, 1, "", "diffusion steps")] = 10,
    kappa: Annotated[
        float | None,
        Param(
            0.0,
            exclusive_min=True,
            unit="image units",
            scale="span",
            doc="edge threshold; default 10% of the robust value range",
        ),
    ] = None,
    step: Annotated[
        float, Param(0.01, 0.25, 0.01, "", "time step (stable <= 0.25)")
    ] = 0.2,
) -> np.ndarray:
    """Perona–Malik anisotropic diffusion, in-plane, on 2D or 3D images.

    Smooths within regions and stops at edges: the conduction
    ``c = exp(-(|∇I| / kappa)²)`` falls where the gradient exceeds ``kappa``.
    Each pixel exchanges with its four in-plane neighbours; beyond the edge
    the neighbours are mirrored (``mode="mirror"``, see the module notes).

    Parameters
    ----------
    image : ([S,] M, N) ndarray
    iterations : int
        Diffusion steps, in [1, 200].
    kappa : float, optional
        Edge threshold in the image's units (> 0); default 10 % of the
        robust value range.
    step : float
        Time step, in [0.01, 0.25] (stable up to 0.25).

    Returns
    -------
    ndarray
        float32, in the image's units.

    References
    ----------
    Perona P, Malik J. Scale-space and edge detection using anisotropic
    diffusion. IEEE TPAMI 1990. doi:10.1109/34.56205
    """
    image = check_image(image)
    if kappa is None:
        kappa = 0.1 * auto_window(image)[1]
    out = image.astype(np.float32)
    k2 = np.float32(kappa) ** 2
    pad = [(0, 0)] * (out.ndim - 2) + [(1, 1), (1, 1)]
    for _ in range(int(iterations)):
        p = np.pad(out, pad, mode="reflect")  # numpy's "reflect" is "mirror"
        update = np.zeros_like(out)
        for neighbour in (
            p[..., 2:, 1:-1],
            p[..., :-2, 1:-1],
            p[..., 1:-1, 2:],
            p[..., 1:-1, :-2],
        ):
            d = neighbour - out
            update += np.exp(-(d**2) / k2) * d
        out += np.float32(step) * update
    return out


# ------------------------------------------------------------ noise models


def _rng(seed: int | None) -> np.random.Generator:
    return np.random.default_rng(seed)


@operation("processing", "Add Gaussian noise")
def add_gaussian_noise(
    image: np.ndarray,
    *,
    sigma: Annotated[
        float, Param(0.0, unit="image units", doc="noise SD", scale="span")
    ] = 10.0,
    seed: Seed = 0,
) -> np.ndarray:
    """Additive white Gaussian noise of standard deviation ``sigma``, seeded.

    Parameters
    ----------
    image : ([S,] M, N) ndarray
    sigma : float
        Noise SD in the image's units, >= 0.
    seed : int
        Random seed.

    Returns
    -------
    ndarray
        float32, in the image's units.
    """
    image = check_image(image)
    noise = _rng(seed).normal(0.0, sigma, image.shape).astype(np.float32)
    return image.astype(np.float32) + noise


@operation("processing", "Add Poisson noise")
def add_poisson_noise(
    image: np.ndarray,
    *,
    counts: Annotated[
        float,
        Param(10.0, 1e5, 10.0, "counts", "photon counts at the brightest value"),
    ] = 1000.0,
    seed: Seed = 0,
) -> np.ndarray:
    """Quantum (Poisson) noise: fewer counts give more noise, seeded.

    The range ``[min(0, image min), image max]`` is mapped onto
    ``[0, counts]`` photons, drawn from a Poisson distribution, and mapped
    back.

    Parameters
    ----------
    image : ([S,] M, N) ndarray
    counts : float
        Photon counts at the brightest value, in [10, 100000].
    seed : int
        Random seed.

    Returns
    -------
    ndarray
        float32, in the image's units.
    """
    image = check_image(image)
    # Zero signal is zero counts; images with negative values (HU) start at
    # their minimum.
    lo, hi = min(float(image.min()), 0.0), float(image.max())
    span = hi - lo or 1.0
    expected = (image.astype(np.float64) - lo) / span * counts
    drawn = _rng(seed).poisson(expected).astype(np.float64)
    return (drawn / counts * span + lo).astype(np.float32)


@operation("processing", "Add speckle noise")
def add_speckle_noise(
    image: np.ndarray,
    *,
    sigma: Annotated[float, Param(0.0, 2.0, 0.01, "", "relative noise SD")] = 0.1,
    seed: Seed = 0,
) -> np.ndarray:
    """Multiplicative speckle noise ``image * (1 + n)``, ``n ~ N(0, sigma)``, seeded.

    The noise of ultrasound images.

    Parameters
    ----------
    image : ([S,] M, N) ndarray
    sigma : float
        SD of ``n``, relative to the value, in [0, 2].
    seed : int
        Random seed.

    Returns
    -------
    ndarray
        float32, in the image's units.
    """
    image = check_image(image)
    noise = _rng(seed).normal(0.0, sigma, image.shape).astype(np.float32)
    return image.astype(np.float32) * (1 + noise)
