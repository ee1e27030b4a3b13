"""Walk-forward evaluation of the model zoo (nine classifiers per (symbol, trend), each a binary trend
classifier on the 19 features), the trading metrics every candidate is judged on, and the gate a winner
must pass before it may be registered. Pure code: no storage, no MLflow; the trainer function logs what this
returns.

Why the pieces look the way they do:

- Validation is walk-forward with a purge of at least the label horizon: a label at bar t looks h bars
  ahead, so a training row closer than h bars to the test fold would leak test outcomes into training.
- Every candidate gets class weights from its training labels (trend labels are rare, ~10-30 %): natively
  where the estimator has ``class_weight``/``scale_pos_weight``, else through a balanced ``sample_weight``
  that :func:`fit_classifier` passes.
- A fitted model is made of scikit-learn's, LightGBM's and XGBoost's own classes, never of ours: MLflow pickles
  classes by reference, and a subclass from here would make every registered version fail to load (with
  ``ModuleNotFoundError``) wherever this repository is not importable, or once this module moves.
- Scale-sensitive models (SVC, Ridge, KNN, MLP) see features through a ``QuantileTransformer`` with a normal
  output: ``OBV_pct_change``/``AD_pct_change`` reach +-9000 % near a zero crossing of the line (1st/99th
  percentiles are +-75 %), and MACD is in price units (BTC: 400 -> 100 000 $). A StandardScaler or
  RobustScaler keeps those outliers dozens of scale units away, where they dominate RBF/KNN distances and
  MLP activations; the rank transform bounds every feature and maps unseen extremes to the edge quantile.
- Metrics are computed with the signal ``proba > threshold`` (strict, like sklearn's ``predict``, whose ties
  go to class 0); every ratio with a zero denominator is 0.0, so a gate never passes on a metric that could
  not be measured.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

import numpy as np
import pandas as pd
from joblib import parallel_config
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import AdaBoostClassifier, HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, RidgeClassifier
from sklearn.model_selection import TimeSeriesSplit
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import QuantileTransformer
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier
from sklearn.utils.class_weight import compute_sample_weight
from threadpoolctl import threadpool_limits

from common.core.errors import ConfigurationError, DataNotFoundError
from common.core.settings import ALL_CLASSIFIERS, ClassifierName, Trend
from common.data.features import FEATURE_NAMES, labelled_features
from common.data.ohlcv import interval_length
from common.training.scorer import positive_probability as positive_proba

# Zero-variance strategy returns (a riskless series) have no Sharpe ratio; dividing by this floor keeps the
# sign and a finite value (JSON and MLflow metrics refuse inf).
SHARPE_STD_FLOOR = 1e-9
BASELINE_NAME = "baseline"
# Threads of the OpenMP boosters (XGBoost, LightGBM, HistGradientBoosting). One: on a few thousand rows a second
# thread saves ~30 %, but when another process holds a core, OpenMP's spinning barriers turned a 0.1 s XGBoost
# fit into 25 s and a 1 s HistGradientBoosting fit into 15 s (measured on the 2-core dev machine).
OPENMP_THREADS = 1
# RandomForest grows whole trees on joblib threads, which do not spin: two stay faster under load (fit only,
# see fit_classifier).
FOREST_JOBS = 2


# --- walk-forward splits ---------------------------------------------------------------------------------------


def check_purge(purge: int, horizon: int) -> None:
    """Refuse a purge shorter than the label horizon: the last training labels would see the test fold."""
    if purge < horizon:
        raise ConfigurationError(
            f"purge of {purge} bars is shorter than the label horizon of {horizon} bars: training labels "
            f"would look into the test fold; use a purge of at least {horizon}"
        )


def walk_forward_splits(
    n_samples: int, *, n_splits: int, test_size: int, purge: int, min_train_size: int | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Expanding-window folds (train indices, test indices); ``purge`` rows are left out before each test fold.

    The last ``n_splits * test_size`` rows are tested, in consecutive blocks. The first fold must train on at
    least ``min_train_size`` rows (default: ``test_size``); fewer rows raise :class:`DataNotFoundError` saying
    how many are needed. Indices are row positions: when rows were dropped inside the series, ``purge``
    positions span at least ``purge`` bars, so the purge in bars is never shorter.
    """
    if n_splits < 2 or test_size < 1 or purge < 0:
        raise ConfigurationError(
            f"invalid walk-forward: n_splits={n_splits} (>= 2), test_size={test_size} (>= 1), purge={purge} (>= 0)"
        )
    min_train = test_size if min_train_size is None else max(1, min_train_size)
    needed = n_splits * test_size + purge + min_train
    if n_samples < needed:
        raise DataNotFoundError(
            f"walk-forward validation needs at least {needed} rows ({n_splits} folds x {test_size} test rows "
            f"+ {purge} purge + {min_train} training rows), got {n_samples}"
        )
    splitter = TimeSeriesSplit(n_splits=n_splits, test_size=test_size, gap=purge)
    return list(splitter.split(np.zeros((n_samples, 1))))


def periods_per_year(interval: str) -> float:
    """Bars per year for annualising Sharpe: crypto trades 24/7, so 365 daily or 8760 hourly bars."""
    return timedelta(days=365) / interval_length(interval)


