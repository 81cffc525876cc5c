r"""Stitching: one mosaic from overlapping tiles, placed from the images alone.

:func:`stitch` takes tiles in any order and finds where each one lies:

1. **Pairwise shifts.** For every pair of tiles, candidate shifts come from
   copies downscaled to about 512 px: the highest local maxima of the NCC of
   their edges (``t - G_1 * t``) over the overlap, computed for every shift
   at once by FFT and integral images (Lewis 1995), and the highest peaks of
   their phase correlation (Kuglin & Hines 1975): the normalised cross-power
   spectrum :math:`R = F_a F_b^* / |F_a F_b^*|`, zero-padded so that the
   correlation is linear. No window tapers the tiles: overlaps lie at their
   borders. Each candidate is climbed, one pixel at a time, on the
   normalised cross-correlation (NCC) of the overlap while a neighbour
   improves: up to 8 steps on the downscaled copies, then at full
   resolution up to ``4 * factor + 4`` steps (``factor`` the downscaling,
   from the tiles' size). The candidate whose overlap agrees best (mean NCC of
   the intensities and of a band-pass copy) wins. The sub-pixel shift comes
   from Gauss-Newton steps on the overlap (Lucas & Kanade 1981):
   :math:`A \approx g B_t - g\, \delta \cdot \nabla B_t + o`, with
   :math:`B_t` the overlap of the second tile resampled (bicubic) at the
   current residual :math:`t`, gain :math:`g` and offset :math:`o`;
   :math:`t \leftarrow t + \delta` until :math:`|\delta| < 0.001` px. Where
   that does not settle, a parabola through the NCC at the match and its
   neighbours, :math:`\delta = (s_{-1} - s_{+1}) / (2 (s_{-1} - 2 s_0 +
   s_{+1}))` per axis, is used instead.
   A pair is rejected if its overlap is smaller than ``min_overlap``, if its
   NCC is below ``min_ncc``, if the overlap holds no shared detail (flat
   background, noise alone: band-pass NCC below 0.4), or if the match is not
   distinct (an overlap 8 px away in any direction, or another candidate,
   agrees nearly as well: a straight edge the tiles could slide along).
2. **Global placement.** The tile offsets :math:`p_k` minimise
   :math:`\sum_{(i, j)} w_{ij} \lVert p_j - p_i - d_{ij} \rVert^2` over the
   accepted pairs, with weights :math:`w_{ij}` = NCC (Szeliski 2006, §6),
   anchored at tile 0 and then shifted so that the smallest offset is
   ``(0, 0)``. A pair that disagrees with the solution by more than 1 px is
   dropped and the solve repeated, as long as the tiles stay connected.
3. **Blending.** ``"feather"``: :math:`I = \sum_k w_k I_k / \sum_k w_k`
   with :math:`w_k` the distance to tile :math:`k`'s border;
   ``"multiband"``: the Laplacian-pyramid spline of Burt & Adelson (1983),
   :math:`L(I) = \sum_k G(M_k) \, L(I_k)`, with :math:`M_k` the pixels tile
   :math:`k` owns; ``"none"``: later tiles overwrite earlier ones.

:func:`cut_tiles` makes test input with a known truth; :func:`hconcat` and
:func:`vconcat` are the trivial case of tiles that abut exactly.

Conventions: offsets and shifts are ``(row, col)`` in pixels, with ``(0, 0)``
the top-left pixel; ``offsets_mm`` multiplies them by ``spacing`` (mm per
pixel, ``None`` meaning 1 mm). Only 2D ``(M, N)`` tiles are supported.

References
----------
.. [1] C. D. Kuglin and D. C. Hines, "The phase correlation image alignment
   method", Proc. IEEE Int. Conf. Cybernetics and Society, 1975, pp. 163-165.
.. [2] P. J. Burt and E. H. Adelson, "A multiresolution spline with
   application to image mosaics", ACM Trans. Graph. 2(4), 1983, pp. 217-236,
   doi:10.1145/245.247.
.. [3] R. Szeliski, "Image alignment and stitching: a tutorial", Found. Trends
   Comput. Graph. Vis. 2(1), 2006, pp. 1-104, doi:10.1561/0600000009.
.. [4] J. P. Lewis, "Fast normalized cross-correlation", Vision Interface,
   1995, pp. 120-123.
.. [5] B. D. Lucas and T. Kanade, "An iterative image registration technique
   with an application to stereo vision", Proc. IJCAI 1981, pp. 674-679.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

import cv2
import numpy as np

from .._checks import Spacing, check_image, check_spacing
from ..params import Param, Seed, declared
from .fusion import pyramid_composite
from .registration import _pearson

__all__ = ["Match", "Stitched", "cut_tiles", "hconcat", "stitch", "vconcat"]

#: Side (px) of the downscaled copies on which shifts are first estimated:
#: large enough that an overlap of 5 % of a tile keeps several pixels.
_COARSE_SIDE = 512
#: A pair disagreeing with the global placement by more than this (px) is an
#: outlier; it is dropped if the tiles stay connected without it.
_MAX_RESIDUAL_PX = 1.0
#: Scale (px) of the placement residual in a tile's confidence.
_RESIDUAL_SCALE_PX = 1.0
#: Smallest tile side (px) that phase correlation can work with.
_MIN_SIDE = 16


@dataclass(frozen=True)
class Match:
    """An accepted pairwise match between tiles ``i`` and ``j``.

    Attributes
    ----------
    i, j : int
        Tile indices, ``i < j``, in the order the tiles were given.
    shift : (2,) ndarray of float
        ``(row, col)`` of tile ``j``'s top-left corner in tile ``i``'s frame,
        in pixels: ``tile_j[y, x]`` shows what ``tile_i[y + row, x + col]``
        shows. Sub-pixel, from Gauss-Newton refinement on the overlap.
    ncc : float
        Normalised cross-correlation of the two tiles over their overlap at the
        nearest whole-pixel shift, in ``[-1, 1]``.
    overlap : float
        Overlap area as a fraction of the smaller tile's area, in ``(0, 1]``.
    """

    i: int
    j: int
    shift: np.ndarray
    ncc: float
    overlap: float


@dataclass(frozen=True)
class Stitched:
    """A mosaic and where each tile went.

    Attributes
    ----------
    image : (H, W) ndarray
        The mosaic; float32 (float64 if any tile is float64), in the tiles'
        units. Pixels no tile covers hold ``fill``.
    coverage : (H, W) bool ndarray
        True where at least one tile covers the pixel.
    offsets : (n, 2) float ndarray
        ``(row, col)`` of each tile's top-left corner in the mosaic, in pixels,
        in input order; the smallest row and column are 0. Tiles are pasted at
        the nearest whole pixel, ``np.rint(offsets)``.
    confidence : (n,) float ndarray
        Per tile, in ``[0, 1]``: the best over its accepted pairs of
        ``NCC * exp(-r² / 2)``, with ``r`` the pair's disagreement (px) with the
        global placement. 1 for a single tile.
    pairs : tuple of Match
        The pairwise matches the placement used.
    seams : (H, W) int ndarray
        Index of the tile that owns each pixel (the deepest inside, or for
        ``blend="none"`` the last pasted); -1 where no tile covers it.
    spacing : (2,) tuple of float
        mm per pixel of the tiles and the mosaic.
    """

    image: np.ndarray
    coverage: np.ndarray
    offsets: np.ndarray
    confidence: np.ndarray
    pairs: tuple[Match, ...]
    seams: np.ndarray
    spacing: tuple[float, float] = field(default=(1.0, 1.0))

    @property
    def offsets_mm(self) -> np.ndarray:
        """(n, 2) float ndarray: ``offsets`` in mm."""
        return self.offsets * np.asarray(self.spacing)


# ---------------------------------------------------------------- checks


def _check_tiles(tiles) -> list[np.ndarray]:
    if isinstance(tiles, np.ndarray) or not hasattr(tiles, "__len__"):
        raise TypeError(
            f"tiles must be a list of 2D arrays; got {type(tiles).__name__}"
        )
    if len(tiles) == 0:
        raise ValueError("tiles must hold at least one 2D array; got an empty list")
    out = []
    for k, tile in enumerate(tiles):
        tile = check_image(tile, f"tiles[{k}]", finite=True)
        if tile.ndim != 2 or min(tile.shape) < _MIN_SIDE:
            raise ValueError(
                f"tiles[{k}] must be a 2D (M, N) image with both sides >= "
                f"{_MIN_SIDE} px; got shape {tile.shape}"
            )
        out.append(tile)
    return out


# -------------------------------------------------------------- cutting


@declared
def cut_tiles(
    image: np.ndarray,
    *,
    grid: tuple[int, int] = (2, 3),
    overlap: Annotated[
        float, Param(0.05, 0.9, 0.01, "", "fraction of a tile shared with a neighbour")
    ] = 0.2,
    jitter_px: Annotated[
        int, Param(0, 500, 1, "px", "random displacement of each tile")
    ] = 0,
    seed: Seed = 0,
    shuffle: bool = True,
) -> tuple[list[np.ndarray], np.ndarray]:
    """Cut an image into overlapping, jittered tiles, for known-truth tests.

    All tiles have the same size ``(h, w)``, chosen so that a regular
    ``grid`` of them with the given ``overlap`` spans the image exactly:
    ``h = floor(M / (rows - (rows - 1) * overlap))``. Each tile's top-left
    corner is then moved by a random whole number of pixels in
    ``[-jitter_px, jitter_px]`` per axis, and kept inside the image.

    Parameters
    ----------
    image : (M, N) ndarray
        The image to cut; not modified.
    grid : (int, int)
        Rows and columns of tiles.
    overlap : float
        Fraction of a tile's height (width) that it shares with its neighbour
        below (to the right) before jitter, in ``[0.05, 0.9]``.
    jitter_px : int
        Largest displacement per axis, in pixels. Must be less than half the
        overlap in pixels, so that neighbours always overlap.
    seed : int
        Seed of the random jitter and order.
    shuffle : bool
        Return the tiles in random order (as a stitcher sees unordered input).

    Returns
    -------
    tiles : list of (h, w) ndarray
        Copies of the image's pixels, in the image's dtype.
    offsets : (n, 2) int ndarray
        ``(row, col)`` of each tile's top-left corner in ``image``, in pixels,
        in the order of ``tiles``.

    Examples
    --------
    >>> import numpy as np
    >>> tiles, offsets = cut_tiles(np.zeros((100, 150)), grid=(2, 2), shuffle=False)
    >>> tiles[0].shape, offsets.tolist()
    ((55, 83), [[0, 0], [0, 67], [45, 0], [45, 67]])
    """
    image = check_image(image)
    if image.ndim != 2:
        raise ValueError(f"image must be a 2D (M, N) image; got shape {image.shape}")
    try:
        rows, cols = (int(g) for g in grid)
        ok = (rows, cols) == tuple(grid) and rows >= 1 and cols >= 1
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(
            f"grid must be two whole numbers >= 1 (rows, cols); got {grid!r}"
        )
    size, starts = [], []
    for n, length, axis in (
        (rows, image.shape[0], "row"),
        (cols, image.shape[1], "col"),
    ):
        side = int(length / (n - (n - 1) * overlap))
        if side < _MIN_SIDE:
            raise ValueError(
                f"grid {grid} cuts tiles of {side} px per {axis}; at least "
                f"{_MIN_SIDE} px are needed, use fewer tiles"
            )
        if n > 1 and 2 * jitter_px >= overlap * side:
            raise ValueError(
                f"jitter_px must be less than half the overlap ({overlap * side:.0f} "
                f"px per {axis}) so that neighbours overlap; got {jitter_px}"
            )
        size.append(side)
        starts.append(np.rint(np.linspace(0, length - side, n)).astype(int))
    rng = np.random.default_rng(seed)
    corners = np.array([(r, c) for r in starts[0] for c in starts[1]], dtype=int)
    corners += rng.integers(-jitter_px, jitter_px + 1, size=corners.shape)
    high = np.array(image.shape) - np.array(size)
    corners = np.clip(corners, 0, high)
    if shuffle:
        corners = corners[rng.permutation(len(corners))]
    tiles = [image[r : r + size[0], c : c + size[1]].copy() for r, c in corners]
    return tiles, corners


# ----------------------------------------------------------- pairwise


def _downscale(tile: np.ndarray, factor: int) -> np.ndarray:
    t = tile.astype(np.float32)
    if factor == 1:
        return t
    h, w = tile.shape
    return cv2.resize(
        t, (max(1, w // factor), max(1, h // factor)), interpolation=cv2.INTER_AREA
    )


def _highpass(tile: np.ndarray) -> np.ndarray:
    """Edges and texture of a tile: ``t - G_1 * t`` (Gaussian, sigma 1 px).

    Radiographs are smooth: over a narrow strip their intensities correlate
    with almost any other smooth strip. Their edges and texture do not. The
    support is small so that the tile's border, where overlaps lie, changes
    only a pixel or two of it.
    """
    return tile - cv2.GaussianBlur(tile, (0, 0), 1.0)


def _detail(overlap: np.ndarray) -> np.ndarray:
    """Band-pass copy of an overlap: difference of Gaussians, sigma 1 and 3 px.

    Taken of the overlap itself (not of the whole tile), so that the two
    tiles' overlaps, if they show the same pixels, give the same copy.
    """
    t = overlap.astype(np.float32)
    return cv2.GaussianBlur(t, (0, 0), 1.0) - cv2.GaussianBlur(t, (0, 0), 3.0)


def _integral(t: np.ndarray) -> np.ndarray:
    out = np.zeros((t.shape[0] + 1, t.shape[1] + 1))
    out[1:, 1:] = t.cumsum(0).cumsum(1)
    return out


def _shift_grid(shape_a, shape_b):
    """Every whole-pixel shift with an overlap, and the overlap's bounds."""
    bounds = []
    for la, lb in zip(shape_a, shape_b, strict=True):
        d = np.arange(-(lb - 1), la)
        lo, hi = np.maximum(0, d), np.minimum(la, d + lb)
        bounds.append((d, lo, hi))
    return bounds


