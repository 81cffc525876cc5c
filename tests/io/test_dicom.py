"""DICOM semantics on the real sample files."""

from __future__ import annotations

import io
import random
import shutil

import numpy as np
import pydicom
import pytest

import medimg_lab as ml
from medimg_lab.display import apply_window
from tests.helpers import dicom_file


def raw_pixels(name):
    return pydicom.dcmread(dicom_file(name)).pixel_array


def test_head_ct_is_in_hounsfield_units_with_padding_as_air():
    ds = pydicom.dcmread(dicom_file("693_UNCR.dcm"))
    raw = ds.pixel_array.astype(np.int32)
    image = ml.load(dicom_file("693_UNCR.dcm"))
    padded = raw == int(ds.PixelPaddingValue)
    expected = raw * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    assert image.modality == "CT"
    assert padded.sum() > 1000  # the sample really has outside-FOV padding
    np.testing.assert_array_equal(image.array[~padded], expected[~padded])
    assert np.all(image.array[padded] == -1024)
    assert image.meta["padding"]["pixels"] == int(padded.sum())
    assert image.meta["RescaleIntercept"] == float(ds.RescaleIntercept)


def test_spine_ct_hu_and_spacing():
    ds = pydicom.dcmread(dicom_file("CT_small.dcm"))
    image = ml.load(dicom_file("CT_small.dcm"))
    raw = ds.pixel_array.astype(np.int32)
    keep = raw != int(ds.PixelPaddingValue)
    hu = raw * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_array_equal(image.array[keep], hu[keep])
    assert image.spacing == pytest.approx([float(v) for v in ds.PixelSpacing])


def test_shoulder_mr_rescale_is_float32():
    ds = pydicom.dcmread(dicom_file("MR2_UNCR.dcm"))
    image = ml.load(dicom_file("MR2_UNCR.dcm"))
    expected = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    assert image.array.dtype == np.float32
    np.testing.assert_allclose(image.array, expected, rtol=1e-6)


def test_enhanced_multiframe_ct_uses_functional_groups():
    image = ml.load(dicom_file("eCT_Supplemental.dcm"))
    ds = pydicom.dcmread(dicom_file("eCT_Supplemental.dcm"))
    transform = ds.SharedFunctionalGroupsSequence[0].PixelValueTransformationSequence[0]
    # The rescale lives only in the functional groups, not at the top level.
    assert "RescaleIntercept" not in ds
    raw = ds.pixel_array.astype(np.int32)
    expected = raw * float(transform.RescaleSlope) + float(transform.RescaleIntercept)
    assert image.array.ndim == 3 and image.array.shape[0] == 2
    np.testing.assert_array_equal(
        np.sort(image.array.ravel()), np.sort(expected.ravel())
    )
    assert image.spacing[0] == pytest.approx(10.0)  # frame positions 10 mm apart
    measures = ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
    assert image.spacing[1:] == pytest.approx([float(v) for v in measures.PixelSpacing])


def test_multiframe_gives_3d():
    image = ml.load(dicom_file("SC_rgb_2frame.dcm"))
    assert image.array.shape == (2, 100, 100, 3) and image.is_color
    assert image.is_volume


def test_monochrome1_chest_film_shows_lungs_darker_than_mediastinum():
    image = ml.load(dicom_file("RG1_UNCR.dcm"))
    assert image.meta["monochrome1_inverted"] is True
    shown = apply_window(image.array, *image.window).astype(float)
    rows, cols = shown.shape
    band = slice(int(rows * 0.35), int(rows * 0.55))
    right_lung = shown[band, int(cols * 0.22) : int(cols * 0.35)].mean()
    left_lung = shown[band, int(cols * 0.65) : int(cols * 0.78)].mean()
    mediastinum = shown[band, int(cols * 0.46) : int(cols * 0.54)].mean()
    assert right_lung < mediastinum - 20
    assert left_lung < mediastinum - 20


def test_monochrome1_inverts_values_and_header_window():
    ds = pydicom.dcmread(dicom_file("RG3_UNCR.dcm"))
    image = ml.load(dicom_file("RG3_UNCR.dcm"))
    top = 2 ** int(ds.BitsStored) - 1
    np.testing.assert_array_equal(image.array, top - ds.pixel_array.astype(np.int64))
    inverted = (top - float(ds.WindowCenter), float(ds.WindowWidth))
    # That header window spans the whole 10-bit range, so percentiles replace it.
    assert image.meta["header_window"] == inverted
    assert image.meta["window_source"] == "auto"
    assert image.window == ml.display.auto_window(image.array)


def test_informative_header_window_is_kept():
    image = ml.load(dicom_file("MR2_UNCR.dcm"))
    assert image.meta["window_source"] == "header" and image.window == (1000, 2000)


