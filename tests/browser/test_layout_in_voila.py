"""The three dashboards fit a laptop screen, in Voila, in Chromium (issue 16, item 3).

Each dashboard is opened, another sample is opened with the page's own
dropdown, and then at each size of :data:`SIZES` (1366 x 768, the narrowest
realistic laptop screen, taken as the viewport; 1366 x 650, what its browser
leaves of it; 1920 x 1080):

- nothing scrolls sideways: not the page (``scrollWidth <= innerWidth``),
  nor any element that scrolls itself (``overflow`` auto or scroll);
- each named control and result lies inside the viewport horizontally, and
  once scrolled to (``scrollIntoView``) the image is still on screen, at
  least :data:`SHOWN` of it: choosing a view or an export keeps the image in
  view;
- no label, button or readout text is cut (its ``scrollWidth`` not above
  its ``clientWidth``) and every dropdown is wide enough for its longest
  option.

A screenshot of each goes to ``artifacts/layout_<dashboard>_<width>.png``
(``_1366x650.png`` for the short one), and one scrolled to the last control
(an export) to ``..._scrolled.png``.
Every wait is on a condition of the page, never a sleep.
"""

from __future__ import annotations

import re

import pytest
from test_recognition_in_voila import _wait_for_decoded
from test_viewer_dashboard_in_voila import _button, _clean
from test_viewer_pointer import NATURAL_JS, READY_JS, TIMEOUT_MS

pytestmark = pytest.mark.browser

#: The issue's laptop screen as the viewport, what its browser leaves of it
#: (about 118 px go to tabs and toolbars), and a desktop screen.
SIZES = [(1366, 768), (1366, 650), (1920, 1080)]
#: The share of the image that must stay on screen while a control is used.
SHOWN = 0.8
CANVAS = "canvas.medimg-canvas"
IMG = "img.widget-image"

# Every element that scrolls sideways although it may not, and every text cut.
PROBLEMS_JS = """() => {
    const out = [];
    const doc = document.documentElement;
    if (doc.scrollWidth > innerWidth) {
        out.push(`the page scrolls sideways: ${doc.scrollWidth} > ${innerWidth} px`);
    }
    const shown = (el) => el.offsetParent !== null && el.getClientRects().length > 0
        && el.clientWidth > 0;
    const name = (el) => `${el.tagName.toLowerCase()}.${[...el.classList].join('.')}`
        + ` "${(el.innerText || el.value || '').trim().slice(0, 60)}"`;
    for (const el of document.querySelectorAll('body *')) {
        if (!shown(el)) continue;
        const style = getComputedStyle(el);
        if (['auto', 'scroll'].includes(style.overflowX)
                && el.scrollWidth > el.clientWidth + 1) {
            const [w, c] = [el.scrollWidth, el.clientWidth];
            out.push(`scrolls sideways: ${name(el)} ${w} > ${c}`);
        }
    }
    const texts = document.querySelectorAll([
        '.widget-label', '.widget-label-basic', '.widget-readout',
        '.widget-inline-hbox > label', 'button', '.widget-html-content',
        '.lm-TabBar-tabLabel', '.jupyter-widget-Collapse-header',
    ].join(', '));
    for (const el of texts) {
        if (!shown(el) || !el.textContent.trim()) continue;
        if (el.scrollWidth > el.clientWidth + 1) {
            out.push(`text cut: ${name(el)} ${el.scrollWidth} > ${el.clientWidth}`);
        }
        const box = el.getBoundingClientRect();
        if (box.left < -0.5 || box.right > innerWidth + 0.5) {
            const where = [box.left, box.right].map(Math.round);
            out.push(`outside the page sideways: ${name(el)} at ${where}`);
        }
    }
    const ruler = document.createElement('span');
    ruler.style.cssText = 'position:absolute;visibility:hidden;white-space:pre';
    document.body.appendChild(ruler);
    for (const select of document.querySelectorAll('select')) {
        if (!shown(select)) continue;
        const style = getComputedStyle(select);
        ruler.style.font = style.font;
        let widest = 0, longest = '';
        for (const option of select.options) {
            ruler.textContent = option.text;
            if (ruler.offsetWidth > widest) {
                [widest, longest] = [ruler.offsetWidth, option.text];
            }
        }
        // the text's room: the box less its padding (the right one holds the arrow)
        const room = select.clientWidth - parseFloat(style.paddingLeft)
            - parseFloat(style.paddingRight);
        if (widest > room + 1) {
            out.push(`option cut: select "${longest}" needs ${widest} px, has ${room}`);
        }
    }
    ruler.remove();
    return out;
}"""

