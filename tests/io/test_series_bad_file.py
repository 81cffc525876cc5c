"""A series folder with one bad file still loads its good slices (issue 15, item 4).

The series are real images written as single-frame DICOM slices with known
geometry: eight axial slices of the MNI brain MRI (233 x 197, anisotropic
pixels, 2 mm apart) and the spine CT slice shifted one pixel per slice (128 x
128, on a tilted plane, 2.5 mm apart). Then one file goes bad: truncated, not
DICOM, duplicated, missing, or out of place.
"""

from __future__ import annotations

import random
import shutil
import warnings
from types import SimpleNamespace

import numpy as np
import pydicom
import pytest
from PIL import Image

import medimg_lab as ml
from medimg_lab.io import SliceGapWarning
from tests.helpers import dicom_file

TILT = np.deg2rad(12.0)


def write_series(folder, slices, template, *, step_mm, pixel_spacing, tilt, seed):
    """Write ``slices`` as DICOM files in shuffled order; ``{index: path}``."""
    folder.mkdir(parents=True, exist_ok=True)
    row = np.array([1.0, 0.0, 0.0])
    col = np.array([0.0, np.cos(tilt), np.sin(tilt)])
    normal = np.cross(row, col)
    origin = np.array([-40.0, 12.5, 30.0])
    order = list(range(len(slices)))
    random.Random(seed).shuffle(order)  # noqa: S311 file order, not security
    paths = {}
    for n, k in enumerate(order):
        ds = template.copy()
        ds.Rows, ds.Columns = slices.shape[1:]
        ds.PixelData = slices[k].astype("<i2").tobytes()
        ds.ImageOrientationPatient = [*row, *col]
        ds.ImagePositionPatient = [float(v) for v in origin + k * step_mm * normal]
        ds.PixelSpacing = list(pixel_spacing)
        ds.SliceThickness = step_mm
        ds.InstanceNumber = len(slices) - n  # unrelated to the position
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        paths[k] = folder / f"IM{n:03d}.dcm"
        ds.save_as(paths[k])
    return paths


def brain_series(folder):
    """8 axial MNI brain slices, 233 x 197 of 0.9 x 0.7 mm, 2 mm apart."""
    t1 = ml.data.sample("brain_mri").array
    slices = t1[60:140:10].astype(np.int16)  # distinct slices
    template = pydicom.dcmread(dicom_file("MR_small.dcm"))
    paths = write_series(
        folder,
        slices,
        template,
        step_mm=2.0,
        pixel_spacing=(0.9, 0.7),
        tilt=0.0,
        seed=1,
    )
    return paths, slices, 2.0


def ct_series(folder):
    """The spine CT slice shifted a pixel per slice: 7 slices 2.5 mm apart."""
    template = pydicom.dcmread(dicom_file("CT_small.dcm"))
    raw = template.pixel_array
    slices = np.stack([np.roll(raw, k, axis=1) for k in range(7)])
    paths = write_series(
        folder,
        slices,
        template,
        step_mm=2.5,
        pixel_spacing=[float(v) for v in template.PixelSpacing],
        tilt=TILT,
        seed=2,
    )
    hu = ml.load(dicom_file("CT_small.dcm")).array
    return paths, np.stack([np.roll(hu, k, axis=1) for k in range(7)]), 2.5


SERIES = {"brain": brain_series, "ct": ct_series}


@pytest.fixture(params=sorted(SERIES))
def series(request, tmp_path):
    folder = tmp_path / request.param
    paths, truth, step = SERIES[request.param](folder)
    return SimpleNamespace(folder=folder, paths=paths, truth=truth, step=step)


