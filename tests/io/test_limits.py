"""Counts are limited before the work starts: frames, sequence items, pages.

Each hostile input is generated here and kept small on disk (deflated, or
pages sharing one strip). Each must be refused with a message that names
the count, the limit and the ``load`` option that raises it, and before the
expensive step runs: the decoder, pydicom's parser, OpenCV's page decoder
are replaced by a function that fails the test if it is called. The same
inputs at a small scale load with a raised limit (the override for real
large studies) and are refused with a lowered one.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib

import numpy as np
import pydicom
import pytest
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

import medimg_lab as ml
import medimg_lab.io.dicom as dicom_io
import medimg_lab.io.raster as raster_io
from tests.fuzz.loadcheck import library_text
from tests.helpers import dicom_file
from tests.io.budget_cases import tiff_bytes


def never(what):
    def fail(*args, **kwargs):
        raise AssertionError(f"{what} ran; the refusal must come before it")

    return fail


def save(ds, syntax=ExplicitVRLittleEndian) -> bytes:
    ds.file_meta.TransferSyntaxUID = syntax
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def frames_dicom(frames: int, rows: int = 1, cols: int = 1, *, deflate=True) -> bytes:
    """CT_small.dcm as ``frames`` frames of rows x cols (deflated: tiny)."""
    ds = pydicom.dcmread(dicom_file("CT_small.dcm"))
    ds.Rows, ds.Columns, ds.NumberOfFrames = rows, cols, frames
    values = (np.arange(frames * rows * cols) % 4000).astype(np.int16)
    ds.PixelData = values.tobytes()
    syntax = DeflatedExplicitVRLittleEndian if deflate else ExplicitVRLittleEndian
    return save(ds, syntax)


def check_refusal(error, *words):
    message = str(error)
    assert library_text(message) == [], message
    for word in words:
        assert word in message, message


def test_two_million_frames_refused_before_decoding(monkeypatch):
    data = frames_dicom(2_000_000)
    assert len(data) < 100_000
    monkeypatch.setattr(dicom_io, "_decode", never("pixel decoding"))
    with pytest.raises(ml.ImageTooLargeError) as info:
        ml.load(data)
    check_refusal(info.value, "2,000,000 frames", "10,000", "max_frames=")


def test_frame_limit_is_an_option():
    data = frames_dicom(30, 4, 5)
    with pytest.raises(ml.ImageTooLargeError, match=r"30 frames.*max_frames="):
        ml.load(data, max_frames=29)
    image = ml.load(data, max_frames=30)
    ds = pydicom.dcmread(io.BytesIO(data))
    raw = (np.arange(30 * 20) % 4000).reshape(30, 4, 5)
    expected = raw * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_array_equal(image.array, expected)


def sequence_dicom(items: int, *, deflate: bool = True) -> bytes:
    """CT_small.dcm with a sequence of ``items`` empty items in front."""
    raw = save(pydicom.dcmread(dicom_file("CT_small.dcm")))
    (group_length,) = struct.unpack("<I", raw[140:144])
    start = 144 + group_length
    element = struct.pack("<HH2sHI", 0x0008, 0x1140, b"SQ", 0, 0xFFFFFFFF)
    body = (
        element
        + struct.pack("<HHI", 0xFFFE, 0xE000, 0) * items
        + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
        + raw[start:]
    )
    if not deflate:
        return raw[:start] + body
    ds = pydicom.dcmread(io.BytesIO(raw), stop_before_pixels=True)
    meta = ds.file_meta
    meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    buf = io.BytesIO()
    buf.write(raw[:128] + b"DICM")
    pydicom.filewriter.write_file_meta_info(buf, meta, enforce_standard=False)
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    buf.write(packer.compress(body) + packer.flush())
    return buf.getvalue()


def test_a_million_sequence_items_refused_before_parsing(monkeypatch):
    data = sequence_dicom(1_000_000)
    assert len(data) < 100_000
    monkeypatch.setattr(pydicom, "dcmread", never("pydicom's parser"))
    with pytest.raises(ml.ImageTooLargeError) as info:
        ml.load(data)
    check_refusal(info.value, "sequence items", "max_items=")


def test_item_limit_is_an_option():
    data = sequence_dicom(50, deflate=False)
    with pytest.raises(ml.ImageTooLargeError, match="max_items="):
        ml.load(data, max_items=10, max_frames=1)
    image = ml.load(data)  # 50 items are nothing unusual
    assert image.array.shape == (128, 128)


def test_twenty_thousand_tiff_pages_refused_before_decoding(monkeypatch):
    data = tiff_bytes(20_001, 1, 1)
    monkeypatch.setattr(raster_io.cv2, "imdecodemulti", never("the page decoder"))
    monkeypatch.setattr(raster_io.cv2, "imdecode", never("the decoder"))
    with pytest.raises(ml.ImageTooLargeError) as info:
        ml.load(data)
    check_refusal(info.value, "pages", "10,000", "max_frames=")


def test_page_limit_is_an_option():
    data = tiff_bytes(12, 3, 4, fill=9)
    with pytest.raises(ml.ImageTooLargeError, match=r"pages.*max_frames="):
        ml.load(data, max_frames=11)
    image = ml.load(data, max_frames=12)
    assert image.array.shape == (12, 3, 4)
    assert np.all(image.array == 9)


def test_tiff_pages_stream_into_one_volume():
    # 40 pages, decoded in batches of pages: every page lands in its place.
    pages = [np.full((5, 6), k, np.uint8) for k in range(40)]
    import cv2

    ok, buf = cv2.imencodemulti(".tiff", pages)
    assert ok
    image = ml.load(bytes(buf), max_bytes=2048)
    assert image.array.shape == (40, 5, 6)
    np.testing.assert_array_equal(image.array[:, 2, 3], np.arange(40))


def test_tiff_next_page_past_the_end_loads_the_intact_page():
    data = tiff_bytes(1, 7, 9, fill=5, next_past_end=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        image = ml.load(data)
    assert image.array.shape == (7, 9)
    assert np.all(image.array == 5)
    notes = [str(w.message) for w in caught if "past the end" in str(w.message)]
    assert notes and "1 intact page" in notes[0]
    assert image.meta["warnings"] == notes[:1]


def test_tiff_pages_of_different_sizes_are_refused_in_a_sentence():
    import cv2

    ok, buf = cv2.imencodemulti(
        ".tiff", [np.zeros((4, 4), np.uint8), np.zeros((5, 4), np.uint8)]
    )
    assert ok
    with pytest.raises(ml.DecodeError) as info:
        ml.load(bytes(buf))
    check_refusal(info.value, "page 2", "not one volume")


def test_frame_count_that_pydicom_resolves_loads():
    # NumberOfFrames says 8; the JPEG 2000 data holds 10 frames, which
    # pydicom decodes (with a warning): all 10 load, with a warning.
    ds = pydicom.dcmread(dicom_file("emri_small_jpeg_2k_lossless.dcm"))
    truth = ds.pixel_array
    ds.NumberOfFrames = 8
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        image = ml.load(save(ds, ds.file_meta.TransferSyntaxUID))
    assert image.array.shape == truth.shape
    np.testing.assert_array_equal(image.array, truth)
    assert any("holds 10" in str(w.message) for w in caught)


def test_more_encoded_frames_than_announced_count_against_the_budget():
    ds = pydicom.dcmread(dicom_file("emri_small_jpeg_2k_lossless.dcm"))
    ds.NumberOfFrames = 2
    data = save(ds, ds.file_meta.TransferSyntaxUID)
    with pytest.raises(ml.ImageTooLargeError, match="10 frames"):
        ml.load(data, max_frames=5)


@pytest.mark.parametrize("option", ["max_bytes", "max_frames", "max_items"])
@pytest.mark.parametrize("value", [0, -5, 2.5, "10", True])
def test_limits_are_checked(option, value):
    with pytest.raises(ValueError, match=option):
        ml.load(b"", **{option: value})