# How much of ``el`` is inside the viewport, 0 to 1; and whether it lies
# inside horizontally.
INSIDE_JS = """(el) => {
    const r = el.getBoundingClientRect();
    const w = Math.max(0, Math.min(r.right, innerWidth) - Math.max(r.left, 0));
    const h = Math.max(0, Math.min(r.bottom, innerHeight) - Math.max(r.top, 0));
    return {
        share: r.width * r.height > 0 ? (w * h) / (r.width * r.height) : 0,
        horizontal: r.left >= -0.5 && r.right <= innerWidth + 0.5 && r.width > 0,
        vertical: r.top >= -1 && r.bottom <= innerHeight + 1 && r.height > 0,
        rect: [r.left, r.top, r.right, r.bottom].map(Math.round),
    };
}"""


# Back to the top: of the window, and of Voila's scroller (#rendered_cells).
TOP_JS = """() => [document.scrollingElement, document.getElementById('rendered_cells')]
    .forEach((el) => el && el.scrollTo(0, 0))"""


@pytest.fixture(scope="module")
def site(dashboard_site) -> str:
    return dashboard_site + "voila/render/"


def _html(page, pattern: str):
    return page.locator(".widget-html", has_text=re.compile(pattern)).first


def _control(page, kind: str, label: str):
    return page.locator(f".widget-{kind}", has_text=label).first


def _toggle(page, label: str):
    return page.locator(".widget-toggle-button", has_text=re.compile(rf"^{label}$"))


def _open(page, url: str, image: str):
    width, height = SIZES[0]
    page.set_viewport_size({"width": width, "height": height})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    shown = page.locator(image)
    _wait_for_decoded(page, shown, 1)
    return shown


def _switch(page, dropdown, option: str, opened: str) -> None:
    """Open the sample ``option`` with ``dropdown``; wait for its "Open:" line."""
    dropdown.locator("select").select_option(label=option)
    _html(page, rf"^\s*Open: {re.escape(opened)} \(").wait_for()


def _assert_fits(page, image, controls: dict, artifacts, name: str) -> None:
    """At each of :data:`SIZES`: no sideways scroll, no cut text, and each
    control in view beside the image; a screenshot of each."""
    problems = []
    for width, height in SIZES:
        page.set_viewport_size({"width": width, "height": height})
        stem = f"layout_{name}_{width}" + ("" if height >= 768 else f"x{height}")
        problems += [f"{width}x{height}: {p}" for p in _problems(page, image, controls)]
        # as left: scrolled to the last control (an export), the image beside it
        page.screenshot(path=str(artifacts / f"{stem}_scrolled.png"))
        page.evaluate(TOP_JS)
        page.screenshot(path=str(artifacts / f"{stem}.png"))
    assert not problems, "\n".join(problems)


def _problems(page, image, controls: dict) -> list[str]:
    """What does not fit at the viewport's present size.

    Each control is scrolled to from the top of the page; on a viewport
    lower than 768 px (the title above the image takes its share) from where
    the user has first scrolled the image into view.
    """
    page.evaluate("() => document.fonts.ready")
    page.evaluate(TOP_JS)
    problems = page.evaluate(PROBLEMS_JS)
    image_first = page.viewport_size["height"] < 768
    for what, locator in controls.items():
        locator.wait_for(state="visible")
        handle = locator.element_handle()
        place = handle.evaluate(INSIDE_JS)
        if not place["horizontal"]:
            problems.append(f"{what} is outside the viewport sideways: {place['rect']}")
        page.evaluate(TOP_JS)
        if image_first:
            image.evaluate("(el) => el.scrollIntoView({block: 'nearest'})")
        handle.evaluate("(el) => el.scrollIntoView({block: 'nearest'})")
        place = handle.evaluate(INSIDE_JS)
        seen = image.evaluate(INSIDE_JS)
        if not place["vertical"]:
            problems.append(f"{what} is not in view when scrolled to: {place['rect']}")
        if seen["share"] < SHOWN:
            problems.append(
                f"scrolled to {what}, the image is {seen['share']:.0%} on screen "
                f"(image at {seen['rect']}, {what} at {place['rect']})"
            )
    return problems


