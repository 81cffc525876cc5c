"""The compare dashboard in Voila, in Chromium: issue 8's checks of a clinician's page.

One Voila, started once for this module the way ``make dashboard`` starts it,
serves ``notebooks/dashboards/``; each test opens ``compare.ipynb`` (a
``CompareDashboard`` of the head CT as A and, as B, the same CT moved 4 mm
down, 3 mm right and turned 5°: the demo pair) and uses it as a user would:
the Register button, the nudge buttons, the view buttons and sliders, the
upload button's file chooser and the export links. Each answer of the kernel
is waited for (new PNG bytes, new text), never slept for.

Each test ends clean: no traceback, no failed-cell sentence, no red message
(unless the test caused it and cleared it), no console error and (``page``
fixture) no request leaving the machine.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from test_recognition_in_voila import (
    IMAGES,
    _click_track,
    _new_png,
    _number,
    _png,
    _wait_for_decoded,
    _wait_for_text_change,
)
from test_viewer_dashboard_in_voila import (
    GREEN,
    HEAD_CT,
    RED,
    VIEWPORT,
    _button,
    _clean,
    _download,
    _pixels,
)
from test_viewer_pointer import TIMEOUT_MS

import medimg_lab

pytestmark = pytest.mark.browser

NOTEBOOK = "compare.ipynb"
NCC = r"NCC <b>(-?\d\.\d{3})</b>"
OPEN_A = HEAD_CT
OPEN_B = HEAD_CT.replace("head_ct", "head_ct moved (demo)")


@pytest.fixture(scope="module")
def dashboard_url(dashboard_site) -> str:
    """URL of ``compare.ipynb`` on the session's ``make dashboard`` Voila."""
    return dashboard_site + "voila/render/" + NOTEBOOK


# ------------------------------------------------------------------ helpers
def _open(page, url: str, viewport: dict = VIEWPORT):
    """The dashboard, its demo pair shown; the viewer's <img>."""
    page.set_viewport_size(viewport)
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    image = page.locator(IMAGES)
    _wait_for_decoded(page, image, 1)
    _line(page, OPEN_A).wait_for()
    _line(page, OPEN_B).wait_for()
    _quality(page).wait_for()
    return image


def _line(page, text: str):
    """The HTML line whose whole text is ``text``."""
    exact = re.compile(rf"^\s*{re.escape(text)}\s*$")
    return page.locator(".widget-html", has_text=exact)


def _quality(page):
    """The explorer's line "On the overlap: NCC ..., MI ... nats"."""
    return page.locator(".widget-html", has_text=re.compile(r"^\s*On the overlap: NCC"))


def _ncc(page) -> tuple[str, float]:
    html = _quality(page).inner_html()
    return html, _number(NCC, html)


def _upload(page, which: int, path) -> None:
    """Upload ``path`` with A's (0) or B's (1) upload button's file chooser."""
    with page.expect_file_chooser() as chooser:
        page.locator("button.widget-upload").nth(which).click()
    chooser.value.set_files(str(path))


def _toggle(page, label: str):
    return page.locator(".widget-toggle-button", has_text=re.compile(rf"^{label}$"))


def _register(page) -> None:
    """Click Register; wait until the found transform is shown."""
    found = page.locator(".widget-html", has_text="rotation").filter(
        has_text="(rows, columns)"
    )
    _button(page, "Register").click()
    found.wait_for(state="visible")
    page.locator(GREEN, has_text="Registered with ecc").wait_for()


# -------------------------------------------------------------------- tests
def test_compare_dashboard_loads_clean(page, page_errors, dashboard_url):
    image = _open(page, dashboard_url)
    _, png = _png(image)
    assert _pixels(png).shape[:2] == (512, 512)
    for text in ("A: reference", "B: compared with A", "Register B onto A", "View"):
        assert page.get_by_text(text, exact=True).first.is_visible(), text
    demo = page.get_by_text(re.compile(r"^B is A moved by 4\.0 mm down, 3\.0 mm right"))
    assert demo.is_visible() and "a demo pair" in demo.inner_text()
    assert page.locator("button.widget-upload").count() == 2
    for label in ("blend", "checkerboard", "swipe", "difference"):
        assert _toggle(page, label).is_visible(), label
    assert _button(page, "B on A (NIfTI)").is_visible()
    _clean(page, page_errors)


