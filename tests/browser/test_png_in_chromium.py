"""The display encoder's PNGs, rendered by a real Chromium.

Each image is windowed and encoded by :mod:`medimg_lab.display`, put into a
page as a ``data:image/png;base64`` URL at 1:1 (no server involved), and its
pixels are read back in the page through a canvas. Grey levels, colours and
sizes must come back exactly as numpy has them.
"""

from __future__ import annotations

import base64

import cv2
import numpy as np
import pytest

from medimg_lab.data import sample
from medimg_lab.display import apply_window, encode_png, overlay, preset, to_display

pytestmark = pytest.mark.browser

# Reads the <img id="img"> back through a canvas: (width, height, RGBA base64).
READ_PIXELS = """
async () => {
  const img = document.getElementById("img");
  await img.decode();
  const canvas = document.createElement("canvas");
  canvas.width = img.naturalWidth;
  canvas.height = img.naturalHeight;
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(img, 0, 0);
  const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  let binary = "";
  for (let i = 0; i < data.length; i += 0x8000) {
    binary += String.fromCharCode.apply(null, data.subarray(i, i + 0x8000));
  }
  return {
    width: img.naturalWidth,
    height: img.naturalHeight,
    complete: img.complete,
    rgba: btoa(binary),
  };
}
"""


def _html(png: bytes) -> str:
    """A page showing the PNG at 1:1, pixel for pixel, in the top left corner."""
    height, width = cv2.imdecode(
        np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED
    ).shape[:2]
    src = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><style>
  html, body {{ margin: 0; padding: 0; background: #000; }}
  img {{ display: block; image-rendering: pixelated; }}
</style></head>
<body><img id="img" alt="" width="{width}" height="{height}"
  style="width: {width}px; height: {height}px" src="{src}"></body></html>"""


def _show(page, png: bytes) -> tuple[int, int, np.ndarray]:
    """Render the PNG; return its natural size and its (H, W, 4) RGBA pixels."""
    page.set_content(_html(png), wait_until="load")
    got = page.evaluate(READ_PIXELS)
    assert got["complete"]
    width, height = got["width"], got["height"]
    rgba = np.frombuffer(base64.b64decode(got["rgba"]), np.uint8)
    return width, height, rgba.reshape(height, width, 4)


def _screenshot(page, path) -> np.ndarray:
    """Screenshot the <img> element to ``path``; return its RGB pixels."""
    png = page.locator("#img").screenshot(path=str(path), animations="disabled")
    bgr = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _rgb(grey: np.ndarray) -> np.ndarray:
    return np.repeat(grey[..., np.newaxis], 3, axis=-1)


def test_windowed_head_ct_pixels_survive_the_browser(page, artifacts):
    ct = sample("head_ct")
    u8 = apply_window(ct.array, *preset("brain"))
    assert u8.shape == (512, 512) and u8.dtype == np.uint8
    assert len(np.unique(u8)) > 50  # a real image, not a blank one

    width, height, rgba = _show(page, encode_png(u8))

    assert (width, height) == (512, 512)
    np.testing.assert_array_equal(rgba[..., 0], u8)  # grey: R = G = B
    np.testing.assert_array_equal(rgba[..., 1], u8)
    np.testing.assert_array_equal(rgba[..., 2], u8)
    assert np.all(rgba[..., 3] == 255)
    # What is on the screen, at 1:1 and device scale 1, is the same image.
    shown = _screenshot(page, artifacts / "head_ct_brain_window.png")
    np.testing.assert_array_equal(shown, _rgb(u8))


def test_downscaled_chest_xray_has_the_fitted_size(page, artifacts):
    xray = sample("chest_xray")
    u8 = to_display(xray)
    rows, cols = u8.shape
    assert (cols, rows) == (1841, 1955)  # the 1955 x 1841 radiograph, portrait
    png = encode_png(u8, max_size=256)

    width, height, rgba = _show(page, png)

    assert max(width, height) == 256
    assert (width, height) == (round(cols * 256 / rows), 256) == (241, 256)
    assert abs(width / height - cols / rows) <= 1 / 256  # aspect kept
    decoded = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(rgba[..., :3], _rgb(decoded))
    shown = _screenshot(page, artifacts / "chest_xray_max256.png")
    assert shown.shape[:2] == (256, 241)


def test_overlay_colours_survive_the_browser(page, artifacts):
    ct = sample("head_ct")
    u8 = apply_window(ct.array, *preset("brain"))
    mask = np.zeros(u8.shape, dtype=bool)
    mask[200:300, 150:250] = True
    rgb = overlay(u8, mask, alpha=0.5)
    assert rgb.shape == (512, 512, 3) and rgb.dtype == np.uint8

    width, height, rgba = _show(page, encode_png(rgb))

    assert (width, height) == (512, 512)
    y, x = 250, 200  # inside the mask: tinted, so R, G and B differ
    r, g, b = (int(v) for v in rgb[y, x])
    assert len({r, g, b}) == 3, "the probe pixel must be coloured"
    assert tuple(int(v) for v in rgba[y, x, :3]) == (r, g, b)  # RGB, not BGR
    assert tuple(int(v) for v in rgba[10, 10, :3]) == tuple(int(v) for v in rgb[10, 10])
    np.testing.assert_array_equal(rgba[..., :3], rgb)  # every pixel, tolerance 0
    shown = _screenshot(page, artifacts / "head_ct_overlay.png")
    np.testing.assert_array_equal(shown, rgb)
