"""Measurements as DICOM SR (TID 1500) and de-identified SEG+SR exports.

Known truths: the labels are ellipsoids drawn in mm on a built series, so the
expected volume is their voxel count times the voxel volume, and the mean ±
SD are numpy's over the image's values inside each label, computed here.
"""

from __future__ import annotations

import io
from types import SimpleNamespace

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.sr.codedict import codes

import medimg_lab as ml
from medimg_lab.io.deid import deidentified_bytes
from medimg_lab.io.results import (
    SEG_NAME,
    SR_NAME,
    export_results,
    results_bytes,
    results_datasets,
)
from medimg_lab.io.seg import seg_dataset
from medimg_lab.io.sr import read_sr, save_sr, sr_dataset
from tests.helpers import dicom_file
from tests.io.results_cases import NON_SQUARE, THREE, THREE_NAMES, ct_series, phantom


def _truth(labels, image):
    """Per label: volume in mL (or area in mm²), mean and SD of the values."""
    voxel = float(np.prod(image.spacing))
    out = {}
    for n in np.unique(labels[labels > 0]):
        values = image.array[labels == n].astype(np.float64)
        size = values.size * voxel / (1000.0 if labels.ndim == 3 else 1.0)
        out[int(n)] = (size, values.mean(), values.std())
    return out


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sr_series")
    made = ct_series(folder / "ct", NON_SQUARE, seed=11)
    image = ml.load(made.folder)
    labels = phantom(image.shape, image.spacing, THREE)
    seg = seg_dataset(labels, image, segments=THREE_NAMES)
    path = save_sr(labels, image, seg, folder / "sr.dcm")
    return SimpleNamespace(
        made=made, image=image, labels=labels, seg=seg, path=path, folder=folder
    )


def test_sr_round_trip_values_and_units(series):
    table = read_sr(series.path).set_index("label")
    truth = _truth(series.labels, series.image)
    assert sorted(table.index) == sorted(truth) == [1, 2, 3]
    for n, (volume, mean, sd) in truth.items():
        row = table.loc[n]
        assert row["volume_ml"] == pytest.approx(volume, rel=1e-9)
        assert row["mean_HU"] == pytest.approx(mean, rel=1e-9, abs=1e-9)
        assert row["sd_HU"] == pytest.approx(sd, rel=1e-9)
        assert row["segment"] == f"{THREE_NAMES[n]} (segment {n})"
    # and in the units DICOM names: UCUM mL and Hounsfield units, Mean and SD
    sr = hd.sr.srread(series.path)
    report = hd.sr.MeasurementReport.from_sequence([sr])
    groups = report.get_volumetric_roi_measurement_groups()
    assert len(groups) == 3
    for group in groups:
        by_derivation = {
            (m.derivation.value if m.derivation else None): m
            for m in group.get_measurements()
        }
        assert by_derivation[None].name.value == codes.SCT.Volume.value
        assert by_derivation[None].unit.value == "mL"
        for stat in (codes.SCT.Mean, codes.SCT.StandardDeviation):
            m = by_derivation[stat.value]
            assert m.unit.value == "[hnsf'U]"
            assert m.name.value == codes.DCM.AttenuationCoefficient.value


def test_sr_references_the_seg_and_the_source_series(series):
    sr = hd.sr.srread(series.path)
    assert sr.StudyInstanceUID == series.seg.StudyInstanceUID
    report = hd.sr.MeasurementReport.from_sequence([sr])
    numbers = []
    for group in report.get_volumetric_roi_measurement_groups():
        ref = group.referenced_segment
        assert ref.referenced_sop_instance_uid == series.seg.SOPInstanceUID
        assert ref.referenced_sop_class_uid == series.seg.SOPClassUID
        source = ref.source_series_for_segmentation
        assert source.value == series.made.series_uid
        numbers.extend(ref.referenced_segment_numbers)
        kind = group.finding_type
        item = series.seg.SegmentSequence[ref.referenced_segment_numbers[0] - 1]
        assert kind.value == item.SegmentedPropertyTypeCodeSequence[0].CodeValue
    assert sorted(numbers) == [1, 2, 3]
    evidence = {e[2] for e in sr.get_evidence()}
    assert evidence == {series.seg.SOPInstanceUID, *series.made.slice_of}
    # pydicom alone reads it as a TID 1500 document
    plain = pydicom.dcmread(series.path)
    assert plain.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    assert plain.Modality == "SR"


