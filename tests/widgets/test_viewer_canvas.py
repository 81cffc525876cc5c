"""ImageViewer(render="browser"): what its canvas is sent, and when.

The pixels the page paints from this state are checked in Chromium
(tests/browser/test_canvas_in_chromium.py); here, without a browser: the
canvas holds the shown plane's values and the kernel's window, values go once
per plane (not per window), a window that came from a slider is not sent back
(the page has it through ``jsdlink``), and ``displayed`` / ``png`` give what a
``render="kernel"`` viewer gives in the same state.
"""

from __future__ import annotations

import ipywidgets as ipw
import numpy as np
import pytest
from medimg_lab.widgets.canvas import WindowCanvas
from medimg_lab.widgets.viewer import ImageViewer
from test_viewer import decode, ipyevents_event

from medimg_lab import display
from medimg_lab.image import MedImage
from tests.helpers import user_moves


def _values(canvas: WindowCanvas) -> np.ndarray:
    """The canvas's values as an array of its shape (RGB: 3 channels)."""
    dtype = {"u1": "<u1", "u2": "<u2", "i2": "<i2", "f4": "<f4", "rgb": "u1"}
    values = np.frombuffer(canvas.values, dtype[canvas.kind])
    return values.reshape(*canvas.shape, *((3,) if canvas.kind == "rgb" else ()))


def _pair(image, **options) -> tuple[ImageViewer, ImageViewer]:
    return (
        ImageViewer(image, render="browser", **options),
        ImageViewer(image, render="kernel", **options),
    )


def test_canvas_holds_the_plane_values_and_the_window(head_ct):
    viewer = ImageViewer(head_ct, render="browser", preset="brain")
    canvas = viewer._img
    assert isinstance(canvas, WindowCanvas)
    assert viewer._events.source is canvas
    assert (canvas.kind, canvas.shape) == ("i2", (512, 512))
    np.testing.assert_array_equal(_values(canvas), head_ct.array)
    assert tuple(canvas.window[:2]) == (40.0, 80.0)
    assert canvas.labels == canvas.table == b""
    links = [w for w in viewer._links if isinstance(w, ipw.widget_link.DirectionalLink)]
    sources = {(link.source[0], link.target[1]) for link in links}
    assert sources == {(viewer._center, "center"), (viewer._width, "width")}


def test_displayed_and_png_equal_the_kernel_render(head_ct, brain_mri):
    browser, kernel = _pair(head_ct, preset="bone")
    np.testing.assert_array_equal(browser.displayed, kernel.displayed)
    np.testing.assert_array_equal(decode(browser.png), kernel.displayed)
    mask = np.zeros(head_ct.array.shape, bool)
    mask[100:200, 100:300] = True
    for viewer in (browser, kernel):
        viewer.window = (55.5, 123.25)
        viewer.overlay, viewer.overlay_opacity = mask, 0.7
    np.testing.assert_array_equal(browser.displayed, kernel.displayed)
    browser, kernel = _pair(brain_mri, plane="coronal", slice_index=90)
    np.testing.assert_array_equal(browser.displayed, kernel.displayed)
    assert browser._img.shape == browser.displayed.shape


def test_values_go_once_per_plane_and_windows_each_time(brain_mri):
    viewer = ImageViewer(brain_mri, render="browser")
    canvas, serials = viewer._img, []
    sent = []
    canvas.observe(lambda change: sent.append(change["name"]), ["values", "window"])
    for window in ((300, 200), (310, 200), (310, 250)):
        viewer.window = window
        serials.append(canvas.window[2])
        assert tuple(canvas.window[:2]) == window
    assert sent == ["window"] * 3 and serials == sorted(set(serials))
    viewer.slice_index += 1
    assert sent[-2:] == ["values", "window"]
    np.testing.assert_array_equal(_values(canvas), viewer._values)


def test_a_slider_window_is_not_sent_back_a_preset_is(head_ct):
    viewer = ImageViewer(head_ct, render="browser", preset="brain")
    canvas = viewer._img
    serial = canvas.window[2]
    user_moves(viewer._width, 200)  # as the browser sends a slider move
    assert viewer.window == (40.0, 200.0) and viewer.preset == "custom"
    assert canvas.window[2] == serial  # the page windowed it already
    np.testing.assert_array_equal(
        viewer.displayed, display.apply_window(head_ct.array, 40, 200)
    )
    viewer.preset = "lung"
    assert canvas.window[2] > serial and tuple(canvas.window[:2]) == (-600, 1500)


def test_overlay_labels_and_table(head_ct):
    labels = np.zeros(head_ct.array.shape, np.uint16)
    labels[10:20, 10:20], labels[30:40, 30:40] = 1, 700  # more labels than colours
    viewer = ImageViewer(head_ct, render="browser", overlay=labels)
    canvas = viewer._img
    index = np.frombuffer(canvas.labels, np.uint8).reshape(512, 512)
    assert index[0, 0] == 0 and index[15, 15] > 0 and index[35, 35] > 0
    table = np.frombuffer(canvas.table, np.uint8).reshape(-1, 256, 3)
    colours = display.label_colors(700)
    for label, (r, c) in ((1, (15, 15)), (700, (35, 35))):
        shown = table[index[r, c] - 1]
        want = display.overlay(
            np.arange(256, dtype=np.uint8)[None],
            np.full((1, 256), 1),
            viewer.overlay_opacity,
            colors={1: tuple(int(v) for v in colours[label])},
        )[0]
        np.testing.assert_array_equal(shown, want)
    before = canvas.table
    viewer.overlay_opacity = 0.9
    assert canvas.table != before
    viewer.overlay = None
    assert canvas.labels == canvas.table == b""


def test_colour_images_are_composed_in_the_kernel():
    rgb = np.random.default_rng(1).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    viewer = ImageViewer(MedImage(rgb, (1.0, 1.0)), render="browser")
    assert viewer._img.kind == "rgb"
    np.testing.assert_array_equal(_values(viewer._img), rgb)
    viewer.window = (100, 50)
    np.testing.assert_array_equal(_values(viewer._img), viewer.displayed)


def test_pointer_reads_through_the_canvas(head_ct):
    viewer = ImageViewer(head_ct, render="browser", zoom=2.0)
    event = ipyevents_event("click", 201, 401, 1024, 1024, 512, 512)
    del event["dataX"], event["dataY"]  # ipyevents sends these for <img> only
    viewer._on_pointer_event(event)
    assert viewer.clicked == (200, 100)
    assert viewer.readout.endswith(f": {int(head_ct.array[200, 100])} HU")


def test_render_must_be_kernel_or_browser(head_ct):
    with pytest.raises(ValueError, match="render must be one of kernel, browser"):
        ImageViewer(head_ct, render="gpu")
