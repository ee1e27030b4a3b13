"""common.training.evaluation: purged walk-forward folds, the 9-model zoo (weights, determinism, pickling), the metrics on
hand-made cases, the baseline and aggregation on real folds, the gate and the selection."""

from __future__ import annotations

import json
import math
import pickle
from dataclasses import replace
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import AdaBoostClassifier
from sklearn.neural_network import MLPClassifier

from common.core.errors import ConfigurationError, DataNotFoundError
from common.core.settings import ALL_CLASSIFIERS, load_settings
from common.data.features import FEATURE_NAMES
from common.data.ohlcv import parse_ohlcv_csv
from common.training.evaluation import (
    SHARPE_STD_FLOOR,
    CandidateResult,
    EvaluationResult,
    Gate,
    TrainingData,
    balanced_sample_weight,
    check_purge,
    compute_metrics,
    estimator_params,
    evaluate_candidates,
    fit_classifier,
    fit_final,
    make_classifier,
    max_drawdown,
    passes_gate,
    periods_per_year,
    positive_proba,
    select_candidate,
    strategy_returns,
    training_data,
    walk_forward_splits,
)

BTC_DAILY = Path(__file__).resolve().parents[2] / "sample_data" / "ohlcv" / "1d" / "BTC.csv"
HORIZON = 10
TARGET = 0.05


@cache
def btc_bars(last: int = 700) -> pd.DataFrame:
    return parse_ohlcv_csv(BTC_DAILY.read_bytes(), source=str(BTC_DAILY)).iloc[-last:]


@cache
def btc_data(trend: str = "uptrend") -> TrainingData:
    return training_data(btc_bars(), trend=trend, horizon=HORIZON, target_pct=TARGET)  # type: ignore[arg-type]


def metrics(y, proba, *, next_returns=None, forward_returns=None, trend="uptrend", cost=0.0, ppy=365.0):
    n = len(y)
    return compute_metrics(
        np.asarray(y),
        np.asarray(proba, dtype=float),
        next_returns=np.zeros(n) if next_returns is None else np.asarray(next_returns, dtype=float),
        forward_returns=np.zeros(n) if forward_returns is None else np.asarray(forward_returns, dtype=float),
        trend=trend,
        cost_per_trade=cost,
        periods_per_year=ppy,
    )


# --- purged walk-forward --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "n_splits", "test_size", "horizon"),
    [(400, 5, 60, 10), (700, 3, 100, 1), (1000, 5, 30, 24), (365, 2, 50, 7), (5000, 10, 200, 48)],
)
def test_no_training_label_reaches_into_its_test_fold(n: int, n_splits: int, test_size: int, horizon: int) -> None:
    splits = walk_forward_splits(n, n_splits=n_splits, test_size=test_size, purge=horizon)
    assert len(splits) == n_splits
    for train, test in splits:
        # The label of training row t is decided by bars up to t + horizon: that must stay before the test fold.
        assert train.max() + horizon < test.min()
        assert len(test) == test_size and np.all(np.diff(test) == 1)
    tests = np.concatenate([test for _, test in splits])
    assert np.array_equal(tests, np.arange(n - n_splits * test_size, n))  # consecutive, non-overlapping


def test_a_purge_shorter_than_the_horizon_is_refused() -> None:
    check_purge(10, 10)
    with pytest.raises(ConfigurationError, match="shorter than the label horizon of 10"):
        check_purge(9, 10)
    with pytest.raises(ConfigurationError, match="label horizon"):
        evaluate_candidates(
            btc_data(),
            classifiers=["ridge"],
            n_splits=2,
            test_size=30,
            purge=HORIZON - 1,
            seed=0,
            cost_per_trade=0.0,
            periods_per_year=365,
        )
    # Without the purge the property the check protects really breaks.
    train, test = walk_forward_splits(400, n_splits=2, test_size=50, purge=HORIZON - 1)[0]
    assert train.max() + HORIZON >= test.min()


