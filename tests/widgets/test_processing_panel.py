"""ProcessingPanel without a browser: controls drive the same pure functions."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from medimg_lab.widgets import ProcessingPanel

import medimg_lab as ml
from medimg_lab import processing as P


@pytest.fixture(scope="module")
def ct():
    return ml.data.sample("head_ct")


def test_sliders_change_the_output_exactly_as_the_function(ct):
    panel = ProcessingPanel(ct, operation="gaussian")
    panel._controls["sigma_mm"].value = 2.5  # as a slider move does
    source = panel.preview_input
    expected = P.gaussian(source.array, sigma_mm=2.5, spacing=source.spacing)
    np.testing.assert_array_equal(panel.preview, expected)


@pytest.mark.parametrize(
    ("operation", "params"),
    [
        ("clahe", {"clip_limit": 4.0, "tiles": 4}),
        ("median", {"size": 5}),
        ("equalize_hist", {"nbins": 64}),
        ("unsharp_mask", {"sigma_mm": 3.0, "amount": 2.0}),
        ("window_level", {"center": 40.0, "width": 80.0}),
    ],
)
def test_every_operation_matches_its_function(ct, operation, params):
    panel = ProcessingPanel(ct, operation=operation, params=params)
    source = panel.preview_input
    op = ml.params.get_operation(operation)
    expected = op.run(source.array, params, spacing=source.spacing)
    np.testing.assert_array_equal(panel.preview, expected)


def test_after_view_shows_the_result_with_the_same_window(ct):
    panel = ProcessingPanel(ct, operation="median", params={"size": 5})
    panel._before.window = (40, 80)
    assert panel._after.window == (40, 80)
    shown = cv2.imdecode(np.frombuffer(panel._after.png, np.uint8), -1)
    expected = ml.display.apply_window(panel.preview, 40, 80)
    np.testing.assert_array_equal(shown, expected)


def test_operations_in_other_units_get_their_own_window(ct):
    panel = ProcessingPanel(ct, operation="sobel")
    assert panel._link_window.value is False
    assert panel._after.window != panel._before.window


def test_kernel_editor_feeds_convolve(ct):
    panel = ProcessingPanel(ct, operation="convolve")
    panel.set_params(h="laplacian")
    source = panel.preview_input.array
    np.testing.assert_array_equal(panel.preview, P.convolve(source, "laplacian"))
    assert "sums to 0" in panel._kernel._sum.value
    cells = panel._kernel._cells
    cells[4].value = 2.0  # centre of the 3x3 grid
    h = P.kernel("laplacian")
    h[1, 1] = 2.0
    np.testing.assert_array_equal(panel.preview, P.convolve(source, h))


def test_recipe_chains_steps_and_result_is_full_resolution(ct):
    panel = ProcessingPanel(ct, operation="clahe", params={"clip_limit": 3.0})
    panel.add_step()
    panel.operation = "gaussian"
    panel.set_params(sigma_mm=1.5)
    assert panel.recipe == [
        {"op": "clahe", "params": {"clip_limit": 3.0, "tiles": 8}},
        {"op": "gaussian", "params": {"sigma_mm": 1.5}},
    ]
    expected = P.gaussian(
        P.clahe(ct.array, clip_limit=3.0), sigma_mm=1.5, spacing=ct.spacing
    )
    np.testing.assert_array_equal(panel.result, expected)


def test_large_films_preview_at_display_size():
    film = ml.data.sample("chest_xray")
    panel = ProcessingPanel(film, operation="clahe", view_size=400)
    assert max(panel.preview.shape) == 400
    assert panel.result.shape == film.array.shape


def test_volume_previews_the_chosen_slice():
    brain = ml.data.sample("brain_mri")
    panel = ProcessingPanel(brain, operation="median")
    panel.slice_index = 60
    np.testing.assert_array_equal(panel.preview, P.median(brain.array[60]))


def test_quality_against_a_reference_ranks_a_denoiser(ct):
    noisy = ml.MedImage(
        P.add_gaussian_noise(ct.array, sigma=40, seed=1), ct.spacing, "CT", ct.window
    )
    panel = ProcessingPanel(noisy, operation="gaussian", reference=ct)
    score = {}
    for sigma in (0.1, 0.5, 2.0):
        panel.set_params(sigma_mm=sigma)
        score[sigma] = panel.quality["PSNR (dB)"]
        assert 0 < panel.quality["SSIM"] <= 1
    # About one pixel (0.48 mm) of blur is best; more blurs the anatomy away.
    assert score[0.5] > score[0.1] + 3
    assert score[0.5] > score[2.0] + 3


def test_quality_is_not_scored_across_units(ct):
    panel = ProcessingPanel(ct, operation="window_level", reference=ct)
    assert "PSNR (dB)" not in panel.quality


def test_cnr_between_two_rois(ct):
    air = np.zeros(ct.array.shape, bool)
    air[5:40, 5:40] = True
    brain = np.zeros(ct.array.shape, bool)
    brain[240:270, 240:270] = True
    panel = ProcessingPanel(ct, operation="gaussian", rois=(air, brain))
    assert panel.quality["CNR"] > 10


def test_swipe_and_flicker_modes(ct):
    panel = ProcessingPanel(ct, operation="equalize_hist")
    panel.mode, panel.swipe = "swipe", 0.5
    composite = cv2.imdecode(np.frombuffer(panel._swiped.value, np.uint8), -1)
    before, after = panel._before.displayed, panel._after.displayed
    cols = before.shape[1]
    np.testing.assert_array_equal(composite[:, : cols // 2], before[:, : cols // 2])
    np.testing.assert_array_equal(
        composite[:, cols // 2 + 1 :], after[:, cols // 2 + 1 :]
    )
    assert (composite[:, cols // 2] == 255).all()  # the swipe line
    panel.mode = "flicker"
    panel.show_original = True
    assert panel._before in panel._views.children[0].children


def test_bad_parameters_are_clear(ct):
    panel = ProcessingPanel(ct, operation="gaussian")
    with pytest.raises(ValueError, match=r"sigma_mm must lie in \[0.1, 50\] mm"):
        panel.set_params(sigma_mm=500)
    with pytest.raises(ValueError, match="a segmentation operation, not processing"):
        panel.operation = "threshold_otsu"
    with pytest.raises(ValueError, match="unknown operation"):
        panel.operation = "sharpen_everything"
    with pytest.raises(ValueError, match="reference must have the image's shape"):
        ProcessingPanel(ct, reference=np.zeros((3, 3)))
