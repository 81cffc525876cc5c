"""Grouped cross-validation, confusion, AUC with its interval, calibration."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import confusion_matrix, roc_auc_score
from sklearn.model_selection import KFold
from sklearn.neighbors import KNeighborsClassifier

from medimg_lab.recognition.classifiers import make_classifier
from medimg_lab.recognition.evaluation import (
    _group_bootstrap,
    calibration,
    confusion,
    cross_validate,
    evaluate,
    group_splits,
    precision_recall,
    roc_auc_ci,
    roc_curve,
    spatial_groups,
)


def _block_patches(size=256, block=16, patch=8, stride=4, seed=0):
    """Overlapping patches whose class is only the block they lie in.

    Each block has its own mean intensity, unrelated to its class, as
    anatomy differs from place to place: a classifier can learn to recognise
    the block, which tells the class only if the block is also in training.
    """
    rng = np.random.default_rng(seed)
    n = size // block
    means = np.kron(rng.uniform(0, 1000, (n, n)), np.ones((block, block)))
    image = means + rng.normal(0, 1, (size, size))
    half = patch // 2
    centres = np.arange(half, size - half + 1, stride)
    positions = np.stack(np.meshgrid(centres, centres, indexing="ij"), -1)
    positions = positions.reshape(-1, 2)
    groups = spatial_groups(positions, image.shape, block=block)
    block_class = rng.permutation(np.arange(groups.max() + 1) % 2)
    y = block_class[groups]
    windows = np.lib.stride_tricks.sliding_window_view(image, (patch, patch))
    cut = windows[positions[:, 0] - half, positions[:, 1] - half]
    X = np.column_stack([cut.mean(axis=(1, 2)), cut.std(axis=(1, 2))])
    return X, y, groups


def test_spatial_groups_of_images_and_volumes():
    groups = spatial_groups([[0, 0], [0, 63], [0, 64], [64, 0], [99, 99]], (100, 100))
    np.testing.assert_array_equal(groups, [0, 0, 1, 2, 3])
    slabs = spatial_groups(
        [[0, 5, 5], [9, 90, 0], [10, 0, 0]], (30, 100, 100), block=10
    )
    np.testing.assert_array_equal(slabs, [0, 0, 1])


@pytest.mark.parametrize(
    ("positions", "shape", "message"),
    [
        ([[0, 0]], (10,), r"shape must be an image"),
        ([[0, 0, 0]], (10, 10), r"positions must be \(n, 2\) integer"),
        ([[0.5, 0]], (10, 10), r"positions must be \(n, 2\) integer"),
        ([[10, 0]], (10, 10), "inside shape"),
    ],
)
def test_spatial_groups_errors(positions, shape, message):
    with pytest.raises(ValueError, match=message):
        spatial_groups(np.asarray(positions), shape)


def test_no_group_is_on_both_sides_of_any_split():
    _, y, groups = _block_patches()
    seen = np.zeros(len(y), int)
    for train, test in group_splits(y, groups, folds=5, seed=3):
        assert not set(groups[train]) & set(groups[test])
        seen[test] += 1
    np.testing.assert_array_equal(seen, 1)


def test_grouped_cv_does_not_leak_where_naive_cv_does():
    X, y, groups = _block_patches()
    knn = KNeighborsClassifier(n_neighbors=5)
    grouped = cross_validate(knn, X, y, groups, folds=5)[:, 1]
    naive = np.zeros(len(y))
    for train, test in KFold(5, shuffle=True, random_state=0).split(X):
        naive[test] = knn.fit(X[train], y[train]).predict_proba(X[test])[:, 1]
    assert roc_auc_score(y, naive) > 0.9
    assert abs(roc_auc_score(y, grouped) - 0.5) < 0.1


def test_cross_validate_gives_probabilities_of_the_sorted_classes():
    rng = np.random.default_rng(0)
    y = np.repeat(np.array(["fat", "bone", "air"]), 40)
    X = rng.normal(0, 0.3, (120, 2)) + (np.unique(y, return_inverse=True)[1])[:, None]
    groups = np.arange(120) // 6
    proba = cross_validate(make_classifier("bayes"), X, y, groups, folds=4)
    assert proba.shape == (120, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1)
    predicted = np.unique(y)[proba.argmax(axis=1)]
    assert (predicted == y).mean() > 0.9
    with pytest.raises(ValueError, match="folds=4 needs at least 4 groups; got 2"):
        cross_validate(make_classifier("bayes"), X, y, groups % 2, folds=4)


def test_confusion_and_precision_recall():
    y_true = np.array([0, 0, 0, 1, 1, 2])
    y_pred = np.array([0, 1, 0, 1, 1, 1])
    matrix = confusion(y_true, y_pred)
    np.testing.assert_array_equal(matrix, confusion_matrix(y_true, y_pred))
    assert matrix.sum() == len(y_true)
    np.testing.assert_array_equal(
        confusion(y_true, y_pred, labels=[2, 1, 0]),
        confusion_matrix(y_true, y_pred, labels=[2, 1, 0]),
    )
    precision, recall = precision_recall(y_true, y_pred)
    np.testing.assert_allclose(precision, [1, 0.5, np.nan])
    np.testing.assert_allclose(recall, [2 / 3, 1, 0])
    with pytest.raises(ValueError, match=r"miss the labels \[2\]"):
        confusion(y_true, y_pred, labels=[0, 1])


@pytest.mark.parametrize("shift", [0.5, 2.0])
def test_auc_interval_covers_the_true_auc(shift):
    """Scores N(0, 1) and N(shift, 1): the true AUC is Φ(shift / √2)."""
    true_auc = norm.cdf(shift / np.sqrt(2))
    rng = np.random.default_rng(1)
    y = np.r_[np.zeros(150, int), np.ones(100, int)]
    covered = []
    for seed in range(40):
        scores = rng.normal(0, 1, y.size) + shift * y
        auc, low, high = roc_auc_ci(y, scores, n_boot=400, seed=seed)
        assert auc == pytest.approx(roc_auc_score(y, scores))
        assert low < auc < high
        covered.append(low < true_auc < high)
    # 95 % intervals: 40 datasets miss more than 6 times with probability < 1 %.
    assert sum(covered) >= 34


def test_auc_of_ties_and_errors():
    assert roc_auc_ci([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5], n_boot=100)[0] == 0.5
    with pytest.raises(ValueError, match="exactly 2 classes; got 1"):
        roc_auc_ci([1, 1], [0.1, 0.2])
    with pytest.raises(ValueError) as info:
        roc_auc_ci([0, 1], [0.1, 0.2], n_boot=5)
    assert str(info.value) == (
        "roc_auc_ci: n_boot must lie in [100, 100000] resamples; got 5"
    )
    with pytest.raises(ValueError, match=r"^roc_auc_ci: level must lie in"):
        roc_auc_ci([0, 1], [0.1, 0.2], level=1.0)


def test_calibration_bins_count_every_sample_and_match_a_calibrated_model():
    rng = np.random.default_rng(2)
    p = rng.uniform(0, 1, 20000)
    y = rng.uniform(0, 1, p.size) < p
    predicted, observed, counts = calibration(y, p, bins=10)
    assert counts.sum() == p.size
    np.testing.assert_allclose(predicted, np.arange(10) / 10 + 0.05, atol=0.01)
    np.testing.assert_allclose(observed, predicted, atol=0.04)


def test_calibration_edges_empty_bins_and_errors():
    predicted, observed, counts = calibration([0, 1, 1], [0.0, 1.0, 0.95], bins=4)
    np.testing.assert_array_equal(counts, [1, 0, 0, 2])
    assert np.isnan(predicted[1]) and observed[3] == 1
    with pytest.raises(ValueError, match=r"p must hold probabilities in \[0, 1\]"):
        calibration([0, 1], [0.5, 1.5])
    with pytest.raises(ValueError, match="only 0/1"):
        calibration([0, 2], [0.5, 0.5])
    with pytest.raises(ValueError) as info:
        calibration([0, 1], [0.5, 0.5], bins=1)
    assert str(info.value) == "calibration: bins must lie in [2, 100] bins; got 1"
    np.testing.assert_array_equal(
        calibration([0, 1, 1], [0.0, 1.0, 0.95], bins=np.int64(4))[2], counts
    )


def test_auc_and_interval_of_a_hand_computed_case():
    """Positives {0.4, 0.9}, negatives {0.1, 0.6}: 3 of 4 pairs are ordered.

    Resampling each pair with replacement gives 16 equally likely cases with
    AUC 0 (1 case), 0.5 (4), 0.75 (4) and 1 (7): the 25th and 75th
    percentiles are 0.5 and 1, the 2.5th 0.
    """
    y, scores = [0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9]
    assert roc_auc_ci(y, scores, n_boot=20000, level=0.5) == (0.75, 0.5, 1.0)
    assert roc_auc_ci(y, scores, n_boot=20000, level=0.95) == (0.75, 0.0, 1.0)


def test_roc_curve_area_is_the_auc_with_ties():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 400)
    scores = np.round(rng.normal(0, 1, 400) + y, 1)  # many ties
    fpr, tpr, thresholds = roc_curve(y, scores)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0, 0, 1, 1)
    assert np.trapezoid(tpr, fpr) == pytest.approx(roc_auc_score(y, scores))
    assert np.all(np.diff(thresholds) < 0)
    with pytest.raises(ValueError, match="exactly 2 classes"):
        roc_curve([1, 1], [0.2, 0.3])


def test_evaluate_gathers_the_scores_of_the_out_of_fold_predictions():
    X, y, groups = _block_patches()
    X = X + y[:, None] * 300.0  # now the class shows in the mean
    result = evaluate(
        make_classifier("logistic"), X, y, groups, class_names=["no", "yes"], seed=1
    )
    expected = cross_validate(make_classifier("logistic"), X, y, groups, seed=1)
    np.testing.assert_allclose(result.proba, expected)
    np.testing.assert_array_equal(result.predicted, expected.argmax(axis=1))
    np.testing.assert_array_equal(
        result.confusion, confusion_matrix(y, result.predicted)
    )
    assert result.accuracy == pytest.approx(np.mean(result.predicted == y))
    assert result.accuracy_ci[0] <= result.accuracy <= result.accuracy_ci[1]
    assert result.auc[1] == pytest.approx(roc_auc_score(y, expected[:, 1]))
    fpr, tpr, _ = result.roc(1)
    assert np.trapezoid(tpr, fpr) == pytest.approx(result.auc[1])
    assert result.class_names == ["no", "yes"]


def test_accuracy_interval_resamples_groups_not_patches():
    """Groups all right or all wrong: the interval is wider than i.i.d."""
    groups = np.repeat(np.arange(20), 50)
    correct = np.repeat(np.arange(20) % 4 != 0, 50)  # 15 of 20 groups right
    low, high = _group_bootstrap(correct, groups, 4000, 0.95, 0)
    assert low < 0.6 and high > 0.9  # binomial over 20 groups, not 1000 patches


def test_evaluate_errors():
    X, y, groups = _block_patches()
    with pytest.raises(ValueError, match="every class index"):
        evaluate(make_classifier("bayes"), X, y + 1, groups)
    with pytest.raises(ValueError, match="must name the 2 classes"):
        evaluate(make_classifier("bayes"), X, y, groups, class_names=["a"])
    with pytest.raises(ValueError) as info:
        evaluate(make_classifier("bayes"), X, y, groups, folds=1)
    assert str(info.value) == "evaluate: folds must lie in [2, 20] folds; got 1"


def test_group_splits_are_checked_when_asked_for_not_when_iterated():
    """A bad call fails at once, where it is written, not at the first split."""
    y = np.repeat([0, 1], 20)
    groups = np.arange(40) // 10  # 4 groups
    with pytest.raises(ValueError, match="folds=5 needs at least 5 groups; got 4"):
        group_splits(y, groups, folds=5)
    with pytest.raises(ValueError, match=r"^group_splits: folds must lie in \[2, 20\]"):
        group_splits(y, groups, folds=21)
    with pytest.raises(ValueError, match="same length"):
        group_splits(y, groups[:5])
    splits = list(group_splits(y, groups, folds=np.int64(2), seed=np.int64(1)))
    assert len(splits) == 2
    for train, test in splits:
        assert not set(groups[train]) & set(groups[test])


def test_spatial_groups_take_the_declared_block_range():
    """block: 1..4096 px as declared; a NumPy integer counts as one."""
    positions = np.array([[0, 0], [5, 9], [30, 70]])
    np.testing.assert_array_equal(
        spatial_groups(positions, (40, 80), block=np.int64(10)),
        spatial_groups(positions, (40, 80), block=10),
    )
    np.testing.assert_array_equal(
        spatial_groups(positions, (40, 80), block=4096), [0, 0, 0]
    )
    with pytest.raises(ValueError) as info:
        spatial_groups(positions, (40, 80), block=5000)
    assert str(info.value) == (
        "spatial_groups: block must lie in [1, 4096] px; got 5000"
    )


def test_a_class_in_one_group_is_refused_with_the_fix():
    y = np.repeat([0, 1, 2], 10)
    groups = np.r_[np.arange(10), np.arange(10, 20), np.full(10, 99)]
    with pytest.raises(ValueError, match=r"classes \[2\] lie in a single group each"):
        list(group_splits(y, groups, folds=5))
