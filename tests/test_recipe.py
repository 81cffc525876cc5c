"""Recipes: validated steps, JSON with a schema version, replay on one image."""

from __future__ import annotations

import json

import numpy as np
import pytest

import medimg_lab as ml
from medimg_lab import composition as C
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


# ----------------------------------------- files: models, masks, references


def _trained(image: np.ndarray) -> S.PixelClassifier:
    scribbles = np.zeros(image.shape, np.uint8)
    scribbles[60:70, 60:70], scribbles[2:8, 2:120] = 1, 2
    return S.PixelClassifier("forest", n_estimators=5, scales_mm=(1.0,)).fit(
        image, scribbles
    )


@pytest.fixture(scope="module")
def spine():
    return ml.data.sample("spine_ct")


@pytest.fixture
def model_step(spine, tmp_path):
    from medimg_lab._files import sha256_of

    path = _trained(spine.array).save(tmp_path / "model.skops")
    return {
        "op": "pixel_classifier",
        "params": {"model": {"path": "model.skops", "sha256": sha256_of(path)}},
    }


def test_a_classifier_step_replays_a_saved_model_beside_the_recipe(
    spine, model_step, tmp_path
):
    (tmp_path / "r.json").write_text(
        json.dumps({"schema_version": 1, "name": "tissue", "steps": [model_step]})
    )
    recipe = Recipe.load(tmp_path / "r.json")  # relative to the recipe's folder
    labels = recipe.apply(spine).labels
    expected = S.PixelClassifier.load(tmp_path / "model.skops").predict(
        spine.array, spacing=spine.spacing
    )
    np.testing.assert_array_equal(labels, expected)
    again = Recipe.from_dict(recipe.to_dict())  # as a worker gets it: absolute
    np.testing.assert_array_equal(again.apply(spine).labels, expected)


def test_a_missing_model_is_refused_with_its_path(model_step, tmp_path):
    (tmp_path / "model.skops").unlink()
    with pytest.raises(RecipeError, match=r"step 1 \(pixel_classifier\).*model.skops"):
        Recipe([model_step], base=tmp_path)
    try:
        Recipe([model_step], base=tmp_path)
    except RecipeError as exc:
        assert "does not exist" in str(exc) and "beside the recipe" in str(exc)


def test_a_model_with_another_digest_is_refused(model_step, tmp_path):
    wrong = dict(model_step["params"]["model"], sha256="0" * 64)
    step = {"op": "pixel_classifier", "params": {"model": wrong}}
    with pytest.raises(RecipeError, match=r"has SHA-256 [0-9a-f]{64}, not the 0{64}"):
        Recipe([step], base=tmp_path)


def test_a_model_changed_after_the_recipe_was_built_is_refused(
    spine, model_step, tmp_path
):
    recipe = Recipe([model_step], base=tmp_path)
    (tmp_path / "model.skops").write_bytes(b"PK" + bytes(100))  # replaced
    with pytest.raises(RecipeError, match="not the model the recipe was made with"):
        recipe.apply(spine)


def test_a_model_without_its_digest_is_refused(tmp_path):
    step = {"op": "pixel_classifier", "params": {"model": {"path": "m.skops"}}}
    with pytest.raises(RecipeError, match="must give the SHA-256 of the model file"):
        Recipe([step], base=tmp_path)
    with pytest.raises(RecipeError, match="sha256 must be 64 hexadecimal digits"):
        Recipe(
            [
                {
                    "op": "pixel_classifier",
                    "params": {"model": {"path": "m", "sha256": "x"}},
                }
            ]
        )


def test_save_copies_the_files_a_recipe_names_beside_it(spine, tmp_path):
    from medimg_lab._files import keep_array

    mask = spine.array > 300
    recipe = Recipe(
        [
            {"op": "gaussian", "params": {"sigma_mm": 1.0}},
            {"op": "blend", "params": {"mask": keep_array(mask), "width_mm": 2.0}},
        ]
    )
    saved = recipe.save(tmp_path / "out" / "bone.json")
    assert (tmp_path / "out" / "bone-step2-mask.npy").is_file()
    step = json.loads(saved.read_text())["steps"][1]["params"]["mask"]
    assert step["path"] == "bone-step2-mask.npy" and len(step["sha256"]) == 64
    moved = tmp_path / "elsewhere"
    (tmp_path / "out").rename(moved)  # the folder travels whole
    again = Recipe.load(moved / "bone.json").apply(spine).image.array
    np.testing.assert_array_equal(again, recipe.apply(spine).image.array)


def test_composition_steps_are_replayable_and_check_their_order(spine):
    blend = {"op": "blend", "params": {"opacity": 0.5}}
    with pytest.raises(RecipeError, match="no segmentation step comes before it"):
        Recipe([blend])
    recipe = Recipe([{"op": "threshold_range", "params": {"low": 300.0}}, blend])
    out = recipe.apply(spine)
    expected = C.blend(
        spine.array, spine.array, C.feather(out.labels, width_mm=0.0) * np.float32(0.5)
    )
    np.testing.assert_array_equal(out.image.array, expected)


def test_context_cannot_be_set_by_a_step():
    step = {"op": "blend", "params": {"labels": [[1]]}}
    with pytest.raises(RecipeError, match="sets labels, which comes from the recipe"):
        Recipe([step])


