"""ViewerDashboard: open, measure, header, export; no browser."""

from __future__ import annotations

import datetime
import html
import io
import math
import zipfile

import numpy as np
import pandas as pd
import pydicom
import pytest
from medimg_lab.widgets.dashboards.viewer import MAX_UPLOAD_BYTES, ViewerDashboard

import medimg_lab as ml
from medimg_lab import data, display
from medimg_lab.image import MedImage
from tests.helpers import dicom_file


@pytest.fixture(scope="module")
def dash():
    return ViewerDashboard()


@pytest.fixture
def volume():
    """8 slices of 20 x 30, spacing 3 x 0.5 x 0.8 mm, CT; value = 100 s + 10 r + c."""
    s, r, c = np.ogrid[:8, :20, :30]
    array = (100 * s + 10 * r + c).astype(np.int16)
    return MedImage(array, (3.0, 0.5, 0.8), "CT", (400, 1000))


def series_zip(n: int = 4) -> tuple[bytes, np.ndarray]:
    """A zip of ``n`` single-slice CT files made from pydicom's CT_small."""
    template = pydicom.dcmread(dicom_file("CT_small.dcm"))
    volume = np.random.default_rng(0).integers(0, 2000, (n, 128, 128), np.int16)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for k in range(n):
            ds = template.copy()
            ds.PixelData = volume[k].tobytes()
            ds.ImagePositionPatient = [0.0, 0.0, 2.5 * k]
            ds.SOPInstanceUID = pydicom.uid.generate_uid()
            out = io.BytesIO()
            ds.save_as(out)
            archive.writestr(f"IM{k:04d}", out.getvalue())
    return buffer.getvalue(), volume


def png_bytes(array: np.ndarray) -> bytes:
    return display.encode_png(array)


def choose(source, name: str, payload: bytes) -> None:
    """Do what the browser does when a file is chosen in an ImageSource."""
    entry = {
        "name": name,
        "type": "",
        "size": len(payload),
        "last_modified": datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
        "content": memoryview(payload),
    }
    source._upload.value = (entry,)


def upload(dash: ViewerDashboard, name: str, payload: bytes) -> None:
    """Choose a file in the dashboard's upload button."""
    choose(dash._source, name, payload)


# ------------------------------------------------------------------ opening
def test_starts_with_the_head_ct(dash):
    assert dash.image.meta["sample"] == "head_ct"
    assert dash.image.unit == "HU"
    assert dash.viewer.displayed is not None


@pytest.mark.parametrize(
    ("name", "shape"),
    [
        ("spine_ct", (128, 128)),
        ("brain_mri", (189, 233, 197)),
        ("ultrasound", (480, 640, 3)),
    ],
)
def test_load_sample(name, shape):
    dash = ViewerDashboard()
    image = dash.load_sample(name)
    assert image.array.shape == shape
    assert dash.viewer.image is image
    assert dash._source._sample.value == name
    assert dash.message == ""


def test_sample_dropdown_opens_the_sample():
    dash = ViewerDashboard()
    dash._source._sample.value = "spine_ct"
    assert dash.image.meta["sample"] == "spine_ct"


def test_load_png_bytes():
    dash = ViewerDashboard()
    array = np.tile(np.arange(64, dtype=np.uint8), (32, 1))
    image = dash.load_bytes(png_bytes(array), "ramp.png")
    np.testing.assert_array_equal(image.array, array)
    assert dash.viewer.image is image


def test_load_zip_of_a_dicom_series():
    payload, volume = series_zip()
    dash = ViewerDashboard()
    image = dash.load_bytes(payload, "series.zip")
    assert image.array.shape == volume.shape
    np.testing.assert_array_equal(image.array, volume.astype(np.int32) - 1024)
    assert image.spacing[0] == pytest.approx(2.5)


def test_upload_widget_opens_the_file():
    dash = ViewerDashboard()
    array = np.full((16, 24), 7, np.uint8)
    upload(dash, "flat.png", png_bytes(array))
    assert dash.image.array.shape == (16, 24)
    assert dash._source._upload.value == ()