def test_compare_dashboard_register_aligns(page, page_errors, dashboard_url):
    image = _open(page, dashboard_url)
    before = _png(image)
    html0, ncc0 = _ncc(page)
    assert 0.7 < ncc0 < 0.95, html0  # the demo motion, not undone
    transform = page.locator(".widget-html", has_text="B relative to A")
    assert "+0.00 mm" in transform.inner_text()
    _register(page)
    _wait_for_text_change(page, _quality(page), html0, prop="innerHTML")
    html1, ncc1 = _ncc(page)
    assert ncc1 > 0.99 > ncc0, (html0, html1)
    text = transform.inner_text()
    match = re.search(
        r"shift ([+-][\d.]+) mm down, ([+-][\d.]+) mm right, "
        r"rotation ([+-][\d.]+)°",
        text,
    )
    assert match, text
    dy, dx, turn = (float(v) for v in match.groups())
    assert (dy, dx, turn) == pytest.approx((4.0, 3.0, 5.0), abs=0.05), text
    after = _new_png(page, image, before)
    assert np.count_nonzero(_pixels(after) != _pixels(before[1])) > 1000
    _clean(page, page_errors)


def test_compare_dashboard_nudge_blend_and_swipe_change_the_image(
    page, page_errors, dashboard_url
):
    image = _open(page, dashboard_url)
    transform = page.locator(".widget-html", has_text="B relative to A")
    shown = _png(image)

    # A nudge: +0.5 mm down, the first "+0.5" button.
    old = transform.inner_text()
    _button(page, "+0.5").first.click()
    _wait_for_text_change(page, transform, old)
    assert "+0.50 mm</b> down" in transform.inner_html()
    nudged = _new_png(page, image, shown)
    assert np.count_nonzero(_pixels(nudged) != _pixels(shown[1])) > 1000

    # The blend's weight slider: a click on its track.
    shown = (image.get_attribute("src"), nudged)
    weight = page.locator(".widget-slider", has_text="weight of A")
    _click_track(page, weight, 0.9)
    blended = _new_png(page, image, shown)
    assert np.count_nonzero(_pixels(blended) != _pixels(nudged)) > 1000

    # The swipe view, then its line moved.
    shown = (image.get_attribute("src"), blended)
    _toggle(page, "swipe").click()
    swiped = _new_png(page, image, shown)
    assert np.count_nonzero(_pixels(swiped) != _pixels(blended)) > 1000
    shown = (image.get_attribute("src"), swiped)
    line = page.locator(".widget-slider", has_text="swipe line")
    _click_track(page, line, 0.15)
    moved = _new_png(page, image, shown)
    assert np.count_nonzero(_pixels(moved) != _pixels(swiped)) > 1000
    _clean(page, page_errors)


def test_compare_dashboard_garbage_upload_is_a_sentence(
    page, page_errors, dashboard_url, tmp_path
):
    _open(page, dashboard_url)
    noise = tmp_path / "noise.dcm"
    noise.write_bytes(np.random.default_rng(8).bytes(20_000))
    _upload(page, 1, noise)
    message = page.locator(RED)
    message.wait_for(state="visible")
    sentence = message.inner_text().strip()
    assert sentence.startswith("noise.dcm: ") and sentence.endswith("."), sentence
    assert "Traceback" not in page.locator("body").inner_text()
    assert _line(page, OPEN_B).is_visible()  # B kept

    # The page still works: Register aligns and the sentence goes.
    html0, _ = _ncc(page)
    _register(page)
    _wait_for_text_change(page, _quality(page), html0, prop="innerHTML")
    assert _ncc(page)[1] > 0.99
    message.wait_for(state="detached")
    _clean(page, page_errors)


def test_compare_dashboard_nifti_export_loads_back(
    page, page_errors, dashboard_url, tmp_path
):
    _open(page, dashboard_url)
    _register(page)
    _button(page, "B on A (NIfTI)").click()
    link = page.locator("a[download='B_on_A.nii.gz']")
    link.wait_for()
    page.locator(GREEN, has_text="ready").wait_for()
    path = _download(page, link, tmp_path)
    loaded = medimg_lab.load(path)
    ct = medimg_lab.data.sample("head_ct")
    assert loaded.array.shape == ct.array.shape
    assert loaded.spacing == pytest.approx(ct.spacing)
    inner = (slice(100, 400), slice(100, 400))
    r = np.corrcoef(loaded.array[inner].ravel(), ct.array[inner].ravel())[0, 1]
    assert r > 0.99, r  # B registered onto A
    _clean(page, page_errors)


def test_compare_dashboard_screenshot(page, page_errors, dashboard_url, artifacts):
    _open(page, dashboard_url)
    _register(page)
    page.evaluate("() => document.fonts.ready")
    path = artifacts / "compare_dashboard.png"
    page.screenshot(path=str(path), full_page=True)
    assert _pixels(path.read_bytes()).shape[1] == VIEWPORT["width"]
    scroll = page.evaluate("() => document.documentElement.scrollWidth")
    assert scroll <= VIEWPORT["width"], f"horizontal scrollbar: {scroll} px wide"
    _clean(page, page_errors)
