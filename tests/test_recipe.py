"""Recipes: validated steps, JSON with a schema version, replay on one image."""

from __future__ import annotations

import doctest
import json

import numpy as np
import pytest

import medimg_lab as ml
from medimg_lab import processing as P
from medimg_lab import recipe as R
from medimg_lab import segmentation as S
from medimg_lab.params import parameters
from medimg_lab.recipe import Recipe, RecipeError, Step

STANDARD = [
    {"op": "window_level", "params": {"center": 40.0, "width": 80.0}},
    {"op": "gaussian", "params": {"sigma_mm": 1.5}},
    {"op": "threshold_otsu", "params": {}},
    {"op": "keep_largest", "params": {}},
    {"op": "measure", "params": {}},
]


@pytest.fixture(scope="module")
def ct():
    return ml.data.sample("head_ct")


# ------------------------------------------------------------------ JSON


def test_save_and_load_give_an_equal_recipe_in_versioned_json(tmp_path):
    recipe = Recipe(STANDARD, name="brain")
    path = recipe.save(tmp_path / "brain.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["schema_version"] == R.SCHEMA_VERSION == 1
    assert data["name"] == "brain"
    assert data["steps"] == STANDARD
    loaded = Recipe.load(path)
    assert loaded == recipe
    assert loaded.name == "brain" and len(loaded) == 5
    assert [s.op for s in loaded] == [s["op"] for s in STANDARD]


def test_equality_is_by_content():
    assert Recipe(STANDARD) == Recipe([Step(**s) for s in STANDARD])
    changed = [dict(s) for s in STANDARD]
    changed[1] = {"op": "gaussian", "params": {"sigma_mm": 2.0}}
    assert Recipe(STANDARD) != Recipe(changed)
    assert Recipe(STANDARD, name="a") != Recipe(STANDARD, name="b")


def test_steps_are_a_read_only_copy_of_the_input():
    steps = [{"op": "gaussian", "params": {"sigma_mm": 1.0}}]
    recipe = Recipe(steps)
    steps[0]["params"]["sigma_mm"] = 9.0
    assert recipe.steps[0].params["sigma_mm"] == 1.0
    with pytest.raises(TypeError):
        recipe.steps[0].params["sigma_mm"] = 2.0


# ----------------------------------------------------------------- apply


def test_apply_equals_the_functions_called_by_hand(ct):
    result = Recipe(STANDARD).apply(ct)
    grey = P.window_level(ct.array, center=40.0, width=80.0)
    smooth = P.gaussian(grey, sigma_mm=1.5, spacing=ct.spacing)
    mask = S.keep_largest(S.threshold_otsu(smooth))
    np.testing.assert_array_equal(result.image.array, smooth)
    np.testing.assert_array_equal(result.labels, mask)
    assert result.image.spacing == ct.spacing
    assert result.image.unit == "grey level"  # window/level left the HU
    m = result.measurements
    assert m["area_mm2"] == pytest.approx(mask.sum() * np.prod(ct.spacing))
    assert m["n_pixels"] == mask.sum() and m["n_components"] == 1
    assert m["mean_hu"] == pytest.approx(ct.array[mask].mean())  # the input's HU
    assert m["sd_hu"] == pytest.approx(ct.array[mask].std())


def test_apply_leaves_the_image_untouched_and_keeps_units(ct):
    before = ct.array.copy()
    result = Recipe([{"op": "gaussian", "params": {"sigma_mm": 1.0}}]).apply(ct)
    np.testing.assert_array_equal(ct.array, before)
    assert result.labels is None and result.measurements == {}
    assert result.image.unit == "HU" and result.image.window == ct.window


def test_a_volume_is_measured_in_ml():
    array = np.zeros((4, 20, 20), np.float32)
    array[1:3, 5:15, 5:10] = 100.0
    volume = ml.MedImage(array, spacing=(2.0, 0.5, 0.5), meta={"unit": "a.u."})
    recipe = Recipe(
        [
            {"op": "threshold_range", "params": {"low": 50.0, "high": 200.0}},
            {"op": "measure", "params": {}},
        ]
    )
    m = recipe.apply(volume).measurements
    assert m["volume_ml"] == pytest.approx(2 * 10 * 5 * 2.0 * 0.5 * 0.5 / 1000)
    assert m["n_voxels"] == 100 and m["mean_au"] == 100.0


def test_clean_up_keeps_the_label_values_of_a_clustering(ct):
    recipe = Recipe(
        [
            {"op": "kmeans", "params": {"k": 3, "seed": 0}},
            {"op": "remove_small", "params": {"min_size": 20.0}},
            {"op": "measure", "params": {}},
        ]
    )
    result = recipe.apply(ct)
    raw = S.kmeans(ct.array, k=3, seed=0)
    kept = S.remove_small(raw > 0, min_size=20.0, spacing=ct.spacing)
    np.testing.assert_array_equal(result.labels, np.where(kept, raw, 0))
    m = result.measurements
    sizes = sum(m[f"label{k}_area_mm2"] for k in (1, 2, 3))
    assert sizes == pytest.approx(m["area_mm2"])


# ---------------------------------------------------------------- panels


def test_a_processing_panel_recipe_replays_its_result(ct):
    from medimg_lab.widgets.processing import ProcessingPanel

    panel = ProcessingPanel(ct, operation="clahe", params={"clip_limit": 3.0})
    panel.add_step()
    panel.operation = "gaussian"
    panel.set_params(sigma_mm=2.0)
    recipe = Recipe(panel.recipe)
    assert [s.op for s in recipe] == ["clahe", "gaussian"]
    np.testing.assert_array_equal(recipe.apply(ct).image.array, panel.result)


def test_a_segmentation_panel_recipe_replays_its_labels(ct):
    from medimg_lab.widgets.segmentation import SegmentationPanel

    panel = SegmentationPanel(
        ct, method="threshold_range", params={"low": 20.0, "high": 80.0}
    )
    panel.set_cleanup("binary_open", radius_mm=1.0)
    panel.set_cleanup("keep_largest")
    panel.set_cleanup("fill_holes")
    labels = Recipe(panel.recipe).apply(ct).labels
    assert panel.labels.any()
    np.testing.assert_array_equal(labels, panel.labels.astype(bool))


def test_a_region_grow_recipe_carries_its_seeds(ct):
    from medimg_lab.widgets.segmentation import SegmentationPanel

    panel = SegmentationPanel(ct, method="region_grow", params={"tolerance": 30.0})
    panel.add_seed((250, 250))
    recipe = Recipe.from_json(Recipe(panel.recipe).to_json())
    assert recipe.steps[0].params["seeds"] == ((250, 250),)
    labels = recipe.apply(ct).labels
    assert labels.any()
    np.testing.assert_array_equal(labels, panel.labels.astype(bool))


# ---------------------------------------------------------------- errors


def test_an_unknown_step_lists_the_known_ones_and_the_closest():
    with pytest.raises(RecipeError) as info:
        Recipe([{"op": "gausian", "params": {}}])
    message = str(info.value)
    assert "step 1 (gausian)" in message and "Did you mean 'gaussian'" in message
    assert "threshold_otsu" in message and "measure" in message
    assert info.value.step == 1 and info.value.op == "gausian"


def test_a_bad_parameter_names_step_range_and_unit():
    declared = parameters(P.gaussian)["sigma_mm"].param
    too_big = 2 * declared.max
    steps = [{"op": "window_level", "params": {}}, {"op": "gaussian", "params": {}}]
    steps[1]["params"]["sigma_mm"] = too_big
    with pytest.raises(RecipeError) as info:
        Recipe(steps)
    message = str(info.value)
    assert "step 2 (gaussian)" in message
    limits = f"[{declared.min:g}, {declared.max:g}] mm"
    assert f"sigma_mm must lie in {limits}; got {too_big:g}" in message


def test_the_hint_prints_each_range_as_its_declaration_does():
    """An excluded minimum is "(0, inf)" in the hint too, as in the error."""
    specs = parameters(P.bilateral)
    with pytest.raises(RecipeError) as info:
        Recipe([{"op": "bilateral", "params": {"sigma_range": 0}}])
    message = str(info.value)
    assert "bilateral: sigma_range must lie in (0, inf) image units; got 0" in message
    hint = message.split("Allowed parameters: ", 1)[1]
    assert "sigma_range a number in (0, inf) image units" in hint
    assert f"sigma_mm a number in {specs['sigma_mm'].param.interval()} mm" in hint
    assert "[0, inf]" not in hint
    with pytest.raises(RecipeError) as info:
        Recipe([{"op": "median", "params": {"size": 4}}])
    assert "size a whole number in [3, 15] px, odd" in str(info.value)


def test_an_unknown_parameter_is_an_error():
    with pytest.raises(RecipeError, match="gaussian has no parameter sigma"):
        Recipe([{"op": "gaussian", "params": {"sigma": 1.0}}])


def test_a_newer_schema_version_names_both_versions():
    data = {**Recipe(STANDARD).to_dict(), "schema_version": 2}
    with pytest.raises(RecipeError, match=r"schema version 2.*reads schema version 1"):
        Recipe.from_dict(data)


def test_a_missing_schema_version_is_an_error():
    data = Recipe(STANDARD).to_dict()
    del data["schema_version"]
    with pytest.raises(RecipeError, match="has no schema_version"):
        Recipe.from_json(json.dumps(data))


@pytest.mark.parametrize("op", ["keep_largest", "measure"])
def test_clean_up_or_measure_before_segmentation_is_an_error(op):
    with pytest.raises(RecipeError, match=r"step 2 .*no segmentation step"):
        Recipe([{"op": "gaussian", "params": {}}, {"op": op, "params": {}}])


@pytest.mark.parametrize(
    ("steps", "match"),
    [
        ([{"op": "threshold_otsu"}, {"op": "gaussian"}], "after the segmentation"),
        ([{"op": "threshold_otsu"}, {"op": "kmeans"}], "second segmentation"),
        ([{"op": "threshold_otsu"}, {"op": "measure"}, {"op": "fill_holes"}], "last"),
        ([], "has no steps"),
    ],
)
def test_steps_in_an_order_that_cannot_work_are_errors(steps, match):
    with pytest.raises(RecipeError, match=match):
        Recipe(steps)


@pytest.mark.parametrize(
    ("op", "match"),
    [
        ("region_grow", "without its seed points"),
        ("watershed", "without its marker labels"),
        ("pixel_classifier", "needs model, which the parameters do not hold"),
    ],
)
def test_interactive_steps_without_their_input_cannot_be_replayed(op, match):
    with pytest.raises(RecipeError, match=match):
        Recipe([{"op": op, "params": {}}])


def test_apply_takes_a_grey_medimage(ct):
    recipe = Recipe([{"op": "gaussian", "params": {}}])
    with pytest.raises(TypeError, match="must be a MedImage"):
        recipe.apply(ct.array)
    rgb = ml.MedImage(np.zeros((8, 8, 3), np.uint8), spacing=(1.0, 1.0))
    with pytest.raises(RecipeError, match="RGB"):
        recipe.apply(rgb)


def test_a_step_failing_on_an_image_names_the_step(ct):
    recipe = Recipe([{"op": "region_grow", "params": {"seeds": [[900, 900]]}}])
    with pytest.raises(RecipeError, match=r"step 1 \(region_grow\).*outside"):
        recipe.apply(ct)


def test_save_refuses_to_overwrite_unless_asked(tmp_path):
    path = tmp_path / "r.json"
    path.write_text("keep me", encoding="utf-8")
    recipe = Recipe(STANDARD)
    with pytest.raises(ml.OutputExistsError, match="overwrite=True"):
        recipe.save(path)
    assert path.read_text(encoding="utf-8") == "keep me"
    recipe.save(path, overwrite=True)
    assert Recipe.load(path) == recipe


def test_a_corrupt_or_missing_file_gives_a_clear_error(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"schema_version": 1, "steps": [', encoding="utf-8")
    with pytest.raises(RecipeError, match=r"bad.json: is not valid JSON.*line 1"):
        Recipe.load(path)
    with pytest.raises(ml.NotFoundError, match="does not exist"):
        Recipe.load(tmp_path / "none.json")


def test_a_bad_step_in_a_file_names_the_file_and_step(tmp_path):
    path = tmp_path / "r.json"
    data = Recipe(STANDARD).to_dict()
    data["steps"][2]["op"] = "otsu"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(RecipeError, match=r"r.json: recipe, step 3 \(otsu\)"):
        Recipe.load(path)


def test_docstring_examples_run():
    result = doctest.testmod(R, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
