"""Stage 3, recognition: whole studies, from patches to scores.

- :func:`patch_features`: the feature matrix of a :class:`~.datasets.PatchDataset`
  over one fixed intensity range.
- :func:`lesion_roc`: how detectable is a simulated lesion of a given
  contrast? Crops with and without one, a classifier under grouped
  cross-validation, and the ROC curve with its AUC and interval.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import numpy as np

from ..params import Param, Seed, declared
from .classifiers import CLASSIFIERS, make_classifier
from .datasets import PatchDataset, lesion_slices
from .evaluation import Folds, roc_auc_ci, roc_curve
from .features import KINDS, extract

__all__ = ["LESION_FEATURES", "LesionROC", "lesion_roc", "patch_features"]

#: Features of :func:`lesion_roc` by default: a lesion shifts the intensity
#: statistics and the histogram of its crop.
LESION_FEATURES = ("intensity", "histogram")

#: Intensity range of the brain MRI sample, in its units.
_BRAIN_RANGE = (0.0, 255.0)


def patch_features(
    dataset: PatchDataset,
    *,
    kinds: tuple[str, ...] = ("intensity", "lbp"),
    value_range: tuple[float, float] | None = None,
) -> tuple[np.ndarray, list[str]]:
    """Features of every patch of ``dataset`` (:func:`.features.extract`).

    Parameters
    ----------
    dataset : PatchDataset
    kinds : tuple of str
        Kinds of :data:`.features.KINDS`; ``shape`` needs the dataset's
        masks.
    value_range : (low, high), optional
        Range of the histogram and GLCM features in the patches' units;
        default the 0.5th to 99.5th percentile of all patches. The default
        uses no label, so it leaks nothing between folds.

    Returns
    -------
    X : (n, m) float32 ndarray
    names : list of str
    """
    if not isinstance(dataset, PatchDataset):
        raise TypeError(f"dataset must be a PatchDataset; got {type(dataset).__name__}")
    if value_range is None:
        low, high = np.percentile(dataset.patches[:, ::2, ::2], [0.5, 99.5])
        value_range = (float(low), float(high) if high > low else float(low) + 1.0)
    spacing = tuple(dataset.spacing[0]) if len(dataset) else None
    return extract(
        dataset.patches,
        kinds=kinds,
        value_range=value_range,
        masks=dataset.masks,
        spacing=spacing,
    )


@dataclass(frozen=True, eq=False)
class LesionROC:
    """Result of :func:`lesion_roc`.

    Attributes
    ----------
    contrast : float
        Lesion minus tissue, in the image's units.
    radius_mm : float
        Lesion radius in mm.
    fpr, tpr : (t,) float64 ndarray
        The ROC curve of the out-of-fold ``P(lesion|x)``.
    auc : float
        Area under it.
    auc_ci : (float, float)
        Bootstrap interval of the AUC.
    n : int
        Crops, half with a lesion.
    """

    contrast: float
    radius_mm: float
    fpr: np.ndarray
    tpr: np.ndarray
    auc: float
    auc_ci: tuple[float, float]
    n: int


@declared
def lesion_roc(
    contrast: Annotated[
        float, Param(-100, 100, 1, "a.u.", "lesion minus tissue")
    ] = 20.0,
    *,
    n: Annotated[int, Param(20, 2000, 10, "crops", "crops, half with a lesion")] = 200,
    size: Annotated[int, Param(16, 128, 2, "px", "side of a crop")] = 32,
    radius_mm: Annotated[float, Param(1, 10, 0.5, "mm", "lesion radius")] = 4.0,
    classifier: Annotated[
        str, Param(choices=CLASSIFIERS, doc="classifier of the crops")
    ] = "logistic",
    kinds: tuple[str, ...] = LESION_FEATURES,
    folds: Folds = 5,
    seed: Seed = 0,
) -> LesionROC:
    """Detectability of a simulated brain lesion: the ROC of a classifier.

    :func:`.datasets.lesion_slices` cuts ``n`` crops of the brain MRI, half
    with a lesion of ``contrast`` and ``radius_mm``; their features over the
    sample's range 0-255 go to ``classifier``, cross-validated with slabs of
    slices as groups, and the out-of-fold ``P(lesion|x)`` scores the ROC.
    The crops, the folds and the bootstrap depend on ``seed`` only, so
    studies of several contrasts differ by the contrast alone.

    Parameters
    ----------
    contrast : float
        Lesion minus tissue in the image's units (scanner units, 0-255);
        negative for a dark lesion; 0 gives an AUC near 0.5.
    n : int
        Number of crops, half of them with a lesion, in [20, 2000] (as in
        :func:`.datasets.lesion_slices`, which allows more).
    size : int
        Side of the square crops in pixels, in [16, 128].
    radius_mm : float
        Radius of the lesion in mm, in [1, 10].
    seed : int
        Seed of the crops, the classifier, the folds and the bootstrap.
    classifier : str
        One of :data:`.classifiers.CLASSIFIERS`.
    kinds : tuple of str
        Feature kinds (:data:`.features.KINDS`, not ``shape``).
    folds : int
        Cross-validation folds.

    Returns
    -------
    LesionROC

    Examples
    --------
    >>> faint, clear = lesion_roc(5, n=60), lesion_roc(60, n=60)
    >>> faint.auc < clear.auc
    True
    """
    from .evaluation import cross_validate

    kinds = tuple(kinds)
    if "shape" in kinds or not set(kinds) <= set(KINDS):
        raise ValueError(
            f"kinds must be among {', '.join(k for k in KINDS if k != 'shape')}; "
            f"got {kinds!r}"
        )
    dataset = lesion_slices(
        n=n, size=size, contrast=contrast, radius_mm=radius_mm, seed=seed
    )
    X, _ = patch_features(dataset, kinds=kinds, value_range=_BRAIN_RANGE)
    proba = cross_validate(
        make_classifier(classifier, seed=seed),
        X,
        dataset.labels,
        dataset.groups,
        folds=folds,
        seed=seed,
    )
    auc, low, high = roc_auc_ci(dataset.labels, proba[:, 1], seed=seed)
    fpr, tpr, _ = roc_curve(dataset.labels, proba[:, 1])
    return LesionROC(
        contrast=float(contrast),
        radius_mm=float(radius_mm),
        fpr=fpr,
        tpr=tpr,
        auc=auc,
        auc_ci=(low, high),
        n=n,
    )
