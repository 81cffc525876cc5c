"""Every panel's state is a recipe that replays (issue 18, item 1).

For each panel and each of its modes, the test sets the panel, takes its
``.recipe``, saves it with :meth:`Recipe.save` (which copies the files it
names beside it: a trained model, a mask, a second image), runs it with
:func:`medimg_lab.batch.run` on the file the panel's image was read from,
and reads the written mask or image back: it is the panel's own result, bit
for bit, except where a tolerance is stated: floating-point images within
4 float32 ulps (a batch runs OpenCV on one thread, whose SIMD path rounds
the last bit differently from the threaded one), and the automatic
registration, which resamples by the registration's matrix where the panel
resamples by the motion it shows on its sliders.

The images are real samples, read back from NIfTI so that the panel and the
batch see the same array and spacing: a square isotropic CT slice (spine,
128 × 128, 0.661 mm), a non-square anisotropic one (head CT, every second
column: 384 × 256, 0.479 × 0.958 mm), an MR slice (abdomen, a.u.) and a
volume with anisotropic voxels (brain MRI, every second slice: 2 × 1 × 1 mm).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from medimg_lab.widgets.composition import (
    BlendExplorer,
    CompositionPanel,
    FusionExplorer,
    RegistrationExplorer,
    StitchExplorer,
)
from medimg_lab.widgets.processing import ProcessingPanel
from medimg_lab.widgets.segmentation import SegmentationPanel

import medimg_lab as ml
from medimg_lab import batch
from medimg_lab import composition as C
from medimg_lab.image import MedImage
from medimg_lab.io import load, save
from medimg_lab.params import operations
from medimg_lab.recipe import CLEANUP, Recipe


def _exact(spacing) -> tuple[float, ...]:
    """Spacing that NIfTI's float32 header holds exactly."""
    return tuple(float(np.float32(s)) for s in spacing)


def _written(image: MedImage, folder: Path, name: str) -> tuple[MedImage, Path]:
    """``image`` saved as NIfTI and read back: what a batch run reads."""
    path = save(image, folder / f"{name}.nii.gz")
    return load(path), path


@pytest.fixture(scope="module")
def studies(tmp_path_factory) -> dict[str, tuple[MedImage, Path]]:
    folder = tmp_path_factory.mktemp("studies")
    spine = ml.data.sample("spine_ct")
    head = ml.data.sample("head_ct")
    abdomen = ml.data.sample("abdomen_mr")
    brain = ml.data.sample("brain_mri")
    dy, dx = head.spacing
    made = {
        "spine": MedImage(spine.array, _exact(spine.spacing), "CT"),
        "head": MedImage(  # every second column: 384 x 256, anisotropic
            np.ascontiguousarray(head.array[64:448, ::2]),
            _exact((dy, 2 * dx)),
            "CT",
        ),
        "abdomen": MedImage(
            np.ascontiguousarray(abdomen.array[100:356, 80:400]),
            _exact(abdomen.spacing),
            "MR",
        ),
        "brain": MedImage(  # every second slice: 2 x 1 x 1 mm voxels
            np.ascontiguousarray(brain.array[60:100:2, 60:160, 50:150]),
            (2.0, 1.0, 1.0),
            "MR",
        ),
    }
    return {name: _written(image, folder, name) for name, image in made.items()}


def _replay(steps, study: Path, tmp_path: Path) -> tuple[np.ndarray | None, np.ndarray]:
    """Run the panel's steps with batch.run on ``study``: (mask, image) written."""
    recipe = Recipe(steps, name="panel")
    saved = recipe.save(tmp_path / "recipe.json")
    for step in Recipe.load(saved).to_dict()["steps"]:  # files beside the recipe
        for value in step["params"].values():
            for ref in value if isinstance(value, list) else [value]:
                if isinstance(ref, dict) and "sha256" in ref:
                    assert Path(ref["path"]).parent == saved.parent.resolve()
    result = batch.run(
        saved,
        [str(study)],
        tmp_path / "out",
        client="serial",
        save_images=True,
        progress=False,
    )
    (row,) = result.table.itertuples()
    assert row.status == "ok", row.reason
    mask = load(row.mask).array if row.mask else None
    (image,) = (tmp_path / "out" / "images").iterdir()
    return mask, load(image).array


