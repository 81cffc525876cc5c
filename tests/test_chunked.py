"""Chunk-wise processing: map_overlap equals the in-memory computation.

Tolerances: the median and the thresholds must be equal exactly. The
Gaussian may differ by float32 rounding of a different summation order:
``atol = 1e-4 × (max - min)`` of the volume (it has been exactly equal on
this machine).
"""

from __future__ import annotations

import dask
import dask.array as da
import nibabel as nib
import numpy as np
import pydicom
import pytest

import medimg_lab as ml
from medimg_lab import chunked
from medimg_lab.errors import MedImgError, OutputExistsError, SeriesError
from medimg_lab.processing import gaussian, median
from medimg_lab.segmentation import threshold_range

ANISOTROPIC = (2.5, 0.7, 0.7)


@pytest.fixture(scope="module", autouse=True)
def _synchronous():
    with dask.config.set(scheduler="synchronous"):
        yield


@pytest.fixture(scope="module")
def brain():
    return ml.data.sample("brain_mri")


@pytest.fixture(scope="module")
def aniso():
    """A float32 volume with structure and noise, spacing 2.5 × 0.7 × 0.7 mm."""
    rng = np.random.default_rng(1)
    z, y, x = np.mgrid[0:23, 0:61, 0:47].astype(np.float32)
    blob = 800 * np.exp(
        -((z - 11) ** 2 / 30 + (y - 30) ** 2 / 200 + (x - 20) ** 2 / 90)
    )
    return (blob + rng.normal(0, 40, blob.shape)).astype(np.float32)


def _gaussian_atol(image):
    return 1e-4 * float(image.max() - image.min())


# -------------------------------------------------------------------- halo


def test_halo_gaussian_is_the_truncated_kernel_radius():
    assert chunked.halo("gaussian", {"sigma_mm": 2.0}, ANISOTROPIC) == (4, 12, 12)
    assert chunked.halo("gaussian", {"sigma_mm": 1.0}, (1, 1, 1)) == (4, 4, 4)
    assert chunked.halo("median", {"size": 7}, (1, 1, 1)) == (0, 3, 3)
    assert chunked.halo("threshold_range", {}, (1, 1, 1)) == (0, 0, 0)


@pytest.mark.parametrize("sigma_mm", [0.5, 1.0, 2.3])
def test_halo_gaussian_matches_the_impulse_response(sigma_mm):
    impulse = np.zeros((61, 61, 61), np.float32)
    impulse[30, 30, 30] = 1
    spacing = (2.0, 0.8, 0.8)
    response = gaussian(impulse, sigma_mm=sigma_mm, spacing=spacing)
    reach = tuple(int(30 - np.nonzero(response)[a].min()) for a in range(3))
    assert chunked.halo("gaussian", {"sigma_mm": sigma_mm}, spacing) == reach


def test_unsupported_operation_lists_the_supported_ones():
    with pytest.raises(ValueError, match=r"chunk-wise operations are .*gaussian"):
        chunked.halo("threshold_otsu", {}, (1, 1, 1))
    with pytest.raises(ValueError, match="unknown operation"):
        chunked.halo("no_such_filter", {}, (1, 1, 1))


# --------------------------------------------------------- equal results


@pytest.mark.parametrize("chunks", [(40, 233, 197), (17, 60, 90), (1, 233, 197)])
def test_median_equals_in_memory_exactly_on_the_brain(brain, chunks):
    volume = da.from_array(brain.array, chunks=chunks)
    got = chunked.apply_chunked(volume, "median", {"size": 5}, spacing=brain.spacing)
    np.testing.assert_array_equal(got.compute(), median(brain.array, size=5))


@pytest.mark.parametrize("chunks", [(40, 233, 197), (17, 60, 90), (3, 233, 197)])
def test_gaussian_equals_in_memory_on_the_brain(brain, chunks):
    # (3, ...) is thinner than the z halo of 8: dask merges chunks first.
    volume = da.from_array(brain.array, chunks=chunks)
    got = chunked.apply_chunked(
        volume, "gaussian", {"sigma_mm": 2.0}, spacing=brain.spacing
    ).compute()
    expected = gaussian(brain.array, sigma_mm=2.0, spacing=brain.spacing)
    assert got.dtype == expected.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=0, atol=_gaussian_atol(expected))