def test_junk_upload_is_a_sentence_and_the_image_stays():
    dash = ViewerDashboard()
    before = dash.image
    junk = np.random.default_rng(1).integers(0, 256, 5000, np.uint8).tobytes()
    upload(dash, "junk.dcm", junk)
    assert dash.message.startswith("junk.dcm: ")
    assert "Traceback" not in dash._message.value
    assert dash.image is before
    with pytest.raises(ml.MedImgError):
        dash.load_bytes(junk, "junk.dcm")


def test_over_limit_upload_names_the_size_and_the_limit():
    dash = ViewerDashboard()
    before = dash.image
    big = bytes(MAX_UPLOAD_BYTES + 16 * 2**20)
    upload(dash, "file.dcm", big)
    assert dash.message.startswith("file.dcm is 80.0 MiB; the limit is 64 MiB.")
    assert dash.image is before


# -------------------------------------------------------------- measuring
def test_ruler_distance_uses_anisotropic_spacing(volume):
    dash = ViewerDashboard(volume)
    row = dash.measure_distance((1, 2, 3), (4, 10, 20))
    expected = math.sqrt((3 * 3.0) ** 2 + (8 * 0.5) ** 2 + (17 * 0.8) ** 2)
    assert row["distance_mm"] == pytest.approx(expected)
    assert dash.measurements["distance (mm)"].iloc[-1] == pytest.approx(expected)


def test_ruler_by_two_clicks_on_the_coronal_plane(volume):
    dash = ViewerDashboard(volume)
    dash.viewer.plane, dash.tool = "coronal", "ruler"
    dash.viewer.slice_index = 5
    dash.viewer.click(1, 2)  # shown row 1 = slice 6 (superior up)
    assert dash.measurements.empty
    dash.viewer.click(4, 12)  # slice 3
    row = dash._rows[-1]
    assert row["from"] == (6, 5, 2) and row["to"] == (3, 5, 12)
    assert row["distance_mm"] == pytest.approx(math.hypot(3 * 3.0, 10 * 0.8))
    overlay = dash.viewer.overlay
    assert overlay[6, 5, 2] and overlay[3, 5, 12]  # drawn through both ends
    assert not overlay[:, :5].any() and not overlay[:, 6:].any()


def test_a_click_on_the_last_point_starts_a_new_measurement(volume):
    dash = ViewerDashboard(volume)
    dash.tool = "ruler"
    for point in [(1, 2), (4, 12), (4, 12), (9, 12)]:
        dash.viewer.click(*point)
    assert len(dash.measurements) == 2
    assert dash._rows[-1]["distance_mm"] == pytest.approx(5 * 0.5)


def test_roi_stats_equal_numpy_in_hu():
    dash = ViewerDashboard()
    row = dash.measure_roi((300, 240), (250, 200))
    pixels = dash.image.array[250:301, 200:241].astype(np.float64)
    assert row["mean"] == pytest.approx(pixels.mean())
    assert row["sd"] == pytest.approx(pixels.std())
    assert (row["min"], row["max"]) == (pixels.min(), pixels.max())
    assert row["pixels"] == 51 * 41
    dy, dx = dash.image.spacing
    assert row["area_mm2"] == pytest.approx(51 * 41 * dy * dx)
    assert "mean (HU)" in dash._table.value


def test_roi_by_two_clicks_draws_the_rectangle(volume):
    dash = ViewerDashboard(volume)
    dash.tool = "roi"
    dash.viewer.click(2, 3)
    dash.viewer.click(6, 9)
    row = dash._rows[-1]
    k = dash.viewer.slice_index
    expected = volume.array[k, 2:7, 3:10].astype(np.float64)
    assert row["mean"] == pytest.approx(expected.mean())
    assert row["area_mm2"] == pytest.approx(35 * 0.5 * 0.8)
    assert dash.viewer.overlay[k, 2, 3:10].all()
    assert not dash.viewer.overlay[k, 4, 5]  # an outline, not a filled box


