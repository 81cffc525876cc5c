"""Masks and labels as DICOM SEG through highdicom (issue 19, item 2).

The SEG of a series built here (non-square, anisotropic, oblique, shuffled
files, a stale SpacingBetweenSlices) must put every frame on the source slice
it references, with that slice's position, and open in highdicom as a volume
whose voxels are the labels at the same places in the patient. It must carry
coded segments and the algorithm, reference every source instance, and load
back through ``medimg_lab.load`` as labels on the source's grid.
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
from medimg_lab.io.seg import (
    SEGMENT_PROPERTIES,
    Segment,
    load_seg,
    save_seg,
    seg_dataset,
)
from tests.helpers import dicom_file
from tests.io.results_cases import (
    NON_SQUARE,
    OBLIQUE,
    THREE,
    THREE_NAMES,
    ct_series,
    phantom,
)


@pytest.fixture(scope="module", params=[NON_SQUARE, OBLIQUE], ids=["96x128", "oblique"])
def series(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp("series")
    made = ct_series(folder, request.param, seed=7)
    image = ml.load(folder)
    labels = phantom(image.shape, image.spacing, THREE)
    assert set(np.unique(labels)) == {0, 1, 2, 3}  # every label drawn
    path = save_seg(
        labels, image, folder.parent / f"{folder.name}_seg.dcm", segments=THREE_NAMES
    )
    return SimpleNamespace(made=made, image=image, labels=labels, path=path)


def _frame_source(frame) -> str:
    return str(
        frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
    )


def test_each_frame_lies_on_the_source_slice_it_references(series):
    seg = hd.seg.segread(series.path)
    g = series.made.geometry
    assert seg.NumberOfFrames == 3 * g.slices  # every segment on every slice
    frames = seg.pixel_array.reshape(seg.NumberOfFrames, g.rows, g.cols)
    placed = set()
    for f, frame in enumerate(seg.PerFrameFunctionalGroupsSequence):
        uid = _frame_source(frame)
        k = series.made.slice_of[uid]
        number = int(frame.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        position = np.array(frame.PlanePositionSequence[0].ImagePositionPatient, float)
        np.testing.assert_allclose(position, series.made.positions[uid], atol=1e-3)
        np.testing.assert_array_equal(frames[f] != 0, series.labels[k] == number)
        placed.add((k, number))
    assert placed == {(k, n) for k in range(g.slices) for n in (1, 2, 3)}


def test_geometry_and_references_are_the_sources(series):
    seg = hd.seg.segread(series.path)
    shared = seg.SharedFunctionalGroupsSequence[0]
    np.testing.assert_allclose(
        shared.PlaneOrientationSequence[0].ImageOrientationPatient,
        series.made.orientation,
        atol=1e-6,
    )
    measures = shared.PixelMeasuresSequence[0]
    np.testing.assert_allclose(measures.PixelSpacing, series.made.geometry.pixel_mm)
    # CT_small's header says 5 mm between slices; the positions say otherwise.
    step = float(measures.SpacingBetweenSlices)  # positions are written to 0.1 um
    assert step == pytest.approx(series.made.geometry.step_mm, abs=1e-3)
    source = pydicom.dcmread(
        next(series.made.folder.glob("*.dcm")), stop_before_pixels=True
    )
    assert seg.StudyInstanceUID == source.StudyInstanceUID
    assert seg.FrameOfReferenceUID == source.FrameOfReferenceUID
    (ref,) = seg.ReferencedSeriesSequence
    assert ref.SeriesInstanceUID == series.made.series_uid
    referenced = {
        str(i.ReferencedSOPInstanceUID) for i in ref.ReferencedInstanceSequence
    }
    assert referenced == set(series.made.slice_of)


def test_highdicom_puts_the_labels_where_the_source_slices_are(series):
    """highdicom's own volume, read through its affine at each source slice."""
    volume = hd.seg.segread(series.path).get_volume(combine_segments=True)
    assert volume.array.shape == series.labels.shape
    inverse = np.linalg.inv(volume.affine)
    for uid, k in series.made.slice_of.items():
        index = inverse @ np.append(series.made.positions[uid], 1.0)
        np.testing.assert_allclose(index[1:3], 0.0, atol=1e-3)  # the slice's corner
        plane = round(float(index[0]))
        np.testing.assert_array_equal(volume.array[plane], series.labels[k])


