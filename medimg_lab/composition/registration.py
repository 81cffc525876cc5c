r"""Registration: aligning a moving image onto a fixed one, rigid or affine.

A registration finds the transform :math:`T` that maps a point :math:`p` of
the fixed image to the matching point of the moving image, so that

.. math:: I_{moving}(T(p)) \approx I_{fixed}(p), \qquad
          T(p) = A\,(p - c) + c + t

with :math:`A` a rotation (``"rigid"``), a rotation times a scale
(``"similarity"``) or any 2×2 matrix (``"affine"``), :math:`c` the centre of
the fixed image and :math:`t` the shift, all in mm.

Methods, each coarse to fine over a Gaussian pyramid:

- ``"ecc"`` (the default): maximisation of the enhanced correlation
  coefficient (``cv2.findTransformECC``), started by ``"phase"``.
  Invariant to a change of window, offset or positive gain; an inverted
  image (negative gain) needs ``"mi"``.
- ``"phase"``: Fourier–Mellin phase correlation [1]_. Rotation (and scale)
  from the phase correlation of log-polar magnitude spectra, computed on a
  square grid (the windowed image zero-padded to a square: on an M × N grid
  the frequency steps along the two axes differ, and a rotation of the
  image is no rotation of its spectrum) and within the band both axes hold
  (an axis upsampled to square pixels has nothing above its own Nyquist).
  The strongest log-polar peaks, no rotation, and each turned by 180° are
  candidates, told apart by the windowed phase correlation of the images
  derotated; then translation, level by level; then a polish: the shifts
  of tiles about half the shorter side, fitted by least squares, refine the
  rotation to hundredths of a degree. Translation, rigid and similarity;
  not affine.
- ``"orb"``, ``"akaze"``, ``"sift"``: keypoints matched with Lowe's ratio
  test and a transform fitted by RANSAC on the matches (rigid and similarity
  refitted by least squares on the inliers), then (not for affine) the
  tile polish of ``"phase"``, kept where it raises the overlap's NCC:
  keypoints sit on the detectors' scale grids, a few tenths of a pixel
  off. Multi-scale through the detectors' own scale spaces. The two images
  may differ in shape. OpenCV 5 moved AKAZE to its contrib modules (the
  project depends on ``opencv-contrib-python-headless``);
  :func:`akaze_available` tells.
- ``"mi"``: maximisation of mutual information [6]_ by Powell's method,
  coarse to fine, from a start by phase correlation of the gradient
  magnitudes. It needs no intensity relation between the images, so it
  aligns across contrasts: a T1 image with its inverted copy, a CT with an
  MR. Translation, rigid and similarity. The search may end a few
  thousandths of a pixel apart from run to run (OpenCV's vectorised paths
  round differently with memory alignment); the other methods repeat
  exactly.

Measured on real images moved by known motions (head CT 512² and its
256×512 and 512×300 crops, a chest film crop 389×300, a shoulder MR crop
400×512; isotropic and 0.48 × 0.80 mm pixels; ±15°, ±20 mm; 1 % noise),
every method came within 0.13 px and 0.04° (``tests/composition/
test_registration_shapes.py`` asserts 0.5 px and 0.5°).

Every result is checked before it is returned, and a transform that the
images do not pin down raises :class:`RegistrationError` with a sentence
saying why, rather than coming back with a good-looking NCC: the moving
image must cover a tenth of the fixed one, the two must correlate
positively (their edges, for ``"mi"``), and the match must be distinct:
moved by 4 % of the image or turned by about 10°, the NCC must drop. A
noise pair, a smooth ramp (every shift along it fits), a disc (every
rotation fits), a motion beyond the method's reach or an inverted copy
registered by intensity fail these tests.

Conventions
-----------
- ``shift_mm`` is ``(dy, dx)`` in mm, along the array's row and column
  axes, like ``spacing``. Rows point down the screen.
- ``rotation_deg`` is counter-clockwise as displayed (rows down), the
  convention of ``cv2.getRotationMatrix2D`` and ``skimage.transform.rotate``.
- :func:`rigid_transform` moves an image's content by ``shift_mm`` and
  ``rotation_deg`` about its centre, and :func:`register` reports the same
  parameters: ``register(fixed, rigid_transform(fixed, shift_mm=s,
  rotation_deg=r))`` gives ``shift_mm == s`` and ``rotation_deg == r``.
- ``Registration.matrix`` is the OpenCV 2×3 pixel matrix in ``(x, y) =
  (column, row)`` order that maps a moving pixel to the fixed pixel it lands
  on, :math:`T^{-1}` in pixels: ``cv2.warpAffine(moving, matrix, (N, M))``
  gives ``resampled``.
- Intensities are only normalised inside (robust 0.5–99.5 % percentile
  window), so HU, MR and 16-bit radiographs all work; ``resampled`` keeps
  the moving image's units.

OpenCV does the estimation. :func:`register` also resamples the moving
image and computes NCC and MI on the overlap, which cost about as much as a
translation estimate on a 512² image.

References
----------
.. [1] B. S. Reddy and B. N. Chatterji, "An FFT-based technique for
   translation, rotation, and scale-invariant image registration", IEEE
   Trans. Image Process. 5(8):1266–1271, 1996. doi:10.1109/83.506761
.. [2] G. D. Evangelidis and E. Z. Psarakis, "Parametric image alignment
   using enhanced correlation coefficient maximization", IEEE TPAMI
   30(10):1858–1865, 2008. doi:10.1109/TPAMI.2008.113
.. [3] E. Rublee, V. Rabaud, K. Konolige and G. Bradski, "ORB: an efficient
   alternative to SIFT or SURF", ICCV 2011. doi:10.1109/ICCV.2011.6126544
.. [4] P. F. Alcantarilla, J. Nuevo and A. Bartoli, "Fast explicit diffusion
   for accelerated features in nonlinear scale spaces", BMVC 2013.
   doi:10.5244/C.27.13
.. [5] M. A. Fischler and R. C. Bolles, "Random sample consensus", Commun.
   ACM 24(6):381–395, 1981. doi:10.1145/358669.358692
.. [6] F. Maes, A. Collignon, D. Vandermeulen, G. Marchal and P. Suetens,
   "Multimodality image registration by maximization of mutual
   information", IEEE TMI 16(2):187–198, 1997. doi:10.1109/42.563664
.. [7] D. G. Lowe, "Distinctive image features from scale-invariant
   keypoints", IJCV 60(2):91–110, 2004.
   doi:10.1023/B:VISI.0000029664.99615.94
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Annotated

import cv2
import numpy as np

from .._checks import Spacing, check_image, check_spacing
from ..errors import MedImgError
from ..params import Param, declared, operation

__all__ = [
    "METHODS",
    "TRANSFORMS",
    "Registration",
    "RegistrationError",
    "akaze_available",
    "mutual_information",
    "ncc",
    "register",
    "rigid_transform",
]

#: Registration methods and the transforms each supports.
METHODS: dict[str, tuple[str, ...]] = {
    "phase": ("translation", "rigid", "similarity"),
    "ecc": ("translation", "rigid", "similarity", "affine"),
    "orb": ("translation", "rigid", "similarity", "affine"),
    "akaze": ("translation", "rigid", "similarity", "affine"),
    "sift": ("translation", "rigid", "similarity", "affine"),
    "mi": ("translation", "rigid", "similarity"),
}
#: Transform models, from the fewest to the most degrees of freedom.
TRANSFORMS = ("translation", "rigid", "similarity", "affine")

_INTERPOLATION = {
    "nearest": cv2.INTER_NEAREST,
    "linear": cv2.INTER_LINEAR,
    "cubic": cv2.INTER_CUBIC,
}
_CV_DTYPES = (np.uint8, np.uint16, np.int16, np.float32, np.float64)


class RegistrationError(MedImgError, RuntimeError):
    """A registration method found no transform (too few matches, no convergence)."""


# ------------------------------------------------------------------ helpers


def _as_array(
    image, name: str, min_size: int = 16
) -> tuple[np.ndarray, tuple[float, ...] | None]:
    """The pixel array of an ndarray or MedImage, and the MedImage's spacing."""
    spacing = None
    if hasattr(image, "array") and hasattr(image, "spacing"):
        if getattr(image, "is_color", False):
            raise ValueError(
                f"{name} is an RGB image of shape {image.array.shape}; register "
                "grey images: convert it first, e.g. image.array.mean(axis=-1)"
            )
        spacing = tuple(image.spacing)
        image = image.array
    if isinstance(image, np.ndarray | list | tuple):
        image = np.asarray(image)
    else:
        raise TypeError(
            f"{name} must be a numpy array or a MedImage; got {type(image).__name__}"
        )
    if image.ndim == 3:
        raise ValueError(
            f"{name} must be a 2D (M, N) grey image; got shape {image.shape}. "
            "Register a volume slice by slice, e.g. register(fixed[k], moving[k]), "
            "and convert an RGB image to grey first, e.g. rgb.mean(axis=-1)"
        )
    image = check_image(image, name, finite=True)
    if min(image.shape) < min_size:
        raise ValueError(
            f"{name} must be at least {min_size}×{min_size} pixels; got {image.shape}"
        )
    return image, spacing