def test_roi_corners_on_two_slices_is_a_sentence(volume):
    dash = ViewerDashboard(volume)
    dash.tool = "roi"
    dash.viewer.click(2, 3)
    dash.viewer.slice_index = 1
    dash.viewer.click(6, 9)
    assert "different axial slices" in dash.message
    assert dash.measurements.empty


def test_point_outside_the_image_is_a_value_error(dash):
    with pytest.raises(ValueError, match="outside the image"):
        dash.measure_distance((0, 0), (0, 9999))


def test_new_image_clears_measurements():
    dash = ViewerDashboard()
    dash.measure_distance((0, 0), (3, 4))
    dash.load_sample("spine_ct")
    assert dash.measurements.empty and dash.viewer.overlay is None


@pytest.mark.parametrize(
    "name", ["brain_mri", "chest_xray", "spine_ct", "perfusion_ct"]
)  # a volume, a film of unknown spacing, a small CT, a non-HU CT map
def test_a_new_sample_clears_roi_and_ruler_and_says_so(name):
    dash = ViewerDashboard()
    dash.measure_roi((100, 100), (200, 300))
    dash.measure_distance((10, 10), (400, 20))
    dash.tool = "ruler"
    dash.viewer.click(50, 60)  # the first click of another ruler
    assert dash.viewer.overlay is not None and dash._first is not None
    dash._source._sample.value = name  # as the dropdown does
    image = data.sample(name)
    assert dash.measurements.empty and dash._first is None
    assert dash.viewer.overlay is None and dash._overlay is None
    assert "No measurements yet" in dash._table.value
    shape = " × ".join(str(n) for n in image.array.shape)
    want = (
        f"Open: {name} ({image.modality}, {shape}, values in {image.unit_note}); "
        "measurements cleared."
    )
    if image.meta.get("spacing_known") is False:
        want += " Pixel spacing unknown: lengths and areas in mm assume 1 mm per pixel."
    assert html.unescape(dash._opened.value) == want
    dash.load_sample("spine_ct")  # nothing drawn: nothing said cleared
    assert html.unescape(dash._opened.value).endswith("(Hounsfield units)).")


def test_an_upload_clears_the_measurements_and_shows_its_name():
    dash = ViewerDashboard()
    dash.measure_roi((100, 100), (200, 300))
    name = "<img src=x onerror=alert(1)>.dcm"
    upload(dash, name, dicom_file("CT_small.dcm").read_bytes())
    assert dash.measurements.empty and dash.viewer.overlay is None
    assert dash._source.file_name == name
    shown = dash._source._file_name.value
    assert "<img" not in shown and html.escape(name) in shown
    assert html.unescape(dash._opened.value).startswith(f"Open: {name} (CT, 128 ")
    assert "measurements cleared" in dash._opened.value
    dash.load_sample("head_ct")  # a sample: no file name beside the button
    assert dash._source.file_name == "" and dash._source._file_name.value == ""


# ----------------------------------------------------------------- export
def test_png_export_is_the_view(tmp_path):
    dash = ViewerDashboard()
    dash.measure_roi((10, 10), (40, 60))
    payload = dash.export_png()
    path = tmp_path / "view.png"
    path.write_bytes(payload)
    shown = ml.load(path)
    assert shown.array.shape == dash.viewer.displayed.shape
    np.testing.assert_array_equal(shown.array, dash.viewer.displayed)
    assert 'download="view.png"' in dash._png_link.value
    assert "data:image/png;base64," in dash._png_link.value


def test_png_button_makes_the_link():
    dash = ViewerDashboard()
    dash._png_button.click()
    assert 'download="view.png"' in dash._png_link.value
    assert "ready" in dash.message