def _correlate(a: np.ndarray, b: np.ndarray, *, whiten: bool) -> np.ndarray:
    """Linear cross-correlation ``C(d) = sum_x a(x) b(x - d)`` by FFT.

    On the grid of :func:`_shift_grid`: ``C[dy + M_b - 1, dx + N_b - 1]``.
    Zero-padded to at least ``M_a + M_b - 1`` by ``N_a + N_b - 1``, so that it
    is linear, not circular. ``whiten=True`` divides the cross-power spectrum
    by its magnitude, ``R = F_a F_b^* / |F_a F_b^*|``: phase correlation.
    """
    size = [
        cv2.getOptimalDFTSize(la + lb - 1)
        for la, lb in zip(a.shape, b.shape, strict=True)
    ]
    spectra = []
    for t in (a, b):
        padded = np.zeros(size, np.float32)
        padded[: t.shape[0], : t.shape[1]] = t
        spectra.append(cv2.dft(padded, flags=cv2.DFT_COMPLEX_OUTPUT))
    r = cv2.mulSpectrums(spectra[0], spectra[1], 0, conjB=True)
    if whiten:
        magnitude = cv2.magnitude(r[..., 0], r[..., 1])
        top = float(magnitude.max())
        if top == 0:  # a flat tile
            return np.zeros((a.shape[0] + b.shape[0] - 1, a.shape[1] + b.shape[1] - 1))
        r /= (magnitude + 1e-6 * top)[..., None]
    c = cv2.idft(r, flags=cv2.DFT_REAL_OUTPUT | cv2.DFT_SCALE).astype(np.float64)
    # Lags -(M_b - 1) .. M_a - 1 sit at the end and then the start of each axis.
    (hb, wb), (ha, wa) = b.shape, a.shape
    c = np.concatenate([c[size[0] - hb + 1 :], c[:ha]], axis=0)
    return np.concatenate([c[:, size[1] - wb + 1 :], c[:, :wa]], axis=1)


