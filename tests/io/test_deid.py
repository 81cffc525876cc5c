"""Tests for the PS3.15 Basic Profile de-identifying export."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
from collections import OrderedDict

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.datadict import tag_for_keyword

from medimg_lab.errors import (
    MedImgError,
    NotAnImageError,
    NotFoundError,
    OutputExistsError,
)
from medimg_lab.io import deid
from medimg_lab.io.deid import (
    _ACTIONS,
    DeidReport,
    deidentify,
    export_deidentified,
    is_uid_preserved,
)

FILES = [
    "693_UNCR.dcm",
    "CT_small.dcm",
    "MR-SIEMENS-DICOM-WithOverlays.dcm",
    "RG1_UNCR.dcm",
    "US1_UNCR.dcm",
    "eCT_Supplemental.dcm",
]
# Two instances of one US series (same Study/Series UIDs, different SOP UIDs).
SAME_SERIES = ("US1_UNCR.dcm", "US1_UNCI.dcm")
# Files that carry a StudyDate (693_UNCR's is empty), for the date-shift test.
DATED = [
    name for name in FILES if pydicom.dcmread(get_testdata_file(name)).get("StudyDate")
]
SALT = "test-salt"
SHIFT = -37


@pytest.fixture(autouse=True)
def _fresh_salt_registry(monkeypatch):
    """Each test starts with no study seen (see UnsharedSaltWarning)."""
    monkeypatch.setattr(deid, "_SEEN", OrderedDict())
    monkeypatch.delenv(deid.SALT_ENV, raising=False)


def _src(name: str) -> str:
    return get_testdata_file(name)


def _export(name: str, tmp_path, **kwargs) -> tuple[pydicom.Dataset, DeidReport]:
    out = tmp_path / "out.dcm"
    report = export_deidentified(_src(name), out, salt=SALT, **kwargs)
    return pydicom.dcmread(out), report


def _all_elements(ds: pydicom.Dataset):
    yield from ds.iterall()
    if getattr(ds, "file_meta", None) is not None:
        yield from ds.file_meta.iterall()


def _sha256(path) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


@pytest.mark.parametrize("name", FILES)
def test_patient_name_and_id_absent_from_output_bytes(name, tmp_path):
    ds = pydicom.dcmread(_src(name))
    pn, pid = str(ds.get("PatientName", "")), str(ds.get("PatientID", ""))
    parts = [part for part in pn.split("^") if len(part) >= 4]
    needles = [s for s in (pn, pid, *parts) if s]
    assert needles, "every sample in FILES carries a PatientName or PatientID"
    out = tmp_path / "out.dcm"
    export_deidentified(_src(name), out, salt=SALT)
    raw = out.read_bytes()
    for needle in needles:
        for encoded in {needle.encode(), needle.encode("latin-1", "replace")}:
            assert encoded not in raw, needle


@pytest.mark.parametrize("name", FILES)
def test_no_private_tags_remain(name, tmp_path):
    out, _ = _export(name, tmp_path)
    assert not [e.tag for e in _all_elements(out) if e.tag.is_private]


@pytest.mark.parametrize("name", FILES)
def test_no_person_name_holds_a_value(name, tmp_path):
    out, _ = _export(name, tmp_path)
    assert not [e for e in _all_elements(out) if e.VR == "PN" and str(e.value)]


@pytest.mark.parametrize("name", FILES)
def test_dates_emptied_by_default(name, tmp_path):
    out, report = _export(name, tmp_path)
    assert not [e for e in _all_elements(out) if e.VR in ("DA", "DT") and e.value]
    assert report.dates_shifted == 0
    assert out.LongitudinalTemporalInformationModified == "REMOVED"


@pytest.mark.parametrize("name", DATED)
def test_study_date_shifted_by_n_days(name, tmp_path):
    # The Modified Dates option moves a date with its time as one instant:
    # N days plus a keyed part of a day, so StudyDate moves by N or N + 1.
    src = pydicom.dcmread(_src(name))
    out, report = _export(name, tmp_path, date_shift_days=SHIFT)
    assert report.date_shift.days == SHIFT
    assert 0 <= report.date_shift.seconds < 86400
    time = str(src.get("StudyTime", "") or "")[:6].ljust(6, "0")
    start = dt.datetime.strptime(src.StudyDate + time, "%Y%m%d%H%M%S")
    assert out.StudyDate == (start + report.date_shift).strftime("%Y%m%d")


@pytest.mark.parametrize("name", FILES)
def test_every_kept_date_is_an_input_date_shifted_by_n_days(name, tmp_path):
    def shift(value: str, extra: int) -> str:
        day = dt.datetime.strptime(value, "%Y%m%d") + dt.timedelta(SHIFT + extra)
        return day.strftime("%Y%m%d")

    src = pydicom.dcmread(_src(name))
    dates = {e.value for e in src.iterall() if e.VR == "DA" and e.value}
    # N days plus part of a day: a date paired with a late time rolls over.
    allowed = {shift(d, extra) for d in dates for extra in (0, 1)}
    out, _ = _export(name, tmp_path, date_shift_days=SHIFT)
    kept = {e.value for e in out.iterall() if e.VR == "DA" and e.value}
    assert kept <= allowed
    assert out.LongitudinalTemporalInformationModified == "MODIFIED"


@pytest.mark.parametrize("name", FILES)
def test_instance_uids_change(name, tmp_path):
    src = pydicom.dcmread(_src(name))
    out, _ = _export(name, tmp_path)
    for kw in ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"):
        assert out[kw].value != src[kw].value, kw
        assert out[kw].value.startswith("2.25."), kw


@pytest.mark.parametrize("name", FILES)
def test_class_and_transfer_syntax_uids_kept(name, tmp_path):
    src = pydicom.dcmread(_src(name))
    out, _ = _export(name, tmp_path)
    assert out.SOPClassUID == src.SOPClassUID
    assert out.file_meta.TransferSyntaxUID == src.file_meta.TransferSyntaxUID


@pytest.mark.parametrize("name", FILES)
def test_media_storage_uid_matches_sop_instance_uid(name, tmp_path):
    out, _ = _export(name, tmp_path)
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID


def test_same_salt_maps_uids_identically_across_calls():
    ds = pydicom.dcmread(_src("CT_small.dcm"))
    a, _ = deidentify(ds, salt=SALT)
    b, _ = deidentify(ds, salt=SALT)
    assert a.SOPInstanceUID == b.SOPInstanceUID
    assert a.FrameOfReferenceUID == b.FrameOfReferenceUID


def test_same_salt_keeps_two_files_in_one_series(tmp_path):
    first, second = (pydicom.dcmread(_src(n)) for n in SAME_SERIES)
    assert first.SOPInstanceUID != second.SOPInstanceUID
    a, _ = deidentify(first, salt=SALT)
    b, _ = deidentify(second, salt=SALT)
    assert a.StudyInstanceUID == b.StudyInstanceUID
    assert a.SeriesInstanceUID == b.SeriesInstanceUID
    assert a.SOPInstanceUID != b.SOPInstanceUID


def test_different_salt_gives_different_uids():
    ds = pydicom.dcmread(_src("CT_small.dcm"))
    a, _ = deidentify(ds, salt="one")
    b, _ = deidentify(ds, salt=b"two")
    assert a.StudyInstanceUID != b.StudyInstanceUID
    assert a.SOPInstanceUID != b.SOPInstanceUID


def test_no_salt_draws_a_random_one():
    ds = pydicom.dcmread(_src("CT_small.dcm"))
    with pytest.warns(deid.UnsharedSaltWarning):  # the second call: its study
        assert deidentify(ds)[0].SOPInstanceUID != deidentify(ds)[0].SOPInstanceUID


def test_empty_uid_stays_empty():
    ds = pydicom.Dataset()
    ds.SOPInstanceUID, ds.FrameOfReferenceUID = "1.2.3.4", ""
    out, report = deidentify(ds, salt=SALT)
    assert out.FrameOfReferenceUID == ""
    assert report.uids_remapped == 1


def test_invalid_date_is_emptied_when_shifting():
    ds = pydicom.Dataset()
    ds.StudyDate, ds.SeriesDate = "20040230", "20040228"
    out, report = deidentify(ds, salt=SALT, date_shift_days=1)
    assert (out.StudyDate, out.SeriesDate) == ("", "20040229")
    assert report.dates_shifted == 1


def test_well_known_uids_are_preserved():
    assert is_uid_preserved("1.2.840.10008.5.1.4.1.1.2")
    assert not is_uid_preserved("1.3.6.1.4.1.5962.1.2.1.20040119072730.12322")


@pytest.mark.parametrize("name", FILES)
def test_pixel_data_bytes_identical(name, tmp_path):
    src = pydicom.dcmread(_src(name))
    out, _ = _export(name, tmp_path)
    assert out.PixelData == src.PixelData


@pytest.mark.parametrize("name", FILES)
def test_pixel_array_identical(name, tmp_path):
    src = pydicom.dcmread(_src(name))
    out, _ = _export(name, tmp_path)
    np.testing.assert_array_equal(out.pixel_array, src.pixel_array)


@pytest.mark.parametrize("name", FILES)
def test_identity_removed_is_recorded(name, tmp_path):
    out, _ = _export(name, tmp_path)
    assert out.PatientIdentityRemoved == "YES"
    codes = [item.CodeValue for item in out.DeidentificationMethodCodeSequence]
    assert "113100" in codes


def test_shifted_dates_add_the_temporal_option_code(tmp_path):
    out, _ = _export("CT_small.dcm", tmp_path, date_shift_days=SHIFT)
    codes = [item.CodeValue for item in out.DeidentificationMethodCodeSequence]
    assert codes == ["113100", "113107"]


def test_overlays_are_removed(tmp_path):
    out, report = _export("MR-SIEMENS-DICOM-WithOverlays.dcm", tmp_path)
    assert not [e for e in out if e.tag.group & 0xFF00 == 0x6000]
    assert "(6000,3000)" in report.removed


def test_input_dataset_not_mutated():
    ds = pydicom.dcmread(_src("MR-SIEMENS-DICOM-WithOverlays.dcm"))
    name, uid = str(ds.PatientName), ds.SOPInstanceUID
    deidentify(ds, salt=SALT)
    assert str(ds.PatientName) == name
    assert ds.SOPInstanceUID == uid
    assert ds.file_meta.MediaStorageSOPInstanceUID == uid


def test_export_refuses_to_write_over_its_input(tmp_path):
    src = tmp_path / "in.dcm"
    shutil.copyfile(_src("CT_small.dcm"), src)
    before = _sha256(src)
    with pytest.raises(OutputExistsError):
        export_deidentified(src, src, overwrite=True)
    assert _sha256(src) == before


@pytest.mark.filterwarnings("ignore::medimg_lab.io.deid.UnsharedSaltWarning")
def test_export_refuses_existing_output_without_overwrite(tmp_path):
    out = tmp_path / "out.dcm"
    out.write_bytes(b"keep me")
    with pytest.raises(OutputExistsError):
        export_deidentified(_src("CT_small.dcm"), out)
    assert out.read_bytes() == b"keep me"
    export_deidentified(_src("CT_small.dcm"), out, overwrite=True)
    assert pydicom.dcmread(out).PatientIdentityRemoved == "YES"


def test_export_leaves_input_bytes_unchanged(tmp_path):
    src = tmp_path / "in.dcm"
    shutil.copyfile(_src("US1_UNCR.dcm"), src)
    before = _sha256(src)
    export_deidentified(src, tmp_path / "out.dcm", salt=SALT)
    assert _sha256(src) == before


def test_export_accepts_bytes(tmp_path):
    data = open(_src("CT_small.dcm"), "rb").read()
    export_deidentified(data, tmp_path / "out.dcm", salt=SALT)
    assert pydicom.dcmread(tmp_path / "out.dcm").PatientName == ""


def test_random_bytes_raise_not_an_image(tmp_path):
    with pytest.raises(NotAnImageError, match="<bytes>") as info:
        export_deidentified(os.urandom(512), tmp_path / "out.dcm")
    assert isinstance(info.value, MedImgError)
    assert not (tmp_path / "out.dcm").exists()


def test_random_file_error_names_the_file(tmp_path):
    src = tmp_path / "noise.dcm"
    src.write_bytes(os.urandom(512))
    with pytest.raises(NotAnImageError, match=r"noise\.dcm"):
        export_deidentified(src, tmp_path / "out.dcm")


def test_truncated_file_raises_not_an_image_and_writes_nothing(tmp_path):
    head = open(_src("CT_small.dcm"), "rb").read()[:1000]
    with pytest.raises(NotAnImageError, match="<bytes>"):
        export_deidentified(head, tmp_path / "out.dcm")
    assert list(tmp_path.iterdir()) == []


def test_missing_source_raises_not_found(tmp_path):
    with pytest.raises(NotFoundError, match="missing"):
        export_deidentified(tmp_path / "missing.dcm", tmp_path / "out.dcm")


@pytest.mark.parametrize(
    ("name", "flag"), [("US1_UNCR.dcm", True), ("CT_small.dcm", False)]
)
def test_burned_in_annotation_flag(name, flag):
    _, report = deidentify(pydicom.dcmread(_src(name)), salt=SALT)
    assert report.burned_in_annotation is flag


def test_action_table_keywords_exist_in_the_dictionary():
    assert [kw for kw in _ACTIONS if tag_for_keyword(kw) is None] == []