def test_training_labels_do_not_change_when_the_test_period_changes() -> None:
    """End to end on real bars: rewriting every bar from a test fold's start on leaves the labels of that fold's
    training rows untouched (they were decided before the purge gap)."""
    bars, data = btc_bars(), btc_data()
    for train, test in walk_forward_splits(data.rows, n_splits=3, test_size=60, purge=HORIZON):
        test_start = data.X.index[test[0]]
        rewritten = bars.copy()
        later = rewritten.index >= test_start
        rewritten.loc[later, ["open", "high", "low", "close"]] *= np.linspace(0.5, 2.0, later.sum())[:, None]
        again = training_data(rewritten, trend="uptrend", horizon=HORIZON, target_pct=TARGET)
        training_index = data.X.index[train]
        pd.testing.assert_series_equal(again.y.loc[training_index], data.y.loc[training_index])


def test_too_few_rows_say_how_many_are_needed() -> None:
    with pytest.raises(DataNotFoundError, match=r"needs at least 370 rows .* got 369"):
        walk_forward_splits(369, n_splits=5, test_size=60, purge=10)
    assert len(walk_forward_splits(370, n_splits=5, test_size=60, purge=10)[0][0]) == 60
    with pytest.raises(ConfigurationError):
        walk_forward_splits(1000, n_splits=1, test_size=60, purge=10)


def test_periods_per_year() -> None:
    assert periods_per_year("1d") == 365
    assert periods_per_year("1h") == 365 * 24


# --- training data --------------------------------------------------------------------------------------------


def test_training_data_drops_and_counts_unusable_rows() -> None:
    bars, data = btc_bars(), btc_data()
    assert list(data.X.columns) == list(FEATURE_NAMES)
    assert not data.X.isna().any().any()
    assert set(data.y.unique()) <= {0, 1}
    assert data.dropped == {"nan_feature": 33, "no_label": HORIZON}  # TA-Lib warm-up; the unresolved tail
    assert data.rows + data.dropped_rows == len(bars)
    close = bars["close"]
    t = data.X.index[100]
    position = close.index.get_loc(t)
    assert data.next_returns[t] == pytest.approx(close.iloc[position + 1] / close.iloc[position] - 1)
    assert data.forward_returns[t] == pytest.approx(close.iloc[position + HORIZON] / close.iloc[position] - 1)
    assert data.next_returns.notna().all() and data.forward_returns.notna().all()
    down = btc_data("downtrend")
    assert down.trend == "downtrend" and not down.y.equals(data.y)


# --- the model zoo --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def zoo_split() -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    data = btc_data()
    return data.X.iloc[:500], data.y.iloc[:500].to_numpy(), data.X.iloc[500:]


@pytest.mark.parametrize("name", ALL_CLASSIFIERS)
def test_every_classifier_fits_predicts_probabilities_deterministically_and_pickles(
    name: str, zoo_split: tuple[pd.DataFrame, np.ndarray, pd.DataFrame]
) -> None:
    X_train, y_train, X_test = zoo_split
    first = fit_classifier(make_classifier(name, y_train=y_train, seed=7), X_train, y_train)  # type: ignore[arg-type]
    second = fit_classifier(make_classifier(name, y_train=y_train, seed=7), X_train, y_train)  # type: ignore[arg-type]
    proba = first.predict_proba(X_test)
    assert proba.shape == (len(X_test), 2)
    assert np.isfinite(proba).all() and (proba >= 0).all() and (proba <= 1).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert list(first.classes_) == [0, 1]
    assert np.array_equal(positive_proba(first, X_test), proba[:, 1])
    assert np.array_equal(second.predict_proba(X_test), proba), "same seed, same data: identical predictions"
    assert np.array_equal(pickle.loads(pickle.dumps(first)).predict_proba(X_test), proba)
    json.dumps(estimator_params(first), allow_nan=False)


