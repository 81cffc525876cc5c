"""RecognitionPanel without a browser: controls give the pure functions' results."""

from __future__ import annotations

import ipywidgets as ipw
import numpy as np
import pytest
import traitlets
from medimg_lab.widgets.controls import control_for
from medimg_lab.widgets.recognition import (
    BayesExplorer,
    ClassifierExplorer,
    LesionExplorer,
    RecognitionPanel,
)

from medimg_lab import recognition as rec


@pytest.fixture(scope="module")
def bayes():
    return BayesExplorer()


@pytest.fixture(scope="module")
def patches():
    return rec.sample_patches(size=16, per_class=40, block=32, seed=0)


def test_a_prior_slider_keeps_its_value_and_the_others_share_the_rest(bayes):
    before = bayes.priors
    bayes._controls["CSF"].value = 0.2  # as a slider move
    after = bayes.priors
    assert after["CSF"] == pytest.approx(0.2)
    assert sum(after.values()) == pytest.approx(1)
    ratio = before["GM"] / before["WM"]
    assert after["GM"] / after["WM"] == pytest.approx(ratio, rel=1e-6)
    assert bayes._controls["GM"].value == pytest.approx(after["GM"])
    bayes.reset_priors()
    assert bayes.priors == pytest.approx(before)


def test_posterior_maps_and_boundaries_follow_the_priors(bayes):
    image, labels = rec.brain_tissues()
    model = rec.intensity_bayes(image.array, labels)
    (csf_gm, *_), *_ = bayes.boundaries
    bayes.set_priors(CSF=0.3)
    moved = model.with_priors(list(bayes.priors.values()))
    np.testing.assert_allclose(
        bayes.posteriors, rec.posterior_maps(moved, image.array[bayes.slice_index])
    )
    assert bayes.boundaries == rec.decision_boundaries(moved, (0.0, 255.0))
    (csf_gm_moved, *_), *_ = bayes.boundaries
    assert csf_gm_moved > csf_gm  # a likelier CSF claims brighter voxels
    assert f"{csf_gm_moved:.1f} a.u." in bayes._readout.value
    bayes.reset_priors()


def test_volumes_are_the_labelled_voxels_each_class_wins(bayes):
    image, labels = rec.brain_tissues()
    chosen = labels > 0
    winner = bayes.model.predict(image.array[chosen][:, None])
    wm_ml = np.sum(winner == "WM") * image.voxel_volume_mm3 / 1000
    assert bayes.volumes_ml["WM"] == pytest.approx(wm_ml)
    assert sum(bayes.volumes_ml.values()) == pytest.approx(chosen.sum() / 1000)


def test_slice_slider_and_bad_priors(bayes):
    bayes._slice_slider.value = 60
    assert bayes.slice_index == 60
    first = bayes._maps[0].value
    bayes.slice_index = 120
    assert bayes._maps[0].value != first
    with pytest.raises(ValueError, match="unknown classes"):
        bayes.set_priors(bone=0.5)
    with pytest.raises(ValueError, match="sum to 1"):
        bayes.set_priors(CSF=0.2, GM=0.2, WM=0.2)


def test_classifier_scores_are_those_of_evaluate(patches):
    panel = ClassifierExplorer(patches, kinds=("intensity",), classifier="bayes")
    X, _ = rec.patch_features(patches, kinds=("intensity",))
    expected = rec.evaluate(
        rec.make_classifier("bayes"),
        X,
        patches.labels,
        patches.groups,
        class_names=patches.class_names,
    )
    np.testing.assert_allclose(panel.result.proba, expected.proba)
    assert f"{expected.accuracy:.3f}" in panel._scores.value
    panel._controls["kind"].value = "logistic"  # as the dropdown
    panel._controls["C"].value = 10.0
    X2, _ = rec.patch_features(patches, kinds=("intensity",))
    logistic = rec.cross_validate(
        rec.make_classifier("logistic", C=10.0), X2, patches.labels, patches.groups
    )
    np.testing.assert_allclose(panel.result.proba, logistic)


