"""The segmentation dashboard in Voila, in Chromium, used as a clinician would.

The session's ``make dashboard`` Voila (``dashboard_site``) serves
``segmentation.ipynb``: a ``SegmentationDashboard`` of the 512 x 512 head CT
in a 512 px box, so its pixel ``(row, col)`` is painted at
``(x0 + col, y0 + row)``. Each test picks tissues, samples and modes with the
page's own controls, types thresholds into the sliders, clicks and paints on
the image, uploads files through the file chooser and downloads the exports;
every figure the page shows is compared with the one the package computes
for the same input. Each answer of the kernel is waited for, never slept for.
"""

from __future__ import annotations

import io
import re
import zipfile

import numpy as np
import pydicom
import pytest
from medimg_lab.widgets.dashboards._base import describe
from test_recognition_in_voila import _new_png, _png, _wait_for_text_change
from test_viewer_dashboard_in_voila import (
    BOX,
    HEAD_CT,
    RED,
    SMALL_CT,
    VIEWPORT,
    _button,
    _choose_file,
    _clean,
    _click_pixel,
    _control,
    _download,
    _opened,
    _phi_dicom,
    _pixels,
    _readout,
    _select,
    _wait_for_image,
)
from test_viewer_pointer import (
    POINTS,
    TIMEOUT_MS,
    _painted,
    _wait_for_viewer,
    wait_for_pointer_at,
)

import medimg_lab
from medimg_lab import segmentation
from medimg_lab.data import sample
from medimg_lab.segmentation import HU_RANGES

pytestmark = pytest.mark.browser

NOTEBOOK = "segmentation.ipynb"
SUMMARY = re.compile(r"^(Label 1: |No region yet\.)")


@pytest.fixture(scope="module")
def url(dashboard_site) -> str:
    return dashboard_site + "voila/render/" + NOTEBOOK


def _open(page, url: str, viewport: dict = VIEWPORT):
    page.set_viewport_size(viewport)
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    _opened(page, HEAD_CT)
    return _wait_for_viewer(page)


def _summary(page):
    """The result line ("Label 1: area ... mm²; mean ... HU ...")."""
    return page.locator(".widget-html", has_text=SUMMARY).first


def _wait_summary(page, old: str | None = None, pattern: str = r"^Label 1: ") -> str:
    line = _summary(page)
    line.wait_for()
    if old is not None:
        _wait_for_text_change(page, line, old)
    page.wait_for_function(
        "([el, p]) => new RegExp(p).test(el.textContent.trim())",
        arg=[line.element_handle(), pattern],
    )
    return line.inner_text().strip()


def _area(text: str) -> float:
    return float(re.search(r"area ([\d.]+) mm²", text).group(1))


def _type_into(page, label: str, value: float) -> None:
    """Type ``value`` into the readout of the slider described by ``label``."""
    readout = _control(page, "slider", label).locator(".widget-readout")
    readout.click()
    page.keyboard.press("Control+A")
    page.keyboard.type(f"{value:g}")
    page.keyboard.press("Enter")


def _mode(page, name: str) -> None:
    page.locator(".widget-toggle-button", has_text=name).click()
    page.locator(".widget-toggle-button.mod-active", has_text=name).wait_for()


def _stroke(page, image, row: int, cols: tuple[int, int]) -> None:
    """A left-button drag along ``row`` from ``cols[0]`` to ``cols[1]`` (1:1).

    The image's place is read now: a control chosen before may have scrolled
    the page.
    """
    x0, y0 = _painted(page, image)
    y = y0 + row + 0.5
    page.mouse.move(x0 + cols[0] + 0.5, y)
    page.mouse.down()
    page.mouse.move(x0 + cols[1] + 0.5, y, steps=20)
    wait_for_pointer_at(page, row, cols[1])  # the last move arrived
    page.mouse.up()


# -------------------------------------------------------------------- tests
def test_segmentation_dashboard_loads_clean(page, page_errors, url, ct):
    _open(page, url)
    text = _wait_summary(page)
    low, high = HU_RANGES["brain"]  # the default range of a CT
    mask = segmentation.threshold_range(ct.array, low=low, high=high)
    assert _area(text) == pytest.approx(mask.sum() * np.prod(ct.spacing), abs=0.06)
    for heading in ("Open", "Segment", "Clean up", "Result", "Export"):
        assert page.get_by_text(heading, exact=True).first.is_visible(), heading
    for name in ("mask (NIfTI)", "de-identified pair"):
        assert _button(page, name).is_visible()
    _clean(page, page_errors)


def test_tissue_preset_changes_the_overlay_and_the_area(page, page_errors, url, ct):
    image = _open(page, url)
    before, text = _png(image), _wait_summary(page)
    _select(page, "tissue", "bone (300 to 3000 HU)")
    shown = _new_png(page, image, before)
    text = _wait_summary(page, text)
    high = float(ct.array.max())  # the range is clipped to the image's values
    mask = segmentation.threshold_range(ct.array, low=300, high=min(3000, high))
    assert _area(text) == pytest.approx(mask.sum() * np.prod(ct.spacing), abs=0.06)
    assert "mean " in text and "HU" in text
    assert np.count_nonzero(_pixels(before[1]) != _pixels(shown)) > 1000
    _clean(page, page_errors)


