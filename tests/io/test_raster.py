"""PNG, JPEG and TIFF keep their bit depth."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import tifffile

import medimg_lab as ml


def test_16bit_png_stays_16bit():
    values = (np.arange(64 * 80).reshape(64, 80) * 13).astype(np.uint16)
    image = ml.load(cv2.imencode(".png", values)[1].tobytes())
    assert image.array.dtype == np.uint16
    np.testing.assert_array_equal(image.array, values)
    assert image.meta["spacing_known"] is False


def test_rgb_png_comes_out_rgb_not_bgr():
    rgb = np.zeros((10, 12, 3), np.uint8)
    rgb[..., 0] = 200  # red
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    image = ml.load(cv2.imencode(".png", bgr)[1].tobytes())
    assert image.is_color
    np.testing.assert_array_equal(image.array, rgb)


def test_grey_saved_as_rgb_becomes_grey():
    grey = np.random.default_rng(0).integers(0, 255, (20, 30), dtype=np.uint8)
    image = ml.load(cv2.imencode(".png", cv2.merge([grey] * 3))[1].tobytes())
    assert image.array.shape == (20, 30)
    np.testing.assert_array_equal(image.array, grey)


def test_jpeg_loads():
    grey = np.tile(np.arange(64, dtype=np.uint8) * 4, (32, 1))
    image = ml.load(
        cv2.imencode(".jpg", grey, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
    )
    assert image.array.shape == (32, 64)
    assert np.abs(image.array.astype(int) - grey).max() <= 8


def test_multipage_16bit_tiff_is_a_stack(tmp_path):
    stack = np.random.default_rng(1).integers(0, 60000, (4, 16, 20)).astype(np.uint16)
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, stack, photometric="minisblack")
    image = ml.load(path)
    assert image.array.dtype == np.uint16 and image.is_volume
    np.testing.assert_array_equal(image.array, stack)


def test_retina_sample_is_rgb():
    image = ml.data.sample("retina")
    assert image.array.shape == (1411, 1411, 3) and image.is_color


@pytest.mark.parametrize("cut", [60, 200])
def test_truncated_png_is_a_clear_error(cut):
    noise = np.random.default_rng(2).integers(0, 255, (64, 64), dtype=np.uint8)
    data = cv2.imencode(".png", noise)[1].tobytes()[:cut]
    with pytest.raises(ml.MedImgError, match=r"cut short|damaged"):
        ml.load(data)


def test_png_chunk_longer_than_the_file_is_refused_before_decoding():
    png = bytearray(cv2.imencode(".png", np.zeros((8, 8), np.uint8))[1].tobytes())
    idat = png.index(b"IDAT") - 4
    png[idat : idat + 4] = (0xFFFFFFFF).to_bytes(4, "big")
    with pytest.raises(
        ml.TruncatedFileError, match=r"chunk 'IDAT' announces 4294967295"
    ):
        ml.load(bytes(png))


def test_png_without_iend_is_truncated():
    png = cv2.imencode(".png", np.zeros((8, 8), np.uint8))[1].tobytes()
    with pytest.raises(ml.TruncatedFileError, match="IEND"):
        ml.load(png[:-12])