def load_quietly(folder, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error", SliceGapWarning)
        return ml.load(folder, **kwargs)


def skipped(image):
    return {entry["file"]: entry["reason"] for entry in image.meta.get("skipped", [])}


def test_the_clean_series_loads_with_its_geometry(series):
    folder, truth, step = series.folder, series.truth, series.step
    image = load_quietly(folder)
    np.testing.assert_array_equal(image.array, truth)
    assert image.spacing[0] == pytest.approx(step)
    assert "skipped" not in image.meta and "slice_gaps" not in image.meta


def test_a_truncated_file_is_skipped_and_the_rest_load(series):
    folder, paths, truth, step = series.folder, series.paths, series.truth, series.step
    last = paths[len(truth) - 1]  # the top slice: no gap is left behind
    raw = last.read_bytes()
    last.write_bytes(raw[: len(raw) - 1000])
    image = load_quietly(folder)
    np.testing.assert_array_equal(image.array, truth[:-1])
    assert image.spacing[0] == pytest.approx(step)
    reasons = skipped(image)
    assert list(reasons) == [last.name]
    assert "cut short" in reasons[last.name]
    assert image.meta["series_files"] == len(truth) - 1


def test_a_file_cut_inside_its_header_is_skipped_with_its_reason(series):
    folder, paths, truth = series.folder, series.paths, series.truth
    first = paths[0]
    first.write_bytes(first.read_bytes()[:400])
    image = load_quietly(folder)
    np.testing.assert_array_equal(image.array, truth[1:])
    assert "cut short" in skipped(image)[first.name]


def test_files_that_are_not_dicom_are_skipped_with_their_reason(series):
    folder, truth = series.folder, series.truth
    (folder / "notes.txt").write_text("scanned on the old console\n")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / "preview.png")
    image = load_quietly(folder)
    np.testing.assert_array_equal(image.array, truth)
    reasons = skipped(image)
    assert set(reasons) == {"notes.txt", "preview.png"}
    assert all("not a DICOM" in reason for reason in reasons.values())
    assert image.meta["skipped_files"] == 2


def test_a_copy_of_a_file_is_a_duplicate_and_is_skipped(series):
    folder, paths, truth = series.folder, series.paths, series.truth
    original = paths[3]
    shutil.copyfile(original, folder / "ZZ_copy.dcm")  # same SOP Instance UID
    image = load_quietly(folder)
    np.testing.assert_array_equal(image.array, truth)
    reason = skipped(image)["ZZ_copy.dcm"]
    assert "duplicate" in reason and original.name in reason
    assert "SOP Instance UID" in reason


def test_a_resent_slice_with_a_new_uid_is_a_duplicate_too(series):
    folder, paths, truth = series.folder, series.paths, series.truth
    ds = pydicom.dcmread(paths[2])
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.save_as(folder / "ZZ_resent.dcm")
    image = load_quietly(folder)
    np.testing.assert_array_equal(image.array, truth)
    reason = skipped(image)["ZZ_resent.dcm"]
    assert "duplicate" in reason and paths[2].name in reason
    assert "same position" in reason


def test_two_different_slices_at_one_position_are_an_error(series):
    folder, paths, truth = series.folder, series.paths, series.truth
    ds = pydicom.dcmread(paths[2])
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.PixelData = np.roll(truth[2], 9, axis=0).astype("<i2").tobytes()
    ds.save_as(folder / "ZZ_other.dcm")
    with pytest.raises(ml.SeriesError) as err:
        ml.load(folder)
    message = str(err.value)
    assert "ZZ_other.dcm" in message and paths[2].name in message
    assert "different pixels" in message


def test_a_missing_slice_in_the_middle_warns_with_the_gap_in_mm(series):
    folder, paths, truth, step = series.folder, series.paths, series.truth, series.step
    paths[3].unlink()
    with pytest.warns(SliceGapWarning) as caught:
        image = ml.load(folder)
    message = str(caught[0].message)
    assert f"{2 * step:.1f} mm" in message and f"{step:.1f} mm" in message
    assert "1 slice missing" in message
    assert "short" in message  # it says where the stacked geometry is wrong
    keep = [k for k in range(len(truth)) if k != 3]
    np.testing.assert_array_equal(image.array, truth[keep])
    assert image.spacing[0] == pytest.approx(step)  # not the median of the gaps
    (gap,) = image.meta["slice_gaps"]
    assert gap["gap_mm"] == pytest.approx(2 * step, abs=1e-3)
    assert gap["missing_slices"] == 1
    assert image.meta["warnings"] == [message]


