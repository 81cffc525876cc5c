"""CompositionPanel without a browser: controls give the pure functions' results."""

from __future__ import annotations

import numpy as np
import pytest
from medimg_lab.widgets.composition import (
    BlendExplorer,
    CompositionPanel,
    FusionExplorer,
    RegistrationExplorer,
    StitchExplorer,
)

import medimg_lab as ml
from medimg_lab import composition as C
from medimg_lab import display
from medimg_lab.composition.fusion import difference_window
from medimg_lab.image import MedImage
from medimg_lab.params import parameters
from medimg_lab.segmentation import threshold_range


@pytest.fixture(scope="module")
def ct():
    return ml.data.sample("head_ct")


@pytest.fixture(scope="module")
def brain():
    return ml.data.sample("brain_mri"), ml.data.sample("brain_mri_gm")


def test_bone_through_a_threshold_mask_with_two_windows(ct):
    panel = BlendExplorer(ct, inside="bone", outside="brain")
    panel.set_params(low=300.0, width_mm=0.0, opacity=1.0)
    bone = threshold_range(ct.array, low=300.0, high=3000.0)  # up to the maximum
    i1 = display.apply_window(ct.array, *display.preset("bone"))
    i2 = display.apply_window(ct.array, *display.preset("brain"))
    expected = C.blend(i1, i2, bone)
    np.testing.assert_array_equal(panel.composite, expected)
    np.testing.assert_array_equal(panel._viewer.image.array, expected)


def test_opacity_and_feather_make_the_mask(ct):
    panel = BlendExplorer(ct)
    panel._controls["opacity"].value = 0.5  # as a slider move
    panel._controls["width_mm"].value = 4.0
    bone = threshold_range(ct.array, low=300.0, high=3000.0)
    expected = 0.5 * C.feather(bone, width_mm=4.0, spacing=ct.spacing)
    np.testing.assert_allclose(panel.mask, expected)
    step = panel.recipe[1]
    assert step["op"] == "blend"
    assert (step["params"]["width_mm"], step["params"]["opacity"]) == (4.0, 0.5)


def test_a_click_centres_a_circle_of_radius_in_mm(ct):
    panel = BlendExplorer(ct)
    panel.set_params(radius_mm=10.0, width_mm=0.0)
    panel._viewer.click(100, 100)  # reads the pixel: the mask is a threshold
    assert panel.source == "threshold"
    panel.source = "circle"
    panel._viewer.click(200, 300)  # now it centres the circle
    mask = panel.binary_mask
    assert mask[200, 300] and not mask[200, 300 + 25]  # 10 mm is ~21 px here
    area_mm2 = mask.sum() * np.prod(ct.spacing)
    assert area_mm2 == pytest.approx(np.pi * 100, rel=0.05)
    saved = np.load(panel.recipe[0]["params"]["mask"]["path"])  # the circle, a file
    np.testing.assert_array_equal(saved, mask)


def test_segmentation_source_and_errors(ct):
    seg = np.zeros(ct.array.shape, bool)
    seg[100:200, 100:200] = True
    panel = BlendExplorer(ct, mask=seg)
    panel.source = "segmentation"
    panel.set_params(width_mm=0.0)
    np.testing.assert_array_equal(panel.mask, seg.astype(np.float32))
    with pytest.raises(ValueError, match="inside must be one of"):
        panel.set_params(inside="lungs")
    with pytest.raises(ValueError, match="unknown parameters"):
        panel.set_params(gamma=2)
    with pytest.raises(ValueError, match="shape"):
        BlendExplorer(ct, other=ml.data.sample("spine_ct"))
    no_seg = BlendExplorer(ct)
    assert "segmentation" not in no_seg._source.options


def test_a_volume_gives_its_middle_slice(brain):
    t1, _ = brain
    panel = BlendExplorer(t1)
    assert panel.composite.shape == t1.array.shape[1:]


