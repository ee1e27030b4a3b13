"""SHAP importance (common.training.explain): the right feature ranks first on every path, signs mean "towards
trend", and the model-agnostic path stays within its row and time bounds (SPEC.md: KernelExplainer on an
SVC took an hour)."""

from __future__ import annotations

import itertools
import json
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from lightgbm import LGBMClassifier
from sklearn.ensemble import AdaBoostClassifier, HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import RidgeClassifier
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from threadpoolctl import threadpool_limits
from xgboost import XGBClassifier

from common.data.features import FEATURE_NAMES, compute_features
from common.data.ohlcv import parse_ohlcv_csv
from common.training.explain import ShapResult, permutation_shap, shap_importance, unwrap_model

pytestmark = pytest.mark.filterwarnings(
    # scikit-learn 1.9 deprecates SVC(probability=True); the model zoo still uses it (SPEC.md).
    "ignore:The `probability` parameter was deprecated:FutureWarning",
    "ignore::sklearn.exceptions.ConvergenceWarning",
    # importing shap (for TreeExplainer) builds its plot colormaps with calls matplotlib 3.11 deprecates
    "ignore:The set_:PendingDeprecationWarning",
)

BTC_DAILY = Path(__file__).resolve().parents[2] / "sample_data" / "ohlcv" / "1d" / "BTC.csv"
KEY = "7_day_RSI"


class RidgeProba:
    """Like the zoo's Ridge wrapper: a RidgeClassifier pipeline with a sigmoid of its decision function."""

    def __init__(self) -> None:
        self.model = make_pipeline(StandardScaler(), RidgeClassifier(class_weight="balanced"))

    def fit(self, X: pd.DataFrame, y: pd.Series) -> RidgeProba:
        self.model.fit(X, y)
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = 1.0 / (1.0 + np.exp(-self.model.decision_function(X)))
        return np.column_stack([1.0 - p, p])


class Holder:
    """A minimal wrapper keeping its fitted model in ``.model`` and passing its probabilities through."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return self.model.predict_proba(X)


class OwnForest(RandomForestClassifier):
    """A project subclass of a library model (like common.training.evaluation's): still a tree model to the explainer."""


class Inverted(Holder):
    """A wrapper whose output is NOT its inner model's: unwrapping must not be trusted for it."""

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return self.model.predict_proba(X)[:, ::-1]


def _zoo() -> dict[str, tuple[Any, str, str]]:
    """name -> (unfitted model, expected method, expected space)."""
    return {
        "rf": (RandomForestClassifier(n_estimators=40, max_depth=6, random_state=0), "tree_explainer", "probability"),
        "rf_subclass": (OwnForest(n_estimators=20, max_depth=6, random_state=0), "tree_explainer", "probability"),
        "hgb": (HistGradientBoostingClassifier(max_iter=40, random_state=0), "tree_explainer", "log_odds"),
        "xgb": (
            XGBClassifier(n_estimators=40, max_depth=3, verbosity=0, n_jobs=1),
            "xgboost_pred_contribs",
            "log_odds",
        ),
        "lgbm": (LGBMClassifier(n_estimators=40, verbose=-1, n_jobs=1), "lightgbm_pred_contrib", "log_odds"),
        "scaled_lgbm_in_wrapper": (
            Holder(make_pipeline(StandardScaler(), LGBMClassifier(n_estimators=40, verbose=-1, n_jobs=1))),
            "lightgbm_pred_contrib",
            "log_odds",
        ),
        "svc": (make_pipeline(StandardScaler(), SVC(probability=True, random_state=0)), "permutation", "probability"),
        "knn": (make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=15)), "permutation", "probability"),
        "mlp": (
            make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(16,), max_iter=300, random_state=0)),
            "permutation",
            "probability",
        ),
        "ridge": (RidgeProba(), "permutation", "probability"),
        "adaboost": (AdaBoostClassifier(n_estimators=30, random_state=0), "permutation", "probability"),
    }


@pytest.fixture(scope="module", autouse=True)
def _single_openmp_thread() -> Iterator[None]:
    """One OpenMP thread (and n_jobs=1 below): on a shared 2-vCPU machine, multi-threaded OpenMP fits of
    HistGradientBoosting and LightGBM sporadically took 3-18 s instead of ~0.05 s (measured: a descheduled
    thread stalls every barrier); single-threaded they are steady, and these fits are tiny."""
    with threadpool_limits(limits=1, user_api="openmp"):
        yield