# --- the model zoo ---------------------------------------------------------------------------------------------


def balanced_sample_weight(y: np.ndarray | pd.Series) -> np.ndarray:
    """``n / (n_classes * count(class))`` per row: the weights ``class_weight="balanced"`` would apply."""
    return compute_sample_weight("balanced", np.asarray(y))


# Estimators with neither ``class_weight`` nor ``scale_pos_weight``: :func:`fit_classifier` passes them balanced
# sample weights. (KNN takes no weights at all; its pipeline uses distance weighting instead.)
SAMPLE_WEIGHTED = (AdaBoostClassifier, CalibratedClassifierCV, MLPClassifier)


def fit_classifier(estimator: Any, X: pd.DataFrame, y: np.ndarray | pd.Series) -> Any:
    """Fit an estimator of :func:`make_classifier` the way training does; returns the model to score and register.

    What used to live in subclasses lives here, so a registered model pickles scikit-learn's (and LightGBM's,
    XGBoost's) classes only and loads wherever MLflow runs, without this repository:

    - balanced sample weights for :data:`SAMPLE_WEIGHTED` (routed to the pipeline's last step);
    - RandomForest grows its trees on :data:`FOREST_JOBS` threads but keeps ``n_jobs=None``, so it predicts
      on one: with several, sklearn adds the trees' votes in the order threads finish and two
      ``predict_proba`` calls differ in the last bits;
    - HistGradientBoosting (no ``n_jobs``) fits on :data:`OPENMP_THREADS` OpenMP threads;
    - the MLP's capped ``max_iter`` is a deliberate time budget, not a warning per fold;
    - the fitted Ridge becomes :func:`ridge_as_logistic`.
    """
    final = estimator[-1] if isinstance(estimator, Pipeline) else estimator
    params: dict[str, Any] = {}
    if isinstance(final, SAMPLE_WEIGHTED):
        key = f"{estimator.steps[-1][0]}__sample_weight" if isinstance(estimator, Pipeline) else "sample_weight"
        params[key] = balanced_sample_weight(y)
    with _fit_threads(final), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        estimator.fit(X, np.asarray(y), **params)
    if isinstance(final, RidgeClassifier):
        ridge = ridge_as_logistic(final)
        if isinstance(estimator, Pipeline):
            return estimator.set_params(**{estimator.steps[-1][0]: ridge})
        return ridge
    return estimator


def _fit_threads(final: Any) -> contextlib.AbstractContextManager[Any]:
    if isinstance(final, RandomForestClassifier):
        return parallel_config(backend="threading", n_jobs=FOREST_JOBS)
    if isinstance(final, HistGradientBoostingClassifier):
        return threadpool_limits(limits=OPENMP_THREADS, user_api="openmp")
    return contextlib.nullcontext()


def _predict_threads(model: Any) -> contextlib.AbstractContextManager[Any]:
    """Evaluation predicts with HistGradientBoosting on :data:`OPENMP_THREADS` too (same probabilities; idle
    OpenMP workers spin against the other process's core)."""
    final = model[-1] if isinstance(model, Pipeline) else model
    if isinstance(final, HistGradientBoostingClassifier):
        return threadpool_limits(limits=OPENMP_THREADS, user_api="openmp")
    return contextlib.nullcontext()


def ridge_as_logistic(ridge: RidgeClassifier) -> LogisticRegression:
    """A fitted binary RidgeClassifier as the linear model whose ``predict_proba`` is sigmoid(decision_function).

    Ridge has no ``predict_proba``; scikit-learn's LogisticRegression computes exactly
    ``[1 - sigmoid(d), sigmoid(d)]`` from the same ``decision_function`` for two classes, so carrying the ridge
    coefficients over gives the same probabilities without a class of ours. Monotone in the decision value and
    0.5 on Ridge's own boundary, so ``predict`` is unchanged. Not calibrated (Ridge regresses on +-1 targets,
    values stay mostly within 0.27..0.73); the Brier score shows that. The ridge's hyperparameters are what
    :func:`estimator_params` logs (it reads the unfitted estimator).
    """
    if len(ridge.classes_) != 2:
        raise ValueError(f"the ridge classifier supports binary labels only, got classes {list(ridge.classes_)}")
    model = LogisticRegression()
    for attribute in ("coef_", "intercept_", "classes_", "n_features_in_", "feature_names_in_"):
        if hasattr(ridge, attribute):
            setattr(model, attribute, getattr(ridge, attribute))
    return model


def _scaler(n_train: int, seed: int) -> QuantileTransformer:
    return QuantileTransformer(
        n_quantiles=max(10, min(200, n_train)), output_distribution="normal", subsample=100_000, random_state=seed
    )


