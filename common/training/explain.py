"""SHAP feature importance with a bounded cost, for the ``feature importance (SHAP)`` tag of every registered
version.

Why bounded: KernelExplainer on an SVC with 200 background rows took about an hour for 100 rows on the
2-core machine this was measured on, longer than a training run. So:

- Tree models get exact, fast attributions: LightGBM's native ``pred_contrib``, XGBoost's native
  ``pred_contribs``, ``shap.TreeExplainer`` for scikit-learn forests/boosters (RandomForest and
  HistGradientBoosting are supported by shap 0.51; AdaBoost is not).
- Everything else (SVC, KNN, MLP, linear wrappers, AdaBoost, unknown wrappers) gets permutation SHAP
  (the algorithm of shap's ``PermutationExplainer``, see :func:`permutation_shap` for why it is not
  called) on a small seeded background sample, explaining rows in batches until ``max_rows`` are done or
  ``time_budget_s`` is spent; the result says how many rows it covers.

Output space: the native tree paths explain the model's raw output, which is log-odds for gradient
boosting (HGB, XGBoost, LightGBM) and probability for RandomForest (its trees average class
fractions); the permutation path explains ``predict_proba[:, 1]``, a probability. ``ShapResult.space``
says which. In every space a positive value pushes towards the positive class ("trend"), so rankings
and signs compare across models, magnitudes only within one space.

Every tree attribution is checked before use: base value + sum of contributions must reproduce the
whole model's ``predict_proba[:, 1]`` on the explained rows (through the sigmoid for log-odds). That one
check validates the unwrapping, the pipeline's transformers and the output space; any mismatch falls
back to the permutation path instead of tagging a model with wrong numbers.

shap is imported only for scikit-learn trees (~2-3 s the first time); note that importing shap also
imports ``matplotlib.pyplot`` (for shap's own plots), harmless with the headless default backend.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from common.training.scorer import positive_probability

if TYPE_CHECKING:
    from collections.abc import Callable

LOG_ODDS = "log_odds"
PROBABILITY = "probability"

# Attributes a wrapper class may keep its fitted inner model in, tried in this order by unwrap_model.
WRAPPED_MODEL_ATTRIBUTES: tuple[str, ...] = ("model", "model_", "best_estimator_", "estimator_", "estimator")

# Pipeline steps that transform each column on its own (monotone or imputing), so a tree explained on the
# transformed columns explains the original ones, in the same order.
_PER_COLUMN_TRANSFORMERS: tuple[str, ...] = (
    "StandardScaler",
    "MinMaxScaler",
    "MaxAbsScaler",
    "RobustScaler",
    "QuantileTransformer",
    "PowerTransformer",
    "SimpleImputer",
)

# scikit-learn models shap 0.51's TreeExplainer supports (checked: AdaBoost is refused, HGB is accepted).
_SKLEARN_TREE_MODELS: tuple[str, ...] = (
    "RandomForestClassifier",
    "ExtraTreesClassifier",
    "HistGradientBoostingClassifier",
    "GradientBoostingClassifier",
    "DecisionTreeClassifier",
    "ExtraTreeClassifier",
)

# Largest |reconstructed - predict_proba| accepted from a tree attribution (shap's TreeExplainer works in
# float32 internally; a real mismatch is orders of magnitude larger).
ADDITIVITY_TOLERANCE = 1e-3

# Permutation path: antithetic permutations per explained row. One pass is exact for models with at most
# pairwise interactions and unbiased otherwise; importance averages over many rows, so one pass is enough
# and halves the cost (SVC on BTC daily: ~0.05 s per row and pass).
AGNOSTIC_PERMUTATIONS = 1
# Rows per batch of the permutation path: caps the masked input (16 x 38 x 50 rows, ~4.6 MB) and lets the
# deadline be checked often.
AGNOSTIC_MAX_BATCH = 16


@dataclass(frozen=True)
class ShapResult:
    """Per-feature SHAP summary of one model on its newest rows.

    ``importance``: mean |SHAP| per feature (sorted, largest first) - how much the feature moves the output.
    ``direction``: signed mean SHAP over the explained rows - the net push of the feature in that window
    (positive = towards "trend"); it depends on where the window's values sit, not only on the model.
    ``correlation``: Pearson correlation of a feature's values with its SHAP values - positive means higher
    values push towards "trend" (0.0 when undefined, e.g. a constant feature).
    """

    importance: dict[str, float]
    direction: dict[str, float]
    correlation: dict[str, float]
    method: str
    space: str
    rows: int
    requested_rows: int
    seconds: float
    base_value: float
    values: np.ndarray = field(repr=False, compare=False)
    data: pd.DataFrame = field(repr=False, compare=False)

    @property
    def complete(self) -> bool:
        """False when the time budget stopped the permutation path before ``requested_rows``."""
        return self.rows >= self.requested_rows

    def top(self, n: int) -> list[tuple[str, float]]:
        """The ``n`` most important features as (name, mean |SHAP|), largest first."""
        return list(self.importance.items())[: max(n, 0)]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary (for MLflow tags / the API); the per-row arrays are left out."""
        return {
            "importance": dict(self.importance),
            "direction": dict(self.direction),
            "correlation": dict(self.correlation),
            "method": self.method,
            "space": self.space,
            "rows": self.rows,
            "requested_rows": self.requested_rows,
            "complete": self.complete,
            "seconds": self.seconds,
            "base_value": self.base_value,
        }


