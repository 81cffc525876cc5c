"""Window/level, presets, automatic windows, PNG encoding and overlays."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import medimg_lab as ml
from medimg_lab import display
from tests.helpers import whole_window

EXPECTED_PRESETS = {
    "brain": (40, 80),
    "subdural": (75, 215),
    "stroke": (40, 40),
    "lung": (-600, 1500),
    "mediastinum": (50, 350),
    "abdomen": (40, 400),
    "liver": (60, 150),
    "bone": (400, 1800),
}


@pytest.mark.parametrize(("name", "window"), EXPECTED_PRESETS.items())
def test_ct_presets(name, window):
    assert display.preset(name.upper()) == window


def test_unknown_preset_lists_the_choices():
    with pytest.raises(ValueError, match="brain, subdural"):
        display.preset("spleen")


@pytest.mark.parametrize("dtype", [np.int16, np.uint16, np.uint8, np.int32, np.float32])
def test_window_edges_and_center(dtype):
    values = np.array([0, 10, 50, 90, 100], dtype=dtype)
    out = display.apply_window(values, 50, 80)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, [0, 0, 128, 255, 255])


def test_lut_and_float_paths_agree():
    rng = np.random.default_rng(0)
    hu = rng.integers(-1024, 3000, (64, 64)).astype(np.int16)
    by_lut = display.apply_window(hu, 40, 400)
    by_float = display.apply_window(hu.astype(np.float32), 40, 400)
    assert np.abs(by_lut.astype(int) - by_float).max() <= 1


def test_window_does_not_modify_its_input():
    hu = np.arange(-100, 100, dtype=np.int16)
    before = hu.copy()
    display.apply_window(hu, 0, 50)
    np.testing.assert_array_equal(hu, before)


@pytest.mark.parametrize("width", [0, -5, np.nan])
def test_bad_window_width(width):
    with pytest.raises(ValueError, match="width > 0"):
        display.apply_window(np.zeros(3), 0, width)


def test_auto_window_ignores_background_and_outliers():
    rng = np.random.default_rng(1)
    image = np.zeros((100, 100), np.float32)  # 64 % background
    image[20:80, 20:80] = rng.normal(500, 50, (60, 60))
    image[50, 50] = 1e6  # one hot pixel
    center, width = display.auto_window(image)
    assert 450 < center < 550
    assert 200 < width < 500


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.uint16, np.int32])
def test_integer_windows_from_the_histogram_are_np_percentile_exactly(dtype):
    # Extremes of the type (a difference that wraps in it), one value, a
    # background over a tenth or all of the image, tiny and odd sizes.
    rng = np.random.default_rng(int(np.dtype(dtype).num))
    info = np.iinfo(dtype)
    low, high = max(info.min, -(1 << 18)), min(info.max, 1 << 18)
    for trial in range(300):
        size = int(rng.integers(1, 3000))
        lo = int(rng.integers(low, high))
        hi = int(rng.integers(lo, high + 1))
        values = rng.integers(lo, hi, size, endpoint=True).astype(dtype)
        if trial % 3 == 0:
            values[: int(rng.integers(0, size + 1))] = values.min()
        if trial % 7 == 0:
            values[[0, -1]] = info.min, info.max
        center, width = display.auto_window(values)
        want = whole_window(values)
        if want[1] > 0:  # else the constant case's own rule
            assert (center, width) == pytest.approx(want, rel=1e-12, abs=1e-9)


@pytest.mark.parametrize("name", ["chest_xray", "brain_mri"])
def test_windows_of_large_images_come_from_a_subsample_close_to_the_whole(name):
    image = ml.data.sample(name)
    assert image.array.size > display.WINDOW_SAMPLE  # the subsample is used
    center, width = display.auto_window(image.array)
    whole_center, whole_width = whole_window(image.array)
    assert width == pytest.approx(whole_width, rel=0.01)
    assert center == pytest.approx(whole_center, abs=0.01 * whole_width)


def test_mr_and_xray_samples_get_windows_that_use_the_grey_range():
    for name in ("abdomen_mr", "brain_mri", "tibia_xray"):
        image = ml.data.sample(name)
        shown = display.apply_window(image.array, *display.auto_window(image.array))
        assert np.percentile(shown, 99) > 200 and shown.std() > 30


def test_header_window_is_used_where_present():
    ct = ml.data.sample("head_ct")
    assert ct.meta["window_source"] == "header"
    assert ct.window == (40.0, 100.0)


def test_encode_png_round_trips_and_downscales():
    image = ml.data.sample("chest_xray")
    shown = display.to_display(image)
    full = cv2.imdecode(np.frombuffer(display.encode_png(shown), np.uint8), -1)
    np.testing.assert_array_equal(full, shown)
    small = display.encode_png(shown, max_size=(512, 400))
    decoded = cv2.imdecode(np.frombuffer(small, np.uint8), -1)
    rows, cols = shown.shape
    assert decoded.shape[0] <= 400 and decoded.shape[1] <= 512
    assert decoded.shape[0] == 400 or decoded.shape[1] == 512
    assert abs(decoded.shape[1] / decoded.shape[0] - cols / rows) < 0.01


def test_encode_png_keeps_rgb_order():
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 0] = 255
    decoded = cv2.imdecode(np.frombuffer(display.encode_png(rgb), np.uint8), -1)
    assert tuple(decoded[0, 0]) == (0, 0, 255)  # OpenCV decodes to BGR


def test_encode_png_refuses_non_display_arrays():
    with pytest.raises(ValueError, match="apply_window first"):
        display.encode_png(np.zeros((4, 4), np.int16))


def test_overlay_is_the_composition_formula():
    grey = np.full((10, 10), 100, np.uint8)
    labels = np.zeros((10, 10), np.int32)
    labels[2:5, 2:5] = 1
    labels[6:8, 6:8] = 2
    out = display.overlay(grey, labels, alpha=0.25, colors={2: (0, 0, 255)})
    colors = display.label_colors(2)
    np.testing.assert_array_equal(out[0, 0], [100, 100, 100])
    expected1 = np.rint(0.25 * colors[1] + 0.75 * 100).astype(np.uint8)
    np.testing.assert_array_equal(out[3, 3], expected1)
    np.testing.assert_array_equal(out[7, 7], np.rint([75, 75, 0.25 * 255 + 75]))


def test_overlay_validates_shapes():
    with pytest.raises(ValueError, match="shape"):
        display.overlay(np.zeros((4, 4), np.uint8), np.zeros((3, 3), bool))


def test_fit_downscales_values_before_windowing():
    film = ml.data.sample("chest_xray")
    small = display.fit(film.array, 512)
    assert max(small.shape) == 512 and small.dtype == film.array.dtype
    shown = display.to_display(film, max_size=512)
    np.testing.assert_array_equal(shown, display.apply_window(small, *film.window))
    assert display.fit(film.array, 4000) is film.array  # never upscales


def test_histogram_image_draws_bars_in_proportion():
    values = np.concatenate([np.zeros(1000), np.full(10, 90.0)])
    img = display.histogram_image(values, (0, 100), bins=10, size=(100, 50), log=False)
    assert img.shape == (50, 100) and img.dtype == np.uint8
    column_heights = (img == 220).sum(axis=0)
    assert column_heights[5] == 50  # bin 0: the full height
    assert column_heights[95] == 0  # 10 / 1000 of 50 px rounds to 0
    assert column_heights[50] == 0
    with pytest.raises(ValueError, match="high > low"):
        display.histogram_image(values, (1, 1))


def test_auto_window_of_a_binary_mask_spans_zero_to_one():
    mask = np.zeros((20, 20), np.uint8)
    mask[5:10, 5:10] = 1
    center, width = display.auto_window(mask)
    assert (center - width / 2, center + width / 2) == (0.0, 1.0)
