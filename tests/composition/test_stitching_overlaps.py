"""Stitching with narrow overlaps (issue 15, item 2): known truths on real images.

Tiles are cut from the chest and tibia radiographs, the head CT and the
shoulder MR, side by side and one above the other, with overlaps from 5 % to
40 % of the tile's width or height, at several rows and columns of each image,
and given in both orders; then in 2 x 2 grids, shuffled; then with known
sub-pixel shifts. Overlaps that hold nothing to match (a uniform strip, tiles
that do not overlap) must give the message, never a wrong place.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from medimg_lab import data
from medimg_lab.composition.stitching import cut_tiles, stitch

OVERLAPS = (0.05, 0.09, 0.15, 0.25, 0.40)

#: Tile size (rows, cols) per sample, and three top-left corners of the first
#: tile per direction, inside the anatomy: the issue saw failures "in some
#: rows", so each case visits several rows (side by side) or columns (one
#: above the other) of the image.
CASES = {
    "chest_xray": (
        (300, 280),
        {
            "side": [(80, 420), (760, 300), (1450, 700)],
            "above": [(90, 250), (500, 880), (1100, 1400)],
        },
    ),
    "tibia_xray": (
        (280, 240),
        {
            "side": [(150, 560), (700, 600), (1300, 540)],
            "above": [(100, 620), (600, 760), (1150, 700)],
        },
    ),
    "head_ct": (
        (150, 140),
        {
            "side": [(40, 120), (330, 120), (40, 200)],
            "above": [(0, 100), (0, 280), (200, 60)],
        },
    ),
    "shoulder_mr": (
        (240, 220),
        {
            "side": [(150, 250), (420, 200), (650, 300)],
            "above": [(120, 300), (200, 500), (300, 650)],
        },
    ),
}


@pytest.fixture(scope="module")
def images():
    return {name: data.sample(name).array for name in CASES}


def _pair(image, corner, size, overlap, direction, across):
    """Two tiles of ``image``: the second one to the right (``"side"``) or below
    (``"above"``), sharing ``overlap`` of the tile's width or height, and
    displaced ``across`` px the other way. Returns them and the true shift."""
    (h, w), (r, c) = size, corner
    if direction == "side":
        shift = (across, w - round(overlap * w))
    else:
        shift = (h - round(overlap * h), across)
    a = image[r : r + h, c : c + w]
    b = image[r + shift[0] : r + shift[0] + h, c + shift[1] : c + shift[1] + w]
    assert a.shape == b.shape == size, "the case must lie inside the image"
    # The truth must hold something to match: not a flat strip.
    dy, dx = shift
    strip = a[max(0, dy) : h, max(0, dx) : w]
    assert strip.std() > 0.01 * np.ptp(image), "the case's overlap is flat"
    return a, b, np.array(shift, float)


def _found(tiles, order):
    """Shift of the second tile of the pair in the first's frame."""
    result = stitch(tiles)
    first, second = (0, 1) if order == "ab" else (1, 0)
    return result.offsets[second] - result.offsets[first]


@pytest.mark.parametrize("direction", ["side", "above"])
@pytest.mark.parametrize("name", list(CASES))
def test_narrow_overlaps_are_placed_within_a_pixel(images, name, direction):
    size, corners = CASES[name]
    worst = {}
    for k, overlap in enumerate(OVERLAPS):
        corner = corners[direction][k % 3]
        across = (-4, 3, 0, 5, -2)[k]
        a, b, truth = _pair(images[name], corner, size, overlap, direction, across)
        for order, tiles in (("ab", [a, b]), ("ba", [b, a])):
            error = np.abs(_found(tiles, order) - truth).max()
            worst[overlap] = max(worst.get(overlap, 0.0), float(error))
    print(name, direction, {f"{o:.0%}": round(e, 3) for o, e in worst.items()})
    assert max(worst.values()) <= 1.0


@pytest.mark.parametrize("overlap", [0.05, 0.1, 0.25])
@pytest.mark.parametrize(
    ("name", "crop"),
    [
        ("chest_xray", (slice(300, 860), slice(200, 740))),
        ("head_ct", (slice(None), slice(None))),
        ("shoulder_mr", (slice(150, 650), slice(200, 700))),
    ],
)
def test_shuffled_2x2_grids_are_placed_within_a_pixel(images, name, crop, overlap):
    image = images[name][crop]
    tiles, truth = cut_tiles(image, grid=(2, 2), overlap=overlap, jitter_px=3, seed=11)
    order = np.random.default_rng(5).permutation(len(tiles))
    for perm in (np.arange(len(tiles)), order):
        result = stitch([tiles[k] for k in perm])
        found = result.offsets - result.offsets.min(0)
        want = truth[perm] - truth[perm].min(0)
        error = float(np.abs(found - want).max())
        print(name, f"{overlap:.0%}", perm.tolist(), f"error {error:.3f} px")
        assert error <= 1.0


def _area_pair(image, corner, size, shift, factor=4):
    """Tiles of ``size`` downsampled ``factor`` times by area averaging, the
    second cut ``shift`` px (full resolution) away: their true shift is
    ``shift / factor``, a fraction of a pixel where ``shift`` is not a
    multiple of ``factor``."""
    (h, w), (r, c), (sy, sx) = size, corner, shift
    big = (h * factor, w * factor)

    def down(y, x):
        t = image[y : y + big[0], x : x + big[1]].astype(np.float32)
        return cv2.resize(t, (w, h), interpolation=cv2.INTER_AREA)

    return down(r, c), down(r + sy, c + sx), np.array(shift) / factor


