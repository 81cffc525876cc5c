"""SegmentationDashboard: presets, clicks, strokes, clean-up, figures, exports."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pandas as pd
import pydicom
import pytest
from medimg_lab.widgets.dashboards import _base as _dashboard
from medimg_lab.widgets.dashboards.segmentation import SegmentationDashboard
from test_viewer_dashboard import series_zip, upload

import medimg_lab as ml
from medimg_lab import data, display, segmentation
from medimg_lab.image import MedImage
from medimg_lab.recipe import Recipe
from medimg_lab.segmentation import HU_RANGES
from tests.helpers import dicom_file


@pytest.fixture
def dash():
    return SegmentationDashboard()


@pytest.fixture(scope="module")
def brain():
    return data.sample("brain_mri")


def reference(image: MedImage, low: float, high: float) -> pd.DataFrame:
    """The package's own figures for a threshold range."""
    mask = segmentation.threshold_range(image.array, low=low, high=high)
    return segmentation.measure(
        mask, image.array, spacing=image.spacing, unit=image.unit
    )


def ring(inner: int = 10, outer: int = 20) -> MedImage:
    """A 64² CT phantom: a ring of 100 HU (radii in px) in -1000 HU, 0.5 mm."""
    r = np.hypot(*np.ogrid[-32:32, -32:32])
    array = np.where((r >= inner) & (r < outer), 100, -1000).astype(np.int16)
    return MedImage(array, (0.5, 0.5), "CT", (40, 400))


def test_opens_the_head_ct_on_the_brain_range(dash):
    assert dash.image.modality == "CT"
    assert dash.preset == "custom"
    assert (dash.panel.params["low"], dash.panel.params["high"]) == HU_RANGES["brain"]
    table = dash.measurements
    assert list(table.columns) == [
        "label",
        "area (mm²)",
        "mean (HU)",
        "SD (HU)",
        "min (HU)",
        "max (HU)",
        "pixels",
    ]
    assert dash.summary.startswith("Label 1: area ")
    assert "HU" in dash.summary
    assert dash.message == ""


@pytest.mark.parametrize("name", ["bone", "brain", "fat", "acute blood"])
def test_preset_measures_what_the_package_measures(dash, name):
    dash.preset = name
    image = dash.image
    lo, hi = float(image.array.min()), float(image.array.max())
    low, high = (min(max(v, lo), hi) for v in HU_RANGES[name])
    assert (dash.panel.params["low"], dash.panel.params["high"]) == (low, high)
    ours, theirs = dash.measurements.iloc[0], reference(image, low, high).iloc[0]
    assert ours["area (mm²)"] == pytest.approx(theirs["area_mm2"])
    assert ours["mean (HU)"] == pytest.approx(theirs["mean_HU"])
    assert ours["pixels"] == theirs["pixels"]
    assert f"{theirs['area_mm2']:.1f} mm²" in dash.summary


def test_moving_a_slider_ends_the_preset(dash):
    dash.preset = "bone"
    dash.panel.set_params(low=400.0)
    assert dash.preset == "custom"
    assert dash._preset.value == "custom"
    assert dash.measurements.iloc[0]["min (HU)"] >= 400


def test_hu_preset_on_an_mr_is_a_sentence(brain):
    dash = SegmentationDashboard(brain)
    before = dash.panel.params
    with pytest.raises(ValueError, match="not in HU"):
        dash.preset = "bone"
    assert "not in HU" in dash.message
    assert dash.preset == "custom" and dash.panel.params == before
    assert dash._preset.options == (("custom", "custom"),)  # no HU presets offered


def test_volume_in_ml_equals_the_package(brain):
    dash = SegmentationDashboard(brain)
    params = dash.panel.params  # default: Otsu's threshold to the maximum
    assert params["low"] == pytest.approx(segmentation.otsu_value(brain.array))
    assert params["high"] == brain.array.max()
    dash.set_range(100, 200)
    ours = dash.measurements.iloc[0]
    theirs = reference(brain, 100, 200).iloc[0]
    assert ours["volume (mL)"] == pytest.approx(theirs["volume_ml"])
    assert ours["voxels"] == theirs["pixels"]
    assert f"volume {theirs['volume_ml']:.2f} mL" in dash.summary
    assert "a.u." in dash.summary


