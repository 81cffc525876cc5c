"""Saving: round trips, atomic writes, inputs never overwritten."""

from __future__ import annotations

import hashlib

import cv2
import numpy as np
import pytest

import medimg_lab as ml
from tests.helpers import dicom_file


def test_nifti_round_trip_keeps_values_spacing_and_layout(tmp_path):
    image = ml.load(dicom_file("eCT_Supplemental.dcm"))
    out = ml.save(image, tmp_path / "ct.nii.gz")
    back = ml.load(out)
    np.testing.assert_array_equal(back.array, image.array)
    assert back.spacing == pytest.approx(image.spacing)


def test_nifti_round_trip_of_a_2d_slice(tmp_path):
    image = ml.load(dicom_file("CT_small.dcm"))
    back = ml.load(ml.save(image, tmp_path / "slice.nii"))
    np.testing.assert_array_equal(back.array, image.array)
    assert back.spacing == pytest.approx(image.spacing)


def test_png_round_trip_16bit(tmp_path):
    values = (np.arange(50 * 60).reshape(50, 60) * 20).astype(np.uint16)
    image = ml.MedImage(values, spacing=(1, 1))
    back = ml.load(ml.save(image, tmp_path / "x.png"))
    np.testing.assert_array_equal(back.array, values)


def test_png_of_hounsfield_units_needs_a_window(tmp_path):
    ct = ml.data.sample("head_ct")
    with pytest.raises(ValueError, match="window="):
        ml.save(ct, tmp_path / "ct.png")
    path = ml.save(ct, tmp_path / "ct.png", window="brain")
    shown = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(shown, ml.display.to_display(ct, "brain"))


def test_existing_file_is_not_overwritten(tmp_path):
    image = ml.MedImage(np.zeros((4, 4), np.uint8), spacing=(1, 1))
    target = tmp_path / "a.png"
    target.write_bytes(b"precious")
    with pytest.raises(ml.OutputExistsError, match="overwrite=True"):
        ml.save(image, target)
    assert target.read_bytes() == b"precious"
    ml.save(image, target, overwrite=True)
    assert target.read_bytes() != b"precious"


def test_input_is_never_overwritten_even_with_overwrite(tmp_path):
    path = tmp_path / "in.nii.gz"
    ml.save(ml.MedImage(np.ones((3, 4, 5), np.int16), spacing=(1, 1, 1)), path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    image = ml.load(path)
    with pytest.raises(ml.OutputExistsError, match="never overwrites an input"):
        ml.save(image, path, overwrite=True)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest


def test_failed_write_leaves_no_partial_file(tmp_path):
    volume = ml.MedImage(np.zeros((3, 4, 5), np.uint8), spacing=(1, 1, 1))
    with pytest.raises(ValueError, match="volume"):
        ml.save(volume, tmp_path / "v.png")
    assert list(tmp_path.iterdir()) == []


def test_unknown_extension(tmp_path):
    image = ml.MedImage(np.zeros((4, 4), np.uint8), spacing=(1, 1))
    with pytest.raises(ValueError, match=r"\.nii, \.nii\.gz or \.png"):
        ml.save(image, tmp_path / "x.bmp")