def test_class_weights_come_from_the_training_labels(monkeypatch: pytest.MonkeyPatch, zoo_split) -> None:
    X_train, y_train, _ = zoo_split
    positives, negatives = int(y_train.sum()), int((y_train == 0).sum())
    assert make_classifier("xgboost", y_train=y_train, seed=0).get_params()["scale_pos_weight"] == pytest.approx(
        negatives / positives
    )
    for name in ("random_forest", "hist_gradient_boosting", "lightgbm"):
        assert make_classifier(name, y_train=y_train, seed=0).get_params()["class_weight"] == "balanced"
    assert make_classifier("ridge", y_train=y_train, seed=0)[-1].class_weight == "balanced"
    assert make_classifier("k_neighbors", y_train=y_train, seed=0)[-1].weights == "distance"  # no class weights

    # AdaBoost, MLP and the calibrated SVC take balanced sample weights: each class carries half the weight.
    seen: dict[str, np.ndarray] = {}
    for base in (AdaBoostClassifier, MLPClassifier, CalibratedClassifierCV):
        original = base.fit

        def spy(self, X, y, sample_weight=None, _original=original, _base=base, **kwargs):
            seen[_base.__name__] = sample_weight
            return _original(self, X, y, sample_weight=sample_weight, **kwargs)

        monkeypatch.setattr(base, "fit", spy)
    for name in ("ada_boost", "mlp", "svc"):
        fit_classifier(make_classifier(name, y_train=y_train, seed=0), X_train, y_train)
    assert set(seen) == {"AdaBoostClassifier", "MLPClassifier", "CalibratedClassifierCV"}
    for weights in seen.values():
        assert weights is not None
        assert weights[y_train == 1].sum() == pytest.approx(weights[y_train == 0].sum())
        np.testing.assert_allclose(weights, balanced_sample_weight(y_train))


def test_a_single_class_cannot_be_trained() -> None:
    with pytest.raises(DataNotFoundError, match="single class"):
        make_classifier("random_forest", y_train=np.zeros(50), seed=0)
    with pytest.raises(ConfigurationError, match="unknown classifier"):
        make_classifier("prophet", y_train=np.array([0, 1]), seed=0)  # type: ignore[arg-type]


def test_ridge_probability_is_a_logistic_of_its_decision(zoo_split) -> None:
    X_train, y_train, X_test = zoo_split
    ridge = fit_classifier(make_classifier("ridge", y_train=y_train, seed=0), X_train, y_train)
    decision = ridge.decision_function(X_test)
    np.testing.assert_allclose(ridge.predict_proba(X_test)[:, 1], 1 / (1 + np.exp(-decision)))
    assert np.array_equal(ridge.predict(X_test), (ridge.predict_proba(X_test)[:, 1] > 0.5).astype(int))


# --- metrics --------------------------------------------------------------------------------------------------


def test_all_correct_and_all_wrong() -> None:
    right = metrics([1, 0, 1, 0], [0.9, 0.1, 0.8, 0.2])
    for key in ("accuracy", "precision", "positive_accuracy", "negative_accuracy", "overall_score"):
        assert right[key] == pytest.approx(1.0)
    assert right["brier"] == pytest.approx((0.01 + 0.01 + 0.04 + 0.04) / 4)
    wrong = metrics([1, 0, 1, 0], [0.1, 0.9, 0.2, 0.8])
    for key in ("accuracy", "precision", "positive_accuracy", "negative_accuracy", "overall_score"):
        assert wrong[key] == 0.0


def test_no_positive_prediction_has_precision_zero() -> None:
    m = metrics([1, 0, 0, 0], [0.1, 0.2, 0.3, 0.5], next_returns=[0.1, -0.1, 0.2, 0.3])  # 0.5 is not > 0.5
    assert (m["precision"], m["positive_accuracy"], m["negative_accuracy"]) == (0.0, 0.0, 1.0)
    assert m["accuracy"] == 0.75 and m["overall_score"] == pytest.approx(0.1 * 0.75 + 0.2)
    assert (m["n_signals"], m["directional_accuracy"], m["sharpe"], m["total_return"], m["max_drawdown"]) == (
        0,
        0.0,
        0.0,
        0.0,
        0.0,
    )
    assert m["positive_rate"] == 0.25 and m["signal_rate"] == 0.0 and m["n"] == 4


def test_known_confusion_matrix_gives_exact_numbers() -> None:
    # TP=3, FN=2, FP=1, TN=4
    y = [1, 1, 1, 1, 1, 0, 0, 0, 0, 0]
    p = [0.9, 0.8, 0.7, 0.2, 0.1, 0.6, 0.4, 0.3, 0.2, 0.1]
    m = metrics(y, p)
    assert (m["tp"], m["fn"], m["fp"], m["tn"]) == (3, 2, 1, 4)
    assert m["accuracy"] == pytest.approx(0.7)
    assert m["precision"] == pytest.approx(0.75)
    assert m["positive_accuracy"] == pytest.approx(0.6)
    assert m["negative_accuracy"] == pytest.approx(0.8)
    assert m["overall_score"] == pytest.approx(0.1 * 0.7 + 0.4 * 0.75 + 0.2 * 0.8 + 0.3 * 0.6)
    # Only actual negatives: positive_accuracy has no denominator and is 0.
    assert metrics([0, 0], [0.1, 0.9])["positive_accuracy"] == 0.0
    assert metrics([1, 1], [0.1, 0.9])["negative_accuracy"] == 0.0