@pytest.fixture(scope="module")
def features() -> pd.DataFrame:
    bars = parse_ohlcv_csv(BTC_DAILY.read_bytes(), source=str(BTC_DAILY))
    return compute_features(bars).dropna()


@pytest.fixture(scope="module")
def label(features: pd.DataFrame) -> pd.Series:
    return (features[KEY] > 50).astype(int)


def _fit(model: Any, X: pd.DataFrame, y: pd.Series) -> Any:
    if isinstance(model, Holder):
        model.model.fit(X, y)
        return model
    return model.fit(X, y)


def _reconstructed(result: ShapResult) -> np.ndarray:
    raw = result.base_value + result.values.sum(axis=1)
    return 1.0 / (1.0 + np.exp(-raw)) if result.space == "log_odds" else raw


@pytest.mark.parametrize("name", list(_zoo()))
def test_every_path_ranks_the_label_feature_first_with_the_right_sign(
    name: str, features: pd.DataFrame, label: pd.Series
) -> None:
    unfitted, method, space = _zoo()[name]
    model = _fit(unfitted, features, label)
    result = shap_importance(model, features, max_rows=60)

    assert (result.method, result.space) == (method, space)
    assert result.top(1)[0][0] == KEY
    assert result.correlation[KEY] > 0.5  # higher RSI pushes towards "trend"
    assert result.rows == result.requested_rows == 60 and result.complete
    assert set(result.importance) == set(FEATURE_NAMES)
    # base + contributions reproduce the model's own probabilities (exact paths and permutation alike)
    expected = model.predict_proba(result.data)[:, 1]
    assert np.abs(_reconstructed(result) - expected).max() < 1e-3


@pytest.mark.parametrize("name", ["lgbm", "ridge"])
def test_inverted_label_flips_the_sign(name: str, features: pd.DataFrame, label: pd.Series) -> None:
    model = _fit(_zoo()[name][0], features, 1 - label)
    result = shap_importance(model, features, max_rows=40)
    assert result.top(1)[0][0] == KEY
    assert result.correlation[KEY] < -0.5


def test_explains_the_newest_rows_and_summaries_match_values(features: pd.DataFrame, label: pd.Series) -> None:
    model = LGBMClassifier(n_estimators=20, verbose=-1, n_jobs=1).fit(features, label)
    result = shap_importance(model, features, max_rows=25)
    assert result.data.index.equals(features.index[-25:])
    assert result.values.shape == (25, len(FEATURE_NAMES))
    column = list(result.data.columns).index(KEY)
    assert result.direction[KEY] == pytest.approx(result.values[:, column].mean())
    assert result.importance[KEY] == pytest.approx(np.abs(result.values[:, column]).mean())
    assert list(result.importance.values()) == sorted(result.importance.values(), reverse=True)


def test_to_dict_is_json_and_top_is_ordered(features: pd.DataFrame, label: pd.Series) -> None:
    result = shap_importance(RidgeProba().fit(features, label), features, max_rows=10)
    payload = json.loads(json.dumps(result.to_dict()))
    assert payload["method"] == "permutation" and payload["rows"] == 10 and payload["complete"] is True
    assert "values" not in payload and "data" not in payload
    top = result.top(3)
    assert len(top) == 3 and top[0][1] >= top[1][1] >= top[2][1]


def test_permutation_path_is_deterministic_for_a_seed_and_leaves_global_rng_alone(
    features: pd.DataFrame, label: pd.Series
) -> None:
    model = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(16,), max_iter=200, random_state=0))
    model.fit(features, label)
    np.random.seed(123)
    state = np.random.get_state()
    first = shap_importance(model, features, max_rows=30, seed=7)
    assert all(np.array_equal(a, b) for a, b in zip(state[1:], np.random.get_state()[1:], strict=True))
    again = shap_importance(model, features, max_rows=30, seed=7)
    other = shap_importance(model, features, max_rows=30, seed=8)
    assert np.array_equal(first.values, again.values) and first.importance == again.importance
    assert not np.array_equal(first.values, other.values)


