"""Stage 3, recognition: honest evaluation of patch classifiers.

Patches cut from one image overlap and share its texture, noise and
anatomy; a cross-validation that puts neighbouring patches on both sides of
a split measures memory, not recognition. :func:`spatial_groups` gives the
patches of one spatial block (or slab of slices) one group id, and
:func:`cross_validate` keeps each group in one fold (``StratifiedGroupKFold``).

The scores: :func:`confusion`, :func:`precision_recall`, the area under the
ROC curve with a bootstrap confidence interval (:func:`roc_auc_ci`) and a
reliability table (:func:`calibration`).

References
----------
Roberts D. R. et al. Cross-validation strategies for data with temporal,
spatial, hierarchical, or phylogenetic structure. Ecography 2017.
doi:10.1111/ecog.02881
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Annotated

import numpy as np

from ..params import Param, Seed, declared

__all__ = [
    "CVResult",
    "calibration",
    "confusion",
    "cross_validate",
    "evaluate",
    "group_splits",
    "precision_recall",
    "roc_auc_ci",
    "roc_curve",
    "spatial_groups",
]

Folds = Annotated[int, Param(2, 20, 1, "folds", "cross-validation folds")]
Resamples = Annotated[int, Param(100, 100_000, 100, "resamples", "bootstrap resamples")]
Level = Annotated[float, Param(0.5, 0.999, 0.01, "", "coverage of an interval")]


@declared
def spatial_groups(
    positions: np.ndarray,
    shape: tuple[int, ...],
    *,
    block: Annotated[
        int, Param(1, 4096, 1, "px", "side of a block (slices of a slab)")
    ] = 64,
) -> np.ndarray:
    """Group id of each patch: the spatial block its position falls in.

    Parameters
    ----------
    positions : (n, 2) or (n, 3) array_like of int
        Index of each patch's centre, ``(row, column)`` in an image or
        ``(slice, row, column)`` in a volume.
    shape : tuple of int
        Shape of the image ``(M, N)`` or volume ``(S, M, N)``.
    block : int
        In an image, the side in pixels of square blocks on a grid from the
        origin; in a volume, the thickness in slices of slabs along the slice
        axis (a slab spans the whole slice).

    Returns
    -------
    (n,) int64 ndarray
        Block (or slab) number, row-major.

    Notes
    -----
    Patches near a block's edge still overlap their neighbours across it;
    make ``block`` several patch sizes large so that those are few.

    Examples
    --------
    >>> spatial_groups([[0, 0], [10, 70], [70, 10]], (128, 128), block=64)
    array([0, 1, 2])
    """
    pos = np.asarray(positions)
    shape = tuple(int(s) for s in shape)
    if len(shape) not in (2, 3) or min(shape, default=0) < 1:
        raise ValueError(
            f"shape must be an image (M, N) or a volume (S, M, N); got {shape}"
        )
    if pos.ndim != 2 or pos.shape[1] != len(shape) or pos.dtype.kind not in "ui":
        raise ValueError(
            f"positions must be (n, {len(shape)}) integer indices for shape "
            f"{shape}; got shape {pos.shape} and dtype {pos.dtype}"
        )
    if np.any(pos < 0) or np.any(pos >= np.asarray(shape)):
        raise ValueError(f"positions must lie inside shape {shape}")
    if len(shape) == 3:
        return (pos[:, 0] // block).astype(np.int64)
    n_cols = -(-shape[1] // block)
    return (pos[:, 0] // block * n_cols + pos[:, 1] // block).astype(np.int64)


@declared
def group_splits(
    y: np.ndarray, groups: np.ndarray, *, folds: Folds = 5, seed: Seed = 0
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(train, test)`` index arrays with every group on one side only.

    ``StratifiedGroupKFold`` with shuffling: the folds keep the class
    proportions as well as whole groups allow. The arguments are checked
    when it is called, before the first split is asked for.

    Parameters
    ----------
    y : (n,) array_like
        Class labels.
    groups : (n,) array_like
        Group of each case (a patient, a block of the image): a group is
        never split between train and test.
    folds : int
        Number of folds, 2 to 20, at most the number of groups.
    seed : int
        Shuffling of the groups into folds.

    Yields
    ------
    train, test : (n_train,), (n_test,) int ndarray
        Indices into ``y``.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    y = np.asarray(y)
    groups = np.asarray(groups)
    if y.ndim != 1 or groups.shape != y.shape:
        raise ValueError(
            f"y and groups must be 1D of the same length; got shapes {y.shape} "
            f"and {groups.shape}"
        )
    n_groups = len(np.unique(groups))
    if n_groups < folds:
        raise ValueError(f"folds={folds} needs at least {folds} groups; got {n_groups}")
    classes, index = np.unique(y, return_inverse=True)
    alone = [
        classes[k].item()
        for k in range(len(classes))
        if len(np.unique(groups[index == k])) < 2
    ]
    if alone:
        raise ValueError(
            f"classes {alone} lie in a single group each, so the fold that tests "
            f"them cannot train on them; cut their images into more groups "
            f"(smaller blocks) or add images"
        )
    cv = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    return cv.split(np.zeros((len(y), 1)), y, groups)


@declared
def cross_validate(
    clf,
    X: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    *,
    folds: Folds = 5,
    seed: Seed = 0,
) -> np.ndarray:
    """Out-of-fold class probabilities ``P(C_k|x)`` from grouped folds.

    Each fold trains a fresh clone of ``clf`` on the other folds'
    groups (:func:`group_splits`).

    Parameters
    ----------
    clf : scikit-learn classifier
        With ``predict_proba``, e.g. from :func:`~.classifiers.make_classifier`.
    X : (n, m) ndarray
        Features.
    y : (n,) ndarray
        Labels.
    groups : (n,) ndarray
        Group of each row, e.g. from :func:`spatial_groups`.
    folds : int
        Number of folds, 2 to 20, at most the number of groups.
    seed : int
        Shuffling of the groups into folds.

    Returns
    -------
    (n, K) float64 ndarray
        Column ``k`` is the probability of the ``k``-th of the sorted
        classes ``np.unique(y)``; 0 for a class absent from a training fold.
    """
    from sklearn.base import clone

    X = np.asarray(X)
    y = np.asarray(y)
    if X.ndim != 2 or len(X) != len(y):
        raise ValueError(
            f"X must be (n, m) with one row per label ({len(y)}); got shape {X.shape}"
        )
    classes = np.unique(y)
    proba = np.zeros((len(y), len(classes)))
    for train, test in group_splits(y, groups, folds=folds, seed=seed):
        model = clone(clf).fit(X[train], y[train])
        columns = np.searchsorted(classes, model.classes_)
        proba[np.ix_(test, columns)] = model.predict_proba(X[test])
    return proba


def _labels(y_true, y_pred, labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_true.ndim != 1 or y_true.shape != y_pred.shape or y_true.size == 0:
        raise ValueError(
            f"y_true and y_pred must be 1D of the same, non-zero length; got "
            f"shapes {y_true.shape} and {y_pred.shape}"
        )
    labels = np.union1d(y_true, y_pred) if labels is None else np.asarray(labels)
    unknown = np.setdiff1d(np.union1d(y_true, y_pred), labels)
    if unknown.size:
        raise ValueError(
            f"labels {labels.tolist()} miss the labels {unknown.tolist()} of the data"
        )
    return y_true, y_pred, labels


def confusion(y_true, y_pred, *, labels=None) -> np.ndarray:
    """Confusion matrix: row ``i`` true class, column ``j`` predicted class.

    Parameters
    ----------
    y_true, y_pred : (n,) array_like
        True and predicted labels.
    labels : (K,) array_like, optional
        Order of the classes; ``None`` takes the sorted labels present.

    Returns
    -------
    (K, K) int64 ndarray
        Counts; the sum is ``n``.
    """
    y_true, y_pred, labels = _labels(y_true, y_pred, labels)
    order = np.argsort(labels)
    index = order[np.searchsorted(labels, y_true, sorter=order)]
    index_pred = order[np.searchsorted(labels, y_pred, sorter=order)]
    K = len(labels)
    counts = np.bincount(index * K + index_pred, minlength=K * K)
    return counts.reshape(K, K).astype(np.int64)


def precision_recall(y_true, y_pred, *, labels=None) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall (sensitivity) per class.

    Parameters
    ----------
    y_true, y_pred : (n,) array_like
        True and predicted labels.
    labels : (K,) array_like, optional
        Order of the classes; ``None`` takes the sorted labels present.

    Returns
    -------
    precision, recall : (K,) float64 ndarray
        ``TP / (TP + FP)`` and ``TP / (TP + FN)`` per class of ``labels``;
        NaN where a class is never predicted (precision) or never true
        (recall).
    """
    matrix = confusion(y_true, y_pred, labels=labels).astype(np.float64)
    tp = np.diag(matrix)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(matrix.sum(axis=0) > 0, tp / matrix.sum(axis=0), np.nan)
        recall = np.where(matrix.sum(axis=1) > 0, tp / matrix.sum(axis=1), np.nan)
    return precision, recall


