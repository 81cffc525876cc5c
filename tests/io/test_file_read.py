"""A plain uncompressed file reads its header once and its pixels straight
into the output (issue 20, item 2): the same image as the thorough reader,
which decodes through pydicom's ``pixel_array``, on real files of several
shapes; and a damaged file still gets the thorough reader's message.
"""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

import medimg_lab as ml
from medimg_lab.io import dicom
from tests.helpers import dicom_file

FILES = [
    "693_UNCR.dcm",  # head CT 512 x 512, 12 bits stored, padding
    "RG1_UNCR.dcm",  # chest film 1955 x 1841, MONOCHROME1
    "MR2_UNCR.dcm",  # shoulder MR 1024 x 1024, rescaled
    "CT_small.dcm",  # spine CT 128 x 128, padding
    "MR_small_implicit.dcm",  # implicit VR little endian
    "MR-SIEMENS-DICOM-WithOverlays.dcm",  # abdomen MR with overlays
    "liver.dcm",
]


def thorough(monkeypatch, path):
    with monkeypatch.context() as patch:
        patch.setattr(dicom, "_native_file", lambda *args: None)
        return ml.load(path)


@pytest.mark.parametrize("name", FILES)
def test_plain_file_reads_as_the_thorough_reader(monkeypatch, name):
    image = ml.load(dicom_file(name))
    reference = thorough(monkeypatch, dicom_file(name))
    assert image.array.dtype == reference.array.dtype
    np.testing.assert_array_equal(image.array, reference.array)
    assert image.spacing == reference.spacing
    assert image.window == reference.window
    assert image.meta == reference.meta


def test_plain_file_pixels_do_not_go_through_pixel_array(monkeypatch):
    calls = []
    original = pydicom.dataset.Dataset.pixel_array
    monkeypatch.setattr(
        pydicom.dataset.Dataset,
        "pixel_array",
        property(lambda ds: calls.append("pixel_array") or original.fget(ds)),
    )
    image = ml.load(dicom_file("693_UNCR.dcm"))
    assert calls == []  # the values went straight into the output
    raw = pydicom.dcmread(dicom_file("693_UNCR.dcm"))
    inside = raw.pixel_array != int(raw.PixelPaddingValue)
    expected = raw.pixel_array * float(raw.RescaleSlope) + float(raw.RescaleIntercept)
    np.testing.assert_array_equal(image.array[inside], expected[inside])


@pytest.mark.parametrize("cut", [1, 1000, 300_000])
def test_pixel_data_cut_short_keeps_the_thorough_message(tmp_path, cut):
    data = dicom_file("693_UNCR.dcm").read_bytes()
    path = tmp_path / "cut.dcm"
    path.write_bytes(data[:-cut])
    with pytest.raises(ml.TruncatedFileError, match="cut short"):
        ml.load(path)


def test_big_endian_and_compressed_files_take_the_thorough_path(monkeypatch):
    seen = []
    original = dicom._decode

    def counting(ds, name):
        seen.append(name)
        return original(ds, name)

    monkeypatch.setattr(dicom, "_decode", counting)
    for name in ("MR_small_bigendian.dcm", "MR_small_RLE.dcm"):
        ml.load(dicom_file(name))
    ml.load(dicom_file("MR_small.dcm"))
    assert seen == ["MR_small_bigendian.dcm", "MR_small_RLE.dcm"]


def test_a_header_without_columns_is_named_not_caught_as_a_crash(tmp_path):
    # Found by the fuzz test: the Columns tag overwritten (offset 3276 of
    # the spine CT) left a header without Columns, which the plain-file
    # check read unguarded; the thorough reader names it.
    data = bytearray(dicom_file("CT_small.dcm").read_bytes())
    data[3276:3278] = b"\x00\x00"
    with pytest.raises(ml.NotAnImageError, match="no valid image size"):
        ml.load(bytes(data))
    folder = tmp_path / "series"
    folder.mkdir()
    ds = pydicom.dcmread(dicom_file("CT_small.dcm"))
    del ds.Columns
    for k in range(3):
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        ds.ImagePositionPatient = [0.0, 0.0, 2.5 * k]
        ds.save_as(folder / f"IM{k}.dcm")
    with pytest.raises(ml.MedImgError) as err:
        ml.load(folder)
    assert "could not be read: its content breaks its format" not in str(err.value)