def make_classifier(name: ClassifierName, *, y_train: np.ndarray | pd.Series, seed: int) -> Any:
    """An unfitted estimator with ``predict_proba``, class weights from ``y_train``, deterministic for ``seed``.

    Raises :class:`DataNotFoundError` when ``y_train`` holds a single class: there is nothing to learn.
    """
    y = np.asarray(y_train)
    positives = int((y == 1).sum())
    negatives = int((y == 0).sum())
    if positives + negatives != len(y):
        raise ValueError(f"labels must be 0/1, got values {sorted(set(np.unique(y).tolist()))[:5]}")
    if positives == 0 or negatives == 0:
        raise DataNotFoundError(
            f"training labels hold a single class ({positives} positive, {negatives} negative of {len(y)}): "
            "a classifier needs both; lower the target threshold or add history"
        )
    n = len(y)
    if name == "random_forest":
        return RandomForestClassifier(n_estimators=200, min_samples_leaf=5, class_weight="balanced", random_state=seed)
    if name == "svc":
        # Platt calibration replaces SVC(probability=True) (deprecated in sklearn 1.9, same internal 5-fold
        # scaling). fit_classifier weights the calibration too: that keeps the probabilities on the balanced
        # scale of the other candidates; an unweighted sigmoid would pull them back to the base rate and almost
        # never cross 0.5.
        svc = SVC(C=1.0, kernel="rbf", gamma="scale")
        return Pipeline([("scale", _scaler(n, seed)), ("model", CalibratedClassifierCV(svc, cv=5, ensemble=False))])
    if name == "xgboost":
        from xgboost import XGBClassifier

        return XGBClassifier(
            n_estimators=200,
            max_depth=4,
            learning_rate=0.05,
            subsample=0.8,
            colsample_bytree=0.8,
            scale_pos_weight=negatives / positives,
            tree_method="hist",
            eval_metric="logloss",
            n_jobs=OPENMP_THREADS,
            random_state=seed,
        )
    if name == "hist_gradient_boosting":
        # early_stopping off: "auto" turns it on above 10 000 rows (hourly data) with a shuffled, not
        # time-ordered, validation split.
        return HistGradientBoostingClassifier(
            max_iter=100, learning_rate=0.1, class_weight="balanced", early_stopping=False, random_state=seed
        )
    if name == "ada_boost":
        return AdaBoostClassifier(
            DecisionTreeClassifier(max_depth=2, random_state=seed),
            n_estimators=100,
            learning_rate=0.5,
            random_state=seed,
        )
    if name == "ridge":
        return Pipeline([("scale", _scaler(n, seed)), ("model", RidgeClassifier(alpha=1.0, class_weight="balanced"))])
    if name == "k_neighbors":
        # KNeighbors has no class weights (neither class_weight nor sample_weight); distance weighting at least
        # lets a close minority neighbour outvote distant majority ones.
        return Pipeline(
            [("scale", _scaler(n, seed)), ("model", KNeighborsClassifier(n_neighbors=25, weights="distance"))]
        )
    if name == "mlp":
        # Early stopping on a 10 % validation split (shuffled, seeded): on BTC/ETH/SOL walk-forward it beat a fixed
        # 100-300 epochs (overall_score 0.60 vs 0.53-0.58) at a fifth of the time.
        mlp = MLPClassifier(
            hidden_layer_sizes=(32, 16), alpha=1e-3, max_iter=300, early_stopping=True, random_state=seed
        )
        return Pipeline([("scale", _scaler(n, seed)), ("model", mlp)])
    if name == "lightgbm":
        from lightgbm import LGBMClassifier

        # deterministic + force_row_wise: LightGBM otherwise picks row/column histograms by timing them.
        return LGBMClassifier(
            n_estimators=200,
            learning_rate=0.05,
            num_leaves=15,
            class_weight="balanced",
            verbose=-1,
            random_state=seed,
            n_jobs=OPENMP_THREADS,
            deterministic=True,
            force_row_wise=True,
        )
    raise ConfigurationError(f"unknown classifier {name!r}; expected one of {list(ALL_CLASSIFIERS)}")


def _json_value(value: Any) -> Any:
    """A JSON-safe scalar (NaN/inf as text, strict JSON has neither), or None when the value is not a scalar."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return None


def estimator_params(estimator: Any) -> dict[str, Any]:
    """JSON-serialisable hyperparameters of the final model (``class``, its parameters, nested estimators as
    ``key__param``) plus the pipeline's ``scaler``, for run parameters and registry tags."""
    params: dict[str, Any] = {}
    model = estimator
    if isinstance(estimator, Pipeline):
        params["scaler"] = type(estimator.steps[0][1]).__name__
        model = estimator.steps[-1][1]
    params["class"] = type(model).__name__
    for key, value in sorted(model.get_params(deep=False).items()):
        if hasattr(value, "get_params"):
            params[key] = type(value).__name__
            for sub_key, sub_value in sorted(value.get_params(deep=False).items()):
                if _json_value(sub_value) is not None:
                    params[f"{key}__{sub_key}"] = _json_value(sub_value)
        elif isinstance(value, tuple | list) and all(_json_value(v) is not None for v in value):
            params[key] = [_json_value(v) for v in value]
        elif value is None or _json_value(value) is not None:
            params[key] = _json_value(value)
        else:
            params[key] = type(value).__name__
    return params


# --- metrics ---------------------------------------------------------------------------------------------------


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator) / float(denominator) if denominator else 0.0


def _direction(trend: str) -> int:
    if trend == "uptrend":
        return 1
    if trend == "downtrend":
        return -1
    raise ConfigurationError(f"unknown trend {trend!r}; expected 'uptrend' or 'downtrend'")


