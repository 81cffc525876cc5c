"""The viewer dashboard in Voila, in Chromium: issue 8's checks of a clinician's page.

One Voila per session (``dashboard_site``), started the way ``make dashboard`` starts it
(the repository's ``jupyter/voila.json`` and offline template, only the port
on the command line), serves ``notebooks/dashboards/``; each test opens
``viewer.ipynb`` (a ``ViewerDashboard`` of the 512 x 512 head CT in a 512 px
box, so its pixel ``(row, col)`` is painted at ``(x0 + col, y0 + row)``) and
uses it as a user would: the sample dropdown, the window preset, the slice
slider, clicks on the image, the upload button's file chooser, the tools and
the export links. Each answer of the kernel is waited for (new PNG bytes, new
text), never slept for.

Each test ends clean: no traceback, no failed-cell sentence, no red message
(unless the test caused it and cleared it), no console error and (``page``
fixture) no request leaving the machine.
"""

from __future__ import annotations

import re

import cv2
import numpy as np
import pandas as pd
import pydicom
import pytest
from medimg_lab.widgets.dashboards._base import describe
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from test_recognition_in_voila import (
    _assert_clean,
    _click_track,
    _new_png,
    _png,
    _wait_for_decoded,
    _wait_for_text_change,
)
from test_viewer_pointer import (
    NATURAL_JS,
    POINTS,
    READY_JS,
    SHOWN_JS,
    TIMEOUT_MS,
    _painted,
    _wait_for_viewer,
)

import medimg_lab
from medimg_lab.data import sample
from medimg_lab.display import apply_window, auto_window, preset
from tests.helpers import dicom_file

pytestmark = pytest.mark.browser

NOTEBOOK = "viewer.ipynb"
VIEWPORT = {"width": 1366, "height": 768}
BOX = 512  # the dashboard's display box, in CSS px
FAILED_CELL = "This step of the dashboard failed"  # voila.json's cell error text
RED = "span[style*='color:#b00020']"  # the dashboard's problem sentence
GREEN = "span[style*='color:#060']"  # its success sentence
READOUT = re.compile(r"\(row \d+, col \d+(, slice \d+)?\): ")
PHI = ("Doe^Jane", "ID-12345")
VIEW = "canvas.medimg-canvas"  # the viewer's image: render="browser" (canvas.js)
HEAD_CT = describe(sample("head_ct"), "head_ct")  # "Open: head_ct (CT, ...)."
SMALL_CT = describe(medimg_lab.load(dicom_file("CT_small.dcm")), "CT_small.dcm")


@pytest.fixture(scope="module")
def dashboard_url(dashboard_site) -> str:
    """URL of ``viewer.ipynb`` on the session's ``make dashboard`` Voila."""
    return dashboard_site + "voila/render/" + NOTEBOOK


# ------------------------------------------------------------------ helpers
def _open(page, url: str, viewport: dict = VIEWPORT, timeout_ms: int = TIMEOUT_MS):
    """The dashboard, its head CT shown; the viewer's <canvas>."""
    page.set_viewport_size(viewport)
    page.set_default_timeout(timeout_ms)
    page.goto(url)
    image = page.locator(VIEW)
    _wait_for_decoded(page, image, 1)
    _opened(page, HEAD_CT)
    return image


def _opened(page, text: str):
    """Wait for the "Open: ..." line to read ``text`` exactly; the element."""
    line = page.locator(".widget-html", has_text=re.compile(r"^\s*Open: "))
    page.wait_for_function(
        "([el, text]) => el.textContent.trim() === text",
        arg=[line.element_handle(), text],
    )
    return line


def _control(page, kind: str, label: str):
    """The control of kind ``widget-<kind>`` described by ``label``."""
    return page.locator(f".widget-{kind}", has_text=label)


def _select(page, label: str, option: str) -> None:
    _control(page, "dropdown", label).locator("select").select_option(label=option)


def _button(page, text: str):
    return page.get_by_role("button", name=text, exact=True)


def _readout(page, pattern: str) -> str:
    """Wait for the viewer's readout to match ``pattern``; its text."""
    label = page.locator(".widget-label", has_text=READOUT).first
    label.wait_for()
    page.wait_for_function(
        "([el, p]) => new RegExp(p).test(el.textContent)",
        arg=[label.element_handle(), pattern],
    )
    return label.inner_text().strip()


