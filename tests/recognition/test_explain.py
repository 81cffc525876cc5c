"""Permutation importance and occlusion sensitivity."""

from __future__ import annotations

import numpy as np
import pytest

from medimg_lab.params import parameters
from medimg_lab.recognition.classifiers import make_classifier
from medimg_lab.recognition.explain import feature_importance, occlusion_map

NAMES = ["noise 0", "noise 1", "signal", "noise 3"]


def _one_feature_data(n=300, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(0, 1, (n, len(NAMES)))
    y = (X[:, 2] > 0).astype(int)
    return X, y


@pytest.mark.parametrize("kind", ["logistic", "forest"])
def test_the_feature_that_decides_ranks_first(kind):
    X, y = _one_feature_data()
    model = make_classifier(kind, n_estimators=20).fit(X, y)
    table = feature_importance(model, X, y, names=NAMES)
    assert list(table.columns) == ["name", "mean", "sd"]
    assert table.name[0] == "signal"
    assert sorted(table.name) == sorted(NAMES)
    assert table["mean"].is_monotonic_decreasing
    assert table["mean"][0] > 0.3
    assert (table["sd"] >= 0).all()


def test_importance_is_reproducible_with_a_seed():
    X, y = _one_feature_data()
    model = make_classifier("forest", n_estimators=20).fit(X, y)
    a = feature_importance(model, X, y, names=NAMES, seed=3)
    b = feature_importance(model, X, y, names=NAMES, seed=3)
    assert a.equals(b)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"names": NAMES[:3]}, ValueError, "names must name the 4 columns"),
        ({"names": "abcd"}, TypeError, "names must be a sequence"),
        (
            {"names": NAMES, "n_repeats": 0},
            ValueError,
            r"^feature_importance: n_repeats must lie in \[1, 100\] shuffles; got 0$",
        ),
    ],
)
def test_importance_errors(kwargs, error, match):
    X, y = _one_feature_data()
    model = make_classifier("logistic").fit(X, y)
    with pytest.raises(error, match=match):
        feature_importance(model, X, y, **kwargs)


def test_importance_rejects_mismatched_labels():
    X, y = _one_feature_data()
    model = make_classifier("logistic").fit(X, y)
    with pytest.raises(ValueError, match="one label per row"):
        feature_importance(model, X, y[:-1], names=NAMES)


# ------------------------------------------------------------- occlusion

CENTRE = np.s_[12:20, 12:20]


def _centre_image(dtype=np.float32):
    image = np.zeros((32, 32), dtype)
    image[CENTRE] = 10
    return image


def _looks_at_the_centre(images):
    """P(bright) from the mean of the central 8 × 8 pixels only."""
    p = 1 / (1 + np.exp(-(images[(slice(None), *CENTRE)].mean(axis=(1, 2)) - 5)))
    return np.stack([1 - p, p], axis=1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16])
def test_occlusion_peaks_at_the_centre_and_is_zero_in_the_corners(dtype):
    image = _centre_image(dtype)
    before = image.copy()
    heat = occlusion_map(image, _looks_at_the_centre, target=1, patch=8, stride=4)
    assert heat.shape == image.shape and heat.dtype == np.float32
    np.testing.assert_array_equal(image, before)
    peak = np.unravel_index(np.argmax(heat), heat.shape)
    assert all(10 <= p < 22 for p in peak)
    assert heat.max() > 0.3
    for corner in (heat[:6, :6], heat[:6, -6:], heat[-6:, :6], heat[-6:, -6:]):
        np.testing.assert_allclose(corner, 0, atol=1e-6)


def test_occlusion_of_the_other_class_is_the_opposite():
    image = _centre_image()
    bright = occlusion_map(image, _looks_at_the_centre, target=1, patch=8, stride=4)
    dark = occlusion_map(image, _looks_at_the_centre, target=0, patch=8, stride=4)
    np.testing.assert_allclose(dark, -bright, atol=1e-6)


def test_occlusion_covers_every_pixel_when_stride_does_not_divide():
    image = _centre_image()
    heat = occlusion_map(image, _looks_at_the_centre, target=1, patch=7, stride=5)
    assert np.isfinite(heat).all()
    assert heat[CENTRE].min() > 0


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"target": 2}, ValueError, r"target must lie in \[0, 1\]"),
        ({"target": 1.0}, TypeError, "target must be a class index"),
        ({"target": 1, "patch": 40}, ValueError, "patch must be at most"),
        ({"target": 1, "patch": 4, "stride": 5}, ValueError, "stride must be at most"),
        (
            {"target": 1, "patch": 0},
            ValueError,
            r"^occlusion_map: patch must lie in \[1, 512\] px; got 0$",
        ),
        (
            {"target": 1, "baseline": "max"},
            ValueError,
            "^occlusion_map: baseline must be one of 'mean', 'median', 'min', 'zero'",
        ),
    ],
)
def test_occlusion_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        occlusion_map(_centre_image(), _looks_at_the_centre, **kwargs)


def test_occlusion_rejects_bad_images_and_outputs():
    with pytest.raises(ValueError, match="2D"):
        occlusion_map(np.zeros((2, 8, 8)), _looks_at_the_centre, target=1)
    with pytest.raises(ValueError, match="NaN"):
        occlusion_map(np.full((32, 32), np.nan), _looks_at_the_centre, target=1)
    with pytest.raises(ValueError, match=r"\(B, K\) probabilities"):
        occlusion_map(_centre_image(), lambda images: np.ones(3), target=0)


def test_occlusion_parameters_are_declared_once():
    specs = parameters(occlusion_map)
    assert set(specs) == {"patch", "stride", "baseline"}
    assert specs["patch"].param.unit == "px"
