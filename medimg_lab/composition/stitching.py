"""Stitching: one mosaic from overlapping tiles, placed from the images alone.

:func:`stitch` takes tiles in any order and finds where each one lies:

1. **Pairwise shifts.** For every pair of tiles the translation is estimated by
   phase correlation (Kuglin & Hines 1975): the normalised cross-power
   spectrum :math:`R = F_a F_b^* / |F_a F_b^*|` of two windowed tiles, padded
   to a common size (twice the larger tile, so that the correlation is linear),
   has its inverse-transform peak at the shift. The peak is found on copies
   downscaled to about 256 px first, then refined at full resolution on the
   overlap alone. The window of the coarse step tapers only the outer 5 % of
   each side (a Tukey window): a full Hanning window would suppress the tile
   borders, where overlaps lie, and was measured to fail on the chest film.
   The shift is only known modulo the padded size, so every wrap alternative
   is tried and the one whose overlap has the highest normalised
   cross-correlation (NCC) is kept. Pairs whose overlap is smaller
   than ``min_overlap`` or whose NCC is below ``min_ncc`` are rejected.
2. **Global placement.** The tile offsets :math:`p_k` minimise
   :math:`\\sum_{(i, j)} w_{ij} \\lVert p_j - p_i - d_{ij} \\rVert^2` over the
   accepted pairs, with weights :math:`w_{ij}` = NCC (Szeliski 2006, §6),
   anchored at tile 0 and then shifted so that the smallest offset is
   ``(0, 0)``. A pair that disagrees with the solution by more than 2 px is
   dropped and the solve repeated, as long as the tiles stay connected.
3. **Blending.** ``"feather"``: :math:`I = \\sum_k w_k I_k / \\sum_k w_k`
   with :math:`w_k` the distance to tile :math:`k`'s border;
   ``"multiband"``: the Laplacian-pyramid spline of Burt & Adelson (1983),
   :math:`L(I) = \\sum_k G(M_k) \\, L(I_k)`, with :math:`M_k` the pixels tile
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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

import cv2
import numpy as np

from .._checks import Spacing, check_image, check_spacing
from ..params import Param, Seed, parameters
from .fusion import pyramid_composite
from .registration import ncc

__all__ = ["Match", "Stitched", "cut_tiles", "hconcat", "stitch", "vconcat"]

#: Side (px) of the downscaled copies on which shifts are first estimated.
_COARSE_SIDE = 256
#: Fraction of each side of a tile tapered by the window of the coarse phase
#: correlation. A full Hanning window would suppress the tile borders, where
#: the overlaps lie.
_COARSE_TAPER = 0.1
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
        shows. Subpixel, from phase correlation.
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


def _check_declared(fn, **values):
    specs = parameters(fn)
    return [specs[k].check(v, f"{fn.__name__}: ") for k, v in values.items()]


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
    overlap, jitter_px, seed = _check_declared(
        cut_tiles, overlap=overlap, jitter_px=jitter_px, seed=seed
    )
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


def _window(shape: tuple[int, int], taper: float) -> np.ndarray:
    """Tukey window: a Hanning ramp over ``taper / 2`` of each side, flat inside.

    ``taper=1`` is the full Hanning window (``cv2.createHanningWindow``).
    """
    if taper >= 1:
        return cv2.createHanningWindow((shape[1], shape[0]), cv2.CV_32F)
    axes = []
    for n in shape:
        w = np.ones(n, np.float32)
        m = max(1, int(taper * n / 2))
        ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(m) + 0.5) / m)
        w[:m], w[n - m :] = ramp, ramp[::-1]
        axes.append(w)
    return np.outer(*axes)


def _phase_shift(a: np.ndarray, b: np.ndarray, taper: float) -> np.ndarray:
    """``(row, col)`` of ``b``'s origin in ``a``'s frame, by phase correlation.

    Both are mean-subtracted and windowed at their own size (``taper``, see
    :func:`_window`), then zero-padded to twice their common size, so that the
    correlation is linear rather than circular. The shift is found modulo the
    padded size.
    """
    shape = (2 * max(a.shape[0], b.shape[0]), 2 * max(a.shape[1], b.shape[1]))
    padded = []
    for t in (a, b):
        p = np.zeros(shape, np.float32)
        p[: t.shape[0], : t.shape[1]] = (t - t.mean()) * _window(t.shape, taper)
        padded.append(p)
    (x, y), _ = cv2.phaseCorrelate(padded[0], padded[1])
    return -np.array([y, x])


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


def _overlap_fraction(shape_a, shape_b, sl) -> float:
    area = (sl[0].stop - sl[0].start) * (sl[1].stop - sl[1].start)
    return area / min(shape_a[0] * shape_a[1], shape_b[0] * shape_b[1])


def _match_pair(a, b, a_small, b_small, factor, min_overlap):
    """Best shift of ``b`` in ``a``'s frame: ``(shift, ncc, overlap)`` or None."""
    # Coarse: phase correlation, then every wrap alternative checked by NCC.
    base = _phase_shift(a_small, b_small, _COARSE_TAPER)
    period = 2 * np.maximum(a_small.shape, b_small.shape)
    best = None
    for ky in (-1, 0, 1):
        for kx in (-1, 0, 1):
            cand = np.rint(base + period * (ky, kx)).astype(int)
            sl = _overlap_slices(a_small.shape, b_small.shape, cand)
            if sl is None:
                continue
            if _overlap_fraction(a_small.shape, b_small.shape, sl[0]) < min_overlap:
                continue
            score = ncc(a_small[sl[0]], b_small[sl[1]])
            if best is None or score > best[1]:
                best = (cand, score)
    if best is None:
        return None
    # Fine: phase correlation of the full-resolution overlaps.
    coarse = best[0] * factor
    sl = _overlap_slices(a.shape, b.shape, coarse)
    if sl is None:
        return None
    candidates = [coarse.astype(float)]
    oa, ob = a[sl[0]], b[sl[1]]
    if min(oa.shape) >= _MIN_SIDE:
        fine = coarse + _phase_shift(oa.astype(np.float32), ob.astype(np.float32), 1.0)
        if np.all(np.abs(fine - coarse) <= 2 * factor + 1):
            candidates.insert(0, fine)
    result = None
    for shift in candidates:
        sl = _overlap_slices(a.shape, b.shape, np.rint(shift))
        if sl is None:
            continue
        frac = _overlap_fraction(a.shape, b.shape, sl[0])
        if frac < min_overlap:
            continue
        score = ncc(a[sl[0]].astype(np.float32), b[sl[1]].astype(np.float32))
        if result is None or score > result[1] + 1e-6:
            result = (shift, score, frac)
    return result if result is None else _climb(a, b, result, min_overlap)