def test_time_budget_stops_early_on_the_newest_rows(features: pd.DataFrame, label: pd.Series) -> None:
    # KNN on ~3,700 rows: ~0.03 s per explained row, so 200 rows do not fit in 0.3 s.
    model = make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=15)).fit(features, label)
    started = time.perf_counter()
    result = shap_importance(model, features, max_rows=200, time_budget_s=0.3)
    elapsed = time.perf_counter() - started
    assert 1 <= result.rows < 200 and result.requested_rows == 200 and not result.complete
    assert result.data.index.equals(features.index[-result.rows :])  # the newest rows were done first
    assert elapsed < 0.3 + 2.0  # budget + about one batch (loose for slow CI machines)


def test_svc_cost_is_bounded(features: pd.DataFrame, label: pd.Series) -> None:
    """KernelExplainer took about an hour for 100 SVC rows (SPEC.md); this must take seconds."""
    X, y = features.iloc[-600:], label.iloc[-600:]
    model = make_pipeline(StandardScaler(), SVC(probability=True, random_state=0)).fit(X, y)
    started = time.perf_counter()
    result = shap_importance(model, X, max_rows=100)
    assert time.perf_counter() - started < 30
    assert result.rows == 100 and result.top(1)[0][0] == KEY


def _exact_shapley(f: Any, row: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Interventional Shapley values by enumerating every coalition (small feature counts only)."""
    n = len(row)

    def value(coalition: tuple[int, ...]) -> float:
        masked = background.copy()
        masked[:, list(coalition)] = row[list(coalition)]
        return float(f(masked).mean())

    phi = np.zeros(n)
    for j in range(n):
        others = [k for k in range(n) if k != j]
        for size in range(n):
            weight = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
            for coalition in itertools.combinations(others, size):
                phi[j] += weight * (value((*coalition, j)) - value(coalition))
    return phi


def test_permutation_shap_is_exact_for_pairwise_interactions() -> None:
    rng = np.random.default_rng(0)
    background, rows = rng.normal(size=(20, 5)), rng.normal(size=(3, 5))

    def f(a: np.ndarray) -> np.ndarray:
        return a[:, 0] * a[:, 1] + 2.0 * a[:, 2] - 0.5 * a[:, 3] * a[:, 4]

    values = permutation_shap(f, rows, background, np.random.default_rng(1), permutations=1)
    exact = np.array([_exact_shapley(f, row, background) for row in rows])
    assert np.allclose(values, exact, atol=1e-12)
    # additivity: each row's values sum to f(row) - mean f(background)
    assert np.allclose(values.sum(axis=1), f(rows) - f(background).mean(), atol=1e-12)


def test_unwrap_model() -> None:
    scaler, forest = StandardScaler(), RandomForestClassifier()
    assert unwrap_model(Holder(Pipeline([("scale", scaler), ("model", forest)]))) == ([scaler], forest)
    ada = AdaBoostClassifier()
    assert unwrap_model(ada) == ([], ada)  # its estimator_ is a template, not a wrapped model


def test_a_wrapper_that_changes_outputs_falls_back_to_the_agnostic_path(
    features: pd.DataFrame, label: pd.Series
) -> None:
    model = Inverted(LGBMClassifier(n_estimators=20, verbose=-1, n_jobs=1).fit(features, label))
    result = shap_importance(model, features, max_rows=40)
    assert result.method == "permutation"
    assert result.top(1)[0][0] == KEY and result.correlation[KEY] < -0.3


def test_bad_inputs_are_refused(features: pd.DataFrame, label: pd.Series) -> None:
    model = LGBMClassifier(n_estimators=5, verbose=-1, n_jobs=1).fit(features, label)
    with pytest.raises(ValueError, match="non-empty"):
        shap_importance(model, features.iloc[:0])
    with pytest.raises(ValueError, match="max_rows"):
        shap_importance(model, features, max_rows=0)
    multiclass = LGBMClassifier(n_estimators=5, verbose=-1, n_jobs=1).fit(
        features, pd.cut(features[KEY], 3, labels=False)
    )
    with pytest.raises(ValueError, match="binary"):
        shap_importance(multiclass, features)
