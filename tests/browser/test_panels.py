"""The stage panels in Voila, in Chromium: they render and answer the pointer.

``notebooks/processing_probe.ipynb`` shows the head CT in a ``ProcessingPanel``
(Gaussian, two 400 px views); ``notebooks/segmentation_probe.ipynb`` in a
``SegmentationPanel`` thresholded with the "bone" preset. Each panel carries
the class ``probe-panel``. The page is 1366 x 768, a common laptop screen;
screenshots of the whole panel go to ``artifacts/`` for a look at the layout.

Each page is checked for tracebacks, error sentences and console errors, and
(``page`` fixture) for requests leaving the machine.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from test_viewer_pointer import (
    TIMEOUT_MS,
    _assert_no_failure,
    _painted,
    wait_for_pointer_at,
)

pytestmark = pytest.mark.browser

VIEWPORT = {"width": 1366, "height": 768}
PANEL = ".probe-panel"
# The processing panel's last child holds its views: before and after side by
# side, or the one swipe image.
VIEW_IMAGES = f"{PANEL} > :last-child img.widget-image"
SEG_IMAGE = f"{PANEL} img.widget-image"  # the first: the viewer's (map hidden)
# Image pixels (row, cols) of a stroke through air, far from any bone.
STROKE_ROW, STROKE_COLS = 60, (236, 276)


def _open(page, url: str) -> None:
    page.set_viewport_size(VIEWPORT)
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    page.locator(PANEL).wait_for(state="visible")


def _wait_for_images(page, selector: str, count: int, width: int) -> None:
    """Wait until ``count`` visible images match, each a decoded PNG ``width`` wide."""
    page.wait_for_function(
        """([sel, count, width]) => {
            const imgs = [...document.querySelectorAll(sel)]
                .filter((img) => img.offsetParent !== null);
            return imgs.length === count && imgs.every(
                (img) => img.src && img.complete && img.naturalWidth === width);
        }""",
        arg=[selector, count, width],
    )


def _wait_for_new_src(page, image, old: str) -> None:
    """Wait until ``image`` shows a PNG other than ``old``, decoded."""
    page.wait_for_function(
        "([img, old]) => img.src !== old && img.complete && img.naturalWidth > 0",
        arg=[image.element_handle(), old],
    )


def _pixels(image, path) -> np.ndarray:
    """The screen pixels of ``image`` (BGR), also saved to ``path``."""
    image.scroll_into_view_if_needed()
    box = image.bounding_box()
    # Chromium paints the image snapped to whole pixels (see _painted); a clip
    # of the box itself may take one row or column of the neighbours more.
    x, y = _painted(image.page, image)
    clip = {
        "x": x,
        "y": y,
        "width": round(box["width"]),
        "height": round(box["height"]),
    }
    png = image.page.screenshot(path=str(path), clip=clip, animations="disabled")
    return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)


def _shoot_panel(page, path) -> None:
    """Save the whole panel, laid out at the 1366 px wide page, for a look."""
    page.locator(PANEL).screenshot(path=str(path), animations="disabled")


def _coloured(bgr: np.ndarray) -> np.ndarray:
    """Where a pixel is not grey (red differs from green)."""
    return bgr[..., 2].astype(int) != bgr[..., 1].astype(int)


def test_voila_processing_panel_slider_and_swipe(page, page_errors, voila, artifacts):
    _open(page, voila.render("processing_probe.ipynb"))
    _wait_for_images(page, VIEW_IMAGES, 2, 400)
    _assert_no_failure(page, page_errors)
    _shoot_panel(page, artifacts / "voila_processing.png")
    before_img, after_img = (page.locator(VIEW_IMAGES).nth(i) for i in (0, 1))
    before0 = _pixels(before_img, artifacts / "voila_processing_before0.png")
    after0 = _pixels(after_img, artifacts / "voila_processing_after0.png")
    assert before0.shape[:2] == after0.shape[:2] == (400, 400)
    assert before0.std() > 20 and after0.std() > 20  # a CT, not a blank box

    # Click the sigma slider's track at a fifth of its length: about 10 mm.
    slider = page.locator(".widget-slider", has_text="sigma (mm)")
    readout = slider.locator(".widget-readout")
    assert readout.inner_text().strip() == "1.00"
    track = slider.locator(".noUi-target")
    track.scroll_into_view_if_needed()
    box = track.bounding_box()
    src = after_img.get_attribute("src")
    page.mouse.click(box["x"] + box["width"] / 5, box["y"] + box["height"] / 2)
    page.wait_for_function(
        "(el) => el.textContent.trim() !== '1.00'", arg=readout.element_handle()
    )
    sigma = float(readout.inner_text())
    assert 5 < sigma < 15, sigma
    _wait_for_new_src(page, after_img, src)

    before1 = _pixels(before_img, artifacts / "voila_processing_before1.png")
    after1 = _pixels(after_img, artifacts / "voila_processing_after1.png")
    assert np.array_equal(before1, before0), "the BEFORE view changed"
    changed = np.count_nonzero(np.any(after1 != after0, axis=-1))
    assert changed > 10_000, f"only {changed} pixels of the AFTER view changed"
    # More blur: less detail (the mean absolute Laplacian falls).
    lap0, lap1 = (
        np.abs(cv2.Laplacian(cv2.cvtColor(a, cv2.COLOR_BGR2GRAY), cv2.CV_32F)).mean()
        for a in (after0, after1)
    )
    assert lap1 < lap0 / 2, (lap0, lap1)
    _shoot_panel(page, artifacts / "voila_processing_sigma.png")

    # Swipe mode: one image, left of the line before, right after.
    page.locator(f"{PANEL} .widget-toggle-button", has_text="swipe").click()
    _wait_for_images(page, VIEW_IMAGES, 1, 400)
    swiped = _pixels(
        page.locator(VIEW_IMAGES).first, artifacts / "voila_processing_swipe.png"
    )
    assert swiped.shape[:2] == (400, 400)
    _shoot_panel(page, artifacts / "voila_processing_swipe_page.png")
    _assert_no_failure(page, page_errors)


def test_voila_segmentation_panel_overlay_and_brush(
    page, page_errors, voila, artifacts
):
    _open(page, voila.render("segmentation_probe.ipynb"))
    _wait_for_images(page, SEG_IMAGE, 1, 512)
    table = page.locator(f"{PANEL} table.dataframe")
    table.wait_for(state="visible")
    assert "area (mm²)" in table.inner_text()
    _assert_no_failure(page, page_errors)
    _shoot_panel(page, artifacts / "voila_segmentation.png")

    image = page.locator(SEG_IMAGE).first
    shown0 = _pixels(image, artifacts / "voila_segmentation_overlay.png")
    assert np.count_nonzero(_coloured(shown0)) > 1_000, "no overlay on the image"

    page.locator(f"{PANEL} .widget-toggle-button", has_text="brush").click()
    page.locator(
        f"{PANEL} .widget-toggle-button.mod-active", has_text="brush"
    ).wait_for()
    # The brush starts on a foreground class, not "1: background", and no
    # red message stands on the page.
    chosen = page.locator(PANEL).get_by_label("class", exact=True)
    shown = chosen.evaluate("(s) => s.selectedOptions[0].textContent")
    assert shown.replace("\xa0", " ") == "2: foreground", shown  # spaces as nbsp
    assert page.locator(f"{PANEL} span[style*='color:#b00']").count() == 0

    # Drag with the left button through air, ~40 px along row STROKE_ROW.
    image.evaluate("(img) => img.scrollIntoView({block: 'center'})")
    box = image.bounding_box()
    scale = box["width"] / 512
    y = box["y"] + (STROKE_ROW + 0.5) * scale
    x0, x1 = (box["x"] + (c + 0.5) * scale for c in STROKE_COLS)
    src = image.get_attribute("src")
    page.mouse.move(x0, y)
    page.mouse.down()
    page.mouse.move(x1, y, steps=20)
    wait_for_pointer_at(page, STROKE_ROW, STROKE_COLS[1])  # the last move arrived
    page.mouse.up()
    page.mouse.move(box["x"] + box["width"] + 50, y)  # off the image
    _wait_for_new_src(page, image, src)

    shown1 = _pixels(image, artifacts / "voila_segmentation_scribble.png")
    new = _coloured(shown1) & ~_coloured(shown0)
    rows, cols = np.nonzero(new)
    assert rows.size > 100, f"only {rows.size} new coloured pixels"
    # All of them along the stroke, within the brush (2 mm, about 4 px).
    r0 = (STROKE_ROW + 0.5) * scale
    c0, c1 = ((c + 0.5) * scale for c in STROKE_COLS)
    assert np.all(np.abs(rows - r0) <= 8 * scale), (rows.min(), rows.max())
    assert cols.min() >= c0 - 8 * scale and cols.max() <= c1 + 8 * scale
    assert cols.max() - cols.min() >= 0.8 * (c1 - c0), (cols.min(), cols.max())
    assert "area (mm²)" in table.inner_text()
    _shoot_panel(page, artifacts / "voila_segmentation_brush.png")
    page.set_viewport_size({"width": 1920, "height": 1080})  # and a large screen
    page.screenshot(path=str(artifacts / "voila_segmentation_brush_1920x1080.png"))
    page.set_viewport_size(VIEWPORT)
    page.screenshot(path=str(artifacts / "voila_segmentation_brush_1366x768.png"))
    _assert_no_failure(page, page_errors)