def _wait_for_image(page, image, natural: int) -> tuple[float, float]:
    """Wait until ``image`` shows a ``natural`` px wide image; its top-left (x, y)."""
    page.wait_for_function(
        f"([el, n]) => ({READY_JS})(el) && ({NATURAL_JS})(el)[1] === n",
        arg=[image.element_handle(), natural],
    )
    image.evaluate("(img) => img.scrollIntoView({block: 'center', inline: 'center'})")
    box = image.bounding_box()
    assert (box["width"], box["height"]) == (BOX, BOX), box
    return _painted(page, image)


def _click_pixel(page, origin, row: int, col: int, zoom: float) -> None:
    """Click the screen centre of image pixel ``(row, col)`` shown ``zoom``×."""
    x0, y0 = origin
    page.mouse.click(x0 + (col + 0.5) * zoom, y0 + (row + 0.5) * zoom)


def _choose_file(page, path) -> None:
    """Upload ``path`` with the FileUpload (its button opens a file chooser)."""
    with page.expect_file_chooser() as chooser:
        page.locator("button.widget-upload").click()
    chooser.value.set_files(str(path))


def _download(page, link, folder):
    """Click ``link`` (an ``<a download>``); the saved file's path."""
    with page.expect_download() as download:
        link.click()
    path = folder / download.value.suggested_filename
    download.value.save_as(path)
    assert download.value.failure() is None
    return path


def _pixels(png: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)


def _clean(page, errors: list[str]) -> None:
    """The shared clean check, plus Voila's failed-cell sentence."""
    _assert_clean(page, errors)
    assert FAILED_CELL not in page.locator("body").inner_text()
    assert "Traceback" not in page.content()


def _grey(png: bytes) -> np.ndarray:
    """A grey PNG's levels (a canvas's PNG is RGBA with R = G = B)."""
    bgr = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert np.array_equal(bgr[..., 0], bgr[..., 2]), "not grey"
    return bgr[..., 0]


def _until_shows(page, image, want: np.ndarray) -> None:
    """Wait, paint by paint, until ``image`` shows the grey levels ``want``."""
    key, png = _png(image)
    while not np.array_equal(_grey(png), want):
        try:
            page.wait_for_function(
                f"([el, old]) => ({SHOWN_JS})(el) !== old",
                arg=[image.element_handle(), key],
            )
        except PlaywrightTimeout:
            np.testing.assert_array_equal(_grey(png), want)  # shows the difference
        key, png = _png(image)


def _phi_dicom(folder):
    """CT_small.dcm with the patient name "Doe^Jane" and ID "ID-12345"."""
    ds = pydicom.dcmread(dicom_file("CT_small.dcm"))
    ds.PatientName, ds.PatientID = PHI
    path = folder / "study.dcm"
    ds.save_as(path)
    return path


# -------------------------------------------------------------------- tests
def test_viewer_dashboard_loads_clean(page, page_errors, dashboard_url):
    image = _open(page, dashboard_url)
    _, png = _png(image)
    assert _pixels(png).shape[:2] == (512, 512)
    for text in ("Open", "Measure", "Export", "Header (no patient identifiers)"):
        assert page.get_by_text(text, exact=True).first.is_visible(), text
    assert _button(page, "PNG of the view").is_visible()
    assert page.locator("button.widget-upload").is_visible()
    assert page.get_by_text("Point at the image to read its value").is_visible()
    _clean(page, page_errors)