def test_feature_boxes_cases_and_messages(patches):
    panel = ClassifierExplorer(patches, kinds=("intensity",), classifier="bayes")
    first = panel.result.proba.copy()
    panel._kind_boxes["lbp"].value = True  # as a tick
    assert panel.kinds == ("intensity", "lbp")
    assert not np.allclose(panel.result.proba, first)
    panel.case = 100
    assert list(panel.case_posterior.values()) == pytest.approx(panel.result.proba[100])
    assert patches.class_names[patches.labels[100]] in panel._case_text.value
    panel.set_features(["lbp"])
    panel._kind_boxes["lbp"].value = False  # nothing ticked
    assert panel.result is None
    assert "at least one feature" in panel._message.value
    with pytest.raises(ValueError, match="kinds must be some of"):
        panel.set_features(["colour"])
    with pytest.raises(ValueError, match="n_estimators"):
        panel.set_classifier("forest", n_estimators=0)


def test_a_class_in_one_group_shows_a_message_not_a_traceback(patches):
    few = rec.PatchDataset(
        **{
            **patches.__dict__,
            "groups": patches.labels.copy(),  # one group per class
        }
    )
    panel = ClassifierExplorer(few, kinds=("intensity",), classifier="bayes")
    assert panel.result is None
    assert "lie in a single group each" in panel._message.value
    assert "Traceback" not in panel._message.value


def test_contrast_slider_redraws_the_roc_of_lesion_roc():
    panel = LesionExplorer(contrast=10.0)
    assert panel.result.auc == pytest.approx(rec.lesion_roc(10.0).auc)
    first = panel._chart_view.widget.value
    panel._controls["contrast"].value = 40.0  # as a slider release
    assert panel.result.auc == pytest.approx(rec.lesion_roc(40.0).auc)
    assert panel.result.auc > panel.history[0].auc
    assert panel._chart_view.widget.value != first
    assert "AUC" in panel._readout.value and "a.u." in panel._readout.value
    for c in (20.0, 30.0, 50.0, 60.0):
        panel.set_params(contrast=c)
    assert len(panel.history) == 4  # the current one and 3 kept
    panel.set_params(contrast=20.0)  # back to a cached study: same object
    assert panel.history[-1].contrast == 20.0 and len(panel.history) == 4
    with pytest.raises(ValueError, match="unknown parameters"):
        panel.set_params(n=10)


def test_regularisation_gets_a_log_slider():
    from medimg_lab.params import parameters

    control = control_for(parameters(rec.make_classifier)["C"])
    assert isinstance(control, ipw.FloatLogSlider)
    assert (control.min, control.max, control.value) == (-4, 4, 1.0)


def test_panel_holds_the_three_explorers_in_tabs():
    panel = RecognitionPanel()
    (tabs,) = panel.children
    assert tabs.children == (panel.bayes, panel.classifier, panel.lesion)
    assert panel.classifier.result.accuracy > 0.9


def test_the_spatial_classes_follow_the_prior_sliders_and_beta(bayes):
    """Issue 15: beside intensity alone, the spatial model; priors stay live."""
    from medimg_lab.params import parameters

    image, labels = rec.brain_tissues()
    brain = image.array > 0
    features = rec.context_features(image.array, spacing=image.spacing)
    train = rec.with_partial_volume(labels, brain)
    model = rec.context_bayes(features, train, rec.TISSUES_PV, value_range=(0, 255))
    kw = {"spacing": image.spacing, "mask": brain, "slice_index": bayes.slice_index}
    np.testing.assert_array_equal(
        bayes.context_labels, rec.classify_tissues(features, model, **kw)
    )
    first_png = bayes._classes[1].value
    before = bayes.context_labels.copy()
    bayes._controls["CSF"].value = 0.3  # as a slider move
    after = bayes.context_labels
    assert np.sum(after == 1) > np.sum(before == 1)  # a likelier CSF claims voxels
    assert bayes._classes[1].value != first_png
    p = bayes.context_model.prior
    assert p[0] / (p[0] + p[1] + p[2]) == pytest.approx(0.3)
    assert p[3] == pytest.approx(model.fitted_prior_[3])  # PV keeps its own
    assert not np.array_equal(bayes.intensity_labels, after)
    # the beta slider reads its range from the one declaration
    declared = parameters(rec.classify_tissues)["beta"]
    spec = declared.param
    assert (bayes._beta.min, bayes._beta.max, bayes._beta.step) == (
        spec.min,
        spec.max,
        spec.step,
    )
    bayes._beta.value = 0.0
    assert bayes.beta == 0.0
    np.testing.assert_array_equal(
        bayes.context_labels,
        rec.classify_tissues(features, bayes.context_model, **{**kw, "beta": 0.0}),
    )
    with pytest.raises(traitlets.TraitError, match="beta"):
        bayes.beta = 5.0
    bayes.beta = declared.default
    bayes.reset_priors()
