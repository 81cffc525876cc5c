"""The recognition panel in Voila, in Chromium: its three tabs answer the controls.

``notebooks/recognition_probe.ipynb`` shows a ``RecognitionPanel`` with its
defaults (class ``probe-panel``); its explorers carry the classes
``probe-bayes``, ``probe-classifier`` and ``probe-lesion``. Each test moves one
control as a user would, then waits for the kernel's answer: new PNG bytes
(not only a new blob URL) in the charts and maps, and new numbers in the
readouts, which must move the way the model says.

Each page is checked for tracebacks, error sentences, error elements, the
panel's own red messages and console errors, and (``page`` fixture) for
requests leaving the machine.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Error as PlaywrightError
from test_viewer_pointer import (
    READY_JS,
    SHOWN_JS,
    TIMEOUT_MS,
    _assert_no_failure,
)

pytestmark = pytest.mark.browser

VIEWPORT = {"width": 1366, "height": 768}
PANEL = ".probe-panel"
BAYES, CLASSIFIER, LESION = (
    f"{PANEL} .probe-{name}" for name in ("bayes", "classifier", "lesion")
)
IMAGES = "img.widget-image"
# Shown on failure: stderr outputs, error elements, the panels' red sentences.
ERROR_ELEMENTS = (
    "[data-mime-type='application/vnd.jupyter.stderr'], [class*='error' i], "
    "span[style*='color:#b00']"
)


def _open(page, url: str) -> None:
    page.set_viewport_size(VIEWPORT)
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    page.locator(PANEL).wait_for(state="visible")


def _assert_clean(page, errors: list[str]) -> None:
    """No traceback, error sentence, visible error element or console error."""
    _assert_no_failure(page, errors)
    shown = page.evaluate(
        """(sel) => [...document.querySelectorAll(sel)]
            .filter((el) => el.offsetParent !== null && el.textContent.trim())
            .map((el) => `${el.className}: ${el.textContent.trim()}`)""",
        ERROR_ELEMENTS,
    )
    assert not shown, f"error elements on the page: {shown}"


def _wait_for_decoded(page, images, count: int) -> None:
    """Wait until ``images`` are ``count`` visible, decoded PNGs or painted canvases."""
    images.first.wait_for(state="visible")
    page.wait_for_function(
        f"""([imgs, count]) => imgs.length === count && imgs.every({READY_JS})""",
        arg=[images.element_handles(), count],
    )


def _png(image) -> tuple[str, bytes]:
    """What ``image`` shows (``SHOWN_JS``) and its PNG: the bytes behind an <img>,
    or a canvas's pixels encoded by the browser (lossless)."""
    src, data = image.evaluate(
        f"""async (el) => {{
            const shown = ({SHOWN_JS})(el);
            const blob = el.tagName === 'CANVAS'
                ? await new Promise((done) => el.toBlob(done, 'image/png'))
                : await (await fetch(el.src)).blob();
            return [shown, [...new Uint8Array(await blob.arrayBuffer())]];
        }}"""
    )
    return src, bytes(data)


def _new_png(page, image, old: tuple[str, bytes]) -> bytes:
    """Wait until ``image`` shows a decoded PNG whose bytes differ from ``old``.

    ipywidgets shows each value as a new blob URL and revokes the previous
    one, so a new ``src`` alone proves nothing: its bytes are compared. A
    canvas is compared by its pixels, once it has painted again.
    """
    src, png = old
    while True:
        page.wait_for_function(
            f"([el, old]) => ({SHOWN_JS})(el) !== old && ({READY_JS})(el)",
            arg=[image.element_handle(), src],
        )
        try:
            src, new = _png(image)
        except PlaywrightError:  # revoked meanwhile: a newer value is shown
            continue
        if new != png:  # a canvas repainted with the same pixels is no change
            return new


def _wait_for_text_change(page, element, old: str, prop: str = "textContent"):
    page.wait_for_function(
        f"([el, old]) => el.{prop} !== old", arg=[element.element_handle(), old]
    )


def _click_track(page, slider, fraction: float) -> None:
    """Click ``slider``'s track at ``fraction`` of its length (a commit)."""
    track = slider.locator(".noUi-target")
    track.scroll_into_view_if_needed()
    box = track.bounding_box()
    page.mouse.click(box["x"] + box["width"] * fraction, box["y"] + box["height"] / 2)


def _number(pattern: str, text: str) -> float:
    match = re.search(pattern, text)
    assert match, f"no {pattern!r} in {text!r}"
    return float(match.group(1))


def _select_tab(page, title: str, explorer: str) -> None:
    page.locator(f"{PANEL} .lm-TabBar-tab", has_text=title).click()
    page.locator(explorer).wait_for(state="visible")