def strategy_returns(
    proba: np.ndarray | pd.Series,
    *,
    next_returns: np.ndarray | pd.Series,
    trend: str,
    cost_per_trade: float,
    threshold: float = 0.5,
) -> pd.Series:
    """Per-bar net return of following the signal: long (uptrend) or short (downtrend) from the close of bar t to
    the close of t+1 while ``proba[t] > threshold``, flat otherwise.

    ``cost_per_trade`` is charged on every position change, including the first entry from flat; the position
    still open at the end is not closed. A NaN next return (no next close yet) counts as 0. Indexed like
    ``next_returns`` (or ``proba``) when either is a Series.
    """
    p = np.asarray(proba, dtype="float64")
    nxt = np.asarray(next_returns, dtype="float64")
    if p.shape != nxt.shape:
        raise ValueError(f"proba and next_returns differ in length ({p.shape} vs {nxt.shape})")
    position = np.where(p > threshold, _direction(trend), 0).astype("float64")
    changes = np.abs(np.diff(position, prepend=0.0))
    returns = position * np.nan_to_num(nxt, nan=0.0) - cost_per_trade * changes
    index = None
    if isinstance(next_returns, pd.Series):
        index = next_returns.index
    elif isinstance(proba, pd.Series):
        index = proba.index
    return pd.Series(returns, index=index, name="strategy_return")


def equity_curve(returns: np.ndarray | pd.Series) -> np.ndarray:
    """Compounded equity starting at 1; a loss of 100 % or more ruins it (0 from then on)."""
    growth = np.maximum(1.0 + np.asarray(returns, dtype="float64"), 0.0)
    return np.cumprod(growth)


def max_drawdown(returns: np.ndarray | pd.Series) -> float:
    """Largest fall of the equity from its running peak (the start, 1.0, counts as a peak), as a positive
    fraction (0.25 = -25 %); 0.0 for an empty or never-falling series."""
    equity = equity_curve(returns)
    if equity.size == 0:
        return 0.0
    peaks = np.maximum.accumulate(np.concatenate([[1.0], equity]))[1:]
    return float(np.max(1.0 - equity / peaks))


def sharpe_ratio(returns: np.ndarray | pd.Series, periods_per_year: float) -> float:
    """Annualised ``mean / std * sqrt(periods_per_year)`` of per-bar returns (sample std, ddof=1).

    0.0 with fewer than 2 returns; a riskless series (std 0) divides by :data:`SHARPE_STD_FLOOR`, so a
    constant positive return is hugely positive and a never-trading strategy (all 0) is exactly 0.
    """
    r = np.asarray(returns, dtype="float64")
    if r.size < 2:
        return 0.0
    std = float(np.std(r, ddof=1))
    return float(np.mean(r)) / max(std, SHARPE_STD_FLOOR) * math.sqrt(periods_per_year)


def compute_metrics(
    y_true: np.ndarray | pd.Series,
    proba: np.ndarray | pd.Series,
    *,
    next_returns: np.ndarray | pd.Series,
    forward_returns: np.ndarray | pd.Series,
    trend: str,
    cost_per_trade: float,
    periods_per_year: float,
    threshold: float = 0.5,
) -> dict[str, float]:
    """Classification and strategy metrics of one set of out-of-sample predictions (see module docstring).

    The signal is ``proba > threshold``. Zero denominators give 0.0: precision with no positive prediction,
    positive_accuracy with no actual positive, negative_accuracy with no actual negative, directional_accuracy
    with no signal on a bar whose forward return is known. Empty input raises ValueError.

    directional_accuracy: among signalled bars with a known ``forward_returns`` (h-bar close-to-close), the share
    whose return has the trend's sign (> 0 uptrend, < 0 downtrend; 0 has no sign and counts as wrong).
    sharpe/max_drawdown/total_return: of :func:`strategy_returns` (net of costs), compounded for the last two.
    positive_rate: share of actual positives (the base rate); signal_rate: share of bars signalled.
    """
    y = np.asarray(y_true, dtype="float64")
    p = np.asarray(proba, dtype="float64")
    fwd = np.asarray(forward_returns, dtype="float64")
    n = y.size
    if n == 0:
        raise ValueError("compute_metrics needs at least one prediction")
    if p.shape != y.shape or fwd.shape != y.shape or np.shape(next_returns) != y.shape:
        raise ValueError("y_true, proba, next_returns and forward_returns must have the same length")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("y_true must hold 0/1 labels only")
    if not (np.isfinite(p).all() and (p >= 0).all() and (p <= 1).all()):
        raise ValueError("proba must be finite probabilities in [0, 1]")

    signal = p > threshold
    actual = y == 1.0
    tp = int((signal & actual).sum())
    fp = int((signal & ~actual).sum())
    tn = int((~signal & ~actual).sum())
    fn = int((~signal & actual).sum())
    accuracy = (tp + tn) / n
    precision = _ratio(tp, tp + fp)
    positive_accuracy = _ratio(tp, tp + fn)
    negative_accuracy = _ratio(tn, tn + fp)
    overall_score = 0.1 * accuracy + 0.4 * precision + 0.2 * negative_accuracy + 0.3 * positive_accuracy

    judged = signal & np.isfinite(fwd)
    right_way = np.sign(fwd[judged]) == _direction(trend)
    directional_accuracy = _ratio(int(right_way.sum()), int(judged.sum()))

    returns = strategy_returns(
        p,
        next_returns=np.asarray(next_returns, dtype="float64"),
        trend=trend,
        cost_per_trade=cost_per_trade,
        threshold=threshold,
    ).to_numpy()
    equity = equity_curve(returns)
    return {
        "accuracy": accuracy,
        "precision": precision,
        "positive_accuracy": positive_accuracy,
        "negative_accuracy": negative_accuracy,
        "overall_score": overall_score,
        "directional_accuracy": directional_accuracy,
        "sharpe": sharpe_ratio(returns, periods_per_year),
        "max_drawdown": max_drawdown(returns),
        "total_return": float(equity[-1] - 1.0),
        "brier": float(np.mean((p - y) ** 2)),
        "n": n,
        "n_signals": int(signal.sum()),
        "positive_rate": float(actual.mean()),
        "signal_rate": float(signal.mean()),
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
    }