@pytest.mark.parametrize("chunks", [(5, 61, 47), (7, 13, 11), (2, 61, 47)])
def test_gaussian_and_median_equal_in_memory_when_anisotropic(aniso, chunks):
    volume = da.from_array(aniso, chunks=chunks)
    got = chunked.apply_chunked(
        volume, "gaussian", {"sigma_mm": 1.5}, spacing=ANISOTROPIC
    ).compute()
    expected = gaussian(aniso, sigma_mm=1.5, spacing=ANISOTROPIC)
    np.testing.assert_allclose(got, expected, rtol=0, atol=_gaussian_atol(aniso))
    for size in (3, 7):  # the cv2.medianBlur and scipy paths, both mirrored
        got = chunked.apply_chunked(
            volume, "median", {"size": size}, spacing=ANISOTROPIC
        )
        np.testing.assert_array_equal(got.compute(), median(aniso, size=size))


def test_the_volume_edges_are_mirrored_as_the_module_says(aniso):
    """At the volume's own edges chunks get no halo; the median there mirrors
    (scipy mode="mirror" = BORDER_REFLECT_101), it does not replicate."""
    from scipy.ndimage import median_filter

    volume = da.from_array(aniso, chunks=(5, 20, 16))
    got = chunked.apply_chunked(volume, "median", {"size": 5}, spacing=ANISOTROPIC)
    got = got.compute()
    footprint = (1, 5, 5)
    mirrored = median_filter(aniso, size=footprint, mode="mirror")
    replicated = median_filter(aniso, size=footprint, mode="nearest")
    np.testing.assert_array_equal(got, mirrored)
    edges = np.zeros(aniso.shape[1:], bool)
    edges[:2], edges[-2:], edges[:, :2], edges[:, -2:] = True, True, True, True
    assert np.any(got[:, edges] != replicated[:, edges])


def test_halo_deeper_than_the_volume_takes_the_axis_whole(aniso):
    volume = da.from_array(aniso[:3], chunks=(1, 20, 47))
    got = chunked.apply_chunked(
        volume, "gaussian", {"sigma_mm": 4.0}, spacing=ANISOTROPIC
    )
    expected = gaussian(aniso[:3], sigma_mm=4.0, spacing=ANISOTROPIC)
    np.testing.assert_allclose(got.compute(), expected, atol=_gaussian_atol(aniso))


def test_thresholds_equal_in_memory_exactly(aniso, brain):
    volume = da.from_array(aniso, chunks=(4, 30, 30))
    got = chunked.apply_chunked(
        volume, "threshold_range", {"low": 100.0, "high": 600.0}, spacing=ANISOTROPIC
    ).compute()
    assert got.dtype == bool
    np.testing.assert_array_equal(got, threshold_range(aniso, low=100.0, high=600.0))
    got = chunked.apply_chunked(
        da.from_array(brain.array, chunks=(50, 100, 100)),
        "window_level",
        {"center": 60.0, "width": 80.0},
        spacing=brain.spacing,
    )
    from medimg_lab.processing import window_level

    np.testing.assert_array_equal(
        got.compute(), window_level(brain.array, center=60.0, width=80.0)
    )


def test_bad_arguments_are_named(aniso):
    volume = da.from_array(aniso, chunks=8)
    with pytest.raises(ValueError, match="sigma_mm must lie in"):
        chunked.apply_chunked(volume, "gaussian", {"sigma_mm": -1}, spacing=ANISOTROPIC)
    with pytest.raises(ValueError, match="spacing must give 3"):
        chunked.apply_chunked(volume, "gaussian", {}, spacing=(1.0, 1.0))
    with pytest.raises(ValueError, match="pass spacing="):
        chunked.apply_chunked(
            volume, "gaussian", {"spacing": (1, 1, 1)}, spacing=(1, 1, 1)
        )
    with pytest.raises(ValueError, match="size must be odd"):
        chunked.apply_chunked(volume, "median", {"size": 4}, spacing=ANISOTROPIC)