# -------------------------------------------------------------------- tests
def test_viewer_dashboard_fits(page, page_errors, site, artifacts):
    image = _open(page, site + "viewer.ipynb", CANVAS)
    _html(page, r"^\s*Open: head_ct \(").wait_for()
    _switch(
        page, _control(page, "dropdown", "or sample"), "brain_mri (MR)", "brain_mri"
    )
    page.wait_for_function(
        f"(el) => ({READY_JS})(el) && ({NATURAL_JS})(el)[0] === 233",
        arg=image.element_handle(),
    )
    # An ROI by two clicks, so that its table (mean, SD, min, max, area) shows.
    _toggle(page, "ROI").click()
    page.get_by_text("ROI: click one corner of the rectangle.").wait_for()
    image.scroll_into_view_if_needed()
    box = image.bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.3)
    page.get_by_text("ROI: click the opposite corner.").wait_for()
    page.mouse.click(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.6)
    table = page.locator(".widget-html table", has_text="area (mm²)")
    table.wait_for()
    controls = {
        "upload": page.locator("button.widget-upload"),
        "sample": _control(page, "dropdown", "or sample"),
        "preset": _control(page, "dropdown", "preset"),
        "window center": _control(page, "slider", "center"),
        "window width": _control(page, "slider", "width"),
        "slice": _control(page, "slider", "slice (index)"),
        "zoom fit": _button(page, "fit"),
        "zoom out": _button(page, "−"),
        "read tool": _toggle(page, "read"),
        "ruler tool": _toggle(page, r"ruler \(mm\)"),
        "ROI tool": _toggle(page, "ROI"),
        "clear": _button(page, "clear"),
        "ROI min": table.locator("th", has_text=re.compile(r"^min ")),
        "ROI max": table.locator("th", has_text=re.compile(r"^max ")),
        "ROI area": table.locator("th", has_text="area (mm²)"),
        "PNG export": _button(page, "PNG of the view"),
        "CSV export": _button(page, "CSV of measurements"),
        "header": page.get_by_text("Header (no patient identifiers)"),
    }
    _assert_fits(page, image, controls, artifacts, "viewer")

    # The header opened: the page grows far below the image; at its end the
    # image is still in view beside it (it sticks to the top).
    page.set_viewport_size({"width": 1366, "height": 768})
    page.get_by_text("Header (no patient identifiers)").click()
    last = page.locator(".widget-html table", has_text="unit of values")
    last.locator("tr").last.wait_for()
    last.locator("tr").last.evaluate("(el) => el.scrollIntoView({block: 'end'})")
    place = last.locator("tr").last.evaluate(INSIDE_JS)
    seen = image.evaluate(INSIDE_JS)
    page.screenshot(path=str(artifacts / "layout_viewer_1366_header.png"))
    assert place["vertical"] and place["rect"][1] > 768 - 100, place
    assert seen["share"] > 0.99, f"the image is {seen['share']:.0%} on screen"
    _clean(page, page_errors)


def test_compare_dashboard_fits(page, page_errors, site, artifacts):
    image = _open(page, site + "compare.ipynb", IMG)
    _html(page, r"^\s*Open: head_ct moved \(demo\) \(").wait_for()
    sample_a = page.locator(".widget-dropdown", has_text="or sample").first
    _switch(page, sample_a, "spine_ct (CT)", "spine_ct moved (demo)")
    _toggle(page, "checkerboard").click()
    squares = _control(page, "slider", "squares")
    squares.wait_for(state="visible")
    controls = {
        "upload A": page.locator("button.widget-upload").nth(0),
        "upload B": page.locator("button.widget-upload").nth(1),
        "sample A": sample_a,
        "sample B": page.locator(".widget-dropdown", has_text="or sample").nth(1),
        "method": _control(page, "dropdown", "method"),
        "Register": _button(page, "Register"),
        "shift down": _control(page, "slider", "shift down"),
        "shift right": _control(page, "slider", "shift right"),
        "rotation": _control(page, "slider", "rotation"),
        "nudge +0.5": _button(page, "+0.5").last,
        "quality": _html(page, r"^\s*On the overlap: NCC"),
        "view blend": _toggle(page, "blend"),
        "view checkerboard": _toggle(page, "checkerboard"),
        "view swipe": _toggle(page, "swipe"),
        "view difference": _toggle(page, "difference"),
        "squares": squares,
        "window": _control(page, "dropdown", "window"),
        "PNG export": _button(page, "PNG of the view"),
        "NIfTI export": _button(page, "B on A (NIfTI)"),
        "CSV export": _button(page, "transform (CSV)"),
    }
    _assert_fits(page, image, controls, artifacts, "compare")
    _clean(page, page_errors)


def test_segmentation_dashboard_fits(page, page_errors, site, artifacts):
    image = _open(page, site + "segmentation.ipynb", IMG)
    _html(page, r"^\s*Open: head_ct \(").wait_for()
    _switch(page, _control(page, "dropdown", "or sample"), "spine_ct (CT)", "spine_ct")
    image = page.locator(IMG)
    page.wait_for_function(
        f"(el) => ({READY_JS})(el) && ({NATURAL_JS})(el)[0] === 128",
        arg=image.element_handle(),
    )
    _html(page, r"^\s*Label 1: ").wait_for()
    controls = {
        "upload": page.locator("button.widget-upload"),
        "sample": _control(page, "dropdown", "or sample"),
        "mode threshold": _toggle(page, "threshold"),
        "mode region grow": _toggle(page, "region grow"),
        "mode brush classifier": _toggle(page, "brush classifier"),
        "tissue": _control(page, "dropdown", "tissue"),
        "result": _html(page, r"^\s*Label 1: "),
        "result table": page.locator(".widget-html table", has_text="area (mm²)"),
        "mask export": _button(page, "mask (NIfTI)"),
        "CSV export": _button(page, "table (CSV)"),
        "recipe export": _button(page, "recipe (JSON)"),
        "pair export": _button(page, "de-identified pair"),
    }
    _assert_fits(page, image, controls, artifacts, "segmentation")
    _clean(page, page_errors)