def test_single_slice_reports_area_in_mm2_and_its_seg_frame(tmp_path):
    path = dicom_file("CT_small.dcm")
    image = ml.load(path)
    mask = image.array > 300
    seg = seg_dataset(mask, image, segments=["bone"])
    out = save_sr(mask, image, seg, tmp_path / "sr.dcm")
    ((area, mean, sd),) = _truth(mask.astype(np.uint8), image).values()
    row = read_sr(out).iloc[0]
    assert row["area_mm2"] == pytest.approx(area, rel=1e-9)
    assert (row["mean_HU"], row["sd_HU"]) == pytest.approx((mean, sd), rel=1e-9)
    report = hd.sr.MeasurementReport.from_sequence([hd.sr.srread(out)])
    (group,) = report.get_planar_roi_measurement_groups()
    ref = group.referenced_segmentation_frame
    assert ref.referenced_sop_instance_uid == seg.SOPInstanceUID
    assert ref.referenced_frame_numbers == [1]
    source = pydicom.dcmread(path, stop_before_pixels=True)
    assert ref.source_image_for_segmentation.referenced_sop_instance_uid == (
        source.SOPInstanceUID
    )


def test_mr_values_are_in_arbitrary_units(tmp_path):
    image = ml.load(dicom_file("MR_small.dcm"))
    labels = (image.array > np.percentile(image.array, 60)).astype(np.uint8)
    seg = seg_dataset(labels, image, segments=["tissue"])
    out = save_sr(labels, image, seg, tmp_path / "sr.dcm")
    ((area, mean, sd),) = _truth(labels, image).values()
    row = read_sr(out).iloc[0]
    assert row["area_mm2"] == pytest.approx(area, rel=1e-9)
    assert (row["mean_a.u."], row["sd_a.u."]) == pytest.approx((mean, sd), rel=1e-9)
    report = hd.sr.MeasurementReport.from_sequence([hd.sr.srread(out)])
    (group,) = report.get_planar_roi_measurement_groups()
    names = {m.name.value for m in group.get_measurements() if m.derivation}
    assert names == {codes.DCM.MRSignalIntensity.value}


def test_a_declared_segment_without_pixels_reports_zero(tmp_path):
    image = ml.load(dicom_file("CT_small.dcm"))
    mask = image.array > 300
    seg = seg_dataset(mask, image, segments={1: "bone", 2: "lesion"})
    table = read_sr(sr_dataset(mask, image, seg)).set_index("label")
    assert table.loc[2, "area_mm2"] == 0.0
    assert np.isnan(table.loc[2, "mean_HU"])  # no value to average
    assert table.loc[1, "area_mm2"] > 0


# ---------------------------------------------------------- de-identified
#: Attributes of the source that name or date the patient or the visit.
_PHI = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "InstitutionName",
    "ReferringPhysicianName",
    "AccessionNumber",
    "StudyDate",
    "StudyID",
)


def _phi_values(ds) -> list[str]:
    values = []
    for key in _PHI:
        value = str(ds.get(key, "") or "").strip()
        if len(value) >= 3:
            values.append(value)
    return values


def test_deidentified_export_references_the_deidentified_images(series, tmp_path):
    salt = "test-salt-for-one-study"
    files = sorted(series.made.folder.glob("*.dcm"))
    images = [
        pydicom.dcmread(io.BytesIO(deidentified_bytes(p, salt=salt)[0])) for p in files
    ]
    out = export_results(
        series.labels,
        series.image,
        tmp_path / "export",
        segments=THREE_NAMES,
        deidentified=True,
        salt=salt,
    )
    seg = hd.seg.segread(out["seg"])
    sr = hd.sr.srread(out["sr"])
    clean_uids = {str(d.SOPInstanceUID) for d in images}
    (ref,) = seg.ReferencedSeriesSequence
    assert {
        str(i.ReferencedSOPInstanceUID) for i in ref.ReferencedInstanceSequence
    } == (clean_uids)
    assert ref.SeriesInstanceUID == images[0].SeriesInstanceUID
    for ds in (seg, sr):
        assert ds.StudyInstanceUID == images[0].StudyInstanceUID
        assert ds.PatientIdentityRemoved == "YES"
    assert seg.FrameOfReferenceUID == images[0].FrameOfReferenceUID
    assert {e[2] for e in sr.get_evidence()} == {seg.SOPInstanceUID, *clean_uids}
    # each frame still lies on its (de-identified) source slice
    by_uid = {str(d.SOPInstanceUID): d for d in images}
    for frame in seg.PerFrameFunctionalGroupsSequence:
        uid = frame.DerivationImageSequence[0].SourceImageSequence[0]
        source = by_uid[str(uid.ReferencedSOPInstanceUID)]
        np.testing.assert_allclose(
            frame.PlanePositionSequence[0].ImagePositionPatient,
            source.ImagePositionPatient,
        )
    # the measurements and segment names survive; the labels load back
    table = read_sr(out["sr"]).set_index("label")
    plain = read_sr(series.path).set_index("label")
    np.testing.assert_allclose(table["volume_ml"], plain["volume_ml"])
    assert list(table["segment"]) == list(plain["segment"])
    np.testing.assert_array_equal(ml.load(out["seg"]).array, series.labels)
    # nothing of the patient, the visit or the original UIDs is left
    source = pydicom.dcmread(files[0], stop_before_pixels=True)
    needles = [
        *_phi_values(source),
        str(source.StudyInstanceUID),
        str(source.FrameOfReferenceUID),
        series.made.series_uid,
        *series.made.slice_of,
    ]
    assert len(needles) > 15
    for path in out.values():
        payload = path.read_bytes()
        found = [n for n in needles if n.encode() in payload]
        assert found == [], f"{path.name} holds {found}"


