"""P(trend) from a loaded model: the portable way, and the fastest exact way for serving.

:func:`positive_probability` works on any sklearn-style classifier (label 1's column of ``predict_proba``,
found through ``classes_``) and on a pyfunc whose ``predict`` returns those columns.

:func:`compile_scorer` is what the predictor serves with. A single-row ``predict_proba`` spends most of its
time in input handling (a DataFrame, its validation, a 2-column result built to be sliced), not in the
trees. For the boosters whose sklearn wrapper is a thin shell over a booster (LightGBM, XGBoost) it calls
the booster directly on a float64 array; for everything else it calls ``predict_proba`` with what the
model was fitted on (a DataFrame with the feature names, so sklearn's name check passes). A compiled
scorer is only ever served after it reproduced, to 1e-9, the probabilities the model gave at training
(:func:`common.registry.mlflow_registry.load_back_problem`), so a fast path that disagreed with ``predict_proba`` would be
refused, not served.

HistGradientBoosting (scikit-learn's booster, no ``n_jobs``) is scored through its own raw prediction on one
OpenMP thread. For one LightGBM row it goes one step further, to LightGBM's own single-row C call (its
configuration parsed once per loaded version, not per call). A booster's native model
(:mod:`common.training.native_models`: loaded without its Python package) is scored by its own C calls. Nothing here
imports a model library up front: the booster is reached through the loaded model, whose unpickling already
imported its library.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from common.training.native_models import LightGBMModel, LightGBMSingleRow, XGBoostModel

logger = logging.getLogger(__name__)

Scorer = Callable[[np.ndarray], np.ndarray]  # rows (n, features) in the model's feature order -> P(trend), (n,)


def positive_probability(model: Any, rows: pd.DataFrame | np.ndarray) -> np.ndarray:
    """P(trend) from an sklearn estimator (via its ``classes_``) or a pyfunc whose predict returns
    ``predict_proba``'s columns (labels 0, 1, as logged by :meth:`common.registry.mlflow_registry.Registry.log_model`)."""
    if hasattr(model, "predict_proba"):
        proba = np.asarray(model.predict_proba(rows), dtype="float64")
        if proba.ndim != 2 or proba.shape[1] != 2:
            raise ValueError(f"expected a binary classifier (predict_proba with 2 columns), got shape {proba.shape}")
        return proba[:, _positive_column(model)]
    values = np.asarray(model.predict(rows), dtype="float64")
    return values[:, -1] if values.ndim == 2 else values


def _positive_column(model: Any) -> int:
    classes = list(getattr(model, "classes_", [0, 1]))
    column = next((i for i, c in enumerate(classes) if c == 1), None)
    if column is None:
        raise ValueError(f"estimator was not trained on label 1 (classes {classes})")
    return column


def _library(model: Any) -> str:
    return type(model).__module__.split(".", 1)[0]


def _binary_01(model: Any) -> bool:
    return [int(c) for c in getattr(model, "classes_", ())] == [0, 1]


def _lightgbm_scorer(model: Any) -> Scorer | None:
    booster = getattr(model, "_Booster", None)
    if booster is None or getattr(model, "objective_", None) != "binary" or not _binary_01(model):
        return None
    single_row = _lightgbm_single_row(booster)

    def score(rows: np.ndarray) -> np.ndarray:
        if single_row is not None and rows.shape[0] == 1:
            return single_row(rows[0])
        # what LGBMClassifier.predict_proba computes for column 1, without its input conversion. One
        # thread: a request's rows are too few to share, and idle OpenMP workers cost a wake-up per call.
        return np.asarray(booster.predict(rows, num_threads=1), dtype="float64")

    return score


def _lightgbm_single_row(booster: Any) -> LightGBMSingleRow | None:
    """LightGBM's single-row C call on ``booster`` (None when this LightGBM does not offer it)."""
    from lightgbm.basic import _LIB  # imported already: unpickling the model imported lightgbm

    # Booster.predict's default: the best iteration when early stopping recorded one, else every tree.
    iterations = booster.best_iteration if booster.best_iteration > 0 else -1
    return LightGBMSingleRow.create(
        _LIB, booster._handle, iterations=iterations, columns=booster.num_feature(), owner=booster
    )


def _xgboost_scorer(model: Any) -> Scorer | None:
    if getattr(model, "objective", None) != "binary:logistic" or not _binary_01(model):
        return None
    booster = model.get_booster()
    iterations = model._get_iteration_range(None)  # the trees predict_proba uses (best_iteration if set)
    missing = model.missing

    def score(rows: np.ndarray) -> np.ndarray:
        predicted = booster.inplace_predict(rows, iteration_range=iterations, missing=missing)
        return np.asarray(predicted, dtype="float64")

    return score


def _hist_gradient_boosting_scorer(model: Any) -> Scorer | None:
    """What ``predict_proba`` computes, on one OpenMP thread: on the default (every core) one row took 120-200 ms
    instead of 6-7 ms on the 2-core dev machine while another process held a core (idle workers spin)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    if not isinstance(model, HistGradientBoostingClassifier) or not _binary_01(model):
        return None
    names = getattr(model, "feature_names_in_", None)
    loss = model._loss

    def score(rows: np.ndarray) -> np.ndarray:
        inputs = pd.DataFrame(rows, columns=names) if names is not None else rows  # sklearn checks the names
        return np.asarray(loss.predict_proba(model._raw_predict(inputs, n_threads=1))[:, 1], dtype="float64")

    return score


# By the library of the model's class; a scorer returns None for a model it does not cover.
_BOOSTER_SCORERS: dict[str, Callable[[Any], Scorer | None]] = {
    "lightgbm": _lightgbm_scorer,
    "xgboost": _xgboost_scorer,
    "sklearn": _hist_gradient_boosting_scorer,
}


def compile_scorer(model: Any, feature_names: Sequence[str]) -> Scorer:
    """The fastest exact P(trend) for ``model``; rows come as a float array in ``feature_names`` order."""
    if isinstance(model, LightGBMModel | XGBoostModel):  # a booster's native model: its own C calls
        return model.probabilities
    fast = _BOOSTER_SCORERS.get(_library(model))
    if fast is not None:
        try:
            scorer = fast(model)
        except Exception as exc:  # the fast path leans on library internals: a change there costs speed, not service
            logger.warning(
                "%s: no fast scorer (%s: %s); using predict_proba", type(model).__name__, type(exc).__name__, exc
            )
            scorer = None
        if scorer is not None:
            return scorer
    names = list(feature_names)
    # a frame for what was fitted on one (sklearn checks the names) and for a pyfunc; else the bare array
    wants_frame = hasattr(model, "feature_names_in_") or not hasattr(model, "predict_proba")

    def score(rows: np.ndarray) -> np.ndarray:
        return positive_probability(model, pd.DataFrame(rows, columns=names) if wants_frame else rows)

    return score
