"""Class priors ``P(C_k)`` that a person sets, for Bayes' rule.

``P(C_k|x) = P(x|C_k) P(C_k) / P(x)``: moving one class's prior moves the
decision boundaries. When some priors are set, the other classes share what
is left in the proportions they had (:func:`rebalance_priors`); a model with
more classes than those set keeps its own share for the others
(:func:`share_priors`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["PRIOR_MIN", "rebalance_priors", "share_priors"]

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
