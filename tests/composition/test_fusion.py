"""I = I1·M + I2·(1−M), and every composite built on it."""

from __future__ import annotations

import numpy as np
import pytest

import medimg_lab as ml
from medimg_lab.composition import (
    blend,
    checkerboard,
    color_fuse,
    difference,
    feather,
    fuse,
    legend,
    multiband_blend,
    swipe,
)
from medimg_lab.display import apply_window, auto_window


def test_blend_by_hand():
    i1 = np.array([[10.0, 10.0], [10.0, 10.0]])
    i2 = np.array([[0.0, 2.0], [4.0, 6.0]])
    m = np.array([[1.0, 0.0], [0.5, 0.25]])
    expected = i1 * m + i2 * (1 - m)
    np.testing.assert_allclose(blend(i1, i2, m), expected)


def test_binary_mask_selects():
    i1, i2 = np.full((3, 3), 7, np.uint8), np.zeros((3, 3), np.uint8)
    mask = np.eye(3, dtype=bool)
    out = blend(i1, i2, mask)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, np.eye(3) * 7)


def test_float32_stays_float32_and_rgb_takes_a_grey_mask():
    i1 = np.ones((2, 2, 3), np.float32)
    out = blend(i1, np.zeros_like(i1), np.full((2, 2), 0.5, np.float32))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, 0.5)


@pytest.mark.parametrize("mask", [np.full((2, 2), 1.5), np.full((2, 2), -0.1)])
def test_mask_out_of_range(mask):
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        blend(np.zeros((2, 2)), np.zeros((2, 2)), mask)


def test_shape_mismatch():
    with pytest.raises(ValueError, match="same shape"):
        blend(np.zeros((2, 2)), np.zeros((3, 3)), 0.5)


def test_blend_is_i1_where_m_is_1_i2_where_0_and_convex_between():
    rng = np.random.default_rng(0)
    i1, i2 = rng.normal(0, 100, (2, 40, 50)).astype(np.float32)
    m = rng.uniform(0, 1, (40, 50)).astype(np.float32)
    m[:5] = 1
    m[-5:] = 0
    out = blend(i1, i2, m)
    np.testing.assert_array_equal(out[:5], i1[:5])
    np.testing.assert_array_equal(out[-5:], i2[-5:])
    low, high = np.minimum(i1, i2), np.maximum(i1, i2)
    assert np.all((out >= low - 1e-3) & (out <= high + 1e-3))
    np.testing.assert_allclose(out, i1 * m + i2 * (1 - m), rtol=1e-6)


def test_blend_of_volumes_and_rgb():
    vol = np.ones((3, 4, 5), np.int16) * 100
    out = blend(vol, np.zeros_like(vol), np.full((3, 4, 5), 0.5))
    assert out.dtype == np.int16 and np.all(out == 50)
    rgb = np.full((4, 5, 3), 200, np.uint8)
    out = blend(rgb, np.zeros_like(rgb), np.eye(4, 5, dtype=bool))
    np.testing.assert_array_equal(out[..., 1], np.eye(4, 5) * 200)


@pytest.mark.parametrize("spacing", [None, (0.5, 2.0)])
def test_feather_ramps_across_the_edge_over_its_width_in_mm(spacing):
    mask = np.zeros((40, 40), bool)
    mask[:, 20:] = True
    soft = feather(mask, width_mm=8.0, spacing=spacing)
    col_mm = 1.0 if spacing is None else spacing[1]
    row = soft[10]
    assert soft.dtype == np.float32 and row.min() == 0 and row.max() == 1
    # The ramp is centred on the edge (between columns 19 and 20) ...
    assert row[19] + row[20] == pytest.approx(1)
    # ... and takes 8 mm from 0 to 1.
    ramp_px = np.count_nonzero((row > 0) & (row < 1))
    assert ramp_px * col_mm == pytest.approx(8.0, abs=2 * col_mm)
    # The mask keeps its area.
    assert soft.sum() == pytest.approx(mask.sum(), rel=0.01)


