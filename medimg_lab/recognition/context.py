r"""Tissue classes beyond intensity: a neighbourhood feature and a Markov field.

Intensity alone (:mod:`.tissue`) gives every voxel the class of largest
``P(C_k|x)``, each voxel on its own. Two kinds of spatial context help:

- **A local feature.** Next to the intensity ``x`` the model looks at the
  mean intensity of the voxel's neighbourhood, ``m = G_σ * x`` (a Gaussian
  of ``sigma_mm``). Its likelihood ``P(x, m | C_k)`` is a smoothed 2D
  histogram of the labelled voxels, and Bayes' rule is unchanged:

  .. math:: P(C_k \mid x, m) \propto P(x, m \mid C_k)\, P(C_k)

  (:func:`context_bayes`, :class:`ContextBayes`). A partial-volume class,
  the brain's voxels that neither tissue map claims, keeps mixed voxels out
  of gray matter (:func:`with_partial_volume`).
- **A Markov random field.** A Potts prior favours neighbours of one class:
  ``P(L) ∝ exp(β Σ_{i~j} w_ij [l_i = l_j])``. Its mean-field approximation
  replaces each neighbour's label by its current posterior ``q_j``,

  .. math:: q_i(k) \propto P(f_i \mid C_k)\, P(C_k)\,
     \exp\Big(\beta \sum_{j \sim i} w_{ij}\, q_j(k)\Big),

  iterated a few times over the six face neighbours, ``w_ij = 1 mm / d_ij``
  from the voxel spacing (:func:`mrf_posterior`).

References: Zhang et al., IEEE TMI 20 (2001) 45-57,
doi:10.1109/42.906424 (hidden MRF tissue segmentation, FAST); Zhang, IEEE
TSP 40 (1992) 2570-2583, doi:10.1109/78.157297 (mean field).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import numpy as np

from ..params import Param, declared

__all__ = [
    "TISSUES_PV",
    "ContextBayes",
    "classify_tissues",
    "context_bayes",
    "context_features",
    "mrf_posterior",
    "with_partial_volume",
]

#: Classes of :func:`with_partial_volume`: the tissues, then label 4, ``PV``.
TISSUES_PV = ("CSF", "GM", "WM", "PV")

Beta = Annotated[
    float,
    Param(0.0, 2.0, 0.05, "", "Potts coupling of a neighbour 1 mm away (0: none)"),
]
Iterations = Annotated[int, Param(1, 50, 1, "sweeps", "mean-field iterations")]
SigmaMM = Annotated[
    float, Param(0.5, 8.0, 0.5, "mm", "SD of the neighbourhood's Gaussian")
]
Bins = Annotated[int, Param(16, 1024, 1, "bins", "histogram bins per feature")]


def _spacing(ndim: int, spacing) -> tuple[float, ...]:
    if spacing is None:
        return (1.0,) * ndim
    try:
        values = tuple(float(s) for s in spacing)
    except TypeError:
        values = ()
    if len(values) != ndim or not all(np.isfinite(values)) or min(values) <= 0:
        raise ValueError(
            f"spacing must be {ndim} positive mm values, one per axis; got {spacing!r}"
        )
    return values


def _check_image(image) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim not in (2, 3) or min(image.shape) < 1:
        raise ValueError(
            f"image must be a 2D or 3D grey array; got shape {image.shape}"
        )
    if image.dtype.kind not in "uif" or not np.isfinite(image).all():
        raise ValueError(
            f"image must hold finite numbers; got dtype {image.dtype} "
            "(NaN or Inf values cannot be classified)"
        )
    return image


def with_partial_volume(labels: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Tissue labels plus a partial-volume class inside ``mask``.

    Parameters
    ----------
    labels : ndarray of int
        0 left out, 1 CSF, 2 GM, 3 WM (:func:`.brain_tissues`).
    mask : bool ndarray, shape of ``labels``
        The brain (for the template: intensity above 0).

    Returns
    -------
    uint8 ndarray
        ``labels`` with 4 (``PV``, :data:`TISSUES_PV`) where ``mask`` holds a
        voxel no tissue label claims: mixed tissue, which a model must learn
        apart from gray matter.
    """
    labels = np.asarray(labels)
    mask = np.asarray(mask, bool)
    if mask.shape != labels.shape:
        raise ValueError(
            f"mask must have the labels' shape {labels.shape}; got {mask.shape}"
        )
    if labels.dtype.kind not in "ui" or labels.min() < 0 or labels.max() > 3:
        raise ValueError("labels must be integers in [0, 3] (0 left out, 1 CSF, ...)")
    out = labels.astype(np.uint8, copy=True)
    out[mask & (labels == 0)] = 4
    return out


