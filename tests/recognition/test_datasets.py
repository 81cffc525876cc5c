"""Patch datasets: sample studies, simulated lesions, folders and MedMNIST."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from medimg_lab.errors import MedImgError
from medimg_lab.recognition.datasets import (
    SAMPLE_CLASSES,
    PatchDataset,
    folder_dataset,
    lesion_slices,
    medmnist_npz,
    sample_patches,
)


@pytest.fixture(scope="module")
def samples():
    return sample_patches(size=16, per_class=30, seed=1)


@pytest.fixture(scope="module")
def lesions():
    return lesion_slices(n=20, size=32, contrast=40.0, radius_mm=5.0, seed=3)


def test_sample_patches_balanced_labels(samples):
    assert samples.patches.shape == (8 * 30, 16, 16)
    assert samples.patches.dtype == np.float32
    assert samples.class_names == list(SAMPLE_CLASSES)
    np.testing.assert_array_equal(np.bincount(samples.labels), [30] * 8)
    for label, name in enumerate(SAMPLE_CLASSES):
        assert set(samples.sources[samples.labels == label]) == {name}


def test_sample_patches_groups_never_span_two_sources(samples):
    for group in np.unique(samples.groups):
        assert len(set(samples.sources[samples.groups == group])) == 1


def test_sample_patches_are_foreground(samples):
    assert np.all(samples.patches.std(axis=(1, 2)) > 0)


def test_sample_patches_keep_units(samples):
    head = samples.patches[samples.labels == SAMPLE_CLASSES.index("head_ct")]
    assert head.min() < -500  # Hounsfield units, not rescaled


def test_sample_patches_seeded(samples):
    again = sample_patches(size=16, per_class=30, seed=1)
    np.testing.assert_array_equal(again.patches, samples.patches)
    np.testing.assert_array_equal(again.positions, samples.positions)


def test_sample_patches_rejects_bad_size():
    with pytest.raises(ValueError) as info:
        sample_patches(size=4)
    assert str(info.value) == "sample_patches: size must lie in [8, 128] px; got 4"


def test_sample_patches_size_is_declared_up_to_the_smallest_study():
    """The spine CT is 128 x 128 px: a 128 px patch is the whole slice, and a
    larger one is refused by the declaration, before any study is read."""
    ds = sample_patches(size=128, per_class=1, seed=2)
    spine = ds.patches[ds.class_names.index("spine_ct")]
    from medimg_lab import data

    np.testing.assert_array_equal(spine, data.sample("spine_ct").array)
    with pytest.raises(ValueError) as info:
        sample_patches(size=129)
    assert str(info.value) == "sample_patches: size must lie in [8, 128] px; got 129"
    with pytest.raises(ValueError, match=r"^sample_patches: per_class must be a whole"):
        sample_patches(per_class=2.5)


def test_lesion_slices_half_positive(lesions):
    assert lesions.patches.shape == (20, 32, 32)
    assert lesions.labels.sum() == 10
    assert lesions.masks[lesions.labels == 0].sum() == 0
    assert np.all(lesions.masks[lesions.labels == 1].sum(axis=(1, 2)) > 0)


def test_lesion_slices_seeded(lesions):
    again = lesion_slices(n=20, size=32, contrast=40.0, radius_mm=5.0, seed=3)
    np.testing.assert_array_equal(again.patches, lesions.patches)
    np.testing.assert_array_equal(again.masks, lesions.masks)


def test_lesion_contrast_inside_mask(lesions):
    base = lesion_slices(n=20, size=32, contrast=0.0, radius_mm=5.0, seed=3)
    diff = lesions.patches - base.patches
    assert np.all(diff[lesions.labels == 0] == 0)
    for i in np.flatnonzero(lesions.labels):
        inside = diff[i][lesions.masks[i]].mean()
        assert 0.8 * 40 < inside <= 40
        assert abs(diff[i][~lesions.masks[i]]).mean() < 2


@pytest.mark.parametrize("radius_mm", [2.0, 6.0])
def test_lesion_radius_in_mm(radius_mm):
    ds = lesion_slices(n=4, size=32, radius_mm=radius_mm, seed=0)
    area_mm2 = ds.masks[ds.labels == 1].sum(axis=(1, 2)) * np.prod(ds.spacing[0])
    np.testing.assert_allclose(area_mm2, np.pi * radius_mm**2, rtol=0.15)


def test_lesion_groups_are_slabs(lesions):
    np.testing.assert_array_equal(lesions.groups, lesions.positions[:, 0] // 8)


def test_lesion_rejects_crop_too_small():
    with pytest.raises(ValueError, match="size=8 px cannot hold a lesion"):
        lesion_slices(n=4, size=8, radius_mm=10.0)


def test_lesion_crops_may_be_as_wide_as_the_slice_and_no_wider():
    """The axial slices are 233 x 197 px: a 197 px crop holds a lesion of the
    largest radius; 198 px is refused by the declaration (it used to be refused
    above 189 px by a hand check, and the declaration allowed 256)."""
    ds = lesion_slices(n=4, size=197, radius_mm=20.0, seed=1)
    assert ds.patches.shape == (4, 197, 197)
    area = ds.masks[ds.labels == 1].sum(axis=(1, 2))
    np.testing.assert_allclose(area, np.pi * 20.0**2, rtol=0.02)
    with pytest.raises(ValueError) as info:
        lesion_slices(n=4, size=198)
    assert str(info.value) == "lesion_slices: size must lie in [8, 197] px; got 198"


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"contrast": float("nan")}, "contrast must be finite; got nan"),
        ({"contrast": 300.0}, "contrast must lie in [-255, 255]; got 300"),
        ({"radius_mm": 0.5}, "radius_mm must lie in [1, 20] mm; got 0.5"),
        ({"n": 1}, "n must lie in [2, 10000]; got 1"),
        ({"slab": 0}, "slab must lie in [1, 189] slices; got 0"),
        ({"seed": -1}, "seed must lie in [0, 4.29497e+09]; got -1"),
    ],
)
def test_lesion_slices_refuse_with_the_declaration(kwargs, problem):
    with pytest.raises(ValueError) as info:
        lesion_slices(**{"n": 4, "size": 32, **kwargs})
    assert str(info.value) == f"lesion_slices: {problem}"


def _write_png(path, value):
    image = np.full((20, 30), value, np.uint8)
    image[5:10, 5:15] = 255 - value
    Image.fromarray(image).save(path)


def test_folder_dataset_skips_unreadable(tmp_path):
    (tmp_path / "ct").mkdir()
    (tmp_path / "pictures").mkdir()
    shutil.copy(get_testdata_file("CT_small.dcm", download=False), tmp_path / "ct")
    shutil.copy(get_testdata_file("MR_small.dcm", download=False), tmp_path / "ct")
    _write_png(tmp_path / "pictures" / "a.png", 10)
    _write_png(tmp_path / "pictures" / "b.png", 200)
    (tmp_path / "pictures" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nrubbish")
    ds, skipped = folder_dataset(tmp_path, size=16)
    assert ds.class_names == ["ct", "pictures"]
    np.testing.assert_array_equal(ds.labels, [0, 0, 1, 1])
    assert ds.patches.shape == (4, 16, 16)
    assert len(np.unique(ds.groups)) == 4
    assert [p for p, _ in skipped] == [str(tmp_path / "pictures" / "broken.png")]
    assert "broken.png" in skipped[0][1]


def test_folder_dataset_needs_size_for_mixed_shapes(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _write_png(tmp_path / "a" / "x.png", 10)
    shutil.copy(get_testdata_file("CT_small.dcm", download=False), tmp_path / "b")
    with pytest.raises(ValueError, match="size="):
        folder_dataset(tmp_path)


def test_folder_dataset_logs_each_skipped_file(tmp_path, caplog):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        _write_png(tmp_path / name / "x.png", 10)
    (tmp_path / "b" / "notes.txt").write_text("not an image")
    with caplog.at_level("WARNING", logger="medimg_lab.recognition.datasets"):
        ds, skipped = folder_dataset(tmp_path)
    assert len(ds) == 2 and len(skipped) == 1
    assert "notes.txt" in caplog.text


@pytest.mark.parametrize(
    "folders, match",
    [
        ((), "at least 2; found none"),
        (("only",), "at least 2; found only 'only'"),
    ],
)
def test_folder_dataset_needs_two_classes(tmp_path, folders, match):
    for name in folders:
        (tmp_path / name).mkdir()
        _write_png(tmp_path / name / "x.png", 10)
    with pytest.raises(ValueError, match=match):
        folder_dataset(tmp_path)


def test_folder_dataset_names_empty_and_unreadable_classes(tmp_path):
    for name in ("empty", "good", "corrupt"):
        (tmp_path / name).mkdir()
    _write_png(tmp_path / "good" / "x.png", 10)
    (tmp_path / "corrupt" / "y.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x01" * 9)
    with pytest.raises(ValueError, match=r"\['corrupt', 'empty'\].*remove the folders"):
        folder_dataset(tmp_path)


def test_folder_dataset_rejects_a_file(tmp_path):
    (tmp_path / "x.png").write_bytes(b"")
    with pytest.raises(MedImgError, match="is not a folder"):
        folder_dataset(tmp_path / "x.png")


def _npz(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def test_medmnist_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 6), ("val", 2), ("test", 3)):
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, 28, 28), np.uint8)
        arrays[f"{split}_labels"] = rng.integers(0, 3, (n, 1), np.uint8)
    arrays["train_labels"][0] = 2
    path = tmp_path / "tiny.npz"
    path.write_bytes(_npz(**arrays))
    splits = medmnist_npz(path)
    assert list(splits) == ["train", "val", "test"]
    for split, ds in splits.items():
        assert isinstance(ds, PatchDataset)
        np.testing.assert_array_equal(ds.patches, arrays[f"{split}_images"])
        np.testing.assert_array_equal(ds.labels, arrays[f"{split}_labels"][:, 0])
        assert ds.class_names == ["0", "1", "2"]
    groups = np.concatenate([ds.groups for ds in splits.values()])
    assert len(np.unique(groups)) == len(groups)


def test_medmnist_rgb_becomes_luminance():
    images = np.zeros((2, 4, 4, 3), np.uint8)
    images[..., 1] = 100
    ds = medmnist_npz(_npz(test_images=images, test_labels=np.array([0, 1])))
    np.testing.assert_allclose(ds["test"].patches, 58.7, rtol=1e-5)


def test_medmnist_missing_key_named():
    data = _npz(train_images=np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(ValueError, match="train_labels"):
        medmnist_npz(data)


def test_medmnist_no_known_key():
    with pytest.raises(ValueError, match="train_images"):
        medmnist_npz(_npz(x=np.zeros(3)))
