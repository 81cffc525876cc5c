"""Patch features: names, known values on synthetic patches, errors."""

from __future__ import annotations

import numpy as np
import pytest

from medimg_lab.recognition.features import (
    KINDS,
    extract,
    glcm_features,
    histogram_features,
    hog_features,
    intensity_features,
    lbp_features,
    shape_features,
)


def _patches(dtype=np.float32, n=4, size=16, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(40, 20, (n, size, size))).astype(dtype)


def _disc(size, radius_px, centre=None):
    c = (size - 1) / 2 if centre is None else centre
    yy, xx = np.mgrid[:size, :size]
    return (yy - c) ** 2 + (xx - c) ** 2 <= radius_px**2


@pytest.mark.parametrize("dtype", [np.int16, np.uint8, np.float32, np.float64])
def test_extract_names_are_unique_and_match_columns(dtype):
    patches = _patches(dtype)
    masks = np.stack([_disc(16, 5)] * len(patches))
    X, names = extract(patches, kinds=KINDS, value_range=(0, 100), masks=masks)
    assert X.dtype == np.float32
    assert X.shape == (len(patches), len(names))
    assert len(set(names)) == len(names)
    assert np.isfinite(X).all()


def test_extract_matches_the_single_kinds():
    patches = _patches()
    X, names = extract(patches, kinds=("lbp", "intensity"))
    lbp, lbp_names = lbp_features(patches)
    assert names[: len(lbp_names)] == lbp_names
    np.testing.assert_array_equal(X[:, : lbp.shape[1]], lbp)


def test_constant_patch_has_zero_sd_and_its_value_as_statistics():
    patches = np.full((2, 8, 8), -300, np.int16)
    X, names = intensity_features(patches)
    row = dict(zip(names, X[0], strict=True))
    assert row["intensity_sd"] == 0
    assert row["intensity_mean"] == row["intensity_p50"] == -300
    assert row["intensity_skewness"] == row["intensity_kurtosis"] == 0


def test_intensity_moments_of_a_known_sample():
    rng = np.random.default_rng(1)
    patches = rng.normal(100.0, 10.0, (1, 200, 200))
    X, names = intensity_features(patches)
    row = dict(zip(names, X[0], strict=True))
    assert row["intensity_mean"] == pytest.approx(100, abs=0.2)
    assert row["intensity_sd"] == pytest.approx(10, abs=0.2)
    assert abs(row["intensity_skewness"]) < 0.05
    assert abs(row["intensity_kurtosis"]) < 0.1


def test_histogram_counts_fractions_inside_the_range():
    patches = np.array([[[0, 10], [50, 200]]], np.float32)  # 200 lies outside
    X, names = histogram_features(patches, (0, 100), bins=2)
    assert names == ["histogram_0", "histogram_50"]
    np.testing.assert_allclose(X, [[0.5, 0.25]])


def test_checkerboard_has_high_glcm_contrast_and_flat_patch_none():
    checker = (np.indices((16, 16)).sum(axis=0) % 2) * 100.0
    patches = np.stack([checker, np.full((16, 16), 50.0)])
    X, names = glcm_features(patches, (0, 100), levels=32)
    contrast = X[:, names.index("glcm_contrast_d1")]
    assert contrast[1] == 0
    assert contrast[0] > 100
    assert X[1, names.index("glcm_homogeneity_d1")] == pytest.approx(1)


def test_lbp_histograms_sum_to_one():
    X, names = lbp_features(_patches(np.int16))
    assert names[0] == "lbp_0" and len(names) == 10
    np.testing.assert_allclose(X.sum(axis=1), 1, rtol=1e-6)


def test_hog_is_small_and_refuses_tiny_patches():
    X, names = hog_features(_patches(size=16))
    assert X.shape == (4, len(names)) == (4, 8 * 4)
    with pytest.raises(ValueError, match="too small for HOG"):
        hog_features(_patches(size=8), cell_px=8, block_cells=2)
    with pytest.raises(ValueError) as info:
        hog_features(_patches(size=16), orientations=40)
    assert str(info.value) == (
        "hog_features: orientations must lie in [2, 18] bins; got 40"
    )