@declared
def context_features(
    image: np.ndarray,
    *,
    sigma_mm: SigmaMM = 2.0,
    spacing=None,
) -> np.ndarray:
    """The intensity and its neighbourhood mean, ``(x, m = G_σ * x)``.

    Parameters
    ----------
    image : ([S,] M, N) ndarray
        Intensities in their units.
    sigma_mm : float
        SD of the Gaussian neighbourhood in mm, in [0.5, 8].
    spacing : tuple of float, optional
        mm per axis; default 1 mm.

    Returns
    -------
    (2, [S,] M, N) float32 ndarray
        Feature 0 the intensity, feature 1 the local mean, both in the
        image's units.
    """
    from ..processing import gaussian

    image = _check_image(image)
    spacing = _spacing(image.ndim, spacing)
    x = image.astype(np.float32)
    return np.stack([x, gaussian(x, sigma_mm=sigma_mm, spacing=spacing)])


class ContextBayes:
    """Bayes' rule on ``(x, m)`` with histogram likelihoods, priors explicit.

    Build with :func:`context_bayes`. ``P(x, m | C_k)`` is the 2D histogram
    of class ``k``'s labelled voxels, smoothed by one bin and normalised to a
    density per unit² of the features; the priors ``P(C_k)`` are the class
    frequencies or given, and :meth:`with_priors` changes them without
    refitting.

    Parameters
    ----------
    classes : sequence of str
        Class names, in the order of labels 1..K.
    log_likelihood : (K, bins, bins) float32 ndarray
        ``log P(x, m | C_k)`` per bin (per unit²).
    value_range : (low, high)
        Feature values the bins span, in the image's units.
    fitted_prior : (K,) ndarray
        Class frequencies of the training voxels; the priors in use at first.
    sigma_mm : float
        The neighbourhood of feature ``m``, in mm.

    Attributes
    ----------
    classes_ : (K,) ndarray of str
        Class names, in the order of labels 1..K.
    log_likelihood_ : (K, bins, bins) float32 ndarray
        ``log P(x, m | C_k)`` per bin (per unit²).
    value_range : (low, high)
        Feature values the bins span, in the image's units; values outside
        take the end bins.
    fitted_prior_, prior : (K,) ndarray
        Class frequencies of the training voxels, and the priors in use.
    sigma_mm : float
        The neighbourhood of feature ``m``.
    """

    def __init__(self, classes, log_likelihood, value_range, fitted_prior, sigma_mm):
        self.classes_ = np.asarray(classes)
        self.log_likelihood_ = log_likelihood
        self.value_range = value_range
        self.fitted_prior_ = fitted_prior
        self.prior = fitted_prior
        self.sigma_mm = sigma_mm

    @property
    def bins(self) -> int:
        """Histogram bins per feature axis of the likelihoods."""
        return self.log_likelihood_.shape[1]

    def with_priors(self, priors) -> ContextBayes:
        """A copy with priors ``P(C_k)`` (K values > 0, summing to 1).

        Parameters
        ----------
        priors : (K,) array_like of float
            In the order of :attr:`classes_`.

        Returns
        -------
        ContextBayes
            The same likelihoods with the new priors; this model is unchanged.
        """
        priors = np.asarray(priors, dtype=np.float64)
        K = len(self.classes_)
        if (
            priors.shape != (K,)
            or not np.isfinite(priors).all()
            or np.any(priors <= 0)
            or abs(priors.sum() - 1) > 1e-6
        ):
            raise ValueError(
                f"priors must be {K} positive values summing to 1, in the order "
                f"{self.classes_.tolist()}; got {priors.tolist()}"
            )
        out = ContextBayes(
            self.classes_,
            self.log_likelihood_,
            self.value_range,
            self.fitted_prior_,
            self.sigma_mm,
        )
        out.prior = priors
        return out

    def _bin(self, values: np.ndarray) -> np.ndarray:
        lo, hi = self.value_range
        scaled = (values - lo) * (self.bins / (hi - lo))
        return np.clip(scaled, 0, self.bins - 1).astype(np.intp)

    def log_evidence(self, features: np.ndarray) -> np.ndarray:
        """``log P(x, m | C_k) + log P(C_k)`` of every voxel.

        Parameters
        ----------
        features : (2, [S,] M, N) ndarray
            From :func:`context_features` with this model's ``sigma_mm``.

        Returns
        -------
        (K, [S,] M, N) float32 ndarray
            Unnormalised log posteriors; :func:`mrf_posterior` takes them.
        """
        features = np.asarray(features)
        if features.ndim < 2 or features.shape[0] != 2:
            raise ValueError(
                "features must be (2, ...) from context_features; got shape "
                f"{features.shape}"
            )
        index = self._bin(features[0]) * self.bins + self._bin(features[1])
        table = self.log_likelihood_.reshape(len(self.classes_), -1)
        table = table + np.log(self.prior).astype(np.float32)[:, None]
        return table[:, index]

    def posterior(self, features: np.ndarray) -> np.ndarray:
        """``P(C_k | x, m)`` of every voxel, ``(K, ...)`` float32, summing to 1.

        Parameters
        ----------
        features : (2, [S,] M, N) ndarray
            From :func:`context_features` with this model's ``sigma_mm``.

        Returns
        -------
        (K, [S,] M, N) float32 ndarray
        """
        return _softmax(self.log_evidence(features))