# --- training data ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class TrainingData:
    """Rows a model is trained and evaluated on, all indexed by bar open time.

    ``next_returns[t] = close[t+1]/close[t] - 1`` (what the strategy earns holding from t to t+1);
    ``forward_returns[t] = close[t+h]/close[t] - 1`` (directional accuracy). ``dropped`` counts the rows
    left out: ``nan_feature`` (warm-up or undefined feature) and ``no_label`` (outcome not yet known).
    """

    X: pd.DataFrame
    y: pd.Series
    next_returns: pd.Series
    forward_returns: pd.Series
    trend: Trend
    horizon: int
    target_pct: float
    dropped: dict[str, int] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return len(self.y)

    @property
    def dropped_rows(self) -> int:
        return sum(self.dropped.values())

    def subset(self, positions: np.ndarray) -> TrainingData:
        """The rows at ``positions`` (a fold), same trend and target."""
        return TrainingData(
            X=self.X.iloc[positions],
            y=self.y.iloc[positions],
            next_returns=self.next_returns.iloc[positions],
            forward_returns=self.forward_returns.iloc[positions],
            trend=self.trend,
            horizon=self.horizon,
            target_pct=self.target_pct,
        )


def training_data(bars: pd.DataFrame, *, trend: Trend, horizon: int, target_pct: float) -> TrainingData:
    """Features and ``trend`` labels of ``bars``, without the rows that have a NaN feature or no label yet."""
    _direction(trend)
    labelled = labelled_features(bars, horizon=horizon, up_pct=target_pct, down_pct=target_pct)
    close = bars["close"].astype("float64")
    features = labelled[list(FEATURE_NAMES)]
    label = labelled[f"{trend}_label"]
    nan_feature = features.isna().any(axis=1)
    no_label = label.isna() & ~nan_feature
    keep = ~(nan_feature | no_label)
    return TrainingData(
        X=features.loc[keep],
        y=label.loc[keep].astype("int64").rename("label"),
        next_returns=(close.shift(-1) / close - 1.0).loc[keep].rename("next_return"),
        forward_returns=(close.shift(-horizon) / close - 1.0).loc[keep].rename("forward_return"),
        trend=trend,
        horizon=horizon,
        target_pct=target_pct,
        dropped={"nan_feature": int(nan_feature.sum()), "no_label": int(no_label.sum())},
    )


# --- evaluation ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class CandidateResult:
    """One candidate's walk-forward result. ``oos`` holds the out-of-sample rows (index: bar time; columns
    y, proba, fold); ``metrics`` are computed on all of them at once, ``fold_metrics`` per fold."""

    name: str
    params: dict[str, Any]
    fold_metrics: list[dict[str, Any]]
    metrics: dict[str, float]
    oos: pd.DataFrame
    fit_seconds: float
    predict_seconds: float = 0.0


@dataclass(frozen=True, eq=False)
class EvaluationResult:
    """Every candidate and the naive baseline, evaluated on the same folds
    (``folds``: train_start, train_end, test_start, test_end bar times)."""

    candidates: list[CandidateResult]
    baseline: CandidateResult
    folds: list[tuple[pd.Timestamp, pd.Timestamp, pd.Timestamp, pd.Timestamp]]
    rows: int
    dropped_rows: int

    def candidate(self, name: str) -> CandidateResult:
        for result in self.candidates:
            if result.name == name:
                return result
        raise KeyError(f"no candidate {name!r}; evaluated {[c.name for c in self.candidates]}")


def _metrics_of(
    data: TrainingData, proba: np.ndarray, cost_per_trade: float, periods_per_year: float
) -> dict[str, float]:
    return compute_metrics(
        data.y.to_numpy(),
        proba,
        next_returns=data.next_returns.to_numpy(),
        forward_returns=data.forward_returns.to_numpy(),
        trend=data.trend,
        cost_per_trade=cost_per_trade,
        periods_per_year=periods_per_year,
    )


def _fold_info(k: int, train: TrainingData, test: TrainingData) -> dict[str, Any]:
    return {
        "fold": k,
        "train_start": train.X.index[0].isoformat(),
        "train_end": train.X.index[-1].isoformat(),
        "test_start": test.X.index[0].isoformat(),
        "test_end": test.X.index[-1].isoformat(),
        "n_train": train.rows,
    }