def test_directional_accuracy_follows_the_trend_sign_and_skips_unknown_outcomes() -> None:
    fwd = [0.05, -0.02, np.nan, 0.0, 0.01]
    up = metrics([1, 1, 1, 1, 0], [0.9, 0.9, 0.9, 0.9, 0.1], forward_returns=fwd)
    assert up["directional_accuracy"] == pytest.approx(1 / 3)  # 3 judged signals (NaN skipped, 0 is no direction)
    assert up["n_signals"] == 4
    down = metrics([1, 1, 1, 1, 0], [0.9, 0.9, 0.9, 0.9, 0.1], forward_returns=fwd, trend="downtrend")
    assert down["directional_accuracy"] == pytest.approx(1 / 3)


def test_sharpe_of_a_constant_positive_return_is_huge_and_of_no_trading_zero() -> None:
    m = metrics([1] * 50, [0.9] * 50, next_returns=[0.01] * 50)
    assert m["sharpe"] >= 0.01 / SHARPE_STD_FLOOR and math.isfinite(m["sharpe"])
    assert m["max_drawdown"] == 0.0 and m["total_return"] == pytest.approx(1.01**50 - 1)
    noisy = np.random.default_rng(0).normal(0.001, 0.02, 400)
    returns = strategy_returns(np.ones(400), next_returns=noisy, trend="uptrend", cost_per_trade=0.0)
    expected = noisy.mean() / noisy.std(ddof=1) * math.sqrt(365)
    assert metrics([1] * 400, [1.0] * 400, next_returns=noisy)["sharpe"] == pytest.approx(expected)
    assert returns.sum() == pytest.approx(noisy.sum())
    assert metrics([1], [0.9], next_returns=[0.01])["sharpe"] == 0.0  # one return has no spread


def test_max_drawdown_of_known_equity_paths() -> None:
    # equity 1.1, 0.55, 0.66, 1.32: the worst fall is from 1.1 to 0.55
    assert max_drawdown([0.1, -0.5, 0.2, 1.0]) == pytest.approx(0.5)
    assert max_drawdown([-0.2, 0.1]) == pytest.approx(0.2)  # the start counts as a peak
    assert max_drawdown([0.1, 0.2]) == 0.0
    assert max_drawdown([0.5, -1.5, 0.3]) == 1.0  # ruin
    m = metrics([1, 1, 1, 1], [0.9] * 4, next_returns=[0.1, -0.5, 0.2, 1.0])
    assert m["max_drawdown"] == pytest.approx(0.5) and m["total_return"] == pytest.approx(0.32)


def test_downtrend_models_are_short() -> None:
    returns = strategy_returns([0.9, 0.2, 0.9], next_returns=[-0.1, 0.5, 0.2], trend="downtrend", cost_per_trade=0.0)
    np.testing.assert_allclose(returns.to_numpy(), [0.1, 0.0, -0.2])


def test_costs_lower_the_return_by_exactly_cost_times_position_changes() -> None:
    proba = np.array([0.9, 0.1, 0.9, 0.9, 0.1, 0.1, 0.9])  # positions 1,0,1,1,0,0,1: 5 changes from flat
    nxt = pd.Series([0.01, -0.02, 0.03, 0.01, np.nan, 0.02, -0.01], index=pd.date_range("2024-01-01", periods=7))
    gross = strategy_returns(proba, next_returns=nxt, trend="uptrend", cost_per_trade=0.0)
    net = strategy_returns(proba, next_returns=nxt, trend="uptrend", cost_per_trade=0.002)
    assert net.index.equals(nxt.index)
    assert gross.sum() - net.sum() == pytest.approx(0.002 * 5)
    assert gross.iloc[4] == 0.0  # flat bar with no next close: nothing earned
    no_cost = metrics([1] * 7, proba, next_returns=nxt.to_numpy())
    with_cost = metrics([1] * 7, proba, next_returns=nxt.to_numpy(), cost=0.002)
    assert with_cost["total_return"] < no_cost["total_return"]
    assert with_cost["total_return"] == pytest.approx(np.prod(1 + net.to_numpy()) - 1)