@declared
def context_bayes(
    features: np.ndarray,
    labels: np.ndarray,
    names: Sequence[str] = TISSUES_PV,
    *,
    bins: Bins = 256,
    value_range: tuple[float, float] | None = None,
    sigma_mm: SigmaMM = 2.0,
    priors=None,
) -> ContextBayes:
    """Fit ``P(x, m | C_k)`` as smoothed 2D histograms of labelled voxels.

    Parameters
    ----------
    features : (2, [S,] M, N) ndarray
        :func:`context_features` of the image.
    labels : ndarray of int, shape ``features.shape[1:]``
        0 left out, ``k`` the class ``names[k - 1]``.
    names : sequence of str
        Class names of labels 1, 2, ...; default :data:`TISSUES_PV`.
    bins : int
        Bins per feature, in [16, 1024]; 256 bins over 0-255 are 1 a.u.
    value_range : (low, high), optional
        Span of the bins, in the image's units; default the features'
        minimum and maximum.
    sigma_mm : float
        The ``sigma_mm`` the features were made with, kept for later images.
    priors : (K,) array_like, optional
        ``P(C_k)`` in the order of ``names``; default the class frequencies.

    Returns
    -------
    ContextBayes

    Examples
    --------
    >>> x = np.array([[10.0, 12.0, 50.0, 54.0]])
    >>> f = np.stack([x, x])
    >>> model = context_bayes(f, np.array([[1, 1, 2, 2]]), ("dark", "light"), bins=16)
    >>> model.posterior(f).argmax(axis=0).tolist()
    [[0, 0, 1, 1]]
    """
    from scipy.ndimage import gaussian_filter

    features = np.asarray(features)
    labels = np.asarray(labels)
    if features.ndim < 3 or features.shape[0] != 2:
        raise ValueError(
            f"features must be (2, ...) from context_features; got {features.shape}"
        )
    if labels.shape != features.shape[1:]:
        raise ValueError(
            f"labels must have the image's shape {features.shape[1:]}; got "
            f"{labels.shape}"
        )
    if features.dtype.kind not in "uif" or not np.isfinite(features).all():
        raise ValueError("features must hold finite numbers")
    names = [str(n) for n in names]
    K = len(names)
    if len(set(names)) != K or K < 2:
        raise ValueError(f"names must be at least 2 distinct names; got {names}")
    if labels.dtype.kind not in "ui" or labels.min() < 0 or labels.max() > K:
        raise ValueError(
            f"labels must be integers in [0, {K}] (0 = left out, k = names[k - 1]); "
            f"got dtype {labels.dtype}, values {labels.min()}..{labels.max()}"
        )
    if value_range is None:
        value_range = (float(features.min()), float(features.max()))
    lo, hi = (float(v) for v in value_range)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError(f"value_range must be finite; got {value_range}")
    if hi <= lo:
        hi = lo + 1.0  # a constant image: one value, any width
    model = ContextBayes(names, None, (lo, hi), None, sigma_mm)
    model.log_likelihood_ = np.zeros((K, bins, bins), np.float32)
    chosen = labels > 0
    y = labels[chosen].astype(np.intp) - 1
    index = model._bin(features[0][chosen]) * bins + model._bin(features[1][chosen])
    counts = np.bincount(y * bins * bins + index, minlength=K * bins * bins)
    counts = counts.reshape(K, bins, bins).astype(np.float64)
    n = counts.sum(axis=(1, 2))
    missing = [names[k] for k in range(K) if n[k] == 0]
    if missing:
        raise ValueError(f"no voxel is labelled {missing}; every class needs voxels")
    cell = ((hi - lo) / bins) ** 2  # unit² per bin: a density per unit²
    for k in range(K):
        smooth = gaussian_filter(counts[k], 1.0, mode="constant")
        density = smooth / (smooth.sum() * cell)
        floor = 1e-3 / (n[k] * cell)  # less than one voxel's worth: never log 0
        model.log_likelihood_[k] = np.log(density + floor)
    model.fitted_prior_ = n / n.sum()
    model.prior = model.fitted_prior_
    return model if priors is None else model.with_priors(priors)


