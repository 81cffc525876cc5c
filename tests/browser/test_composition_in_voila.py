"""The composition panel in Voila, in Chromium: its four tabs answer the controls.

``notebooks/composition_probe.ipynb`` shows a ``CompositionPanel`` of the head
CT, bone inside the blend mask and brain outside (class ``probe-panel``); its
explorers carry the classes ``probe-blend``, ``probe-fusion``,
``probe-registration`` and ``probe-stitching``. The moving image of the
registration tab is the CT moved 4 mm down, 6 mm left and turned 8°; the
stitching tab starts from 2 × 2 tiles of the CT. Each test moves one control
as a user would, then waits for the kernel's answer: new PNG bytes (not only a
new blob URL) in the viewer, and new numbers or rows in the readouts.

Each page is checked for tracebacks, error sentences, error elements, the
panel's own red messages and console errors, and (``page`` fixture) for
requests leaving the machine.
"""

from __future__ import annotations

import re

import cv2
import numpy as np
import pytest
from test_recognition_in_voila import (
    IMAGES,
    PANEL,
    _assert_clean,
    _click_track,
    _new_png,
    _number,
    _open,
    _png,
    _select_tab,
    _wait_for_decoded,
    _wait_for_text_change,
)

pytestmark = pytest.mark.browser

PROBE = "composition_probe.ipynb"
BLEND, FUSION, REGISTRATION, STITCHING = (
    f"{PANEL} .probe-{name}"
    for name in ("blend", "fusion", "registration", "stitching")
)
NCC = r"NCC <b>(\d\.\d{3})</b>"


def _viewer(page, explorer: str):
    """The explorer's viewer image (its first), once it shows a decoded PNG."""
    image = page.locator(f"{explorer} {IMAGES}").first
    _wait_for_decoded(page, image, 1)
    return image


def _open_tab(page, voila, errors: list[str], title: str, explorer: str):
    """The probe's panel on tab ``title``, checked clean; the tab's viewer image."""
    _open(page, voila.render(PROBE))
    if title != "Blend":  # the tab shown first
        _select_tab(page, title, explorer)
    viewer = _viewer(page, explorer)
    _assert_clean(page, errors)
    return viewer


def _shoot(page, artifacts, name: str) -> None:
    page.locator(PANEL).screenshot(
        path=str(artifacts / f"voila_composition_{name}.png")
    )


def _control(page, explorer: str, kind: str, label: str):
    """The explorer's control whose text starts with ``label`` (no viewer's).

    A checkbox's text starts with its hidden, zero-width-space label.
    """
    starts = re.compile(rf"^[\s\u200b]*{re.escape(label)}")
    return page.locator(f"{explorer} .widget-{kind}", has_text=starts)


def _table_rows(table) -> list[list[str]]:
    """The cells of the offsets table's rows, its header left out."""
    rows = table.locator("tr").evaluate_all(
        "(trs) => trs.map((tr) => [...tr.cells].map((td) => td.textContent.trim()))"
    )
    assert rows and rows[0][-1] == "confidence", rows
    return rows[1:]