def test_options_are_checked_by_their_declarations_and_take_numpy_numbers():
    patches = _patches(np.int16, size=16)
    X, _ = glcm_features(patches, (0, 255), levels=8)
    np.testing.assert_array_equal(
        glcm_features(patches, (0, 255), levels=np.int64(8))[0], X
    )
    H, _ = histogram_features(patches, (0, 255), bins=np.int32(4))
    np.testing.assert_array_equal(H, histogram_features(patches, (0, 255), bins=4)[0])
    with pytest.raises(ValueError) as info:
        glcm_features(patches, (0, 255), levels=300)
    assert str(info.value) == (
        "glcm_features: levels must lie in [2, 256] levels; got 300"
    )
    with pytest.raises(ValueError) as info:
        histogram_features(patches, (0, 255), bins=2.5)
    assert str(info.value) == "histogram_features: bins must be a whole number; got 2.5"


@pytest.mark.parametrize("spacing", [None, (0.5, 0.5), (0.4, 0.8)])
def test_disc_area_perimeter_eccentricity_in_mm(spacing):
    dy, dx = spacing or (1.0, 1.0)
    r_mm = 20.0
    yy, xx = np.mgrid[:128, :128]
    mask = ((yy - 64) * dy) ** 2 + ((xx - 64) * dx) ** 2 <= r_mm**2
    X, names = shape_features(mask[None], spacing=spacing)
    row = dict(zip(names, X[0], strict=True))
    assert row["shape_area_mm2"] == pytest.approx(np.pi * r_mm**2, rel=0.03)
    assert row["shape_perimeter_mm"] == pytest.approx(2 * np.pi * r_mm, rel=0.05)
    # sqrt(1 - λ2/λ1) turns a 1 % difference of the moments into 0.14.
    assert row["shape_eccentricity"] < 0.15
    assert row["shape_solidity"] > 0.9


def test_ellipse_is_eccentric():
    yy, xx = np.mgrid[:60, :60]
    mask = ((yy - 30) / 8.0) ** 2 + ((xx - 30) / 24.0) ** 2 <= 1
    X, names = shape_features(mask[None])
    expected = np.sqrt(1 - (8 / 24) ** 2)
    assert X[0, names.index("shape_eccentricity")] == pytest.approx(expected, abs=0.03)


def test_inputs_are_not_mutated():
    patches = _patches()
    before = patches.copy()
    extract(
        patches, kinds=("intensity", "histogram", "glcm", "lbp"), value_range=(0, 99)
    )
    np.testing.assert_array_equal(patches, before)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kinds": ("colour",)}, "kinds must be distinct names among"),
        ({"kinds": ("lbp", "lbp")}, "kinds must be distinct"),
        ({"kinds": ("glcm",)}, "value_range=.* is required"),
        ({"kinds": ("glcm",), "value_range": (5, 5)}, "low < high; got"),
        ({"kinds": ("shape",)}, "masks .* are required"),
    ],
)
def test_extract_errors_name_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        extract(_patches(), **kwargs)


def test_bad_patches_and_empty_masks_are_refused():
    with pytest.raises(ValueError, match=r"stack \(n, h, w\).*got shape \(8, 8\)"):
        intensity_features(np.zeros((8, 8)))
    with pytest.raises(ValueError, match="NaN"):
        intensity_features(np.full((1, 4, 4), np.nan))
    with pytest.raises(ValueError, match=r"masks \[1\] have no pixel"):
        shape_features(np.stack([_disc(8, 2), np.zeros((8, 8), bool)]))


def test_square_perimeter():
    mask = np.zeros((1, 50, 50), bool)
    mask[0, 5:45, 5:45] = True
    X, names = shape_features(mask, spacing=(0.5, 0.5))
    assert X[0, names.index("shape_perimeter_mm")] == pytest.approx(80, rel=0.03)
    assert X[0, names.index("shape_solidity")] == pytest.approx(1)