def test_viewer_dashboard_preset_and_slice_change_the_image(
    page, page_errors, dashboard_url
):
    image = _open(page, dashboard_url)
    # A window preset, on the head CT (the brain MRI's "auto" is its "default").
    head = _png(image)
    _select(page, "preset", "bone")
    bone = _new_png(page, image, head)
    center = _control(page, "slider", "center").locator(".widget-readout")
    want = f"{preset('bone')[0]:.0f}"  # the slider shows the preset's center
    page.wait_for_function(
        "([el, want]) => el.textContent.trim() === want",
        arg=[center.element_handle(), want],
    )
    assert np.count_nonzero(_pixels(head[1]) != _pixels(bone)) > 10_000

    # A slice, on the brain MRI volume.
    shown = (image.evaluate(SHOWN_JS), bone)
    _select(page, "or sample", "brain_mri (MR)")
    _opened(page, describe(sample("brain_mri"), "brain_mri"))
    brain = _new_png(page, image, shown)
    middle = "z 94.0 mm (95 of 189)"
    slice_label = page.get_by_text(re.compile(r"^z [\d.]+ mm \(\d+ of 189\)$"))
    assert slice_label.inner_text() == middle
    slider = _control(page, "slider", "slice (index)")
    # The "Open:" line came after the slider's new range, so the page holds it.
    _click_track(page, slider, 0.3)
    _wait_for_text_change(page, slice_label, middle)
    k = int(slider.locator(".widget-readout").inner_text())
    assert 30 < k < 80, k  # about 30 % of 0..188
    page.wait_for_function(
        "([el, t]) => el.textContent === t",
        arg=[slice_label.element_handle(), f"z {k:.1f} mm ({k + 1} of 189)"],
    )
    moved = _pixels(_png(image)[1])
    while moved.shape[:2] != (233, 197) or np.array_equal(moved, _pixels(brain)):
        moved = _pixels(_new_png(page, image, (image.evaluate(SHOWN_JS), brain)))
    assert np.count_nonzero(_pixels(brain) != moved) > 1000  # another slice, visibly
    _clean(page, page_errors)


def test_viewer_dashboard_windows_in_the_page_as_python_does(
    page, page_errors, dashboard_url, ct, tmp_path
):
    image = _open(page, dashboard_url)
    # A window from the kernel, off the sliders' 1 HU grid: the page must
    # paint the kernel's exact window, not the one the sliders snap to.
    auto = auto_window(ct.array)
    assert auto != tuple(round(v) for v in auto)
    _select(page, "preset", "auto")
    _until_shows(page, image, apply_window(ct.array, *auto))
    _select(page, "preset", "brain")
    _until_shows(page, image, apply_window(ct.array, *preset("brain")))
    # Slider keys: the page windows at once; the kernel follows (its export).
    width = _control(page, "slider", "width")
    width.locator(".noUi-handle").focus()
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    page.wait_for_function(
        "(el) => el.textContent.trim() === '83'",
        arg=width.locator(".widget-readout").element_handle(),
    )
    _until_shows(page, image, apply_window(ct.array, 40, 83))
    _button(page, "PNG of the view").click()
    link = page.locator("a[download='view.png']")
    link.wait_for()
    exported = _grey(_download(page, link, tmp_path).read_bytes())
    np.testing.assert_array_equal(exported, apply_window(ct.array, 40, 83))
    _clean(page, page_errors)


def test_viewer_dashboard_click_reads_the_hu(page, page_errors, dashboard_url, ct):
    _open(page, dashboard_url)
    image = _wait_for_viewer(page, VIEW)  # 512 px at 1:1: pixel (r, c) at (x0+c, y0+r)
    origin = _painted(page, image)
    dy, dx = ct.spacing
    for what, (row, col) in POINTS.items():
        _click_pixel(page, origin, row, col, 1)
        value = int(ct.array[row, col])
        readout = _readout(page, rf"\(row {row}, col {col}\): ")
        where = f"x {col * dx:.1f} mm, y {row * dy:.1f} mm"
        assert readout == f"{where} (row {row}, col {col}): {value} HU", what
    _clean(page, page_errors)


