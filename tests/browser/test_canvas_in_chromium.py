"""The viewer's browser canvas (widgets/canvas.js) in a real Chromium, no server.

An :class:`ImageViewer` with ``render="browser"`` fills its
:class:`~medimg_lab.widgets.canvas.WindowCanvas` with the shown plane's values, the
window and the overlay table. Here ``canvas.js`` is imported into a blank page
and rendered with a stand-in for the anywidget model holding exactly that
state; the canvas's pixels are read back with ``getImageData``. They must
equal, bit for bit, what the viewer computes in Python
(:attr:`ImageViewer.displayed`: :func:`display.apply_window` and
:func:`display.overlay`) for every value type the canvas windows itself
(uint8, uint16, int16, float32; float64 goes as float32), for overlays, and
for colour images, which the kernel composes. Then a window arriving as the
sliders' ``jsdlink`` sends it (``center``, ``width``) must give
``apply_window`` of that window, a later window from the kernel must win, and
a slider value equal to the kernel's but for float error must not repaint.
"""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest
from medimg_lab.widgets.viewer import ImageViewer

from medimg_lab.data import sample
from medimg_lab.display import apply_window, preset
from medimg_lab.image import MedImage

pytestmark = pytest.mark.browser

CANVAS_JS = Path(__file__).resolve().parents[2] / "widgets" / "canvas.js"

# Imports canvas.js, renders it with a stand-in model (its bytes traits as
# DataViews, as ipywidgets gives them), and keeps model and canvas on window.
RENDER = """async ([code, state]) => {
  const url = URL.createObjectURL(new Blob([code], { type: "text/javascript" }));
  const module = await import(url);
  const bytes = (b64) => {
    const raw = atob(b64);
    const out = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
    return new DataView(out.buffer);
  };
  const values = {};
  for (const [name, value] of Object.entries(state)) {
    values[name] = value && value.b64 !== undefined ? bytes(value.b64) : value;
  }
  const listeners = {};
  const model = {
    get: (name) => values[name],
    on: (event, fn) => { (listeners[event] = listeners[event] || []).push(fn); },
    off: () => {},
    set: (name, value) => {
      values[name] = value;
      for (const fn of listeners["change:" + name] || []) fn();
    },
  };
  const el = document.createElement("div");
  document.body.appendChild(el);
  module.default.render({ model, el });
  window.__model = model;
  window.__canvas = el.querySelector("canvas");
}"""

# The canvas's RGBA pixels once its next paint is done: (h, w, base64).
READ = """async (frames) => {
  const canvas = window.__canvas;
  while (Number(canvas.dataset.frame) < frames) {
    await new Promise((done) => setTimeout(done, 5));
  }
  const { width, height } = canvas;
  const data = canvas.getContext("2d").getImageData(0, 0, width, height).data;
  let binary = "";
  for (let i = 0; i < data.length; i += 0x8000) {
    binary += String.fromCharCode.apply(null, data.subarray(i, i + 0x8000));
  }
  return [height, width, btoa(binary)];
}"""


def _state(viewer: ImageViewer) -> dict:
    canvas = viewer._img
    state = {
        name: getattr(canvas, name)
        for name in ("kind", "shape", "center", "width", "window")
    }
    for name in ("values", "labels", "table"):
        state[name] = {"b64": base64.b64encode(getattr(canvas, name)).decode("ascii")}
    return state


def _render(page, viewer: ImageViewer) -> np.ndarray:
    page.set_content("<!doctype html><html><body></body></html>")
    page.evaluate(RENDER, [CANVAS_JS.read_text("utf-8"), _state(viewer)])
    return _read(page, 1)


def _read(page, frames: int) -> np.ndarray:
    """RGB of the canvas after its ``frames``-th paint."""
    h, w, b64 = page.evaluate(READ, frames)
    rgba = np.frombuffer(base64.b64decode(b64), np.uint8).reshape(h, w, 4)
    assert np.all(rgba[..., 3] == 255)
    return rgba[..., :3]


def _rgb(shown: np.ndarray) -> np.ndarray:
    return shown if shown.ndim == 3 else np.repeat(shown[..., None], 3, axis=2)


