"""The estimator subclasses training used before models became portable, kept only so old versions load.

Versions registered before then pickled these classes by reference as ``common.training.<name>``: unpickling
them imports that name's module and looks the class up, so the package :mod:`common.training` resolves every
class here by name (lazily: see its ``__getattr__``) and must keep doing so wherever this file moves. New versions never reference them: training fits scikit-learn's own
estimators (:func:`common.training.evaluation.fit_classifier`), whose pickles load anywhere MLflow runs. The behaviour
below is frozen as those versions were trained; nothing new should use it.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from joblib import parallel_config
from scipy.special import expit
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import AdaBoostClassifier, HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import RidgeClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.utils.class_weight import compute_sample_weight
from threadpoolctl import threadpool_limits

_OPENMP_THREADS = 1
_FOREST_JOBS = 2


class _BalancedFitMixin:
    def fit(self, X: Any, y: Any, sample_weight: np.ndarray | None = None, **kwargs: Any) -> Any:
        if sample_weight is None:
            sample_weight = compute_sample_weight("balanced", np.asarray(y))
        return super().fit(X, y, sample_weight=sample_weight, **kwargs)  # type: ignore[misc]


class ReproducibleRandomForestClassifier(RandomForestClassifier):
    def fit(self, X: Any, y: Any, sample_weight: np.ndarray | None = None) -> Any:
        with parallel_config(backend="threading", n_jobs=_FOREST_JOBS):
            return super().fit(X, y, sample_weight=sample_weight)


class BalancedAdaBoostClassifier(_BalancedFitMixin, AdaBoostClassifier):
    pass


class BalancedMLPClassifier(_BalancedFitMixin, MLPClassifier):
    def fit(self, X: Any, y: Any, sample_weight: np.ndarray | None = None, **kwargs: Any) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return super().fit(X, y, sample_weight=sample_weight, **kwargs)


class BalancedCalibratedClassifierCV(_BalancedFitMixin, CalibratedClassifierCV):
    pass


class SingleThreadHistGradientBoostingClassifier(HistGradientBoostingClassifier):
    def fit(self, X: Any, y: Any, sample_weight: np.ndarray | None = None, **kwargs: Any) -> Any:
        with threadpool_limits(limits=_OPENMP_THREADS, user_api="openmp"):
            return super().fit(X, y, sample_weight=sample_weight, **kwargs)

    def predict_proba(self, X: Any) -> np.ndarray:
        with threadpool_limits(limits=_OPENMP_THREADS, user_api="openmp"):
            return super().predict_proba(X)


class RidgeProbabilityClassifier(RidgeClassifier):
    """``predict_proba = sigmoid(decision_function)``."""

    def predict_proba(self, X: Any) -> np.ndarray:
        decision = np.asarray(self.decision_function(X), dtype="float64")
        if decision.ndim != 1:
            raise ValueError("RidgeProbabilityClassifier supports binary labels only")
        positive = expit(decision)
        return np.column_stack([1.0 - positive, positive])