def _binary(y, scores) -> tuple[np.ndarray, np.ndarray]:
    """Checked ``(positive, scores)``: the larger of 2 labels is positive."""
    y = np.asarray(y)
    scores = np.asarray(scores, dtype=np.float64)
    if y.ndim != 1 or scores.shape != y.shape:
        raise ValueError(
            f"y and scores must be 1D of the same length; got shapes {y.shape} "
            f"and {scores.shape}"
        )
    classes = np.unique(y)
    if len(classes) != 2:
        raise ValueError(
            f"y must hold exactly 2 classes; got {len(classes)}: {classes[:5].tolist()}"
        )
    if not np.isfinite(scores).all():
        raise ValueError("scores hold NaN or infinite values")
    return y == classes[1], scores


def _auc(positive: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """AUC of each row by the rank-sum (Mann–Whitney U) formula, ties halved."""
    from scipy.stats import rankdata

    ranks = rankdata(scores, axis=-1)
    n1 = positive.sum(axis=-1)
    n0 = positive.shape[-1] - n1
    return ((ranks * positive).sum(axis=-1) - n1 * (n1 + 1) / 2) / (n1 * n0)


@declared
def roc_auc_ci(
    y: np.ndarray,
    scores: np.ndarray,
    *,
    n_boot: Resamples = 1000,
    level: Level = 0.95,
    seed: Seed = 0,
) -> tuple[float, float, float]:
    """Area under the ROC curve and its bootstrap percentile interval.

    The AUC is the probability that a random positive scores above a random
    negative (ties count half). Positives and negatives are resampled
    separately, so that each resample holds both.

    Parameters
    ----------
    y : (n,) array_like
        Binary labels; the larger one is positive (1 of 0/1, True).
    scores : (n,) array_like
        Higher means more likely positive, e.g. ``P(C_1|x)``.
    n_boot : int
        Bootstrap resamples.
    level : float
        Coverage of the interval, e.g. 0.95.
    seed : int
        Random seed of the resampling.

    Returns
    -------
    auc, low, high : float

    References
    ----------
    Hanley J. A., McNeil B. J. The meaning and use of the area under a
    receiver operating characteristic (ROC) curve. Radiology 1982.
    doi:10.1148/radiology.143.1.7063747
    """
    positive, scores = _binary(y, scores)
    auc = float(_auc(positive, scores))
    rng = np.random.default_rng(seed)
    pos, neg = scores[positive], scores[~positive]
    boot = np.concatenate(
        [
            rng.choice(pos, (n_boot, pos.size)),
            rng.choice(neg, (n_boot, neg.size)),
        ],
        axis=1,
    )
    flags = np.r_[np.ones(pos.size, bool), np.zeros(neg.size, bool)]
    aucs = _auc(np.broadcast_to(flags, boot.shape), boot)
    low, high = np.quantile(aucs, [(1 - level) / 2, (1 + level) / 2])
    return auc, float(low), float(high)


def roc_curve(y, scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points of the ROC curve: false- against true-positive fraction.

    Parameters
    ----------
    y : (n,) array_like
        Binary labels; the larger one is positive.
    scores : (n,) array_like
        Higher means more likely positive.

    Returns
    -------
    fpr, tpr : (t,) float64 ndarray
        From (0, 0) to (1, 1), one point per distinct score plus the origin;
        the trapezoid area under them is the AUC of :func:`roc_auc_ci`.
    thresholds : (t,) float64 ndarray
        Score at or above which a sample is called positive (``inf`` for
        the origin).

    Examples
    --------
    >>> fpr, tpr, _ = roc_curve([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9])
    >>> fpr.tolist(), tpr.tolist()
    ([0.0, 0.0, 0.5, 0.5, 1.0], [0.0, 0.5, 0.5, 1.0, 1.0])
    """
    positive, scores = _binary(y, scores)
    order = np.argsort(-scores, kind="stable")
    ranked, hits = scores[order], positive[order]
    last = np.r_[ranked[1:] != ranked[:-1], True]  # end of each run of ties
    tp = np.cumsum(hits)[last]
    fp = np.cumsum(~hits)[last]
    fpr = np.r_[0.0, fp / (~positive).sum()]
    tpr = np.r_[0.0, tp / positive.sum()]
    return fpr, tpr, np.r_[np.inf, ranked[last]]


@dataclass(frozen=True, eq=False)
class CVResult:
    """Out-of-fold predictions and their scores, from :func:`evaluate`.

    Attributes
    ----------
    class_names : list of str
        One per column of ``proba``.
    labels : (n,) int64 ndarray
        True class index of each sample, into ``class_names``.
    proba : (n, K) float64 ndarray
        Out-of-fold ``P(C_k|x)``.
    predicted : (n,) int64 ndarray
        Class of largest posterior.
    confusion : (K, K) int64 ndarray
        Row true class, column predicted class.
    precision, recall : (K,) float64 ndarray
        Per class; NaN where undefined.
    accuracy : float
        Fraction correct.
    accuracy_ci : (float, float)
        Percentile interval of the accuracy from resampling whole groups
        (a cluster bootstrap: patches of one group are not independent).
    auc : (K,) float64 ndarray
        One-against-the-rest area under the ROC curve of each class.
    auc_ci : (K, 2) float64 ndarray
        Bootstrap interval of each ``auc`` (:func:`roc_auc_ci`).
    level : float
        Coverage of the intervals.
    """

    class_names: list[str]
    labels: np.ndarray
    proba: np.ndarray
    predicted: np.ndarray
    confusion: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    accuracy: float
    accuracy_ci: tuple[float, float]
    auc: np.ndarray
    auc_ci: np.ndarray
    level: float

    def roc(self, k: int = -1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """ROC curve of class ``k`` against the rest (:func:`roc_curve`).

        Parameters
        ----------
        k : int
            A class index in ``[-K, K)``; the default -1 is the last class.

        Returns
        -------
        fpr, tpr, thresholds : (t,) float64 ndarray
            As :func:`roc_curve` gives them.
        """
        K = len(self.class_names)
        if not (isinstance(k, int | np.integer) and -K <= k < K):
            raise ValueError(f"k must be a class index in [0, {K - 1}]; got {k!r}")
        return roc_curve(self.labels == k % K, self.proba[:, k])


def _group_bootstrap(
    correct: np.ndarray, groups: np.ndarray, n_boot: int, level: float, seed: int
) -> tuple[float, float]:
    _, index = np.unique(groups, return_inverse=True)
    hits = np.bincount(index, weights=correct.astype(np.float64))
    sizes = np.bincount(index).astype(np.float64)
    draws = np.random.default_rng(seed).integers(0, len(sizes), (n_boot, len(sizes)))
    accuracy = hits[draws].sum(axis=1) / sizes[draws].sum(axis=1)
    low, high = np.quantile(accuracy, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


@declared
def evaluate(
    clf,
    X: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    *,
    class_names: Sequence[str] | None = None,
    folds: Folds = 5,
    n_boot: Resamples = 1000,
    level: Level = 0.95,
    seed: Seed = 0,
) -> CVResult:
    """Grouped cross-validation of ``clf`` and every score of its predictions.

    :func:`cross_validate` gives out-of-fold posteriors; from them come the
    confusion matrix, precision and recall, the accuracy with a group
    bootstrap interval, and each class's one-against-the-rest AUC with its
    interval.

    Parameters
    ----------
    clf : scikit-learn classifier
        With ``predict_proba``.
    X : (n, m) ndarray
        Features.
    y : (n,) ndarray of int
        Class indices ``0 .. K-1``, each present.
    groups : (n,) ndarray
        Group of each row; no group is on both sides of a split.
    class_names : sequence of str, optional
        Name of each class index; default the indices as text.
    folds, seed : int
        As in :func:`cross_validate`; ``seed`` also seeds the bootstraps.
    n_boot : int
        Bootstrap resamples of the intervals.
    level : float
        Coverage of the intervals.

    Returns
    -------
    CVResult
    """
    y = np.asarray(y)
    if y.ndim != 1 or y.dtype.kind not in "ui":
        raise ValueError(f"y must be 1D class indices; got shape {y.shape}")
    K = int(y.max(initial=-1)) + 1
    if K < 2 or len(np.unique(y)) != K:
        raise ValueError(
            f"y must hold every class index 0 .. K-1 with K >= 2; got "
            f"{np.unique(y).tolist()}"
        )
    names = [str(k) for k in range(K)] if class_names is None else list(class_names)
    if len(names) != K:
        raise ValueError(f"class_names must name the {K} classes; got {len(names)}")
    proba = cross_validate(clf, X, y, groups, folds=folds, seed=seed)
    predicted = np.argmax(proba, axis=1)
    precision, recall = precision_recall(y, predicted, labels=np.arange(K))
    aucs = [
        roc_auc_ci(y == k, proba[:, k], n_boot=n_boot, level=level, seed=seed)
        for k in range(K)
    ]
    return CVResult(
        class_names=names,
        labels=y.astype(np.int64),
        proba=proba,
        predicted=predicted.astype(np.int64),
        confusion=confusion(y, predicted, labels=np.arange(K)),
        precision=precision,
        recall=recall,
        accuracy=float(np.mean(predicted == y)),
        accuracy_ci=_group_bootstrap(predicted == y, groups, n_boot, level, seed),
        auc=np.array([a[0] for a in aucs]),
        auc_ci=np.array([a[1:] for a in aucs]),
        level=float(level),
    )


@declared
def calibration(
    y: np.ndarray,
    p: np.ndarray,
    *,
    bins: Annotated[int, Param(2, 100, 1, "bins", "probability bins")] = 10,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reliability table: predicted against observed frequency per bin.

    Parameters
    ----------
    y : (n,) array_like of bool or 0/1
        Whether each sample belongs to the class.
    p : (n,) array_like
        Predicted probability of the class, in [0, 1].
    bins : int
        Equal-width bins over [0, 1]; ``p = 1`` falls in the last.

    Returns
    -------
    predicted : (bins,) float64 ndarray
        Mean ``p`` in each bin (NaN where empty).
    observed : (bins,) float64 ndarray
        Fraction of positives in each bin (NaN where empty); equal to
        ``predicted`` for a calibrated model.
    counts : (bins,) int64 ndarray
        Samples per bin, summing to ``n``.
    """
    y = np.asarray(y)
    p = np.asarray(p, dtype=np.float64)
    if y.ndim != 1 or p.shape != y.shape:
        raise ValueError(
            f"y and p must be 1D of the same length; got shapes {y.shape} and {p.shape}"
        )
    if not np.isin(y, [0, 1]).all():
        raise ValueError("y must hold only 0/1 or False/True")
    if not (np.isfinite(p).all() and np.all((p >= 0) & (p <= 1))):
        raise ValueError("p must hold probabilities in [0, 1]")
    index = np.minimum((p * bins).astype(np.int64), bins - 1)
    counts = np.bincount(index, minlength=bins)
    with np.errstate(invalid="ignore"):
        predicted = np.bincount(index, weights=p, minlength=bins) / counts
        observed = np.bincount(index, weights=y.astype(float), minlength=bins) / counts
    return predicted, observed, counts.astype(np.int64)
