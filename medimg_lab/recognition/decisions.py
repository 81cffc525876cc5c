"""Bayes' rule by hand: the priors a person sets, and what they decide.

``P(C_k|x) = P(x|C_k) P(C_k) / P(x)``: moving one class's prior moves the
decision boundaries.

- :func:`rebalance_priors`: some priors set, the other classes share what is
  left in the proportions they had; :func:`share_priors`: a model with more
  classes than those set keeps its own share for the others.
- :func:`winning_labels`: the class of largest posterior, as labels;
  :func:`class_volumes_ml`: the volume each class wins; :func:`label_volumes_ml`:
  the volume of each label of a reference.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

__all__ = [
    "PRIOR_MIN",
    "class_volumes_ml",
    "label_volumes_ml",
    "rebalance_priors",
    "share_priors",
    "winning_labels",
]

#: The smallest prior a class may have: none is ruled out.
PRIOR_MIN = 0.001


def rebalance_priors(
    current: Mapping[str, float],
    given: Mapping[str, float],
    *,
    minimum: float = PRIOR_MIN,
) -> dict[str, float]:
    """Priors with some classes set and the others sharing the rest.

    Parameters
    ----------
    current : mapping of str to float
        Every class's prior now (they sum to 1).
    given : mapping of str to float
        The priors set, by class name: each at least ``minimum``, together at
        most 1 (exactly 1 when every class is named).
    minimum : float
        The smallest prior of a class that shares the rest.

    Returns
    -------
    dict of str to float
        Every class's prior, in ``current``'s order, summing to 1: the given
        ones as given (up to that final normalisation), the others
        ``max(share · rest, minimum)`` with ``share`` their proportion among
        themselves now (equal shares if they are all 0).

    Examples
    --------
    >>> priors = rebalance_priors({"a": 0.5, "b": 0.3, "c": 0.2}, {"a": 0.2})
    >>> {name: round(p, 6) for name, p in priors.items()}
    {'a': 0.2, 'b': 0.48, 'c': 0.32}
    """
    names = [str(n) for n in current]
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise ValueError(f"unknown classes {unknown}; the classes are {names}")
    values = np.array([float(current[n]) for n in names])
    fixed = np.array([n in given for n in names])
    chosen = np.array([float(given.get(n, 0.0)) for n in names])
    if (
        np.any(~np.isfinite(chosen))
        or np.any(chosen[fixed] < minimum)
        or (chosen.sum() > 1 + 1e-9)
    ):
        raise ValueError(
            f"priors must each be at least {minimum} and sum to at most 1; "
            f"got {dict(given)}"
        )
    rest = 1.0 - chosen.sum()
    if fixed.all():
        if abs(rest) > 1e-6:
            raise ValueError(
                f"priors of every class must sum to 1; got {dict(given)} "
                f"(sum {chosen.sum():.6g})"
            )
    else:
        free = values[~fixed]
        share = (
            free / free.sum() if free.sum() > 0 else np.full(free.size, 1 / free.size)
        )
        chosen[~fixed] = np.maximum(share * rest, minimum)
    chosen = chosen / chosen.sum()
    return {n: float(v) for n, v in zip(names, chosen, strict=True)}


def share_priors(
    fitted: Sequence[float], classes: Sequence[str], priors: Mapping[str, float]
) -> np.ndarray:
    """A model's priors with the classes of ``priors`` set, the others kept.

    The classes named in ``priors`` take their fitted share between them,
    split as ``priors`` says; the other classes (a partial-volume class) keep
    their fitted priors.

    Parameters
    ----------
    fitted : sequence of float
        The model's fitted priors, one per class.
    classes : sequence of str
        The model's class names, in that order.
    priors : mapping of str to float
        Priors of some of the classes (summing to 1 among themselves).

    Returns
    -------
    (K,) float64 ndarray
        Summing to 1.

    Examples
    --------
    >>> share_priors([0.4, 0.4, 0.2], ["a", "b", "PV"], {"a": 0.25, "b": 0.75})
    array([0.2, 0.6, 0.2])
    """
    prior = np.array(fitted, dtype=np.float64)
    classes = [str(c) for c in classes]
    if prior.shape != (len(classes),):
        raise ValueError(
            f"fitted must have one prior per class ({len(classes)}); got {prior.shape}"
        )
    named = np.array([c in priors for c in classes])
    share = prior[named].sum()
    prior[named] = [share * float(priors[c]) for c in np.asarray(classes)[named]]
    return prior / prior.sum()


def winning_labels(
    posteriors: np.ndarray,
    classes: Sequence[str],
    names: Sequence[str],
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """Label ``k`` (``names[k - 1]``) of the class of largest ``P(C_k|x)``.

    Parameters
    ----------
    posteriors : (K, M, N) ndarray
        One map per class, in the model's class order ``classes``.
    classes : sequence of str
        The model's classes, each one of ``names``.
    names : sequence of str
        Label ``k`` stands for ``names[k - 1]``.
    mask : (M, N) bool ndarray, optional
        0 outside it.

    Returns
    -------
    (M, N) uint8 ndarray

    Examples
    --------
    >>> p = np.array([[[0.9, 0.2]], [[0.1, 0.8]]])
    >>> winning_labels(p, ["WM", "GM"], ["GM", "WM"]).tolist()
    [[2, 1]]
    """
    names = [str(n) for n in names]
    missing = [str(c) for c in classes if str(c) not in names]
    if missing:
        raise ValueError(f"classes {missing} are not among the names {names}")
    order = [names.index(str(c)) + 1 for c in classes]
    winner = np.take(order, np.argmax(posteriors, axis=0)).astype(np.uint8)
    return winner if mask is None else winner * np.asarray(mask, bool)


def class_volumes_ml(
    model, values: np.ndarray, counts: np.ndarray, voxel_volume_mm3: float
) -> dict[str, float]:
    """The volume, in mL, of the voxels each class wins by largest posterior.

    Parameters
    ----------
    model
        A one-feature Bayes model: ``model.posterior((V, 1))`` gives
        ``(V, K)``; ``model.classes_`` names the classes.
    values, counts : (V,) ndarray
        Each distinct voxel value, and how many voxels hold it
        (``np.unique(..., return_counts=True)``).
    voxel_volume_mm3 : float
        The volume of one voxel in mm³.

    Returns
    -------
    dict of str to float
        mL per class, in the model's class order.
    """
    classes = [str(c) for c in model.classes_]
    winner = np.argmax(model.posterior(np.asarray(values)[:, None]), axis=1)
    voxels = np.bincount(winner, weights=counts, minlength=len(classes))
    ml = voxels * float(voxel_volume_mm3) / 1000
    return {name: float(v) for name, v in zip(classes, ml, strict=True)}


def label_volumes_ml(
    labels: np.ndarray, names: Sequence[str], voxel_volume_mm3: float
) -> dict[str, float]:
    """The volume in mL of each label ``k`` = ``names[k - 1]``.

    Parameters
    ----------
    labels : ([S,] M, N) int ndarray
        Labels 1..K (0: none).
    names : sequence of str
        The K labels' names.
    voxel_volume_mm3 : float
        Volume of one voxel in mm³ (the product of the spacing).

    Returns
    -------
    dict of str to float
        mL (1 mL = 1000 mm³) per name.

    Examples
    --------
    >>> label_volumes_ml(np.array([1, 1, 2, 0]), ["CSF", "GM"], 500.0)
    {'CSF': 1.0, 'GM': 0.5}
    """
    labels = np.asarray(labels)
    return {
        str(name): float((labels == k).sum()) * float(voxel_volume_mm3) / 1000
        for k, name in enumerate(names, start=1)
    }