def test_viewer_dashboard_upload_dicom_and_garbage(
    page, page_errors, dashboard_url, tmp_path
):
    image = _open(page, dashboard_url)
    path = dicom_file("CT_small.dcm")
    small = medimg_lab.load(path)
    assert small.array.shape == (128, 128)

    _choose_file(page, path)
    _opened(page, SMALL_CT)
    origin = _wait_for_image(page, image, 128)  # shown 4× in the 512 px box
    page.get_by_text("Header (no patient identifiers)").click()
    header = page.locator(".widget-html table", has_text="unit of values")
    header.wait_for(state="visible")
    assert "shape128 × 128" in header.inner_text().replace("\t", "")
    row, col = 64, 40
    _click_pixel(page, origin, row, col, BOX / 128)
    readout = _readout(page, rf"\(row {row}, col {col}\): ")
    assert readout.endswith(f": {int(small.array[row, col])} HU"), readout
    _clean(page, page_errors)

    noise = tmp_path / "noise.dcm"
    noise.write_bytes(np.random.default_rng(8).bytes(20_000))
    _choose_file(page, noise)
    message = page.locator(RED)
    message.wait_for(state="visible")
    sentence = message.inner_text().strip()
    assert sentence.startswith("noise.dcm: ") and sentence.endswith("."), sentence
    assert "not a DICOM" in sentence, sentence
    assert "Traceback" not in page.locator("body").inner_text()
    _opened(page, SMALL_CT)  # kept

    # The page still works: a sample opens and the sentence goes.
    shown = _png(image)
    _select(page, "or sample", "head_ct (CT)")
    _opened(page, HEAD_CT)
    _new_png(page, image, shown)
    message.wait_for(state="detached")
    _clean(page, page_errors)


def test_viewer_dashboard_exports_load_back_without_identifiers(
    page, page_errors, dashboard_url, tmp_path
):
    image = _open(page, dashboard_url)
    study = _phi_dicom(tmp_path)
    assert str(pydicom.dcmread(study).PatientName) == PHI[0]
    loaded = medimg_lab.load(study)
    _choose_file(page, study)
    _opened(page, SMALL_CT.replace("CT_small.dcm", "study.dcm"))
    origin = _wait_for_image(page, image, 128)
    page.get_by_text("Header (no patient identifiers)").click()
    page.locator(".widget-html table", has_text="unit of values").wait_for()

    # A ruler: two clicks, each answered before the next.
    page.locator(".widget-toggle-button", has_text="ruler (mm)").click()
    page.get_by_text("Ruler: click the first point.").wait_for()
    p, q = (20, 30), (100, 90)
    _click_pixel(page, origin, *p, BOX / 128)
    page.get_by_text("Ruler: click the second point.").wait_for()
    _click_pixel(page, origin, *q, BOX / 128)
    table = page.locator(".widget-html table", has_text="distance (mm)")
    table.wait_for()
    want = float(np.hypot(*(np.subtract(p, q) * np.asarray(loaded.spacing))))
    heads = table.locator("tr").first.locator("th").all_inner_texts()
    values = table.locator("tr").nth(1).locator("td").all_inner_texts()
    cells = dict(zip(heads, values, strict=True))
    assert cells["#"] == "1" and cells["plane"] == "axial", cells
    assert float(cells["distance (mm)"]) == pytest.approx(want, rel=1e-3), cells

    # PNG of the view: the pixels shown, and medimg_lab loads them back.
    _button(page, "PNG of the view").click()
    link = page.locator("a[download='view.png']")
    link.wait_for()
    page.locator(GREEN, has_text="The PNG is ready").wait_for()
    png_path = _download(page, link, tmp_path)
    _, shown = _png(image)
    colour = cv2.IMREAD_COLOR
    exported = cv2.imdecode(np.frombuffer(png_path.read_bytes(), np.uint8), colour)
    on_screen = cv2.imdecode(np.frombuffer(shown, np.uint8), colour)
    np.testing.assert_array_equal(exported, on_screen)  # exactly the view
    view = medimg_lab.load(png_path)
    natural = image.evaluate(NATURAL_JS)
    assert view.array.shape[:2] == tuple(natural) == (128, 128)

    # CSV of the measurements: one ruler row, the distance in mm.
    _button(page, "CSV of measurements").click()
    link = page.locator("a[download='measurements.csv']")
    link.wait_for()
    page.locator(GREEN, has_text="The CSV is ready").wait_for()
    csv_path = _download(page, link, tmp_path)
    table = pd.read_csv(csv_path)
    assert len(table) == 1 and table.loc[0, "tool"] == "ruler"
    assert table.loc[0, "from (row col)"] == f"{p[0]} {p[1]}"
    assert table.loc[0, "to (row col)"] == f"{q[0]} {q[1]}"
    assert table.loc[0, "distance (mm)"] == pytest.approx(want, rel=1e-9)

    text = page.locator("body").inner_text()
    html, csv = page.content(), csv_path.read_text("utf-8")
    for identifier in (*PHI, "Jane"):
        assert identifier not in text, identifier
        assert identifier not in csv, identifier
    for identifier in PHI:  # nor in the HTML, hidden parts and data: URLs too
        assert identifier not in html, identifier
    # Clean apart from the green "ready" sentence, which is not a problem.
    _clean(page, page_errors)