def test_metrics_refuse_bad_input() -> None:
    with pytest.raises(ValueError, match="at least one"):
        metrics([], [])
    with pytest.raises(ValueError, match="0/1"):
        metrics([2, 0], [0.5, 0.5])
    with pytest.raises(ValueError, match="probabilities"):
        metrics([1, 0], [1.5, np.nan])


# --- evaluation -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def evaluation() -> EvaluationResult:
    messages: list[str] = []
    result = evaluate_candidates(
        btc_data(),
        classifiers=["xgboost", "ridge"],
        n_splits=3,
        test_size=60,
        purge=HORIZON,
        seed=3,
        cost_per_trade=0.001,
        periods_per_year=365,
        progress=messages.append,
    )
    assert any(m.startswith("xgboost: fold 1/3") for m in messages) and any("baseline" in m for m in messages)
    return result


def _oos_metrics(data: TrainingData, oos: pd.DataFrame) -> dict[str, float]:
    return compute_metrics(
        oos["y"].to_numpy(),
        oos["proba"].to_numpy(),
        next_returns=data.next_returns.loc[oos.index].to_numpy(),
        forward_returns=data.forward_returns.loc[oos.index].to_numpy(),
        trend="uptrend",
        cost_per_trade=0.001,
        periods_per_year=365,
    )


def test_candidates_and_baseline_share_the_folds_and_aggregate_their_oos_predictions(
    evaluation: EvaluationResult,
) -> None:
    data = btc_data()
    splits = walk_forward_splits(data.rows, n_splits=3, test_size=60, purge=HORIZON)
    index = data.X.index
    assert evaluation.folds == [(index[tr[0]], index[tr[-1]], index[te[0]], index[te[-1]]) for tr, te in splits]
    assert (evaluation.rows, evaluation.dropped_rows) == (data.rows, data.dropped_rows)
    tested = index[np.concatenate([te for _, te in splits])]
    for result in [*evaluation.candidates, evaluation.baseline]:
        assert result.oos.index.equals(tested)
        assert result.oos["y"].tolist() == data.y.loc[tested].tolist()
        edge = {"sharpe_lcb", "overall_vs_baseline_lcb"}  # the candidates' lower bounds (edge gate)
        assert {k: v for k, v in result.metrics.items() if k not in edge} == _oos_metrics(data, result.oos)
        assert result is evaluation.baseline or edge <= set(result.metrics)
        assert len(result.fold_metrics) == 3
        for k, (fold, (train_start, train_end, test_start, test_end)) in enumerate(
            zip(result.fold_metrics, evaluation.folds, strict=True)
        ):
            assert fold["fold"] == k and fold["test_start"] == test_start.isoformat()
            assert (fold["train_start"], fold["train_end"], fold["test_end"]) == (
                train_start.isoformat(),
                train_end.isoformat(),
                test_end.isoformat(),
            )
            fold_oos = result.oos[result.oos["fold"] == k]
            assert fold["accuracy"] == pytest.approx(_oos_metrics(data, fold_oos)["accuracy"])
        json.dumps(result.fold_metrics, allow_nan=False)
        json.dumps(result.params, allow_nan=False)
    assert [c.name for c in evaluation.candidates] == ["xgboost", "ridge"]
    assert all(c.fit_seconds > 0 for c in evaluation.candidates)


def test_baseline_predicts_each_folds_training_majority(evaluation: EvaluationResult) -> None:
    data = btc_data()
    for k, (train, _test) in enumerate(walk_forward_splits(data.rows, n_splits=3, test_size=60, purge=HORIZON)):
        rate = data.y.iloc[train].mean()
        fold = evaluation.baseline.oos[evaluation.baseline.oos["fold"] == k]
        assert np.allclose(fold["proba"], rate)
        assert evaluation.baseline.fold_metrics[k]["n_signals"] == (len(fold) if rate > 0.5 else 0)
    baseline = evaluation.baseline.metrics
    assert baseline["positive_accuracy"] == 0.0 and baseline["negative_accuracy"] == 1.0  # minority uptrends
    assert evaluation.candidate("xgboost").metrics["overall_score"] > baseline["overall_score"]