def test_volume_ml_equals_the_package(page, page_errors, url):
    """A fixed threshold on the sample brain MRI: the page's mL is the package's."""
    _open(page, url)
    text = _wait_summary(page)
    _select(page, "or sample", "brain_mri (MR)")
    _opened(page, describe(sample("brain_mri"), "brain_mri"))
    text = _wait_summary(page, text, r"^Label 1: volume ")
    _type_into(page, "high (a.u.)", 200)
    text = _wait_summary(page, text, r"max 200 a\.u\.")
    _type_into(page, "low (a.u.)", 100)
    text = _wait_summary(page, text, r"min 100,")

    brain = sample("brain_mri")
    mask = segmentation.threshold_range(brain.array, low=100, high=200)
    table = segmentation.measure(mask, brain.array, spacing=brain.spacing)
    want = table["volume_ml"].iloc[0]
    assert f"volume {want:.2f} mL" in text, (text, want)
    shown = float(re.search(r"volume ([\d.]+) mL", text).group(1))
    assert shown == pytest.approx(want, abs=0.005)
    cells = page.locator(".widget-html table", has_text="volume (mL)")
    assert f"{want:.4g}" in cells.inner_text()
    _clean(page, page_errors)


def test_click_reads_the_hu_and_grows_a_region(page, page_errors, url, ct):
    image = _open(page, url)
    origin = _painted(page, image)
    row, col = POINTS["brain"]
    _click_pixel(page, origin, row, col, 1)  # threshold mode: the pointer reads
    readout = _readout(page, rf"\(row {row}, col {col}\): ")
    assert readout.endswith(f": {int(ct.array[row, col])} HU"), readout

    text = _wait_summary(page)
    _mode(page, "region grow")
    text = _wait_summary(page, None, r"^No region yet\.$")
    _click_pixel(page, _painted(page, image), row, col, 1)  # the mode may scroll
    readout = _readout(page, rf"\(row {row}, col {col}\): ")
    text = _wait_summary(page, text)
    grown = segmentation.region_grow(ct.array, [(row, col)])
    assert grown[row, col]
    want = grown.sum() * np.prod(ct.spacing)
    assert _area(text) == pytest.approx(want, abs=0.06), (text, want)
    _clean(page, page_errors)


def test_brush_strokes_train_the_classifier(page, page_errors, url):
    image = _open(page, url)
    _mode(page, "brush classifier")
    text = _wait_summary(page, None, r"^No region yet\.$")
    _select(page, "class", "2: foreground")
    before = _png(image)
    _stroke(page, image, 294, (170, 220))  # brain
    shown = _new_png(page, image, before)
    _select(page, "class", "1: background")
    _stroke(page, image, 54, (230, 290))  # air
    _new_png(page, image, (image.get_attribute("src"), shown))
    text = _wait_summary(page, text)
    assert 0 < _area(text) < 512 * 512 * 0.4785**2, text
    _clean(page, page_errors)


def test_upload_garbage_then_dicom_and_export(page, page_errors, url, tmp_path):
    image = _open(page, url)
    noise = tmp_path / "noise.dcm"
    noise.write_bytes(np.random.default_rng(9).bytes(20_000))
    _choose_file(page, noise)
    message = page.locator(RED)
    message.wait_for(state="visible")
    sentence = message.inner_text().strip()
    assert sentence.startswith("noise.dcm: ") and "not a DICOM" in sentence
    _opened(page, HEAD_CT)  # kept, and the page goes on:

    study = _phi_dicom(tmp_path)
    small = medimg_lab.load(study)
    text = _summary(page).inner_text().strip()
    _choose_file(page, study)
    _opened(page, SMALL_CT.replace("CT_small.dcm", "study.dcm"))
    _wait_for_image(page, image, 128)
    message.wait_for(state="detached")
    _wait_summary(page, text, r"\(\d+ pixels\)\.$")
    low, high = HU_RANGES["brain"]
    mask = segmentation.threshold_range(small.array, low=low, high=high)

    _button(page, "mask (NIfTI)").click()
    link = page.locator("a[download='mask.nii.gz']")
    link.wait_for()
    loaded = medimg_lab.load(_download(page, link, tmp_path))
    assert np.array_equal(loaded.array, mask)
    assert loaded.spacing == pytest.approx(small.spacing)

    _button(page, "de-identified pair").click()
    link = page.locator("a[download='deidentified.zip']")
    link.wait_for()
    path = _download(page, link, tmp_path)
    archive = zipfile.ZipFile(path)
    assert sorted(archive.namelist()) == [
        "image.nii.gz",
        "image/image_001.dcm",
        "mask.nii.gz",
        "measurements.csv",
    ]
    raw = archive.read("image/image_001.dcm")
    ds = pydicom.dcmread(io.BytesIO(raw))
    assert str(ds.get("PatientName", "")) == "" and ds.PatientIdentityRemoved == "YES"
    assert np.array_equal(medimg_lab.load(raw).array, small.array)
    assert np.array_equal(medimg_lab.load(archive.read("mask.nii.gz")).array, mask)
    for name in archive.namelist():
        for identifier in (b"Doe^Jane", b"ID-12345", b"Jane"):
            assert identifier not in archive.read(name), (name, identifier)
    assert "Doe^Jane" not in page.content()
    _clean(page, page_errors)


@pytest.mark.parametrize("size", [(1366, 768), (1920, 1080)], ids=["1366", "1920"])
def test_segmentation_dashboard_screenshots(page, page_errors, url, artifacts, size):
    width, height = size
    _open(page, url, {"width": width, "height": height})
    _wait_summary(page)
    page.evaluate("() => document.fonts.ready")
    path = artifacts / f"voila_segmentation_dashboard_{width}x{height}.png"
    page.screenshot(path=str(path), full_page=True)
    assert _pixels(path.read_bytes()).shape[1] == width
    scroll = page.evaluate("() => document.documentElement.scrollWidth")
    assert scroll <= width, f"horizontal scrollbar at {width} px: {scroll} px wide"
    box = page.locator("img.widget-image").bounding_box()
    assert box["width"] == BOX
    _clean(page, page_errors)