def test_segments_carry_codes_and_the_algorithm(series):
    seg = hd.seg.segread(series.path)
    assert [int(s.SegmentNumber) for s in seg.SegmentSequence] == [1, 2, 3]
    for item in seg.SegmentSequence:
        name = THREE_NAMES[int(item.SegmentNumber)]
        category, kind = SEGMENT_PROPERTIES[name]
        assert item.SegmentLabel == name
        assert item.SegmentedPropertyCategoryCodeSequence[0].CodeValue == category.value
        assert item.SegmentedPropertyTypeCodeSequence[0].CodeValue == kind.value
        assert item.SegmentedPropertyTypeCodeSequence[0].CodingSchemeDesignator == "SCT"
        assert item.SegmentAlgorithmType == "AUTOMATIC"
        assert item.SegmentAlgorithmName == "medimg-lab"
        ident = item.SegmentationAlgorithmIdentificationSequence[0]
        assert ident.AlgorithmVersion == ml.__version__
        assert ident.AlgorithmName == "medimg-lab"
    assert ml.__version__ in seg.SoftwareVersions


def test_load_opens_a_seg_as_labels_on_its_source_grid(series):
    back = ml.load(series.path)
    assert back.modality == "SEG"
    np.testing.assert_array_equal(back.array, series.labels)
    np.testing.assert_allclose(back.spacing, series.image.spacing, atol=1e-4)  # mm
    assert back.meta["segments"] == THREE_NAMES
    assert back.meta["segment_types"][1].startswith("SCT 389080008")
    assert back.unit == "label"
    # bytes (an upload) too, and pydicom reads it as a plain dataset
    np.testing.assert_array_equal(
        ml.load(series.path.read_bytes()).array, series.labels
    )
    assert pydicom.dcmread(series.path).Modality == "SEG"


@pytest.mark.parametrize("kind", ["SEMIAUTOMATIC", "MANUAL"])
def test_algorithm_type_and_family(kind, tmp_path):
    image = ml.load(dicom_file("CT_small.dcm"))
    seg = seg_dataset(
        image.array > 200,
        image,
        segments=["bone"],
        algorithm="region grow",
        algorithm_version="2.1",
        algorithm_type=kind,
        algorithm_family="manual" if kind == "MANUAL" else "region growing",
    )
    item = seg.SegmentSequence[0]
    assert item.SegmentAlgorithmType == kind
    ident = item.SegmentationAlgorithmIdentificationSequence[0]
    assert (ident.AlgorithmName, ident.AlgorithmVersion) == ("region grow", "2.1")


def test_binary_mask_on_a_single_ct_slice(tmp_path):
    path = dicom_file("CT_small.dcm")
    image = ml.load(path)
    mask = image.array > 300  # bone, in HU
    assert 0 < mask.sum() < mask.size
    out = save_seg(mask, image, tmp_path / "seg.dcm", segments={1: "bone"})
    seg = hd.seg.segread(out)
    source = pydicom.dcmread(path, stop_before_pixels=True)
    assert seg.NumberOfFrames == 1
    frame = seg.PerFrameFunctionalGroupsSequence[0]
    assert _frame_source(frame) == source.SOPInstanceUID
    np.testing.assert_allclose(
        frame.PlanePositionSequence[0].ImagePositionPatient,
        source.ImagePositionPatient,
    )
    back = ml.load(out)
    assert back.array.shape == mask.shape and back.spacing == image.spacing
    np.testing.assert_array_equal(back.array, mask.astype(np.uint8))
    assert back.meta["segments"] == {1: "bone"}


def test_labels_on_an_mr_slice(tmp_path):
    path = dicom_file("MR_small.dcm")
    image = ml.load(path)
    low, high = np.percentile(image.array, [40, 80])
    labels = (image.array > low).astype(np.uint8) + (image.array > high)
    out = save_seg(labels, image, tmp_path / "seg.dcm", segments=["tissue", "lesion"])
    seg = hd.seg.segread(out)
    source = pydicom.dcmread(path, stop_before_pixels=True)
    ref = seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0]
    assert ref.ReferencedSOPClassUID == source.SOPClassUID  # MR Image Storage
    assert seg.FrameOfReferenceUID == source.FrameOfReferenceUID
    back = ml.load(out)
    np.testing.assert_array_equal(back.array, labels)
    assert back.meta["segments"] == {1: "tissue", 2: "lesion"}


