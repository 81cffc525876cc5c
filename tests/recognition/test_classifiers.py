"""Bayes' rule made explicit, and the classifier factory."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.naive_bayes import GaussianNB

from medimg_lab.params import parameters
from medimg_lab.recognition.classifiers import (
    CLASSIFIERS,
    GaussianBayes,
    make_classifier,
)


def _data(n=120, m=3, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    X = rng.normal(0, 1, (n, m)) + y[:, None] * np.linspace(0.5, 1.5, m)
    return X.astype(np.float32), y


def test_posterior_is_likelihood_times_prior_over_evidence():
    X, y = _data()
    model = GaussianBayes().fit(X, y)
    expected = model.likelihood(X) * model.prior / model.evidence(X)[:, None]
    np.testing.assert_allclose(model.posterior(X), expected, rtol=1e-9)
    np.testing.assert_allclose(model.posterior(X).sum(axis=1), 1)
    np.testing.assert_allclose(
        model.evidence(X), (model.likelihood(X) * model.prior).sum(axis=1)
    )
    np.testing.assert_allclose(np.exp(model.log_likelihood(X)), model.likelihood(X))


def test_likelihood_is_a_product_of_gaussians():
    from scipy.stats import norm

    X, y = _data(m=2, classes=2)
    model = GaussianBayes().fit(X, y)
    sd = np.sqrt(model.var_)
    expected = norm.pdf(X[:, None, 0], model.theta_[:, 0], sd[:, 0]) * norm.pdf(
        X[:, None, 1], model.theta_[:, 1], sd[:, 1]
    )
    np.testing.assert_allclose(model.likelihood(X), expected, rtol=1e-9)


@pytest.mark.parametrize("priors", [None, [0.2, 0.3, 0.5]])
def test_matches_sklearn_gaussian_nb(priors):
    X, y = _data()
    X = X.astype(np.float64)  # GaussianNB computes float32 in float32
    ours = GaussianBayes(priors=priors).fit(X, y)
    theirs = GaussianNB(priors=priors).fit(X, y)
    np.testing.assert_allclose(ours.posterior(X), theirs.predict_proba(X), atol=1e-8)
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))


def test_string_labels_and_errors():
    X, y = _data(classes=2)
    labels = np.array(["bone", "fat"])[y]
    model = GaussianBayes().fit(X, labels)
    assert set(model.predict(X)) <= {"bone", "fat"}
    with pytest.raises(ValueError, match="priors must be 2 non-negative"):
        GaussianBayes(priors=[0.5, 0.6]).fit(X, y)
    with pytest.raises(ValueError, match="at least 2 classes"):
        GaussianBayes().fit(X, np.zeros(len(X)))
    with pytest.raises(ValueError, match="must have 3 features as in fit; got 2"):
        model.posterior(X[:, :2])
    with pytest.raises(ValueError, match="not fitted"):
        GaussianBayes().posterior(X)


@pytest.mark.parametrize("kind", CLASSIFIERS)
def test_make_classifier_pipelines_give_probabilities(kind):
    X, y = _data(classes=2)
    clf = make_classifier(kind).fit(X, y)
    assert clf.steps[0][0] == "standardscaler"
    p = clf.predict_proba(X)
    assert p.shape == (len(X), 2)
    np.testing.assert_allclose(p.sum(axis=1), 1)
    assert (clf.predict(X) == y).mean() > 0.7


def test_make_classifier_declares_and_checks_its_parameters():
    specs = parameters(make_classifier)
    assert specs["kind"].param.choices == CLASSIFIERS
    assert {"C", "n_estimators", "seed"} <= set(specs)
    with pytest.raises(ValueError) as info:
        make_classifier("tree")
    assert str(info.value) == (
        "make_classifier: kind must be one of 'bayes', 'forest', 'svm', 'logistic'; "
        "got 'tree'"
    )
    with pytest.raises(ValueError) as info:
        make_classifier("svm", C=-1)
    assert str(info.value) == "make_classifier: C must lie in [0.0001, 10000]; got -1"
    with pytest.raises(ValueError, match=r"^make_classifier: n_estimators must lie in"):
        make_classifier("forest", n_estimators=0)


def test_make_classifier_takes_numpy_numbers_as_python_ones():
    """A count from an array (np.int64) builds the same forest as an int."""
    forest = make_classifier("forest", n_estimators=np.int64(7), seed=np.int64(3))
    trees = forest[-1]
    assert trees.n_estimators == 7 and type(trees.n_estimators) is int
    assert trees.random_state == 3
    svm = make_classifier("svm", C=np.float32(2.0))
    assert svm[-1].estimator.C == 2.0


def test_bayes_rule_by_hand_on_two_gaussian_classes():
    """Class a: x in {0, 2}, mean 1, variance 1; class b: {4, 6}, mean 5.

    At x = 2 with priors 0.2 and 0.8 the posterior of a is
    0.2 N(2; 1, 1) / (0.2 N(2; 1, 1) + 0.8 N(2; 5, 1)) = 1 / (1 + 4 e^-4).
    """
    model = GaussianBayes(priors=[0.2, 0.8], var_smoothing=0).fit(
        [[0.0], [2.0], [4.0], [6.0]], ["a", "a", "b", "b"]
    )
    np.testing.assert_allclose(model.theta_.ravel(), [1, 5])
    np.testing.assert_allclose(model.var_.ravel(), [1, 1])
    gauss = np.exp(-np.array([0.5, 4.5])) / np.sqrt(2 * np.pi)
    np.testing.assert_allclose(model.likelihood([[2.0]]), [gauss])
    np.testing.assert_allclose(
        model.evidence([[2.0]]), [0.2 * gauss[0] + 0.8 * gauss[1]]
    )
    expected = 1 / (1 + 4 * np.exp(-4))
    np.testing.assert_allclose(model.posterior([[2.0]]), [[expected, 1 - expected]])
    assert model.posterior([[2.0], [3.0], [9.0]]).sum(axis=1) == pytest.approx(1)


def test_with_priors_changes_only_the_prior():
    X, y = _data(classes=2)
    model = GaussianBayes().fit(X, y)
    moved = model.with_priors([0.9, 0.1])
    np.testing.assert_array_equal(moved.theta_, model.theta_)
    np.testing.assert_allclose(moved.likelihood(X), model.likelihood(X))
    np.testing.assert_allclose(moved.prior, [0.9, 0.1])
    np.testing.assert_allclose(
        moved.posterior(X), GaussianBayes(priors=[0.9, 0.1]).fit(X, y).posterior(X)
    )
    assert model.prior[0] != 0.9  # the original is untouched
    with pytest.raises(ValueError, match="priors must be 2 non-negative numbers"):
        model.with_priors([0.5, 0.6])
    with pytest.raises(ValueError, match="not fitted"):
        GaussianBayes().with_priors([0.5, 0.5])