def test_voila_recognition_bayes_priors(page, page_errors, voila, artifacts):
    _open(page, voila.render("recognition_probe.ipynb"))
    images = page.locator(f"{BAYES} {IMAGES}")
    # density, slice, P(CSF|x), P(GM|x), P(WM|x), classes by intensity, by context
    names = ("density", "slice", "CSF", "GM", "WM", "intensity", "context")
    _wait_for_decoded(page, images, len(names))
    _assert_clean(page, page_errors)
    page.locator(PANEL).screenshot(path=str(artifacts / "voila_recognition_bayes.png"))
    shown = {name: images.nth(i) for i, name in enumerate(names)}
    before = {name: _png(image) for name, image in shown.items()}

    sliders = {
        name: page.locator(f"{BAYES} .widget-slider", has_text=f"P({name})")
        for name in ("CSF", "GM", "WM")
    }
    readouts = {name: s.locator(".widget-readout") for name, s in sliders.items()}
    priors0 = {name: float(r.inner_text()) for name, r in readouts.items()}
    assert priors0["CSF"] < 0.05, priors0  # the labelled voxels' frequency
    text = page.locator(f"{BAYES} .widget-html", has_text="Decision boundaries")
    text0 = text.text_content()
    cut0 = _number(r"CSF \| GM at (-?[\d.]+) a\.u\.", text0)

    _click_track(page, sliders["CSF"], 0.3)  # P(CSF) near 0.3
    _wait_for_text_change(page, text, text0)
    text1 = text.text_content()
    cut1 = _number(r"CSF \| GM at (-?[\d.]+) a\.u\.", text1)
    priors1 = {name: float(r.inner_text()) for name, r in readouts.items()}
    assert 0.2 < priors1["CSF"] < 0.4, priors1
    assert abs(sum(priors1.values()) - 1) <= 0.01, priors1
    # The others share the rest in their old proportion.
    ratio0, ratio1 = priors0["GM"] / priors0["WM"], priors1["GM"] / priors1["WM"]
    assert abs(ratio1 - ratio0) < 0.02 * ratio0, (priors0, priors1)
    # A likelier CSF wins more of the intensities between CSF and GM.
    assert cut1 > cut0, (text0, text1)

    # The chart, the posterior maps and both class maps follow the prior.
    for name in ("density", "CSF", "GM", "WM", "intensity", "context"):
        _new_png(page, shown[name], before[name])
    assert _png(shown["slice"])[1] == before["slice"][1], "a prior moved the slice"
    page.locator(PANEL).screenshot(
        path=str(artifacts / "voila_recognition_bayes_prior.png")
    )
    _assert_clean(page, page_errors)


def test_voila_recognition_lesion_contrast(page, page_errors, voila, artifacts):
    _open(page, voila.render("recognition_probe.ipynb"))
    _select_tab(page, "Lesion ROC", LESION)
    images = page.locator(f"{LESION} {IMAGES}")
    _wait_for_decoded(page, images, 2)  # a lesion crop, the ROC chart
    _assert_clean(page, page_errors)
    roc = images.nth(1)
    old = _png(roc)
    slider = page.locator(f"{LESION} .widget-slider", has_text="contrast (a.u.)")
    contrast = slider.locator(".widget-readout")
    contrast0 = float(contrast.inner_text())
    text = page.locator(f"{LESION} .widget-html", has_text="AUC")
    text0 = text.text_content()
    auc0 = _number(r"AUC (\d\.\d{3})", text0)

    _click_track(page, slider, 0.7)  # -100 to 100 a.u.: about 40 a.u.
    _wait_for_text_change(page, text, text0)
    contrast1 = float(contrast.inner_text())
    text1 = text.text_content()
    auc1 = _number(r"AUC (\d\.\d{3})", text1)
    assert 30 < contrast1 < 50 and contrast1 > contrast0, (contrast0, contrast1)
    assert f"lesion of {contrast1:g} a.u." in text1, text1
    assert auc1 > auc0, f"AUC {auc0} at {contrast0} a.u., {auc1} at {contrast1} a.u."
    _new_png(page, roc, old)
    page.locator(PANEL).screenshot(path=str(artifacts / "voila_recognition_lesion.png"))
    _assert_clean(page, page_errors)


def test_voila_recognition_classifier_choice(page, page_errors, voila, artifacts):
    _open(page, voila.render("recognition_probe.ipynb"))
    _select_tab(page, "Classifier", CLASSIFIER)
    images = page.locator(f"{CLASSIFIER} {IMAGES}")
    _wait_for_decoded(page, images, 4)  # confusion, ROC, the case's patch and bars
    _assert_clean(page, page_errors)
    confusion = images.first
    old = _png(confusion)
    scores = page.locator(f"{CLASSIFIER} .widget-html", has_text="accuracy")
    html0 = scores.inner_html()
    accuracy0 = _number(r"accuracy <b>(\d\.\d{3})</b>", html0)
    kind = page.locator(f"{CLASSIFIER} .widget-dropdown", has_text="kind")
    select = kind.locator("select")
    assert select.input_value() == "forest"

    select.select_option("bayes")
    _wait_for_text_change(page, scores, html0, prop="innerHTML")
    accuracy1 = _number(r"accuracy <b>(\d\.\d{3})</b>", scores.inner_html())
    assert accuracy1 != accuracy0
    assert 1 / 8 < accuracy1 < accuracy0, (accuracy0, accuracy1)  # 8 classes
    assert select.input_value() == "bayes"
    _new_png(page, confusion, old)
    page.locator(PANEL).screenshot(
        path=str(artifacts / "voila_recognition_classifier.png")
    )
    _assert_clean(page, page_errors)
