"""Compressed pixel data decodes through the decoder measured fastest (issue 20).

pydicom tries pylibjpeg-libjpeg first for JPEG-LS; pyjpegls (CharLS) decodes
the same files several times faster (``benchmarks/bench_io.py``). The loader
prefers it, so it must give the same pixels bit for bit, on every JPEG-LS
file of the corpus that pydicom decodes, and fall back to pydicom's own order
where the preferred plugin cannot decode a file.
"""

from __future__ import annotations

import warnings

import numpy as np
import pydicom
import pytest
from pydicom.uid import JPEG2000, JPEG2000Lossless, JPEGLSTransferSyntaxes

import medimg_lab as ml
from medimg_lab.io import dicom
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
