"""Each kind of bad input gets its own error type and a message that helps."""

from __future__ import annotations

import io
import struct
import zlib

import cv2
import nibabel as nib
import numpy as np
import pydicom
import pytest

import medimg_lab as ml
from tests.helpers import dicom_file


def dicom_bytes(ds):
    buf = io.BytesIO()
    ds.save_as(buf)
    return buf.getvalue()


def test_truncated_real_file(tmp_path):
    raw = dicom_file("693_UNCR.dcm").read_bytes()
    path = tmp_path / "head.dcm"
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ml.TruncatedFileError) as err:
        ml.load(path)
    message = str(err.value)
    assert message.startswith("head.dcm:")
    assert "cut short" in message and "524288" in message
    assert "again" in message  # says what would work


def test_file_cut_inside_its_header():
    raw = dicom_file("693_UNCR.dcm").read_bytes()
    with pytest.raises(ml.TruncatedFileError, match="cut short"):
        ml.load(raw[:300])


def test_random_bytes():
    noise = np.random.default_rng(0).bytes(4096)
    with pytest.raises(ml.NotAnImageError, match=r"<4096 bytes>.*not a DICOM.*Open a"):
        ml.load(noise)


def test_text_file_is_not_an_image(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("patient notes\n" * 50)
    with pytest.raises(ml.NotAnImageError, match=r"notes\.txt"):
        ml.load(path)


def test_missing_pixel_data():
    ds = pydicom.dcmread(dicom_file("CT_small.dcm"))
    del ds.PixelData
    with pytest.raises(ml.NoPixelDataError, match=r"CT Image Storage.*not an image"):
        ml.load(dicom_bytes(ds))


def test_non_image_dicom_object():
    with pytest.raises(ml.NoPixelDataError, match="RT Plan"):
        ml.load(dicom_file("rtplan.dcm"))


def test_absurd_dicom_dimensions_are_refused_before_decoding():
    ds = pydicom.dcmread(dicom_file("CT_small.dcm"))
    ds.Rows, ds.Columns, ds.NumberOfFrames = 65535, 65535, 1000
    with pytest.raises(
        ml.ImageTooLargeError, match=r"1000 x 65535 x 65535.*max_bytes="
    ):
        ml.load(dicom_bytes(ds))


def test_png_claiming_100000_by_100000_is_refused():
    png = cv2.imencode(".png", np.zeros((8, 8), np.uint8))[1].tobytes()
    ihdr = bytearray(png[12:29])
    ihdr[4:12] = struct.pack(">II", 100_000, 100_000)
    forged = png[:12] + ihdr + struct.pack(">I", zlib.crc32(ihdr)) + png[33:]
    with pytest.raises(ml.ImageTooLargeError, match="too large"):
        ml.load(forged)


def test_nifti_claiming_100000_by_100000_is_refused():
    header = bytearray(
        nib.Nifti1Image(np.zeros((2, 2, 2), np.int16), np.eye(4)).to_bytes()
    )
    # dim[1], dim[2] are int16 in NIfTI-1, so claim the most it can: 32767².
    header[42:48] = struct.pack("<hhh", 32767, 32767, 1000)
    with pytest.raises(ml.ImageTooLargeError, match="32767 x 32767 x 1000"):
        ml.load(bytes(header))


def test_missing_path():
    with pytest.raises(ml.NotFoundError, match="does not exist"):
        ml.load("/nonexistent/scan.dcm")


def test_errors_are_medimg_errors_with_parts():
    with pytest.raises(ml.MedImgError) as err:
        ml.load(b"")
    assert err.value.source == "<0 bytes>"
    assert err.value.problem and err.value.fix


def test_empty_folder(tmp_path):
    with pytest.raises(ml.NotAnImageError, match="no DICOM image"):
        ml.load(tmp_path)


def test_wrong_argument_type_is_a_type_error():
    with pytest.raises(TypeError, match="path, bytes or a binary file"):
        ml.load(42)