def _ramp(dtype, low: float, high: float, shape=(96, 128)) -> MedImage:
    """Values from ``low`` to ``high`` (all of a small type's levels) plus noise."""
    rng = np.random.default_rng(7)
    ramp = np.linspace(low, high, shape[0] * shape[1]).reshape(shape)
    noisy = ramp + rng.normal(0, (high - low) / 50, shape)
    if np.dtype(dtype).kind in "iu":
        info = np.iinfo(dtype)
        noisy = np.clip(np.rint(noisy), info.min, info.max)
    return MedImage(noisy.astype(dtype), (0.5, 0.5))


CASES = {
    "int16 head CT, brain window, two-label overlay": "ct",
    "uint16 chest film resampled, auto window": "chest",
    "uint8, odd window": (np.uint8, 0, 255, (101.3, 57.7)),
    "int16 full range, fractional window": (np.int16, -32768, 32767, (-3.25, 20000.5)),
    "float32 MR-like, fractional window": (np.float32, -2.5, 7.5, (1.2345, 3.3)),
    "float64, goes as float32": (np.float64, 0, 1, (0.4, 0.07)),
}


def _viewer(case) -> ImageViewer:
    if case == "ct":
        ct = sample("head_ct")
        labels = np.zeros(ct.array.shape, np.uint8)
        labels[200:300, 150:260], labels[320:360, 100:140] = 1, 2
        return ImageViewer(ct, render="browser", preset="brain", overlay=labels)
    if case == "chest":
        return ImageViewer(sample("chest_xray"), render="browser", preset="auto")
    dtype, low, high, window = case
    return ImageViewer(_ramp(dtype, low, high), render="browser", window=window)


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_canvas_shows_what_python_computes(page, case):
    viewer = _viewer(case)
    assert viewer._img.kind in ("u1", "u2", "i2", "f4")
    shown = _render(page, viewer)
    want = _rgb(viewer.displayed)
    assert shown.shape == want.shape
    assert len(np.unique(want)) > 20  # not a blank or binary picture
    np.testing.assert_array_equal(shown, want)


def test_canvas_windows_slider_values_then_the_kernels(page):
    viewer = _viewer("ct")
    values = viewer._values
    _render(page, viewer)
    # As jsdlink sets them from the sliders: center, then width.
    page.evaluate("() => { window.__model.set('center', 300); }")
    page.evaluate("() => { window.__model.set('width', 1500); }")
    got = _read(page, 3)  # the first paint, then one per slider
    want = _rgb(apply_window(values, 300, 1500))
    # The overlay stays on: compare where there are no labels.
    outside = viewer._labels == 0
    np.testing.assert_array_equal(got[outside], want[outside])
    assert not np.array_equal(got[outside], _rgb(viewer.displayed)[outside])
    # A later window from the kernel (a preset) wins over the sliders'.
    viewer.preset = "lung"
    page.evaluate(
        "(w) => { window.__model.set('window', w); }", list(viewer._img.window)
    )
    got = _read(page, 4)
    assert viewer.window == preset("lung")
    np.testing.assert_array_equal(got, _rgb(viewer.displayed))
    # A slider giving the kernel's center back with float error is no move.
    frames = page.evaluate(
        """async (c) => {
            window.__model.set('center', c);
            await new Promise((done) => setTimeout(done, 100));
            const canvas = window.__canvas;
            return [Number(canvas.dataset.frame), canvas.dataset.window];
        }""",
        -600 + 2.3e-13,
    )
    assert frames == [4, "-600 1500"]


def test_canvas_shows_a_colour_image_as_the_kernel_composed_it(page):
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    viewer = ImageViewer(MedImage(rgb, (1.0, 1.0)), render="browser")
    assert viewer._img.kind == "rgb"
    np.testing.assert_array_equal(_render(page, viewer), viewer.displayed)
    viewer.window = (100, 120)  # a window on colour: composed in Python
    np.testing.assert_array_equal(_render(page, viewer), viewer.displayed)
    assert not np.array_equal(viewer.displayed, rgb)