@pytest.mark.parametrize(
    "name", ["SC_ybr_full_uncompressed.dcm", "SC_rgb_dcmtk_+eb+cy+s2.dcm"]
)
def test_ybr_becomes_rgb(name):
    rgb = ml.load(dicom_file("SC_rgb.dcm")).array.astype(int)
    image = ml.load(dicom_file(name))
    assert image.meta["color_converted_from"].startswith("YBR")
    assert image.array.shape == rgb.shape
    assert np.abs(image.array.astype(int) - rgb).max() <= 6


def test_palette_becomes_rgb():
    image = ml.load(dicom_file("OBXXXX1A.dcm"))
    ds = pydicom.dcmread(dicom_file("OBXXXX1A.dcm"))
    index = ds.pixel_array
    red = np.asarray(ds.RedPaletteColorLookupTableData)
    assert image.is_color and image.array.dtype == np.uint8
    assert image.meta["color_converted_from"] == "PALETTE COLOR"
    # Every pixel with the same palette index has the same colour.
    i = int(index[index.shape[0] // 2, index.shape[1] // 2])
    colors = np.unique(image.array[index == i].reshape(-1, 3), axis=0)
    assert len(colors) == 1 and red.size > 0


# Every compressed variant that pydicom and pydicom-data ship, against its
# uncompressed twin: lossless exactly, lossy within a PSNR floor.
LOSSLESS = {
    "693_UNCR.dcm": ["693_J2KR.dcm"],
    "MR2_UNCR.dcm": ["MR2_J2KR.dcm"],
    "RG1_UNCR.dcm": ["RG1_J2KR.dcm"],
    "RG3_UNCR.dcm": ["RG3_J2KR.dcm"],
    "US1_UNCR.dcm": ["US1_J2KR.dcm"],
    "emri_small.dcm": [
        "emri_small_RLE.dcm",
        "emri_small_big_endian.dcm",
        "emri_small_jpeg_2k_lossless.dcm",
        "emri_small_jpeg_ls_lossless.dcm",
    ],
    "MR_small.dcm": [
        "MR_small_RLE.dcm",
        "MR_small_bigendian.dcm",
        "MR_small_expb.dcm",
        "MR_small_implicit.dcm",
        "MR_small_jp2klossless.dcm",
        "MR_small_jpeg_ls_lossless.dcm",
    ],
    "SC_rgb.dcm": [
        "SC_rgb_expb.dcm",
        "SC_rgb_rle.dcm",
        "SC_rgb_jpeg_gdcm.dcm",
        "SC_rgb_gdcm2k_uncompressed.dcm",
    ],
    "SC_rgb_16bit.dcm": ["SC_rgb_expb_16bit.dcm", "SC_rgb_rle_16bit.dcm"],
    "SC_rgb_32bit.dcm": ["SC_rgb_expb_32bit.dcm", "SC_rgb_rle_32bit.dcm"],
    "SC_rgb_2frame.dcm": ["SC_rgb_expb_2frame.dcm", "SC_rgb_rle_2frame.dcm"],
    "OBXXXX1A.dcm": ["OBXXXX1A_expb.dcm", "OBXXXX1A_rle.dcm"],
    "OBXXXX1A_2frame.dcm": ["OBXXXX1A_expb_2frame.dcm", "OBXXXX1A_rle_2frame.dcm"],
    "liver.dcm": ["liver_expb.dcm"],
    "rtdose.dcm": ["rtdose_expb.dcm", "rtdose_rle.dcm"],
    "JPEG2000_UNC.dcm": ["JPEG2000.dcm"],
    "SC_rgb_small_odd.dcm": ["SC_rgb_small_odd_big_endian.dcm"],
}
# Lossy variants: (twin, variant, PSNR floor in dB against the twin's range).
LOSSY = [
    ("693_UNCI.dcm", "693_J2KI.dcm", None),  # UNCI is the decoded lossy image
    ("MR2_UNCI.dcm", "MR2_J2KI.dcm", None),
    ("RG1_UNCI.dcm", "RG1_J2KI.dcm", None),
    ("RG3_UNCI.dcm", "RG3_J2KI.dcm", None),
    ("US1_UNCI.dcm", "US1_J2KI.dcm", None),
    ("693_UNCR.dcm", "693_J2KI.dcm", 25.0),  # heavily lossy file
    ("MR2_UNCR.dcm", "MR2_J2KI.dcm", 40.0),
    ("RG1_UNCR.dcm", "RG1_J2KI.dcm", 50.0),
    ("RG3_UNCR.dcm", "RG3_J2KI.dcm", 55.0),
    ("US1_UNCR.dcm", "US1_J2KI.dcm", 35.0),
    ("SC_rgb.dcm", "SC_rgb_jpeg_dcmtk.dcm", 35.0),
    ("SC_rgb.dcm", "SC_rgb_dcmtk_+eb+cr.dcm", 45.0),
    ("SC_rgb.dcm", "SC_rgb_dcmtk_+eb+cy+np.dcm", 25.0),
    ("SC_rgb.dcm", "SC_rgb_jls_lossy_line.dcm", 40.0),
    ("SC_rgb.dcm", "SC_rgb_jls_lossy_sample.dcm", 40.0),
    ("SC_rgb_small_odd.dcm", "SC_rgb_small_odd_jpeg.dcm", 30.0),
]


@pytest.mark.parametrize(
    ("twin", "variant"), [(t, v) for t, vs in LOSSLESS.items() for v in vs]
)
def test_lossless_variant_decodes_exactly(twin, variant):
    reference = ml.load(dicom_file(twin))
    image = ml.load(dicom_file(variant))
    assert image.array.dtype == reference.array.dtype
    np.testing.assert_array_equal(image.array, reference.array)
    assert image.spacing == reference.spacing


@pytest.mark.parametrize(("twin", "variant", "psnr_floor"), LOSSY)
def test_lossy_variant_decodes_close(twin, variant, psnr_floor):
    reference = ml.load(dicom_file(twin)).array.astype(float)
    image = ml.load(dicom_file(variant)).array.astype(float)
    assert image.shape == reference.shape
    if psnr_floor is None:
        np.testing.assert_array_equal(image, reference)
        return
    mse = np.mean((image - reference) ** 2)
    psnr = 10 * np.log10(np.ptp(reference) ** 2 / mse)
    assert psnr > psnr_floor


@pytest.mark.parametrize(
    "name",
    [
        "JPGExtended.dcm",  # JPEG extended, 12-bit
        "JPEG-LL.dcm",  # JPEG lossless, process 14
        "JPGLosslessP14SV1_1s_1f_8b.dcm",
        "JPEGLSNearLossless_16.dcm",
        "color3d_jpeg_baseline.dcm",  # JPEG baseline YBR_FULL_422, multi-frame
        "image_dfl.dcm",  # deflated explicit VR
    ],
)
def test_other_transfer_syntaxes_decode(name):
    image = ml.load(dicom_file(name))
    assert image.array.size > 0 and image.array.std() > 0


def test_undecodable_codec_is_a_clear_error():
    with pytest.raises(ml.DecodeError, match=r"JPEG-lossy\.dcm.*JPEG Extended"):
        ml.load(dicom_file("JPEG-lossy.dcm"))


def write_series(folder, rng):
    """Split a volume into single-frame DICOM files written in shuffled order."""
    template = pydicom.dcmread(dicom_file("CT_small.dcm"))
    volume = rng.integers(0, 2000, size=(6, 128, 128)).astype(np.int16)
    order = list(range(6))
    random.Random(3).shuffle(order)  # noqa: S311 test-file order, not security
    for n, k in enumerate(order):
        ds = template.copy()
        ds.PixelData = volume[k].tobytes()
        ds.ImagePositionPatient = [0.0, 0.0, -50.0 + 2.5 * k]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.InstanceNumber = 6 - n  # deliberately unrelated to position
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        ds.save_as(folder / f"{n:02d}_{rng.integers(1e6)}.dcm")
    return volume


def test_series_folder_loads_sorted_along_the_normal(tmp_path):
    volume = write_series(tmp_path, np.random.default_rng(0))
    (tmp_path / "notes.txt").write_text("not DICOM")
    image = ml.load(tmp_path)
    slope_intercept = -1024  # CT_small: slope 1, intercept -1024
    np.testing.assert_array_equal(
        image.array, volume.astype(np.int32) + slope_intercept
    )
    assert image.spacing[0] == pytest.approx(2.5)
    assert image.meta["sorted_by"] == "position along the slice normal"
    assert image.meta["skipped_files"] == 1


def test_series_from_zip_bytes(tmp_path):
    volume = write_series(tmp_path, np.random.default_rng(1))
    archive = shutil.make_archive(str(tmp_path.parent / "series"), "zip", tmp_path)
    with open(archive, "rb") as fh:
        image = ml.load(fh.read())
    assert image.array.shape == volume.shape
    np.testing.assert_array_equal(image.array, volume.astype(np.int32) - 1024)


def test_folder_with_two_series_asks_which(tmp_path):
    for number in (3, 4):
        ds = pydicom.dcmread(dicom_file("CT_small.dcm"))
        ds.SeriesInstanceUID = pydicom.uid.generate_uid()
        ds.SeriesNumber = number
        ds.save_as(tmp_path / f"s{number}.dcm")
    with pytest.raises(ml.SeriesError, match=r"more than one series.*series=<number>"):
        ml.load(tmp_path)
    assert ml.load(tmp_path, series=4).array.shape == (128, 128)


def test_meta_holds_no_patient_identifiers():
    for name in ("693_UNCR.dcm", "MR-SIEMENS-DICOM-WithOverlays.dcm", "RG1_UNCR.dcm"):
        ds = pydicom.dcmread(dicom_file(name))
        meta_text = repr(ml.load(dicom_file(name)).meta)
        for keyword in ("PatientName", "PatientID", "StudyInstanceUID", "StudyDate"):
            value = str(ds.get(keyword) or "")
            assert keyword not in meta_text
            if len(value) >= 4:
                assert value not in meta_text


# Expected pixel data sizes follow pydicom's own rules (issue 15, item 3):
# YBR_FULL_422 stores two bytes per pixel, BitsAllocated 1 packs 8 pixels a
# byte across frame boundaries, odd lengths carry one padding byte.
def synthetic(photometric, bits, frames, rows, cols, *, cut=0, seed=0):
    """An uncompressed object whose pixel data has pydicom's expected length."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.pixels.utils import get_expected_length
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.Modality = "OT"
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = 1 if photometric.startswith("MONO") else 3
    if ds.SamplesPerPixel == 3:
        ds.PlanarConfiguration = 0
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = bits, bits, bits - 1
    ds.PixelRepresentation = 0
    if frames > 1:
        ds.NumberOfFrames = frames
    size = get_expected_length(ds) - cut
    data = np.random.default_rng(seed).integers(0, 256, size, np.uint8).tobytes()
    if photometric.startswith("YBR"):  # keep chroma near neutral: valid colours
        data = bytes(128 + (b - 128) // 8 for b in data)
    ds.PixelData = data + b"\0" * (len(data) % 2)
    ds["PixelData"].VR = "OB" if bits <= 8 else "OW"
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


SIZES = [
    ("MONOCHROME2", 1, 1, 3, 5),  # 15 bits: 2 bytes
    ("MONOCHROME2", 1, 3, 3, 5),  # 45 bits over 3 frames: 6 bytes, not 3 x 2
    ("MONOCHROME2", 8, 1, 3, 3),  # 9 bytes, padded to 10
    ("MONOCHROME2", 8, 3, 5, 7),
    ("MONOCHROME2", 16, 2, 5, 7),
    ("MONOCHROME2", 32, 1, 4, 6),
    ("RGB", 8, 1, 3, 3),  # 27 bytes, padded
    ("RGB", 16, 2, 4, 6),
    ("YBR_FULL", 8, 2, 4, 6),
    ("YBR_FULL_422", 8, 1, 4, 6),  # 2 bytes per pixel, not 3
    ("YBR_FULL_422", 8, 3, 6, 10),
    ("YBR_FULL_422", 8, 1, 5, 6),  # odd rows
]


@pytest.mark.parametrize(("photometric", "bits", "frames", "rows", "cols"), SIZES)
def test_pixel_data_of_pydicoms_expected_length_loads(
    photometric, bits, frames, rows, cols
):
    data = synthetic(photometric, bits, frames, rows, cols)
    expected = pydicom.dcmread(io.BytesIO(data)).pixel_array
    image = ml.load(data)
    assert image.array.shape == expected.shape
    if photometric.startswith("MONO"):
        np.testing.assert_array_equal(image.array, expected)
    else:  # pydicom's own YBR to RGB conversion
        diff = np.abs(image.array.astype(int) - expected.astype(int))
        assert diff.max() == 0


@pytest.mark.parametrize(("photometric", "bits", "frames", "rows", "cols"), SIZES)
def test_pixel_data_shorter_than_pydicoms_length_is_truncated(
    photometric, bits, frames, rows, cols
):
    data = synthetic(photometric, bits, frames, rows, cols, cut=2)
    with pytest.raises(ml.TruncatedFileError, match="cut short") as err:
        ml.load(data)
    assert f"{frames} frame(s) of {rows} x {cols}" in str(err.value)


def test_uncompressed_ybr_full_422_sample_loads_as_rgb():
    image = ml.load(dicom_file("SC_ybr_full_422_uncompressed.dcm"))
    rgb = ml.load(dicom_file("SC_rgb.dcm")).array.astype(int)
    assert image.meta["color_converted_from"] == "YBR_FULL_422"
    assert np.abs(image.array.astype(int) - rgb).max() <= 6