# ------------------------------------------------------------------ input


def test_nifti_memmap_input_matches_load(tmp_path, aniso):
    # A non-canonical affine (LPS, axes permuted) checks the reorientation.
    data = np.ascontiguousarray(np.transpose(aniso, (1, 0, 2)))
    affine = np.array(
        [[0, 0, -0.7, 10], [-0.7, 0, 0, 5], [0, 2.5, 0, -3], [0, 0, 0, 1.0]]
    )
    path = tmp_path / "vol.nii"
    nib.save(nib.Nifti1Image(data, affine), path)
    volume, spacing, meta = chunked.open_volume(path, chunks=4)
    loaded = ml.load(path)
    assert isinstance(volume, da.Array) and volume.chunksize[0] == 4
    assert spacing == pytest.approx(loaded.spacing)
    assert meta["orientation"] == loaded.meta["orientation"]
    np.testing.assert_array_equal(volume.compute(), loaded.array)
    np.testing.assert_array_equal(
        volume[5:9, 10:20].compute(), loaded.array[5:9, 10:20]
    )


def test_scaled_nifti_reads_float32_like_load(tmp_path, brain):
    img = nib.Nifti1Image(brain.array[:20].astype(np.int16), np.eye(4))
    img.header.set_slope_inter(0.5, -10)
    nib.save(img, tmp_path / "scaled.nii")
    volume, _, _ = chunked.open_volume(tmp_path / "scaled.nii")
    loaded = ml.load(tmp_path / "scaled.nii")
    assert volume.dtype == loaded.array.dtype == np.float32
    np.testing.assert_array_equal(volume.compute(), loaded.array)


def test_zarr_round_trip_keeps_values_and_spacing(tmp_path, aniso):
    volume = da.from_array(aniso, chunks=(5, 61, 47))
    store = chunked.save_zarr(volume, tmp_path / "v.zarr", spacing=ANISOTROPIC)
    back, spacing, meta = chunked.open_volume(store)
    assert spacing == ANISOTROPIC and meta["spacing_known"]
    np.testing.assert_array_equal(back.compute(), aniso)


def test_nifti_output_is_readable_with_its_spacing(tmp_path, aniso):
    smooth = chunked.apply_chunked(
        da.from_array(aniso, chunks=(4, 61, 47)), "median", {}, spacing=ANISOTROPIC
    )
    path = chunked.save_nifti(smooth, tmp_path / "out.nii", spacing=ANISOTROPIC)
    img = nib.load(path)
    assert img.header.get_zooms() == pytest.approx((0.7, 0.7, 2.5))
    assert img.shape == aniso.shape[::-1]
    loaded = ml.load(path)
    assert loaded.spacing == pytest.approx(ANISOTROPIC)
    np.testing.assert_array_equal(loaded.array, median(aniso, size=3))
    back, _, _ = chunked.open_volume(path)
    np.testing.assert_array_equal(back.compute(), loaded.array)
    assert [p.name for p in tmp_path.iterdir()] == ["out.nii"]  # no temp left


def test_mask_goes_to_nifti_as_uint8(tmp_path, aniso):
    mask = chunked.apply_chunked(
        da.from_array(aniso, chunks=8),
        "threshold_range",
        {"low": 200.0},
        spacing=ANISOTROPIC,
    )
    path = chunked.save_nifti(mask, tmp_path / "mask.nii", spacing=ANISOTROPIC)
    np.testing.assert_array_equal(ml.load(path).array, aniso >= 200)