@pytest.mark.parametrize("mode", ["weighted", "checkerboard", "swipe"])
def test_fusion_views_are_the_pure_functions(brain, mode):
    t1, gm = brain
    panel = FusionExplorer(t1, gm, mode=mode)
    base = t1.array[t1.array.shape[0] // 2]
    layer = gm.array[gm.array.shape[0] // 2]
    i1 = display.apply_window(base, *display.auto_window(base))
    i2 = display.apply_window(layer, *display.auto_window(layer))
    panel.set_params(weight=0.3, squares=6, position=0.4)
    expected = {
        "weighted": C.fuse(i1, i2, 0.3),
        "checkerboard": C.checkerboard(i1, i2, squares=6),
        "swipe": C.swipe(i1, i2, position=0.4),
    }[mode]
    np.testing.assert_array_equal(panel.composite, expected)
    assert panel.recipe[0]["op"] == "fuse"
    assert panel.recipe[0]["params"]["mode"] == mode


def test_colour_fusion_has_a_legend_with_its_range_and_unit(brain):
    t1, gm = brain
    panel = FusionExplorer(t1, gm, mode="colour")
    panel.set_params(layer_low=0.2, layer_high=0.9, cmap="viridis", opacity=0.7)
    base = t1.array[t1.array.shape[0] // 2]
    layer = gm.array[gm.array.shape[0] // 2]
    expected = C.color_fuse(
        base, layer, layer_range=(0.2, 0.9), cmap="viridis", opacity=0.7
    )
    np.testing.assert_array_equal(panel.composite, expected)
    assert "0.2 to 0.9 probability" in panel._legend_text.value
    assert panel._legend.layout.display == ""
    panel.mode = "difference"
    assert panel._legend.layout.display == "none"
    assert panel._controls["weight"].layout.display == "none"


def test_panel_recipe_follows_the_tab(ct):
    panel = CompositionPanel(ct)
    assert panel.recipe[-1]["op"] == "blend"
    panel._tabs.selected_index = 1
    assert panel.recipe[0]["op"] == "fuse"
    assert panel.recipe[0]["params"]["mode"] == "weighted"


def test_nudge_sliders_undo_the_motion_and_ncc_rises(ct):
    moving = MedImage(
        C.rigid_transform(ct, shift_mm=(4.0, -6.0), rotation_deg=8.0), ct.spacing, "CT"
    )
    panel = RegistrationExplorer(ct, moving)
    before = panel.ncc
    panel._controls["shift_y_mm"].value = 4.0  # as slider moves
    panel._controls["shift_x_mm"].value = -6.0
    panel._controls["rotation_deg"].value = 8.0
    expected = C.rigid_transform(  # a view: resampled cubic, not linear
        moving,
        shift_mm=(4.0, -6.0),
        rotation_deg=8.0,
        inverse=True,
        interpolation="cubic",
    )
    np.testing.assert_allclose(panel.aligned, expected)
    assert panel.ncc > 0.99 > before
    assert f"NCC <b>{panel.ncc:.3f}</b>" in panel._quality.value


def test_the_method_starts_on_registers_one_declared_default(ct):
    """The panel offers register's methods and starts on its declared
    default, the one a direct call uses (it had its own, "ecc", while
    register defaulted to "phase")."""
    declared = parameters(C.register)["method"]
    panel = RegistrationExplorer(ct, ct)
    assert panel.params["method"] == declared.default
    assert tuple(panel._controls["method"].options) == declared.param.choices
    moving = MedImage(
        C.rigid_transform(ct, shift_mm=(2.0, 3.0), rotation_deg=-5.0), ct.spacing, "CT"
    )
    panel.set_images(ct, moving, keep_motion=False)
    found = panel.register()
    direct = C.register(ct, moving)  # the default method, as the panel's
    assert found.method == direct.method == declared.default
    assert found.shift_mm == pytest.approx(direct.shift_mm)


def test_register_button_sets_the_sliders_to_the_found_motion(ct):
    moving = MedImage(
        C.rigid_transform(ct, shift_mm=(2.0, 3.0), rotation_deg=-5.0), ct.spacing, "CT"
    )
    panel = RegistrationExplorer(ct, moving)
    panel.set_params(method="phase")
    panel._button.click()  # as a click on "Register"
    found = panel.result
    assert found.shift_mm == pytest.approx((2.0, 3.0), abs=0.1)
    assert panel.params["rotation_deg"] == pytest.approx(found.rotation_deg)
    step = panel.recipe[0]
    assert step["op"] == "register"
    assert (step["params"]["method"], step["params"]["transform"]) == (
        "phase",
        "rigid",
    )
    assert f"rotation {found.rotation_deg:.2f}°" in panel._found.value


def test_stitch_explorer_rebuilds_the_cut_image(ct):
    tiles, truth = C.cut_tiles(ct.array, grid=(2, 2), overlap=0.35, jitter_px=4, seed=1)
    panel = StitchExplorer(tiles, spacing=ct.spacing)
    expected = C.stitch(tiles, spacing=ct.spacing)
    np.testing.assert_array_equal(panel.result.image, expected.image)
    offsets = panel.result.offsets - panel.result.offsets.min(axis=0)
    assert np.abs(offsets - (truth - truth.min(axis=0))).max() <= 1
    assert "row (mm)" in panel._table.value
    overlay = panel._viewer.overlay
    assert overlay is not None and 0 < np.count_nonzero(overlay) < overlay.size / 4
    panel.show_seams = False
    assert panel._viewer.overlay is None
    panel.set_params(blend="multiband")
    (step,) = panel.recipe
    assert step["op"] == "stitch" and len(step["params"]["tiles"]) == len(tiles) - 1
    assert (step["params"]["blend"], step["params"]["min_ncc"]) == ("multiband", 0.8)


def test_stitch_explorer_reports_tiles_that_do_not_overlap(ct):
    far = [ct.array[150:250, 150:250], ct.array[300:400, 300:400]]
    panel = StitchExplorer(far)
    assert panel.result is None
    assert "could not be placed" in panel._message.value
    with pytest.raises(ValueError, match="at least 2 tiles"):
        panel.set_tiles(far[:1])


def test_panel_has_four_tabs_and_a_known_motion_to_recover(ct):
    panel = CompositionPanel(ct)
    assert [panel._tabs.get_title(k) for k in range(4)] == [
        "Blend",
        "Fusion",
        "Registration",
        "Stitching",
    ]
    found = panel.registration.register()
    assert found.shift_mm == pytest.approx((4.0, -6.0), abs=0.2)
    assert found.rotation_deg == pytest.approx(8.0, abs=0.2)
    assert panel.stitching.result.confidence.min() > 0.9


def test_unknown_mask_source_or_view_is_refused_by_name(ct):
    import traitlets

    with pytest.raises(traitlets.TraitError, match="circle"):
        BlendExplorer(ct).source = "lasso"
    with pytest.raises(traitlets.TraitError, match="checkerboard"):
        FusionExplorer(ct, ct).mode = "anaglyph"


def test_values_outside_a_slider_are_refused_not_clamped(ct, brain):
    panel = BlendExplorer(ct)
    with pytest.raises(
        ValueError, match=r"high .*must lie in \[-1024, 1468\]; got 3000"
    ):
        panel.set_params(high=3000.0)
    assert panel.params["high"] == 1468.0  # unchanged
    t1, gm = brain
    fusion = FusionExplorer(t1, gm, mode="colour")
    fusion.set_params(layer_low=0.0, layer_high=1.0)  # the map's range, rounded
    assert fusion.params["layer_high"] == 1.0


def test_fusion_shows_only_the_controls_of_its_first_view(ct):
    fusion = CompositionPanel(ct).fusion
    shown = {k for k, c in fusion._controls.items() if c.layout.display != "none"}
    assert shown == {"weight"} and fusion._legend.layout.display == "none"
    # The default layer is the moved image: the views differ.
    fusion.mode = "checkerboard"
    board = fusion.composite
    fusion.mode = "weighted"
    assert not np.array_equal(board, fusion.composite)


def test_uploaded_tiles_without_spacing_give_offsets_in_pixels(ct):
    tiles, _ = C.cut_tiles(ct.array, grid=(1, 2), overlap=0.4, seed=0)
    png = [MedImage(t, (1.0, 1.0), "OT", meta={"spacing_known": False}) for t in tiles]
    panel = StitchExplorer(png)
    assert "px (spacing unknown)" in panel._table.value


def test_a_brush_stroke_paints_the_roi_in_mm(ct):
    panel = BlendExplorer(ct)
    panel.set_params(radius_mm=5.0, width_mm=0.0)
    panel.source = "painted"
    assert panel._viewer.tool == "brush"
    panel._viewer.set_trait("stroke", ((100, 100), (100, 140)))  # as a drag would
    mask = panel.binary_mask
    assert mask[100, 100] and mask[100, 140] and not mask[100, 120]
    disc_mm2 = mask.sum() * np.prod(ct.spacing) / 2
    assert disc_mm2 == pytest.approx(np.pi * 25, rel=0.1)
    panel.paint([(100, 100)], erase=True)
    assert not panel.binary_mask[100, 100] and panel.binary_mask[100, 140]
    panel.clear_painting()
    assert not panel.binary_mask.any()
    saved = np.load(panel.recipe[0]["params"]["mask"]["path"])  # the painting
    assert saved.shape == ct.array.shape and not saved.any()


# ------------------------------------------ difference views and figures


DEMO = ((4.0, 3.0), 5.0)  # medimg_lab.widgets.dashboards.compare.DEMO_MOTION


def _demo_pair(image: MedImage) -> MedImage:
    """``image`` moved by the compare dashboard's demo motion, as it makes B."""
    (dy, dx), turn = DEMO
    moved = C.rigid_transform(image, shift_mm=(dy, dx), rotation_deg=turn)
    return MedImage(moved, image.spacing, image.modality, image.window)


def _saturated(shown: np.ndarray, where: np.ndarray) -> float:
    return float(np.mean((shown[where] == 0) | (shown[where] == 255)))


def _plane_of(image: MedImage) -> MedImage:
    if not image.is_volume:
        return image
    k = image.array.shape[0] // 2
    return MedImage(image.array[k], image.spacing[1:], image.modality, image.window)


@pytest.mark.parametrize("name", ["head_ct", "spine_ct", "brain_mri"])
def test_registration_difference_is_faint_when_perfect_and_rims_1_mm_off(name):
    image = _plane_of(ml.data.sample(name))
    panel = RegistrationExplorer(image, _demo_pair(image))
    panel.set_windows(image.window, image.window)  # as the compare dashboard does
    (dy, dx), turn = DEMO
    panel.set_params(shift_y_mm=dy, shift_x_mm=dx, rotation_deg=turn)  # perfect
    assert panel.params["view"] == "difference" and panel.ncc > 0.995
    overlap = panel._overlap()
    shown = panel._viewer.image.array
    assert _saturated(shown, overlap) < 0.0005, name
    grey = np.abs(shown[overlap].astype(float) - 127.5)
    assert np.percentile(grey, 99) < 0.3 * 127.5  # faint, near mid-grey
    panel.set_params(shift_y_mm=dy + 1.0)  # 1 mm off
    overlap = panel._overlap()
    assert _saturated(panel._viewer.image.array, overlap) > 0.004, name


def test_registration_caption_gives_the_window_and_its_unit(ct, brain):
    panel = RegistrationExplorer(ct, _demo_pair(ct))
    width = difference_window(ct.array, panel._moving.array, spacing=ct.spacing)[1]
    assert panel.difference_window == (0.0, width)
    quality = panel.parts["quality"].value
    assert f"window ±{width / 2:.0f} HU (mid-grey = equal" in quality
    assert "difference A − B" in quality
    panel.set_windows((40.0, 80.0), (40.0, 80.0))  # a display window: not the diff's
    assert panel.difference_window == (0.0, width)
    panel.set_params(view="checkerboard")
    assert "difference A − B" not in panel.parts["quality"].value
    t1 = _plane_of(brain[0])
    panel.set_images(t1, _demo_pair(t1), keep_motion=False)
    panel.set_params(view="difference")
    quality = panel.parts["quality"].value
    assert " a.u. (mid-grey = equal" in quality
    assert "values in a.u. (MR signal intensity" in quality


def test_registration_figures_say_what_is_good(ct):
    moving = _demo_pair(ct)
    panel = RegistrationExplorer(ct, moving)
    quality = panel.parts["quality"].value
    assert f"NCC <b>{panel.ncc:.3f}</b> (1 is a perfect match, 0 none)" in quality
    fixed = ct.array
    overlap = panel._overlap()
    aligned = C.rigid_transform(moving, inverse=True)  # linear, as register scores
    top = min(
        C.mutual_information(fixed, fixed, mask=overlap),
        C.mutual_information(aligned, aligned, mask=overlap),
    )
    assert panel.mi_top == pytest.approx(top)
    share = 100 * panel.mi / top
    assert f"MI {panel.mi:.3f} nats ({share:.0f} % of its top {top:.3f} nats" in quality
    assert "higher is better" in quality
    panel.register()
    found = panel.parts["found"].value
    assert "(1 is a perfect match, 0 none)" in found and "higher is better" in found
    assert panel.mi / panel.mi_top > 0.5  # registered: a large share of its top


def test_fusion_difference_is_faint_when_aligned_and_saturated_1_mm_off(ct):
    (dy, dx), turn = DEMO
    undo = {"shift_mm": (dy, dx), "rotation_deg": turn, "inverse": True}
    back = C.rigid_transform(_demo_pair(ct), interpolation="cubic", **undo)
    ones = MedImage(np.ones(ct.array.shape, np.float32), ct.spacing)
    inside = C.rigid_transform(_demo_pair(ones), fill=0.0, **undo) > 0.999
    panel = FusionExplorer(ct, MedImage(back, ct.spacing, "CT"), mode="difference")
    assert _saturated(panel.composite, inside) < 0.0005
    assert panel._legend_text.layout.display == ""
    assert "difference I1 − I2, window ±" in panel._legend_text.value
    assert " HU (mid-grey = equal" in panel._legend_text.value
    off = C.rigid_transform(
        back, shift_mm=(1.0, 0.0), spacing=ct.spacing, interpolation="cubic"
    )
    panel = FusionExplorer(ct, MedImage(off, ct.spacing, "CT"), mode="difference")
    assert _saturated(panel.composite, inside) > 0.004


def test_fusion_difference_of_two_units_says_so(brain):
    t1, gm = brain
    panel = FusionExplorer(t1, gm, mode="difference")
    text = panel._legend_text.value
    assert "a.u. (mid-grey = equal" in text and "MR signal intensity" in text
    assert "I2 is in probability (0 to 1), not a.u.: the difference mixes units" in text


def test_non_hu_units_say_what_they_are(ct, brain):
    t1, _ = brain
    assert "a.u. (MR signal intensity" in BlendExplorer(t1)._unit_note.value
    assert BlendExplorer(ct)._unit_note.value == ""  # HU needs no word
    perfusion = ml.data.sample("perfusion_ct")
    first = MedImage(
        perfusion.array[0], perfusion.spacing[1:], "CT", meta=perfusion.meta
    )
    panel = BlendExplorer(first)
    assert "not HU" in panel._unit_note.value and "perfusion" in panel._unit_note.value
    fusion = FusionExplorer(first, first, mode="difference")
    assert "not HU" in fusion._legend_text.value


def test_stitch_confidence_says_what_is_good(ct):
    tiles, _ = C.cut_tiles(ct.array, grid=(2, 2), overlap=0.35, jitter_px=4, seed=0)
    panel = StitchExplorer(tiles, spacing=ct.spacing)
    assert "confidence: the NCC of the tile&#x27;s best overlap" in panel._table.value
    assert "1 is a perfect match, 0 none" in panel._table.value


def test_the_compare_dashboards_demo_pair_registered_shows_no_rims():
    """The case that was seen: the compare dashboard's demo pair (head CT moved
    4 mm, 3 mm, 5°), registered, in the difference view (NCC 1.000)."""
    from medimg_lab.widgets.dashboards.compare import CompareDashboard

    dash = CompareDashboard()
    dash.view = "difference"
    dash.register()
    panel = dash.explorer
    assert panel.ncc > 0.999
    overlap = panel._overlap()
    assert _saturated(panel.composite, overlap) < 0.0005
    assert "window ±" in panel.parts["quality"].value
    panel.set_params(shift_y_mm=panel.params["shift_y_mm"] + 1.0)  # 1 mm off
    assert _saturated(panel.composite, panel._overlap()) > 0.004