def test_watershed_markers_are_data_and_checked(spine):
    markers = np.zeros(spine.shape, np.int32)
    markers[60:64, 60:64], markers[2:5, 2:5] = 1, 2
    points = S.region.marker_points(markers)
    step = {"op": "watershed", "params": {"markers": points}}
    labels = Recipe([step]).apply(spine).labels
    expected = S.watershed(spine.array, markers, spacing=spine.spacing)
    np.testing.assert_array_equal(labels, expected)
    for bad in ([[1, 2]], [[1, 2, 0]], [[1, 2, 1], [1, 2, 3, 1]], "all"):
        with pytest.raises(RecipeError, match="marked pixels"):
            Recipe([{"op": "watershed", "params": {"markers": bad}}])
    outside = {"op": "watershed", "params": {"markers": [[500, 2, 1]]}}
    with pytest.raises(RecipeError, match="indices inside the image of shape"):
        Recipe([outside]).apply(spine)


def test_register_replays_onto_a_reference_file(spine, tmp_path):
    from medimg_lab._files import sha256_of

    moved = C.rigid_transform(spine, shift_mm=(2.0, -1.5), rotation_deg=3.0)
    np.save(tmp_path / "fixed.npy", spine.array)
    reference = {"path": "fixed.npy", "sha256": sha256_of(tmp_path / "fixed.npy")}
    step = {"op": "register", "params": {"reference": reference, "method": "phase"}}
    recipe = Recipe([step], base=tmp_path)
    out = recipe.apply(ml.MedImage(moved, spine.spacing, "CT")).image.array
    found = C.register(spine.array, moved, method="phase", spacing=spine.spacing)
    # register() itself varies between runs by ~3e-6 px (OpenCV's threaded
    # reductions): the replay equals a direct call within 1e-4 of the range.
    span = float(np.ptp(spine.array))
    direct = found.apply(moved, interpolation="cubic")
    np.testing.assert_allclose(out, direct, rtol=0, atol=1e-4 * span)
    inner = np.s_[10:-10, 10:-10]  # the known motion undone, away from the border
    error = np.abs(out[inner] - spine.array[inner])
    assert np.median(error) < 0.02 * np.ptp(spine.array)


def test_panel_files_go_to_a_private_folder_only(tmp_path, monkeypatch):
    from medimg_lab._files import keep_array

    private = tmp_path / "assets"
    monkeypatch.setenv("MEDIMG_ASSETS", str(private))
    ref = keep_array(np.arange(6, dtype=np.int16).reshape(2, 3))
    assert ref["path"].startswith(str(private)) and np.load(ref["path"]).sum() == 15
    assert keep_array(np.arange(6, dtype=np.int16).reshape(2, 3)) == ref  # once
    open_to_all = tmp_path / "shared"
    open_to_all.mkdir()
    open_to_all.chmod(0o777)
    link = tmp_path / "link"
    link.symlink_to(private)
    for folder in (open_to_all, link):
        monkeypatch.setenv("MEDIMG_ASSETS", str(folder))
        with pytest.raises(ml.MedImgError, match="is not a private folder"):
            keep_array(np.zeros(3))


def test_hostile_files_are_refused_with_sentences(spine, tmp_path):
    from medimg_lab._files import sha256_of

    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object))
    (tmp_path / "folder.npy").mkdir()
    (tmp_path / "text.png").write_text("not an image")
    cases = {
        "objects.npy": "is not a plain NumPy array file",
        "text.png": "text.png",
    }
    seg = {"op": "threshold_range", "params": {"low": 300.0}}
    for name, match in cases.items():
        ref = {"path": name, "sha256": sha256_of(tmp_path / name)}
        recipe = Recipe([seg, {"op": "blend", "params": {"mask": ref}}], base=tmp_path)
        with pytest.raises(RecipeError, match=match) as caught:
            recipe.apply(spine)
        assert "Traceback" not in str(caught.value)
    folder = {"op": "blend", "params": {"mask": {"path": "folder.npy"}}}
    with pytest.raises(RecipeError, match="is a folder; the step needs a mask file"):
        Recipe([seg, folder], base=tmp_path)


def test_a_zip_holds_the_recipe_and_its_files(spine, model_step, tmp_path):
    import io
    import zipfile

    recipe = Recipe([model_step], base=tmp_path)
    assert recipe.files == [(tmp_path / "model.skops").resolve()]
    with zipfile.ZipFile(io.BytesIO(recipe.to_zip())) as archive:
        assert sorted(archive.namelist()) == ["recipe-step1-model.skops", "recipe.json"]
        archive.extractall(tmp_path / "unpacked")
    again = Recipe.load(tmp_path / "unpacked" / "recipe.json")
    np.testing.assert_array_equal(again.apply(spine).labels, recipe.apply(spine).labels)
    assert Recipe(STANDARD).files == []


def test_a_recipe_reads_no_signature_once_warm(monkeypatch):
    # Issue 20: each step read its operation's signature on every call (ten
    # inspect.signature calls a study, about 0.15 ms of a batch study).
    import inspect

    steps = {
        "window_level": {"center": 40.0, "width": 80.0},
        "clahe": {"clip_limit": 2.0},
        "gaussian": {"sigma_mm": 1.0},
        "threshold_otsu": {},
        "keep_largest": {},
        "measure": {},
    }
    recipe = Recipe([{"op": op, "params": params} for op, params in steps.items()])
    image = ml.load(ml.data.path("head_ct"))
    first = recipe.apply(image)
    calls = []
    real = inspect.signature
    monkeypatch.setattr(
        inspect, "signature", lambda *a, **k: calls.append(a) or real(*a, **k)
    )
    again = recipe.apply(image)
    assert calls == []
    np.testing.assert_array_equal(again.labels, first.labels)
    assert again.measurements == first.measurements
