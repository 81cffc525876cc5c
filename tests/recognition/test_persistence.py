"""Saving and loading classifiers with skops and a trusted-type list."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from medimg_lab.errors import MedImgError, NotFoundError, OutputExistsError
from medimg_lab.recognition.classifiers import CLASSIFIERS, make_classifier
from medimg_lab.recognition.persistence import (
    UntrustedModelError,
    load_model,
    save_model,
)


def _data(n=90, m=3, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    X = rng.normal(0, 1, (n, m)) + y[:, None]
    return X.astype(np.float32), y


@pytest.mark.parametrize("kind", CLASSIFIERS)
def test_round_trip_gives_identical_probabilities(tmp_path, kind):
    X, y = _data()
    model = make_classifier(kind, n_estimators=10).fit(X, y)
    path = save_model(
        model,
        tmp_path / "model.skops",
        feature_names=["a", "b", "c"],
        class_names=["air", "fat", "bone"],
    )
    loaded, info = load_model(path)
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    assert info["feature_names"] == ["a", "b", "c"]
    assert info["class_names"] == ["air", "fat", "bone"]
    np.testing.assert_array_equal(info["classes"], model.classes_)


def test_names_are_optional(tmp_path):
    X, y = _data()
    model = make_classifier("logistic").fit(X, y)
    _, info = load_model(save_model(model, tmp_path / "m.skops"))
    assert info["feature_names"] is None and info["class_names"] is None


def test_untrusted_type_is_refused_and_named(tmp_path):
    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    path = tmp_path / "evil.skops"
    sio.dump({"format": "x", "model": FunctionTransformer(func=os.system)}, path)
    with pytest.raises(
        UntrustedModelError, match=r"not trusted: posix\.system"
    ) as info:
        load_model(path)
    assert isinstance(info.value, MedImgError)
    assert "get_untrusted_types" in str(info.value)


def test_skops_file_not_from_save_model_is_refused(tmp_path):
    import skops.io as sio

    path = tmp_path / "other.skops"
    sio.dump({"format": "x"}, path)
    with pytest.raises(UntrustedModelError, match="not a model saved by save_model"):
        load_model(path)


def test_pickle_file_is_refused(tmp_path):
    X, y = _data()
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(make_classifier("logistic").fit(X, y)))
    with pytest.raises(UntrustedModelError, match="is a pickle file"):
        load_model(path)


def test_other_files_are_refused(tmp_path):
    (tmp_path / "junk.skops").write_bytes(b"not a zip")
    with pytest.raises(UntrustedModelError, match="is not a skops file"):
        load_model(tmp_path / "junk.skops")
    (tmp_path / "bad.skops").write_bytes(b"PK broken zip")
    with pytest.raises(UntrustedModelError, match="is not a skops file"):
        load_model(tmp_path / "bad.skops")
    with pytest.raises(NotFoundError):
        load_model(tmp_path / "missing.skops")


def test_existing_file_is_not_overwritten_without_overwrite(tmp_path):
    X, y = _data()
    first = make_classifier("logistic").fit(X, y)
    second = make_classifier("bayes").fit(X, y)
    path = save_model(first, tmp_path / "m.skops")
    before = path.read_bytes()
    with pytest.raises(OutputExistsError, match="overwrite=True"):
        save_model(second, path)
    assert path.read_bytes() == before
    save_model(second, path, overwrite=True)
    loaded, _ = load_model(path)
    np.testing.assert_array_equal(loaded.predict_proba(X), second.predict_proba(X))
    assert [p.name for p in tmp_path.iterdir()] == ["m.skops"]  # no temp file left


def test_save_errors(tmp_path):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    X, y = _data()
    model = make_classifier("logistic").fit(X, y)
    with pytest.raises(ValueError, match="fitted classifier"):
        save_model(make_classifier("logistic"), tmp_path / "a.skops")
    with pytest.raises(ValueError, match="3 features; got 2 names"):
        save_model(model, tmp_path / "a.skops", feature_names=["a", "b"])
    with pytest.raises(ValueError, match="3 classes; got 1 names"):
        save_model(model, tmp_path / "a.skops", class_names=["a"])
    with pytest.raises(TypeError, match="sequence of strings"):
        save_model(model, tmp_path / "a.skops", class_names="abc")
    evil = make_pipeline(FunctionTransformer(), LogisticRegression()).fit(X, y)
    evil[0].func = os.system
    with pytest.raises(ValueError, match=r"does not trust: posix\.system"):
        save_model(evil, tmp_path / "a.skops")
    assert not (tmp_path / "a.skops").exists()
