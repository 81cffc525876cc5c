r"""Stage 3, recognition: Bayes' rule on one intensity, the brain's tissues.

Each voxel of a T1 brain MRI is classified by its intensity ``x`` alone:

.. math:: P(C_k \mid x)
   = \frac{P(x \mid C_k)\, P(C_k)}{\sum_j P(x \mid C_j)\, P(C_j)}

with one Gaussian likelihood per tissue, fitted to the voxels the template's
tissue maps assign to it (:func:`brain_tissues`, :func:`intensity_bayes`).
With one feature, the classes' regions are intervals of ``x`` whose ends are
the decision boundaries (:func:`decision_boundaries`); moving a prior moves
them, and :func:`posterior_maps` shows where the voxels change class.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import numpy as np

from ..image import MedImage
from ..params import Param, declared
from .classifiers import GaussianBayes

__all__ = [
    "TISSUES",
    "brain_tissues",
    "decision_boundaries",
    "intensity_bayes",
    "posterior_maps",
]

#: Tissue classes of :func:`brain_tissues`, labels 1, 2, 3.
TISSUES = ("CSF", "GM", "WM")


@declared
def brain_tissues(
    *,
    threshold: Annotated[
        float, Param(0.05, 0.95, 0.05, "", "tissue probability of a label")
    ] = 0.5,
) -> tuple[MedImage, np.ndarray]:
    """The brain MRI sample and its tissue labels from the template's maps.

    The MNI152 T1 template comes with gray- and white-matter probability
    maps but none for cerebrospinal fluid, so:

    - ``GM`` (2): gray-matter probability >= ``threshold``, and larger than
      the white-matter one;
    - ``WM`` (3): white-matter probability >= ``threshold``, and at least the
      gray-matter one;
    - ``CSF`` (1): voxels enclosed by the brain in their axial slice (the
      holes of gray plus white >= ``threshold``: ventricles and deep sulci)
      where gray plus white is below 0.1;
    - 0: everything else (outside the brain, and partial volume).

    Parameters
    ----------
    threshold : float
        Probability a map must reach for its label, in [0.05, 0.95].

    Returns
    -------
    image : MedImage
        The ``brain_mri`` sample, (189, 233, 197) at 1 mm, in scanner units
        (0-255).
    labels : (189, 233, 197) uint8 ndarray
        0 other, 1 CSF, 2 GM, 3 WM (:data:`TISSUES`).
    """
    from scipy.ndimage import binary_fill_holes

    from .. import data

    image = data.sample("brain_mri")
    gm = data.sample("brain_mri_gm").array
    wm = data.sample("brain_mri_wm").array
    tissue = gm + wm
    brain = tissue >= threshold
    enclosed = np.stack([binary_fill_holes(s) for s in brain])
    labels = np.zeros(image.array.shape, np.uint8)
    labels[enclosed & (tissue < 0.1)] = 1
    labels[(gm >= threshold) & (gm > wm)] = 2
    labels[(wm >= threshold) & (wm >= gm)] = 3
    return image, labels


def intensity_bayes(
    image: np.ndarray,
    labels: np.ndarray,
    names: Sequence[str] = TISSUES,
    *,
    priors=None,
) -> GaussianBayes:
    """Naive Bayes of one feature, the intensity, fitted to labelled voxels.

    Parameters
    ----------
    image : ([S,] M, N) ndarray
        Intensities in their units.
    labels : ndarray of int, shape of ``image``
        0 for voxels left out, ``k`` for the class ``names[k - 1]``.
    names : sequence of str
        Class names, one per label 1, 2, ...; the model's ``classes_`` are
        these names, sorted.
    priors : (K,) array_like, optional
        ``P(C_k)`` in the order of the sorted names; ``None`` takes the voxel
        fractions of the classes.

    Returns
    -------
    GaussianBayes
        Fitted on ``x`` = the intensity of every labelled voxel: ``theta_``
        and ``var_`` are each class's mean and variance (units, units²).

    Examples
    --------
    >>> image = np.array([[10.0, 12.0, 50.0, 54.0]])
    >>> model = intensity_bayes(image, np.array([[1, 1, 2, 2]]), ("dark", "light"))
    >>> model.classes_.tolist(), model.theta_.ravel().tolist()
    (['dark', 'light'], [11.0, 52.0])
    """
    image = np.asarray(image)
    labels = np.asarray(labels)
    if labels.shape != image.shape:
        raise ValueError(
            f"labels must have the image's shape {image.shape}; got {labels.shape}"
        )
    if image.dtype.kind not in "uif":
        raise ValueError(f"image must hold numbers; got dtype {image.dtype}")
    names = [str(n) for n in names]
    if len(set(names)) != len(names) or len(names) < 2:
        raise ValueError(f"names must be at least 2 distinct names; got {names}")
    if labels.dtype.kind not in "ui" or labels.min() < 0 or labels.max() > len(names):
        raise ValueError(
            f"labels must be integers in [0, {len(names)}] (0 = left out, k = "
            f"names[k - 1]); got dtype {labels.dtype}"
        )
    present = np.unique(labels[labels > 0])
    missing = [names[k - 1] for k in range(1, len(names) + 1) if k not in present]
    if missing:
        raise ValueError(f"no voxel is labelled {missing}; every class needs voxels")
    chosen = labels > 0
    x = image[chosen].astype(np.float64)[:, None]
    y = np.asarray(names)[labels[chosen].astype(np.int64) - 1]
    return GaussianBayes(priors=priors).fit(x, y)


def _one_feature(model: GaussianBayes) -> None:
    if not isinstance(model, GaussianBayes) or not hasattr(model, "classes_"):
        raise ValueError("model must be a fitted GaussianBayes")
    if model.n_features_in_ != 1:
        raise ValueError(
            f"model must have one feature (the intensity); got {model.n_features_in_}"
        )


def _crossing(model: GaussianBayes, a: int, b: int, lo: float, hi: float) -> float:
    """``x`` in [lo, hi] where ``P(x|a)P(a) = P(x|b)P(b)``: a quadratic's root."""
    mu, var = model.theta_[:, 0], model.var_[:, 0]
    with np.errstate(divide="ignore"):
        log_prior = np.log(model.class_prior_)
    # log N(x; mu_k, var_k) + log P_k = -x²/2v + x mu/v - mu²/2v - log(2πv)/2 + log P
    coef = [
        -0.5 / var[a] + 0.5 / var[b],
        mu[a] / var[a] - mu[b] / var[b],
        -0.5 * mu[a] ** 2 / var[a]
        + 0.5 * mu[b] ** 2 / var[b]
        - 0.5 * np.log(var[a] / var[b])
        + log_prior[a]
        - log_prior[b],
    ]
    roots = np.roots(coef) if abs(coef[0]) > 1e-15 else np.roots(coef[1:])
    roots = roots[np.isreal(roots)].real
    inside = roots[(roots >= lo - 1e-9) & (roots <= hi + 1e-9)]
    return float(inside[0]) if inside.size else 0.5 * (lo + hi)


