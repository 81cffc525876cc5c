"""Segmentation methods on phantoms with exact truth, and on real studies."""

from __future__ import annotations

import numpy as np
import pytest

import medimg_lab as ml
from medimg_lab import metrics as M
from medimg_lab import segmentation as S


def disc(shape=(96, 96), radius=20, center=None, value=100.0, noise=5.0, seed=0):
    """A bright disc on a dark background with Gaussian noise, and its truth."""
    center = center or tuple(n // 2 for n in shape)
    grid = np.ogrid[tuple(slice(0, n) for n in shape)]
    r2 = sum((g - c) ** 2 for g, c in zip(grid, center, strict=True))
    truth = r2 <= radius**2
    rng = np.random.default_rng(seed)
    image = truth * value + rng.normal(0, noise, shape)
    return image.astype(np.float32), truth


def radius_of(mask, spacing=None):
    """Equivalent radius in mm of a disc (2D) or sphere (3D)."""
    voxel = np.prod(spacing) if spacing else 1.0
    size = mask.sum() * voxel
    return (
        np.sqrt(size / np.pi) if mask.ndim == 2 else (3 * size / (4 * np.pi)) ** (1 / 3)
    )


@pytest.mark.parametrize(
    "segment",
    [
        lambda im: S.threshold_range(im, low=50, high=1e9),
        lambda im: S.threshold_otsu(im),
        lambda im: S.threshold_multiotsu(im, classes=2) == 2,
        lambda im: S.region_grow(im, [(48, 48)], tolerance=30),
        lambda im: S.region_grow(im, [(48, 48)], method="confidence"),
        lambda im: S.kmeans(im, k=2) == 2,
        lambda im: S.gmm(im, k=2) == 2,
        lambda im: S.chan_vese(im, iterations=60),
        lambda im: S.watershed(im, _markers(im.shape)) == 2,
    ],
    ids=[
        "range",
        "otsu",
        "multiotsu",
        "grow-tolerance",
        "grow-confidence",
        "kmeans",
        "gmm",
        "chan-vese",
        "watershed",
    ],
)
def test_each_method_recovers_a_disc(segment):
    image, truth = disc()
    mask = S.fill_holes(S.keep_largest(segment(image)))
    assert M.dice(mask, truth) > 0.97
    assert radius_of(mask) == pytest.approx(20, abs=0.6)


def _markers(shape):
    markers = np.zeros(shape, np.int32)
    markers[2, 2] = 1  # background
    markers[shape[0] // 2, shape[1] // 2] = 2  # disc
    return markers


def test_region_growing_recovers_a_sphere_in_3d_with_anisotropic_spacing():
    image, truth = disc(shape=(40, 64, 64), radius=12, noise=3)
    mask = S.region_grow(image, [(20, 32, 32)], tolerance=40)
    assert M.dice(mask, truth) > 0.98
    volume = S.measure(mask, spacing=(2.0, 0.5, 0.5))["volume_ml"][0]
    assert volume == pytest.approx(truth.sum() * 0.5 / 1000)


def test_region_growing_does_not_leak_into_an_unconnected_disc():
    image, _ = disc(center=(30, 30), radius=10)
    other, _ = disc(center=(70, 70), radius=10, seed=1)
    both = np.maximum(image, other)
    mask = S.region_grow(both, [(30, 30)], tolerance=30)
    assert mask[30, 30] and not mask[70, 70]


def test_multiotsu_orders_labels_by_intensity():
    image = np.repeat([0.0, 50.0, 100.0], 100).reshape(3, 100).astype(np.float32)
    labels = S.threshold_multiotsu(image, classes=3)
    assert [int(labels[i, 0]) for i in range(3)] == [1, 2, 3]


def test_gmm_memberships_sum_to_one_and_reconstruct_u():
    image, truth = disc(noise=10)
    a, means, sds = S.gmm_memberships(image, k=2)
    np.testing.assert_allclose(a.sum(axis=0), 1, atol=1e-5)
    assert means[0] == pytest.approx(0, abs=2) and means[1] == pytest.approx(100, abs=2)
    assert sds[0] == pytest.approx(10, rel=0.1)
    u = np.tensordot(means, a, axes=1)  # u = Σ a_i f_i with f_i = class means
    assert np.abs(u - truth * 100.0).mean() < 2


def test_hu_presets_on_the_head_ct():
    ct = ml.data.sample("head_ct")
    bone = S.threshold_preset(ct.array, preset="bone")
    assert ct.array[bone].min() >= 300
    brain = S.threshold_preset(ct.array, preset="brain")
    table = S.measure(brain, ct.array, spacing=ct.spacing, unit="HU")
    assert table["pixels"].sum() == brain.sum()
    area = S.measure(S.keep_largest(brain), spacing=ct.spacing)["area_mm2"][0]
    assert 5_000 < area < 20_000  # a brain slice is some 100 cm²
    with pytest.raises(ValueError, match="preset must be one of 'bone', 'soft tissue'"):
        S.threshold_preset(ct.array, preset="kidney")


def test_remove_small_by_area_in_mm2():
    mask = np.zeros((50, 50), bool)
    mask[5:9, 5:9] = True  # 16 px = 4 mm² at 0.5 mm
    mask[20:40, 20:40] = True  # 400 px = 100 mm²
    out = S.remove_small(mask, min_size=10, spacing=(0.5, 0.5))
    assert not out[6, 6] and out[30, 30]


def test_remove_small_by_volume_in_ml():
    mask = np.zeros((20, 20, 20), bool)
    mask[1:3, 1:3, 1:3] = True  # 8 voxels of 8 mm³ = 0.064 mL
    mask[8:18, 8:18, 8:18] = True  # 1000 voxels = 8 mL
    out = S.remove_small(mask, min_size=0.1, spacing=(2, 2, 2))
    assert not out[1, 1, 1] and out[10, 10, 10]


def test_open_and_close_use_a_radius_in_mm():
    mask = np.zeros((60, 60), bool)
    mask[10:50, 10:50] = True
    mask[30, 50:58] = True  # a 1 px spur
    opened = S.binary_open(mask, radius_mm=1.0, spacing=(0.5, 0.5))  # 2 px ball
    assert not opened[30, 55] and opened[30, 30]
    gap = mask.copy()
    gap[:, 29:31] = False  # a 2 px gap = 1 mm at 0.5 mm
    closed = S.binary_close(gap, radius_mm=1.0, spacing=(0.5, 0.5))
    assert closed[30, 29:31].all()
    assert S.binary_close(gap, radius_mm=1.0, spacing=(4.0, 4.0))[30, 30] == gap[30, 30]


def test_open_in_3d_with_anisotropic_spacing():
    mask = np.zeros((20, 30, 30), bool)
    mask[5:15, 5:25, 5:25] = True
    mask[10, 15, 25:29] = True
    opened = S.binary_open(mask, radius_mm=1.0, spacing=(3.0, 0.5, 0.5))
    assert not opened[10, 15, 27] and opened[10, 15, 15]


def test_measure_reports_units_and_statistics():
    labels = np.zeros((10, 10), np.uint8)
    labels[0:2, 0:5] = 1
    labels[5:10, 5:10] = 2
    image = np.arange(100, dtype=np.float32).reshape(10, 10)
    table = S.measure(labels, image, spacing=(0.5, 2.0), unit="HU")
    assert list(table["label"]) == [1, 2]
    assert table["area_mm2"].tolist() == [10.0, 25.0]
    assert table["mean_HU"][0] == pytest.approx(image[0:2, 0:5].mean())
    assert table["sd_HU"][1] == pytest.approx(image[5:, 5:].std())
    assert table["bbox"][1] == ((5, 10), (5, 10))


def test_gmm_white_matter_dice_on_the_mni_brain():
    brain = ml.data.sample("brain_mri")
    wm = ml.data.sample("brain_mri_wm").array > 0.5
    labels = S.gmm(brain.array, k=3, mask=brain.array > 20)
    score = M.dice(labels == 3, wm)
    print(f"GMM white-matter Dice on the MNI152 T1: {score:.3f}")
    assert score >= 0.85, f"white-matter Dice {score:.3f} < 0.85"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: S.threshold_range(np.zeros((4, 4)), low=5, high=1), "low <= high"),
        (lambda: S.threshold_otsu(np.zeros((4, 4))), "two different values"),
        (lambda: S.region_grow(np.zeros((4, 4)), [(9, 9)]), "outside the image"),
        (lambda: S.region_grow(np.zeros((4, 4)), [(1, 1, 1)]), "2-tuples"),
        (lambda: S.watershed(np.zeros((4, 4)), np.zeros((4, 4), int)), "at least one"),
        (lambda: S.remove_small(np.ones((4, 4)), spacing=(1,)), "spacing must give 2"),
        (lambda: S.kmeans(np.zeros((4, 4)), mask=np.zeros((4, 4), bool)), "no pixel"),
        (
            lambda: S.region_grow(np.zeros((4, 4)), [(1, 1)], connectivity=3),
            "connectivity must be 1..2 for a 2D image; got 3",
        ),
        (
            lambda: S.gmm_memberships(np.zeros((4, 4)), k=9),
            r"^gmm_memberships: k must lie in \[2, 8\] classes; got 9$",
        ),
        (
            lambda: S.otsu_value(np.arange(16.0).reshape(4, 4), nbins=0),
            r"^otsu_value: nbins must lie in \[16, 4096\] bins; got 0$",
        ),
        (
            lambda: S.threshold_multiotsu(np.arange(16.0).reshape(4, 4), classes=1),
            r"classes must lie in \[2, 5\] classes; got 1",  # crashed skimage before
        ),
        (
            lambda: S.binary_open(np.ones((4, 4)), radius_mm=-1),
            r"^binary_open: radius_mm must lie in \[0, 20\] mm; got -1$",
        ),
    ],
)
def test_bad_input_is_a_clear_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()