def _softmax(log_p: np.ndarray) -> np.ndarray:
    q = np.exp(log_p - log_p.max(axis=0))
    q /= q.sum(axis=0)
    return q.astype(np.float32, copy=False)


def _neighbour_sum(q: np.ndarray, weights: Sequence[float], out: np.ndarray):
    """``out = Σ_j w_ij q_j`` over the face neighbours of every voxel, per class."""
    out.fill(0)
    for axis, w in enumerate(weights, start=1):
        n = q.shape[axis]
        if n < 2:
            continue
        lead = (slice(None),) * axis
        up, down = (*lead, slice(1, None)), (*lead, slice(None, n - 1))
        if w == 1.0:
            out[up] += q[down]
            out[down] += q[up]
        else:
            out[up] += np.float32(w) * q[down]
            out[down] += np.float32(w) * q[up]
    return out


@declared
def mrf_posterior(
    log_evidence: np.ndarray,
    *,
    beta: Beta = 0.2,
    iterations: Iterations = 5,
    spacing=None,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    r"""Mean-field posterior of a Potts Markov random field.

    .. math:: q_i(k) \propto \exp\big(U_i(k) + \beta \textstyle\sum_{j \sim i}
       w_{ij}\, q_j(k)\big)

    where ``U_i(k) = log P(f_i|C_k) + log P(C_k)`` and ``j`` runs over the
    face neighbours (4 in 2D, 6 in 3D) with ``w_ij = 1 mm / d_ij``. All voxels
    are updated together from the previous sweep (Jacobi), so the result does
    not depend on a visiting order.

    Parameters
    ----------
    log_evidence : (K, [S,] M, N) ndarray
        ``U_i(k)``, e.g. :meth:`ContextBayes.log_evidence` or the log of
        :func:`.posterior_maps`.
    beta : float
        Coupling in [0, 2]; 0 gives back the voxel-wise posterior.
    iterations : int
        Mean-field sweeps, in [1, 50]; the voxel's result depends on voxels
        at most ``iterations`` steps away.
    spacing : tuple of float, optional
        mm per image axis; default 1 mm.
    mask : bool ndarray, optional
        Voxels taking part (the brain); the others get ``q = 0`` and do not
        couple to their neighbours.

    Returns
    -------
    (K, [S,] M, N) float32 ndarray
        ``q_i(k)``, summing to 1 over ``k`` inside the mask.
    """
    U = np.asarray(log_evidence)
    if U.ndim not in (3, 4) or U.shape[0] < 2:
        raise ValueError(
            "log_evidence must be (K, [S,] M, N) with K >= 2 classes; got shape "
            f"{U.shape}"
        )
    if U.dtype.kind not in "uif" or np.isnan(U).any() or np.isposinf(U).any():
        raise ValueError("log_evidence must hold numbers, no NaN or +Inf")
    spacing = _spacing(U.ndim - 1, spacing)
    if mask is not None:
        mask = np.asarray(mask, bool)
        if mask.shape != U.shape[1:]:
            raise ValueError(
                f"mask must have the image's shape {U.shape[1:]}; got {mask.shape}"
            )
    # U - max_k U: the best class has 0, so every sum of exponentials is >= 1
    # and, with the coupling in [0, 12 beta], nothing over- or underflows.
    U = U.astype(np.float32)
    best = U[0].copy()
    for k in range(1, U.shape[0]):
        np.maximum(best, U[k], out=best)
    U -= best
    np.maximum(U, -80, out=U)
    keep = None if mask is None else mask.astype(np.float32)
    q = np.exp(U)
    _normalise(q, keep)
    if beta == 0:
        return q
    weights = [1.0 / s for s in spacing]
    field = np.empty_like(q)
    for _ in range(iterations):
        _neighbour_sum(q, weights, field)
        field *= np.float32(beta)
        field += U
        np.exp(field, out=field)
        q, field = _normalise(field, keep), q
    return q


def _normalise(q: np.ndarray, keep: np.ndarray | None) -> np.ndarray:
    """Divide by the sum over classes, in place; zero outside ``keep``."""
    total = q[0].copy()  # class by class: faster than q.sum(axis=0)
    for k in range(1, q.shape[0]):
        total += q[k]
    np.reciprocal(total, out=total)
    if keep is not None:
        total *= keep
    q *= total
    return q


@declared
def classify_tissues(
    features: np.ndarray,
    model: ContextBayes,
    *,
    beta: Beta = 0.2,
    iterations: Iterations = 5,
    spacing=None,
    mask: np.ndarray | None = None,
    slice_index: int | None = None,
) -> np.ndarray:
    """Labels of largest mean-field posterior, ``1 + argmax_k q_i(k)``.

    Parameters
    ----------
    features : (2, [S,] M, N) ndarray
        :func:`context_features` of the image.
    model : ContextBayes
        Likelihoods and priors (:func:`context_bayes`).
    beta, iterations, spacing, mask
        As in :func:`mrf_posterior`.
    slice_index : int, optional
        For a volume: return only axial slice ``slice_index``. It is computed
        on the slab of ``iterations`` slices on each side, all the slice
        depends on, so it equals that slice of the whole volume's result.

    Returns
    -------
    uint8 ndarray
        Label ``k`` for ``model.classes_[k - 1]``, 0 outside the mask; the
        image's shape, or one slice's.
    """
    if not isinstance(model, ContextBayes):
        raise ValueError("model must be a ContextBayes (see context_bayes)")
    features = np.asarray(features)
    if mask is not None:
        mask = np.asarray(mask, bool)
        if mask.shape != features.shape[1:]:
            raise ValueError(
                f"mask must have the image's shape {features.shape[1:]}; got "
                f"{mask.shape}"
            )
    if slice_index is not None:
        if features.ndim != 4:
            raise ValueError("slice_index needs a volume (3D features)")
        depth = features.shape[1]
        if not (isinstance(slice_index, int | np.integer) and 0 <= slice_index < depth):
            raise ValueError(
                f"slice_index must lie in [0, {depth - 1}]; got {slice_index!r}"
            )
        reach = iterations if beta else 0
        lo, hi = max(0, slice_index - reach), min(depth, slice_index + reach + 1)
        labels = classify_tissues(
            features[:, lo:hi],
            model,
            beta=beta,
            iterations=iterations,
            spacing=spacing,
            mask=None if mask is None else mask[lo:hi],
        )
        return labels[slice_index - lo]
    if mask is None:
        return _map_labels(features, model, beta, iterations, spacing, None)
    labels = np.zeros(mask.shape, np.uint8)
    if mask.any():
        # Outside the mask q = 0 and nothing couples: the mask's bounding box
        # gives the same result on fewer voxels.
        box = tuple(slice(int(i.min()), int(i.max()) + 1) for i in np.nonzero(mask))
        labels[box] = _map_labels(
            features[(slice(None), *box)], model, beta, iterations, spacing, mask[box]
        )
    return labels


def _map_labels(features, model, beta, iterations, spacing, mask) -> np.ndarray:
    q = mrf_posterior(
        model.log_evidence(features),
        beta=beta,
        iterations=iterations,
        spacing=spacing,
        mask=mask,
    )
    labels = (np.argmax(q, axis=0) + 1).astype(np.uint8)
    if mask is not None:
        labels[~mask] = 0
    return labels
