r"""Stage 3, recognition: classifiers of feature vectors.

Bayes' rule gives the probability of class ``C_k`` for a feature vector
``x``:

.. math:: P(C_k \mid x) = \frac{P(x \mid C_k)\, P(C_k)}{P(x)},
   \qquad P(x) = \sum_j P(x \mid C_j)\, P(C_j).

:class:`GaussianBayes` computes each factor explicitly, with a likelihood
that is a product of one Gaussian per feature (naive Bayes).
:func:`make_classifier` builds it, a random forest, a calibrated SVM or a
logistic regression as a scikit-learn ``Pipeline`` that standardises the
features first.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from ..params import Param, Seed, declared

__all__ = ["CLASSIFIERS", "GaussianBayes", "make_classifier"]

#: The kinds :func:`make_classifier` builds.
CLASSIFIERS = ("bayes", "forest", "svm", "logistic")


def _check_features(X, name: str = "X") -> np.ndarray:
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[0] == 0 or X.dtype.kind not in "uifb":
        raise ValueError(
            f"{name} must be a (n_samples, n_features) array of numbers; got shape "
            f"{X.shape} and dtype {X.dtype}"
        )
    X = X.astype(np.float64)
    if not np.isfinite(X).all():
        raise ValueError(f"{name} holds NaN or infinite values; replace them first")
    return X


class GaussianBayes(ClassifierMixin, BaseEstimator):
    """Naive Bayes with Gaussian likelihoods and every factor exposed.

    The likelihood of class ``C_k`` is a product over the features,
    ``P(x|C_k) = Π_i N(x_i; μ_ki, σ²_ki)``, the prior ``P(C_k)`` is the
    class frequency of the training set (or ``priors``), and the posterior
    follows by Bayes' rule. The fitted model equals scikit-learn's
    ``GaussianNB``.

    Parameters
    ----------
    priors : (K,) array_like, optional
        Prior probabilities of the sorted classes, summing to 1; ``None``
        takes the class frequencies.
    var_smoothing : float
        Added to every variance, as a fraction of the largest feature
        variance, for stability (as in ``GaussianNB``).

    Attributes
    ----------
    classes_ : (K,) ndarray
        Sorted class labels.
    theta_, var_ : (K, m) ndarray
        Mean and variance of each feature per class, in the features' units
        (squared for the variance).
    class_prior_ : (K,) ndarray
        ``P(C_k)``.

    Notes
    -----
    Densities are per unit of feature; products of many small densities
    underflow, so prefer the ``log_`` methods for many features. The
    posterior is computed from the logs and does not underflow.

    Examples
    --------
    >>> X = np.array([[0.0], [0.2], [1.0], [1.2]])
    >>> model = GaussianBayes().fit(X, [0, 0, 1, 1])
    >>> model.posterior([[0.1]]).round(3)
    array([[1., 0.]])
    """

    def __init__(self, priors=None, var_smoothing: float = 1e-9):
        self.priors = priors
        self.var_smoothing = var_smoothing

    def fit(self, X, y) -> GaussianBayes:
        """Estimate ``μ_ki``, ``σ²_ki`` and ``P(C_k)`` from ``X (n, m)``, ``y (n,)``.

        Parameters
        ----------
        X : (n, m) array_like
            ``n`` cases of ``m`` finite features.
        y : (n,) array_like
            Their classes, at least 2 of them.

        Returns
        -------
        GaussianBayes
            Itself, fitted.
        """
        X = _check_features(X)
        y = np.asarray(y)
        if y.shape != (X.shape[0],):
            raise ValueError(
                f"y must have one label per row of X ({X.shape[0]}); got shape "
                f"{y.shape}"
            )
        if not self.var_smoothing >= 0:
            raise ValueError(f"var_smoothing must be >= 0; got {self.var_smoothing!r}")
        self.classes_, index = np.unique(y, return_inverse=True)
        K = len(self.classes_)
        if K < 2:
            raise ValueError(f"y must hold at least 2 classes; got {K}")
        self.n_features_in_ = X.shape[1]
        counts = np.bincount(index, minlength=K).astype(np.float64)
        self.theta_ = np.stack([X[index == k].mean(axis=0) for k in range(K)])
        epsilon = self.var_smoothing * X.var(axis=0).max()
        self.var_ = np.stack([X[index == k].var(axis=0) for k in range(K)]) + epsilon
        if np.any(self.var_ <= 0):
            raise ValueError(
                "a feature is constant within a class; use var_smoothing > 0"
            )
        if self.priors is None:
            self.class_prior_ = counts / counts.sum()
        else:
            self.class_prior_ = self._check_priors(self.priors)
        return self

    def _check_priors(self, priors) -> np.ndarray:
        K = len(self.classes_)
        values = np.asarray(priors, dtype=np.float64)
        if (
            values.shape != (K,)
            or not np.isfinite(values).all()
            or np.any(values < 0)
            or not np.isclose(values.sum(), 1)
        ):
            raise ValueError(
                f"priors must be {K} non-negative numbers summing to 1 (one "
                f"per class {self.classes_.tolist()}); got {priors!r}"
            )
        return values

    def with_priors(self, priors) -> GaussianBayes:
        """A copy with the same likelihoods and new priors ``P(C_k)``.

        Only the prior changes, so the posterior follows at once, without
        refitting: this is what a prior slider moves.

        Parameters
        ----------
        priors : (K,) array_like
            Non-negative, summing to 1, one per class of ``classes_``.

        Examples
        --------
        >>> X = np.array([[0.0], [0.2], [1.0], [1.2]])
        >>> model = GaussianBayes().fit(X, [0, 0, 1, 1])
        >>> model.predict([[0.58]]), model.with_priors([0.01, 0.99]).predict([[0.58]])
        (array([0]), array([1]))
        """
        if not hasattr(self, "classes_"):
            raise ValueError("this GaussianBayes is not fitted; call fit(X, y) first")
        values = self._check_priors(priors)
        copy = GaussianBayes(priors=values, var_smoothing=self.var_smoothing)
        for name in ("classes_", "n_features_in_", "theta_", "var_"):
            setattr(copy, name, getattr(self, name))
        copy.class_prior_ = values
        return copy

    def _x(self, X) -> np.ndarray:
        if not hasattr(self, "classes_"):
            raise ValueError("this GaussianBayes is not fitted; call fit(X, y) first")
        X = _check_features(X)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X must have {self.n_features_in_} features as in fit; got "
                f"{X.shape[1]}"
            )
        return X

    @property
    def prior(self) -> np.ndarray:
        """``P(C_k)``, shape ``(K,)``."""
        return self.class_prior_

    def log_likelihood(self, X) -> np.ndarray:
        """``log P(x|C_k) = Σ_i log N(x_i; μ_ki, σ²_ki)``, shape ``(n, K)``.

        Parameters
        ----------
        X : (n, m) array_like
            ``n`` cases of the ``m`` features the model was fitted on.
        """
        X = self._x(X)
        d2 = (X[:, None, :] - self.theta_[None]) ** 2 / self.var_[None]
        norm = np.log(2 * np.pi * self.var_).sum(axis=1)
        return -0.5 * (d2.sum(axis=2) + norm[None])

    def likelihood(self, X) -> np.ndarray:
        """``P(x|C_k)``, a density per unit of each feature, shape ``(n, K)``.

        Parameters
        ----------
        X : (n, m) array_like
            ``n`` cases of the ``m`` features the model was fitted on.
        """
        return np.exp(self.log_likelihood(X))

    def log_evidence(self, X) -> np.ndarray:
        """``log P(x) = log Σ_k P(x|C_k) P(C_k)``, shape ``(n,)``.

        Parameters
        ----------
        X : (n, m) array_like
            ``n`` cases of the ``m`` features the model was fitted on.
        """
        from scipy.special import logsumexp

        with np.errstate(divide="ignore"):
            log_prior = np.log(self.class_prior_)
        return logsumexp(self.log_likelihood(X) + log_prior, axis=1)

    def evidence(self, X) -> np.ndarray:
        """``P(x)``, shape ``(n,)``.

        Parameters
        ----------
        X : (n, m) array_like
            ``n`` cases of the ``m`` features the model was fitted on.
        """
        return np.exp(self.log_evidence(X))

    def log_posterior(self, X) -> np.ndarray:
        """``log P(C_k|x)``, shape ``(n, K)``.

        Parameters
        ----------
        X : (n, m) array_like
            ``n`` cases of the ``m`` features the model was fitted on.
        """
        from scipy.special import logsumexp

        with np.errstate(divide="ignore"):
            joint = self.log_likelihood(X) + np.log(self.class_prior_)
        return joint - logsumexp(joint, axis=1, keepdims=True)

    def posterior(self, X) -> np.ndarray:
        """``P(C_k|x) = P(x|C_k) P(C_k) / P(x)``, shape ``(n, K)``, rows sum to 1.

        Parameters
        ----------
        X : (n, m) array_like
            ``n`` cases of the ``m`` features the model was fitted on.
        """
        return np.exp(self.log_posterior(X))

    def predict_proba(self, X) -> np.ndarray:
        """The posterior :meth:`posterior`, for scikit-learn.

        Parameters
        ----------
        X : (n, m) array_like
            ``n`` cases of the ``m`` features the model was fitted on.
        """
        return self.posterior(X)

    def predict_log_proba(self, X) -> np.ndarray:
        """The log posterior :meth:`log_posterior`, for scikit-learn.

        Parameters
        ----------
        X : (n, m) array_like
            ``n`` cases of the ``m`` features the model was fitted on.
        """
        return self.log_posterior(X)

    def predict(self, X) -> np.ndarray:
        """The class of largest posterior, shape ``(n,)``.

        Parameters
        ----------
        X : (n, m) array_like
            ``n`` cases of the ``m`` features the model was fitted on.
        """
        return self.classes_[np.argmax(self.log_posterior(X), axis=1)]


@declared
def make_classifier(
    kind: Annotated[
        str, Param(choices=CLASSIFIERS, doc="classifier of the feature vectors")
    ] = "bayes",
    *,
    C: Annotated[
        float,
        Param(
            1e-4, 1e4, 0.1, "", "inverse regularisation (svm, logistic)", scale="log"
        ),
    ] = 1.0,
    n_estimators: Annotated[
        int, Param(1, 1000, 1, "trees", "trees of the random forest")
    ] = 200,
    seed: Seed = 0,
):
    """A scikit-learn ``Pipeline``: ``StandardScaler`` then a classifier.

    Parameters
    ----------
    kind : {"bayes", "forest", "svm", "logistic"}
        ``"bayes"``: :class:`GaussianBayes` (standardising changes its
        likelihoods by a constant factor but not its posterior);
        ``"forest"``: a random forest; ``"svm"``: an RBF SVM whose scores are
        mapped to probabilities by Platt scaling fitted on 3-fold
        cross-validated decisions (``CalibratedClassifierCV``);
        ``"logistic"``: multinomial logistic regression.
    C : float
        Inverse regularisation of the SVM and the logistic regression.
    n_estimators : int
        Trees of the forest.
    seed : int
        Random state of the forest and the SVM calibration.

    Returns
    -------
    sklearn.pipeline.Pipeline
        Unfitted; ``fit(X, y)`` then ``predict_proba(X)`` gives
        ``P(C_k|x)``.

    References
    ----------
    Platt J. Probabilistic outputs for support vector machines. In: Advances
    in Large Margin Classifiers, MIT Press 1999.

    Breiman L. Random forests. Mach Learn 2001. doi:10.1023/A:1010933404324
    """
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "bayes":
        model = GaussianBayes()
    elif kind == "forest":
        from sklearn.ensemble import RandomForestClassifier

        model = RandomForestClassifier(
            n_estimators=n_estimators, n_jobs=-1, random_state=seed
        )
    elif kind == "svm":
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.model_selection import StratifiedKFold
        from sklearn.svm import SVC

        model = CalibratedClassifierCV(
            SVC(C=C, kernel="rbf", gamma="scale"),
            method="sigmoid",
            cv=StratifiedKFold(3, shuffle=True, random_state=seed),
        )
    else:
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(C=C, max_iter=1000)
    return make_pipeline(StandardScaler(), model)