def _ncc_surface(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """NCC of ``a`` and ``b`` over their overlap, for every whole-pixel shift.

    ``surface[dy + M_b - 1, dx + N_b - 1]`` is the NCC for ``b``'s origin at
    ``(dy, dx)`` in ``a``'s frame (NaN where an overlap is flat), and ``area``
    its overlap in pixels. The cross term is one linear correlation by FFT;
    the overlap's sums and sums of squares come from integral images
    (J. P. Lewis, "Fast normalized cross-correlation", Vision Interface 1995),
    so the whole surface costs three FFTs.
    """
    a = a.astype(np.float64) - a.mean()
    b = b.astype(np.float64) - b.mean()
    (dy, ya0, ya1), (dx, xa0, xa1) = _shift_grid(a.shape, b.shape)
    cross = _correlate(a, b, whiten=False)

    def box(table, r0, r1, c0, c1):
        rows = table[r1] - table[r0]
        return rows[:, c1] - rows[:, c0]

    area = (ya1 - ya0)[:, None] * (xa1 - xa0)[None, :]
    sa = box(_integral(a), ya0, ya1, xa0, xa1)
    sa2 = box(_integral(a * a), ya0, ya1, xa0, xa1)
    yb0, yb1, xb0, xb1 = ya0 - dy, ya1 - dy, xa0 - dx, xa1 - dx
    sb = box(_integral(b), yb0, yb1, xb0, xb1)
    sb2 = box(_integral(b * b), yb0, yb1, xb0, xb1)
    va = sa2 - sa * sa / area
    vb = sb2 - sb * sb / area
    # Variance below 1e-6 of the tile's (per pixel) is rounding: a flat overlap.
    flat = (va <= 1e-6 * area * a.var()) | (vb <= 1e-6 * area * b.var())
    with np.errstate(invalid="ignore", divide="ignore"):
        surface = (cross - sa * sb / area) / np.sqrt(va * vb)
    surface[flat] = np.nan
    return np.clip(surface, -1.0, 1.0), area


def _phase_surface(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Phase correlation of ``a`` and ``b``, on the grid of :func:`_ncc_surface`.

    The normalised cross-power spectrum ``R = F_a F_b^* / |F_a F_b^*|`` of the
    mean-subtracted tiles, zero-padded so that the correlation is linear; its
    inverse transform peaks at the shift. No window: a window would taper
    the tile borders, where the overlaps lie.
    """
    return _correlate(a - a.mean(), b - b.mean(), whiten=True)


def _peaks(surface: np.ndarray, valid: np.ndarray, count: int) -> list[tuple[int, int]]:
    """Indices of the ``count`` highest local maxima (5 x 5) of ``surface``."""
    s = np.where(valid & np.isfinite(surface), surface, -np.inf).astype(np.float32)
    top = cv2.dilate(s, np.ones((5, 5), np.uint8))
    rows, cols = np.nonzero((s == top) & np.isfinite(s))
    order = np.argsort(-s[rows, cols], kind="stable")[:count]
    return [(int(rows[k]), int(cols[k])) for k in order]


def _overlap_slices(shape_a, shape_b, shift):
    """Slices of the overlap in ``a`` and in ``b`` for a whole-pixel shift."""
    dy, dx = (int(s) for s in shift)
    r0, r1 = max(0, dy), min(shape_a[0], dy + shape_b[0])
    c0, c1 = max(0, dx), min(shape_a[1], dx + shape_b[1])
    if r1 <= r0 or c1 <= c0:
        return None
    return (
        (slice(r0, r1), slice(c0, c1)),
        (slice(r0 - dy, r1 - dy), slice(c0 - dx, c1 - dx)),
    )


def _overlap_area(shape_a, shape_b, shift) -> int:
    sl = _overlap_slices(shape_a, shape_b, shift)
    if sl is None:
        return 0
    return (sl[0][0].stop - sl[0][0].start) * (sl[0][1].stop - sl[0][1].start)


def _overlap_fraction(shape_a, shape_b, sl) -> float:
    area = (sl[0].stop - sl[0].start) * (sl[1].stop - sl[1].start)
    return area / min(shape_a[0] * shape_a[1], shape_b[0] * shape_b[1])


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson's r of two equal-shape arrays; NaN if either is flat."""
    return _pearson(a.astype(np.float64).ravel(), b.astype(np.float64).ravel())


class _PairScore:
    """NCC of tiles ``a`` and ``b`` over their overlap at whole-pixel shifts.

    Overlaps smaller than ``min_area`` pixels, or flat in either tile, score
    NaN. ``transform`` (of each overlap, before the NCC) can be
    :func:`_detail`. With ``budget``, overlaps larger than that many pixels
    are sampled on a regular grid (every ``k``-th row and column) for speed.
    Values are cached.
    """

    def __init__(self, a, b, min_area: float, budget=10_000, transform=None):
        self.a, self.b, self.min_area, self.budget = a, b, min_area, budget
        self.transform = transform
        self.cache: dict[tuple[int, int], float] = {}

    def __call__(self, shift) -> float:
        key = (int(shift[0]), int(shift[1]))
        if key not in self.cache:
            sl = _overlap_slices(self.a.shape, self.b.shape, key)
            value = float("nan")
            if sl is not None:
                rows = sl[0][0].stop - sl[0][0].start
                area = rows * (sl[0][1].stop - sl[0][1].start)
                if area >= self.min_area:
                    k = 1 if self.budget is None else int(np.sqrt(area / self.budget))
                    k = max(1, k)
                    oa, ob = self.a[sl[0]], self.b[sl[1]]
                    if self.transform is not None:
                        oa, ob = self.transform(oa), self.transform(ob)
                    value = _ncc(oa[::k, ::k], ob[::k, ::k])
            self.cache[key] = value
        return self.cache[key]


_NEIGHBOURS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]


def _climb(score: _PairScore, start, limit: int) -> tuple[np.ndarray, float]:
    """Steepest ascent of ``score`` over whole-pixel shifts from ``start``.

    Phase correlation and the coarse level can be off by a few pixels; the
    NCC of the overlap itself decides. The climb goes on while a neighbour
    improves, at most ``limit`` steps (a bound from the tiles' size, not a
    fixed count).
    """
    current = np.rint(start).astype(int)
    best = score(current)
    if not np.isfinite(best):
        return current, best
    for _ in range(limit):
        values = [(score(current + d), d) for d in _NEIGHBOURS]
        values = [v for v in values if np.isfinite(v[0])]
        if not values:
            break
        top, move = max(values, key=lambda v: v[0])
        if top <= best + 1e-9:
            break
        best, current = top, current + np.array(move)
    return current, best


def _parabola(score: _PairScore, shift: np.ndarray) -> np.ndarray:
    """Parabola through the NCC at ``shift`` and its neighbours, per axis.

    The vertex of the parabola through ``s(-1), s(0), s(+1)`` lies at
    ``(s(-1) - s(+1)) / (2 (s(-1) - 2 s(0) + s(+1)))`` (clipped to half a
    pixel); an axis without a curved maximum keeps the whole pixel.
    """
    out = shift.astype(float)
    centre = score(shift)
    for axis in (0, 1):
        step = np.zeros(2, int)
        step[axis] = 1
        lo, hi = score(shift - step), score(shift + step)
        curve = lo - 2 * centre + hi
        if np.isfinite(curve) and curve < 0:
            out[axis] += float(np.clip(0.5 * (lo - hi) / curve, -0.5, 0.5))
    return out


#: How far (px) the Gauss-Newton refinement may move from the whole-pixel
#: match: a little over a pixel, so that it can also correct a climb that
#: stopped one pixel short on a sharp edge.
_SUBPIXEL_REACH = 1.5


def _subpixel(a: np.ndarray, b: np.ndarray, shift: np.ndarray, score: _PairScore):
    """Sub-pixel shift near the whole-pixel ``shift``, by Gauss-Newton.

    With ``B_t(x) = b(x + r_0 - t)`` the overlap of ``b`` resampled (bicubic)
    at the residual ``t``, the overlap of ``a`` is modelled as
    ``A = g B_t - g dt . grad B_t + o`` (gain ``g``, offset ``o``: the
    Lucas-Kanade linearisation, Lucas & Kanade 1981); least squares give
    ``dt``, ``t += dt``, until ``|dt| < 0.001`` px. A parabola fit of the NCC
    (:func:`_parabola`) estimates sharp edges worse, where NCC falls off as a
    cone rather than a parabola; it is kept as the fallback when the
    iteration does not settle within ``_SUBPIXEL_REACH``.
    """
    sl = _overlap_slices(a.shape, b.shape, shift)
    fallback = _parabola(score, shift)
    target = a[sl[0]].astype(np.float32)
    if min(target.shape) < 8:
        return fallback
    r0, c0 = sl[1][0].start, sl[1][1].start
    h, w = target.shape
    k = max(1, int(np.sqrt(h * w / 250_000)))
    inner = (slice(2, h - 2, k), slice(2, w - 2, k))
    y = target[inner].astype(np.float64).ravel()
    src = b.astype(np.float32)
    t = np.zeros(2)
    for _ in range(8):
        m = np.float32([[1, 0, c0 - t[1]], [0, 1, r0 - t[0]]])
        moved = cv2.warpAffine(
            src,
            m,
            (w, h),
            flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        )
        gy, gx = np.gradient(moved)
        x = np.stack(
            [
                moved[inner].ravel(),
                np.ones(y.size),
                -gy[inner].ravel(),
                -gx[inner].ravel(),
            ],
            axis=1,
        ).astype(np.float64)
        normal = np.einsum("ij,ik->jk", x, x)
        try:
            g, _, uy, ux = np.linalg.solve(normal, np.einsum("ij,i->j", x, y))
        except np.linalg.LinAlgError:
            return fallback
        if not g > 0:
            return fallback
        step = np.array([uy, ux]) / g
        t += step
        if np.abs(t).max() > _SUBPIXEL_REACH:
            return fallback
        if np.abs(step).max() < 1e-3:
            return shift + t
    return fallback


#: Candidate shifts per pair kept from the coarse level: the highest local
#: maxima of the band-pass NCC surface and of the phase correlation.
_NCC_PEAKS = 5
_PHASE_PEAKS = 2
#: Smallest band-pass NCC of an accepted overlap: below it the overlap holds
#: no edges or texture that both tiles share (flat background, noise alone).
_MIN_DETAIL_NCC = 0.4
#: A match must be distinct: at every other place tried (the ring of 16
#: shifts ``_RING_PX`` px around it and the other coarse candidates) the
#: overlap's disagreement ``1 - score`` must be at least ``_DISTINCT`` times
#: the match's. Otherwise the overlap holds only a straight edge or a stripe
#: along which the tiles could slide, or a pattern that repeats.
_RING_PX = 8
_DISTINCT = 2.0


@dataclass
class _Tile:
    """A tile prepared for matching: full resolution, coarse, coarse edges."""

    full: np.ndarray
    small: np.ndarray
    small_detail: np.ndarray

    @classmethod
    def of(cls, tile: np.ndarray, factor: int) -> _Tile:
        # NCC ignores gain and offset: standardise each tile, so that float32
        # FFTs neither overflow (values near 1e38) nor underflow (near 1e-38).
        t = tile.astype(np.float64)
        top = float(np.abs(t).max())
        if top > 0:
            t = t / top
        t -= t.mean()
        spread = float(t.std())
        full = (t / spread if spread > 0 else t).astype(np.float32)
        small = _downscale(full, factor)
        return cls(full, small, _highpass(small))


def _candidates(a: _Tile, b: _Tile, min_overlap: float) -> list[np.ndarray]:
    """Coarse shifts (``(row, col)``, coarse pixels) worth refining."""
    surface, area = _ncc_surface(a.small_detail, b.small_detail)
    valid = area >= min_overlap * min(a.small.size, b.small.size)
    picks = _peaks(surface, valid, _NCC_PEAKS)
    for p in _peaks(_phase_surface(a.small, b.small), valid, _PHASE_PEAKS):
        if all(max(abs(p[0] - q[0]), abs(p[1] - q[1])) > 1 for q in picks):
            picks.append(p)
    origin = np.array(b.small.shape) - 1
    return [np.array(p) - origin for p in picks]


def _match_pair(a: _Tile, b: _Tile, factor: int, min_overlap: float):
    """Best shift of ``b`` in ``a``'s frame: ``(shift, ncc, overlap)`` or None.

    Every coarse candidate is scaled to full resolution and climbed on the
    NCC of the overlap; the candidate whose overlap agrees best (mean of the
    NCC of the intensities and of the band-pass copies) wins. It is refused
    (None) if its overlap holds no shared detail or if the match is not
    distinct (see ``_MIN_DETAIL_NCC`` and ``_DISTINCT``).
    """
    picks = _candidates(a, b, min_overlap)
    min_area = min_overlap * min(a.full.size, b.full.size)
    raw = _PairScore(a.full, b.full, min_area)
    detail = _PairScore(a.full, b.full, min_area, transform=_detail)
    # Each candidate is first climbed on the coarse copies (cheap), then at
    # full resolution, where the coarse level is off by up to about a coarse
    # pixel (factor px), more where a flat overlap misleads it.
    coarse = _PairScore(a.small, b.small, min_overlap * min(a.small.size, b.small.size))
    coarse_limit = 8
    limit = 4 * factor + 4

    def key(shift):
        """Agreement of the overlap: mean NCC of intensities and band-pass."""
        return 0.5 * (raw(shift) + detail(shift))

    found = []
    for p in picks:
        if factor > 1:
            p, _ = _climb(coarse, p, coarse_limit)
        shift, value = _climb(raw, p * factor, limit)
        if np.isfinite(value) and np.isfinite(key(shift)):
            found.append((key(shift), tuple(shift)))
    if not found:
        return None
    best, shift = max(found)
    shift = np.array(shift)
    if not detail(shift) >= _MIN_DETAIL_NCC:
        return None
    # The ring is scored whatever its overlap's size (a narrow overlap moved
    # sideways must decorrelate too); only an empty overlap is skipped.
    ring_raw = _PairScore(a.full, b.full, 1)
    ring_detail = _PairScore(a.full, b.full, 1, transform=_detail)
    angles = np.arange(16) * (np.pi / 8)
    ring = np.rint(_RING_PX * np.c_[np.sin(angles), np.cos(angles)]).astype(int)
    # Another candidate competes if it lies beyond the ring and its overlap
    # is at least half as large: over a few hundred pixels a high NCC is
    # weak evidence, so a much smaller overlap does not outweigh this one.
    area = _overlap_area(a.full.shape, b.full.shape, shift)
    bar = 1.0 - _DISTINCT * (1.0 - best)  # others must score below it

    def ring_key(shift):
        value = ring_raw(shift)
        # The band-pass NCC is at most 1: skip it where even that stays below.
        if not np.isfinite(value) or 0.5 * (value + 1.0) < bar:
            return value
        return 0.5 * (value + ring_detail(shift))

    others = [ring_key(shift + d) for d in ring] + [
        k
        for k, s in found
        if np.abs(np.subtract(s, shift)).max() > _RING_PX
        and _overlap_area(a.full.shape, b.full.shape, s) >= 0.5 * area
    ]
    if np.nanmax(others, initial=-1.0) > bar:
        return None
    sl = _overlap_slices(a.full.shape, b.full.shape, shift)
    value = _ncc(a.full[sl[0]], b.full[sl[1]])
    frac = _overlap_fraction(a.full.shape, b.full.shape, sl[0])
    fine = _subpixel(a.full, b.full, shift, _PairScore(a.full, b.full, 0, None))
    return fine, value, frac


# ----------------------------------------------------------- placement


def _components(n: int, edges) -> list[list[int]]:
    parent = list(range(n))

    def root(k):
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for i, j in edges:
        parent[root(i)] = root(j)
    groups: dict[int, list[int]] = {}
    for k in range(n):
        groups.setdefault(root(k), []).append(k)
    return sorted(groups.values(), key=lambda g: (-len(g), g[0]))


def _solve(n: int, pairs: list[Match]) -> tuple[np.ndarray, np.ndarray]:
    """Weighted least-squares offsets (tile 0 at the origin) and pair residuals."""
    a = np.zeros((len(pairs) + 1, n))
    d = np.zeros((len(pairs) + 1, 2))
    w = np.ones(len(pairs) + 1)
    for row, m in enumerate(pairs):
        a[row, m.i], a[row, m.j] = -1.0, 1.0
        d[row] = m.shift
        w[row] = max(m.ncc, 1e-3)
    a[-1, 0] = 1.0  # anchor: p_0 = 0
    sw = np.sqrt(w)[:, None]
    p, *_ = np.linalg.lstsq(a * sw, d * sw, rcond=None)
    residual = np.linalg.norm(a[:-1] @ p - d[:-1], axis=1)
    return p, residual


def _place(n: int, pairs: list[Match], min_overlap: float, min_ncc: float):
    groups = _components(n, [(m.i, m.j) for m in pairs])
    if len(groups) > 1:
        placed = groups[0]
        lost = sorted(k for g in groups[1:] for k in g)
        raise ValueError(
            f"tiles {lost} could not be placed: they share no overlap of at least "
            f"min_overlap={min_overlap:g} with NCC >= min_ncc={min_ncc:g} with tiles "
            f"{placed} that holds something to match (an overlap that is flat "
            f"background, noise alone or a single straight edge does not); cut "
            f"the tiles with more overlap, or lower min_overlap or min_ncc"
        )
    pairs = list(pairs)
    p, residual = _solve(n, pairs)
    while len(pairs) and residual.max() > _MAX_RESIDUAL_PX:
        # A wrong pair in a loop spreads its error over the whole loop, so
        # the largest residual need not be its own: drop the pair whose
        # removal leaves the others most consistent, and of removals that do
        # equally well (any edge of a single loop), the pair of lowest NCC.
        best = None
        for k in range(len(pairs)):
            rest = pairs[:k] + pairs[k + 1 :]
            if len(_components(n, [(m.i, m.j) for m in rest])) != 1:
                continue
            q, r = _solve(n, rest)
            worst = float(r.max()) if len(r) else 0.0
            key = (round(worst / 0.25), pairs[k].ncc)
            if best is None or key < best[0]:
                best = (key, worst, rest, q, r)
        if best is None or best[1] >= residual.max():
            break
        _, _, pairs, p, residual = best
    return p, pairs, residual


# ------------------------------------------------------------ blending


def _border_distance(shape: tuple[int, int]) -> np.ndarray:
    """Distance (px) of each pixel to the outside of a rectangle of ``shape``.

    Equal to ``cv2.distanceTransform`` of the tile's support (Euclidean, exact
    for a rectangle), computed in closed form.
    """
    h, w = shape
    rows = np.minimum(np.arange(1, h + 1), np.arange(h, 0, -1)).astype(np.float32)
    cols = np.minimum(np.arange(1, w + 1), np.arange(w, 0, -1)).astype(np.float32)
    return np.minimum(rows[:, None], cols[None, :])


# --------------------------------------------------------------- stitch


# stitch's options, declared once: the stitching step of a recipe
# (medimg_lab.composition.steps) takes the same.
SeamBlend = Annotated[
    str, Param(doc="how seams are blended", choices=("feather", "multiband", "none"))
]
MinOverlap = Annotated[
    float, Param(0.005, 0.9, 0.005, "", "smallest overlap, fraction of a tile")
]
MinNcc = Annotated[
    float, Param(0.0, 1.0, 0.01, "", "smallest NCC of an accepted overlap")
]
SeamLevels = Annotated[int, Param(1, 8, 1, "", "pyramid levels of multiband blending")]


@declared
def stitch(
    tiles,
    *,
    blend: SeamBlend = "feather",
    min_overlap: MinOverlap = 0.02,
    min_ncc: MinNcc = 0.8,
    levels: SeamLevels = 5,
    fill: float = 0.0,
    spacing: Spacing = None,
) -> Stitched:
    """Stitch unordered, overlapping tiles into one mosaic.

    Every pair of tiles is matched by candidates from phase correlation and
    from the NCC of their edges (on copies downscaled to about 512 px),
    climbed at full resolution on the NCC of the overlap and refined to a
    sub-pixel shift; the offsets are the weighted least-squares placement of
    the accepted pairs (see the module docstring). Overlaps down to 5 % of a
    tile's width or height are placed to within a pixel; sub-pixel shifts
    were recovered to within 0.05 px on the chest film, shoulder MR and head
    CT (tests/composition/test_stitching_overlaps.py).

    Parameters
    ----------
    tiles : sequence of (M_k, N_k) ndarray
        Tiles in any order; sizes may differ, values in the same units. At
        least 16 px per side, finite. Not modified.
    blend : {"feather", "multiband", "none"}
        ``"feather"``: each pixel is the mean of the tiles covering it,
        weighted by the distance to each tile's border, ``I = sum w_k I_k /
        sum w_k``. ``"multiband"``: Laplacian-pyramid blending of the seams
        (Burt & Adelson 1983), outside its own tile each tile is extended by
        the feathered mosaic. ``"none"``: tiles are pasted in input order,
        later ones on top.
    min_overlap : float
        Smallest overlap area of an accepted pair, as a fraction of the smaller
        tile's area, in ``[0.005, 0.9]``.
    min_ncc : float
        Smallest NCC over the overlap of an accepted pair, in ``[0, 1]``.
    levels : int
        Pyramid levels for ``blend="multiband"``, in ``[1, 8]``; fewer are
        used if the mosaic is small.
    fill : float
        Value of mosaic pixels no tile covers, in the tiles' units (NaN
        allowed).
    spacing : (float, float), optional
        mm per pixel of the tiles (all alike); ``None`` means 1 mm.

    Returns
    -------
    Stitched
        ``image`` (H, W) float32 (float64 if a tile is float64), ``coverage``,
        ``offsets`` (n, 2) px and ``offsets_mm``, ``confidence`` (n,),
        ``pairs`` and ``seams``.

    Raises
    ------
    ValueError
        If the accepted pairs do not connect all the tiles; the message names
        the tiles that could not be placed. A tile of noise, one from another
        image, tiles that do not overlap, and tiles whose overlap is flat
        (uniform background) or holds only a straight edge fail this way.

    Examples
    --------
    >>> import cv2
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> noise = rng.random((200, 300)).astype(np.float32)
    >>> image = cv2.GaussianBlur(noise, (0, 0), 4)
    >>> tiles, truth = cut_tiles(image, grid=(2, 2), overlap=0.3, jitter_px=5)
    >>> result = stitch(tiles)
    >>> found = np.rint(result.offsets - result.offsets[0])
    >>> bool(np.all(found == truth - truth[0]))
    True
    """
    tiles = _check_tiles(tiles)
    if isinstance(fill, bool) or not isinstance(fill, int | float):
        raise ValueError(f"fill must be a number (NaN allowed); got {fill!r}")
    spacing = check_spacing(tiles[0].shape, spacing)
    n = len(tiles)
    dtype = np.float64 if any(t.dtype == np.float64 for t in tiles) else np.float32

    # 1. Pairwise matches.
    factor = max(1, int(np.ceil(max(max(t.shape) for t in tiles) / _COARSE_SIDE)))
    prepared = [_Tile.of(t, factor) for t in tiles]
    pairs = []
    for i in range(n):
        for j in range(i + 1, n):
            found = _match_pair(prepared[i], prepared[j], factor, min_overlap)
            if found is not None and found[1] >= min_ncc:
                shift, score, frac = found
                pairs.append(Match(i, j, np.asarray(shift, float), score, frac))

    # 2. Global placement.
    if n == 1:
        p, residual = np.zeros((1, 2)), np.zeros(0)
    else:
        p, pairs, residual = _place(n, pairs, min_overlap, min_ncc)
    offsets = p - p.min(axis=0)
    confidence = np.zeros(n) if n > 1 else np.ones(1)
    for m, r in zip(pairs, residual, strict=True):
        c = float(np.clip(m.ncc, 0, 1)) * np.exp(-0.5 * (r / _RESIDUAL_SCALE_PX) ** 2)
        confidence[m.i] = max(confidence[m.i], c)
        confidence[m.j] = max(confidence[m.j], c)

    # 3. Blending on the canvas, tiles at whole pixels.
    corners = np.rint(offsets).astype(int)
    height = int(max(c[0] + t.shape[0] for c, t in zip(corners, tiles, strict=True)))
    width = int(max(c[1] + t.shape[1] for c, t in zip(corners, tiles, strict=True)))
    image, seams, coverage = _compose(tiles, corners, (height, width), blend, levels)
    image = image.astype(dtype, copy=False)
    image[~coverage] = fill
    return Stitched(
        image=image,
        coverage=coverage,
        offsets=offsets,
        confidence=confidence,
        pairs=tuple(pairs),
        seams=seams,
        spacing=(spacing[0], spacing[1]),
    )


def _compose(tiles, corners, shape, blend, levels):
    seams = np.full(shape, -1, np.int32)
    rois = [
        (slice(r, r + t.shape[0]), slice(c, c + t.shape[1]))
        for (r, c), t in zip(corners, tiles, strict=True)
    ]
    if blend == "none":
        image = np.zeros(shape, np.float64)
        for k, (tile, roi) in enumerate(zip(tiles, rois, strict=True)):
            image[roi] = tile
            seams[roi] = k
        return image, seams, seams >= 0
    total = np.zeros(shape, np.float64)
    weight = np.zeros(shape, np.float64)
    best = np.zeros(shape, np.float32)
    for k, (tile, roi) in enumerate(zip(tiles, rois, strict=True)):
        w = _border_distance(tile.shape)
        total[roi] += w * tile
        weight[roi] += w
        deeper = w > best[roi]
        best[roi][deeper] = w[deeper]
        seams[roi][deeper] = k
    coverage = weight > 0
    feather = np.zeros(shape, np.float64)
    np.divide(total, weight, out=feather, where=coverage)
    if blend == "feather":
        return feather, seams, coverage
    levels = int(min(levels, max(1, np.log2(min(shape)) - 3)))
    base = feather.astype(np.float32)
    extended, masks = [], []
    owner = seams.copy()
    owner[~coverage] = 0  # uncovered pixels: tile 0's pyramid (the fill) carries them
    for k, (tile, roi) in enumerate(zip(tiles, rois, strict=True)):
        e = base.copy()
        e[roi] = tile
        extended.append(e)
        masks.append((owner == k).astype(np.float32))
    return pyramid_composite(extended, masks, bands=levels + 1), seams, coverage


# --------------------------------------------------------------- concat


def _concat(images, axis: int, name: str) -> np.ndarray:
    if isinstance(images, np.ndarray) or not hasattr(images, "__len__") or not images:
        raise ValueError(f"{name} needs a non-empty list of arrays; got {images!r:.60}")
    arrays = [np.asarray(im) for im in images]
    ref = arrays[0]
    if ref.ndim < 2:
        raise ValueError(
            f"{name}: images[0] must be at least 2D; got shape {ref.shape}"
        )
    other = "height" if axis == 1 else "width"
    for k, a in enumerate(arrays[1:], 1):
        keep = [s for d, s in enumerate(a.shape) if d != axis]
        want = [s for d, s in enumerate(ref.shape) if d != axis]
        if a.ndim != ref.ndim or keep != want:
            raise ValueError(
                f"{name}: images[{k}] has shape {a.shape} but must match the "
                f"{other} of images[0], shape {ref.shape} (all but axis {axis})"
            )
    return np.concatenate(arrays, axis=axis)


def hconcat(images) -> np.ndarray:
    """Place images side by side, left to right: tiles that abut exactly.

    Parameters
    ----------
    images : sequence of (M, N_k[, C]) ndarray
        Same height (and channels); not modified.

    Returns
    -------
    (M, sum N_k[, C]) ndarray
        In the images' dtype (mixed dtypes promote as in NumPy).

    Examples
    --------
    >>> import numpy as np
    >>> hconcat([np.zeros((2, 1)), np.ones((2, 2))]).shape
    (2, 3)
    """
    return _concat(images, 1, "hconcat")


def vconcat(images) -> np.ndarray:
    """Stack images top to bottom: tiles that abut exactly.

    Parameters
    ----------
    images : sequence of (M_k, N[, C]) ndarray
        Same width (and channels); not modified.

    Returns
    -------
    (sum M_k, N[, C]) ndarray
        In the images' dtype (mixed dtypes promote as in NumPy).

    Examples
    --------
    >>> import numpy as np
    >>> vconcat([np.zeros((1, 2)), np.ones((2, 2))]).shape
    (3, 2)
    """
    return _concat(images, 0, "vconcat")