def shap_importance(
    model: Any,
    X: pd.DataFrame,
    *,
    max_rows: int = 200,
    background_rows: int = 50,
    seed: int = 42,
    time_budget_s: float = 15.0,
) -> ShapResult:
    """SHAP importance of ``model`` on the newest ``max_rows`` rows of ``X`` (rows in time order).

    The newest rows are the ones closest to live use. ``background_rows`` (sampled from all of ``X`` with
    ``seed``) and ``time_budget_s`` only apply to the model-agnostic path; the tree paths are exact and
    take well under a second. The budget is checked between batches, so the call returns within about
    the budget plus one batch (and explains at least one row).
    """
    started = time.perf_counter()
    if not isinstance(X, pd.DataFrame) or X.empty:
        raise ValueError("X must be a non-empty DataFrame of features")
    if max_rows < 1 or background_rows < 1:
        raise ValueError("max_rows and background_rows must be >= 1")
    if time_budget_s <= 0:
        raise ValueError("time_budget_s must be > 0")
    rows = X.iloc[-max_rows:]
    proba = positive_probability(model, rows)

    tree = _tree_attribution(model, rows, proba)
    if tree is not None:
        method, space, base, values = tree
        explained = rows
    else:
        method, space = "permutation", PROBABILITY
        base, values, explained = _permutation_attribution(
            model, X, rows, background_rows=background_rows, seed=seed, deadline=started + time_budget_s
        )
    return _summarise(
        values,
        explained,
        method=method,
        space=space,
        base=base,
        requested=len(rows),
        seconds=time.perf_counter() - started,
    )


def unwrap_model(model: Any) -> tuple[list[Any], Any]:
    """(transformers, estimator): the estimator that actually scores, and the steps feeding it.

    - a scikit-learn ``Pipeline``: its steps before the last, then the last step unwrapped again;
    - any other object with a fitted model in one of :data:`WRAPPED_MODEL_ATTRIBUTES` (a small wrapper
      class, a fitted search): that inner model, unwrapped again;
    - otherwise the model itself.

    Candidates are not trusted on their own (AdaBoost's ``estimator_`` is an unfitted template, a
    calibrated wrapper changes probabilities): :func:`shap_importance` only uses the result if it
    reproduces the whole model's probabilities, and otherwise explains the whole model as a black box.
    """
    transformers: list[Any] = []
    current = model
    for _ in range(8):  # bounded: a wrapper that contains itself must not loop
        steps = getattr(current, "steps", None)
        if _is_pipeline(current) and steps:
            transformers.extend(step for _, step in steps[:-1] if step not in (None, "passthrough"))
            current = steps[-1][1]
            continue
        if _is_known_estimator(current):
            break
        inner = next(
            (
                getattr(current, name)
                for name in WRAPPED_MODEL_ATTRIBUTES
                if hasattr(current, name) and hasattr(getattr(current, name), "predict_proba")
            ),
            None,
        )
        if inner is None or inner is current:
            break
        current = inner
    return transformers, current