@pytest.mark.parametrize("size", [(1366, 768), (1920, 1080)], ids=["1366", "1920"])
def test_viewer_dashboard_screenshots(
    page, page_errors, dashboard_url, artifacts, size
):
    width, height = size
    _open(page, dashboard_url, {"width": width, "height": height})
    page.evaluate("() => document.fonts.ready")
    path = artifacts / f"voila_viewer_dashboard_{width}x{height}.png"
    page.screenshot(path=str(path), full_page=True)
    assert _pixels(path.read_bytes()).shape[1] == width
    scroll = page.evaluate("() => document.documentElement.scrollWidth")
    assert scroll <= width, f"horizontal scrollbar at {width} px: {scroll} px wide"
    _clean(page, page_errors)


def _coloured(png: bytes) -> int:
    """How many pixels of a canvas's PNG are not grey (an overlay's drawing)."""
    bgr = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR).astype(int)
    return int(np.count_nonzero(np.ptp(bgr, axis=2) > 8))


def test_a_new_image_clears_roi_and_ruler_in_kernel_and_page(
    page, page_errors, dashboard_url, tmp_path
):
    image = _open(page, dashboard_url)
    _wait_for_image(page, image, 512)
    table = page.locator(".widget-html table", has_text="area (mm²)")
    for tool, first, second, (p, q) in (
        (
            "ROI",
            "ROI: click one corner",
            "ROI: click the opposite",
            ((150, 150), (260, 330)),
        ),
        (
            "ruler (mm)",
            "Ruler: click the first",
            "Ruler: click the second",
            ((100, 60), (400, 300)),
        ),
    ):
        page.locator(".widget-toggle-button", has_text=tool).click()
        page.get_by_text(first).wait_for()
        origin = _painted(page, image)  # where it is now, the tool chosen
        _click_pixel(page, origin, *p, 1)
        page.get_by_text(second).wait_for()
        _click_pixel(page, origin, *q, 1)
        page.get_by_text(first).wait_for()
    table.locator("tr").nth(2).wait_for()  # two measurements listed
    page.wait_for_function(
        "(el) => Number(el.dataset.frame) > 0", arg=image.element_handle()
    )
    drawn = _png(image)
    while _coloured(drawn[1]) < 500:  # both drawings painted
        drawn = (image.evaluate(SHOWN_JS), _new_png(page, image, drawn))

    # Another sample: the "Open:" line says so, the table and the drawings go.
    spine = medimg_lab.data.sample("spine_ct")
    _select(page, "or sample", "spine_ct (CT)")
    cleared = f"values in {spine.unit_note}); measurements cleared."
    _opened(page, f"Open: spine_ct (CT, 128 × 128, {cleared}")
    _wait_for_image(page, image, 128)
    page.get_by_text("No measurements yet.").wait_for()
    assert _coloured(_png(image)[1]) == 0  # no ROI, no ruler on the new image
    _button(page, "CSV of measurements").click()  # the kernel's table
    link = page.locator("a[download='measurements.csv']")
    link.wait_for()
    assert pd.read_csv(_download(page, link, tmp_path)).empty

    # An upload whose name is HTML: shown as text beside the button, never run.
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    name = "<img src=x onerror=alert(1)>.dcm"
    with page.expect_file_chooser() as chooser:
        page.locator("button.widget-upload").click()
    chooser.value.set_files(
        {
            "name": name,
            "mimeType": "application/dicom",
            "buffer": dicom_file("CT_small.dcm").read_bytes(),
        }
    )
    _opened(page, SMALL_CT.replace("CT_small.dcm", name))
    beside = page.locator(".widget-html span", has_text=name)
    assert beside.inner_text() == name and beside.get_attribute("title") == name
    assert page.locator("img[src='x']").count() == 0 and not dialogs
    assert (
        page.locator("button.widget-upload").evaluate(
            "(el) => getComputedStyle(el, '::after').content"
        )
        == '"Upload file"'
    )
    _clean(page, page_errors)
