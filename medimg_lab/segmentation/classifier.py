r"""Stage 2, segmentation: a pixel classifier in the style of ilastik.

Each pixel (or voxel) ``x`` is described by a vector of features ``f_i(x)``,
filters of the image at several scales; a classifier learns from a few
labelled scribbles which feature vectors belong to which class and labels
every other pixel. For the linear model the decision is literally

.. math:: u_k(x, y) = \sum_i a_{k,i}\, f_i(x, y) + b_k,
   \qquad P(C_k \mid x) = \operatorname{softmax}_k u(x, y),

a weighted sum of feature images (see :attr:`PixelClassifier.weights`).

The feature bank (:func:`feature_bank`, names from :func:`feature_names`),
per scale ``σ`` in mm (scales sorted ascending, ``σ_0 = 0`` the raw image):

==================  ==========================================================
``intensity``       the raw value (HU for CT), once, not per scale
``gaussian``        ``G_σ * f``
``gradient``        ``|∇(G_σ * f)|``, image units per mm
``log``             Laplacian of Gaussian ``∇²(G_σ * f)``, units per mm²
``dog``             difference of Gaussians ``G_{σ_(j-1)} * f - G_{σ_j} * f``:
                    the band between a scale and the next finer one
``structure``       eigenvalues ``λ1 ≥ λ2`` of the structure tensor
                    ``G_{σ/2} * (∇f_σ ∇f_σᵀ)`` (inner scale σ, outer σ/2 as
                    in ilastik), (units per mm)²
``hessian``         eigenvalues ``λ1 ≥ λ2`` of the Hessian of ``G_σ * f``
==================  ==========================================================

How it is computed:

- Smoothing is a separable OpenCV Gaussian (in-plane per slice, then 1D
  along the slice axis), the same as :func:`medimg_lab.processing.gaussian`.
  Derivatives are central differences of the smoothed image (OpenCV
  ``Sobel`` with ``ksize=1``), scaled to mm; eigenvalues of the symmetric
  2×2 tensors are in closed form.
- Large scales run on a Gaussian pyramid: when the Gaussian left to apply
  after ``L`` in-plane halvings (``cv2.pyrDown``) is still at least
  :data:`PYRAMID_MIN_PX` pixels, the scale's features are computed there
  (borders mirrored beforehand) and brought back with ``cv2.pyrUp``. The
  Gaussian features then match the exact filter within 0.3 % of their SD
  and the derived ones correlate above 0.99 with it, except the structure
  tensor's λ2, a small difference of large numbers (0.99 on the head CT,
  0.94 on synthetic textures); ``pyramid=False`` filters every scale at
  full resolution.
- The scales run in parallel threads (OpenCV and numpy release the GIL).
- Intensities keep their units: trees need no normalisation, and the SVM
  and linear models standardise inside a scikit-learn ``Pipeline``.

Volumes ``(S, M, N)``: the Gaussians, the gradient magnitude and the LoG are
3D and honour the slice spacing; the structure-tensor and Hessian eigenvalues
are those of the in-plane 2×2 blocks, computed per slice (so a volume has as
many features as an image, and 3×3 eigenvalues of 8 M voxels per scale are
avoided). :class:`PixelClassifier` processes volumes in slabs of slices with
a halo of ``ceil(4 σ_max / Δz) + 1`` slices, so that the feature bank of the
whole volume is never in memory and chunked equals unchunked.

References
----------
Sommer C., Straehle C., Köthe U., Hamprecht F. A. ilastik: Interactive
learning and segmentation toolkit. ISBI 2011. doi:10.1109/ISBI.2011.5872394

Berg S. et al. ilastik: interactive machine learning for (bio)image analysis.
Nature Methods 2019. doi:10.1038/s41592-019-0582-9
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Annotated

import cv2
import numpy as np

from .._checks import Spacing, check_image, check_spacing
from .._files import verify
from ..errors import UntrustedModelError
from ..io._atomic import atomic_write
from ..io.models import load_trusted
from ..params import FileRef, Param, Seed, declared, operation
from ..processing import gaussian_px

__all__ = [
    "DEFAULT_SCALES_MM",
    "FEATURES",
    "PixelClassifier",
    "UntrustedModelError",
    "feature_bank",
    "feature_names",
    "pixel_classifier",
]

#: Feature families of :func:`feature_bank`, in output order.
FEATURES = ("intensity", "gaussian", "gradient", "log", "dog", "structure", "hessian")

#: Default scales σ of the feature bank, in mm.
DEFAULT_SCALES_MM = (0.5, 1.0, 2.0, 4.0)

#: Outer (integration) scale of the structure tensor as a fraction of σ.
STRUCTURE_OUTER = 0.5

_COMPONENTS = {
    "gaussian": ("gaussian",),
    "gradient": ("gradient magnitude",),
    "log": ("LoG",),
    "dog": ("DoG",),
    "structure": ("structure tensor λ1", "structure tensor λ2"),
    "hessian": ("Hessian λ1", "Hessian λ2"),
}

_BORDER = cv2.BORDER_REFLECT_101


_SCALES_PARAM = Param(0.1, 20.0, 0.1, "mm", "Gaussian scales σ of the feature bank")


# ------------------------------------------------------------- validation


def _check_scales(scales_mm) -> tuple[float, ...]:
    """The declared (already checked) scales, sorted; at least one, distinct."""
    scales = tuple(scales_mm)
    if not scales:
        raise ValueError("scales_mm must hold at least one scale in mm; got ()")
    scales = tuple(sorted(scales))
    if len(set(scales)) != len(scales):
        raise ValueError(f"scales_mm must be distinct; got {tuple(scales_mm)}")
    return scales


def _check_features(features) -> tuple[str, ...]:
    if isinstance(features, str):
        features = (features,)
    features = tuple(features)
    unknown = [f for f in features if f not in FEATURES]
    if unknown:
        raise ValueError(
            f"unknown feature {unknown[0]!r}; choose from {', '.join(FEATURES)}"
        )
    if not features:
        raise ValueError(f"features must name at least one of {', '.join(FEATURES)}")
    if len(set(features)) != len(features):
        raise ValueError(f"features must not repeat; got {features}")
    # Output order is FEATURES' order, whatever order they were given in.
    return tuple(f for f in FEATURES if f in features)


def _image_and_spacing(image, spacing: Spacing) -> tuple[np.ndarray, tuple]:
    """Accept an array or a :class:`~medimg_lab.MedImage` (its spacing is default)."""
    if hasattr(image, "array") and hasattr(image, "spacing"):
        if len(image.spacing) < image.array.ndim:
            raise ValueError(
                f"image is a colour image (shape {image.array.shape}); the pixel "
                "classifier takes grey images and volumes: convert it to grey first"
            )
        if spacing is None:
            spacing = image.spacing
        image = image.array
    image = check_image(image, finite=True)
    return image, check_spacing(image.shape, spacing)


# ---------------------------------------------------------- feature bank


@declared
def feature_names(
    *,
    scales_mm: Annotated[tuple[float, ...], _SCALES_PARAM] = DEFAULT_SCALES_MM,
    features: tuple[str, ...] = FEATURES,
) -> list[str]:
    """Human-readable names of the features of :func:`feature_bank`, in order.

    Parameters
    ----------
    scales_mm : tuple of float
        Gaussian standard deviations σ in mm, each in [0.1, 20].
    features : tuple of str
        Families from :data:`FEATURES`.

    Returns
    -------
    list of str
        One name per feature channel, with its scale in mm.

    Examples
    --------
    >>> feature_names(scales_mm=(1, 2), features=("intensity", "hessian"))
    ['intensity', 'Hessian λ1 σ=1 mm', 'Hessian λ1 σ=2 mm', 'Hessian λ2 σ=1 mm', \
'Hessian λ2 σ=2 mm']
    """
    scales = _check_scales(scales_mm)
    names = []
    for feature in _check_features(features):
        if feature == "intensity":
            names.append("intensity")
            continue
        for component in _COMPONENTS[feature]:
            names.extend(f"{component} σ={s:g} mm" for s in scales)
    return names


def _layout(
    scales: tuple[float, ...], features: tuple[str, ...]
) -> dict[tuple[str, int], int]:
    """Output index of each (component, scale index); matches feature_names."""
    index, k = {}, 0
    for feature in features:
        if feature == "intensity":
            index["intensity", 0] = k
            k += 1
            continue
        for component in _COMPONENTS[feature]:
            for j in range(len(scales)):
                index[component, j] = k
                k += 1
    return index


def _smooth(
    image: np.ndarray, sigma_px: tuple[float, ...], out: np.ndarray | None = None
) -> np.ndarray:
    """The Gaussian of :func:`medimg_lab.processing.gaussian` (sigmas in px)."""
    return gaussian_px(image, sigma_px, out=out)


def _halo(scales: tuple[float, ...], spacing: tuple[float, ...]) -> int:
    """Slices a slab needs on each side so that chunked equals unchunked."""
    radius = max(max(1, math.ceil(4 * s / spacing[0])) for s in scales)
    return radius + 1  # + 1 for the central differences along z


def _reflect(index: np.ndarray, n: int) -> np.ndarray:
    """Indices mirrored into [0, n) as OpenCV's BORDER_REFLECT_101 does."""
    if n == 1:
        return np.zeros_like(index)
    period = 2 * n - 2
    index = np.abs(index) % period
    return np.where(index >= n, period - index, index)


