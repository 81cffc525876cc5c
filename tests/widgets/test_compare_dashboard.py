"""CompareDashboard: open two images, register, nudge, view, export; no browser."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from medimg_lab.widgets.composition import RegistrationExplorer
from medimg_lab.widgets.dashboards.compare import (
    DEMO_MOTION,
    NUDGE,
    VIEWS,
    CompareDashboard,
)
from test_viewer_dashboard import choose

import medimg_lab as ml
from medimg_lab import composition as C
from medimg_lab import data, display
from medimg_lab.image import MedImage
from medimg_lab.params import parameters


@pytest.fixture(scope="module")
def dash():
    """The default page: head CT as A, the demo pair's B. Tests that change
    it undo their change."""
    return CompareDashboard()


@pytest.fixture(scope="module")
def ct():
    return data.sample("head_ct")


#: register's one declared default, which the page must start on for a pair
#: of one kind
DEFAULT = parameters(C.register)["method"].default


def upload(dash: CompareDashboard, which: str, name: str, payload: bytes) -> None:
    """Choose a file in A's or B's upload button."""
    choose(dash._sources[which], name, payload)


# ------------------------------------------------------------------ opening
def test_defaults_are_the_head_ct_and_its_demo_pair(dash, ct):
    assert dash.reference.array.shape == (512, 512)
    np.testing.assert_array_equal(dash.reference.array, ct.array)
    assert dash.is_demo and dash.message == ""
    (dy, dx), turn = DEMO_MOTION
    expected = C.rigid_transform(ct, shift_mm=(dy, dx), rotation_deg=turn)
    np.testing.assert_array_equal(dash.compared.array, expected)
    assert "B is A moved by 4.0 mm down, 3.0 mm right and 5° " in (
        dash._grid_note.value
    )
    assert "a demo pair" in dash._grid_note.value
    assert dash.method == DEFAULT and dash.view == "blend"
    assert f"{DEFAULT}, the default of register" in dash._method_hint.value
    assert dash.displayed.shape == (512, 512)
    assert "NCC <b>" in dash.explorer.parts["quality"].value
    assert dash.transform == {k: 0.0 for k in NUDGE}


def test_register_recovers_the_known_motion_in_mm_and_degrees(ct):
    dash = CompareDashboard()
    before = dash.quality["ncc"]
    found = dash.register()
    (dy, dx), turn = DEMO_MOTION
    assert found.shift_mm == pytest.approx((dy, dx), abs=0.05)
    assert found.rotation_deg == pytest.approx(turn, abs=0.05)
    assert dash.transform == pytest.approx(
        {
            "shift_y_mm": found.shift_mm[0],
            "shift_x_mm": found.shift_mm[1],
            "rotation_deg": found.rotation_deg,
        }
    )
    assert dash.quality["ncc"] > 0.99 > before
    assert dash.message.startswith(f"Registered with {DEFAULT}: NCC ")
    ncc, mi = found.ncc, found.mi
    top = dash.quality["mi_top"]
    assert 0 < mi <= top + 1e-9
    assert f"NCC {ncc:.3f} (1 is a perfect match, 0 none)" in dash.message
    share = f"{100 * mi / top:.0f} % of its top {top:.3f} nats; higher is better"
    assert f"MI {mi:.3f} nats ({share})" in dash.message
    assert "+4.00 mm</b> down" in dash._transform.value
    assert "rotation 5.00°" in dash.explorer.parts["found"].value


def test_register_button_across_contrasts_uses_mutual_information():
    """A real T1 slice against the grey-matter map moved by a known motion."""
    t1, gm = data.sample("brain_mri"), data.sample("brain_mri_gm")
    k = t1.array.shape[0] // 2
    moved = C.rigid_transform(
        MedImage(gm.array[k], gm.spacing[1:]), shift_mm=(-3.0, 2.5), rotation_deg=-4.0
    )
    dash = CompareDashboard(
        MedImage(t1.array[k], t1.spacing[1:], "MR"),
        compared=MedImage(moved, gm.spacing[1:], "MR", meta={"unit": "probability"}),
    )
    assert dash.method == "mi" and "mutual information" in dash._method_hint.value
    dash._register.click()
    found = dash.explorer.result
    assert found.shift_mm == pytest.approx((-3.0, 2.5), abs=0.2)
    assert found.rotation_deg == pytest.approx(-4.0, abs=0.3)
    assert not dash._register.disabled


def test_a_failed_registration_is_a_sentence_and_the_sliders_stay():
    dash = CompareDashboard()
    dash.compared = MedImage(np.zeros((64, 64), np.float32), (1.0, 1.0), "CT")
    dash.set_params(shift_y_mm=1.0)
    dash._register.click()
    assert dash.message == (
        "Could not register B onto A: moving is a constant image (every pixel 0): "
        "nothing in it can be aligned. Register images that show structure."
    )
    assert dash.explorer.result is None and dash.transform["shift_y_mm"] == 1.0
    assert not dash._register.disabled
    dash.view = "difference"  # the page still works
    assert dash.displayed is not None


# ------------------------------------------------------------------- nudges
@pytest.mark.parametrize("name", list(NUDGE))
def test_nudge_buttons_move_the_slider_by_the_step(dash, name):
    minus, plus = dash._nudge_buttons[name]
    start = dash.transform[name]
    plus.click()
    assert dash.transform[name] == pytest.approx(start + NUDGE[name])
    plus.click()
    minus.click()
    assert dash.transform[name] == pytest.approx(start + NUDGE[name])
    minus.click()
    assert dash.transform[name] == pytest.approx(start)
    assert dash.message == ""


def test_nudge_past_the_slider_range_is_a_sentence():
    dash = CompareDashboard()
    dash.set_params(rotation_deg=30.0)
    dash._nudge_buttons["rotation_deg"][1].click()
    assert dash.message.startswith("rotation (°) must lie in [-30, 30]; got 30.5")
    assert dash.transform["rotation_deg"] == 30.0


def test_a_nudge_changes_the_view_and_the_quality(dash):
    shown, ncc = dash.displayed.copy(), dash.quality["ncc"]
    dash.nudge("shift_x_mm", 0.5)
    try:
        assert not np.array_equal(dash.displayed, shown)
        assert dash.quality["ncc"] != ncc
    finally:
        dash.nudge("shift_x_mm", -0.5)


# -------------------------------------------------------------------- views
@pytest.mark.parametrize("view", ["checkerboard", "swipe", "difference"])
def test_each_view_changes_the_image(dash, view):
    dash.view = "blend"
    blend = dash.displayed.copy()
    dash.view = view
    try:
        assert np.count_nonzero(dash.displayed != blend) > 1000
    finally:
        dash.view = "blend"


@pytest.mark.parametrize(
    ("view", "name", "value"),
    [
        ("blend", "weight", 0.9),
        ("checkerboard", "squares", 4),
        ("swipe", "position", 0.2),
    ],
)
def test_each_views_control_changes_the_image(dash, view, name, value):
    dash.view = view
    before = dash.displayed.copy()
    default = dash.explorer.params[name]
    dash.set_params(**{name: value})
    try:
        assert np.count_nonzero(dash.displayed != before) > 1000
        shown = dash.explorer.parts[name].layout.display
        assert shown != "none"
    finally:
        dash.set_params(**{name: default})
        dash.view = "blend"


def test_views_show_only_their_control(dash):
    for view, explorer_view in VIEWS.items():
        dash.view = view
        assert dash.explorer.params["view"] == explorer_view
        shown = {
            n
            for n in ("weight", "squares", "position")
            if dash.explorer.parts[n].layout.display != "none"
        }
        assert (
            shown
            == {
                "blend": {"weight"},
                "checkerboard": {"squares"},
                "swipe": {"position"},
                "difference": set(),
            }[view]
        )
    dash.view = "blend"


def test_blend_is_the_weighted_fusion_of_the_two_windows(dash, ct):
    dash.view = "blend"
    window = ct.window
    a = display.apply_window(ct.array, *window)
    b = display.apply_window(dash.compared.array, *window)  # undone by zero motion
    assert dash.transform == {k: 0.0 for k in NUDGE}
    np.testing.assert_array_equal(dash.explorer.composite, C.fuse(a, b, 0.5))


def test_window_preset_changes_the_image_and_bad_names_are_refused(dash):
    before = dash.displayed.copy()
    dash.window = "bone"
    try:
        assert np.count_nonzero(dash.displayed != before) > 1000
    finally:
        dash.window = "each its own"
    with pytest.raises(ValueError, match="window must be one of"):
        dash.window = "lung please"
    with pytest.raises(ValueError, match="view must be one of blend"):
        dash.view = "overlay"
    dash._say("")


# ------------------------------------------------------------------ exports
def test_nifti_export_is_b_registered_onto_a_and_loads_back(tmp_path, ct):
    dash = CompareDashboard()
    dash.register()
    payload = dash.export_nifti()
    path = tmp_path / "B_on_A.nii.gz"
    path.write_bytes(payload)
    loaded = ml.load(path)
    assert loaded.array.shape == ct.array.shape
    assert loaded.spacing == pytest.approx(ct.spacing)
    inner = (slice(100, 400), slice(100, 400))
    assert C.ncc(loaded.array[inner], ct.array[inner]) > 0.99
    assert 'download="B_on_A.nii.gz"' in dash._links["nifti"].value


def test_csv_export_has_units_and_the_transform(dash):
    dash.register()
    try:
        table = pd.read_csv(io.StringIO(dash.export_csv()))
        assert list(table["transform"]) == ["automatic", "applied"]
        for column in (
            "shift down (mm)",
            "shift right (mm)",
            "rotation (°, counter-clockwise)",
            "MI (overlap, nats)",
        ):
            assert column in table.columns
        (dy, dx), turn = DEMO_MOTION
        row = table.iloc[0]
        assert row["shift down (mm)"] == pytest.approx(dy, abs=0.05)
        assert row["shift right (mm)"] == pytest.approx(dx, abs=0.05)
        assert row["rotation (°, counter-clockwise)"] == pytest.approx(turn, abs=0.05)
        assert table.iloc[1]["found by"] == DEFAULT
        dash.nudge("shift_y_mm", 0.5)
        assert dash.table.iloc[1]["found by"] == f"{DEFAULT}, then nudged"
        assert dash._links["csv"].value == ""  # a change clears the old link
    finally:
        dash.set_params(**{k: 0.0 for k in NUDGE})


def test_png_export_is_the_view(dash):
    payload = dash.export_png()
    png = ml.load(payload)
    np.testing.assert_array_equal(png.array, dash.displayed)


def test_export_buttons_make_links_and_say_so():
    dash = CompareDashboard()
    for key, text in (("png", "PNG of the view"), ("csv", "transform (CSV)")):
        dash._export_buttons[key].click()
        assert dash._links[key].value.startswith("<a download=")
        assert dash.message == f"The {text} is ready: click the link to save it."


def test_no_patient_identifiers_in_the_page_or_the_exports(dash):
    dash.register()
    try:
        csv, nifti = dash.export_csv(), dash.export_nifti()
        page = " ".join(
            w.value for w in (*dash._opened.values(), dash._grid_note, dash._message)
        )
        for word in ("Patient", "Name", "Institution", "Date"):
            assert word not in csv and word not in page
        assert b"Patient" not in nifti
    finally:
        dash.set_params(**{k: 0.0 for k in NUDGE})


# ------------------------------------------------------------ bad uploads
@pytest.mark.parametrize("which", ["A", "B"])
def test_random_bytes_are_a_sentence_and_the_page_keeps_working(which):
    dash = CompareDashboard()
    a, b = dash.reference, dash.compared
    junk = np.random.default_rng(1).integers(0, 256, 5000, np.uint8).tobytes()
    upload(dash, which, "junk.dcm", junk)
    assert dash.message.startswith("junk.dcm: ")
    assert dash.message.endswith(".")
    assert "Traceback" not in dash._message.value
    assert dash.reference is a and dash.compared is b
    dash.register()  # still works
    assert dash.message.startswith(f"Registered with {DEFAULT}")


def test_empty_upload_is_a_sentence():
    dash = CompareDashboard()
    upload(dash, "B", "empty.dcm", b"")
    assert dash.message == "empty.dcm is empty. Choose the file again."
    assert dash.is_demo


def test_over_limit_upload_is_a_sentence(monkeypatch):
    monkeypatch.setattr("medimg_lab.widgets.dashboards._base.MAX_UPLOAD_BYTES", 1000)
    dash = CompareDashboard()
    upload(dash, "B", "big.png", display.encode_png(np.zeros((64, 64), np.uint8)) * 20)
    assert dash.message.startswith("big.png is 0.0 MiB; the limit is 0 MiB.")
    assert dash.is_demo


def test_colour_image_is_refused_with_a_sentence():
    dash = CompareDashboard()
    rgb = np.zeros((64, 64, 3), np.uint8)
    rgb[..., 0] = 200
    upload(dash, "B", "photo.png", display.encode_png(rgb))
    assert dash.message == (
        "photo.png is a colour image; this dashboard takes grey images (CT, MR, "
        "X-ray). Open a grey image."
    )
    assert dash.is_demo
    with pytest.raises(ValueError, match="colour image"):
        dash.load_bytes(display.encode_png(rgb), "photo.png", which="A")


def test_a_grey_png_upload_becomes_b():
    dash = CompareDashboard()
    image = display.apply_window(dash.reference.array, *dash.reference.window)
    upload(dash, "B", "slice.png", display.encode_png(image))
    assert not dash.is_demo and dash.message == ""
    assert "a demo pair" not in dash._grid_note.value
    assert dash.method == "mi"  # a PNG's grey levels are not HU


# ------------------------------------------------------------------ grids
def test_different_shapes_and_spacings_are_brought_onto_as_grid():
    dash = CompareDashboard()
    dash.load_sample("spine_ct", which="B")
    b = dash.compared
    assert b.array.shape == (128, 128)
    moving = dash.on_grid
    assert moving.array.shape == (512, 512)
    assert moving.spacing == dash.reference.spacing
    assert "is resampled onto A's grid" in dash._grid_note.value.replace("&#x27;", "'")
    assert not dash.is_demo
    # B's centre lands on A's centre: the centre pixel keeps its value.
    assert moving.array[255:257, 255:257].mean() == pytest.approx(
        b.array[63:65, 63:65].mean(), rel=0.05
    )
    # B covers 128 × 0.66 mm = 85 mm of A's 245 mm: the rest is padding.
    assert moving.array[0, 0] == b.array.min()
    assert dash.export_nifti()  # the export is on A's grid
    assert dash.registered.array.shape == (512, 512)


def test_volumes_compare_the_slice_at_the_same_height():
    s, r, c = np.ogrid[:10, :40, :40]
    a = MedImage((100.0 * s + r + c).astype(np.float32), (2.0, 1.0, 1.0), "CT")
    b = MedImage((100.0 * s + r + c).astype(np.float32)[::2], (4.0, 1.0, 1.0), "CT")
    dash = CompareDashboard(a, compared=b)
    assert dash.slice_index == 5 and dash._slice_row.layout.display == ""
    dash.slice_index = 3  # z = (3 - 4.5) * 2 mm from the centre
    k = (5 - 1) / 2 + (3 - 4.5) * 2.0 / 4.0  # B's fractional slice, 1.25
    expected = (100.0 * 2 * k + r + c)[0]  # linear between B's slices 1 and 2
    np.testing.assert_allclose(dash.on_grid.array, expected, rtol=1e-5)
    assert dash.registered.array.shape == a.array.shape
    with pytest.raises(
        ValueError, match=r"slice_index must be a whole number in \[0, 9\]"
    ):
        dash.slice_index = 10


def test_volume_demo_pair_registers_on_the_slice_chosen():
    dash = CompareDashboard()
    dash.load_sample("brain_mri")
    assert dash.is_demo and dash.reference.is_volume
    assert dash.slice_index == dash.reference.array.shape[0] // 2
    dash.slice_index = 80
    found = dash.register()
    assert found.shift_mm == pytest.approx(DEMO_MOTION[0], abs=0.1)
    assert "on slice 80" in dash.message
    dash.slice_index = 100  # the motion stays for every slice
    assert dash.transform["rotation_deg"] == pytest.approx(found.rotation_deg)
    assert dash.quality["ncc"] > 0.99


def test_layout_fits_a_laptop_screen(dash):
    style, body = dash.children
    image, controls = body.children
    (viewer,) = image.children
    assert viewer.box_size <= 512 and "position: sticky" in style.value
    assert int(image.layout.width.removesuffix("px")) <= 512 + 12
    # Register, View and Export: sections of their own, side by side if room
    assert len(controls.children) == 4
    assert dash._view.style.button_width == "auto"
    for name in ("weight", "squares", "position"):
        assert dash.explorer.parts[name].style.description_width == "130px"
    assert dash._register.tooltip and dash._view.tooltips
    for name in NUDGE:
        assert all(b.tooltip for b in dash._nudge_buttons[name])
    for source in dash._sources.values():
        assert source._upload.tooltip and source._sample.tooltip


# ------------------------------------------- the explorer's additions it uses
def test_explorer_swipe_view_is_the_pure_function(ct):
    moving = MedImage(C.rigid_transform(ct, shift_mm=(2.0, 0.0)), ct.spacing, "CT")
    panel = RegistrationExplorer(ct, moving)
    panel.set_params(view="swipe", position=0.3)
    window = display.auto_window(ct.array)
    i1 = display.apply_window(ct.array, *window)
    i2 = display.apply_window(panel.aligned, *window)
    np.testing.assert_array_equal(
        panel.composite, C.swipe(i1, i2, position=0.3, axis=1)
    )


def test_explorer_set_images_keeps_or_resets_the_motion(ct):
    panel = RegistrationExplorer(ct, ct)
    panel.nudge("rotation_deg", 1.5)
    revision = panel.revision
    small = data.sample("spine_ct")
    panel.set_images(small, small)
    assert panel.params["rotation_deg"] == 1.5 and panel.revision == revision + 1
    reach = panel.parts["shift_y_mm"].max
    assert reach == round(128 * small.spacing[0] / 4, 1)
    panel.set_images(ct, ct, keep_motion=False)
    assert panel.params["rotation_deg"] == 0.0 and panel.result is None
    with pytest.raises(ValueError, match="name must be one of shift_y_mm"):
        panel.nudge("zoom", 1.0)