def _assemble(
    name: str,
    params: dict[str, Any],
    data: TrainingData,
    splits: list[tuple[np.ndarray, np.ndarray]],
    probas: list[np.ndarray],
    fold_metrics: list[dict[str, Any]],
    fit_seconds: float,
    predict_seconds: float,
    cost_per_trade: float,
    periods_per_year: float,
) -> CandidateResult:
    test_positions = np.concatenate([test for _, test in splits])
    oos_data = data.subset(test_positions)
    proba = np.concatenate(probas)
    oos = pd.DataFrame(
        {
            "y": oos_data.y.to_numpy(),
            "proba": proba,
            "fold": np.concatenate([np.full(len(test), k) for k, (_, test) in enumerate(splits)]),
        },
        index=oos_data.X.index,
    )
    return CandidateResult(
        name=name,
        params=params,
        fold_metrics=fold_metrics,
        metrics=_metrics_of(oos_data, proba, cost_per_trade, periods_per_year),
        oos=oos,
        fit_seconds=fit_seconds,
        predict_seconds=predict_seconds,
    )


def evaluate_candidates(
    dataset: TrainingData,
    *,
    classifiers: Sequence[ClassifierName],
    n_splits: int,
    test_size: int,
    purge: int,
    seed: int,
    cost_per_trade: float,
    periods_per_year: float,
    progress: Callable[[str], None] | None = None,
    edge_level: float = 0.9,
) -> EvaluationResult:
    """Walk-forward evaluation of every classifier and of the naive baseline on the same purged folds.

    The baseline predicts each fold's majority training class with probability = the training positive rate.
    Raises :class:`ConfigurationError` when ``purge`` is shorter than the label horizon, and
    :class:`DataNotFoundError` when the rows are too few or a fold's training labels hold one class.
    """
    check_purge(purge, dataset.horizon)
    say = progress or (lambda _message: None)
    splits = walk_forward_splits(dataset.rows, n_splits=n_splits, test_size=test_size, purge=purge)
    folds = [(k, dataset.subset(train), dataset.subset(test)) for k, (train, test) in enumerate(splits)]
    index = dataset.X.index
    fold_times = [(index[tr[0]], index[tr[-1]], index[te[0]], index[te[-1]]) for tr, te in splits]

    baseline_probas, baseline_folds = [], []
    for k, train, test in folds:
        rate = float(train.y.mean())
        proba = np.full(test.rows, rate)
        baseline_probas.append(proba)
        baseline_folds.append(
            {**_fold_info(k, train, test), **_metrics_of(test, proba, cost_per_trade, periods_per_year)}
        )
    baseline = _assemble(
        BASELINE_NAME,
        {"estimator": "majority class of the fold's training labels", "proba": "training positive rate"},
        dataset,
        splits,
        baseline_probas,
        baseline_folds,
        0.0,
        0.0,
        cost_per_trade,
        periods_per_year,
    )

    candidates = []
    for name in classifiers:
        probas, fold_metrics = [], []
        fit_total = predict_total = 0.0
        params: dict[str, Any] = {}
        for k, train, test in folds:
            estimator = make_classifier(name, y_train=train.y.to_numpy(), seed=seed)
            params = estimator_params(estimator)
            started = time.perf_counter()
            model = fit_classifier(estimator, train.X, train.y.to_numpy())
            fit_seconds = time.perf_counter() - started
            started = time.perf_counter()
            with _predict_threads(model):
                proba = positive_proba(model, test.X)
            predict_total += time.perf_counter() - started
            fit_total += fit_seconds
            probas.append(proba)
            metrics = _metrics_of(test, proba, cost_per_trade, periods_per_year)
            fold_metrics.append({**_fold_info(k, train, test), "fit_seconds": fit_seconds, **metrics})
            say(
                f"{name}: fold {k + 1}/{n_splits} fit {fit_seconds:.2f} s, overall_score {metrics['overall_score']:.3f}"
            )
        result = _assemble(
            name,
            params,
            dataset,
            splits,
            probas,
            fold_metrics,
            fit_total,
            predict_total,
            cost_per_trade,
            periods_per_year,
        )
        oos_rows = dataset.subset(np.concatenate([test for _, test in splits]))
        result.metrics.update(
            edge_bounds(
                oos_rows.y.to_numpy(),
                result.oos["proba"].to_numpy(),
                baseline.oos["proba"].to_numpy(),
                oos_rows.next_returns.to_numpy(),
                trend=dataset.trend,
                cost_per_trade=cost_per_trade,
                periods_per_year=periods_per_year,
                block=2 * dataset.horizon,
                level=edge_level,
            )
        )
        say(
            f"{name}: overall_score {result.metrics['overall_score']:.3f} (baseline "
            f"{baseline.metrics['overall_score']:.3f}), sharpe {result.metrics['sharpe']:.2f}, fits {fit_total:.1f} s"
        )
        candidates.append(result)
    return EvaluationResult(
        candidates=candidates,
        baseline=baseline,
        folds=fold_times,
        rows=dataset.rows,
        dropped_rows=dataset.dropped_rows,
    )


def fit_final(name: ClassifierName, data: TrainingData, seed: int) -> Any:
    """The candidate refitted on every row, the model that is registered and served."""
    estimator = make_classifier(name, y_train=data.y.to_numpy(), seed=seed)
    return fit_classifier(estimator, data.X, data.y.to_numpy())