def _flat(a: np.ndarray) -> np.ndarray:
    """A 2D single-channel view, as OpenCV's elementwise functions want."""
    return a.reshape(-1, a.shape[-1])


def _eigen2(a, b, c, trace, out1, out2) -> None:
    """Eigenvalues ``λ1 ≥ λ2`` of the symmetric 2×2 fields ``[[a, b], [b, c]]``.

    Closed form: ``trace/2 ± sqrt(((a - c)/2)² + b²)`` with ``trace = a + c``.
    Overwrites ``a`` and ``c``.
    """
    a, b, c, trace = _flat(a), _flat(b), _flat(c), _flat(trace)
    half_diff = cv2.addWeighted(a, 0.5, c, -0.5, 0.0, dst=a)
    radius = cv2.magnitude(half_diff, b, c)
    cv2.addWeighted(trace, 0.5, radius, 1.0, 0.0, dst=_flat(out1))
    cv2.addWeighted(trace, 0.5, radius, -1.0, 0.0, dst=_flat(out2))


_LOCAL = threading.local()

#: Scratch arrays up to this size are kept per thread between calls: a fresh
#: megabyte costs more in page faults than most filters cost to run on it.
_SCRATCH_KEEP_BYTES = 2**21


def _scratch(tag: str, shape: tuple[int, ...], n: int) -> list[np.ndarray]:
    """``n`` float32 work arrays of ``shape``, reused by this thread if small."""
    if 4 * math.prod(shape) > _SCRATCH_KEEP_BYTES:
        return [np.empty(shape, np.float32) for _ in range(n)]
    store = _LOCAL.__dict__.setdefault("scratch", {})
    arrays = store.setdefault((tag, shape), [])
    while len(arrays) < n:
        arrays.append(np.empty(shape, np.float32))
    return arrays[:n]


def _sobel(image, dx, dy, scale, out) -> np.ndarray:
    """Central differences (``ksize=1``) of a plane or of each slice."""
    pairs = zip(image, out, strict=True) if image.ndim == 3 else [(image, out)]
    for src, dst in pairs:
        cv2.Sobel(
            src, cv2.CV_32F, dx, dy, dst=dst, ksize=1, scale=scale, borderType=_BORDER
        )
    return out


def _scale_features(image, sig, step, dst, around) -> np.ndarray:
    """Features of one scale, written into ``dst``; returns ``G_σ * f``.

    ``image`` is a 2D image or a chunk of slices, ``sig`` the Gaussian's SD in
    its pixels per axis, ``step`` its mm per pixel per axis and ``dst`` maps
    component names to output arrays (those not wanted are absent).
    """
    volume = image.ndim == 3
    dz, dy, dx = (step[0] if volume else 1.0), step[-2], step[-1]
    if volume:
        g = _smooth(image, sig)[around]  # slices k0-1 .. k1, for differences in z
        core = g[1:-1]
        if "gaussian" in dst:
            dst["gaussian"][...] = core
    else:
        core = _smooth(image, sig, out=dst.get("gaussian"))
    grad, log = dst.get("gradient magnitude"), dst.get("LoG")
    hessian, structure = dst.get("Hessian λ1"), dst.get("structure tensor λ1")
    if grad is None and structure is None and hessian is None and log is None:
        return core
    gx, gy, hxx, hyy, hxy, trace, jxx, jxy = _scratch("work", core.shape, 8)
    _sobel(core, 1, 0, 1 / (2 * dx), gx)
    _sobel(core, 0, 1, 1 / (2 * dy), gy)
    if grad is not None:
        if volume:
            gz = g[2:] - g[:-2]
            gz *= np.float32(1 / (2 * dz))
            np.sqrt(gx * gx + gy * gy + gz * gz, out=grad)
        else:
            cv2.magnitude(gx, gy, grad)
    if hessian is not None or log is not None:
        _sobel(core, 2, 0, 1 / dx**2, hxx)
        _sobel(core, 0, 2, 1 / dy**2, hyy)
        if log is not None and not volume:
            trace = log  # in 2D the LoG is the Hessian's trace
        cv2.add(_flat(hxx), _flat(hyy), dst=_flat(trace))
        if log is not None and volume:
            hzz = g[2:] + g[:-2]
            hzz -= 2 * core
            hzz *= np.float32(1 / dz**2)
            np.add(trace, hzz, out=log)
        if hessian is not None:
            _sobel(gx, 0, 1, 1 / (2 * dy), hxy)
            _eigen2(hxx, hxy, hyy, trace, hessian, dst["Hessian λ2"])
    if structure is not None:
        # J = G_ρ * (∇f_σ ∇f_σᵀ), smoothed in-plane (per slice for volumes).
        outer = (STRUCTURE_OUTER * sig[-2], STRUCTURE_OUTER * sig[-1])
        trace = hxx  # free again
        cv2.multiply(_flat(gx), _flat(gx), dst=_flat(jxx))
        cv2.multiply(_flat(gx), _flat(gy), dst=_flat(jxy))
        jyy = cv2.multiply(_flat(gy), _flat(gy), dst=_flat(gy)).reshape(core.shape)
        for tensor in (jxx, jxy, jyy):
            for plane in tensor if volume else (tensor,):
                gaussian_px(plane, outer, out=plane)
        cv2.add(_flat(jxx), _flat(jyy), dst=_flat(trace))
        _eigen2(jxx, jxy, jyy, trace, structure, dst["structure tensor λ2"])
    return core


