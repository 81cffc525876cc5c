"""NIfTI: canonical orientation, spacing, 4D and NaN handling."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest

import medimg_lab as ml
from medimg_lab.data import path as sample_path


def test_mni_brain_spacing_and_layout():
    img = nib.load(sample_path("brain_mri"))
    image = ml.load(sample_path("brain_mri"))
    zooms = img.header.get_zooms()
    nx, ny, nz = img.shape
    assert image.array.shape == (nz, ny, nx)
    assert image.spacing == pytest.approx((zooms[2], zooms[1], zooms[0]))
    assert image.meta["orientation"].startswith("axial")


@pytest.mark.parametrize(
    ("axcodes", "flip"),
    [(("R", "A", "S"), ()), (("L", "P", "S"), (0, 1)), (("R", "A", "I"), (2,))],
)
def test_any_orientation_loads_to_the_same_canonical_array(axcodes, flip):
    rng = np.random.default_rng(0)
    ras = rng.integers(0, 1000, size=(5, 6, 7)).astype(np.int16)
    data = np.flip(ras, axis=flip) if flip else ras
    affine = np.diag([2.0, 3.0, 4.0, 1.0])
    for axis in flip:
        affine[axis, axis] *= -1
    assert nib.aff2axcodes(affine) == axcodes
    image = ml.load(nib.Nifti1Image(data, affine).to_bytes())
    # (x, y, z) RAS -> (slice I→S, row A→P, column R→L)
    expected = np.swapaxes(ras, 0, 2)[:, ::-1, ::-1]
    np.testing.assert_array_equal(image.array, expected)
    assert image.spacing == (4.0, 3.0, 2.0)


def test_gzip_bytes_and_file_give_the_same_volume(tmp_path):
    vol = np.arange(60, dtype=np.float32).reshape(3, 4, 5)
    raw = nib.Nifti1Image(vol, np.eye(4)).to_bytes()
    path = tmp_path / "v.nii.gz"
    path.write_bytes(gzip.compress(raw))
    a, b = ml.load(gzip.compress(raw)), ml.load(path)
    np.testing.assert_array_equal(a.array, b.array)
    assert b.source == str(path) and a.source is None


def test_four_d_needs_a_volume_index():
    vol = np.stack([np.full((4, 5, 6), i, np.int16) for i in range(3)], axis=-1)
    raw = nib.Nifti1Image(vol, np.eye(4)).to_bytes()
    with pytest.raises(ml.UnsupportedDimensionError, match=r"4D series of 3.*volume="):
        ml.load(raw)
    assert np.all(ml.load(raw, volume=2).array == 2)


def test_nan_voxels_are_an_error_unless_replaced():
    vol = np.ones((4, 5, 6), np.float32)
    vol[1, 2, 3] = np.nan
    vol[0, 0, 0] = np.inf
    raw = nib.Nifti1Image(vol, np.eye(4)).to_bytes()
    with pytest.raises(ml.InvalidValuesError, match="2 NaN or infinite voxels"):
        ml.load(raw)
    image = ml.load(raw, replace_nonfinite=0)
    assert np.isfinite(image.array).all() and image.meta["nonfinite_replaced"] == 2


def test_float64_becomes_float32_and_scaling_is_applied():
    vol = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    img = nib.Nifti1Image(vol, np.eye(4))
    img.header.set_slope_inter(0.5, 10)
    image = ml.load(img.to_bytes())
    assert image.array.dtype == np.float32
    assert image.array.max() == pytest.approx(23 * 0.5 + 10)
