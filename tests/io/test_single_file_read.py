"""A single native file loads at disk speed, with the thorough reader's result.

The header is parsed from the file's first 64 KiB when it ends there, and
the pixel values are read from the file straight into their array: no copy
of the whole file in memory, and no scan of its pixel bytes. A header that
goes on past those bytes, or one that ends exactly at their end, is read
from the whole file instead. Each case is checked against the thorough
reader (the path every other file takes), value for value.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pydicom
import pytest

import medimg_lab as ml
from medimg_lab.io import dicom
from tests.helpers import dicom_file


def thorough(path: Path, monkeypatch) -> ml.MedImage:
    """The image as the file-by-file reader makes it (no fast path)."""
    with monkeypatch.context() as m:
        m.setattr(dicom, "_native_file", lambda *a, **k: None)
        return ml.load(path)


def assert_same(fast: ml.MedImage, slow: ml.MedImage) -> None:
    assert fast.array.dtype == slow.array.dtype
    np.testing.assert_array_equal(fast.array, slow.array)
    assert fast.spacing == slow.spacing
    assert fast.window == slow.window
    assert fast.modality == slow.modality
    assert fast.meta == slow.meta


def with_private_bytes(tmp_path: Path, source: str, size: int) -> Path:
    """``source`` with a private OB element of ``size`` bytes before its pixels."""
    ds = pydicom.dcmread(dicom_file(source))
    ds.add_new(0x00091010, "LO", "MEDIMG TEST")  # private creator
    ds.add_new(0x00091011, "OB", b"\x00" * size)
    path = tmp_path / f"{source}-{size}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def pixel_offset(path: Path) -> int:
    data = path.read_bytes()
    return data.rindex(dicom._PIXEL_DATA_LE)


@pytest.mark.parametrize(
    "name",
    [
        "693_UNCR.dcm",  # CT 512², padding, rescale
        "RG1_UNCR.dcm",  # MONOCHROME1 film 1955 x 1841, 15 of 16 bits
        "CT_small.dcm",  # smaller than the first read: read whole
        "MR_small.dcm",
    ],
)
def test_a_file_reads_as_the_thorough_reader_reads_it(name, monkeypatch):
    path = dicom_file(name)
    assert_same(ml.load(path), thorough(path, monkeypatch))


def test_a_header_longer_than_the_first_read_is_read_whole(tmp_path, monkeypatch):
    path = with_private_bytes(tmp_path, "693_UNCR.dcm", 100_000)
    assert pixel_offset(path) > dicom._HEADER_PREFIX
    assert_same(ml.load(path), thorough(path, monkeypatch))


def test_a_header_that_ends_where_the_first_read_ends_is_read_whole(
    tmp_path, monkeypatch
):
    # The first read then holds a complete header without its pixel data
    # element: parsed alone, it would look like an image without pixels.
    base = with_private_bytes(tmp_path, "693_UNCR.dcm", 1000)
    size = 1000 + dicom._HEADER_PREFIX - pixel_offset(base)
    path = with_private_bytes(tmp_path, "693_UNCR.dcm", size)
    assert pixel_offset(path) == dicom._HEADER_PREFIX
    assert_same(ml.load(path), thorough(path, monkeypatch))


def test_the_pixels_are_not_held_twice(tmp_path):
    # The film's values are read into their array and flipped there
    # (MONOCHROME1): the peak is the image (and its window's sample), not
    # the file's bytes beside it, which made it twice the image.
    path = dicom_file("RG1_UNCR.dcm")
    ml.load(path)  # imports and caches
    tracemalloc.start()
    try:
        image = ml.load(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert image.meta["monochrome1_inverted"]
    assert peak < 1.5 * image.array.nbytes, (peak, image.array.nbytes)


def test_a_cut_file_is_still_refused_by_name(tmp_path):
    data = dicom_file("693_UNCR.dcm").read_bytes()
    path = tmp_path / "cut.dcm"
    path.write_bytes(data[: len(data) // 2])  # inside the pixel data
    with pytest.raises(ml.MedImgError) as caught:
        ml.load(path)
    assert "cut.dcm" in str(caught.value)


@pytest.mark.parametrize(
    "name",
    [
        "693_UNCR.dcm",  # native: the header, then the pixels into their array
        "MR_small_jpeg_ls_lossless.dcm",  # compressed: the thorough read only
        "693_J2KR.dcm",
        "JPEGLSNearLossless_16.dcm",
    ],
)
def test_a_file_is_parsed_once(name, monkeypatch):
    calls = []
    original = pydicom.dcmread
    monkeypatch.setattr(
        pydicom, "dcmread", lambda *a, **k: calls.append(1) or original(*a, **k)
    )
    image = ml.load(dicom_file(name))
    assert image.array.size
    assert len(calls) == 1


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("garbage", [False, True])
def test_unused_high_bits_are_cleared_only_where_set(
    tmp_path, monkeypatch, signed, garbage
):
    # 12 of 16 bits stored: values already within 12 bits are left as they
    # are (no pass over them); garbage above bit 11 is cleared, and a signed
    # value's sign extended from bit 11, as pydicom does.
    ds = pydicom.dcmread(dicom_file("CT_small.dcm"))
    rng = np.random.default_rng(int(signed) * 2 + int(garbage))
    low, high = (-2048, 2048) if signed else (0, 4096)
    values = rng.integers(low, high, (ds.Rows, ds.Columns))
    stored = values.astype(np.int16 if signed else np.uint16)
    if garbage:  # set bits 12-15 at random, as some writers leave them
        noise = rng.integers(0, 16, stored.shape).astype(np.uint16) << 12
        stored = (stored.view(np.uint16) ^ noise).view(stored.dtype)
    ds.BitsStored, ds.HighBit = 12, 11
    ds.PixelRepresentation = int(signed)
    ds.RescaleSlope, ds.RescaleIntercept = 1, 0
    for keyword in ("PixelPaddingValue", "WindowCenter", "WindowWidth"):
        if keyword in ds:
            del ds[keyword]
    ds.PixelData = stored.tobytes()
    path = tmp_path / "twelve-bits.dcm"
    ds.save_as(path, enforce_file_format=True)
    image = ml.load(path)
    np.testing.assert_array_equal(image.array, values)
    assert_same(image, thorough(path, monkeypatch))