def test_a_truncated_middle_slice_is_skipped_and_its_gap_is_reported(series):
    folder, paths, truth = series.folder, series.paths, series.truth
    raw = paths[4].read_bytes()
    paths[4].write_bytes(raw[: len(raw) // 2])
    with pytest.warns(SliceGapWarning, match="1 slice missing"):
        image = ml.load(folder)
    assert "cut short" in skipped(image)[paths[4].name]
    assert image.array.shape[0] == len(truth) - 1


def test_three_slices_with_the_middle_one_missing_keep_the_right_spacing(tmp_path):
    paths, truth, step = ct_series(tmp_path / "ct")
    for k in (1, 2, 3, 5):  # slices 0, 4 and 6 remain: steps of 4 and 2
        paths[k].unlink()
    with pytest.warns(SliceGapWarning, match="1 slice missing"):
        image = ml.load(tmp_path / "ct")
    # The smallest step is the grid (the median of 10 and 5 mm would be 7.5).
    assert image.spacing[0] == pytest.approx(2 * step)
    np.testing.assert_array_equal(image.array, truth[[0, 4, 6]])


def test_a_slice_off_the_grid_is_an_error_not_a_wrong_volume(series):
    folder, paths, step = series.folder, series.paths, series.step
    ds = pydicom.dcmread(paths[3])
    position = np.asarray([float(v) for v in ds.ImagePositionPatient])
    orientation = np.asarray([float(v) for v in ds.ImageOrientationPatient])
    normal = np.cross(orientation[:3], orientation[3:])
    ds.ImagePositionPatient = [float(v) for v in position + 0.45 * step * normal]
    ds.save_as(paths[3])
    with pytest.raises(ml.SeriesError, match="not evenly spaced") as err:
        ml.load(folder)
    assert "wrong" in str(err.value)


def test_a_folder_of_only_bad_files_is_an_error(tmp_path):
    paths, _truth, _step = ct_series(tmp_path / "ct")
    for path in paths.values():
        path.write_bytes(path.read_bytes()[:-2000])
    with pytest.raises(ml.TruncatedFileError, match="cut short"):
        ml.load(tmp_path / "ct")


def test_the_skipped_files_record_no_patient_identifier(series):
    folder, paths = series.folder, series.paths
    raw = paths[5].read_bytes()
    paths[5].write_bytes(raw[: len(raw) - 1000])
    shutil.copyfile(paths[1], folder / "ZZ_copy.dcm")
    (folder / "notes.txt").write_text("not an image")
    ds = pydicom.dcmread(paths[1])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        image = ml.load(folder)
    text = repr(image.meta) + "".join(str(w.message) for w in caught)
    assert len(skipped(image)) == 3
    for keyword in (
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "SOPInstanceUID",
        "StudyDate",
    ):
        value = str(ds.get(keyword) or "")
        if len(value) >= 4:
            assert value not in text, keyword


def test_a_localizer_in_the_series_is_skipped_as_the_odd_one_out(series):
    folder, paths, truth = series.folder, series.paths, series.truth
    ds = pydicom.dcmread(paths[0])
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.Rows, ds.Columns = 64, 96  # a scout: another size, another plane
    ds.PixelData = np.zeros((64, 96), "<i2").tobytes()
    ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
    ds.save_as(folder / "ZZ_scout.dcm")
    image = load_quietly(folder)
    np.testing.assert_array_equal(image.array, truth)
    reason = skipped(image)["ZZ_scout.dcm"]
    assert "64 x 96" in reason and f"{truth.shape[1]} x {truth.shape[2]}" in reason


def test_a_slice_on_another_plane_is_skipped(series):
    folder, paths, truth = series.folder, series.paths, series.truth
    ds = pydicom.dcmread(paths[0])
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.ImageOrientationPatient = [0, 1, 0, 0, 0, -1]  # sagittal, same size
    ds.save_as(folder / "ZZ_sagittal.dcm")
    image = load_quietly(folder)
    np.testing.assert_array_equal(image.array, truth)
    assert "orientation" in skipped(image)["ZZ_sagittal.dcm"]


def test_half_the_slices_of_another_size_is_an_error(tmp_path):
    paths, _truth, _step = ct_series(tmp_path / "ct")
    for k in (0, 1, 2, 3):
        ds = pydicom.dcmread(paths[k])
        ds.Rows, ds.Columns = 64, 64
        ds.PixelData = np.zeros((64, 64), "<i2").tobytes()
        ds.save_as(paths[k])
    with pytest.raises(ml.SeriesError, match="different sizes"):
        ml.load(tmp_path / "ct")