def _tree_attribution(model: Any, rows: pd.DataFrame, proba: np.ndarray) -> tuple[str, str, float, np.ndarray] | None:
    """(method, space, base value, values) from a native tree explainer, or None when none applies."""
    transformers, estimator = unwrap_model(model)
    if not all(type(t).__name__ in _PER_COLUMN_TRANSFORMERS for t in transformers):
        return None
    try:
        data: Any = rows
        for step in transformers:
            data = step.transform(data)
        matrix = np.asarray(data, dtype="float64")
        if matrix.shape != rows.shape:
            return None
        attribution = _native_contributions(estimator, matrix, _fitted_input(estimator, matrix))
    except Exception:  # an unsupported or unfitted model: the permutation path handles it
        return None
    if attribution is None:
        return None
    method, base, values = attribution
    if values.shape != rows.shape or not np.isfinite(values).all():
        return None
    raw = base + values.sum(axis=1)
    if np.abs(_sigmoid(raw) - proba).max() <= ADDITIVITY_TOLERANCE:
        return method, LOG_ODDS, base, values
    if np.abs(raw - proba).max() <= ADDITIVITY_TOLERANCE:
        return method, PROBABILITY, base, values
    return None


def _native_contributions(
    estimator: Any, matrix: np.ndarray, fitted_input: Any
) -> tuple[str, float, np.ndarray] | None:
    """(method, base, values) in the estimator's raw output space; None for non-tree estimators."""
    library = _library_class(estimator)
    module = library.__module__ if library is not None else ""
    n_features = matrix.shape[1]
    if module.startswith("lightgbm") and hasattr(estimator, "booster_"):
        # one thread: a few hundred rows take milliseconds, and OpenMP threads stall badly on busy small hosts
        contrib = np.asarray(estimator.booster_.predict(matrix, pred_contrib=True, num_threads=1), dtype="float64")
        if contrib.shape != (len(matrix), n_features + 1):  # multiclass: not a binary trend model
            return None
        return "lightgbm_pred_contrib", float(contrib[0, -1]), contrib[:, :-1]
    if module.startswith("xgboost") and hasattr(estimator, "get_booster"):
        import xgboost

        booster = estimator.get_booster()
        dmatrix = xgboost.DMatrix(matrix, missing=estimator.missing, feature_names=booster.feature_names)
        try:  # predict_proba uses the early-stopping best iteration when there is one
            iteration_range = (0, int(estimator.best_iteration) + 1)
        except AttributeError:
            iteration_range = (0, 0)
        contrib = np.asarray(
            booster.predict(dmatrix, pred_contribs=True, iteration_range=iteration_range), dtype="float64"
        )
        if contrib.shape != (len(matrix), n_features + 1):
            return None
        return "xgboost_pred_contribs", float(contrib[0, -1]), contrib[:, :-1]
    if library is None or not module.startswith("sklearn") or library.__name__ not in _SKLEARN_TREE_MODELS:
        return None
    import shap

    explainer = shap.TreeExplainer(estimator)
    values = np.asarray(explainer.shap_values(fitted_input, check_additivity=False), dtype="float64")
    expected = np.atleast_1d(np.asarray(explainer.expected_value, dtype="float64"))
    if values.ndim == 3:  # (rows, features, classes): column 1 is the positive class
        if values.shape[2] != 2:
            return None
        return "tree_explainer", float(expected[1]), values[:, :, 1]
    return "tree_explainer", float(expected[-1]), values