def _cubic_pair(image, corner, size, shift):
    """Tiles of ``size``, the second resampled (bicubic) at a fractional
    ``shift``: ``b(y, x) = image(y + r + dy, x + c + dx)``."""
    (h, w), (r, c) = size, corner
    whole = np.floor(shift).astype(int)
    frac = np.asarray(shift) - whole
    src = image.astype(np.float32)
    moved = cv2.warpAffine(
        src,
        np.float32([[1, 0, frac[1]], [0, 1, frac[0]]]),
        (src.shape[1], src.shape[0]),
        flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
    )
    a = src[r : r + h, c : c + w]
    y, x = r + whole[0], c + whole[1]
    return a, moved[y : y + h, x : x + w], np.asarray(shift, float)


#: Area-downsampled pairs (4 times, so that the two samplings of an edge
#: agree): tile size, corner, and shifts at full resolution that are not
#: multiples of 4.
AREA = {
    "chest_xray": ((200, 180), (100, 100), [(5, 601), (682, -3), (-7, 643)]),
    "shoulder_mr": ((120, 110), (100, 150), [(5, 361), (402, -3), (-7, 383)]),
}
#: Bicubic pairs: tile size, corner of a side-by-side and of an above pair.
CUBIC = {
    "chest_xray": ((240, 220), (700, 500), (700, 500)),
    "shoulder_mr": ((240, 220), (300, 300), (300, 300)),
    "head_ct": ((150, 140), (40, 120), (150, 60)),
}


@pytest.mark.parametrize("name", list(CUBIC))
def test_sub_pixel_shifts_within_a_quarter_pixel(images, name):
    image = images[name]
    errors = []
    size, corner, shifts = AREA.get(name, (None, None, []))
    for shift in shifts:
        a, b, truth = _area_pair(image, corner, size, shift, 4)
        for tiles, sign in (([a, b], 1), ([b, a], -1)):
            result = stitch(tiles)
            found = sign * (result.offsets[1] - result.offsets[0])
            errors.append(float(np.abs(found - truth).max()))
    (h, w), side, above = CUBIC[name]
    for corner, shift in [
        (side, (2.25, 0.8 * w + 0.5)),
        (above, (0.85 * h + 0.75, -1.25)),
        (side, (-3.5, 0.9 * w + 0.25)),
    ]:
        a, b, truth = _cubic_pair(image, corner, (h, w), shift)
        result = stitch([a, b])
        errors.append(
            float(np.abs(result.offsets[1] - result.offsets[0] - truth).max())
        )
    print(name, "sub-pixel errors (px)", np.round(errors, 3).tolist())
    assert max(errors) <= 0.25


def test_a_uniform_overlap_strip_gives_the_message(images):
    """Both tiles hold a uniform band where they overlap: nothing to match."""
    film = images["chest_xray"]
    a, b, truth = _pair(film, (700, 400), (300, 280), 0.1, "side", 0)
    a, b = a.astype(np.float32), b.astype(np.float32)
    width = 280 - int(truth[1])
    level = float(np.median(film))
    a[:, -width:] = level
    b[:, :width] = level
    with pytest.raises(ValueError, match=r"could not be placed.*flat"):
        stitch([a, b])


def test_a_background_overlap_gives_the_message(images):
    """Tibia film: two tiles of the saturated background beside the leg."""
    tibia = images["tibia_xray"]
    a, b = tibia[800:1100, 0:200], tibia[800:1100, 180:380]
    assert np.ptp(a[:, 180:]) == 0
    with pytest.raises(ValueError, match=r"tiles \[1\] could not be placed"):
        stitch([a, b])


@pytest.mark.parametrize("name", ["chest_xray", "tibia_xray", "shoulder_mr"])
def test_tiles_that_do_not_overlap_give_the_message(images, name):
    image = images[name]
    h, w = 300, 260
    rng = np.random.default_rng(2)
    for _ in range(3):
        while True:
            r1, r2 = rng.integers(0, image.shape[0] - h, 2)
            c1, c2 = rng.integers(0, image.shape[1] - w, 2)
            if abs(r1 - r2) >= h or abs(c1 - c2) >= w:
                break
        a, b = image[r1 : r1 + h, c1 : c1 + w], image[r2 : r2 + h, c2 : c2 + w]
        with pytest.raises(ValueError, match="could not be placed"):
            stitch([a, b])


@pytest.mark.parametrize("scale", [1e-30, 1e30, 1e300])
def test_extreme_value_scales_are_placed(images, scale):
    """NCC ignores gain: tiles in tiny or huge units must not underflow or
    overflow the matching (float32 FFTs)."""
    a, b, truth = _pair(images["shoulder_mr"], (420, 200), (240, 220), 0.1, "side", 3)
    tiles = [a.astype(np.float64) * scale, b.astype(np.float64) * scale]
    result = stitch(tiles)
    assert np.abs(result.offsets[1] - result.offsets[0] - truth).max() <= 0.25
    assert np.isfinite(result.image).all()