def test_fit_final_trains_on_every_row() -> None:
    data = btc_data()
    model = fit_final("ridge", data, 0)
    assert model[-1].n_features_in_ == len(FEATURE_NAMES)
    assert model[0].n_quantiles_ == min(200, data.rows)
    assert positive_proba(model, data.X.iloc[-5:]).shape == (5,)


# --- gate and selection ---------------------------------------------------------------------------------------


def test_original_gate_is_strict() -> None:
    gate = Gate()
    good = {"positive_accuracy": 0.51, "negative_accuracy": 0.51, "overall_score": 0.61}
    assert passes_gate(good, gate)[0]
    assert passes_gate(good, gate)[1].startswith("passes the original gate")
    ok, why = passes_gate({**good, "positive_accuracy": 0.5}, gate)
    assert not ok and why == "positive_accuracy 0.5 <= 0.5"
    ok, why = passes_gate({**good, "positive_accuracy": 0.41, "overall_score": 0.6}, gate)
    assert not ok and why == "positive_accuracy 0.41 <= 0.5; overall_score 0.6 <= 0.6"
    assert not passes_gate({**good, "negative_accuracy": float("nan")}, gate)[0]


def test_risk_gate_is_inclusive() -> None:
    gate = Gate(gate_rule="risk", gate_min_accuracy=0.55, gate_min_sharpe=0.5, gate_max_drawdown=0.3)
    edge = {"accuracy": 0.55, "sharpe": 0.5, "max_drawdown": 0.3}
    assert passes_gate(edge, gate)[0]
    ok, why = passes_gate({**edge, "max_drawdown": 0.31, "sharpe": 0.2}, gate)
    assert not ok and why == "sharpe 0.2 < 0.5; max_drawdown 0.31 > 0.3"
    # The settings object is a gate too.
    settings = load_settings(gate_rule="risk", gate_min_accuracy=0.55, gate_min_sharpe=0.5, gate_max_drawdown=0.3)
    assert passes_gate(edge, settings) == passes_gate(edge, gate)
    with pytest.raises(ConfigurationError, match="unknown gate rule"):
        passes_gate(edge, Gate(gate_rule="vibes"))


def _candidate(name: str, **metric_values: float) -> CandidateResult:
    base = {"positive_accuracy": 0.6, "negative_accuracy": 0.6, "overall_score": 0.65, "accuracy": 0.6, "sharpe": 1.0}
    base["max_drawdown"] = 0.1
    return CandidateResult(
        name=name, params={}, fold_metrics=[], metrics={**base, **metric_values}, oos=pd.DataFrame(), fit_seconds=0.0
    )


def _result(*candidates: CandidateResult) -> EvaluationResult:
    return EvaluationResult(
        candidates=list(candidates), baseline=_candidate("baseline"), folds=[], rows=0, dropped_rows=0
    )


def test_selection_picks_the_best_passing_candidate() -> None:
    result = _result(
        _candidate("ridge", overall_score=0.7),
        _candidate("xgboost", overall_score=0.9, positive_accuracy=0.45),  # best score, fails the gate
        _candidate("lightgbm", overall_score=0.75),
        _candidate("mlp", overall_score=0.75, accuracy=0.7),  # same score, more accurate
    )
    selection = select_candidate(result, Gate())
    assert selection.name == "mlp"
    assert selection.passed == ("mlp", "lightgbm", "ridge")
    assert selection.reasons["xgboost"] == "positive_accuracy 0.45 <= 0.5"
    tie = select_candidate(_result(_candidate("svc"), _candidate("knn")), Gate())
    assert tie.name == "svc"  # full tie: evaluation order


def test_selection_is_none_with_reasons_when_nothing_passes() -> None:
    result = _result(_candidate("ridge", overall_score=0.55), _candidate("svc", negative_accuracy=0.3))
    selection = select_candidate(result, Gate())
    assert selection.candidate is None and selection.name is None and selection.passed == ()
    assert selection.reasons == {"ridge": "overall_score 0.55 <= 0.6", "svc": "negative_accuracy 0.3 <= 0.5"}
    risky = select_candidate(result, replace(Gate(), gate_rule="risk", gate_min_accuracy=0.7))
    assert risky.candidate is None and "accuracy 0.6 < 0.7" in risky.reasons["ridge"]