def _permutation_attribution(
    model: Any, X: pd.DataFrame, rows: pd.DataFrame, *, background_rows: int, seed: int, deadline: float
) -> tuple[float, np.ndarray, pd.DataFrame]:
    """(base, values, explained rows) by permutation sampling, newest rows first, until done or the deadline.

    Rows go newest first so a run cut short by the budget still covers the most recent rows. One seeded
    generator draws the background and then each row's permutations in that fixed order, so a row's
    values do not depend on how rows were batched, and no global RNG state is touched.
    """
    columns = list(X.columns)
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(len(X), size=min(background_rows, len(X)), replace=False))
    background = X.iloc[picked].to_numpy(dtype="float64")
    positive = _positive_class_function(model, columns)
    base = float(positive(background).mean())

    newest_first = rows.iloc[::-1].to_numpy(dtype="float64")
    done: list[np.ndarray] = []
    position, per_row = 0, 0.0
    while position < len(newest_first):
        batch = 1 if not done else _batch_size(deadline - time.perf_counter(), per_row)
        if batch < 1:
            break
        batch = min(batch, len(newest_first) - position)
        batch_started = time.perf_counter()
        done.append(
            permutation_shap(
                positive, newest_first[position : position + batch], background, rng, AGNOSTIC_PERMUTATIONS
            )
        )
        per_row = (time.perf_counter() - batch_started) / batch
        position += batch
    values = np.concatenate(done)[::-1]
    return base, values, rows.iloc[len(rows) - len(values) :]


def permutation_shap(
    f: Callable[[np.ndarray], np.ndarray],
    rows: np.ndarray,
    background: np.ndarray,
    rng: np.random.Generator,
    permutations: int = AGNOSTIC_PERMUTATIONS,
) -> np.ndarray:
    """Interventional SHAP values of ``f`` for each row by antithetic permutation sampling (rows x features).

    The algorithm of shap's ``PermutationExplainer`` with an independent masker: for a random order of
    the features, switch them from background to the row's values one by one (forward), then back in the
    same order (reverse); each feature gets the change in the background-averaged output at its switch.
    Each row's values add up exactly to ``f(row) - mean f(background)``, and one pass is exact for models
    with at most pairwise interactions. Written here rather than calling shap because shap's explainer
    JIT-compiles its masker with numba on first use (~8 s per process, measured), half the time budget
    on every cold start, and importing shap costs ~2-3 s more.

    All of a batch's masked inputs go to ``f`` in one call: rows x permutations x (2 x features) x
    background rows.
    """
    n_rows, n_features = rows.shape
    steps = np.arange(n_features)
    states: list[np.ndarray] = []
    orders: list[np.ndarray] = []
    for _ in range(len(rows) * permutations):
        order = rng.permutation(n_features)
        rank = np.empty(n_features, dtype=int)
        rank[order] = steps
        forward = rank[None, :] < np.arange(n_features + 1)[:, None]  # state k: first k features of order on
        reverse = rank[None, :] >= np.arange(1, n_features)[:, None]  # state k: first k switched back off
        states.append(np.concatenate([forward, reverse]))
        orders.append(order)
    # masks: (rows, permutations, 2 * features, features); state 0 = all background, state n = all row.
    masks = np.stack(states).reshape(n_rows, permutations, 2 * n_features, n_features)
    inputs = np.where(masks[:, :, :, None, :], rows[:, None, None, None, :], background[None, None, None, :, :])
    outputs = np.asarray(f(inputs.reshape(-1, n_features)), dtype="float64")
    means = outputs.reshape(n_rows, permutations, 2 * n_features, len(background)).mean(axis=3)
    # forward path: states 0..n; reverse path: state n, then n+1..2n-1, then back to state 0.
    forward_path = means[:, :, : n_features + 1]
    reverse_path = np.concatenate(
        [means[:, :, n_features : n_features + 1], means[:, :, n_features + 1 :], means[:, :, :1]], axis=2
    )
    gains = np.diff(forward_path, axis=2) - np.diff(reverse_path, axis=2)  # per switch, in order position
    values = np.zeros((n_rows, n_features))
    order_matrix = np.stack(orders).reshape(n_rows, permutations, n_features)
    for r in range(n_rows):
        for p in range(permutations):
            values[r, order_matrix[r, p]] += gains[r, p]
    return values / (2 * permutations)