@pytest.fixture
def series(tmp_path, dcm):
    """Six CT slices (with pixel padding), file order unlike position order."""
    template = pydicom.dcmread(dcm("CT_small.dcm"))
    folder = tmp_path / "series"
    folder.mkdir()
    rng = np.random.default_rng(2)
    for k, z in enumerate([3, 0, 5, 1, 4, 2]):
        ds = template.copy()
        pixels = template.pixel_array.astype(np.int16) + rng.integers(
            -50, 50, (128, 128), dtype=np.int16
        )
        pixels[:4] = -2000  # PixelPaddingValue: becomes -1024 HU
        ds.PixelData = pixels.tobytes()
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [-158.1, -179.0, -75.7 + 2.5 * z]
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        ds.save_as(folder / f"im{k}.dcm")
    return folder


def test_dicom_series_reads_lazily_like_load(series):
    volume, spacing, meta = chunked.open_volume(series, chunks=4)
    loaded = ml.load(series)
    assert volume.chunks[0] == (4, 2)
    assert spacing == pytest.approx(loaded.spacing)
    assert meta["sorted_by"] == loaded.meta["sorted_by"]
    np.testing.assert_array_equal(volume.compute(), loaded.array)
    assert volume.compute()[:, :4].max() == -1024
    got = chunked.apply_chunked(volume, "gaussian", {"sigma_mm": 2.0}, spacing=spacing)
    expected = gaussian(loaded.array, sigma_mm=2.0, spacing=loaded.spacing)
    np.testing.assert_allclose(got.compute(), expected, atol=_gaussian_atol(expected))


def test_two_series_need_a_choice(series):
    other = pydicom.dcmread(next(series.iterdir()))
    other.SeriesInstanceUID = pydicom.uid.generate_uid()
    other.SeriesNumber = 99
    other.save_as(series / "other.dcm")
    with pytest.raises(SeriesError, match="series=<number>"):
        chunked.open_volume(series)
    volume, _, _ = chunked.open_volume(series, series=99)
    assert volume.shape == (1, 128, 128)


# ------------------------------------------------------- output and errors


def test_refuses_to_overwrite_unless_asked(tmp_path, aniso):
    volume = da.from_array(aniso, chunks=8)
    for save, name in ((chunked.save_zarr, "v.zarr"), (chunked.save_nifti, "v.nii")):
        save(volume, tmp_path / name, spacing=ANISOTROPIC)
        with pytest.raises(OutputExistsError, match="overwrite=True"):
            save(volume * 2, tmp_path / name, spacing=ANISOTROPIC)
        save(volume * 2, tmp_path / name, spacing=ANISOTROPIC, overwrite=True)
        back, _, _ = chunked.open_volume(tmp_path / name)
        np.testing.assert_array_equal(back.compute(), aniso * 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.nii", "v.zarr"]


def test_bad_inputs_give_clear_errors(tmp_path, brain):
    with pytest.raises(MedImgError, match="does not exist"):
        chunked.open_volume(tmp_path / "missing.nii")
    nib.save(nib.Nifti1Image(brain.array[:4], np.eye(4)), tmp_path / "v.nii.gz")
    with pytest.raises(MedImgError, match="Decompress it"):
        chunked.open_volume(tmp_path / "v.nii.gz")
    nib.save(
        nib.Nifti1Image(np.zeros((4, 4, 4, 2), np.int16), np.eye(4)), tmp_path / "f.nii"
    )
    with pytest.raises(MedImgError, match=r"4D|shape"):
        chunked.open_volume(tmp_path / "f.nii")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(MedImgError, match="not an uncompressed NIfTI"):
        chunked.open_volume(tmp_path / "notes.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MedImgError, match="holds no DICOM"):
        chunked.open_volume(tmp_path / "empty")
    with pytest.raises(ValueError, match=r"\.nii"):
        chunked.save_nifti(brain.array, tmp_path / "x.nii.gz", spacing=(1, 1, 1))
    nib.save(nib.Nifti1Image(brain.array[:4], np.eye(4)), tmp_path / "v.nii")
    with pytest.raises(ValueError, match="chunks must be"):
        chunked.open_volume(tmp_path / "v.nii", chunks=(0, 1))
