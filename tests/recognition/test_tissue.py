"""Bayes' rule on one intensity: tissue labels, boundaries, posterior maps."""

from __future__ import annotations

import numpy as np
import pytest

from medimg_lab.recognition.classifiers import GaussianBayes
from medimg_lab.recognition.tissue import (
    TISSUES,
    brain_tissues,
    decision_boundaries,
    intensity_bayes,
    posterior_maps,
)


@pytest.fixture(scope="module")
def brain():
    return brain_tissues()


def _toy(priors=None):
    """Class a: {0, 2} (mean 1, variance 1); b: {4, 6} (mean 5)."""
    image = np.array([[0.0, 2.0, 4.0, 6.0]])
    return intensity_bayes(image, np.array([[1, 1, 2, 2]]), ("a", "b"), priors=priors)


def test_brain_tissue_labels_are_disjoint_and_ordered_by_t1_intensity(brain):
    image, labels = brain
    assert labels.shape == image.array.shape and labels.dtype == np.uint8
    medians = [np.median(image.array[labels == k]) for k in (1, 2, 3)]
    assert medians[0] < medians[1] < medians[2]  # T1: CSF dark, WM bright
    counts = np.bincount(labels.ravel(), minlength=4)
    assert counts[1] > 5000 and counts[2] > 500_000 and counts[3] > 300_000


def test_boundary_of_equal_variances_is_solved_exactly():
    """Equal variances: log-odds is linear, zero at 3 - ln(P_a/P_b) ... by hand.

    -(x-1)²/2 + (x-5)²/2 + ln(0.2/0.8) = 0  gives  x = 3 - ln(4)/4.
    """
    model = _toy(priors=[0.2, 0.8])
    model.var_ = np.ones_like(model.var_)  # exactly 1, without smoothing
    ((x, left, right),) = decision_boundaries(model, (-10, 20), resolution=64)
    assert x == pytest.approx(3 - np.log(4) / 4, abs=1e-9)
    assert (left, right) == ("a", "b")


def test_unequal_variances_give_two_boundaries():
    """A narrow class inside a wide one wins on an interval only."""
    x = np.r_[np.linspace(-10, 10, 200), np.linspace(-1, 1, 200)]
    labels = np.r_[np.ones(200, int), np.full(200, 2)]
    model = intensity_bayes(x, labels, ("wide", "narrow"))
    found = decision_boundaries(model, (-20, 20))
    assert [(a, b) for _, a, b in found] == [("wide", "narrow"), ("narrow", "wide")]
    lo, hi = found[0][0], found[1][0]
    assert lo == pytest.approx(-hi, abs=1e-6)
    post = model.posterior([[lo], [hi]])
    np.testing.assert_allclose(post, 0.5, atol=1e-9)


def test_moving_a_prior_moves_the_boundary_towards_the_other_class():
    model = _toy()
    (even, *_), *_ = decision_boundaries(model, (0, 6))
    (more_a, *_), *_ = decision_boundaries(model.with_priors([0.9, 0.1]), (0, 6))
    assert even == pytest.approx(3)
    assert more_a > even


def test_posterior_maps_sum_to_one_and_match_the_model(brain):
    image, labels = brain
    model = intensity_bayes(image.array, labels)
    assert model.classes_.tolist() == list(TISSUES)
    middle = image.array[94]
    maps = posterior_maps(model, middle)
    assert maps.shape == (3, *middle.shape) and maps.dtype == np.float32
    np.testing.assert_allclose(maps.sum(axis=0), 1, atol=1e-5)
    some = middle[100, 90:100]
    np.testing.assert_allclose(
        maps[:, 100, 90:100].T, model.posterior(some[:, None]), rtol=1e-5, atol=1e-7
    )


def test_the_tissue_model_agrees_with_the_maps(brain):
    """Most voxels of each tissue are classified as it by intensity alone."""
    image, labels = brain
    model = intensity_bayes(image.array, labels)
    chosen = labels > 0
    predicted = model.predict(image.array[chosen][:, None])
    truth = np.asarray(TISSUES)[labels[chosen] - 1]
    accuracy = float(np.mean(predicted == truth))
    print(f"tissue by intensity: accuracy {accuracy:.3f}")
    assert accuracy > 0.85


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"labels": np.zeros((1, 3), int)}, "shape"),
        ({"labels": np.array([[1, 1, 1, 1]])}, r"no voxel is labelled \['b'\]"),
        ({"labels": np.array([[1, 1, 3, 2]])}, r"integers in \[0, 2\]"),
        ({"names": ("a", "a")}, "distinct"),
    ],
)
def test_intensity_bayes_errors(kwargs, match):
    args = {
        "image": np.array([[0.0, 2.0, 4.0, 6.0]]),
        "labels": np.array([[1, 1, 2, 2]]),
        "names": ("a", "b"),
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        intensity_bayes(args["image"], args["labels"], args["names"])


def test_boundaries_and_maps_need_a_one_feature_model():
    two = GaussianBayes().fit([[0, 0], [1, 1], [5, 5], [6, 6]], [0, 0, 1, 1])
    with pytest.raises(ValueError, match="one feature"):
        decision_boundaries(two, (0, 1))
    with pytest.raises(ValueError, match="one feature"):
        posterior_maps(two, np.zeros((2, 2)))
    with pytest.raises(ValueError, match="low < high"):
        decision_boundaries(_toy(), (5, 5))
    with pytest.raises(ValueError, match="finite"):
        posterior_maps(_toy(), np.array([[np.nan]]))
    with pytest.raises(ValueError, match="threshold"):
        brain_tissues(threshold=1.5)
