"""SegmentationPanel without a browser: scripted seeds and scribbles."""

from __future__ import annotations

import numpy as np
import pytest
from medimg_lab.widgets.segmentation import CLASSIFIER as CLASSIFIER_NAME
from medimg_lab.widgets.segmentation import SegmentationPanel

import medimg_lab as ml
from medimg_lab import segmentation as S
from medimg_lab.image import MedImage


@pytest.fixture(scope="module")
def ct():
    return ml.data.sample("head_ct")


def test_threshold_sliders_give_the_pure_function(ct):
    panel = SegmentationPanel(ct, method="threshold_range")
    panel._controls["low"].value = 300.0  # as a slider move
    panel._controls["high"].value = 2000.0
    expected = S.threshold_range(ct.array, low=300.0, high=2000.0)
    np.testing.assert_array_equal(panel.labels.astype(bool), expected)
    shown = panel._viewer.overlay
    np.testing.assert_array_equal(shown > 0, expected)


def test_seeds_by_click_grow_a_region_like_the_function(ct):
    panel = SegmentationPanel(ct, method="region_grow", params={"tolerance": 30.0})
    panel.tool = "seed"
    panel._viewer.click(250, 250)  # a click in the viewer places a seed
    assert panel.seeds == [(250, 250)]
    expected = S.region_grow(ct.array, [(250, 250)], tolerance=30.0)
    np.testing.assert_array_equal(panel.labels.astype(bool), expected)
    panel._viewer.click(251, 251)  # near a seed: removes it
    assert panel.seeds == []
    assert "place a seed" in panel._message.value


def test_scribbles_paint_discs_in_mm_with_undo_and_eraser(ct):
    panel = SegmentationPanel(ct, method="threshold_otsu")
    panel.brush_mm = 2.0  # 2 mm at 0.4785 mm/px: a radius of about 4 px
    panel.scribble([(100, 100)], label=1)
    painted = panel.scribbles
    assert painted[100, 100] == 1 and painted[100, 104] == 1 and painted[100, 106] == 0
    panel.scribble([(100, 100)], label=2)
    panel.undo()
    np.testing.assert_array_equal(panel.scribbles, painted)
    panel.tool = "eraser"
    panel._viewer.set_trait("stroke", ((100, 100),))  # as a brush stroke would
    assert panel.scribbles[100, 100] == 0


def test_watershed_from_scribbled_markers_matches_the_function(ct):
    panel = SegmentationPanel(ct, method="watershed")
    panel.scribble([(20, 20)], label=1, radius_mm=1.0)
    panel.scribble([(250, 250)], label=2, radius_mm=1.0)
    expected = S.watershed(ct.array, panel.scribbles, spacing=ct.spacing)
    np.testing.assert_array_equal(panel.labels, expected)


def test_cleanup_runs_in_order_and_is_in_the_recipe(ct):
    panel = SegmentationPanel(ct, method="threshold_preset", params={"preset": "brain"})
    panel.set_cleanup("keep_largest")
    panel.set_cleanup("fill_holes")
    mask = S.threshold_preset(ct.array, preset="brain")
    expected = S.keep_largest(S.fill_holes(mask))
    np.testing.assert_array_equal(panel.labels.astype(bool), expected)
    assert [s["op"] for s in panel.recipe] == [
        "threshold_preset",
        "fill_holes",
        "keep_largest",
    ]


def test_measurement_table_in_mm2_and_hu(ct):
    panel = SegmentationPanel(ct, method="threshold_preset", params={"preset": "bone"})
    row = panel.table.iloc[0]
    bone = ct.array >= 300
    assert row["area_mm2"] == pytest.approx(bone.sum() * np.prod(ct.spacing))
    assert row["mean_HU"] == pytest.approx(ct.array[bone].mean())
    assert "area (mm²)" in panel._table.value


def test_volume_measures_in_ml():
    brain = ml.data.sample("brain_mri")
    panel = SegmentationPanel(
        brain, method="threshold_range", params={"low": 150.0, "high": 255.0}
    )
    assert panel.table["volume_ml"].iloc[0] == pytest.approx(
        ((brain.array >= 150) & (brain.array <= 255)).sum() / 1000
    )


def test_export_writes_a_mask_that_loads_back(ct, tmp_path):
    panel = SegmentationPanel(ct, method="threshold_preset", params={"preset": "bone"})
    path = panel.export(tmp_path / "bone.nii.gz")
    back = ml.load(path)
    np.testing.assert_array_equal(back.array, panel.labels)
    assert back.spacing == pytest.approx(ct.spacing)
    with pytest.raises(ml.OutputExistsError):
        panel.export(tmp_path / "bone.nii.gz")


def test_bad_input_is_clear(ct):
    panel = SegmentationPanel(ct)
    with pytest.raises(ValueError, match="low must be a number"):
        panel.set_params(low="bright")
    with pytest.raises(ValueError, match="outside the image"):
        panel.add_seed((900, 5))
    with pytest.raises(ValueError, match="not a segmentation method"):
        panel.method = "gaussian"
    with pytest.raises(ValueError, match="unknown clean-up"):
        panel.set_cleanup("erode_everything")