#: A scale runs on a pyramid level ``L`` (in-plane size / 2^L) when the
#: Gaussian left to apply there is still at least this many pixels.
PYRAMID_MIN_PX = 1.6


def _pyramid_level(sig_yx: tuple[float, float], shape_yx: tuple[int, int]) -> int:
    """The coarsest level at which a scale keeps ``PYRAMID_MIN_PX`` pixels.

    Going down and back up ``L`` levels (``pyrDown``/``pyrUp``, 5-tap binomial
    kernels of variance 1 pixel² of their level) adds ``2 (4^L - 1) / 3``
    pixels² of variance, which the Gaussian at level ``L`` leaves out.
    """
    level = 0
    while level < 3 and min(shape_yx) >> (level + 1) >= 16:
        extra = 2 * (4 ** (level + 1) - 1) / 3
        rest = min(s * s for s in sig_yx) - extra
        if rest <= 0 or math.sqrt(rest) / 2 ** (level + 1) < PYRAMID_MIN_PX:
            break
        level += 1
    return level


def _down(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return cv2.pyrDown(image, borderType=_BORDER)
    return np.stack([cv2.pyrDown(s, borderType=_BORDER) for s in image])


def _pad(image: np.ndarray, margin: int) -> np.ndarray:
    """Mirror (``BORDER_REFLECT_101``) ``margin`` pixels onto each in-plane side."""

    def pad(plane):
        return cv2.copyMakeBorder(plane, margin, margin, margin, margin, _BORDER)

    return pad(image) if image.ndim == 2 else np.stack([pad(s) for s in image])


def _up(
    low: np.ndarray, sizes: list[tuple[int, int]], margin: int, dst: np.ndarray
) -> None:
    """``pyrUp`` through the levels' sizes (finest last); crop ``margin`` into dst."""
    rows, cols = dst.shape[-2:]
    for z in range(low.shape[0]) if low.ndim == 3 else (None,):
        plane = low if z is None else low[z]
        for size in sizes:
            (up,) = _scratch("up", tuple(size), 1)
            plane = cv2.pyrUp(plane, dst=up, dstsize=size[::-1], borderType=_BORDER)
        (dst if z is None else dst[z])[...] = plane[
            margin : margin + rows, margin : margin + cols
        ]


_POOL = None
_WORKERS = max(1, min(4, os.cpu_count() or 1))


def _pool():
    """A small thread pool: OpenCV and numpy release the GIL, scales run in parallel."""
    global _POOL
    if _POOL is None:
        from concurrent.futures import ThreadPoolExecutor

        _POOL = ThreadPoolExecutor(_WORKERS, thread_name_prefix="medimg-features")
    return _POOL


def _one_scale(image, pyramid, margin, level, spacing, j, sigma, slots, out, around):
    """Features of scale ``j`` into ``out``, computed on pyramid level ``level``.

    ``pyramid[l]`` is the image padded by ``margin`` pixels (mirrored) and
    reduced ``l`` times, so that borders behave as at full resolution.
    """
    sig = [sigma / s for s in spacing]
    dst = {c: out[k] for (c, i), k in slots.items() if i == j and c != "intensity"}
    if level == 0:
        return _scale_features(image, tuple(sig), spacing, dst, around)
    low = pyramid[level]
    extra = 2 * (4**level - 1) / 3
    for axis in (-2, -1):
        sig[axis] = math.sqrt(sig[axis] ** 2 - extra) / 2**level
    step = list(spacing)
    step[-2:] = (spacing[-2] * 2**level, spacing[-1] * 2**level)
    shape = (out.shape[1], *low.shape[-2:]) if image.ndim == 3 else low.shape
    tmp = dict(zip(dst, _scratch("low", shape, len(dst)), strict=True))
    core = _scale_features(low, tuple(sig), tuple(step), tmp, around)
    sizes = [p.shape[-2:] for p in reversed(pyramid[:level])]
    for c, lowres in tmp.items():
        _up(lowres, sizes, margin, dst[c])
    if "gaussian" in dst:
        return dst["gaussian"]
    full = np.empty(out.shape[1:], np.float32)
    _up(core, sizes, margin, full)
    return full


def _compute(
    image: np.ndarray,
    spacing: tuple[float, ...],
    scales: tuple[float, ...],
    features: tuple[str, ...],
    keep: tuple[int, int] | None = None,
    pyramid: bool = True,
) -> np.ndarray:
    """The feature bank of a float32 image or chunk of slices.

    ``keep = (k0, k1)`` (volumes) restricts the output to slices ``k0:k1`` of
    the chunk; every filter still sees the whole chunk.
    """
    slots = _layout(scales, features)
    around = None
    if image.ndim == 3:
        k0, k1 = (0, image.shape[0]) if keep is None else keep
        crop = slice(k0, k1)
        out_shape = (k1 - k0, *image.shape[1:])
        around = _reflect(np.arange(k0 - 1, k1 + 1), image.shape[0])
    else:
        crop, out_shape = slice(None), image.shape
    out = np.empty((len(slots), *out_shape), np.float32)
    if ("intensity", 0) in slots:
        out[slots["intensity", 0]] = image[crop]
    if len(slots) == (("intensity", 0) in slots):
        return out
    levels = [
        _pyramid_level((s / spacing[-2], s / spacing[-1]), image.shape[-2:])
        if pyramid
        else 0
        for s in scales
    ]
    pyramid_images, margin = [], 0
    if max(levels) > 0:
        # Pad so that the reduced levels see the same mirrored borders as the
        # full-resolution filters: about 6 σ (Gaussian, outer scale, kernels).
        widest = max(
            s / min(spacing[-2:]) for s, lv in zip(scales, levels, strict=True) if lv
        )
        step = 2 ** max(levels)
        margin = -(-math.ceil(6 * widest) // step) * step
        margin = min(margin, step * (min(image.shape[-2:]) // step) - step)
        pyramid_images = [_pad(image, margin)]
        for _ in range(max(levels)):
            pyramid_images.append(_down(pyramid_images[-1]))
    order = sorted(range(len(scales)), key=lambda j: -scales[j])  # slowest first
    jobs = {
        j: _pool().submit(
            _one_scale,
            image,
            pyramid_images,
            margin,
            levels[j],
            spacing,
            j,
            scales[j],
            slots,
            out,
            around,
        )
        for j in order
    }
    smooth = {j: job.result() for j, job in jobs.items()}
    if ("DoG", 0) in slots:
        # The band between consecutive scales: G_{σ_(j-1)} * f - G_{σ_j} * f.
        for j in range(len(scales)):
            finer = image[crop] if j == 0 else smooth[j - 1]
            np.subtract(finer, smooth[j], out=out[slots["DoG", j]])
    return out


@declared
def feature_bank(
    image: np.ndarray,
    *,
    scales_mm: Annotated[tuple[float, ...], _SCALES_PARAM] = DEFAULT_SCALES_MM,
    features: tuple[str, ...] = FEATURES,
    spacing: Spacing = None,
    pyramid: bool = True,
) -> np.ndarray:
    """Multi-scale features of every pixel or voxel, as in ilastik.

    Parameters
    ----------
    image : (M, N) or (S, M, N) ndarray
        In physical units (HU for CT); integers are converted to float32.
    scales_mm : tuple of float
        Gaussian standard deviations σ in mm, each in [0.1, 20]; they are
        sorted ascending.
    features : tuple of str
        Families from :data:`FEATURES`; the output keeps that order.
    spacing : tuple of float, optional
        mm per axis; default 1 mm. A scale is ``σ / spacing`` pixels per axis.
    pyramid : bool
        Compute large scales on a coarser in-plane pyramid level (see the
        module notes); ``False`` filters every scale at full resolution.

    Returns
    -------
    (n_features, M, N) or (n_features, S, M, N) float32 ndarray
        Named by :func:`feature_names` with the same arguments. The whole bank
        of a volume is held at once here; :class:`PixelClassifier` works on
        volumes in slabs instead.

    Examples
    --------
    >>> image = np.zeros((32, 32), np.float32)
    >>> feature_bank(image, scales_mm=(1, 2)).shape
    (17, 32, 32)
    """
    image, sp = _image_and_spacing(image, spacing)
    scales = _check_scales(scales_mm)
    feats = _check_features(features)
    work = image.astype(np.float32, copy=False)
    return _compute(work, sp, scales, feats, pyramid=pyramid)


# -------------------------------------------------------------- classifier


def _apply(fn, x: np.ndarray, out: np.ndarray) -> None:
    """``out[:] = fn(x).T``, with the pixels split over the thread pool.

    Prediction is per pixel, so pieces of the pixels run in parallel: the
    forest's trees (see ``PixelClassifier._proba_function``) and the
    single-threaded SVM and linear pipelines alike.
    """
    n = x.shape[0]
    pieces = 1 if n < 32768 else 4 * _WORKERS
    bounds = np.linspace(0, n, pieces + 1).astype(int)

    def piece(i):
        a, b = bounds[i], bounds[i + 1]
        out[:, a:b] = fn(x[a:b]).T

    if pieces == 1:
        piece(0)
    else:
        list(_pool().map(piece, range(pieces)))


MODELS = ("forest", "svm", "linear")

#: Types a saved classifier may hold beyond those skops trusts by default
#: (numpy arrays, scikit-learn's pipelines, scalers and estimators);
#: :meth:`PixelClassifier.load` refuses any other.
TRUSTED_TYPES = [
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.tree._tree.Tree",
]

_FORMAT = "medimg_lab.PixelClassifier/1"


def _digest(image: np.ndarray) -> str:
    data = np.ascontiguousarray(image)
    return hashlib.blake2b(data.view(np.uint8).reshape(-1), digest_size=16).hexdigest()


def _region(region, shape: tuple[int, ...]) -> tuple[slice, ...]:
    """Normalise a region (tuple of slices, None = everything) to full slices."""
    if region is None:
        return tuple(slice(0, n) for n in shape)
    if isinstance(region, slice):
        region = (region,)
    region = tuple(region)
    if len(region) > len(shape) or not all(isinstance(r, slice) for r in region):
        raise ValueError(
            f"region must be a tuple of at most {len(shape)} slices (one per axis "
            f"of shape {shape}), such as np.s_[10:20, :]; got {region!r}"
        )
    region = region + (slice(None),) * (len(shape) - len(region))
    out = []
    for r, n in zip(region, shape, strict=True):
        start, stop, step = r.indices(n)
        if step != 1 or stop <= start:
            raise ValueError(
                f"region must select a non-empty range with step 1 on each axis of "
                f"shape {shape}; got {region!r}"
            )
        out.append(slice(start, stop))
    return tuple(out)


class PixelClassifier:
    """Train a per-pixel classifier from scribbles and segment images with it.

    Features are computed once per image and cached: retraining after a new
    scribble only refits the model. :attr:`feature_computations` counts the
    feature-bank evaluations (one per 2D image, one per slab of a volume).

    Parameters
    ----------
    model : {"forest", "svm", "linear"}
        A random forest (fast, the interactive default); an RBF support vector
        machine whose probabilities come from Platt scaling fitted on
        cross-validated decisions (slower: keep ``max_samples`` small); or
        multinomial logistic regression, whose weights are the ``a_i`` of
        ``u = Σ a_i f_i`` (:attr:`weights`). The SVM and linear models
        standardise the features first.
    scales_mm : tuple of float
        Scales σ of the feature bank in mm (see :func:`feature_bank`).
    features : tuple of str
        Feature families (see :data:`FEATURES`).
    n_estimators : int
        Trees of the forest. From 1,000 training pixels on, each tree grows
        on a bootstrap sample of half of them (faster retraining).
    max_depth : int or None
        Depth limit of each tree; ``None`` grows them fully (slower).
    max_samples : int
        At most this many labelled pixels train the model; beyond it a random
        subset (seeded), spread as evenly over the classes as they allow.
    C : float
        Inverse regularisation strength of the SVM and the linear model.
    chunk_slices : int or None
        Slices per slab for volumes; ``None`` picks about 2 million voxels per
        slab. Each slab is filtered with a halo of ``ceil(4 σ_max / Δz) + 1``
        slices on each side, so that chunked equals unchunked.
    seed : int
        Seed of the subsampling and the model.
    cache_mb : float
        Memory for cached features: the banks of 2D images (the last one is
        always kept) and the slices of a volume that hold scribbles, so that
        more strokes there, or predicting there, recompute nothing. The
        features of every labelled voxel are kept besides.
    pyramid : bool
        Compute large scales on a coarser pyramid level (see
        :func:`feature_bank`).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> image = rng.normal(0, 1, (48, 48)).astype(np.float32)
    >>> image[12:36, 12:36] += 4
    >>> scribbles = np.zeros(image.shape, np.int8)
    >>> scribbles[20:28, 24], scribbles[2:46, 3] = 1, 2
    >>> clf = PixelClassifier("forest", n_estimators=10).fit(image, scribbles)
    >>> labels = clf.predict()
    >>> int(labels[24, 24]), int(labels[4, 40])
    (1, 2)
    """

    @declared
    def __init__(
        self,
        model: Annotated[
            str, Param(choices=MODELS, doc="classifier of the feature vectors")
        ] = "forest",
        *,
        scales_mm: Annotated[tuple[float, ...], _SCALES_PARAM] = DEFAULT_SCALES_MM,
        features: tuple[str, ...] = FEATURES,
        n_estimators: Annotated[
            int, Param(1, 500, 1, "trees", "trees of the random forest")
        ] = 50,
        max_depth: Annotated[
            int | None, Param(1, 64, 1, "levels", "depth limit of each tree")
        ] = 12,
        max_samples: Annotated[
            int,
            Param(10, 1_000_000, 100, "pixels", "labelled pixels used for training"),
        ] = 5000,
        C: Annotated[
            float, Param(1e-4, 1e4, 0.1, "", "inverse regularisation (svm, linear)")
        ] = 1.0,
        chunk_slices: Annotated[
            int | None, Param(1, 4096, 1, "slices", "slab thickness for volumes")
        ] = None,
        seed: Seed = 0,
        cache_mb: Annotated[
            float, Param(0, 65536, 64, "MB", "memory for cached feature banks")
        ] = 512,
        pyramid: bool = True,
    ):
        # The declared arguments were checked and coerced by @declared.
        self.model = model
        self.scales_mm = _check_scales(scales_mm)
        self.features = _check_features(features)
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.max_samples = max_samples
        self.C = C
        self.chunk_slices = chunk_slices
        self.seed = seed
        self.cache_mb = cache_mb
        self.pyramid = bool(pyramid)
        #: Feature-bank evaluations so far (a 2D image, or one slab of a volume).
        self.feature_computations = 0
        self._estimator = None
        self.classes = None
        self._fit_key = None
        self._image = None
        self._spacing = None
        # ("bank", key) -> 2D bank; ("slice", key, z) -> (n_features, M, N) of a
        # scribbled slice of a volume; least recently used first.
        self._cache: OrderedDict = OrderedDict()
        self._voxels: dict = {}  # key -> (sorted flat indices, features) of a volume
        self._memo = None  # (key, region, version) -> probabilities
        self._version = 0
        self._leaf_tables, self._leaf_version = None, None

    def __repr__(self) -> str:
        extra = (
            f", n_estimators={self.n_estimators}, max_depth={self.max_depth}"
            if self.model == "forest"
            else f", C={self.C:g}"
        )
        return (
            f"PixelClassifier({self.model!r}, scales_mm={self.scales_mm}{extra}, "
            f"n_features={self.n_features})"
        )

    # ------------------------------------------------------------ features

    @property
    def feature_names(self) -> list[str]:
        """Names of the features, in the order of :attr:`weights`' columns."""
        return feature_names(scales_mm=self.scales_mm, features=self.features)

    @property
    def n_features(self) -> int:
        """Number of features per pixel: :func:`feature_names` of the settings."""
        return len(_layout(self.scales_mm, self.features))

    def _key(self, image: np.ndarray, spacing: tuple) -> tuple:
        return (image.shape, image.dtype.str, spacing, _digest(image))

    def _remember(self, name: tuple, value: np.ndarray) -> None:
        """Cache ``value``; drop the least recently used beyond ``cache_mb``."""
        self._cache[name] = value
        self._cache.move_to_end(name)
        budget = self.cache_mb * 2**20
        total = sum(v.nbytes for v in self._cache.values())
        while total > budget and len(self._cache) > 1:
            _, dropped = self._cache.popitem(last=False)
            total -= dropped.nbytes

    def _recall(self, name: tuple) -> np.ndarray | None:
        if name in self._cache:
            self._cache.move_to_end(name)
            return self._cache[name]
        return None

    def _bank(self, image: np.ndarray, spacing: tuple, key: tuple) -> np.ndarray:
        """The 2D feature bank of an image, computed once and cached."""
        bank = self._recall(("bank", key))
        if bank is None:
            bank = _compute(
                image.astype(np.float32, copy=False),
                spacing,
                self.scales_mm,
                self.features,
                pyramid=self.pyramid,
            )
            self.feature_computations += 1
            self._remember(("bank", key), bank)
        return bank

    def _slab_size(self, shape: tuple[int, ...]) -> int:
        if self.chunk_slices is not None:
            return self.chunk_slices
        return max(1, min(shape[0], 2**21 // (shape[1] * shape[2])))

    def _slab(self, volume: np.ndarray, spacing: tuple, z0: int, z1: int) -> np.ndarray:
        """Features of slices z0:z1 of a float32 volume, from a chunk with halo."""
        halo = _halo(self.scales_mm, spacing)
        c0, c1 = max(0, z0 - halo), min(volume.shape[0], z1 + halo)
        self.feature_computations += 1
        return _compute(
            volume[c0:c1],
            spacing,
            self.scales_mm,
            self.features,
            (z0 - c0, z1 - c0),
            pyramid=self.pyramid,
        )

    def _slabs(self, z0: int, z1: int, size: int):
        for start in range(z0, z1, size):
            yield start, min(z1, start + size)

    def _voxel_features(
        self, volume: np.ndarray, spacing: tuple, key: tuple, labelled: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Features of the labelled voxels of a volume, cached, slab by slab.

        Voxels already seen come from the voxel cache, new ones on a cached
        slice from that slice; only runs of other slices are computed, and
        their slices are cached.
        """
        plane = volume.shape[1] * volume.shape[2]
        cached_idx, cached_x = self._voxels.get(
            key, (np.empty(0, np.int64), np.empty((0, self.n_features), np.float32))
        )
        missing = labelled[~np.isin(labelled, cached_idx)]
        if missing.size == 0:
            return cached_idx, cached_x
        zs = np.unique(missing // plane)
        slices = {int(z): self._recall(("slice", key, int(z))) for z in zs}
        todo = np.array([z for z, f in slices.items() if f is None], np.int64)
        size = self._slab_size(volume.shape)
        start = 0
        while start < todo.size:
            # A run of scribbled slices that fits in one slab.
            stop = int(np.searchsorted(todo, todo[start] + size))
            z0, z1 = int(todo[start]), int(todo[stop - 1]) + 1
            feats = self._slab(volume, spacing, z0, z1)
            for z in todo[start:stop]:
                slices[int(z)] = np.ascontiguousarray(feats[:, z - z0])
            start = stop
        new_x = np.empty((missing.size, self.n_features), np.float32)
        for z, feats in slices.items():
            inside = (missing >= z * plane) & (missing < (z + 1) * plane)
            new_x[inside] = feats.reshape(self.n_features, -1)[
                :, missing[inside] - z * plane
            ].T
            self._remember(("slice", key, z), feats)
        cached_idx = np.concatenate([cached_idx, missing])
        cached_x = np.concatenate([cached_x, new_x])
        order = np.argsort(cached_idx)
        cached_idx, cached_x = cached_idx[order], cached_x[order]
        self._voxels = {key: (cached_idx, cached_x)}  # one volume kept
        return cached_idx, cached_x

    # -------------------------------------------------------------- training

    def _make_estimator(self, counts: np.ndarray):
        """A fresh scikit-learn model; ``counts`` are the training pixels per class."""
        from sklearn.ensemble import RandomForestClassifier
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        if self.model == "forest":
            return RandomForestClassifier(
                n_estimators=self.n_estimators,
                max_depth=self.max_depth,
                # Each tree grows on a bootstrap of half the pixels: 1.5x faster
                # retraining for the live loop, with 50 trees still stable.
                max_samples=0.5 if counts.sum() >= 1000 else None,
                n_jobs=-1,
                random_state=self.seed,
            )
        if self.model == "svm":
            from sklearn.calibration import CalibratedClassifierCV
            from sklearn.svm import SVC

            if counts.min() < 2:
                raise ValueError(
                    "model='svm' needs at least 2 labelled pixels per class (its "
                    f"probabilities are calibrated by cross-validation); got "
                    f"{counts.min()} for one class"
                )
            # Platt scaling of the RBF SVM, fitted on cross-validated decisions.
            svm = SVC(C=self.C, kernel="rbf", gamma="scale")
            calibrated = CalibratedClassifierCV(
                svm, method="sigmoid", cv=int(min(5, counts.min())), ensemble=False
            )
            return make_pipeline(StandardScaler(), calibrated)
        # Newton-CG: 20x faster than L-BFGS on nearly separable scribbles.
        logistic = LogisticRegression(C=self.C, solver="newton-cg", max_iter=500)
        return make_pipeline(StandardScaler(), logistic)

    def _subsample(self, labelled: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Positions of at most max_samples labelled pixels, even over classes."""
        if labelled.size <= self.max_samples:
            return np.arange(labelled.size)
        rng = np.random.default_rng(self.seed)
        classes, counts = np.unique(y, return_counts=True)
        # Water-filling: small classes keep all their pixels, the rest share.
        quota = np.zeros_like(counts)
        budget, left = self.max_samples, len(classes)
        for i in np.argsort(counts):
            quota[i] = min(counts[i], budget // left)
            budget -= quota[i]
            left -= 1
        picks = [
            rng.choice(np.flatnonzero(y == c), q, replace=False)
            for c, q in zip(classes, quota, strict=True)
        ]
        return np.sort(np.concatenate(picks))

    def fit(self, image, scribbles, *, spacing: Spacing = None) -> PixelClassifier:
        """Train on the labelled pixels of ``scribbles``.

        Parameters
        ----------
        image : (M, N) or (S, M, N) ndarray or MedImage
            In physical units. A MedImage brings its spacing.
        scribbles : int ndarray of the image's shape
            0 = unlabelled, 1..K = classes; at least two classes.
        spacing : tuple of float, optional
            mm per axis; default 1 mm (or the MedImage's).

        Returns
        -------
        self
        """
        image, sp = _image_and_spacing(image, spacing)
        scribbles = np.asarray(scribbles)
        if scribbles.shape != image.shape:
            raise ValueError(
                f"scribbles must have the image's shape {image.shape}; got "
                f"{scribbles.shape}"
            )
        if scribbles.dtype.kind not in "iub":
            raise ValueError(
                "scribbles must be an integer array (0 = unlabelled, 1..K = "
                f"classes); got dtype {scribbles.dtype}"
            )
        if scribbles.dtype.kind == "i" and scribbles.min() < 0:
            raise ValueError(
                f"scribbles must be >= 0 (0 = unlabelled); got {scribbles.min()}"
            )
        labelled = np.flatnonzero(scribbles)
        if labelled.size == 0:
            raise ValueError(
                "scribbles label no pixel: draw strokes of at least two classes "
                "(values 1..K; 0 = unlabelled)"
            )
        y = scribbles.reshape(-1)[labelled]
        classes = np.unique(y)
        if classes.size < 2:
            raise ValueError(
                f"scribbles hold only class {classes[0]}; at least two classes are "
                "needed (values 1..K; 0 = unlabelled)"
            )
        key = self._key(image, sp)
        if image.ndim == 2:
            bank = self._bank(image, sp, key).reshape(self.n_features, -1)
            pick = labelled[self._subsample(labelled, y)]
            x = bank[:, pick].T
        else:
            work = image.astype(np.float32, copy=False)
            cached_idx, cached_x = self._voxel_features(work, sp, key, labelled)
            pick = labelled[self._subsample(labelled, y)]
            x = cached_x[np.searchsorted(cached_idx, pick)]
        target = scribbles.reshape(-1)[pick]
        estimator = self._make_estimator(np.unique(target, return_counts=True)[1])
        estimator.fit(x, target)
        self._estimator = estimator
        self.classes = estimator.classes_.astype(scribbles.dtype)
        #: Labelled pixels the model was trained on (after subsampling).
        self.n_training_pixels = int(pick.size)
        if self._fit_key != key:
            self._image = np.array(image, copy=True)
            self._spacing, self._fit_key = sp, key
        self._version += 1
        return self

    # ------------------------------------------------------------ prediction

    def _check_fitted(self) -> None:
        if self._estimator is None:
            from sklearn.exceptions import NotFittedError

            raise NotFittedError(
                "this PixelClassifier is not trained yet: call fit(image, scribbles) "
                "first"
            )

    def _target(self, image, spacing):
        self._check_fitted()
        if image is None:
            return self._image, self._spacing, self._fit_key
        image, sp = _image_and_spacing(image, spacing)
        return image, sp, self._key(image, sp)

    def _features_map(self, image, spacing, key, region, fn, n_out):
        """Apply ``fn`` (features (n, n_features) -> (n, n_out)) over a region."""
        out = np.empty((n_out, *(r.stop - r.start for r in region)), np.float32)
        if image.ndim == 2:
            bank = self._bank(image, spacing, key)[(slice(None), *region)]
            _apply(fn, bank.reshape(self.n_features, -1).T, out.reshape(n_out, -1))
            return out
        work = image.astype(np.float32, copy=False)
        zr, yr, xr = region
        for z0, z1 in self._slabs(zr.start, zr.stop, self._slab_size(image.shape)):
            cached = [self._recall(("slice", key, z)) for z in range(z0, z1)]
            if all(c is not None for c in cached):  # scribbled slices
                feats = np.stack([c[:, yr, xr] for c in cached], axis=1)
            else:
                feats = self._slab(work, spacing, z0, z1)[:, :, yr, xr]
            x = feats.reshape(self.n_features, -1).T
            z = slice(z0 - zr.start, z1 - zr.start)
            _apply(fn, x, out[:, z].reshape(n_out, -1))
        return out

    def _proba_function(self):
        """Map features ``(n, n_features)`` to probabilities ``(n, K)``."""
        if self.model != "forest":
            return self._estimator.predict_proba
        # The forest's mean of per-tree class frequencies, as scikit-learn's
        # predict_proba, from float32 leaf tables: no (n, K) float64 array
        # per tree, and the pixels (not the trees) are split over threads.
        trees = self._estimator.estimators_
        if self._leaf_version != self._version:
            self._leaf_tables = []
            for tree in trees:
                value = tree.tree_.value[:, 0, :]
                total = value.sum(axis=1, keepdims=True)
                self._leaf_tables.append((value / total).astype(np.float32))
            self._leaf_version = self._version
        tables = self._leaf_tables

        def proba(x):
            acc = np.zeros((x.shape[0], tables[0].shape[1]), np.float32)
            leaf = np.empty_like(acc)
            for tree, table in zip(trees, tables, strict=True):
                np.take(table, tree.apply(x, check_input=False), axis=0, out=leaf)
                acc += leaf
            acc *= np.float32(1 / len(trees))
            return acc

        return proba

    def predict_proba(
        self, image=None, *, region=None, spacing: Spacing = None
    ) -> np.ndarray:
        """Per-class probabilities ``P(C_k | x)`` of every pixel.

        Parameters
        ----------
        image : (M, N) or (S, M, N) ndarray or MedImage, optional
            Default the image the classifier was trained on.
        region : tuple of slices, optional
            Predict only this box (the visible part, one slice of a volume),
            such as ``np.s_[100:200, :]``; default everything.
        spacing : tuple of float, optional
            mm per axis of ``image``; default 1 mm (or the MedImage's).

        Returns
        -------
        (K, ...) float32 ndarray
            Row ``k`` is the probability of class :attr:`classes` ``[k]``; the
            other axes are the region's shape. The rows sum to 1.
        """
        image, sp, key = self._target(image, spacing)
        region = _region(region, image.shape)
        memo = (key, tuple((r.start, r.stop) for r in region), self._version)
        if self._memo is not None and self._memo[0] == memo:
            return self._memo[1].copy()
        proba = self._features_map(
            image, sp, key, region, self._proba_function(), len(self.classes)
        )
        self._memo = (memo, proba)
        return proba.copy()

    def predict(
        self, image=None, *, region=None, spacing: Spacing = None
    ) -> np.ndarray:
        """Labels: the most probable class of every pixel.

        Takes the arguments of :meth:`predict_proba`.

        Parameters
        ----------
        image : (M, N) or (S, M, N) ndarray or MedImage, optional
            Default the image the classifier was trained on.
        region : tuple of slices, optional
            Predict only this box (the visible part, one slice of a volume);
            default everything.
        spacing : tuple of float, optional
            mm per axis of ``image``; default 1 mm (or the MedImage's).

        Returns
        -------
        ndarray of the region's shape
            Values from :attr:`classes`, in the scribbles' dtype.
        """
        proba = self.predict_proba(image, region=region, spacing=spacing)
        return self.classes[np.argmax(proba, axis=0)]

    @declared
    def uncertainty(
        self,
        image=None,
        *,
        region=None,
        spacing: Spacing = None,
        kind: Annotated[
            str, Param(choices=("entropy", "margin"), doc="uncertainty measure")
        ] = "entropy",
    ) -> np.ndarray:
        """Where the classifier is unsure: scribble there next.

        ``kind="entropy"`` (default) is the normalised Shannon entropy
        ``-Σ_k p_k log p_k / log K``; ``kind="margin"`` is ilastik's
        ``1 - (p_(1) - p_(2))``, one minus the gap between the two most
        probable classes. Both are 0 for a certain pixel and 1 for a uniform
        one. Takes the arguments of :meth:`predict_proba`.

        Parameters
        ----------
        image : (M, N) or (S, M, N) ndarray or MedImage, optional
            Default the image the classifier was trained on.
        region : tuple of slices, optional
            Predict only this box (the visible part, one slice of a volume);
            default everything.
        spacing : tuple of float, optional
            mm per axis of ``image``; default 1 mm (or the MedImage's).
        kind : {"entropy", "margin"}
            The measure: normalised entropy, or one minus the margin.

        Returns
        -------
        float32 ndarray of the region's shape, in [0, 1]
        """
        proba = self.predict_proba(image, region=region, spacing=spacing)
        if kind == "margin":
            top = np.sort(proba, axis=0)
            return (1 - (top[-1] - top[-2])).astype(np.float32)
        from scipy.special import entr

        entropy = entr(proba).sum(axis=0) / np.float32(np.log(len(self.classes)))
        return np.clip(entropy, 0, 1).astype(np.float32)

    # ---------------------------------------------------------- linear model

    def _linear(self):
        self._check_fitted()
        if self.model != "linear":
            raise ValueError(
                f"weights exist for model='linear' only; this classifier is "
                f"model={self.model!r}"
            )
        scaler, logistic = self._estimator[0], self._estimator[-1]
        return scaler, logistic

    @property
    def weights(self) -> np.ndarray:
        """The ``a_i`` of ``u = Σ a_i f_i + b``, over standardised features.

        For the linear model, ``u_k(x) = Σ_i a_{k,i} z_i(x) + b_k`` with
        ``z_i = (f_i - μ_i) / s_i`` the feature standardised by the mean and
        SD of the training pixels, so weights of different features compare.
        With two classes there is one row, the log-odds of ``classes[1]``
        against ``classes[0]``; with K > 2 there are K rows and
        ``P(C_k | x) = softmax_k(u)``.

        Returns
        -------
        (1 or K, n_features) float ndarray
            Columns named by :attr:`feature_names`; see :attr:`intercept`.
        """
        return self._linear()[1].coef_.copy()

    @property
    def intercept(self) -> np.ndarray:
        """The ``b`` of :attr:`weights`: (1 or K,) ndarray."""
        return self._linear()[1].intercept_.copy()

    @property
    def weights_in_feature_units(self) -> tuple[np.ndarray, np.ndarray]:
        """``(a, b)`` of ``u = Σ a_i f_i + b`` on the features in their own units.

        ``a_i = w_i / s_i`` and ``b = b_std - Σ w_i μ_i / s_i``, where ``w``
        and ``b_std`` are :attr:`weights` and :attr:`intercept`; ``a_i`` is in
        1 / (the unit of ``f_i``), for example 1/HU for the intensity.
        """
        scaler, logistic = self._linear()
        a = logistic.coef_ / scaler.scale_
        b = logistic.intercept_ - a @ scaler.mean_
        return a, b

    def decision_function(
        self, image=None, *, region=None, spacing: Spacing = None
    ) -> np.ndarray:
        """The maps ``u_k(x, y) = Σ_i a_{k,i} f_i(x, y) + b_k`` of the linear model.

        Takes the arguments of :meth:`predict_proba`.

        Parameters
        ----------
        image : (M, N) or (S, M, N) ndarray or MedImage, optional
            Default the image the classifier was trained on.
        region : tuple of slices, optional
            Predict only this box (the visible part, one slice of a volume);
            default everything.
        spacing : tuple of float, optional
            mm per axis of ``image``; default 1 mm (or the MedImage's).

        Returns
        -------
        (1 or K, ...) float32 ndarray
            One map per row of :attr:`weights`.
        """
        self._linear()
        image, sp, key = self._target(image, spacing)
        region = _region(region, image.shape)
        rows = self._estimator[-1].coef_.shape[0]

        def u(x):
            values = self._estimator.decision_function(x)
            return values.reshape(len(x), rows)

        return self._features_map(image, sp, key, region, u, rows)

    @property
    def feature_importances(self) -> np.ndarray:
        """Mean decrease in impurity of each feature (forest): (n_features,)."""
        self._check_fitted()
        if self.model != "forest":
            raise ValueError(
                f"feature_importances exist for model='forest' only; this "
                f"classifier is model={self.model!r}"
            )
        return self._estimator.feature_importances_.copy()

    # ---------------------------------------------------------- persistence

    def save(self, path, *, overwrite: bool = False) -> Path:
        """Save the trained model with skops (no pickle), to ``path``.

        The file holds the model and its feature settings, not the image. It
        is written atomically; an existing file is replaced only with
        ``overwrite=True``.

        Parameters
        ----------
        path : str or os.PathLike
            The file to write (``.skops``).
        overwrite : bool
            Replace an existing file.

        Returns
        -------
        pathlib.Path
            The file written.
        """
        import skops.io as sio

        self._check_fitted()
        path = Path(path)
        state = {
            "format": _FORMAT,
            "model": self.model,
            "scales_mm": list(self.scales_mm),
            "features": list(self.features),
            "n_estimators": self.n_estimators,
            "max_depth": self.max_depth,
            "max_samples": self.max_samples,
            "C": self.C,
            "chunk_slices": self.chunk_slices,
            "seed": self.seed,
            "cache_mb": self.cache_mb,
            "pyramid": self.pyramid,
            "classes": self.classes,
            "estimator": self._estimator,
        }
        data = sio.dumps(state)
        return atomic_write(
            path, lambda tmp: tmp.write_bytes(data), overwrite=overwrite
        )

    @classmethod
    def load(cls, path) -> PixelClassifier:
        """Load a classifier saved by :meth:`save`, refusing untrusted types.

        Only the types in :data:`TRUSTED_TYPES` (scikit-learn estimators,
        numpy arrays) are accepted; anything else raises
        :class:`UntrustedModelError` before an object is built.

        Parameters
        ----------
        path : str or os.PathLike
            A file written by :meth:`save`.

        Returns
        -------
        PixelClassifier
            Trained, with the saved feature settings.
        """
        state = load_trusted(
            path,
            trusted=TRUSTED_TYPES,
            format=_FORMAT,
            saved_by="PixelClassifier.save",
            what="classifier",
        )
        clf = cls(
            state["model"],
            scales_mm=tuple(state["scales_mm"]),
            features=tuple(state["features"]),
            n_estimators=state["n_estimators"],
            max_depth=state["max_depth"],
            max_samples=state["max_samples"],
            C=state["C"],
            chunk_slices=state["chunk_slices"],
            seed=state["seed"],
            cache_mb=state["cache_mb"],
            pyramid=state["pyramid"],
        )
        clf._estimator = state["estimator"]
        clf.classes = np.asarray(state["classes"])
        clf._version = 1
        return clf


def read_model(ref) -> PixelClassifier:
    """The :class:`PixelClassifier` in the file ``ref`` names.

    Loaded with skops after its SHA-256 matched
    (:func:`medimg_lab._files.verify`); a classifier passes through.

    Parameters
    ----------
    ref : dict or PixelClassifier
        A file reference ``{"path": ..., "sha256": ...}``
        (:data:`medimg_lab.params.FileRef`), or a classifier.

    Returns
    -------
    PixelClassifier

    Raises
    ------
    NotFoundError
        If the model file is missing.
    DigestError
        If the file's SHA-256 is not the one named.
    """
    if isinstance(ref, PixelClassifier):
        return ref
    return PixelClassifier.load(verify(ref, what="model"))


@operation("segmentation", "Pixel classifier (scribbles)", keeps_units=False)
def pixel_classifier(
    image: np.ndarray,
    *,
    model: Annotated[
        FileRef,
        Param(
            file="model",
            doc="a trained PixelClassifier saved with skops (PixelClassifier.save), "
            "by path and SHA-256",
        ),
    ],
    background: Annotated[
        int | None,
        Param(1, 255, 1, "", "class labelled 0; the classes above it shift down"),
    ] = None,
    spacing: Spacing = None,
) -> np.ndarray:
    """Label an image with a trained pixel classifier: ``argmax_k P(C_k | x)``.

    The recipe step of the classifier trained in the segmentation panel: the
    model is a file beside the recipe, named by its relative path and its
    SHA-256, and loaded (with skops, trusted types only) only when the
    digest matches.

    Parameters
    ----------
    image : ([S,] M, N) ndarray
        The image to label, in the units the model was trained on.
    model : dict or PixelClassifier
        ``{"path": ..., "sha256": ...}`` of a file written by
        :meth:`PixelClassifier.save`, or the classifier itself.
    background : int, optional
        A class that is background: its pixels become 0 and the classes
        above it one less (the segmentation dashboard's first class).
    spacing : tuple of float, optional
        mm per axis; ``None`` means 1 mm.

    Returns
    -------
    ([S,] M, N) ndarray
        The classes of the scribbles (1..K), in the scribbles' dtype.

    Raises
    ------
    NotFoundError
        If the model file is missing.
    DigestError
        If the file's SHA-256 is not the one named.
    """
    image = check_image(image, finite=True)
    labels = read_model(model).predict(image, spacing=spacing)
    if background is None:
        return labels
    shifted = np.where(labels > background, labels - 1, labels)
    return np.where(labels == background, 0, shifted).astype(labels.dtype)