def _tile_pngs(folder) -> list[str]:
    """Two grey PNG tiles of one smooth random image, overlapping by 60 px."""
    noise = np.random.default_rng(1).random((160, 240)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), 3)
    image = cv2.normalize(smooth, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    paths = []
    for k, tile in enumerate((image[:, :150], image[:, 90:])):
        path = folder / f"tile{k}.png"
        assert cv2.imwrite(str(path), tile)
        paths.append(str(path))
    return paths


def test_voila_composition_blend_windows(page, page_errors, voila, artifacts):
    viewer = _open_tab(page, voila, page_errors, "Blend", BLEND)
    _shoot(page, artifacts, "blend")
    opacity = _control(page, BLEND, "slider", "opacity")
    readout = opacity.locator(".widget-readout")
    assert float(readout.inner_text()) == 1.0
    before = _png(viewer)
    _click_track(page, opacity, 0.3)  # 30 % bone window, 70 % brain in the mask
    _new_png(page, viewer, before)
    assert 0.2 < float(readout.inner_text()) < 0.4, readout.inner_text()

    inside = _control(page, BLEND, "dropdown", "inside (I1)").locator("select")
    assert inside.input_value() == "bone"
    before = _png(viewer)
    inside.select_option("stroke")  # I1 in a narrow window: the bone goes white
    _new_png(page, viewer, before)
    assert inside.input_value() == "stroke"
    _shoot(page, artifacts, "blend_changed")
    _assert_clean(page, page_errors)


def test_voila_composition_fusion_views(page, page_errors, voila, artifacts):
    viewer = _open_tab(page, voila, page_errors, "Fusion", FUSION)
    legend = page.locator(f"{FUSION} {IMAGES}").nth(1)
    legend_text = page.locator(f"{FUSION} .widget-html", has_text="drawn at")
    view = _control(page, FUSION, "dropdown", "view").locator("select")
    assert view.input_value() == "weighted"
    shown = _png(viewer)

    view.select_option("checkerboard")
    _new_png(page, viewer, shown)
    assert not legend.is_visible(), "a legend in the checkerboard view"
    _shoot(page, artifacts, "fusion_checkerboard")

    shown = _png(viewer)
    view.select_option("colour")
    _new_png(page, viewer, shown)
    _wait_for_decoded(page, legend, 1)  # visible, decoded
    legend_text.wait_for(state="visible")
    text = legend_text.text_content()
    match = re.fullmatch(
        r"(-?[\d.e+]+) to (-?[\d.e+]+) HU; drawn at and above (-?[\d.e+]+)", text
    )
    assert match, text
    low, high, drawn = (float(v) for v in match.groups())
    assert low < high and drawn == low, text
    _shoot(page, artifacts, "fusion_colour")

    shown = _png(viewer)
    view.select_option("difference")  # the CT less its blurred copy: edges
    _new_png(page, viewer, shown)
    caption = page.locator(f"{FUSION} .widget-html", has_text="difference I1 − I2")
    caption.wait_for(state="visible")
    assert re.fullmatch(
        r"difference I1 − I2, window ±\d+ HU \(mid-grey = equal; white: I1 "
        r"brighter, black: I2 brighter\)",
        caption.text_content(),
    ), caption.text_content()
    assert not legend.is_visible(), "a colour scale in the difference view"
    _shoot_sizes(page, artifacts, "fusion_difference")
    _assert_clean(page, page_errors)


def test_voila_composition_registration_register(page, page_errors, voila, artifacts):
    viewer = _open_tab(page, voila, page_errors, "Registration", REGISTRATION)
    before = _png(viewer)
    quality = page.locator(f"{REGISTRATION} .widget-html", has_text="On the overlap")
    html0 = quality.inner_html()
    ncc0 = _number(NCC, html0)
    assert 0.7 < ncc0 < 0.9, html0  # the known motion, not undone
    found = page.locator(f"{REGISTRATION} .widget-html", has_text="rotation")
    assert found.count() == 0, found.all_text_contents()
    down = _control(page, REGISTRATION, "slider", "shift down (mm)")
    readout = down.locator(".widget-readout")
    assert float(readout.inner_text()) == 0.0

    page.locator(f"{REGISTRATION} button", has_text="Register").click()
    found.wait_for(state="visible")
    _wait_for_text_change(page, quality, html0, prop="innerHTML")
    html1 = quality.inner_html()
    ncc1 = _number(NCC, html1)
    assert ncc1 > 0.95 and ncc1 > ncc0, (html0, html1)
    text = found.text_content()
    match = re.search(r"shift \((-?[\d.]+), (-?[\d.]+)\) mm", text)
    assert match, text
    dy, dx = (float(v) for v in match.groups())
    assert abs(dy - 4) <= 0.2 and abs(dx + 6) <= 0.2, text
    assert abs(float(readout.inner_text()) - 4.0) <= 0.2, readout.inner_text()
    _new_png(page, viewer, before)
    _shoot(page, artifacts, "registration")
    _assert_clean(page, page_errors)


def test_voila_composition_stitching_seams_and_upload(
    page, page_errors, voila, artifacts, tmp_path
):
    viewer = _open_tab(page, voila, page_errors, "Stitching", STITCHING)
    table = page.locator(f"{STITCHING} .widget-html", has_text="confidence")
    rows = _table_rows(table)
    assert [row[0] for row in rows] == ["0", "1", "2", "3"], rows
    assert all(0.9 < float(row[-1]) <= 1 for row in rows), rows
    assert "1 is a perfect match, 0 none" in table.text_content()
    _shoot_sizes(page, artifacts, "stitching")
    before = _png(viewer)
    seams = _control(page, STITCHING, "checkbox", "show seams").locator("input")
    assert seams.is_checked()

    seams.uncheck()
    _new_png(page, viewer, before)
    assert not seams.is_checked()
    shown = _png(viewer)

    html0 = table.inner_html()
    # The FileUpload's <input type=file> is never in the document: the button
    # clicks it, which opens a file chooser.
    with page.expect_file_chooser() as chooser:
        page.locator(f"{STITCHING} button.widget-upload").click()
    chooser.value.set_files(_tile_pngs(tmp_path))
    _wait_for_text_change(page, table, html0, prop="innerHTML")
    rows = _table_rows(table)
    assert [row[0] for row in rows] == ["0", "1"], rows
    assert [float(v) for v in rows[1][1:3]] == [0.0, 90.0], rows  # 1 mm pixels
    count = page.locator(f"{STITCHING} .widget-html", has_text="tiles, sizes")
    assert count.text_content() == "2 tiles, sizes 160×150, 160×150"
    _new_png(page, viewer, shown)
    _shoot(page, artifacts, "stitching_upload")
    _assert_clean(page, page_errors)


# The probe's moving image: the CT moved 4 mm down, 6 mm left and turned 8°
# (CompositionPanel's default, with noise); typing it into the sliders is a
# perfect registration, one more mm down is 1 mm off.
TRUTH = {"shift down (mm)": 4.0, "shift right (mm)": -6.0, "rotation (°)": 8.0}
CAPTION = re.compile(
    r"difference A − B \(fixed − moving, motion undone\), window ±(\d+) HU "
    r"\(mid-grey = equal; white: A brighter, black: B brighter\)"
)


def _type_into(page, explorer: str, label: str, value: float) -> None:
    """Type ``value`` into the readout of the slider ``label``, as a user does."""
    readout = _control(page, explorer, "slider", label).locator(".widget-readout")
    readout.click()
    page.keyboard.press("Control+A")
    page.keyboard.type(f"{value:g}")
    page.keyboard.press("Enter")
    page.wait_for_function(
        "([el, v]) => Math.abs(parseFloat(el.textContent.replace('\u2212', '-')) - v)"
        " < 1e-6",  # the readout writes a minus sign, U+2212
        arg=[readout.element_handle(), value],
    )


def _saturated(png: bytes) -> float:
    """The share of the shown difference's pixels drawn black or white."""
    shown = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)
    rows, cols = shown.shape
    inner = shown[rows // 8 : -rows // 8, cols // 8 : -cols // 8]  # the overlap
    return float(np.mean((inner == 0) | (inner == 255)))


def _shoot_sizes(page, artifacts, name: str) -> None:
    """The explorer and the page at 1366x768 and at 1920x1080 (back to 1366)."""
    for width, height in ((1920, 1080), (1366, 768)):
        page.set_viewport_size({"width": width, "height": height})
        _shoot(page, artifacts, f"{name}_{width}x{height}")
        page.screenshot(path=str(artifacts / f"voila_{name}_page_{width}x{height}.png"))


def test_voila_registration_difference_perfect_and_1_mm_off(
    page, page_errors, voila, artifacts
):
    viewer = _open_tab(page, voila, page_errors, "Registration", REGISTRATION)
    view = _control(page, REGISTRATION, "dropdown", "view").locator("select")
    assert view.input_value() == "difference"
    quality = page.locator(f"{REGISTRATION} .widget-html", has_text="On the overlap")
    for label, value in TRUTH.items():
        shown = _png(viewer)
        _type_into(page, REGISTRATION, label, value)
        _new_png(page, viewer, shown)
    page.wait_for_function(
        "(el) => /NCC <b>0\\.9[5-9]\\d|NCC <b>1\\.000/.test(el.innerHTML)",
        arg=quality.element_handle(),
    )
    caption = quality.locator("i")
    match = CAPTION.fullmatch(caption.text_content().strip())
    assert match, caption.text_content()
    assert 100 <= int(match.group(1)) <= 2000, match.group(0)  # bone-edge scale
    assert caption.is_visible()
    perfect = _png(viewer)
    _shoot_sizes(page, artifacts, "registration_difference_perfect")

    _type_into(page, REGISTRATION, "shift down (mm)", 5.0)  # 1 mm off
    off = _new_png(page, viewer, perfect)
    _shoot_sizes(page, artifacts, "registration_difference_1mm_off")
    at_perfect, at_1mm = _saturated(perfect[1]), _saturated(off)
    assert at_perfect < 0.001, at_perfect  # faint: no rim a clinician would read
    assert at_1mm > 0.003 and at_1mm > 10 * at_perfect, (at_perfect, at_1mm)
    _assert_clean(page, page_errors)