def test_multiframe_source_stored_against_the_slice_normal(tmp_path):
    """eCT_Supplemental stores its frames against the normal: load() reverses them."""
    path = dicom_file("eCT_Supplemental.dcm")
    source = pydicom.dcmread(path)
    stored = source.pixel_array
    image = ml.load(path)
    labels = np.zeros(image.shape, np.uint8)
    labels[0, 100:200, 150:300] = 1  # only on the image's first slice
    # the stored frame that is the image's first slice (values up to a rescale)
    first = max(
        range(len(stored)),
        key=lambda j: np.corrcoef(image.array[0].ravel(), stored[j].ravel())[0, 1],
    )
    assert first != 0  # the sample exercises the reordering
    out = save_seg(labels, image, tmp_path / "seg.dcm", segments=["tissue"])
    seg = hd.seg.segread(out)
    per_source = source.PerFrameFunctionalGroupsSequence
    frames = seg.pixel_array.reshape(seg.NumberOfFrames, *labels.shape[1:])
    for f, frame in enumerate(seg.PerFrameFunctionalGroupsSequence):
        ref = frame.DerivationImageSequence[0].SourceImageSequence[0]
        j = int(ref.ReferencedFrameNumber) - 1
        np.testing.assert_allclose(
            frame.PlanePositionSequence[0].ImagePositionPatient,
            per_source[j].PlanePositionSequence[0].ImagePositionPatient,
        )
        assert frames[f].any() == (j == first)
    np.testing.assert_array_equal(ml.load(out).array, labels)


def test_sources_given_for_an_uploaded_series(tmp_path):
    made = ct_series(tmp_path / "s", NON_SQUARE, seed=3)
    files = sorted(made.folder.glob("*.dcm"))
    image = ml.load(made.folder)
    uploaded = ml.MedImage(image.array, image.spacing, "CT", image.window)
    labels = phantom(image.shape, image.spacing, THREE[:1])
    with pytest.raises(ValueError, match=r"no DICOM source on record.*sources="):
        seg_dataset(labels, uploaded)
    payloads = [p.read_bytes() for p in reversed(files)]
    seg = seg_dataset(labels, uploaded, sources=payloads)
    back = load_seg(seg)
    np.testing.assert_array_equal(back.array, labels)


def test_a_folder_with_other_files_and_an_earlier_seg(tmp_path):
    made = ct_series(tmp_path / "s", NON_SQUARE, seed=4)
    image = ml.load(made.folder)
    labels = phantom(image.shape, image.spacing, THREE[:2])
    save_seg(labels, image, made.folder / "earlier_seg.dcm")
    (made.folder / "notes.txt").write_text("not DICOM")
    back = load_seg(seg_dataset(labels, image))  # the SEG and the note skipped
    np.testing.assert_array_equal(back.array, labels)


# ------------------------------------------------------------- hostile input
@pytest.fixture(scope="module")
def ct():
    return ml.load(dicom_file("CT_small.dcm"))


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (lambda s: np.zeros(s, np.uint8), r"no segment: every value is 0"),
        (lambda s: np.ones((s[0], s[1] - 1), bool), r"image's shape \(128, 128\).*127"),
        (lambda s: np.full(s, 300, np.uint16), r"values up to 300.*at most 255"),
        (lambda s: np.full(s, -1, np.int16), r"down to -1"),
        (lambda s: np.full(s, 0.5), r"boolean or integer.*float64"),
        (lambda s: [[1]], r"numpy array; got list"),
    ],
    ids=["empty", "shape", "above-255", "negative", "float", "list"],
)
def test_bad_labels_are_refused_with_a_sentence(ct, labels, message):
    with pytest.raises((ValueError, TypeError), match=message):
        seg_dataset(labels(ct.shape), ct)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"segments": {1: "wing"}}, r"'wing' has no known code; known names are"),
        ({"segments": {0: "bone"}}, r"label values 1 to 255; got 0"),
        ({"algorithm_type": "ROBOTIC"}, r"AUTOMATIC, SEMIAUTOMATIC, MANUAL.*ROBOTIC"),
        ({"algorithm_family": "magic"}, r"algorithm_family must be one of.*'magic'"),
    ],
)
def test_bad_options_are_refused_with_a_sentence(ct, options, message):
    with pytest.raises(ValueError, match=message):
        seg_dataset(ct.array > 300, ct, **options)