# --- the honest estimate ---------------------------------------------------------------------------------------
def selection_aware_oos(evaluation: EvaluationResult) -> pd.DataFrame:
    """Out-of-sample predictions of the whole procedure, choice of classifier included: for each walk-forward
    fold after the first, the candidate with the best overall_score on the folds before it (information
    available before that fold's bars) predicts it. Picking the best of N on the same folds it is scored on
    flatters the winner (the winner's curse); choosing on the past and scoring on the next fold does not.
    Columns: y, proba, fold, chosen (index: bar time)."""
    folds = sorted(set(evaluation.candidates[0].oos["fold"])) if evaluation.candidates else []
    parts = []
    for fold in folds[1:]:

        def past_score(candidate: CandidateResult, f: int = fold) -> tuple[float, float]:
            past = candidate.oos.loc[candidate.oos["fold"] < f]
            y, p = past["y"].to_numpy(dtype="float64"), past["proba"].to_numpy(dtype="float64")
            scored = compute_metrics(
                y,
                p,
                next_returns=np.zeros(len(y)),
                forward_returns=np.zeros(len(y)),
                trend="uptrend",
                cost_per_trade=0.0,
                periods_per_year=1.0,
            )
            return scored["overall_score"], scored["accuracy"]

        order = {c.name: i for i, c in enumerate(evaluation.candidates)}
        chosen = max(evaluation.candidates, key=lambda c: (*past_score(c), -order[c.name]))
        rows = chosen.oos.loc[chosen.oos["fold"] == fold, ["y", "proba", "fold"]].copy()
        rows["chosen"] = chosen.name
        parts.append(rows)
    if not parts:
        return pd.DataFrame(columns=["y", "proba", "fold", "chosen"])
    return pd.concat(parts)


def edge_bounds(
    y: np.ndarray,
    proba: np.ndarray,
    baseline_proba: np.ndarray,
    next_returns: np.ndarray,
    *,
    trend: str,
    cost_per_trade: float,
    periods_per_year: float,
    block: int,
    level: float = 0.9,
    replicates: int = 500,
    seed: int = 0,
) -> dict[str, float]:
    """One-sided lower confidence bounds (at ``level``) of the strategy's Sharpe and of overall_score minus
    the naive baseline's, by a circular block bootstrap over the out-of-sample bars (blocks of at least the
    label horizon: neighbouring outcomes overlap)."""
    from common.training.bootstrap import block_indices

    n = len(y)
    if n < 2:
        return {"sharpe_lcb": math.nan, "overall_vs_baseline_lcb": math.nan}
    y = np.asarray(y, dtype="float64")
    returns = strategy_returns(proba, next_returns=next_returns, trend=trend, cost_per_trade=cost_per_trade).to_numpy()
    draws = block_indices(n, block, replicates, seed)
    sampled = returns[draws]
    std = np.maximum(sampled.std(axis=1, ddof=1), SHARPE_STD_FLOOR)
    sharpes = sampled.mean(axis=1) / std * math.sqrt(periods_per_year)

    def overall(p: np.ndarray) -> np.ndarray:
        signal = (np.asarray(p, dtype="float64") > 0.5)[draws]
        actual = (y == 1.0)[draws]
        tp = (signal & actual).sum(axis=1)
        fp = (signal & ~actual).sum(axis=1)
        fn = (~signal & actual).sum(axis=1)
        tn = n - tp - fp - fn
        ratio = lambda a, b: np.divide(a, b, out=np.zeros(len(a)), where=b > 0)  # noqa: E731
        return 0.1 * (tp + tn) / n + 0.4 * ratio(tp, tp + fp) + 0.2 * ratio(tn, tn + fp) + 0.3 * ratio(tp, tp + fn)

    difference = overall(proba) - overall(baseline_proba)
    tail = 1.0 - level
    return {
        "sharpe_lcb": float(np.quantile(sharpes, tail)),
        "overall_vs_baseline_lcb": float(np.quantile(difference, tail)),
    }


def honest_metrics(
    evaluation: EvaluationResult, data: TrainingData, *, cost_per_trade: float, periods_per_year: float, level: float
) -> dict[str, float]:
    """The selection-aware estimate (:func:`selection_aware_oos`) with :func:`compute_metrics`, and its
    :func:`edge_bounds` against not trading and the naive baseline. What the gate judges and what live
    monitoring holds a champion to."""
    oos = selection_aware_oos(evaluation)
    if oos.empty:
        return {}
    subset = data.subset(data.X.index.get_indexer(oos.index))
    proba = oos["proba"].to_numpy(dtype="float64")
    metrics = compute_metrics(
        subset.y.to_numpy(),
        proba,
        next_returns=subset.next_returns.to_numpy(),
        forward_returns=subset.forward_returns.to_numpy(),
        trend=data.trend,
        cost_per_trade=cost_per_trade,
        periods_per_year=periods_per_year,
    )
    baseline = evaluation.baseline.oos.loc[oos.index, "proba"].to_numpy(dtype="float64")
    metrics.update(
        edge_bounds(
            subset.y.to_numpy(),
            proba,
            baseline,
            subset.next_returns.to_numpy(),
            trend=data.trend,
            cost_per_trade=cost_per_trade,
            periods_per_year=periods_per_year,
            block=2 * data.horizon,
            level=level,
        )
    )
    metrics["rows"] = len(oos)
    return metrics