def _same(written: np.ndarray, expected: np.ndarray) -> None:
    """Bit for bit for integers, labels and display images; a bool result is
    written as 0/1 (NIfTI has no bool). Floating-point results within
    4 float32 ulps (relative 5e-7 of the largest value): a batch runs OpenCV
    on one thread, the panel on all cores, and OpenCV's threaded and
    single-threaded SIMD paths round the last bit differently."""
    expected = np.asarray(expected)
    if expected.dtype == bool:
        expected = expected.astype(np.uint8)
    assert written.dtype == expected.dtype
    assert written.shape == expected.shape
    if expected.dtype.kind == "f":
        scale = float(np.nanmax(np.abs(expected))) or 1.0
        np.testing.assert_allclose(written, expected, rtol=0, atol=5e-7 * scale)
    else:
        np.testing.assert_array_equal(written, expected)


# ------------------------------------------------------------- processing

PROCESSING = [op.name for op in operations(stage="processing")]
#: Options of the processing panel that are not the defaults, per operation.
_SET = {
    "window_level": {"center": 60.0, "width": 300.0},
    "gaussian": {"sigma_mm": 2.5},
    "median": {"size": 5},
    "gamma": {"gamma": 0.7},
    "add_gaussian_noise": {"sigma": 20.0, "seed": 7},
}


@pytest.mark.parametrize("name", PROCESSING)
def test_processing_panel_replays_each_operation(name, studies, tmp_path):
    image, path = studies["spine"]
    panel = ProcessingPanel(image, operation=name, params=_SET.get(name))
    _, written = _replay(panel.recipe, path, tmp_path)
    _same(written, panel.result)


@pytest.mark.parametrize("study", ["head", "brain"])
def test_processing_chain_replays_on_anisotropic_and_3d_images(
    study, studies, tmp_path
):
    image, path = studies[study]
    panel = ProcessingPanel(image, operation="gaussian", params={"sigma_mm": 1.5})
    panel.add_step()
    panel.operation = "median"
    panel.set_params(size=3)
    panel.add_step()
    panel.operation = "clahe"
    assert [s["op"] for s in panel.recipe] == ["gaussian", "median", "clahe"]
    _, written = _replay(panel.recipe, path, tmp_path)
    _same(written, panel.result)


# ----------------------------------------------------------- segmentation