def test_scripted_scribbles_train_the_same_classifier_as_the_function(ct):
    panel = SegmentationPanel(
        ct, method="pixel_classifier", classes=("air", "brain", "bone")
    )
    panel.scribble([(20, 20), (20, 60)], label=1)
    panel.scribble([(250, 250), (270, 260)], label=2)
    panel.scribble([(120, 200)], label=3)
    model = S.PixelClassifier(model="forest").fit(
        ct.array, panel.scribbles, spacing=ct.spacing
    )
    np.testing.assert_array_equal(panel.labels, model.predict())
    assert panel.probabilities.shape == (3, *ct.array.shape)
    assert panel.uncertainty.min() >= 0 and panel.uncertainty.max() <= 1
    # Live retraining: one more stroke changes the classifier's training set.
    panel.scribble([(300, 300)], label=2)
    assert panel.scribbles[300, 300] == 2


def test_seeds_in_a_volume_toggle_by_click():
    volume = ml.MedImage(np.zeros((8, 32, 32), np.float32), spacing=(2.0, 1.0, 1.0))
    panel = SegmentationPanel(volume, method="region_grow", params={"tolerance": 1.0})
    panel.add_seed((4, 16, 16))
    panel.add_seed((4, 20, 20))
    panel.remove_seed((4, 16, 17))
    assert panel.seeds == [(4, 20, 20)]
    assert panel.recipe[0]["params"]["seeds"] == [[4, 20, 20]]


def test_cleanup_steps_record_every_parameter(ct):
    panel = SegmentationPanel(ct, method="threshold_preset", params={"preset": "bone"})
    panel.set_cleanup("remove_small", min_size=20.0)
    assert panel.recipe[-1] == {
        "op": "remove_small",
        "params": {"min_size": 20.0, "connectivity": 1},
    }


# ------------------------------------------- the brush starts on a foreground


def _red(message: str) -> bool:
    """A problem in the panel's message area (``StagePanel._say``'s red)."""
    return "#b00" in message


@pytest.mark.parametrize(
    ("classes", "first"),
    [
        (("background", "foreground"), 2),
        (("Background ", "liver", "lesion"), 2),
        (("liver", "background", "lesion"), 1),  # no background first
        (("tumour", "oedema"), 1),  # none is the background
    ],
)
def test_the_brush_starts_on_the_first_foreground_class(ct, classes, first):
    panel = SegmentationPanel(ct, method=CLASSIFIER_NAME, classes=classes)
    assert panel.label == first
    assert panel.parts["class"].value == first
    assert panel.parts["class"].label == f"{first}: {classes[first - 1]}"
    panel.scribble([(100, 100)])  # the first stroke paints that class
    assert panel.scribbles[100, 100] == first


@pytest.mark.parametrize("method", [CLASSIFIER_NAME, "watershed", "region_grow"])
def test_a_method_waiting_for_strokes_or_seeds_says_so_without_red(ct, method):
    panel = SegmentationPanel(ct, method=method)
    message = panel.parts["message"].value
    assert message and not _red(message), message
    if method != "region_grow":
        assert "painted so far: none" in message
        assert "the brush paints 2: foreground" in message
        panel.scribble([(20, 20)], label=1, radius_mm=1.0)
        message = panel.parts["message"].value
        assert "painted so far: 1: background" in message and not _red(message)


def test_a_real_problem_is_still_red(ct):
    panel = SegmentationPanel(ct, method="threshold_range")
    panel._controls["low"].value = 500.0
    panel._controls["high"].value = 100.0  # an empty range: refused in red
    assert _red(panel.parts["message"].value), panel.parts["message"].value


def test_the_dashboards_brush_starts_on_a_foreground_class_without_red(ct):
    from medimg_lab.widgets.dashboards.segmentation import SegmentationDashboard

    small = ml.data.sample("spine_ct")
    for image in (ct, small, ml.data.sample("brain_mri")):
        dash = SegmentationDashboard(image)
        dash.mode = "brush classifier"
        panel = dash.panel
        assert panel.label == 2 and panel.parts["class"].value == 2
        assert not _red(panel.parts["message"].value), panel.parts["message"].value
        assert not _red(dash.message), dash.message


def test_the_table_says_what_a_non_hu_unit_is(ct):
    brain = ml.data.sample("brain_mri")
    k = brain.array.shape[0] // 2
    t1 = MedImage(brain.array[k], brain.spacing[1:], "MR")
    panel = SegmentationPanel(t1, method="threshold_range")
    panel._controls["low"].value = 80.0
    assert "mean (a.u.)" in panel._table.value
    assert "values in a.u. (MR signal intensity" in panel._table.value
    panel = SegmentationPanel(ct, method="threshold_range")
    assert "values in" not in panel._table.value  # HU says it all
