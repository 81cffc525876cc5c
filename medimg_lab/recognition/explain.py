"""Stage 3, recognition: why a classifier decides what it decides.

Two model-agnostic explanations:

- :func:`feature_importance`: permutation importance. Shuffling column
  ``i`` of ``X`` breaks its link with ``y``; the importance of feature ``i``
  is the mean drop of the model's score (accuracy for a classifier),
  ``I_i = s(X, y) - mean_r s(X_perm(i, r), y)``, over ``n_repeats``
  shuffles.
- :func:`occlusion_map`: occlusion sensitivity of one image. A square of
  ``patch`` pixels slides over the image in steps of ``stride``; each
  position is replaced by a baseline value and the drop of ``P(C_target|x)``
  is spread over the occluded pixels. Each pixel of the map is the mean
  drop over the squares that cover it.

References
----------
Breiman L. Random forests. Mach Learn 2001. doi:10.1023/A:1010933404324

Zeiler M. D., Fergus R. Visualizing and understanding convolutional
networks. ECCV 2014. doi:10.1007/978-3-319-10590-1_53
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import numpy as np

from ..params import Param, Seed, declared

__all__ = ["BASELINES", "feature_importance", "occlusion_map"]

#: Values :func:`occlusion_map` can paint over an occluded square.
BASELINES = ("mean", "median", "min", "zero")

#: Images sent to ``predict_fn`` at once by :func:`occlusion_map`.
_BATCH = 64


@declared
def feature_importance(
    model,
    X,
    y,
    *,
    names,
    n_repeats: Annotated[
        int, Param(1, 100, 1, "shuffles", "shuffles of each feature")
    ] = 5,
    seed: Seed = 0,
):
    """Permutation importance of each feature, most important first.

    ``I_i = s(X, y) - mean_r s(X_perm(i, r), y)``, where ``s`` is the
    model's ``score`` (accuracy for a classifier) and ``X_perm(i, r)`` is
    ``X`` with column ``i`` shuffled (repeat ``r``).

    Parameters
    ----------
    model : fitted scikit-learn estimator
        Such as a pipeline from
        :func:`~medimg_lab.recognition.classifiers.make_classifier`.
    X : (n, m) array_like
        Feature vectors, preferably held out from training.
    y : (n,) array_like
        Their labels.
    names : sequence of str
        The ``m`` feature names (those of
        :func:`~medimg_lab.recognition.features.extract`).
    n_repeats : int
        Shuffles of each feature, in [1, 100].
    seed : int
        Random state of the shuffles.

    Returns
    -------
    pandas.DataFrame
        Columns ``name``, ``mean`` and ``sd`` (mean and SD of the score drop
        over the repeats, in units of the score), one row per feature,
        sorted by ``mean`` descending.

    Examples
    --------
    >>> from medimg_lab.recognition.classifiers import make_classifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 2))
    >>> y = (X[:, 1] > 0).astype(int)
    >>> model = make_classifier("logistic").fit(X, y)
    >>> feature_importance(model, X, y, names=["noise", "signal"]).name.tolist()
    ['signal', 'noise']
    """
    import pandas as pd
    from sklearn.inspection import permutation_importance

    X = np.asarray(X)
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValueError(
            f"X must be a (n_samples, n_features) array; got shape {X.shape}"
        )
    y = np.asarray(y)
    if y.shape != (X.shape[0],):
        raise ValueError(
            f"y must have one label per row of X ({X.shape[0]}); got shape {y.shape}"
        )
    if isinstance(names, str):
        raise TypeError(f"names must be a sequence of strings; got {names!r}")
    names = [str(n) for n in names]
    if len(names) != X.shape[1]:
        raise ValueError(
            f"names must name the {X.shape[1]} columns of X; got {len(names)} names"
        )
    result = permutation_importance(model, X, y, n_repeats=n_repeats, random_state=seed)
    table = pd.DataFrame(
        {
            "name": names,
            "mean": result.importances_mean,
            "sd": result.importances_std,
        }
    )
    return table.sort_values("mean", ascending=False, kind="stable").reset_index(
        drop=True
    )


def _starts(size: int, patch: int, stride: int) -> list[int]:
    """Square positions along one axis, the last flush with the edge."""
    starts = list(range(0, size - patch + 1, stride))
    if starts[-1] != size - patch:
        starts.append(size - patch)
    return starts


@declared
def occlusion_map(
    image,
    predict_fn: Callable[[np.ndarray], np.ndarray],
    *,
    target: int,
    patch: Annotated[int, Param(1, 512, 1, "px", "side of the occluding square")] = 8,
    stride: Annotated[int, Param(1, 512, 1, "px", "step of the occluding square")] = 4,
    baseline: Annotated[
        str, Param(choices=BASELINES, doc="value painted over the square")
    ] = "mean",
) -> np.ndarray:
    """Occlusion sensitivity: the drop of ``P(C_target|x)`` when a region is hidden.

    A ``patch × patch`` square slides over the image in steps of ``stride``
    (the last position flush with each edge, so every pixel is covered). For
    each position ``j`` the square is set to the baseline and
    ``d_j = P(C_target|x) - P(C_target|x_j)``; the map at a pixel is the mean
    of ``d_j`` over the squares covering it. Positive values mark regions the
    decision relies on, negative ones regions that speak against the class.

    Parameters
    ----------
    image : (M, N) ndarray
        One grey image, in its units; not modified.
    predict_fn : callable
        ``predict_fn(images)`` takes a stack ``(B, M, N)`` of images of the
        dtype of ``image`` and returns probabilities ``(B, K)``.
    target : int
        Column of the class of interest in ``predict_fn``'s output.
    patch : int
        Side of the occluding square in pixels, at most ``min(M, N)``.
    stride : int
        Step between square positions in pixels, at most ``patch``.
    baseline : {"mean", "median", "min", "zero"}
        Value painted over the square: a statistic of ``image`` or 0.

    Returns
    -------
    (M, N) float32 ndarray
        Mean drop of the target probability, in [-1, 1].

    Examples
    --------
    >>> image = np.zeros((16, 16), np.float32)
    >>> image[6:10, 6:10] = 1
    >>> def predict(images):
    ...     p = images[:, 6:10, 6:10].mean(axis=(1, 2))
    ...     return np.stack([1 - p, p], axis=1)
    >>> heat = occlusion_map(image, predict, target=1, patch=4, stride=2)
    >>> heat.shape, float(heat[0, 0]), bool(heat[8, 8] > 0)
    ((16, 16), 0.0, True)
    """
    image = np.asarray(image)
    if image.ndim != 2 or 0 in image.shape or image.dtype.kind not in "uifb":
        raise ValueError(
            f"image must be a 2D (M, N) array of numbers; got shape {image.shape} "
            f"and dtype {image.dtype}"
        )
    if not np.isfinite(image).all():
        raise ValueError("image holds NaN or infinite values; replace them first")
    if isinstance(target, bool) or not isinstance(target, int | np.integer):
        raise TypeError(f"target must be a class index (int); got {target!r}")
    if not callable(predict_fn):
        raise TypeError(f"predict_fn must be callable; got {predict_fn!r}")
    if patch > min(image.shape):
        raise ValueError(
            f"patch must be at most the image's smaller side {min(image.shape)} px; "
            f"got {patch}"
        )
    if stride > patch:
        raise ValueError(
            f"stride must be at most patch ({patch} px) so that every pixel is "
            f"covered; got {stride}"
        )
    fill = {
        "mean": lambda: image.mean(),
        "median": lambda: np.median(image),
        "min": lambda: image.min(),
        "zero": lambda: 0,
    }[baseline]()

    def probabilities(images: np.ndarray) -> np.ndarray:
        proba = np.asarray(predict_fn(images), dtype=np.float64)
        if proba.ndim != 2 or proba.shape[0] != len(images):
            raise ValueError(
                f"predict_fn must return (B, K) probabilities for B={len(images)} "
                f"images; got shape {proba.shape}"
            )
        if not 0 <= target < proba.shape[1]:
            raise ValueError(
                f"target must lie in [0, {proba.shape[1] - 1}] (the columns of "
                f"predict_fn's output); got {target}"
            )
        return proba[:, target]

    reference = probabilities(image[None].copy())[0]
    positions = [
        (r, c)
        for r in _starts(image.shape[0], patch, stride)
        for c in _starts(image.shape[1], patch, stride)
    ]
    total = np.zeros(image.shape, np.float64)
    count = np.zeros(image.shape, np.float64)
    for b in range(0, len(positions), _BATCH):
        chunk = positions[b : b + _BATCH]
        batch = np.repeat(image[None], len(chunk), axis=0)
        for i, (r, c) in enumerate(chunk):
            batch[i, r : r + patch, c : c + patch] = fill
        drops = reference - probabilities(batch)
        for (r, c), drop in zip(chunk, drops, strict=True):
            total[r : r + patch, c : c + patch] += drop
            count[r : r + patch, c : c + patch] += 1
    return (total / count).astype(np.float32)