def test_a_custom_segment_keeps_its_codes(ct):
    mine = Segment("cortical bone", codes.SCT.Tissue, codes.SCT.Bone)
    seg = seg_dataset(ct.array > 300, ct, segments={1: mine})
    assert seg.SegmentSequence[0].SegmentLabel == "cortical bone"


def test_a_non_dicom_source_is_refused(ct, tmp_path):
    nifti = ml.save(ct, tmp_path / "ct.nii.gz")
    image = ml.load(nifti)
    with pytest.raises(ml.NotAnImageError, match=r"cannot be a SEG's source.*DICOM"):
        seg_dataset(np.ones(image.shape, bool), image)
    with pytest.raises(ml.NotAnImageError, match=r"cannot be a SEG's source"):
        seg_dataset(ct.array > 300, ct, sources=[b"not a DICOM file at all"])


def test_sources_of_another_image_are_refused(ct, tmp_path):
    made = ct_series(tmp_path / "s", NON_SQUARE, seed=5)
    with pytest.raises(
        ValueError,
        match=r"no DICOM series.*1 slice\(s\) of 128x128.*"
        r"12 slice\(s\) of 96x128",
    ):
        seg_dataset(ct.array > 300, ct, sources=made.folder)


def test_a_damaged_seg_is_a_clear_load_error(series, tmp_path):
    payload = series.path.read_bytes()
    cut = tmp_path / "cut_seg.dcm"
    cut.write_bytes(payload[: len(payload) // 2])
    with pytest.raises(ml.MedImgError, match=r"cut_seg\.dcm"):
        ml.load(cut)
    ds = pydicom.dcmread(io.BytesIO(payload))
    for frame in ds.PerFrameFunctionalGroupsSequence:
        del frame.SegmentIdentificationSequence
    with pytest.raises(ml.NotAnImageError, match=r"do not say which segment"):
        load_seg(ds)


def test_a_seg_over_the_budget_or_off_any_grid_is_refused(series):
    with pytest.raises(
        ml.ImageTooLargeError, match=r"frames of 96x128|frames of 64x64"
    ):
        ml.load(series.path, max_bytes=100_000)
    ds = pydicom.dcmread(series.path)
    plane = ds.PerFrameFunctionalGroupsSequence[1].PlanePositionSequence[0]
    normal = np.cross(series.made.orientation[:3], series.made.orientation[3:])
    step = series.made.geometry.step_mm
    plane.ImagePositionPatient = [
        round(float(v), 4) for v in plane.ImagePositionPatient + 0.4 * step * normal
    ]
    with pytest.raises(ml.NotAnImageError, match=r"fit no regular spacing"):
        load_seg(ds)


def test_frames_far_apart_on_a_fine_grid_are_refused(series):
    """Two frames 10^5 steps apart would make a volume of empty slices."""
    ds = pydicom.dcmread(series.path)
    plane = ds.PerFrameFunctionalGroupsSequence[0].PlanePositionSequence[0]
    normal = np.cross(series.made.orientation[:3], series.made.orientation[3:])
    shared = ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
    step = float(shared.SpacingBetweenSlices)  # the frames' own grid step
    far = plane.ImagePositionPatient + 1e5 * step * normal
    plane.ImagePositionPatient = [round(float(v), 4) for v in far]
    with pytest.raises(ml.ImageTooLargeError, match=r"grid of \d+ slices"):
        load_seg(ds, max_bytes=50 * 1024**2)


@pytest.mark.parametrize("keyword", ["StudyInstanceUID", "ImageOrientationPatient"])
def test_a_source_header_without_what_a_seg_copies_is_a_sentence(ct, keyword):
    header = pydicom.dcmread(dicom_file("CT_small.dcm"), stop_before_pixels=True)
    delattr(header, keyword)
    with pytest.raises(ValueError, match=r"lack an attribute a SEG must copy") as err:
        seg_dataset(ct.array > 300, ct, sources=[header])
    assert keyword not in str(err.value)  # a sentence, not highdicom's text
