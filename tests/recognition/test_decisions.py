"""medimg_lab.recognition.decisions: priors a person sets, and what they
decide, without the Bayes explorer's UI."""

from __future__ import annotations

import numpy as np
import pytest

from medimg_lab import recognition as rec
from medimg_lab.recognition.decisions import (
    PRIOR_MIN,
    class_volumes_ml,
    label_volumes_ml,
    rebalance_priors,
    share_priors,
    winning_labels,
)


@pytest.fixture(scope="module")
def tissues():
    image, labels = rec.brain_tissues()
    return image, labels, rec.intensity_bayes(image.array, labels)


def test_the_others_share_the_rest_in_their_proportions():
    rng = np.random.default_rng(5)
    for _ in range(20):
        raw = rng.uniform(0.05, 1, 4)
        current = dict(zip("abcd", raw / raw.sum(), strict=True))
        value = float(rng.uniform(0.01, 0.9))
        out = rebalance_priors(current, {"b": value})
        assert list(out) == list("abcd")
        assert sum(out.values()) == pytest.approx(1)
        assert out["b"] == pytest.approx(value)
        assert out["a"] / out["c"] == pytest.approx(current["a"] / current["c"])
        assert out["d"] / out["c"] == pytest.approx(current["d"] / current["c"])


def test_no_class_is_ruled_out_and_all_zero_others_share_equally():
    out = rebalance_priors({"a": 0.5, "b": 0.5, "c": 0.0}, {"a": 1 - 2 * PRIOR_MIN})
    assert min(out.values()) >= PRIOR_MIN * 0.999
    out = rebalance_priors({"a": 1.0, "b": 0.0, "c": 0.0}, {"a": 0.4})
    assert out["b"] == pytest.approx(out["c"]) == pytest.approx(0.3)


@pytest.mark.parametrize(
    ("given", "match"),
    [
        ({"x": 0.2}, "unknown classes"),
        ({"a": 0.0}, "at least 0.001"),
        ({"a": 0.7, "b": 0.6}, "sum to at most 1"),
        ({"a": float("nan")}, "at least 0.001"),
        ({"a": 0.2, "b": 0.2, "c": 0.2}, "every class must sum to 1"),
    ],
)
def test_hostile_priors_are_refused_with_a_sentence(given, match):
    with pytest.raises(ValueError, match=match):
        rebalance_priors({"a": 0.5, "b": 0.3, "c": 0.2}, given)


def test_share_priors_keeps_the_extra_class():
    fitted = np.array([0.2, 0.3, 0.4, 0.1])
    out = share_priors(
        fitted, ["CSF", "GM", "WM", "PV"], {"CSF": 0.5, "GM": 0.25, "WM": 0.25}
    )
    assert out.sum() == pytest.approx(1)
    assert out[3] == pytest.approx(0.1)
    np.testing.assert_allclose(out[:3], np.array([0.5, 0.25, 0.25]) * 0.9)
    with pytest.raises(ValueError, match="one prior per class"):
        share_priors(fitted[:3], ["CSF", "GM", "WM", "PV"], {})


def test_volumes_and_labels_of_the_brain_template(tissues):
    image, labels, model = tissues
    chosen = labels > 0
    values, counts = np.unique(image.array[chosen], return_counts=True)
    won = class_volumes_ml(model, values, counts, image.voxel_volume_mm3)
    truth = label_volumes_ml(labels, rec.TISSUES, image.voxel_volume_mm3)
    assert list(won) == [str(c) for c in model.classes_]
    # every labelled voxel is won by one class: the totals agree
    assert sum(won.values()) == pytest.approx(sum(truth.values()))
    for name in truth:  # and by intensity alone each class is near its map
        assert won[name] == pytest.approx(truth[name], rel=0.35)
    middle = image.array.shape[0] // 2
    posteriors = rec.posterior_maps(model, image.array[middle])
    mask = image.array[middle] > image.array.min()
    winner = winning_labels(posteriors, model.classes_, rec.TISSUES, mask)
    assert winner.dtype == np.uint8 and (winner[~mask] == 0).all()
    by_hand = np.argmax(posteriors, axis=0)
    names = [str(c) for c in model.classes_]
    np.testing.assert_array_equal(
        winner[mask], [list(rec.TISSUES).index(names[k]) + 1 for k in by_hand[mask]]
    )
    with pytest.raises(ValueError, match="not among the names"):
        winning_labels(posteriors, model.classes_, ["CSF"])
