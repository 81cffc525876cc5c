"""Compressed pixel data decodes through the decoder measured fastest (issue 20).

pydicom tries pylibjpeg-libjpeg first for JPEG-LS; pyjpegls (CharLS) decodes
the same files several times faster (``benchmarks/bench_io.py``). The loader
prefers it, so it must give the same pixels bit for bit, on every JPEG-LS
file of the corpus that pydicom decodes, and fall back to pydicom's own order
where the preferred plugin cannot decode a file.

Greyscale JPEG-LS and JPEG 2000 frames go straight through imagecodecs
(``medimg_lab.io._codecs``): on every such file of the corpus, and on
generated signed, unsigned, 8-bit and multi-frame ones, its pixels must be
pydicom's bit for bit, dtype included, on one thread and on several.
"""

from __future__ import annotations

import warnings

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import (
    JPEG2000,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEG2000TransferSyntaxes,
    JPEGLSLossless,
    JPEGLSTransferSyntaxes,
    generate_uid,
)

import medimg_lab as ml
from medimg_lab.io import _codecs, dicom
from tests.helpers import dicom_file
from tests.io.test_corpus import corpus


def syntax_of(path):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        return ds.file_meta.get("TransferSyntaxUID")
    except Exception:  # not DICOM: not in this test
        return None


JPEG_LS = [
    (label, path)
    for label, path in corpus()
    if syntax_of(path) in JPEGLSTransferSyntaxes
]


J2K = [
    (label, path)
    for label, path in corpus()
    if syntax_of(path) in JPEG2000TransferSyntaxes
]


def decoded_by(path, plugin):
    """The pixels pydicom decodes with ``plugin`` alone, or None if it cannot."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path)
        ds.pixel_array_options(decoding_plugin=plugin)
        try:
            return ds.pixel_array
        except Exception:  # this plugin cannot decode this file
            return None


def test_the_corpus_holds_jpeg_ls_files():
    assert len(JPEG_LS) >= 5


def test_jpeg_ls_prefers_pyjpegls_and_jpeg_2000_pylibjpeg():
    for syntax in JPEGLSTransferSyntaxes:
        assert dicom.preferred_decoder(syntax) == "pyjpegls"
    for syntax in (JPEG2000Lossless, JPEG2000):
        assert dicom.preferred_decoder(syntax) == "pylibjpeg"


@pytest.mark.parametrize(("label", "path"), JPEG_LS, ids=[lb for lb, _ in JPEG_LS])
def test_preferred_jpeg_ls_decoder_gives_the_same_pixels(label, path):
    preferred = decoded_by(path, "pyjpegls")
    other = decoded_by(path, "pylibjpeg")
    if preferred is None and other is None:
        pytest.xfail(f"{label}: neither plugin decodes it (the corpus test judges it)")
    if preferred is not None and other is not None:
        assert preferred.dtype == other.dtype
        np.testing.assert_array_equal(preferred, other)
    # The loader decodes whatever either plugin decodes, at its size.
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    shape = ml.load(path).array.shape
    rows_cols = (int(ds.Rows), int(ds.Columns))
    assert rows_cols in {shape[k : k + 2] for k in range(len(shape) - 1)}


def test_a_file_the_preferred_plugin_refuses_falls_back(monkeypatch):
    path = dicom_file("MR_small_jpeg_ls_lossless.dcm")
    expected = ml.load(path).array
    # A preferred plugin that cannot decode it: pydicom's own order takes over.
    monkeypatch.setattr(dicom, "preferred_decoder", lambda syntax: "no-such-plugin")
    np.testing.assert_array_equal(ml.load(path).array, expected)
    np.testing.assert_array_equal(expected, ml.load(dicom_file("MR_small.dcm")).array)


def pydicom_pixels(ds):
    """pydicom's own pixels of ``ds``, through its plugins (never imagecodecs)."""
    syntax = ds.file_meta.TransferSyntaxUID
    plugin = "pyjpegls" if syntax in JPEGLSTransferSyntaxes else "pylibjpeg"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.pixel_array_options(decoding_plugin=plugin)
        try:
            return ds.pixel_array
        except Exception:  # that plugin cannot decode it
            return None


def direct(ds):
    frames = int(ds.get("NumberOfFrames") or 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _codecs.decode_frames(ds, ds.file_meta.TransferSyntaxUID, frames)


def assert_same_as_pydicom(ds, label):
    got = direct(ds)
    if got is None:
        return False
    expected = pydicom_pixels(ds)
    assert expected is not None, f"{label}: imagecodecs decodes what pydicom cannot"
    assert got.dtype == expected.dtype, label
    assert got.shape == expected.shape, label
    np.testing.assert_array_equal(got, expected, err_msg=label)
    return True


def test_imagecodecs_gives_pydicoms_pixels_on_the_corpus():
    decoded = []
    for label, path in JPEG_LS + J2K:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path, force=True)
        try:
            if assert_same_as_pydicom(ds, label):
                decoded.append(label)
        except AttributeError:  # no pixel module: not a case here
            continue
    # Most greyscale files of both syntaxes take the direct path.
    assert sum(1 for lb, _ in JPEG_LS if lb in decoded) >= 4, decoded
    assert sum(1 for lb, _ in J2K if lb in decoded) >= 6, decoded