def _climb(a, b, result, min_overlap):
    """Hill-climb the overlap NCC over whole-pixel shifts from ``result``.

    Phase correlation can lock onto a wrong peak by a few pixels where the
    overlap is mostly flat (air around a head) or holds lines along one
    direction; the NCC of the overlap itself decides. The sub-pixel shift is
    kept when the climb ends where it started.
    """
    shift, score, frac = result
    start = current = np.rint(shift).astype(int)
    sl = _overlap_slices(a.shape, b.shape, start)
    # Large overlaps are sampled on a grid (at most ~60k pixels) for speed.
    step = max(1, int(np.sqrt(a[sl[0]].size / 60_000)))
    best = ncc(
        a[sl[0]][::step, ::step].astype(np.float32),
        b[sl[1]][::step, ::step].astype(np.float32),
    )
    for _ in range(8):
        moves = []
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                cand = current + np.array((dy, dx))
                sl = _overlap_slices(a.shape, b.shape, cand)
                if sl is None or (dy, dx) == (0, 0):
                    continue
                f = _overlap_fraction(a.shape, b.shape, sl[0])
                if f < min_overlap:
                    continue
                s = ncc(
                    a[sl[0]][::step, ::step].astype(np.float32),
                    b[sl[1]][::step, ::step].astype(np.float32),
                )
                moves.append((s, tuple(cand), f))
        top = max(moves, default=None)
        if top is None or top[0] <= best + 1e-6:
            break
        best, current, frac = top[0], np.array(top[1]), top[2]
    if np.array_equal(current, start):
        return result
    sl = _overlap_slices(a.shape, b.shape, current)
    score = ncc(a[sl[0]].astype(np.float32), b[sl[1]].astype(np.float32))
    return current.astype(float), score, frac


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
            f"{placed}; cut the tiles with more overlap, or lower min_overlap or "
            f"min_ncc"
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


def stitch(
    tiles,
    *,
    blend: Annotated[
        str,
        Param(doc="how seams are blended", choices=("feather", "multiband", "none")),
    ] = "feather",
    min_overlap: Annotated[
        float, Param(0.005, 0.9, 0.005, "", "smallest overlap, fraction of a tile")
    ] = 0.02,
    min_ncc: Annotated[
        float, Param(0.0, 1.0, 0.01, "", "smallest NCC of an accepted overlap")
    ] = 0.8,
    levels: Annotated[
        int, Param(1, 8, 1, "", "pyramid levels of multiband blending")
    ] = 5,
    fill: float = 0.0,
    spacing: Spacing = None,
) -> Stitched:
    """Stitch unordered, overlapping tiles into one mosaic.

    Every pair of tiles is matched by phase correlation (on copies downscaled
    to about 256 px, then refined at full resolution on the overlap) and
    verified by the NCC of the overlap; the offsets are the weighted
    least-squares placement of the accepted pairs (see the module docstring).

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
        the tiles that could not be placed. A tile of noise, or one from
        another image, fails this way.

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
    blend, min_overlap, min_ncc, levels = _check_declared(
        stitch, blend=blend, min_overlap=min_overlap, min_ncc=min_ncc, levels=levels
    )
    if isinstance(fill, bool) or not isinstance(fill, int | float):
        raise ValueError(f"fill must be a number (NaN allowed); got {fill!r}")
    spacing = check_spacing(tiles[0].shape, spacing)
    n = len(tiles)
    dtype = np.float64 if any(t.dtype == np.float64 for t in tiles) else np.float32

    # 1. Pairwise matches.
    factor = max(1, int(np.ceil(max(max(t.shape) for t in tiles) / _COARSE_SIDE)))
    small = [_downscale(t, factor) for t in tiles]
    pairs = []
    for i in range(n):
        for j in range(i + 1, n):
            found = _match_pair(
                tiles[i], tiles[j], small[i], small[j], factor, min_overlap
            )
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
