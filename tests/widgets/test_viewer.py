"""ImageViewer: display, window/level, planes, readout, overlay, zoom, pointer."""

from __future__ import annotations

import html
import math
import re

import cv2
import numpy as np
import pytest
import traitlets
from medimg_lab.widgets.viewer import ImageViewer

from medimg_lab import data, display
from medimg_lab.image import MedImage
from tests.helpers import page_answers, page_echoes, user_moves


@pytest.fixture
def volume():
    """12 slices of 40 x 30, 5 mm apart, 1 mm pixels; value = 100 * slice + col."""
    array = (100 * np.arange(12)[:, None, None] + np.arange(30)[None, None, :]).astype(
        np.int16
    )
    array = np.broadcast_to(array, (12, 40, 30)).copy()
    return MedImage(array, spacing=(5.0, 1.0, 1.0), modality="CT", window=(600, 1400))


def decode(png: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


# ------------------------------------------------------------ window / level
def test_window_changes_the_png_and_matches_apply_window(head_ct):
    viewer = ImageViewer(head_ct)
    before = viewer.png
    viewer.window = (400, 1800)
    assert viewer.png != before
    expected = display.apply_window(display.fit(head_ct.array, 512), 400, 1800)
    np.testing.assert_array_equal(decode(viewer.png), expected)
    np.testing.assert_array_equal(viewer.displayed, expected)


def test_downscaled_radiograph_is_windowed_after_fitting(chest_xray):
    viewer = ImageViewer(chest_xray, box_size=512)
    viewer.window = (20000, 8000)
    expected = display.apply_window(display.fit(chest_xray.array, 512), 20000, 8000)
    assert expected.shape == (512, 482)
    np.testing.assert_array_equal(decode(viewer.png), expected)


def test_bone_preset_on_head_ct(head_ct):
    viewer = ImageViewer(head_ct)
    viewer.preset = "bone"
    assert viewer.window == (400, 1800)
    assert (viewer._center.value, viewer._width.value) == (400, 1800)


def test_default_auto_and_custom_presets(head_ct):
    viewer = ImageViewer(head_ct, preset="auto")
    assert viewer.window == pytest.approx(display.auto_window(head_ct.array))
    viewer.preset = "default"
    assert viewer.window == head_ct.window
    viewer.window = (10, 20)
    assert viewer.preset == "custom"


def test_sliders_set_the_window_and_the_window_sets_the_sliders(head_ct):
    viewer = ImageViewer(head_ct)
    user_moves(viewer._center, 123.0)
    assert viewer.window == (123.0, head_ct.window[1])
    viewer.window = (-600, 1500)
    assert (viewer._center.value, viewer._width.value) == (-600, 1500)
    assert viewer._center.description == "center (HU)"


def test_ct_presets_are_refused_for_values_not_in_hu(brain_mri):
    viewer = ImageViewer(brain_mri)
    with pytest.raises(ValueError, match="preset must be one of default, auto, custom"):
        viewer.preset = "bone"


# ------------------------------------------------------------ slices, planes
def test_slice_index_changes_the_displayed_slice(brain_mri):
    viewer = ImageViewer(brain_mri)
    assert viewer.slice_index == brain_mri.shape[0] // 2
    viewer.slice_index = 60
    first = viewer.displayed.copy()
    viewer.slice_index = 120
    assert not np.array_equal(first, viewer.displayed)
    expected = display.apply_window(brain_mri.array[120], *brain_mri.window)
    np.testing.assert_array_equal(viewer.displayed, expected)


def test_planes_honour_spacing(volume):
    viewer = ImageViewer(volume, zoom=1.0)
    assert viewer.displayed.shape == (40, 30)
    viewer.plane = "coronal"
    assert viewer.displayed.shape == (5 * 12, 30)  # 5 mm slices, 1 mm pixels
    assert viewer.slice_index == 20
    viewer.plane = "sagittal"
    assert viewer.displayed.shape == (5 * 12, 40)
    assert viewer._slice_index.max == 29


def test_coronal_shows_superior_at_the_top(volume):
    viewer = ImageViewer(volume, plane="coronal", window=(600, 2000))
    values = volume.array[:, viewer.slice_index][::-1]  # superior (last slice) first
    top, bottom = viewer.displayed[0], viewer.displayed[-1]
    np.testing.assert_array_equal(top, display.apply_window(values[0], 600, 2000))
    np.testing.assert_array_equal(bottom, display.apply_window(values[-1], 600, 2000))


def test_anisotropic_2d_pixels_are_made_square():
    image = MedImage(np.zeros((20, 30), np.float32), spacing=(2.0, 1.0))
    viewer = ImageViewer(image, zoom="1:1")
    assert viewer.displayed.shape == (40, 30)


def test_a_2d_image_has_only_the_axial_plane(head_ct):
    viewer = ImageViewer(head_ct)
    with pytest.raises(ValueError, match="plane must be 'axial' for a 2D image"):
        viewer.plane = "coronal"
    assert viewer.plane == "axial"


# ------------------------------------------------------------------ readout
def test_click_reads_the_value_in_hu_and_the_position_in_mm(head_ct):
    viewer = ImageViewer(head_ct)
    row, col = 300, 200
    hu = int(head_ct.array[row, col])
    dy, dx = head_ct.spacing
    text = viewer.click(row, col)
    assert (
        text
        == f"x {col * dx:.1f} mm, y {row * dy:.1f} mm (row {row}, col {col}): {hu} HU"
    )
    assert viewer.readout == text == viewer._readout.value
    assert viewer.clicked == (row, col)
    assert viewer.value_at(row, col) == hu


def test_click_on_a_coronal_plane_maps_to_the_voxel(volume):
    viewer = ImageViewer(volume, plane="coronal", slice_index=7)
    viewer.click(0, 5)  # top row = last (most superior) slice
    assert viewer.clicked == (11, 7, 5)
    assert viewer.readout.endswith(f"(row 7, col 5, slice 11): {1105} HU")
    assert "z 55.0 mm" in viewer.readout
    assert viewer.value_at(7, 5, slice=11) == 1105


def test_value_at_outside_the_image_raises(head_ct):
    with pytest.raises(ValueError, match="outside the image"):
        ImageViewer(head_ct).value_at(512, 0)


# ------------------------------------------------------------------ overlay
def test_overlay_blends_with_the_opacity(head_ct):
    mask = head_ct.array > 300
    viewer = ImageViewer(head_ct, overlay=mask, overlay_opacity=0.6)
    grey = display.apply_window(head_ct.array, *head_ct.window)
    np.testing.assert_array_equal(viewer.displayed, display.overlay(grey, mask, 0.6))
    row, col = np.argwhere(mask)[0]
    color = display.label_colors(1)[1].astype(float)
    blended = np.round(color * 0.6 + float(grey[row, col]) * 0.4)
    np.testing.assert_array_equal(viewer.displayed[row, col], blended)
    user_moves(viewer._overlay_opacity, 0.2)
    np.testing.assert_array_equal(viewer.displayed, display.overlay(grey, mask, 0.2))


def test_overlay_follows_the_plane(volume):
    labels = (volume.array > 600).astype(np.uint8)
    viewer = ImageViewer(volume, overlay=labels, plane="sagittal", zoom=1.0)
    assert viewer.displayed.shape == (60, 40, 3)


# --------------------------------------------------------------------- zoom
def test_zoom_one_to_one_and_fit(head_ct):
    viewer = ImageViewer(head_ct, box_size=400)
    assert viewer.displayed.shape == (400, 400)
    assert viewer._img.layout.width == "400px"
    viewer.zoom = "1:1"
    assert viewer.displayed.shape == (512, 512)
    assert viewer._img.layout.width == "512px"
    viewer._zoom_buttons[2].click()  # +: the browser enlarges, nothing is upsampled
    assert viewer.zoom == pytest.approx(1.25)
    assert (viewer.displayed.shape, viewer._img.layout.width) == ((512, 512), "640px")
    viewer._zoom_buttons[3].click()
    viewer._zoom_buttons[3].click()  # −: ×0.8 = 409.6 px
    assert viewer.displayed.shape == (410, 410)
    viewer._zoom_buttons[0].click()
    assert viewer.zoom == "fit"
    assert viewer.displayed.shape == (400, 400)


# ------------------------------------------------------------ pointer events
def test_event_is_wired_to_the_image(head_ct):
    viewer = ImageViewer(head_ct)
    assert viewer._events.source is viewer._img
    assert {"click", "mousemove", "mousedown", "mouseup"} <= set(
        viewer._events.watched_events
    )


def ipyevents_event(kind, rel_x, rel_y, width, height, natural_w, natural_h, **more):
    """A mouse event as ipyevents 2 sends it for an Image widget (no border)."""
    return {
        "type": kind,
        "button": 0,
        "buttons": 0,
        "relativeX": rel_x,
        "relativeY": rel_y,
        "boundingRectWidth": width,
        "boundingRectHeight": height,
        "dataX": math.floor(rel_x / width * natural_w + 0.5),  # JS Math.round
        "dataY": math.floor(rel_y / height * natural_h + 0.5),
        **more,
    }


def test_pointer_on_a_downscaled_radiograph_reads_the_right_pixel(chest_xray):
    viewer = ImageViewer(chest_xray, box_size=512)
    shown_rows, shown_cols = viewer.displayed.shape
    assert (shown_rows, shown_cols) == (512, 482)
    viewer._on_pointer_event({"type": "click", "button": 0, "dataX": 100, "dataY": 300})
    row = math.floor((300 + 0.5) * chest_xray.shape[0] / shown_rows)
    col = math.floor((100 + 0.5) * chest_xray.shape[1] / shown_cols)
    assert viewer.clicked == (row, col)
    value = int(chest_xray.array[row, col])
    assert viewer.readout.endswith(f"(row {row}, col {col}): {value} a.u.")
    # The same pixel, with every field ipyevents sends, on the 482 x 512 CSS image.
    event = ipyevents_event("click", 100, 300, 482, 512, 482, 512)
    viewer._on_pointer_event(event)
    assert viewer.clicked == (row, col)


def test_pointer_at_the_edges_stays_inside_the_image(chest_xray):
    viewer = ImageViewer(chest_xray, box_size=512)
    # ipyevents rounds, so the right edge can report the natural width itself.
    viewer._on_pointer_event({"type": "mousemove", "dataX": 482, "dataY": 512})
    assert "(row 1954, col 1840)" in viewer.readout
    viewer._on_pointer_event(ipyevents_event("mousemove", 0, 0, 482, 512, 482, 512))
    assert "(row 1, col 1)" in viewer.readout  # centre of display pixel (0, 0)
    assert viewer.clicked == ()  # moving does not click


def test_pointer_on_an_enlarged_image_uses_the_rendered_size(head_ct):
    viewer = ImageViewer(head_ct, zoom=2.0)  # 512 px encoded, 1024 CSS px
    event = ipyevents_event("click", 201, 401, 1024, 1024, 512, 512)
    assert event["dataX"] == 101  # round(100.5): ipyevents alone is one pixel off
    viewer._on_pointer_event(event)
    assert viewer.clicked == (200, 100)


def test_right_drag_sets_width_horizontally_and_center_vertically(head_ct):
    viewer = ImageViewer(head_ct, window=(40, 80))
    per_px = float(head_ct.array.max() - head_ct.array.min()) / 1024
    assert 2 < per_px < 5  # HU per pixel of drag on a CT
    viewer._on_pointer_event(
        {"type": "mousedown", "button": 2, "clientX": 10, "clientY": 50}
    )
    viewer._on_pointer_event(
        {"type": "mousemove", "buttons": 2, "clientX": 50, "clientY": 50}
    )
    assert viewer.window == pytest.approx((40, 80 + 40 * per_px))  # 40 px right
    viewer._on_pointer_event(
        {"type": "mousemove", "buttons": 2, "clientX": 10, "clientY": 10}
    )
    assert viewer.window == pytest.approx((40 + 40 * per_px, 80))  # 40 px up
    viewer._on_pointer_event(
        {"type": "mousemove", "buttons": 2, "clientX": -500, "clientY": 10}
    )
    assert viewer.window[1] == viewer._width.step  # never narrower than a step
    viewer._on_pointer_event({"type": "mouseup", "button": 2})
    viewer._on_pointer_event({"type": "mousemove", "dataX": 5, "dataY": 5})
    assert viewer.window[1] == viewer._width.step
    assert viewer.preset == "custom"
    viewer._on_pointer_event({"type": "click", "button": 0, "dataX": 5, "dataY": 6})
    assert viewer.clicked == (6, 5)


@pytest.mark.parametrize("sample", ["head_ct", "chest_xray", "brain_mri"])
def test_a_drag_moves_the_window_by_the_images_range_share(sample):
    image = data.sample(sample)
    viewer = ImageViewer(image)
    c0, w0 = viewer.window
    lo, hi = float(image.array.min()), float(image.array.max())
    viewer._on_pointer_event(
        {"type": "mousedown", "button": 2, "clientX": 0, "clientY": 0}
    )
    viewer._on_pointer_event(
        {"type": "mousemove", "buttons": 2, "clientX": 40, "clientY": -40}
    )
    c, w = viewer.window
    assert c - c0 == pytest.approx(40 * (hi - lo) / 1024)
    assert w - w0 == pytest.approx(40 * (hi - lo) / 1024)
    assert (c - c0) < 0.05 * (hi - lo)  # a 40 px drag is a small move


def test_wheel_steps_through_slices_and_reads_the_new_slice(brain_mri):
    viewer = ImageViewer(brain_mri)
    start = viewer.slice_index
    viewer.click(100, 90)
    viewer._on_pointer_event({"type": "wheel", "deltaY": 100})
    assert viewer.slice_index == start + 1
    value = int(brain_mri.array[start + 1, 100, 90])
    assert viewer.readout.endswith(
        f"(row 100, col 90, slice {start + 1}): {value} a.u."
    )
    assert "wheel" in viewer._wheel.watched_events
    assert viewer._wheel.wait == 0  # every notch reaches the kernel
    assert "wheel" not in viewer._events.watched_events  # (throttled: 40 ms)


@pytest.mark.parametrize("notches", [1, 3, 7])
@pytest.mark.parametrize(
    ("mode", "delta"), [(0, 100), (0, 120), (0, 53), (1, 3), (2, 1)]
)
def test_n_wheel_notches_move_n_slices(brain_mri, notches, mode, delta):
    """A notch is one event (Chromium 100 or 120 px, old GTK 53 px, Firefox 3 lines)."""
    viewer = ImageViewer(brain_mri)
    start = viewer.slice_index
    for _ in range(notches):
        viewer._on_pointer_event({"type": "wheel", "deltaY": delta, "deltaMode": mode})
    assert viewer.slice_index == start + notches
    for _ in range(notches):
        viewer._on_pointer_event({"type": "wheel", "deltaY": -delta, "deltaMode": mode})
    assert viewer.slice_index == start


def test_a_merged_wheel_event_moves_one_slice_per_notch(brain_mri):
    viewer = ImageViewer(brain_mri)
    start = viewer.slice_index
    viewer._on_pointer_event({"type": "wheel", "deltaY": 300})  # 3 notches, merged
    assert viewer.slice_index == start + 3
    viewer._on_pointer_event({"type": "wheel", "deltaY": -240})  # 2 notches of 120
    assert viewer.slice_index == start + 1


def test_small_wheel_deltas_add_up_to_one_slice_per_100_px(volume):
    viewer = ImageViewer(volume)  # 12 slices; the middle one is 6
    rng = np.random.default_rng(5)
    deltas = rng.uniform(1, 12, 200)  # a trackpad's flick, in px
    assert deltas.sum() > 600  # more than the 5 slices after the middle one
    for dy in deltas:
        viewer._on_pointer_event({"type": "wheel", "deltaY": float(dy)})
    assert viewer.slice_index == 11  # clamped at the last slice, no error
    viewer.slice_index = 6
    viewer._wheel_px = 0.0
    total = 0.0
    for dy in rng.uniform(1, 12, 40):
        total += dy
        viewer._on_pointer_event({"type": "wheel", "deltaY": float(dy)})
        assert viewer.slice_index == 6 + int(total // 100)
    # Turning back starts the sum again: 30 px back move no slice.
    viewer._on_pointer_event({"type": "wheel", "deltaY": -30.0})
    assert viewer.slice_index == 6 + int(total // 100)
    for _ in range(300):  # far past the first slice: stops there
        viewer._on_pointer_event({"type": "wheel", "deltaY": -100.0})
    assert viewer.slice_index == 0 and viewer.message == ""


@pytest.mark.parametrize(
    "event",
    [
        {"deltaY": float("nan")},
        {"deltaY": float("inf")},
        {"deltaY": None},
        {"deltaY": 0},
        {"deltaY": 1e300},
        {"deltaY": -1e300, "deltaMode": 2},
        {"deltaX": 100},  # sideways: no slice
    ],
)
def test_hostile_wheel_events_change_nothing_or_stop_at_an_end(volume, event):
    viewer = ImageViewer(volume)
    viewer._on_pointer_event({"type": "wheel", **event})
    assert viewer.message == ""
    dy = event.get("deltaY") or 0
    if math.isfinite(dy) and abs(dy) > 1:
        assert viewer.slice_index == (11 if dy > 0 else 0)
    else:
        assert viewer.slice_index == 6


def test_slice_step_buttons_move_one_slice(brain_mri):
    viewer = ImageViewer(brain_mri, plane="coronal")
    back, forward = viewer._slice_steps
    start = viewer.slice_index
    forward.click()
    forward.click()
    assert viewer.slice_index == start + 2 == viewer._slice_index.value
    back.click()
    assert viewer.slice_index == start + 1
    viewer.slice_index = 0
    back.click()  # no slice before the first
    assert viewer.slice_index == 0 and viewer.message == ""
    assert viewer._slice_index.step == 1


def test_the_slice_slider_spans_the_display_box(brain_mri):
    viewer = ImageViewer(brain_mri, box_size=512)
    assert viewer._slice_row.layout.width == "100%"  # of the viewer: the box
    assert viewer._slice_index.layout.flex == "1 1 auto"


def test_viewers_link_through_traits(brain_mri):
    a, b = ImageViewer(brain_mri), ImageViewer(brain_mri)
    traitlets.link((a, "slice_index"), (b, "slice_index"))
    user_moves(a._slice_index, 33)
    assert b.slice_index == 33


# ------------------------------------------------------------------- errors
def test_setter_raises_a_clear_value_error_and_shows_it(head_ct):
    viewer = ImageViewer(head_ct)
    with pytest.raises(
        ValueError, match=r"overlay must have the image's shape \(512, 512\)"
    ):
        viewer.overlay = np.zeros((10, 10), bool)
    assert viewer.overlay is None
    assert viewer.message.startswith("overlay must have the image's shape")


def test_widget_callback_failure_shows_a_plain_message(head_ct, monkeypatch):
    viewer = ImageViewer(head_ct, overlay=head_ct.array > 300)

    def broken(*args, **kwargs):
        raise ValueError("labels do not fit\nsecond line")

    monkeypatch.setattr(display, "overlay", broken)
    user_moves(viewer._overlay_opacity, 0.9)  # a widget event: nothing may propagate
    assert viewer.message == "Could not draw the image: labels do not fit."
    assert "Traceback" not in viewer._message.value
    assert "second line" not in viewer._message.value
    monkeypatch.undo()
    user_moves(viewer._overlay_opacity, 0.5)
    assert viewer.message == ""


def test_slider_values_the_browser_sends_back_are_absorbed(head_ct):
    viewer = ImageViewer(head_ct)
    viewer.window = (208.5, 300)
    page_echoes(viewer._center, 209.0)  # the page snapped 208.5 to its step
    assert (viewer.window, viewer.preset) == ((208.5, 300), "custom")
    viewer.window = (250, 300)
    page_echoes(viewer._center, 209.0)  # an echo of the older value, late
    assert viewer.window == (250, 300)
    assert viewer._center.value == 250  # the slider shows the window in force
    user_moves(viewer._center, 251.0)  # the user moves the slider by one step
    assert viewer.window == (251, 300)


def test_echoes_are_told_from_moves_by_order_not_by_time(head_ct):
    """An echo can come seconds late on a busy machine; it is still an echo."""
    viewer = ImageViewer(head_ct, preset="brain")
    assert viewer.window == (40.0, 80.0)
    page_echoes(viewer._center, 40.00000000000023)  # the page's round trip of 40
    page_echoes(viewer._width, 80.00000000000011)
    page_echoes(viewer._center, 312.0)  # any value before the barrier's answer
    assert (viewer.window, viewer.preset) == ((40.0, 80.0), "brain")
    assert viewer._center.value == 40.0  # and the page is set right again
    user_moves(viewer._center, 41.0)  # after it, a move of one step is taken
    assert viewer.window == (41.0, 80.0)
    user_moves(viewer._center, 40.00000000000023)  # a move back to 40, as sent
    assert viewer.window[0] == pytest.approx(40.0)


def test_a_value_clamped_to_the_old_range_never_replaces_a_new_images_window(
    head_ct, chest_xray
):
    viewer = ImageViewer(head_ct, preset="bone")
    page_answers(viewer._center, viewer._width)
    viewer.image = chest_xray  # new range and value in one message
    # The page applied the value before the range: clamped to the CT's maximum.
    page_echoes(viewer._center, 6288.0)
    assert viewer.window == chest_xray.window
    assert viewer._center.value == chest_xray.window[0]
    page_answers(viewer._center, viewer._width)
    assert viewer.preset == "default"


def test_refused_control_value_is_put_back(volume):
    viewer = ImageViewer(volume)
    viewer._slice_index.max = 99  # as a stale browser slider could send
    user_moves(viewer._slice_index, 50)
    assert viewer.message.startswith("Could not set the slice index")
    assert viewer._slice_index.value == viewer.slice_index == 6


def test_another_image_empties_the_readout_a_processed_one_rereads_it(
    head_ct, brain_mri
):
    viewer = ImageViewer(head_ct)
    viewer.click(280, 270)
    assert viewer.readout.endswith(f": {int(head_ct.array[280, 270])} HU")
    brighter = MedImage(head_ct.array + 7, head_ct.spacing, "CT", head_ct.window)
    viewer.image = brighter  # the same study, processed: the pointer stays
    assert viewer.readout.endswith(f": {int(head_ct.array[280, 270]) + 7} HU")
    viewer.image = brain_mri
    assert viewer.readout == "" and viewer._readout.value == ""
    assert viewer.window == brain_mri.window and viewer.preset == "default"


def test_new_image_of_another_shape_drops_the_overlay(head_ct, brain_mri):
    viewer = ImageViewer(head_ct, overlay=head_ct.array > 300, preset="bone")
    viewer.image = brain_mri
    assert viewer.overlay is None
    assert viewer.preset == "default"
    assert viewer._preset.options == ("default", "auto", "custom")
    assert viewer._center.description == "center (a.u.)"
    assert viewer.message.startswith("The overlay was removed")


def test_new_image_of_the_same_kind_keeps_the_view(brain_mri):
    import dataclasses

    viewer = ImageViewer(brain_mri, plane="coronal", slice_index=90, window=(100, 50))
    viewer.image = dataclasses.replace(brain_mri, array=255 - brain_mri.array)
    assert (viewer.plane, viewer.slice_index, viewer.window) == (
        "coronal",
        90,
        (100, 50),
    )


def test_brush_tool_reports_a_stroke_of_array_indices():
    image = MedImage(np.zeros((64, 64), np.float32), spacing=(1.0, 1.0))
    viewer = ImageViewer(image, box_size=64, zoom="1:1")
    viewer.tool = "brush"
    events = [("mousedown", 10), ("mousemove", 11), ("mousemove", 12), ("mouseup", 12)]
    for kind, col in events:
        viewer._on_pointer_event(
            {
                "type": kind,
                "button": 0,
                "buttons": 1,
                "relativeX": col,
                "relativeY": 20,
                "boundingRectWidth": 64,
                "boundingRectHeight": 64,
            }
        )
    assert viewer.stroke == ((20, 10), (20, 11), (20, 12))
    assert viewer.clicked == ()  # a stroke is not a click
    with pytest.raises(ValueError, match="tool must be one of read, brush"):
        viewer.tool = "lasso"


def test_a_release_after_the_last_move_still_moves_the_window(head_ct):
    # ipyevents throttles mousemove and mouseup separately: the release can
    # carry the pointer's final position before the last move arrives.
    viewer = ImageViewer(head_ct, window=(40, 80))
    viewer._on_pointer_event(
        {"type": "mousedown", "button": 2, "clientX": 0, "clientY": 0}
    )
    viewer._on_pointer_event(
        {"type": "mousemove", "buttons": 2, "clientX": 100, "clientY": 0}
    )
    viewer._on_pointer_event(
        {"type": "mouseup", "button": 2, "clientX": 200, "clientY": -100}
    )
    per_px = float(head_ct.array.max() - head_ct.array.min()) / 1024
    assert viewer.window == pytest.approx((40 + 100 * per_px, 80 + 200 * per_px))


def test_each_click_notifies_even_on_the_same_pixel():
    viewer = ImageViewer(data.sample("spine_ct"))
    seen = []
    viewer.observe(lambda c: c["new"] and seen.append(c["new"]), "clicked")
    viewer.click(10, 20)
    viewer.click(10, 20)
    assert seen == [(10, 20), (10, 20)]


def test_window_controls_can_be_hidden():
    viewer = ImageViewer(data.sample("spine_ct"))
    rows = viewer.children[:2]
    assert all(row.layout.display in (None, "") for row in rows)
    viewer.window_controls = False
    assert all(row.layout.display == "none" for row in rows)
    assert viewer._center in rows[1].children  # the window rows, not others


# -------------------------------------------------------------- status line
def _window_words(image) -> str:
    c, w = image.window
    return f"window {c:.6g}/{w:.6g} {image.unit}"


@pytest.mark.parametrize(
    "name", ["spine_ct", "chest_xray", "perfusion_ct", "brain_mri", "shoulder_mr"]
)
def test_opening_another_image_says_what_the_view_was_reset_to(head_ct, name):
    image = data.sample(name)
    viewer = ImageViewer(head_ct, preset="bone")
    viewer.click(300, 200)
    viewer.image = image
    status = viewer.status
    shape = " × ".join(str(n) for n in image.shape)
    assert status.startswith(f"Opened: {image.modality} {shape}, values in ")
    assert image.unit_note in status  # what the unit is, HU or not
    assert f"reset to {_window_words(image)} (" in status  # its own, with the unit
    assert status.endswith(".") and not re.search(r"\w\w\. [A-Z]", status)  # one
    if image.is_volume:
        n = image.shape[0]
        assert f"axial slice {n // 2 + 1} of {n}" in status
        assert viewer.slice_index == n // 2
    spacing_unknown = image.meta["spacing_source"].startswith("unknown")
    plain = "pixel spacing unknown: lengths and areas in mm assume 1 mm per pixel"
    assert (plain in status) == spacing_unknown
    assert viewer.message == ""  # nothing wrong
    assert html.unescape(viewer._message.value).count(status) == 1  # on the page
    assert "b00020" not in viewer._message.value  # not in the error's red


def test_the_status_names_the_window_source_and_a_non_hu_ct():
    perfusion = data.sample("perfusion_ct")
    assert perfusion.unit == "a.u." and perfusion.modality == "CT"
    viewer = ImageViewer(perfusion)
    assert "(from the header)" in viewer.status
    assert "not HU" in viewer.status  # stored values without an HU rescale
    spine = data.sample("spine_ct")  # CT_small.dcm stores no window
    assert spine.meta["window_source"] == "auto"
    viewer.image = spine
    assert "(auto, from the value percentiles)" in viewer.status
    assert "HU (Hounsfield units)" in viewer.status
    viewer = ImageViewer(spine, preset="brain")
    assert "window 40/80 HU (brain preset)" in viewer.status


def test_an_error_replaces_the_status_line_until_it_is_cleared(brain_mri):
    viewer = ImageViewer(brain_mri)
    opened = viewer.status
    with pytest.raises(ValueError, match=r"slice_index must lie in 0\.\.188"):
        viewer.slice_index = 500
    assert viewer.status == viewer.message.rstrip() != opened
    assert "b00020" in viewer._message.value and "Opened" not in viewer._message.value
    viewer.slice_index = 10  # a good change clears the error
    assert viewer.message == ""
    # and the line no longer says the slice it was reset to, only what opened
    assert viewer.status == opened.split("; reset to ")[0] + "."
    assert "slice 95" not in viewer._message.value


@pytest.mark.parametrize(
    "change",
    [
        lambda v: setattr(v, "preset", "bone"),
        lambda v: setattr(v, "window", (10, 20)),
        lambda v: user_moves(v._center, 123.0),
    ],
)
def test_the_status_drops_the_reset_view_once_it_changes(head_ct, change):
    viewer = ImageViewer(head_ct, preset="brain")
    assert "reset to window 40/80 HU (brain preset)" in viewer.status
    change(viewer)
    assert viewer.status == (
        "Opened: CT 512 × 512, values in HU (Hounsfield units)."
    ).replace("HU (Hounsfield units)", head_ct.unit_note)
    assert "40/80" not in viewer._message.value


def test_a_processed_version_keeps_the_status(head_ct):
    viewer = ImageViewer(head_ct, preset="brain")
    opened = viewer.status
    viewer.image = MedImage(head_ct.array + 3, head_ct.spacing, "CT", head_ct.window)
    assert viewer.status == opened and viewer.window == (40.0, 80.0)


def test_a_colour_image_says_it_is_shown_as_stored():
    viewer = ImageViewer(data.sample("ultrasound"))
    assert "RGB" in viewer.status and "reset to colours as stored" in viewer.status
    assert "window" not in viewer.status


# -------------------------------------------------------------- slider steps
def _phantom(dtype, lo, hi, shape=(96, 80)):
    """A ramp from ``lo`` to ``hi`` with a disc, of ``dtype`` (a known range)."""
    ramp = np.linspace(lo, hi, shape[0] * shape[1]).reshape(shape)
    return ramp.astype(dtype)


@pytest.mark.parametrize(
    ("dtype", "lo", "hi", "modality"),
    [
        (np.int16, -1024, 3071, "CT"),  # CT in HU
        (np.float32, 0.0, 1.0, "MR"),  # a normalised MR
        (np.float32, 0.0, 2245.6, "MR"),  # the shoulder MR's range
        (np.uint8, 0, 255, "CR"),  # an 8-bit film
        (np.uint16, 0, 65535, "DX"),  # a 16-bit film
        (np.uint16, 0, 1023, "CR"),  # 10 bits stored
        (np.int16, 0, 3, "CT"),  # hostile: four values in all
    ],
)
def test_window_slider_steps_suit_the_value_range(dtype, lo, hi, modality):
    array = _phantom(dtype, lo, hi)
    window = display.auto_window(array)
    image = MedImage(array, spacing=(0.7, 0.7), modality=modality, window=window)
    viewer = ImageViewer(image)
    span = float(image.array.max() - image.array.min())
    for slider in (viewer._center, viewer._width):
        steps = span / slider.step
        if dtype(0).dtype.kind in "iu":
            assert slider.step >= 1  # stored integers: no finer step
            assert float(slider.step).is_integer()
        assert min(span, 200) <= steps <= 5000, (slider.description, slider.step)
        digits = max(0, -math.floor(math.log10(slider.step)))
        assert slider.readout_format == f".{digits}f"  # shows one step
        assert slider.min <= slider.value <= slider.max
    assert viewer._center.min <= image.array.min()
    assert viewer._center.max >= image.array.max()
    assert viewer._width.max >= span  # the whole range can be shown
    assert viewer._slice_index.step == 1
    # A one-pixel drag moves the window by (max - min) / 1024, at least a step's
    # worth over the whole drag of 1024 px.
    viewer._on_pointer_event(
        {"type": "mousedown", "button": 2, "clientX": 0, "clientY": 0}
    )
    viewer._on_pointer_event(
        {"type": "mousemove", "buttons": 2, "clientX": 1, "clientY": 0}
    )
    assert viewer.window[1] - image.window[1] == pytest.approx(
        max(span, viewer._center.step) / 1024
    )


# ------------------------------------------------- the barrier, merged messages
def test_an_echo_merged_with_the_barriers_answer_changes_nothing(brain_mri):
    viewer = ImageViewer(data.sample("head_ct"))
    viewer.image = brain_mri
    ping = viewer._center._ping
    echo = brain_mri.window[0] + 1e-13  # the page's float error
    viewer._center.set_state({"value": echo, "_pong": ping})
    assert viewer.window == brain_mri.window and viewer.preset == "default"


def test_an_answer_to_an_older_barrier_keeps_the_value_an_echo(head_ct):
    viewer = ImageViewer(head_ct)
    viewer.window = (208.5, 300)
    old = viewer._center._ping
    viewer.window = (250, 300)  # a second change, its barrier still out
    viewer._center.set_state({"_pong": old, "value": 209.0})  # the first's echo
    assert viewer.window == (250, 300) and viewer._center.value == 250


def test_status_line_modes_view_only_and_none(head_ct, brain_mri):
    """A dashboard names the file in its own line: its viewer says the view
    only; a panel's composite says nothing; errors show in every mode."""
    viewer = ImageViewer(head_ct, preset="brain", status_line="view")
    assert viewer.status == "Shown at window 40/80 HU (brain preset)."
    assert "Opened" not in viewer._message.value
    viewer.image = brain_mri
    assert viewer.status == (
        "Shown at window 149/170 a.u. (the image's own default), axial slice 95 of 189."
    )
    assert viewer.status.endswith(", axial slice 95 of 189.")
    viewer.slice_index = 3  # the view moved on: the controls show it
    assert viewer.status == "" and viewer._message.value == ""
    quiet = ImageViewer(head_ct, status_line=False)
    assert quiet._message.value == ""
    with pytest.raises(ValueError, match="slice_index"):
        ImageViewer(brain_mri, status_line=False).slice_index = 500
    with pytest.raises(ValueError, match='status_line must be True, False or "view"'):
        ImageViewer(head_ct, status_line="yes")
    quiet.status_line = True  # switched on later: says it now
    assert quiet._message.value and "Opened: CT 512 × 512" in quiet.status