# --- gate and selection ----------------------------------------------------------------------------------------


class GateSettings(Protocol):
    """The gate fields of :class:`common.core.settings.Settings` (or a :class:`Gate`)."""

    @property
    def gate_rule(self) -> str: ...
    @property
    def gate_min_positive_accuracy(self) -> float: ...
    @property
    def gate_min_negative_accuracy(self) -> float: ...
    @property
    def gate_min_overall_score(self) -> float: ...
    @property
    def gate_min_accuracy(self) -> float: ...
    @property
    def gate_min_sharpe(self) -> float: ...
    @property
    def gate_max_drawdown(self) -> float: ...
    @property
    def gate_min_sharpe_lcb(self) -> float: ...
    @property
    def gate_edge_level(self) -> float: ...


@dataclass(frozen=True)
class Gate:
    """Gate thresholds without a whole Settings object (defaults: the settings defaults)."""

    gate_rule: str = "original"
    gate_min_positive_accuracy: float = 0.5
    gate_min_negative_accuracy: float = 0.5
    gate_min_overall_score: float = 0.6
    gate_min_accuracy: float = 0.5
    gate_min_sharpe: float = 0.0
    gate_max_drawdown: float = 0.5
    gate_min_sharpe_lcb: float = 0.0
    gate_edge_level: float = 0.9


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def passes_gate(metrics: dict[str, float], gate: GateSettings) -> tuple[bool, str]:
    """Whether ``metrics`` pass the configured gate, and why (every failed condition, or every passed one).

    original: positive_accuracy > min, negative_accuracy > min, overall_score > min (strict, as the original
    system). risk: accuracy >= min, sharpe >= min, max_drawdown <= max. edge (the trading question, with its
    uncertainty): the lower bound of the strategy's Sharpe (``sharpe_lcb``) above min, so following the signal
    beats not trading, and the lower bound of overall_score minus the naive baseline's
    (``overall_vs_baseline_lcb``) above 0 (:func:`edge_bounds`). A NaN or missing metric fails.
    """
    if gate.gate_rule == "original":
        checks = [
            ("positive_accuracy", ">", gate.gate_min_positive_accuracy),
            ("negative_accuracy", ">", gate.gate_min_negative_accuracy),
            ("overall_score", ">", gate.gate_min_overall_score),
        ]
    elif gate.gate_rule == "risk":
        checks = [
            ("accuracy", ">=", gate.gate_min_accuracy),
            ("sharpe", ">=", gate.gate_min_sharpe),
            ("max_drawdown", "<=", gate.gate_max_drawdown),
        ]
    elif gate.gate_rule == "edge":
        checks = [
            ("sharpe_lcb", ">", gate.gate_min_sharpe_lcb),
            ("overall_vs_baseline_lcb", ">", 0.0),
        ]
    else:
        raise ConfigurationError(f"unknown gate rule {gate.gate_rule!r}; expected 'original', 'risk' or 'edge'")
    negation = {">": "<=", ">=": "<", "<=": ">"}
    passed, failed = [], []
    for metric, op, limit in checks:
        value = float(metrics.get(metric, math.nan))
        ok = {">": value > limit, ">=": value >= limit, "<=": value <= limit}[op]
        if ok:
            passed.append(f"{metric} {_fmt(value)} {op} {_fmt(limit)}")
        else:
            failed.append(f"{metric} {_fmt(value)} {negation[op]} {_fmt(limit)}")
    if failed:
        return False, "; ".join(failed)
    return True, f"passes the {gate.gate_rule} gate: " + ", ".join(passed)


@dataclass(frozen=True, eq=False)
class Selection:
    """The chosen candidate (None when none passes the gate) and the gate's verdict on every candidate."""

    candidate: CandidateResult | None
    reasons: dict[str, str]
    passed: tuple[str, ...]

    @property
    def name(self) -> str | None:
        return self.candidate.name if self.candidate else None


def select_candidate(result: EvaluationResult, gate: GateSettings, honest: dict[str, float] | None = None) -> Selection:
    """The best passing candidate by overall_score; ties go to the higher accuracy, then to the earlier
    candidate in evaluation order (the configured ``train_classifiers`` order). With ``honest`` (the
    selection-aware estimate of the whole procedure, :func:`honest_metrics`), it must pass the gate too, or
    nothing is selected: a winner that only passes because it was picked as the best of N is refused."""
    if honest:
        ok, why = passes_gate(honest, gate)
        if not ok:
            reasons = {c.name: f"the selection-aware estimate fails the gate: {why}" for c in result.candidates}
            return Selection(candidate=None, reasons=reasons, passed=())
    reasons: dict[str, str] = {}
    passing: list[tuple[int, CandidateResult]] = []
    for order, candidate in enumerate(result.candidates):
        ok, why = passes_gate(candidate.metrics, gate)
        reasons[candidate.name] = why
        if ok:
            passing.append((order, candidate))
    passing.sort(key=lambda item: (-item[1].metrics["overall_score"], -item[1].metrics["accuracy"], item[0]))
    return Selection(
        candidate=passing[0][1] if passing else None,
        reasons=reasons,
        passed=tuple(c.name for _, c in passing),
    )
