"""Stage 3, recognition: which class does a patch belong to?

A patch is described by a feature vector ``x``, and a classifier gives the
probability of each class ``C_k`` by Bayes' rule:

.. math:: P(C_k \\mid x) = \\frac{P(x \\mid C_k)\\, P(C_k)}{P(x)}.

- :mod:`.features`: intensity statistics, histogram, GLCM (Haralick), LBP,
  HOG and mask shape (mm², mm) of a stack of patches, with column names.
- :mod:`.classifiers`: :class:`GaussianBayes`, whose likelihood, prior,
  evidence and posterior are explicit, and :func:`make_classifier` for
  Bayes, random forest, calibrated SVM and logistic regression pipelines.
- :mod:`.evaluation`: spatially grouped cross-validation (no patch of a
  block on both sides of a split), confusion, precision and recall, ROC AUC
  with a bootstrap interval, and calibration.
"""

from __future__ import annotations

from .classifiers import CLASSIFIERS, GaussianBayes, make_classifier
from .evaluation import (
    calibration,
    confusion,
    cross_validate,
    group_splits,
    precision_recall,
    roc_auc_ci,
    spatial_groups,
)
from .features import (
    GLCM_PROPERTIES,
    KINDS,
    extract,
    glcm_features,
    histogram_features,
    hog_features,
    intensity_features,
    lbp_features,
    shape_features,
)

__all__ = [
    "CLASSIFIERS",
    "GLCM_PROPERTIES",
    "KINDS",
    "GaussianBayes",
    "calibration",
    "confusion",
    "cross_validate",
    "extract",
    "glcm_features",
    "group_splits",
    "histogram_features",
    "hog_features",
    "intensity_features",
    "lbp_features",
    "make_classifier",
    "precision_recall",
    "roc_auc_ci",
    "shape_features",
    "spatial_groups",
]