def test_region_grows_from_a_click():
    dash = SegmentationDashboard(ring())
    dash.mode = "region grow"
    assert dash.panel.tool == "seed"
    assert dash.summary == "No region yet."
    dash.panel.parts["viewer"].click(32, 32 + 15)  # in the ring
    labels = dash.labels
    r = np.hypot(*np.ogrid[-32:32, -32:32])
    assert np.array_equal(labels > 0, (r >= 10) & (r < 20))
    row = dash.measurements.iloc[0]
    assert row["area (mm²)"] == pytest.approx(labels.sum() * 0.25)
    assert row["mean (HU)"] == 100


def test_clean_up_fills_the_ring():
    dash = SegmentationDashboard(ring())
    dash.set_range(0, 300)  # clipped to the image's 100 HU
    assert dash.panel.params["high"] == 100
    before = dash.measurements.iloc[0]["pixels"]
    dash.set_cleanup("fill_holes")
    r = np.hypot(*np.ogrid[-32:32, -32:32])
    assert dash.measurements.iloc[0]["pixels"] == np.count_nonzero(r < 20) > before
    dash.set_cleanup("fill_holes", False)
    assert dash.measurements.iloc[0]["pixels"] == before


def test_brush_classifier_labels_the_painted_class():
    dash = SegmentationDashboard(ring())
    dash.mode = "brush classifier"
    assert dash.panel.tool == "brush"
    dash.panel.scribble([(32, 47), (47, 32)], label=2, radius_mm=1)  # the ring
    dash.panel.scribble([(32, 32), (2, 2), (60, 60)], label=1, radius_mm=1)
    labels = dash.labels
    r = np.hypot(*np.ogrid[-32:32, -32:32])
    ring_mask = (r >= 10) & (r < 20)
    assert set(np.unique(labels)) == {0, 1}  # background class -> 0
    assert (labels[ring_mask] == 1).mean() > 0.95
    assert (labels[~ring_mask] == 0).mean() > 0.95
    assert dash.measurements.iloc[0]["mean (HU)"] > 0


def test_threshold_range_comes_back_after_another_mode(dash):
    dash.set_range(30, 70)
    dash.mode = "region grow"
    dash.mode = "threshold"
    assert (dash.panel.params["low"], dash.panel.params["high"]) == (30, 70)


def test_mask_export_loads_back(dash):
    dash.preset = "bone"
    payload = dash.export_mask()
    mask = ml.load(payload)
    assert np.array_equal(mask.array, dash.labels)
    assert mask.spacing == pytest.approx(dash.image.spacing)
    assert 'download="mask.nii.gz"' in dash._links["mask"].value


def test_csv_export_has_units(dash):
    text = dash.export_csv()
    table = pd.read_csv(io.StringIO(text))
    assert list(table.columns)[1:3] == ["area (mm²)", "mean (HU)"]
    assert table["area (mm²)"].iloc[0] == pytest.approx(
        dash.measurements["area (mm²)"].iloc[0]
    )


def test_recipe_export_replays_the_mask(dash):
    dash.preset = "bone"
    dash.set_cleanup("fill_holes")
    recipe = Recipe.from_json(dash.export_recipe())
    result = recipe.apply(dash.image)
    assert np.array_equal(result.labels > 0, dash.labels > 0)


def test_classifier_recipe_is_a_sentence():
    dash = SegmentationDashboard(ring())
    dash.mode = "brush classifier"
    dash._export(dash.export_recipe, "recipe (JSON)")
    assert "recipe" in dash.message.lower()
    assert dash._links["recipe"].value == ""