def _normalise(image: np.ndarray) -> np.ndarray:
    """float32 in [0, 1] over the robust 0.5–99.5 % percentile window."""
    flat = image.ravel()
    if flat.size > 65_536:
        flat = flat[:: flat.size // 65_536]
    lo, hi = np.percentile(flat.astype(np.float64), (0.5, 99.5))
    if not hi > lo:
        lo, hi = float(image.min()), float(image.max())
    if not hi > lo:
        return np.zeros(image.shape, np.float32)
    out = (image.astype(np.float32) - np.float32(lo)) / np.float32(hi - lo)
    return np.clip(out, 0, 1, out=out)


def _h(m2x3: np.ndarray) -> np.ndarray:
    """3×3 homogeneous form of a 2×3 matrix."""
    return np.vstack([np.asarray(m2x3, np.float64)[:2], [0.0, 0.0, 1.0]])


def _scale_px_to_mm(spacing: tuple[float, float]) -> np.ndarray:
    """3×3 map from (x, y) pixels to (x, y) mm, origin at the first pixel's centre."""
    return np.diag([spacing[1], spacing[0], 1.0])


def _model(
    rotation_deg: float, scale: float, shift_xy: tuple[float, float], center_xy
) -> np.ndarray:
    """3×3 ``T(p) = s R (p - c) + c + t`` in (x, y), R counter-clockwise on screen."""
    a = math.radians(rotation_deg)
    cos, sin = scale * math.cos(a), scale * math.sin(a)
    lin = np.array([[cos, sin], [-sin, cos]])
    c = np.asarray(center_xy, np.float64)
    out = np.eye(3)
    out[:2, :2] = lin
    out[:2, 2] = c - lin @ c + np.asarray(shift_xy, np.float64)
    return out


def _rotation_scale(lin: np.ndarray) -> tuple[float, float]:
    """Rotation (degrees, counter-clockwise on screen) and scale of a 2×2 matrix."""
    u, _, vt = np.linalg.svd(lin)
    rot = u @ vt  # the nearest rotation (polar decomposition)
    if np.linalg.det(rot) < 0:
        u[:, -1] *= -1
        rot = u @ vt
    return math.degrees(math.atan2(rot[0, 1], rot[0, 0])), float(
        math.sqrt(abs(np.linalg.det(lin)))
    )


def _project(warp: np.ndarray, transform: str, center_xy) -> np.ndarray:
    """The nearest ``transform`` to a 3×3 warp, keeping where the centre maps."""
    if transform == "affine":
        return warp
    c = np.append(np.asarray(center_xy, np.float64), 1.0)
    target = (warp @ c)[:2]
    angle, scale = _rotation_scale(warp[:2, :2])
    if transform == "translation":
        angle, scale = 0.0, 1.0
    elif transform == "rigid":
        scale = 1.0
    return _model(angle, scale, target - c[:2], c[:2])


def _pyramid(image: np.ndarray, levels: int, min_size: int = 32) -> list[np.ndarray]:
    """Gaussian pyramid, finest first; level k has pixel coordinates x / 2**k."""
    out = [image]
    while len(out) < levels and min(out[-1].shape) >= 2 * min_size:
        out.append(cv2.pyrDown(out[-1]))
    return out


def _at_level(warp: np.ndarray, k: int) -> np.ndarray:
    """A full-resolution pixel warp expressed at pyramid level ``k``."""
    d = np.diag([0.5**k, 0.5**k, 1.0])
    return d @ warp @ np.linalg.inv(d)


# -------------------------------------------------------- phase correlation


def _highpass(shape: tuple[int, int]) -> np.ndarray:
    """Reddy & Chatterji's emphasis filter ``(1 - X)(2 - X)``, X = cos·cos."""
    fy = np.fft.fftshift(np.fft.fftfreq(shape[0]))[:, None]
    fx = np.fft.fftshift(np.fft.fftfreq(shape[1]))[None, :]
    x = np.cos(np.pi * fy) * np.cos(np.pi * fx)
    return ((1.0 - x) * (2.0 - x)).astype(np.float32)


def _square_spectrum(image: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Magnitude spectrum of the windowed image on a square grid.

    Zero frequency is at the centre.

    On an M × N grid with M ≠ N the frequency steps differ along the two
    axes (1/M and 1/N), so a rotation of the image is not a rotation of the
    spectrum's array and log-polar phase correlation finds a wrong angle.
    Zero-padded to a square of side S ≥ max(M, N), both steps are 1/S and
    the spectrum turns with the content.
    """
    h, w = image.shape
    side = cv2.getOptimalDFTSize(max(h, w))
    side += side % 2  # even: the zero frequency on a pixel
    weighted = image * window
    weighted -= window * np.float32(weighted.sum() / window.sum())  # no DC lobe
    square = np.zeros((side, side), np.float32)
    top, left = (side - h) // 2, (side - w) // 2
    square[top : top + h, left : left + w] = weighted
    planes = cv2.split(cv2.dft(square, flags=cv2.DFT_COMPLEX_OUTPUT))
    return np.fft.fftshift(cv2.magnitude(planes[0], planes[1]))


def _log_polar_spectrum(image: np.ndarray, window: np.ndarray, band: float):
    """High-passed magnitude spectrum on a log-polar grid (0–180°).

    ``band`` (≤ 1) is the fraction of the Nyquist frequency that both axes
    hold: an axis upsampled to square pixels carries nothing above its
    original Nyquist, an edge that would not turn with the content.
    Returns the (angles, radii) array and the largest radius in pixels.
    """
    spectrum = _square_spectrum(image, window)
    side = spectrum.shape[0]
    spectrum *= _highpass((side, side))
    radius = band * side / 2.0
    n_angles = 2 * max(image.shape)
    polar = cv2.warpPolar(
        spectrum,
        (max(int(radius), 8), 2 * n_angles),
        (side / 2.0, side / 2.0),
        radius,
        cv2.INTER_LINEAR | cv2.WARP_POLAR_LOG,
    )
    return polar[:n_angles], radius


def _rotation_candidates(
    fixed: np.ndarray, moving: np.ndarray, window: np.ndarray, band: float, n: int
) -> list[tuple[float, float]]:
    """The ``n`` strongest (rotation, scale) peaks of log-polar correlation.

    Rotation in degrees modulo 180, from the phase correlation of the
    log-polar spectra (Reddy & Chatterji [1]_).

    The strongest peak is not always the motion: structure that does not
    turn with the content (the pixel grid, a window cut across a long
    image) adds a peak at no rotation. The caller tells the candidates
    apart in the image domain.
    """
    pf, radius = _log_polar_spectrum(fixed, window, band)
    pm, _ = _log_polar_spectrum(moving, window, band)
    n_angles, n_radii = pf.shape
    spectra = [cv2.dft(p, flags=cv2.DFT_COMPLEX_OUTPUT) for p in (pf, pm)]
    cross = cv2.mulSpectrums(spectra[1], spectra[0], 0, conjB=True)
    re, im = cv2.split(cross)
    norm = cv2.magnitude(re, im) + np.float32(1e-12)
    surface = cv2.idft(
        cv2.merge([re / norm, im / norm]), flags=cv2.DFT_REAL_OUTPUT | cv2.DFT_SCALE
    )
    peaks = surface == cv2.dilate(surface, np.ones((5, 5), np.uint8))
    order = np.argsort(surface[peaks])[::-1][:n]
    out = []
    for a, r in np.argwhere(peaks)[order]:
        rows = [(a + d) % n_angles for d in (-1, 0, 1)]
        cols = [(r + d) % n_radii for d in (-1, 0, 1)]
        patch = np.clip(surface[np.ix_(rows, cols)], 0, None)
        total = float(patch.sum()) or 1.0
        da = a + float((patch.sum(1) @ [-1, 0, 1]) / total)
        dr = r + float((patch.sum(0) @ [-1, 0, 1]) / total)
        da = da - n_angles if da > n_angles / 2 else da
        dr = dr - n_radii if dr > n_radii / 2 else dr
        angle = -180.0 * da / n_angles
        scale = math.exp(-dr * math.log(radius) / n_radii)  # the spectrum shrinks
        out.append((angle, scale))
    return out


def _phase_step(
    fixed: np.ndarray,
    moving: np.ndarray,
    warp: np.ndarray,
    transform: str,
    band: float = 1.0,
) -> np.ndarray:
    """Refine a fixed→moving pixel warp by one Fourier–Mellin step.

    Rotation candidates (the log-polar peaks, no rotation, and each turned
    by 180°) are told apart by the peak of the windowed phase correlation
    of the images once derotated. Every level tries them all: a coarse
    level may pick a wrong one that a finer level puts right.
    """
    h, w = fixed.shape
    window = cv2.createHanningWindow((w, h), cv2.CV_32F)
    center = ((w - 1) / 2.0, (h - 1) / 2.0)
    current = _warp(moving, warp, (h, w))

    def trial(angle: float, scale: float) -> tuple[float, np.ndarray]:
        # m0(p) = current(turn(p)) is fixed shifted by d: T = turn ∘ shift(d)
        turn = _model(angle, scale, (0.0, 0.0), center)
        derotated = (
            current if angle == 0 and scale == 1 else _warp(current, turn, (h, w))
        )
        (dx, dy), response = _phase_correlate(fixed, derotated, window)
        return response, turn @ _model(0.0, 1.0, (dx, dy), center)

    if transform == "translation":
        return warp @ trial(0.0, 1.0)[1]
    found = [(0.0, 1.0), *_rotation_candidates(fixed, current, window, band, 3)]
    candidates: list[tuple[float, float]] = []
    for angle, scale in found:
        scale = scale if transform == "similarity" else 1.0
        for turned in (angle, angle - math.copysign(180.0, angle)):
            if all(
                abs(turned - a) > 0.05 or abs(scale - s) > 1e-3 for a, s in candidates
            ):
                candidates.append((turned, scale))
    best_step = max((trial(a, s) for a, s in candidates), key=lambda x: x[0])[1]
    return warp @ best_step


def _even_dft_size(n: int) -> int:
    """The smallest fast DFT length >= n that is even."""
    n = cv2.getOptimalDFTSize(n)
    while n % 2:
        n = cv2.getOptimalDFTSize(n + 1)
    return n


def _phase_correlate(a: np.ndarray, b: np.ndarray, window: np.ndarray):
    """``cv2.phaseCorrelate(a, b, window)``, without its two faults.

    OpenCV 5.0 multiplies its inputs by the window in place (a second call
    on the same arrays saw them windowed twice, and an ECC run after the
    phase start saw a windowed fixed image), and on an odd DFT length (666
    or 667 rows pad to 675) it reports the shift half a pixel off. The
    windowed images are new arrays here, zero-padded to even fast lengths.
    """
    h, w = a.shape
    size = (_even_dft_size(h), _even_dft_size(w))
    pa = np.zeros(size, np.float32)
    pb = np.zeros(size, np.float32)
    pa[:h, :w] = a * window
    pb[:h, :w] = b * window
    return cv2.phaseCorrelate(pa, pb)


def _warp(image: np.ndarray, warp: np.ndarray, shape, flags=cv2.INTER_LINEAR):
    """``out(p) = image(warp(p))`` on a grid of ``shape``; warp is 3×3 (x, y)."""
    return cv2.warpAffine(
        image,
        warp[:2],
        (shape[1], shape[0]),
        flags=flags | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )


def _register_phase(fixed, moving, transform, levels, band=1.0, polish=True):
    if transform == "translation":  # global already: one full-resolution step
        levels = 1
    pf, pm = _pyramid(fixed, levels), _pyramid(moving, levels)
    warp = np.eye(3)
    for k in range(len(pf) - 1, -1, -1):
        local = _phase_step(
            pf[k],
            pm[k],
            _at_level(warp, k),
            transform,
            min(1.0, band * 2**k),
        )
        warp = _at_level(local, -k)
    if transform == "translation" or not polish:
        return warp
    warp = _phase_polish(fixed, moving, warp, transform)
    return _phase_step(fixed, moving, warp, "translation")  # the whole image's shift


def _tiles(shape: tuple[int, int]) -> list[tuple[slice, slice]]:
    """A grid of tiles about half the shorter side, at least 2 × 2."""
    h, w = shape
    side = min(h, w) / 2.0
    rows, cols = max(2, round(h / side)), max(2, round(w / side))
    r = np.linspace(0, h, rows + 1).round().astype(int)
    c = np.linspace(0, w, cols + 1).round().astype(int)
    return [
        (slice(r[i], r[i + 1]), slice(c[j], c[j + 1]))
        for i in range(rows)
        for j in range(cols)
    ]


def _phase_polish(fixed, moving, warp, transform, rounds: int = 3):
    """Refine rotation and shift from the shifts of tiles.

    Each tile's shift, by windowed phase correlation, moves the tile's
    centre; a rigid (or similarity) map fitted to those points by least
    squares (tiles that found no clear peak, or disagree, left out) gives
    the rotation to a few hundredths of a degree, where the log-polar
    estimate is limited by its angular sampling.
    """
    tiles = _tiles(fixed.shape)
    windows = {}
    for _ in range(rounds):
        current = _warp(moving, warp, fixed.shape)
        src, dst, response = [], [], []
        for rows, cols in tiles:
            a, b = fixed[rows, cols], current[rows, cols]
            size = (a.shape[1], a.shape[0])
            if size not in windows:
                windows[size] = cv2.createHanningWindow(size, cv2.CV_32F)
            (dx, dy), r = _phase_correlate(a, b, windows[size])
            centre = (
                (cols.start + cols.stop - 1) / 2,
                (rows.start + rows.stop - 1) / 2,
            )
            src.append(centre)
            dst.append((centre[0] + dx, centre[1] + dy))
            response.append(r)
        src, dst, response = np.array(src), np.array(dst), np.array(response)
        keep = response >= 0.25 * response.max()
        fit = None
        for _ in range(2):
            if keep.sum() < 3:
                break
            fit = _fit_similarity(src[keep], dst[keep], transform == "similarity")
            moved = src @ fit[:2, :2].T + fit[:2, 2]
            residual = np.hypot(*(moved - dst).T)
            keep = keep & (residual <= max(1.0, 3.0 * float(np.median(residual[keep]))))
        if fit is None:
            break
        warp = warp @ fit
    return warp


# ----------------------------------------------------- mutual information

_MI_BINS = 32


def _gradient(image: np.ndarray) -> np.ndarray:
    """Gradient magnitude: the same for an image and its inverted copy."""
    gx = cv2.Sobel(image, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(image, cv2.CV_32F, 0, 1, ksize=3)
    return cv2.magnitude(gx, gy)


def _mi_cost(fixed_bins: np.ndarray, moving: np.ndarray, warp: np.ndarray) -> float:
    """Minus the mutual information (nats) of fixed and warped moving images."""
    h, w = fixed_bins.shape
    warped = cv2.warpAffine(
        moving,
        warp[:2],
        (w, h),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=-1.0,
    )
    inside = warped >= 0
    if inside.sum() < 64:
        return 0.0
    m = np.minimum((warped[inside] * _MI_BINS).astype(np.int64), _MI_BINS - 1)
    joint = np.bincount(fixed_bins[inside] * _MI_BINS + m, minlength=_MI_BINS**2)
    p = joint.reshape(_MI_BINS, _MI_BINS) / joint.sum()
    px, py = p.sum(axis=1), p.sum(axis=0)
    nz = p > 0
    return -float(np.sum(p[nz] * np.log(p[nz] / np.outer(px, py)[nz])))


def _register_mi(fixed, moving, transform, levels, band=1.0):
    """Maximise mutual information over the transform's parameters.

    Start: phase correlation of the gradient magnitudes (blind to a change
    of contrast, even an inversion); then Powell's method on the mutual
    information, coarse to fine.
    """
    from scipy.optimize import minimize

    warp = _register_phase(
        _gradient(fixed), _gradient(moving), transform, levels, band, polish=False
    )
    pf, pm = _pyramid(fixed, levels), _pyramid(moving, levels)
    for k in range(len(pf) - 1, -1, -1):
        f, m = pf[k], pm[k]
        h, w = f.shape
        center = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
        local = _at_level(warp, k)
        angle, scale = _rotation_scale(local[:2, :2])
        shift = local[:2, 2] - center + local[:2, :2] @ center
        x0 = [shift[0], shift[1], angle, math.log(scale)]
        free = {"translation": 2, "rigid": 3, "similarity": 4}[transform]
        bins = np.minimum((f * _MI_BINS).astype(np.int64), _MI_BINS - 1)

        def model(x, x0=x0, free=free, center=center):
            x = list(x) + x0[free:]
            return _model(x[2], math.exp(x[3]), (x[0], x[1]), center)

        def cost(x, bins=bins, m=m, model=model):
            return _mi_cost(bins, m, model(x))

        found = minimize(
            cost,
            x0[:free],
            method="Powell",
            options={"xtol": 1e-3, "ftol": 1e-6, "maxfev": 2000},
        )
        warp = _at_level(model(found.x), -k)
    return warp


# ---------------------------------------------------------------------- ECC

_ECC_MOTION = {
    "translation": cv2.MOTION_TRANSLATION,
    "rigid": cv2.MOTION_EUCLIDEAN,
    "similarity": cv2.MOTION_AFFINE,
    "affine": cv2.MOTION_AFFINE,
}


def _register_ecc(fixed, moving, transform, levels, iterations, band=1.0):
    pf, pm = _pyramid(fixed, levels), _pyramid(moving, levels)
    coarse = len(pf) - 1
    init = "translation" if transform == "translation" else "rigid"
    warp = _register_phase(fixed, moving, init, levels, band, polish=False)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, iterations, 1e-6)
    converged = False
    for k in range(coarse, -1, -1):
        local = _at_level(warp, k)[:2].astype(np.float32)
        h, w = pf[k].shape
        inner = np.zeros((h, w), np.uint8)  # leave out the edges, where moved
        inner[h // 16 : h - h // 16, w // 16 : w - w // 16] = 1  # images are padded
        try:
            _, local = cv2.findTransformECC(
                pf[k], pm[k], local, _ECC_MOTION[transform], criteria, inner, 3
            )
        except cv2.error:
            continue  # keep the estimate of the coarser level
        warp = _at_level(_h(local), -k)
        converged = True
    if not converged:
        raise RegistrationError(
            "ecc",
            "the ECC iteration did not converge at any pyramid level.",
            "Try method='phase' or a feature method, or fewer levels.",
        )
    return _project(
        warp, transform, ((fixed.shape[1] - 1) / 2, (fixed.shape[0] - 1) / 2)
    )


# ----------------------------------------------------------------- features


def _fit_similarity(src: np.ndarray, dst: np.ndarray, with_scale: bool) -> np.ndarray:
    """Least-squares ``dst ≈ s R src + t`` (Umeyama), as a 3×3 matrix."""
    ms, md = src.mean(0), dst.mean(0)
    a, b = src - ms, dst - md
    u, sv, vt = np.linalg.svd(b.T @ a / len(src))
    d = np.diag([1.0, np.sign(np.linalg.det(u @ vt))])
    rot = u @ d @ vt
    scale = (sv * np.diag(d)).sum() / a.var(0).sum() if with_scale else 1.0
    out = np.eye(3)
    out[:2, :2] = scale * rot
    out[:2, 2] = md - scale * rot @ ms
    return out


def _akaze():
    """OpenCV's AKAZE factory; OpenCV 5 moved it to the contrib modules."""
    factory = getattr(cv2, "AKAZE_create", None)
    if factory is None:
        factory = getattr(getattr(cv2, "xfeatures2d", None), "AKAZE_create", None)
    if factory is None:
        raise ValueError(
            f"method 'akaze' needs AKAZE, which OpenCV {cv2.__version__} lacks (5.0 "
            "moved it to opencv-contrib). Install opencv-contrib-python-headless "
            "(the project's dependency), or use method 'orb' or 'sift'"
        )
    return factory


def akaze_available() -> bool:
    """True when the installed OpenCV provides AKAZE (``method="akaze"``)."""
    try:
        _akaze()
    except ValueError:
        return False
    return True


def _register_features(fixed, moving, transform, levels, method, ratio, ransac_px):
    """Keypoints and RANSAC, then (not for affine) the tile polish of ``"phase"``.

    Keypoints sit on a detector's scale grid (ORB's is 1.2 apart), a few
    tenths of a pixel off, which the images' own shifts correct. The polish
    is kept where it raises the overlap's NCC.
    """
    warp = _match_features(fixed, moving, transform, levels, method, ratio, ransac_px)
    if transform == "affine":
        return warp
    polished = warp
    if transform != "translation":
        polished = _phase_polish(fixed, moving, warp, transform)
    polished = _phase_step(fixed, moving, polished, "translation")
    polished = _project(polished, transform, _centre(fixed.shape))
    if _overlap_ncc(fixed, moving, polished)[0] >= _overlap_ncc(fixed, moving, warp)[0]:
        return polished
    return warp


def _centre(shape) -> tuple[float, float]:
    """(x, y) of an (M, N) grid's centre."""
    return ((shape[1] - 1) / 2.0, (shape[0] - 1) / 2.0)


def _match_features(fixed, moving, transform, levels, method, ratio, ransac_px):
    f8 = np.rint(fixed * 255).astype(np.uint8)
    m8 = np.rint(moving * 255).astype(np.uint8)
    norm = cv2.NORM_HAMMING
    if method == "orb":
        n = max(1, round(levels * math.log(2) / math.log(1.2)))
        detector = cv2.ORB_create(nfeatures=5000, scaleFactor=1.2, nlevels=n)
    elif method == "sift":
        detector, norm = cv2.SIFT_create(nOctaveLayers=3), cv2.NORM_L2
    else:
        detector = _akaze()(threshold=1e-4, nOctaves=levels)
    kf, df = detector.detectAndCompute(f8, None)
    km, dm = detector.detectAndCompute(m8, None)
    good = []
    if df is not None and dm is not None and len(df) >= 2 and len(dm) >= 2:
        pairs = cv2.BFMatcher(norm).knnMatch(df, dm, k=2)
        good = [
            p[0] for p in pairs if len(p) == 2 and p[0].distance < ratio * p[1].distance
        ]
    if len(good) < 3:
        raise RegistrationError(
            method,
            f"only {len(good)} keypoint matches passed the ratio test (3 needed).",
            "Try method='ecc' or 'phase', a higher ratio, or a more textured image.",
        )
    src = np.float32([kf[m.queryIdx].pt for m in good])
    dst = np.float32([km[m.trainIdx].pt for m in good])
    options = dict(
        method=cv2.RANSAC,
        ransacReprojThreshold=ransac_px,
        maxIters=5000,
        confidence=0.999,
        refineIters=10,
    )
    if transform == "affine":
        fit, inliers = cv2.estimateAffine2D(src, dst, **options)
    else:
        fit, inliers = cv2.estimateAffinePartial2D(src, dst, **options)
    if fit is None or inliers is None or int(inliers.sum()) < 3:
        raise RegistrationError(
            method,
            f"RANSAC found no consistent transform among {len(good)} matches.",
            "Try method='ecc' or 'phase', or a larger ransac_px.",
        )
    keep = inliers.ravel().astype(bool)
    if transform == "affine":
        return _h(fit)
    if transform == "translation":
        out = np.eye(3)
        out[:2, 2] = np.median(dst[keep] - src[keep], axis=0)
        return out
    return _fit_similarity(
        src[keep].astype(np.float64),
        dst[keep].astype(np.float64),
        transform == "similarity",
    )


# ------------------------------------------------------------ verification

#: Least fraction of the fixed image that the moving one must cover.
_MIN_OVERLAP = 0.1
#: Least drop of the NCC when the result is moved by a probe, as a fraction
#: of what the NCC lacks to 1 (at least 0.01).
_MIN_DISTINCT = 0.3


def _overlap_ncc(fixed, moving, warp) -> tuple[float, float]:
    """NCC of fixed and warped moving, and the overlap's fraction of fixed.

    The NCC is taken where the moving image reaches.
    """
    h, w = fixed.shape
    warped = cv2.warpAffine(
        moving, warp[:2], (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    )
    inside = cv2.warpAffine(
        np.ones(moving.shape, np.uint8),
        warp[:2],
        (w, h),
        flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
    ).astype(bool)
    if inside.sum() < 16:
        return -1.0, float(inside.mean())
    return ncc(fixed, warped, inside), float(inside.mean())


def _verify(fixed, moving, warp, method: str, transform: str) -> None:
    """Refuse a transform that the images do not pin down.

    On copies at most 256 px across, smoothed by 1 px (for ``"mi"``, their
    gradient magnitudes, which an inverted copy shares): the moving image
    must cover a tenth of the fixed one; the images must correlate
    positively there; and the match must be distinct: moving the result by
    4 % of the shorter side along either axis, or turning it by twice that
    at a quarter of the diagonal (about 10°), must lower the NCC by at
    least 0.3 of what it lacks to 1 (counted as at least 0.01). A noise
    pair, a smooth ramp (any shift along it fits) or a disc (any rotation
    fits) fail the last test, however high their NCC.
    """
    k = 0
    while max(fixed.shape) / 2**k > 256 and min(fixed.shape) / 2 ** (k + 1) >= 32:
        k += 1
    f = cv2.resize(fixed, None, fx=0.5**k, fy=0.5**k, interpolation=cv2.INTER_AREA)
    m = cv2.resize(moving, None, fx=0.5**k, fy=0.5**k, interpolation=cv2.INTER_AREA)
    f, m = cv2.GaussianBlur(f, (0, 0), 1.0), cv2.GaussianBlur(m, (0, 0), 1.0)
    what_ncc = "NCC"
    if method == "mi":
        f, m, what_ncc = _gradient(f), _gradient(m), "NCC of the edges"
    local = _at_level(warp, k)
    value, fraction = _overlap_ncc(f, m, local)
    if fraction < _MIN_OVERLAP:
        raise RegistrationError(
            method,
            f"under the transform found the moving image covers only "
            f"{fraction:.0%} of the fixed one, too little to trust.",
            "The motion may be beyond the method's reach, or the images may not "
            "show the same region: crop both to the region they share, or bring "
            "the moving image close by hand first.",
        )
    if value <= 0:
        raise RegistrationError(
            method,
            f"the best alignment found leaves the images uncorrelated "
            f"({what_ncc} {value:.2f} on the overlap).",
            (
                "The images may not show the same structures."
                if method == "mi"
                else "If one image is an inverted copy or of another contrast, "
                "use method='mi'; otherwise the images may not show the same "
                "structures."
            ),
        )
    h, w = f.shape
    d = max(2.0, 0.04 * min(h, w))
    turn = 2 * math.degrees(d / (0.25 * math.hypot(h, w)))
    centre = _centre(f.shape)
    probes = [
        ("column shift", f"moving it {d * 2**k:.0f} px", (d, 0.0), 0.0),
        ("row shift", f"moving it {d * 2**k:.0f} px", (0.0, d), 0.0),
    ]
    if transform != "translation":
        probes.append(("rotation", f"turning it {turn:.0f}°", (0.0, 0.0), turn))
    room = max(1.0 - value, 0.01)
    for what, by, (dx, dy), angle in probes:
        for sign in (-1.0, 1.0):
            move = _model(sign * angle, 1.0, (sign * dx, sign * dy), centre)
            nearby, _ = _overlap_ncc(f, m, local @ move)
            if nearby - value > _MIN_DISTINCT * room:
                raise RegistrationError(
                    method,
                    f"the transform found is not the best match near it: {by} "
                    f"raises the {what_ncc} on the overlap from {value:.3f} to "
                    f"{nearby:.3f}.",
                    "The method lost its way (the motion may be beyond its reach, "
                    "or the images may not show the same region): try another "
                    "method, or bring the moving image close by hand first.",
                )
            if value - nearby < _MIN_DISTINCT * room:
                raise RegistrationError(
                    method,
                    f"the images do not pin down the {what}: {by} lowers the "
                    f"{what_ncc} on the overlap only from {value:.3f} to "
                    f"{nearby:.3f}. They hold too little texture, or no structure "
                    "in common.",
                    "Register images that show the same structures (crop to a "
                    "textured region, or reduce noise first)"
                    + (
                        "."
                        if method == "mi"
                        else "; for images of another contrast use method='mi'."
                    ),
                )


# ------------------------------------------------------------------ quality


def ncc(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    r"""Normalised cross-correlation (Pearson's r) of two images.

    .. math:: r = \frac{\sum (a - \bar a)(b - \bar b)}
                       {\sqrt{\sum (a - \bar a)^2 \sum (b - \bar b)^2}}

    Parameters
    ----------
    a, b : ([S,] M, N) ndarray
        Images of the same shape, in any units.
    mask : ([S,] M, N) bool ndarray, optional
        Pixels to compare (for example the overlap of a registration).

    Returns
    -------
    float
        In ``[-1, 1]``: 1 for images equal up to gain and offset, -1 for an
        image and its negative; 0 when either image is constant in the mask.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(12.0).reshape(3, 4)
    >>> ncc(x, 2 * x + 5), ncc(x, -x)
    (1.0, -1.0)
    """
    r = _pearson(*_pair(a, b, mask))
    return 0.0 if math.isnan(r) else r


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson's r of two flat float64 vectors; NaN if either is constant.

    Sums of products, not BLAS dot products: right after an OpenCV call,
    OpenCV's idle workers spin and starve OpenBLAS's threads on 2 cores (a
    256² dot product took 25-55 ms there instead of 0.01 ms).
    """
    a = a - a.mean()
    b = b - b.mean()
    den = math.sqrt(float(np.square(a).sum()) * float(np.square(b).sum()))
    if not den > 0:
        return float("nan")
    return float(np.clip(float((a * b).sum()) / den, -1.0, 1.0))


@declared
def mutual_information(
    a: np.ndarray,
    b: np.ndarray,
    *,
    bins: Annotated[
        int, Param(2, 512, 1, "bins", "histogram bins per image", slider=(4, 512))
    ] = 64,
    mask: np.ndarray | None = None,
    normalized: bool = False,
) -> float:
    r"""Mutual information of two images, from their joint histogram, in nats.

    .. math:: I(A; B) = \sum_{a, b} p(a, b) \ln \frac{p(a, b)}{p(a)\,p(b)}
                      = H(A) + H(B) - H(A, B)

    Each image is binned into ``bins`` equal bins over its own range inside
    the mask, so MI does not depend on units or on any monotonic or even
    non-monotonic one-to-one remapping of grey levels: it measures alignment
    across contrasts (T1 against an inverted or gamma-mapped T1, CT
    against MR), where NCC fails [6]_.

    Parameters
    ----------
    a, b : ([S,] M, N) ndarray
        Images of the same shape.
    bins : int
        Histogram bins per image, 2 to 512.
    mask : ([S,] M, N) bool ndarray, optional
        Pixels to use.
    normalized : bool
        Return :math:`2 I / (H(A) + H(B))` in ``[0, 1]`` instead (1 when one
        image determines the other, 0 for independent images).

    Returns
    -------
    float
        Nats (natural logarithm); divide by ``ln 2`` for bits. ``I(A; A)`` is
        the entropy ``H(A)`` of the binned image. A small positive bias,
        about ``(bins - 1)**2 / (2 n)`` for ``n`` pixels, remains for
        independent images.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.repeat(np.arange(4.0), 4)
    >>> round(mutual_information(x, -x, bins=4), 4)  # ln 4
    1.3863
    """
    a, b = _pair(a, b, mask)
    ia, ib = _bin(a, bins), _bin(b, bins)
    joint = np.bincount(ia * bins + ib, minlength=bins * bins).astype(np.float64)
    joint /= joint.sum()
    pa = joint.reshape(bins, bins).sum(1)
    pb = joint.reshape(bins, bins).sum(0)
    h_a, h_b, h_ab = _entropy(pa), _entropy(pb), _entropy(joint)
    mi = max(h_a + h_b - h_ab, 0.0)
    if normalized:
        return 2.0 * mi / (h_a + h_b) if h_a + h_b > 0 else 0.0
    return mi


def _entropy(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def _bin(x: np.ndarray, bins: int) -> np.ndarray:
    lo, hi = float(x.min()), float(x.max())
    if not hi > lo:
        return np.zeros(x.shape, np.int64)
    idx = ((x - lo) * (bins / (hi - lo))).astype(np.int64)
    return np.minimum(idx, bins - 1)


def _pair(a, b, mask) -> tuple[np.ndarray, np.ndarray]:
    """Two flat float64 vectors of the pixels in the mask; shapes checked."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(
            f"a and b must have the same shape; got {a.shape} and {b.shape}"
        )
    for name, x in (("a", a), ("b", b)):
        if x.dtype.kind not in "uifb":
            raise ValueError(f"{name} must hold numbers; got dtype {x.dtype}")
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != a.shape or mask.dtype != bool:
            raise ValueError(
                f"mask must be a boolean array of shape {a.shape}; got "
                f"{mask.dtype} of shape {mask.shape}"
            )
        a, b = a[mask], b[mask]
    a = a.ravel().astype(np.float64, copy=False)
    b = b.ravel().astype(np.float64, copy=False)
    if a.size == 0:
        raise ValueError("no pixels to compare: the mask (or the images) is empty")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("a and b must be finite; replace NaN and infinite values")
    return a, b


# -------------------------------------------------------------- transforms


def _warp_values(
    image: np.ndarray, matrix: np.ndarray, shape, interpolation: str, fill
) -> np.ndarray:
    """``cv2.warpAffine`` for any numeric dtype; float32 out unless nearest."""
    src = image
    if interpolation == "nearest":
        if image.dtype.type not in _CV_DTYPES:
            src = image.astype(np.float64)  # exact for labels up to 2**53
    elif image.dtype != np.float64:
        src = image.astype(np.float32)
    if fill is None:
        fill = float(image.min())
    out = cv2.warpAffine(
        src,
        np.asarray(matrix, np.float64)[:2],
        (shape[1], shape[0]),
        flags=_INTERPOLATION[interpolation],
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=float(fill),
    )
    if interpolation == "nearest":
        return out.astype(image.dtype, copy=False)
    return out


# register's options, declared once: the registration step of a recipe
# (medimg_lab.composition.steps) takes the same.
Method = Annotated[str, Param(doc="registration method", choices=tuple(METHODS))]
Transform = Annotated[str, Param(doc="transform model", choices=TRANSFORMS)]
Levels = Annotated[int, Param(1, 6, 1, "", "pyramid levels (1: full resolution only)")]
Iterations = Annotated[int, Param(10, 1000, 10, "", "ECC iterations per pyramid level")]
Ratio = Annotated[float, Param(0.5, 0.95, 0.05, "", "ratio test for feature matches")]
RansacPx = Annotated[float, Param(0.5, 20, 0.5, "px", "RANSAC inlier distance")]
Interpolation = Annotated[
    str,
    Param(doc="resampling", choices=("linear", "cubic", "nearest")),
]


@operation("composition", "Move by a known transform", role="process", ndim=(2,))
def rigid_transform(
    image,
    *,
    shift_mm: tuple[float, float] = (0.0, 0.0),
    rotation_deg: Annotated[
        float,
        Param(
            -360,
            360,
            0.1,
            "°",
            "rotation, counter-clockwise on screen",
            slider=(-180, 180),
        ),
    ] = 0.0,
    scale: Annotated[
        float, Param(1e-3, 1e3, 0.01, "", "zoom factor", slider=(0.1, 10))
    ] = 1.0,
    spacing: Spacing = None,
    center_mm: tuple[float, float] | None = None,
    interpolation: Interpolation = "linear",
    fill: float | None = None,
    inverse: bool = False,
) -> np.ndarray:
    """Move an image's content by a known rotation, zoom and shift, in mm.

    The content at point :math:`p` (mm) moves to
    :math:`T(p) = s R (p - c) + c + t`, so that ``out(T(p)) = image(p)``.
    :func:`register` of ``image`` against ``out`` reports ``shift_mm``,
    ``rotation_deg`` and ``scale`` back.

    Parameters
    ----------
    image : (M, N) ndarray or MedImage
        A grey image, in any units.
    shift_mm : (dy, dx) float
        Shift :math:`t` in mm along rows (down) and columns (right).
    rotation_deg : float
        Rotation :math:`R` in degrees, counter-clockwise as displayed, in
        [-360, 360] (a slider offers ±180).
    scale : float
        Zoom factor :math:`s` (> 1 enlarges), in [0.001, 1000] (a slider
        offers 0.1 to 10).
    spacing : (float, float), optional
        mm per pixel along rows and columns; default the MedImage's, or 1 mm.
        Rotation happens in mm, so it stays a rotation on anisotropic pixels.
    center_mm : (y, x) float, optional
        Centre of rotation :math:`c` in mm from the first pixel's centre;
        default the image centre.
    interpolation : {"linear", "cubic", "nearest"}
        ``"nearest"`` keeps label values and the input's dtype.
    fill : float, optional
        Value of pixels moved in from outside; default the image minimum
        (air for CT).
    inverse : bool
        Apply :math:`T^{-1}` instead: undo a motion that :func:`register`
        reported, bringing a moving image back onto the fixed one.

    Returns
    -------
    (M, N) ndarray
        float32 (float64 stays float64), in the input's units; the input's
        dtype with ``interpolation="nearest"``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.zeros((5, 5), np.float32); x[2, 2] = 1
    >>> np.argwhere(rigid_transform(x, shift_mm=(1, -2)) == 1).tolist()
    [[3, 0]]
    """
    array, own_spacing = _as_array(image, "image", min_size=1)
    spacing = check_spacing(
        array.shape, spacing if spacing is not None else own_spacing
    )
    shift = _pair_of("shift_mm", shift_mm)
    to_mm = _scale_px_to_mm(spacing)
    if center_mm is None:
        center = to_mm @ [(array.shape[1] - 1) / 2, (array.shape[0] - 1) / 2, 1.0]
        center = center[:2]
    else:
        cy, cx = _pair_of("center_mm", center_mm)
        center = np.array([cx, cy])
    model_mm = _model(rotation_deg, scale, (shift[1], shift[0]), center)
    model_px = np.linalg.inv(to_mm) @ model_mm @ to_mm
    if inverse:
        model_px = np.linalg.inv(model_px)
    return _warp_values(array, model_px, array.shape, interpolation, fill)


def _pair_of(name: str, value) -> tuple[float, float]:
    try:
        pair = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        pair = ()
    if len(pair) != 2 or not all(math.isfinite(v) for v in pair):
        raise ValueError(
            f"{name} must be two finite numbers (dy, dx) in mm; got {value!r}"
        )
    return pair


# ---------------------------------------------------------------- register


@dataclass(frozen=True, eq=False)
class Registration:
    """The result of :func:`register`.

    Attributes
    ----------
    matrix : (2, 3) float64 ndarray
        OpenCV pixel matrix in ``(x, y) = (column, row)`` order mapping a
        moving pixel to the fixed pixel it lands on:
        ``[x_f, y_f] = matrix @ [x_m, y_m, 1]``. It is the inverse of the
        moving image's motion, and ``cv2.warpAffine(moving, matrix, (N, M))``
        resamples the moving image onto the fixed grid.
    matrix_mm : (2, 3) float64 ndarray
        The same map in mm, ``(x, y)`` order, origin at the first pixel's
        centre.
    shift_mm : (float, float)
        ``(dy, dx)``: how far the moving image's content is shifted relative
        to the fixed image, in mm along rows (down) and columns (right),
        about the fixed image's centre. With ``rotation_deg`` and ``scale``
        these are the arguments of :func:`rigid_transform` that turn fixed
        into moving.
    rotation_deg : float
        Rotation of the moving content, degrees counter-clockwise on screen
        (for an affine map, that of its nearest rotation).
    scale : float
        Zoom of the moving content (``sqrt(|det|)`` for an affine map).
    resampled : (M, N) ndarray
        The moving image warped into the fixed image's grid, in the moving
        image's units; float32 (float64 stays float64). Pixels from outside
        the moving image hold its minimum.
    overlap : (M, N) bool ndarray
        Pixels of the fixed grid that the moving image covers.
    ncc, mi : float
        Normalised cross-correlation and mutual information (nats, 64 bins)
        of fixed and ``resampled`` on the overlap.
    method, transform : str
        What :func:`register` was asked for.
    moving_shape : (int, int)
        Shape a second image must have for :meth:`apply`.
    """

    matrix: np.ndarray
    matrix_mm: np.ndarray
    shift_mm: tuple[float, float]
    rotation_deg: float
    scale: float
    resampled: np.ndarray = field(repr=False)
    overlap: np.ndarray = field(repr=False)
    ncc: float
    mi: float
    method: str
    transform: str
    moving_shape: tuple[int, int] = (0, 0)

    @declared
    def apply(
        self,
        image,
        *,
        interpolation: Interpolation = "linear",
        fill: float | None = None,
    ) -> np.ndarray:
        """Warp another image of the moving grid (a mask, a second channel).

        Parameters
        ----------
        image : (M', N') ndarray or MedImage
            On the moving image's grid, ``moving_shape``.
        interpolation : {"linear", "cubic", "nearest"}
            ``"nearest"`` for labels and masks: it keeps their values and
            dtype (bool stays bool).
        fill : float, optional
            Value outside the moving image; default the image minimum.

        Returns
        -------
        (M, N) ndarray
            On the fixed grid; float32 unless ``interpolation="nearest"``.
        """
        array = image.array if hasattr(image, "array") else np.asarray(image)
        if array.shape != tuple(self.moving_shape):
            raise ValueError(
                f"image must have the moving image's shape {tuple(self.moving_shape)}; "
                f"got {array.shape}"
            )
        if array.dtype == bool and interpolation != "nearest":
            raise ValueError(
                f"a boolean mask needs interpolation='nearest'; got {interpolation!r}"
            )
        if array.dtype == bool:
            out = _warp_values(
                array.view(np.uint8),
                self.matrix,
                self.overlap.shape,
                "nearest",
                0 if fill is None else fill,
            )
            return out.astype(bool)
        check_image(array, "image", finite=interpolation != "nearest")
        return _warp_values(array, self.matrix, self.overlap.shape, interpolation, fill)


@declared
def register(
    fixed,
    moving,
    *,
    method: Method = "ecc",
    transform: Transform = "rigid",
    spacing: Spacing = None,
    levels: Levels = 3,
    iterations: Iterations = 100,
    ratio: Ratio = 0.8,
    ransac_px: RansacPx = 3.0,
) -> Registration:
    r"""Align a moving image onto a fixed one; rigid, similarity or affine.

    Finds :math:`T(p) = A (p - c) + c + t` with
    :math:`I_{moving}(T(p)) \approx I_{fixed}(p)` (module docstring for the
    conventions) and resamples the moving image onto the fixed grid.

    Parameters
    ----------
    fixed : (M, N) ndarray or MedImage
        The reference grey image, in any units (HU, MR, 16-bit film).
    moving : (M, N) ndarray or MedImage
        The image to align. Same shape as ``fixed`` for ``"phase"`` and
        ``"ecc"``; any shape for the feature methods. Same spacing.
    method : {"ecc", "phase", "orb", "akaze", "sift", "mi"}
        ``"ecc"`` (the default, which the composition panel and the compare
        dashboard read from here): enhanced correlation coefficient [2]_,
        started by phase correlation; a 1/16 margin at the edges, where
        moved images are padded, is left out. ``"phase"``: Fourier–Mellin
        phase correlation [1]_ (not affine). ``"orb"`` [3]_, ``"akaze"``
        [4]_, ``"sift"`` [7]_: keypoints and RANSAC [5]_. ``"mi"``: mutual
        information maximised [6]_, for images of different contrast.
    transform : {"translation", "rigid", "similarity", "affine"}
        Rigid is rotation and shift; similarity adds a zoom. ECC fits a
        similarity as an affine map and keeps its nearest similarity.
    spacing : (float, float), optional
        mm per pixel along rows and columns of both images; default the
        fixed MedImage's, or 1 mm. Anisotropic pixels are resampled to
        square ones inside, so rotations are rotations in mm.
    levels : int
        Gaussian pyramid levels, 1 to 6, coarse to fine (each halves the
        size, down to 32 px). For ORB and AKAZE, the detector's scale space
        spans ``levels`` octaves; SIFT uses its own octaves.
    iterations : int
        ECC iterations per level, 10 to 1000.
    ratio : float
        Lowe's ratio test, 0.5 to 0.95: keep a match when its distance is
        below ``ratio`` times that of the second-best.
    ransac_px : float
        RANSAC inlier distance, 0.5 to 20 (square) pixels.

    Returns
    -------
    Registration
        Transform in pixels and mm, the resampled moving image and its
        quality (NCC and mutual information on the overlap).

    Raises
    ------
    ValueError
        Volumes, RGB, NaN, shapes or spacings that do not match, unknown
        method or transform, or a transform the method does not support.
    RegistrationError
        The method found no transform (ECC did not converge, features found
        too few matches), or the images do not pin the one found down: they
        overlap on less than a tenth of the fixed image, do not correlate,
        or hold too little texture or structure in common for the NCC to
        drop when the result is moved or turned (module docstring). The
        message says which, and what to try.

    Examples
    --------
    >>> from medimg_lab.data import sample
    >>> ct = sample("head_ct")
    >>> moved = rigid_transform(ct, shift_mm=(3.0, -2.0), rotation_deg=5.0)
    >>> reg = register(ct, moved, spacing=ct.spacing)
    >>> [round(v, 1) for v in reg.shift_mm], round(reg.rotation_deg, 1)
    ([3.0, -2.0], 5.0)
    """
    # @declared has checked each option given against its declaration above
    if transform not in METHODS[method]:
        able = [m for m, t in METHODS.items() if transform in t]
        raise ValueError(
            f"method {method!r} supports transform "
            f"{', '.join(map(repr, METHODS[method]))}; got {transform!r}. For "
            f"{transform!r} use method {' or '.join(map(repr, able))}"
        )
    f, f_spacing = _as_array(fixed, "fixed")
    m, m_spacing = _as_array(moving, "moving")
    if spacing is None:
        spacing = f_spacing or m_spacing
        if f_spacing and m_spacing and not np.allclose(f_spacing, m_spacing, rtol=1e-3):
            raise ValueError(
                f"fixed and moving must have the same spacing; got {f_spacing} and "
                f"{m_spacing} mm. Resample one onto the other's spacing first"
            )
    spacing = check_spacing(f.shape, spacing)
    if method in ("phase", "ecc") and f.shape != m.shape:
        raise ValueError(
            f"fixed and moving must have the same shape for method {method!r}; got "
            f"{f.shape} and {m.shape}. Crop or pad one, or use method 'orb' or "
            "'akaze' or 'sift', which accept different shapes"
        )
    for name, image in (("fixed", f), ("moving", m)):
        if np.ptp(image) == 0:
            raise ValueError(
                f"{name} is a constant image (every pixel {image.flat[0]:g}): "
                "nothing in it can be aligned. Register images that show structure"
            )

    # Work on square pixels of the finer spacing: px_work = B @ px.
    iso = min(spacing)
    fy, fx = spacing[0] / iso, spacing[1] / iso
    band = 1.0 / max(fy, fx)  # of the work grid's Nyquist, held on both axes
    work = np.array([[fx, 0.0, 0.5 * (fx - 1)], [0.0, fy, 0.5 * (fy - 1)], [0, 0, 1]])
    wf, wm = _normalise(f), _normalise(m)
    if not (math.isclose(fx, 1.0) and math.isclose(fy, 1.0)):

        def resize(x):
            size = (round(x.shape[1] * fx), round(x.shape[0] * fy))
            return cv2.resize(x, size, interpolation=cv2.INTER_LINEAR)

        wf, wm = resize(wf), resize(wm)

    if method == "phase":
        warp = _register_phase(wf, wm, transform, levels, band)
    elif method == "ecc":
        warp = _register_ecc(wf, wm, transform, levels, iterations, band)
    elif method == "mi":
        warp = _register_mi(wf, wm, transform, levels, band)
    else:
        warp = _register_features(wf, wm, transform, levels, method, ratio, ransac_px)
    _verify(wf, wm, warp, method, transform)

    # fixed px -> moving px, then mm; matrix is the inverse (moving -> fixed).
    warp_px = np.linalg.inv(work) @ warp @ work
    to_mm = _scale_px_to_mm(spacing)
    warp_mm = to_mm @ warp_px @ np.linalg.inv(to_mm)
    center = to_mm @ [(f.shape[1] - 1) / 2, (f.shape[0] - 1) / 2, 1.0]
    lin = warp_mm[:2, :2]
    shift_xy = warp_mm[:2, 2] - center[:2] + lin @ center[:2]
    rotation, zoom = _rotation_scale(lin)
    matrix = np.linalg.inv(warp_px)[:2]
    resampled = _warp_values(m, matrix, f.shape, "linear", None)
    overlap = (
        _warp_values(np.ones(m.shape, np.uint8), matrix, f.shape, "nearest", 0) > 0
    )
    if overlap.sum() < 16:
        overlap = np.ones(f.shape, bool)
    return Registration(
        matrix=matrix,
        matrix_mm=np.linalg.inv(warp_mm)[:2],
        shift_mm=(float(shift_xy[1]), float(shift_xy[0])),
        rotation_deg=float(rotation),
        scale=float(zoom),
        resampled=resampled,
        overlap=overlap,
        ncc=ncc(f, resampled, overlap),
        mi=mutual_information(f, resampled, mask=overlap),
        method=method,
        transform=transform,
        moving_shape=tuple(m.shape),
    )
