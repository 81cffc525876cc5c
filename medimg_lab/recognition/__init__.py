r"""Stage 3, recognition: the class a patch belongs to.

A patch is described by a feature vector ``x``, and a classifier gives the
probability of each class ``C_k`` by Bayes' rule:

.. math:: P(C_k \mid x) = \frac{P(x \mid C_k)\, P(C_k)}{P(x)}.

- :mod:`.features`: intensity statistics, histogram, GLCM (Haralick), LBP,
  HOG and mask shape (mm², mm) of a stack of patches, with column names.
- :mod:`.classifiers`: :class:`GaussianBayes`, whose likelihood, prior,
  evidence and posterior are explicit, and :func:`make_classifier` for
  Bayes, random forest, calibrated SVM and logistic regression pipelines.
- :mod:`.evaluation`: spatially grouped cross-validation (no patch of a
  block on both sides of a split), confusion, precision and recall, ROC AUC
  with a bootstrap interval, and calibration.
- :mod:`.datasets`: patches of the sample studies by modality and region,
  brain-MRI crops with simulated lesions (truth known), a folder of class
  sub-folders, and MedMNIST ``.npz`` files.
- :mod:`.persistence`: models saved and loaded with skops and an explicit
  list of trusted types; pickles are refused.
- :mod:`.explain`: permutation feature importance and occlusion maps.
- :mod:`.tissue`: Bayes' rule on the intensity of the brain MRI's tissues,
  with decision boundaries and posterior maps that follow the priors.
- :mod:`.context`: tissues beyond intensity: the neighbourhood's mean as a
  second feature (histogram likelihoods), a partial-volume class and a
  mean-field Potts Markov random field.
- :mod:`.studies`: the features of a dataset, and the ROC of lesion
  detection as the contrast changes.
"""

from __future__ import annotations

from .classifiers import CLASSIFIERS, GaussianBayes, make_classifier
from .context import (
    TISSUES_PV,
    ContextBayes,
    classify_tissues,
    context_bayes,
    context_features,
    mrf_posterior,
    with_partial_volume,
)
from .datasets import (
    MEDMNIST_SPLITS,
    SAMPLE_CLASSES,
    PatchDataset,
    folder_dataset,
    lesion_slices,
    medmnist_npz,
    sample_patches,
)
from .evaluation import (
    CVResult,
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
from .explain import feature_importance, occlusion_map
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
from .persistence import load_model, save_model
from .studies import LESION_FEATURES, LesionROC, lesion_roc, patch_features
from .tissue import (
    TISSUES,
    brain_tissues,
    decision_boundaries,
    intensity_bayes,
    posterior_maps,
)

__all__ = [
    "CLASSIFIERS",
    "GLCM_PROPERTIES",
    "KINDS",
    "LESION_FEATURES",
    "MEDMNIST_SPLITS",
    "SAMPLE_CLASSES",
    "TISSUES",
    "TISSUES_PV",
    "CVResult",
    "ContextBayes",
    "GaussianBayes",
    "LesionROC",
    "PatchDataset",
    "brain_tissues",
    "calibration",
    "classify_tissues",
    "confusion",
    "context_bayes",
    "context_features",
    "cross_validate",
    "decision_boundaries",
    "evaluate",
    "extract",
    "feature_importance",
    "folder_dataset",
    "glcm_features",
    "group_splits",
    "histogram_features",
    "hog_features",
    "intensity_bayes",
    "intensity_features",
    "lbp_features",
    "lesion_roc",
    "lesion_slices",
    "load_model",
    "make_classifier",
    "medmnist_npz",
    "mrf_posterior",
    "occlusion_map",
    "patch_features",
    "posterior_maps",
    "precision_recall",
    "roc_auc_ci",
    "roc_curve",
    "sample_patches",
    "save_model",
    "shape_features",
    "spatial_groups",
    "with_partial_volume",
]