def test_csv_parses_with_unit_headers():
    dash = ViewerDashboard()
    dash.measure_distance((0, 0), (0, 100))
    dash.measure_roi((100, 100), (120, 130))
    text = dash.export_csv()
    table = pd.read_csv(io.StringIO(text))
    assert list(table.columns) == list(dash.measurements.columns)
    for header in ("distance (mm)", "mean (HU)", "SD (HU)", "area (mm²)"):
        assert header in table.columns
    assert table["distance (mm)"][0] == pytest.approx(100 * dash.image.spacing[1])
    assert 'download="measurements.csv"' in dash._csv_link.value


# ----------------------------------------------------------------- privacy
def page_text(widget) -> str:
    """Every string value of the widget tree: what the page can show."""
    texts = []
    for child in getattr(widget, "children", ()):
        texts.append(page_text(child))
    for name in ("value", "description", "tooltip", "placeholder"):
        value = getattr(widget, name, None)
        if isinstance(value, str):
            texts.append(value)
    titles = getattr(widget, "titles", ())
    texts.extend(str(t) for t in titles)
    return "\n".join(texts)


def test_header_and_page_hold_no_patient_identifiers():
    ds = pydicom.dcmread(dicom_file("CT_small.dcm"))
    ds.PatientName, ds.PatientID = "Doe^Jonathan", "PID-88421"
    ds.PatientBirthDate, ds.AccessionNumber = "19450317", "ACC99123"
    buffer = io.BytesIO()
    ds.save_as(buffer)
    dash = ViewerDashboard()
    dash.load_bytes(buffer.getvalue(), "scan.dcm")
    dash._accordion.selected_index = 0
    dash.measure_roi((1, 1), (5, 5))
    dash.export_csv()
    text = page_text(dash) + dash.export_csv()
    assert "modality" in dash._header.value and "CT" in dash._header.value
    for value in ("Doe", "Jonathan", "PID-88421", "19450317", "ACC99123"):
        assert value not in text
    for keyword in ("PatientName", "PatientID", "PatientBirthDate"):
        assert keyword not in dash._header.value


def test_header_shows_spacing_and_stored_window(dash):
    assert "spacing (mm)" in dash._header.value
    c, w = dash.image.window
    assert f"stored window center, width (HU)</th><td>{c:.4g}, {w:.4g}" in (
        dash._header.value
    )
    before = dash._header.value
    dash.viewer.window = (c + 100, w)  # not redrawn on each move of a slider
    assert dash._header.value == before


# ------------------------------------------------------------------ errors
def test_bad_tool_is_refused():
    dash = ViewerDashboard()
    with pytest.raises(ValueError, match="tool must be one of"):
        dash.tool = "lasso"
    assert dash.tool == "read"


def test_failing_callback_shows_a_sentence_and_the_page_keeps_working(monkeypatch):
    dash = ViewerDashboard()
    monkeypatch.setattr(dash, "export_png", lambda: 1 / 0)
    dash._png_button.click()
    assert dash.message == "Could not export the PNG: division by zero."
    monkeypatch.undo()
    dash._png_button.click()
    assert "ready" in dash.message


def test_layout_fits_a_laptop_screen(dash):
    assert dash.viewer.box_size <= 512
    style, body = dash.children
    assert "position: sticky" in style.value and "medimg-page" in body._dom_classes
    image, controls = body.children
    assert image.children == (dash.viewer,) and "medimg-image" in image._dom_classes
    assert int(image.layout.width.removesuffix("px")) <= 512 + 12
    assert all("medimg-section" in s._dom_classes for s in controls.children)
    assert (
        dash._source._upload.tooltip
        and dash._tool.tooltips
        and dash._source._sample.tooltip
    )


def test_all_samples_listed(dash):
    assert [v for _, v in dash._source._sample.options] == [
        s.name for s in data.samples()
    ]


def test_the_page_table_names_the_tool_and_leaves_missing_cells_empty():
    dash = ViewerDashboard()
    dash.measure_distance((20, 30), (100, 90))
    page = dash._table.value
    assert ">tool<" in page and ">ruler<" in page
    assert "NA" not in page
