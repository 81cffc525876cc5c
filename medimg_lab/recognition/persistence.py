"""Stage 3, recognition: save and load trained classifiers without pickle.

Models are stored with skops, whose format rebuilds objects from their
state and never runs code found in the file. Loading first lists the types
the file asks for (``skops.io.get_untrusted_types``) and refuses the file
with :class:`~medimg_lab.errors.UntrustedModelError` when
any of them is outside :data:`TRUSTED_TYPES`, before an object is built.

The trusted list covers the four pipelines of
:func:`~medimg_lab.recognition.classifiers.make_classifier`:

============  ================================================================
``bayes``     :class:`~medimg_lab.recognition.classifiers.GaussianBayes`
``forest``    ``sklearn.tree._tree.Tree`` (the trees of the forest)
``svm``       ``CalibratedClassifierCV`` internals (``_CalibratedClassifier``,
              ``_SigmoidCalibration``) and its ``StratifiedKFold``
``logistic``  nothing beyond skops' defaults
============  ================================================================

Scikit-learn's scalers, pipelines and estimators and numpy arrays are
trusted by skops itself.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import NotFoundError, UntrustedModelError
from ..io._atomic import atomic_write
from ..io.models import load_trusted
from ..segmentation.classifier import TRUSTED_TYPES as _PIXEL_TRUSTED_TYPES

__all__ = ["TRUSTED_TYPES", "UntrustedModelError", "load_model", "save_model"]

#: Types a saved model may hold beyond those skops trusts by default;
#: :func:`load_model` refuses any other. Those of the pixel classifier
#: (calibrated SVM, trees) plus the SVM's cross-validation splitter and
#: :class:`~medimg_lab.recognition.classifiers.GaussianBayes`.
TRUSTED_TYPES = [
    *_PIXEL_TRUSTED_TYPES,
    "sklearn.model_selection._split.StratifiedKFold",
    "medimg_lab.recognition.classifiers.GaussianBayes",
]

_FORMAT = "medimg_lab.recognition.model/1"

#: First bytes of a pickle (protocols 2 to 5) and of a zip (skops) file.
_PICKLE_MAGIC = b"\x80"
_ZIP_MAGIC = b"PK"


def _names(values, name: str, expected: int | None, what: str) -> list[str] | None:
    if values is None:
        return None
    if isinstance(values, str):
        raise TypeError(
            f"{name} must be a sequence of strings; got the string {values!r}"
        )
    values = list(values)
    if not all(isinstance(v, str) for v in values):
        raise TypeError(f"{name} must hold strings; got {values!r}")
    if expected is not None and len(values) != expected:
        raise ValueError(
            f"{name} must name the model's {expected} {what}; got {len(values)} names"
        )
    return values


def save_model(
    model,
    path: str | os.PathLike,
    *,
    feature_names=None,
    class_names=None,
    overwrite: bool = False,
) -> Path:
    """Save a trained classifier with skops (no pickle), atomically.

    Parameters
    ----------
    model : fitted scikit-learn estimator
        A pipeline from :func:`~medimg_lab.recognition.classifiers.make_classifier`
        after ``fit``, or any estimator made only of :data:`TRUSTED_TYPES`
        and the types skops trusts.
    path : path-like
        The file to write, conventionally ``*.skops``.
    feature_names : sequence of str, optional
        One name per feature column (the ``names`` of
        :func:`~medimg_lab.recognition.features.extract`).
    class_names : sequence of str, optional
        One readable name per class of ``model.classes_``.
    overwrite : bool
        Replace an existing file; by default an existing file is an error.

    Returns
    -------
    Path
        The written path.

    Raises
    ------
    OutputExistsError
        If ``path`` exists and ``overwrite`` is false.
    ValueError
        If the model is not fitted, the names do not match it, or it holds
        types that :func:`load_model` would refuse.
    """
    import skops.io as sio

    classes = getattr(model, "classes_", None)
    if classes is None or not hasattr(model, "predict_proba"):
        raise ValueError(
            f"model must be a fitted classifier with classes_ and predict_proba; "
            f"got {type(model).__name__} (call fit(X, y) first)"
        )
    n_features = getattr(model, "n_features_in_", None)
    feature_names = _names(feature_names, "feature_names", n_features, "features")
    class_names = _names(class_names, "class_names", len(classes), "classes")
    state = {
        "format": _FORMAT,
        "model": model,
        "feature_names": feature_names,
        "class_names": class_names,
        "classes": np.asarray(classes),
    }
    data = sio.dumps(state)
    unknown = sorted(set(sio.get_untrusted_types(data=data)) - set(TRUSTED_TYPES))
    if unknown:
        raise ValueError(
            f"model holds types that load_model does not trust: "
            f"{', '.join(unknown)}; save a pipeline from make_classifier"
        )
    return atomic_write(path, lambda tmp: tmp.write_bytes(data), overwrite=overwrite)


def load_model(path: str | os.PathLike) -> tuple[object, dict]:
    """Load a classifier saved by :func:`save_model`, refusing untrusted types.

    Parameters
    ----------
    path : path-like
        A skops file written by :func:`save_model`.

    Returns
    -------
    model : scikit-learn estimator
        The fitted classifier.
    info : dict
        ``feature_names`` and ``class_names`` (lists of str or ``None``) and
        ``classes`` (the model's ``classes_``).

    Raises
    ------
    NotFoundError
        If ``path`` does not exist.
    UntrustedModelError
        If the file is a pickle, is not a skops file, holds types outside
        :data:`TRUSTED_TYPES` (the message lists them), or was not written
        by :func:`save_model`.
    """
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(
            str(path), "does not exist.", "Check the path of the saved model."
        )
    with open(path, "rb") as fh:
        head = fh.read(2)
    if head.startswith(_PICKLE_MAGIC):
        raise UntrustedModelError(
            str(path),
            "is a pickle file; loading a pickle can run arbitrary code, so "
            "medimg-lab does not open it.",
            "Re-save the model with medimg_lab.recognition.persistence.save_model "
            "(skops) where it was trained, and load that file.",
        )
    if head != _ZIP_MAGIC:
        raise UntrustedModelError(
            str(path),
            "is not a skops file saved by save_model.",
            "Save the model with save_model and load that file.",
        )
    state = load_trusted(
        path, trusted=TRUSTED_TYPES, format=_FORMAT, saved_by="save_model"
    )
    info = {
        "feature_names": state["feature_names"],
        "class_names": state["class_names"],
        "classes": state["classes"],
    }
    return state["model"], info