def encoded(values, syntax, *, bits_stored, signed, photometric="MONOCHROME2"):
    """A dataset of ``values`` (frames, rows, columns) compressed with ``syntax``."""
    frames, rows, cols = values.shape
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 8 if bits_stored <= 8 else 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = int(signed)
    if frames > 1:
        ds.NumberOfFrames = frames
    plain = values if frames > 1 else values[0]
    ds.PixelData = plain.astype(
        f"{'i' if signed else 'u'}{ds.BitsAllocated // 8}"
    ).tobytes()
    plugin = "pyjpegls" if syntax == JPEGLSLossless else "pylibjpeg"
    ds.compress(syntax, encoding_plugin=plugin)
    return ds


GENERATED = [
    # (label, bits stored, signed, low, high, frames)
    ("signed 12-bit", 12, True, -2000, 2000, 1),
    ("unsigned 12-bit", 12, False, 0, 4095, 1),
    ("signed 16-bit", 16, True, -32768, 32767, 1),
    ("unsigned 16-bit", 16, False, 0, 65535, 1),
    ("unsigned 8-bit", 8, False, 0, 255, 1),
    ("signed 12-bit, 3 frames", 12, True, -2048, 2047, 3),
]


@pytest.mark.parametrize(
    "syntax", [JPEGLSLossless, JPEG2000Lossless], ids=["jls", "j2k"]
)
@pytest.mark.parametrize(
    ("label", "bits", "signed", "low", "high", "frames"),
    GENERATED,
    ids=[case[0] for case in GENERATED],
)
def test_imagecodecs_gives_the_encoded_values(
    syntax, label, bits, signed, low, high, frames
):
    rng = np.random.default_rng(bits + frames)
    values = rng.integers(low, high, size=(frames, 40, 56), endpoint=True)
    values[:, 0, 0], values[:, -1, -1] = low, high  # the extremes are there
    ds = encoded(values, syntax, bits_stored=bits, signed=signed)
    assert assert_same_as_pydicom(ds, label)
    got = direct(ds)
    np.testing.assert_array_equal(got, values if frames > 1 else values[0])


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_jpeg_2000_decodes_alike_on_any_number_of_threads(threads):
    previous = _codecs.set_decode_threads(threads)
    try:
        assert _codecs.decode_threads() == threads
        ds = pydicom.dcmread(dicom_file("MR2_J2KR.dcm"))
        assert assert_same_as_pydicom(ds, f"{threads} threads")
    finally:
        _codecs.set_decode_threads(previous)
    assert _codecs.decode_threads() >= 1


def test_decode_threads_refuses_nonsense():
    for bad in (0, -1, True):
        with pytest.raises(ValueError, match="1 or more"):
            _codecs.set_decode_threads(bad)


def test_colour_and_damaged_frames_are_left_to_pydicom():
    colour = pydicom.dcmread(dicom_file("US1_J2KR.dcm"))
    assert int(colour.SamplesPerPixel) == 3
    assert direct(colour) is None
    ds = pydicom.dcmread(dicom_file("MR_small_jpeg_ls_lossless.dcm"))
    frame = bytearray(next(generate_frames(ds.PixelData, number_of_frames=1)))
    frame[len(frame) // 2 :] = bytes(len(frame) - len(frame) // 2)  # garbage
    ds.PixelData = encapsulate([bytes(frame)])
    assert direct(ds) is None or assert_same_as_pydicom(ds, "damaged")
    # A codestream of another size than the header's never takes this path.
    ds = pydicom.dcmread(dicom_file("MR_small_jpeg_ls_lossless.dcm"))
    ds.Rows = int(ds.Rows) + 1
    assert direct(ds) is None


@pytest.mark.parametrize(
    ("keyword", "value"),
    [
        ("BitsStored", 65535),
        ("BitsStored", 0),
        ("BitsStored", 17),
        ("PixelRepresentation", 2),
        ("BitsAllocated", 12),
        ("Columns", 0),
    ],
)
def test_a_pixel_module_pydicom_refuses_is_left_to_it(keyword, value):
    # Seen in the fuzz test: Bits Stored 65535 decoded, then overflowed the
    # stored range. Such headers go to pydicom, which refuses them by name.
    ds = pydicom.dcmread(dicom_file("MR_small_jpeg_ls_lossless.dcm"))
    setattr(ds, keyword, value)
    assert direct(ds) is None