def test_deidentified_without_a_salt_still_matches_itself(series, monkeypatch):
    monkeypatch.delenv("MEDIMG_DEID_SALT", raising=False)
    seg, sr, reports = results_datasets(
        series.labels, series.image, deidentified=True, date_shift_days=-30
    )
    assert [r.salt_shared for r in reports] == [False, False]
    assert {e[2] for e in hd.sr.Comprehensive3DSR.from_dataset(sr).get_evidence()} >= {
        seg.SOPInstanceUID
    }
    assert seg.StudyInstanceUID == sr.StudyInstanceUID
    assert all(r.dates_shifted > 0 for r in reports)


def test_results_bytes_are_dicom_files(series):
    payload = results_bytes(series.labels, series.image, segments=THREE_NAMES)
    assert set(payload) == {SEG_NAME, SR_NAME}
    for data in payload.values():
        assert data[128:132] == b"DICM"
    np.testing.assert_array_equal(ml.load(payload[SEG_NAME]).array, series.labels)
    assert list(read_sr(payload[SR_NAME])["label"]) == [1, 2, 3]


def test_export_refuses_to_overwrite_and_writes_nothing(series, tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / SR_NAME).write_bytes(b"earlier")
    with pytest.raises(ml.OutputExistsError, match=r"measurements\.dcm.*overwrite"):
        export_results(series.labels, series.image, folder)
    assert sorted(p.name for p in folder.iterdir()) == [SR_NAME]
    assert (folder / SR_NAME).read_bytes() == b"earlier"


# ------------------------------------------------------------- hostile input
def test_a_seg_of_other_labels_is_refused(series):
    other = series.labels.copy()
    other[other == 3] = 5
    with pytest.raises(ValueError, match=r"labels \[5\] have no segment in seg"):
        sr_dataset(other, series.image, series.seg)
    with pytest.raises(ValueError, match=r"seg must be the DICOM Segmentation"):
        sr_dataset(series.labels, series.image, pydicom.Dataset())


def test_read_sr_of_an_image_is_a_clear_error():
    with pytest.raises(ml.NotAnImageError, match=r"not a DICOM SR holding a TID 1500"):
        read_sr(dicom_file("CT_small.dcm"))


def test_deidentify_cleans_an_item_shared_by_two_sequences_once():
    """highdicom shares item objects between sequences; deepcopy keeps that."""
    uid = pydicom.uid.generate_uid()

    def item():
        ref = pydicom.Dataset()
        ref.ReferencedSOPClassUID = pydicom.uid.CTImageStorage
        ref.ReferencedSOPInstanceUID = uid
        ref.ContentDate, ref.ContentTime = "20200102", "101500"
        return ref

    shared, apart = pydicom.Dataset(), pydicom.Dataset()
    one = item()
    shared.SourceImageSequence = [one]
    shared.ReferencedInstanceSequence = [one]
    apart.SourceImageSequence = [item()]
    apart.ReferencedInstanceSequence = [item()]
    options = {"salt": "one-salt", "date_shift_days": 10}
    clean, _ = ml.deidentify(shared, **options)
    expected, _ = ml.deidentify(apart, **options)
    for key in ("SourceImageSequence", "ReferencedInstanceSequence"):
        got, want = clean[key].value[0], expected[key].value[0]
        assert got.ReferencedSOPInstanceUID == want.ReferencedSOPInstanceUID != uid
        assert (got.ContentDate, got.ContentTime) == (
            want.ContentDate,
            want.ContentTime,
        )


def test_a_radiograph_without_pixel_spacing_reports_no_area(tmp_path):
    """RG1_UNCR's PixelSpacing is 0\\0: an area in mm² would be invented."""
    image = ml.load(dicom_file("RG1_UNCR.dcm"))
    assert image.meta["spacing_known"] is False
    labels = np.zeros(image.shape, np.uint8)
    labels[400:700, 300:900] = 1
    out = export_results(labels, image, tmp_path, segments=["bone"])
    back = ml.load(out["seg"])
    np.testing.assert_array_equal(back.array, labels)
    assert back.meta["spacing_known"] is False
    row = read_sr(out["sr"]).iloc[0]
    assert "area_mm2" not in row.index
    values = image.array[labels == 1].astype(np.float64)
    assert row["mean_a.u."] == pytest.approx(values.mean(), rel=1e-9)