def test_feather_of_zero_width_is_the_mask_and_errors():
    mask = np.eye(5, dtype=bool)
    np.testing.assert_array_equal(feather(mask, width_mm=0), mask.astype(np.float32))
    with pytest.raises(ValueError, match="binary"):
        feather(np.full((2, 2), 0.5))
    with pytest.raises(ValueError) as info:
        feather(mask, width_mm=-1)
    assert str(info.value) == "feather: width_mm must lie in [0, 100] mm; got -1"


def test_feather_in_3d():
    mask = np.zeros((10, 20, 20), bool)
    mask[:, :, 10:] = True
    soft = feather(mask, width_mm=4.0, spacing=(3.0, 1.0, 1.0))
    np.testing.assert_allclose(soft[0], soft[9])
    assert soft[5, 5, 9] == pytest.approx(0.375) and soft[5, 5, 10] == pytest.approx(
        0.625
    )


def test_fuse_is_the_weighted_sum_and_refuses_weights_outside_0_1():
    i1, i2 = np.array([0.0, 100.0]), np.array([50.0, 50.0])
    np.testing.assert_allclose(fuse(i1, i2, 0.3), 0.3 * i1 + 0.7 * i2)
    for bad, problem in [
        (-0.1, "must lie in [0, 1]; got -0.1"),
        (1.5, "must lie in [0, 1]; got 1.5"),
        (float("nan"), "must be finite; got nan"),
        ("half", "must be a number; got 'half'"),
    ]:
        with pytest.raises(ValueError) as info:
            fuse(i1, i2, bad)
        assert str(info.value) == f"fuse: weight {problem}"
    with pytest.raises(ValueError, match=r"same shape.*Register or resample"):
        fuse(i1, np.zeros(3), 0.5)


def test_multiband_blend_keeps_each_side_and_hides_the_seam():
    ct = ml.data.sample("head_ct").array.astype(np.float32)
    dark = ct - 200.0  # the same anatomy, 200 HU darker
    mask = np.zeros(ct.shape, np.float32)
    mask[:, 256:] = 1
    out = multiband_blend(ct, dark, mask, levels=5)
    assert out.dtype == np.float32 and out.shape == ct.shape
    np.testing.assert_allclose(out[:, 320:], ct[:, 320:], atol=1.0)
    np.testing.assert_allclose(out[:, :190], dark[:, :190], atol=1.0)
    # Across the seam the 200 HU step is spread over many columns, not a cliff.
    offset = (out - ct).mean(axis=0)  # -200 left of the seam, 0 right of it
    jumps = np.abs(np.diff(offset))
    hard = np.abs(np.diff((blend(ct, dark, mask) - ct).mean(axis=0)))
    assert hard.max() == pytest.approx(200, abs=1)
    assert jumps.max() < 40
    print(f"largest column-to-column jump: {jumps.max():.1f} HU (hard seam 200 HU)")


def test_multiband_of_one_level_is_blend_and_errors():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(2, 32, 32)).astype(np.float32)
    m = rng.uniform(size=(32, 32)).astype(np.float32)
    np.testing.assert_allclose(
        multiband_blend(a, b, m, levels=1), blend(a, b, m), atol=1e-6
    )
    with pytest.raises(ValueError, match="mask must be"):
        multiband_blend(a, b, m[:10])
    with pytest.raises(ValueError) as info:
        multiband_blend(a, b, m, levels=0)
    assert str(info.value) == "multiband_blend: levels must lie in [1, 10]; got 0"