@declared
def decision_boundaries(
    model: GaussianBayes,
    value_range: tuple[float, float],
    *,
    resolution: Annotated[int, Param(16, 65536, 1, "steps", "search grid")] = 4096,
) -> list[tuple[float, str, str]]:
    """Where the most probable class changes along the intensity axis.

    Parameters
    ----------
    model : GaussianBayes
        Fitted on one feature (:func:`intensity_bayes`).
    value_range : (low, high)
        Intensities to search, in the image's units.
    resolution : int
        Steps of the search grid; each change found on it is then solved
        exactly (equal ``P(x|C_a) P(C_a)`` and ``P(x|C_b) P(C_b)``, a
        quadratic in ``x``). Two boundaries closer than one step are missed.

    Returns
    -------
    list of (x, left, right)
        Increasing ``x`` in the image's units; ``left`` is the most probable
        class just below ``x``, ``right`` just above.

    Examples
    --------
    >>> X = np.array([[0.0], [2.0], [10.0], [12.0]])
    >>> model = GaussianBayes().fit(X, ["a", "a", "b", "b"])
    >>> [(round(x, 2), a, b) for x, a, b in decision_boundaries(model, (0, 12))]
    [(6.0, 'a', 'b')]
    """
    _one_feature(model)
    lo, hi = (float(v) for v in value_range)
    if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
        raise ValueError(
            f"value_range must be (low, high), low < high; got {value_range}"
        )
    grid = np.linspace(lo, hi, resolution + 1)
    winner = np.argmax(model.log_posterior(grid[:, None]), axis=1)
    changes = np.nonzero(winner[1:] != winner[:-1])[0]
    names = model.classes_
    return [
        (
            _crossing(model, winner[i], winner[i + 1], grid[i], grid[i + 1]),
            str(names[winner[i]]),
            str(names[winner[i + 1]]),
        )
        for i in changes
    ]


def posterior_maps(model: GaussianBayes, image: np.ndarray) -> np.ndarray:
    """``P(C_k|x)`` of every pixel, one map per class.

    Parameters
    ----------
    model : GaussianBayes
        Fitted on one feature, the intensity.
    image : ([S,] M, N) ndarray
        Intensities in the units the model was fitted in.

    Returns
    -------
    (K, [S,] M, N) float32 ndarray
        Map ``k`` is the posterior of ``model.classes_[k]``; they sum to 1.

    Notes
    -----
    The intensity takes few distinct values in most images (256 in the
    template), so the posterior is computed once per distinct value.
    """
    _one_feature(model)
    image = np.asarray(image)
    if image.dtype.kind not in "uif" or not np.isfinite(image).all():
        raise ValueError("image must hold finite numbers")
    values, index = np.unique(image, return_inverse=True)
    table = model.posterior(values[:, None].astype(np.float64)).astype(np.float32)
    return np.moveaxis(table[index.reshape(image.shape)], -1, 0)