def test_pair_is_deidentified_and_loads_back(dash):
    original = pydicom.dcmread(dash.image.source)
    dash.preset = "bone"
    archive = zipfile.ZipFile(io.BytesIO(dash.export_pair()))
    assert sorted(archive.namelist()) == [
        "image.nii.gz",
        "image/image_001.dcm",
        "mask.nii.gz",
        "measurements.csv",
    ]
    raw = archive.read("image/image_001.dcm")
    ds = pydicom.dcmread(io.BytesIO(raw))
    assert ds.PatientIdentityRemoved == "YES"
    assert str(ds.get("PatientName", "")) == "" and ds.get("PatientID", "") == ""
    assert ds.SOPInstanceUID != original.SOPInstanceUID
    assert ds.StudyInstanceUID != original.StudyInstanceUID
    assert not ds.get("StudyDate")
    assert not any(elem.tag.is_private for elem in ds.iterall())
    assert np.array_equal(ml.load(raw).array, dash.image.array)
    assert np.array_equal(ml.load(archive.read("image.nii.gz")).array, dash.image.array)
    assert np.array_equal(ml.load(archive.read("mask.nii.gz")).array, dash.labels)
    assert dash.message.startswith("The zip is ready (1 de-identified DICOM")


def test_pair_of_a_series_keeps_one_study():
    dash = SegmentationDashboard()
    payload, volume = series_zip(3)
    upload(dash, "series.zip", payload)
    assert dash.image.array.shape == volume.shape
    archive = zipfile.ZipFile(io.BytesIO(dash.export_pair()))
    files = [n for n in archive.namelist() if n.endswith(".dcm")]
    assert len(files) == 3
    sets = [pydicom.dcmread(io.BytesIO(archive.read(n))) for n in files]
    assert len({ds.StudyInstanceUID for ds in sets}) == 1
    assert len({ds.SOPInstanceUID for ds in sets}) == 3


def test_pair_warns_of_burned_in_text():
    ds = pydicom.dcmread(dicom_file("CT_small.dcm"))
    ds.BurnedInAnnotation = "YES"
    buffer = io.BytesIO()
    ds.save_as(buffer)
    dash = SegmentationDashboard()
    dash.load_bytes(buffer.getvalue(), "burned.dcm")
    dash.export_pair()
    assert "burned into the pixels" in dash.message


def test_pair_of_a_nifti_has_no_dicom(brain):
    dash = SegmentationDashboard(brain)
    dash.set_range(100, 200)
    names = zipfile.ZipFile(io.BytesIO(dash.export_pair())).namelist()
    assert not any(n.endswith(".dcm") for n in names)
    assert "(image and mask as NIfTI)" in dash.message


def test_garbage_upload_is_a_sentence_and_the_page_goes_on(dash):
    before = dash.image
    upload(dash, "scan.dcm", np.random.default_rng(1).bytes(5000))
    assert "scan.dcm" in dash.message and dash.image is before
    dash.preset = "bone"  # still works
    assert dash.measurements.iloc[0]["min (HU)"] >= 300


def test_too_large_and_empty_uploads(dash, monkeypatch):
    monkeypatch.setattr(_dashboard, "MAX_UPLOAD_BYTES", 1000)
    with pytest.raises(ValueError, match="the limit is"):
        dash.load_bytes(b"x" * 2000, "big.dcm")
    assert "big.dcm is 0.0 MiB" in dash.message
    with pytest.raises(ValueError, match="empty"):
        dash.load_bytes(b"", "none.dcm")


def test_colour_image_is_refused(dash):
    rgb = display.encode_png(
        np.random.default_rng(2).integers(0, 255, (8, 8, 3), dtype=np.uint8)
    )
    with pytest.raises(ValueError, match="colour"):
        dash.load_bytes(rgb, "photo.png")
    assert "grey images" in dash.message
    assert dash.image.modality == "CT"


def test_new_image_clears_the_exports(dash):
    dash.export_mask()
    dash.load_sample("spine_ct")
    assert all(link.value == "" for link in dash._links.values())
    assert dash.image.array.shape == (128, 128)
    assert json.loads(dash.export_recipe())["steps"][0]["op"] == "threshold_range"


def test_a_new_mode_does_not_show_the_last_modes_region(dash):
    assert dash.measurements.shape[0] == 1  # the threshold's region
    dash.mode = "region grow"  # no seed yet
    assert dash.summary == "No region yet." and not dash.labels.any()
    assert "place a seed" in dash.panel.parts["message"].value