def test_checkerboard_and_swipe_take_each_image_in_turn():
    a, b = np.ones((64, 64)), np.zeros((64, 64))
    board = checkerboard(a, b, squares=4)
    assert board[0, 0] == 1 and board[0, 16] == 0 and board[16, 16] == 1
    assert board.mean() == 0.5
    cut = swipe(a, b, position=0.25, axis=1)
    assert cut[:, :16].min() == 1 and cut[:, 16:].max() == 0
    cut = swipe(a, b, position=0.75, axis=0)
    assert cut[:48].min() == 1 and cut[48:].max() == 0
    with pytest.raises(ValueError, match="2D"):
        checkerboard(np.ones((4, 4, 4)), np.ones((4, 4, 4)))
    with pytest.raises(ValueError, match=r"^swipe: axis must lie in \[0, 1\]; got 2$"):
        swipe(a, b, axis=2)
    with pytest.raises(ValueError, match=r"^checkerboard: squares must lie in"):
        checkerboard(a, b, squares=1)


def test_difference_cancels_identical_images():
    ct = ml.data.sample("head_ct").array
    assert np.abs(difference(ct, ct)).max() == 0
    assert difference(np.array([1.0]), np.array([3.0]), absolute=True)[0] == 2


def test_color_fuse_keeps_the_grey_base_where_the_layer_is_clear():
    t1 = ml.data.sample("brain_mri").array[94]
    gm = ml.data.sample("brain_mri_gm").array[94]
    rgb = color_fuse(t1, gm, layer_range=(0.0, 1.0), cmap="hot", opacity=0.5)
    assert rgb.shape == (*t1.shape, 3) and rgb.dtype == np.uint8
    clear = gm <= 0
    grey = apply_window(t1, *auto_window(t1))
    for channel in range(3):
        np.testing.assert_array_equal(rgb[..., channel][clear], grey[clear])
    shown = gm >= 0.9
    assert np.any(rgb[shown][:, 0] != rgb[shown][:, 2])  # coloured
    bar = legend("hot", size=(100, 5))
    assert bar.shape == (5, 100, 3)
    assert bar[0, 0].sum() < bar[0, -1].sum()  # dark to bright
    with pytest.raises(ValueError, match=r"^color_fuse: cmap must be one of 'hot', "):
        color_fuse(t1, gm, cmap="rainbow")
    with pytest.raises(ValueError, match=r"^color_fuse: opacity must lie in \[0, 1\]"):
        color_fuse(t1, gm, opacity=1.2)
    with pytest.raises(ValueError, match=r"^legend: cmap must be one of 'hot', "):
        legend("rainbow")


def test_numpy_and_whole_float_options_are_taken_as_their_numbers():
    """Options from a slider or an array (NumPy scalars, 4.0) give what ints do."""
    ct = ml.data.sample("head_ct").array[100:400, 60:460].astype(np.float32)
    other = ct[::-1].copy()  # non-square, 300 x 400
    board = checkerboard(ct, other, squares=4)
    for squares in (np.int64(4), np.int32(4), 4.0):
        np.testing.assert_array_equal(checkerboard(ct, other, squares=squares), board)
    soft = np.clip(np.linspace(-1, 2, 400, dtype=np.float32), 0, 1)
    mask = np.broadcast_to(soft, ct.shape)
    bands = multiband_blend(ct, other, mask, levels=3)
    np.testing.assert_array_equal(
        multiband_blend(ct, other, mask, levels=np.int64(3)), bands
    )
    cut = swipe(ct, other, position=0.25, axis=0)
    np.testing.assert_array_equal(
        swipe(ct, other, position=np.float32(0.25), axis=np.int64(0)), cut
    )
    np.testing.assert_array_equal(cut[:75], ct[:75])
    np.testing.assert_array_equal(cut[75:], other[75:])
    np.testing.assert_array_equal(fuse(ct, other, np.float64(1)), ct)


def test_blend_of_nothing_is_nothing():
    """An overlay whose mask selects no pixel blends empty selections."""
    empty = np.zeros((0, 3), np.uint8)
    assert blend(empty, empty, 0.5).shape == (0, 3)
    with pytest.raises(ValueError, match="numbers"):
        blend(np.array(["a"]), np.array(["b"]), 0.5)
