"""Whole studies on real data: modality recognition and lesion detectability."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from medimg_lab.recognition.classifiers import make_classifier
from medimg_lab.recognition.datasets import lesion_slices, sample_patches
from medimg_lab.recognition.evaluation import evaluate
from medimg_lab.recognition.studies import lesion_roc, patch_features


@pytest.fixture(scope="module")
def patches():
    return sample_patches(size=32, per_class=200, block=64, seed=0)


def test_best_classifier_recognises_modality_and_region(patches):
    """Block-grouped 5-fold accuracy of the best classifier is at least 0.90."""
    X, _ = patch_features(patches, kinds=("intensity", "lbp"))
    accuracy = {}
    for kind in ("bayes", "forest", "svm"):
        result = evaluate(
            make_classifier(kind),
            X,
            patches.labels,
            patches.groups,
            class_names=patches.class_names,
            folds=5,
        )
        accuracy[kind] = result.accuracy
        print(f"{kind}: accuracy {result.accuracy:.3f} {result.accuracy_ci}")
    best = max(accuracy, key=accuracy.get)
    assert accuracy[best] >= 0.90, accuracy


def test_lesion_auc_rises_with_contrast():
    results = [lesion_roc(c, n=200) for c in (0, 10, 20, 40)]
    aucs = [r.auc for r in results]
    print("AUC by contrast 0, 10, 20, 40:", np.round(aucs, 3))
    assert all(a < b for a, b in itertools.pairwise(aucs))
    low, high = results[0].auc_ci
    assert low < 0.5 < high  # no lesion, no detection
    assert results[-1].auc_ci[0] > 0.9


def test_lesion_roc_is_seeded_and_its_curve_has_its_area():
    a, b = lesion_roc(20, n=60, seed=3), lesion_roc(20, n=60, seed=3)
    assert a.auc == b.auc
    np.testing.assert_array_equal(a.tpr, b.tpr)
    assert np.trapezoid(a.tpr, a.fpr) == pytest.approx(a.auc)


def test_patch_features_default_range_uses_no_label():
    ds = lesion_slices(n=20, size=32, contrast=30)
    X, names = patch_features(ds, kinds=("histogram",))
    flipped = ds.__class__(**{**ds.__dict__, "labels": 1 - ds.labels})
    np.testing.assert_array_equal(X, patch_features(flipped, kinds=("histogram",))[0])
    assert X.shape == (20, len(names))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"classifier": "knn"}, "^lesion_roc: classifier must be one of 'bayes', "),
        ({"kinds": ("shape",)}, "kinds must be among"),
        ({"n": 5}, r"^lesion_roc: n must lie in \[20, 2000\] crops; got 5$"),
        ({"size": 130}, r"^lesion_roc: size must lie in \[16, 128\] px; got 130$"),
    ],
)
def test_lesion_roc_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        lesion_roc(10, **kwargs)


def test_patch_features_needs_a_dataset():
    with pytest.raises(TypeError, match="PatchDataset"):
        patch_features(np.zeros((2, 8, 8)))