def _painted(panel: SegmentationPanel, shape) -> None:
    """Two classes of strokes: one inside the brightest region, one outside."""
    if len(shape) == 3:
        z = shape[0] // 2
        panel.scribble([(z, 50, 50), (z, 52, 55)], label=1, radius_mm=2.0)
        panel.scribble([(z, 5, 5), (z, 5, 90)], label=2, radius_mm=2.0)
    else:
        rows, cols = shape
        panel.scribble([(rows // 2, cols // 2)], label=1, radius_mm=3.0)
        panel.scribble([(4, 4), (4, cols - 5)], label=2, radius_mm=3.0)


METHODS = {
    "threshold_range": {"low": 150.0, "high": 1100.0},
    "threshold_preset": {"preset": "bone"},
    "threshold_otsu": {},
    "threshold_multiotsu": {"classes": 3},
    "kmeans": {"k": 3, "seed": 1},
    "gmm": {"k": 2, "seed": 2},
    "chan_vese": {"iterations": 30},
    "region_grow": {"tolerance": 80.0},
    "watershed": {},
    "pixel_classifier": None,
}


def test_every_segmentation_method_has_a_replay_case():
    listed = {op.name for op in operations(stage="segmentation", role="method")}
    assert listed == set(METHODS)


def _segment(study, method, studies, **cleanup):
    image, path = studies[study]
    panel = SegmentationPanel(image, method=method, params=METHODS[method])
    shape = image.array.shape
    if method == "region_grow":
        centre = tuple(n // 2 for n in shape)
        panel.add_seed(centre)
    if method in ("watershed", "pixel_classifier"):
        _painted(panel, shape)
    for name, params in cleanup.items():
        panel.set_cleanup(name, True, **params)
    assert panel.labels.any(), panel._message.value
    return panel, path


@pytest.mark.parametrize("method", list(METHODS))
def test_segmentation_panel_replays_each_method(method, studies, tmp_path):
    panel, path = _segment("spine", method, studies)
    mask, _ = _replay(panel.recipe, path, tmp_path)
    _same(mask, panel.labels)


@pytest.mark.parametrize(
    "method", ["threshold_otsu", "region_grow", "watershed", "pixel_classifier"]
)
def test_segmentation_replays_on_a_volume_and_an_anisotropic_slice(
    method, studies, tmp_path
):
    for study in ("brain", "head"):
        panel, path = _segment(study, method, studies)
        mask, _ = _replay(panel.recipe, path, tmp_path / study)
        _same(mask, panel.labels)


def test_every_cleanup_replays_in_the_panels_order(studies, tmp_path):
    options = {
        "fill_holes": {},
        "keep_largest": {},
        "remove_small": {"min_size": 5.0},
        "binary_open": {"radius_mm": 1.0},
        "binary_close": {"radius_mm": 1.5},
    }
    assert set(options) == set(CLEANUP)
    for study in ("head", "brain"):
        panel, path = _segment(study, "threshold_otsu", studies, **options)
        assert [s["op"] for s in panel.recipe][1:] == list(CLEANUP)
        mask, _ = _replay(panel.recipe, path, tmp_path / study)
        _same(mask, panel.labels)


def test_a_classifier_recipe_names_its_model_by_digest(studies, tmp_path):
    panel, _ = _segment("spine", "pixel_classifier", studies)
    (step,) = panel.recipe
    model = step["params"]["model"]
    assert set(model) == {"path", "sha256"} and model["path"].endswith(".skops")
    saved = Recipe(panel.recipe).save(tmp_path / "r.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "r-step1-model.skops",
        "r.json",
    ]
    assert '"path": "r-step1-model.skops"' in saved.read_text()


def test_an_untrained_classifier_has_no_recipe_yet(studies):
    image, _ = studies["spine"]
    panel = SegmentationPanel(image, method="pixel_classifier")
    with pytest.raises(ValueError, match="no trained model yet: paint scribbles"):
        panel.recipe  # noqa: B018


# ------------------------------------------------------------ composition


@pytest.mark.parametrize("study", ["spine", "head", "abdomen"])
@pytest.mark.parametrize("source", ["threshold", "circle", "painted", "segmentation"])
def test_blend_explorer_replays_each_mask_source(source, study, studies, tmp_path):
    image, path = studies[study]
    rows, cols = image.array.shape
    given = np.zeros((rows, cols), bool)
    given[rows // 4 : rows // 2, cols // 3 : 2 * cols // 3] = True
    panel = BlendExplorer(image, mask=given)
    lo, hi = np.percentile(image.array, [60, 100])
    panel.set_params(low=float(lo), high=float(hi), width_mm=3.0, opacity=0.8)
    if source == "circle":
        panel.place_circle((rows // 3, cols // 2))
    elif source == "painted":
        panel.paint([(rows // 2, cols // 4), (rows // 2, cols // 2)])
    else:
        panel.source = source
    assert panel.source == source
    _, written = _replay(panel.recipe, path, tmp_path)
    _same(written, panel.composite)


def test_blend_explorer_replays_with_a_second_image(studies, tmp_path):
    image, path = studies["head"]
    other = MedImage(
        C.rigid_transform(image, shift_mm=(2.0, -3.0), rotation_deg=4.0),
        image.spacing,
        "CT",
    )
    panel = BlendExplorer(image, other=other, inside="auto", outside="default")
    panel.place_circle((150, 120))
    recipe = panel.recipe
    assert "other" in recipe[-1]["params"]
    _, written = _replay(recipe, path, tmp_path)
    _same(written, panel.composite)


def _moved(image: MedImage) -> MedImage:
    """A known motion of ``image`` (3 mm down, 2 mm left, 5°), as a second study."""
    moved = C.rigid_transform(image, shift_mm=(3.0, -2.0), rotation_deg=5.0)
    return MedImage(moved.astype(np.float32), image.spacing, image.modality)


@pytest.mark.parametrize("study", ["spine", "head"])
@pytest.mark.parametrize(
    "mode", ["weighted", "colour", "checkerboard", "difference", "swipe"]
)
def test_fusion_explorer_replays_each_view(mode, study, studies, tmp_path):
    image, path = studies[study]
    panel = FusionExplorer(image, _moved(image), mode=mode)
    values = {
        "weighted": {"weight": 0.3},
        "colour": {"cmap": "viridis", "opacity": 0.5},
        "checkerboard": {"squares": 6},
        "difference": {},
        "swipe": {"position": 0.35},
    }[mode]
    panel.set_params(**values)
    _, written = _replay(panel.recipe, path, tmp_path)
    _same(written, panel.composite)


@pytest.mark.parametrize("study", ["spine", "head"])
def test_registration_by_hand_replays_as_its_transform(study, studies, tmp_path):
    fixed, _ = studies[study]
    moving, path = _written(_moved(fixed), tmp_path, "moving")
    panel = RegistrationExplorer(fixed, moving)
    panel.set_params(shift_y_mm=2.9, shift_x_mm=-2.1, rotation_deg=4.8)
    (step,) = panel.recipe
    assert step["op"] == "rigid_transform"
    _, written = _replay(panel.recipe, path, tmp_path)
    _same(written, panel.aligned)


@pytest.mark.parametrize("study", ["spine", "head"])
def test_automatic_registration_replays_onto_its_reference(study, studies, tmp_path):
    fixed, _ = studies[study]
    moving, path = _written(_moved(fixed), tmp_path, "moving")
    panel = RegistrationExplorer(fixed, moving)
    panel.set_params(method="phase")
    panel.register()
    (step,) = panel.recipe
    assert step["op"] == "register" and step["params"]["method"] == "phase"
    _, written = _replay(panel.recipe, path, tmp_path)
    # The recipe resamples by the registration's matrix, the panel by the
    # motion on its sliders: the same motion to float precision. Stated
    # tolerance: 0.5 % of the fixed image's value range per pixel at most.
    expected = panel.aligned
    span = float(np.ptp(fixed.array))
    assert written.dtype == expected.dtype and written.shape == expected.shape
    assert np.nanmax(np.abs(written - expected)) <= 0.005 * span


def test_registration_nudged_after_register_replays_the_sliders(studies, tmp_path):
    fixed, _ = studies["spine"]
    moving, path = _written(_moved(fixed), tmp_path, "moving")
    panel = RegistrationExplorer(fixed, moving)
    panel.set_params(method="phase")
    panel.register()
    panel.nudge("rotation_deg", 0.5)
    (step,) = panel.recipe
    assert step["op"] == "rigid_transform"
    _, written = _replay(panel.recipe, path, tmp_path)
    _same(written, panel.aligned)


@pytest.mark.parametrize("study", ["spine", "head"])
def test_stitch_explorer_replays_on_its_first_tile(study, studies, tmp_path):
    image, _ = studies[study]
    tiles, _ = C.cut_tiles(image.array, grid=(2, 2), overlap=0.4, jitter_px=3, seed=2)
    panel = StitchExplorer(tiles, spacing=image.spacing)
    panel.set_params(blend="multiband")
    first, path = _written(MedImage(tiles[0], image.spacing, "CT"), tmp_path, "tile0")
    np.testing.assert_array_equal(first.array, tiles[0])
    _, written = _replay(panel.recipe, path, tmp_path)
    _same(written, panel.result.image)


def test_composition_panel_replays_the_tab_shown(studies, tmp_path):
    image, path = studies["spine"]
    panel = CompositionPanel(image)
    panel._tabs.selected_index = 1  # fusion, over the default moving image
    _, written = _replay(panel.recipe, path, tmp_path)
    _same(written, panel.fusion.composite)


def test_the_dashboard_exports_a_trained_classifier_with_its_model(studies, tmp_path):
    import base64
    import io
    import re
    import zipfile

    from medimg_lab.widgets.dashboards.segmentation import SegmentationDashboard

    image, path = studies["spine"]
    dash = SegmentationDashboard(image)
    dash.mode = "brush classifier"
    _painted(dash._panel, image.array.shape)
    expected = dash.labels
    assert expected.any()
    text = dash.export_recipe()
    assert '"path": "recipe-step1-model.skops"' in text  # relative, not the server's
    link = dash._links["recipe"].value
    assert 'download="recipe.zip"' in link
    payload = base64.b64decode(re.search(r"base64,([^\"']+)", link).group(1))
    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
        assert sorted(archive.namelist()) == ["recipe-step1-model.skops", "recipe.json"]
        archive.extractall(tmp_path / "unpacked")
    result = batch.run(
        tmp_path / "unpacked" / "recipe.json",
        [str(path)],
        tmp_path / "out",
        client="serial",
        progress=False,
    )
    (row,) = result.table.itertuples()
    assert row.status == "ok", row.reason
    _same(load(row.mask).array, expected)