def _batch_size(remaining: float, per_row: float) -> int:
    """Rows for the next batch: 0 once the deadline passed, else what fits in the time left (capped)."""
    if remaining <= 0:
        return 0
    if per_row <= 0:
        return AGNOSTIC_MAX_BATCH
    return min(AGNOSTIC_MAX_BATCH, max(1, int(remaining / per_row)))


def _summarise(
    values: np.ndarray, data: pd.DataFrame, *, method: str, space: str, base: float, requested: int, seconds: float
) -> ShapResult:
    """Aggregate per-row values into the per-feature dictionaries of a ShapResult."""
    names = [str(c) for c in data.columns]
    magnitude = np.abs(values).mean(axis=0)
    signed = values.mean(axis=0)
    order = sorted(range(len(names)), key=lambda j: (-magnitude[j], j))
    return ShapResult(
        importance={names[j]: float(magnitude[j]) for j in order},
        direction={names[j]: float(signed[j]) for j in order},
        correlation={names[j]: _correlation(data.iloc[:, j].to_numpy(dtype="float64"), values[:, j]) for j in order},
        method=method,
        space=space,
        rows=len(values),
        requested_rows=requested,
        seconds=seconds,
        base_value=float(base),
        values=values,
        data=data,
    )


def _correlation(feature: np.ndarray, shap_values: np.ndarray) -> float:
    """Pearson correlation over finite pairs; 0.0 when undefined (fewer than 2 pairs or no variation)."""
    keep = np.isfinite(feature) & np.isfinite(shap_values)
    a, b = feature[keep], shap_values[keep]
    if len(a) < 2:
        return 0.0
    a, b = a - a.mean(), b - b.mean()
    denominator = math.sqrt(float(a @ a) * float(b @ b))
    if denominator <= 0 or not math.isfinite(denominator):
        return 0.0
    return float(np.clip((a @ b) / denominator, -1.0, 1.0))


def _fitted_input(estimator: Any, matrix: np.ndarray) -> Any:
    """The transformed rows as the estimator was fitted: a frame when it saw column names, else the array."""
    names = getattr(estimator, "feature_names_in_", None)
    if names is not None and len(names) == matrix.shape[1]:
        return pd.DataFrame(matrix, columns=list(names))
    return matrix


def _is_pipeline(obj: Any) -> bool:
    """A scikit-learn Pipeline (checked by name so this module does not import sklearn)."""
    return any(cls.__name__ == "Pipeline" and cls.__module__.startswith("sklearn") for cls in type(obj).__mro__)


def _is_known_estimator(obj: Any) -> bool:
    """Library estimators (or subclasses), whose ``estimator_`` (AdaBoost's, Bagging's, RandomForest's) is a
    template, not a wrapped model; scikit-learn's searches are the exception (``best_estimator_`` is fitted)."""
    library = _library_class(obj)
    return library is not None and not library.__module__.startswith("sklearn.model_selection")


def _library_class(obj: Any) -> type | None:
    """The first scikit-learn / XGBoost / LightGBM class in ``obj``'s MRO, so that project subclasses (e.g. a
    RandomForest with its own ``fit``) are recognised as what they are."""
    for cls in type(obj).__mro__:
        if cls.__module__.split(".")[0] in {"sklearn", "xgboost", "lightgbm"}:
            return cls
    return None


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function, overflow-safe."""
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _positive_class_function(model: Any, columns: list[str]) -> Callable[[np.ndarray], np.ndarray]:
    """``matrix -> predict_proba[:, 1]`` with column names restored, for explainers that pass arrays."""

    def positive(matrix: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict_proba(pd.DataFrame(matrix, columns=columns))[:, 1], dtype="float64")

    return positive
