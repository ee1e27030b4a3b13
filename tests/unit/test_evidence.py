"""Decisions on evidence: the HAC tests hold their size with overlapping outcomes, live monitoring fires on a
degraded model and not on one that performs as promised, promotion needs a difference larger than noise,
the gate judges the selection-aware estimate and (edge rule) whether following the signal beats not trading."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from common.core.settings import load_settings
from common.loop.policies import parse_policy
from common.registry.promotion import decide_promotion
from common.training.evaluation import (
    CandidateResult,
    EvaluationResult,
    Gate,
    passes_gate,
    select_candidate,
    selection_aware_oos,
)
from common.training.evidence import champion_evidence, hac_mean_test

H = 10


def _overlapping(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated forecasts of labels that overlap over H bars (each label a sum of the next H shocks)."""
    shocks = rng.normal(size=n + H)
    latent = np.convolve(shocks, np.ones(H), mode="valid")[:n] / np.sqrt(H)
    signal = 0.6 * latent + 0.8 * rng.normal(size=n)  # what the model sees of it
    outcomes = (latent > 1.0).astype(float)
    from scipy.stats import norm

    # P(latent > 1 | signal): latent | signal ~ N(0.6 signal, 1 - 0.36)
    probabilities = norm.sf((1.0 - 0.6 * signal) / np.sqrt(1 - 0.36))
    return probabilities, outcomes


def test_the_hac_test_holds_its_size_where_a_naive_one_does_not() -> None:
    """A model performing exactly as promised: with h - 1 lags about alpha of the series reject; treating the
    overlapping outcomes as independent rejects several times as often."""
    rng = np.random.default_rng(1)
    expected = []
    for _ in range(20):  # the promised Brier: the model's expected Brier, estimated on a long history
        p, y = _overlapping(5000, rng)
        expected.append(np.mean((p - y) ** 2))
    promised = float(np.mean(expected))
    hac = naive = 0
    trials = 300
    for _ in range(trials):
        p, y = _overlapping(120, rng)
        d = (p - y) ** 2 - promised
        hac += hac_mean_test(d, H - 1).p_value < 0.05
        naive += hac_mean_test(d, 0).p_value < 0.05
    assert hac / trials < 0.10, hac / trials
    assert naive / trials > 1.5 * hac / trials


def test_monitoring_sees_flipped_outcomes_and_stays_quiet_otherwise() -> None:
    rng = np.random.default_rng(2)
    p, y = _overlapping(2000, rng)
    promised = {"brier": float(np.mean((p - y) ** 2)), "accuracy": float(np.mean((p > 0.5) == (y == 1)))}
    base_rate = float(y.mean())
    common = dict(trend="uptrend", promised=promised, base_rate=base_rate, horizon=H, cost_per_trade=0.0,
                  alpha=0.01, min_outcomes=30)  # fmt: skip
    window = slice(1000, 1200)
    fine = champion_evidence(
        version="3", probabilities=p[window], outcomes=y[window], next_returns=np.zeros(200), **common
    )
    assert fine.enough and not fine.below_promise
    flipped = y[window].copy()
    flip = rng.random(200) < 0.35
    flipped[flip] = 1 - flipped[flip]
    bad = champion_evidence(
        version="3", probabilities=p[window], outcomes=flipped, next_returns=np.zeros(200), **common
    )
    assert bad.below_promise  # retrain; not (yet) grounds to stop serving: the naive baseline suffers the flips too
    assert "200 resolved outcomes" in bad.text() and "promised accuracy" in bad.text()
    few = champion_evidence(version="3", probabilities=p[:10], outcomes=y[:10], next_returns=np.zeros(10), **common)
    assert not few.enough and not few.below_promise and "too few to judge" in few.text()


def test_a_losing_strategy_is_worse_than_not_trading() -> None:
    p = np.full(100, 0.9)  # always long
    y = np.ones(100)
    losing = np.full(100, -0.01)  # and the price falls every bar
    evidence = champion_evidence(
        version="1", probabilities=p, outcomes=y, next_returns=losing, trend="uptrend", promised={"brier": 0.01},
        base_rate=0.5, horizon=H, cost_per_trade=0.0, alpha=0.01, min_outcomes=30,
    )  # fmt: skip
    assert evidence.worse_than_not_trading and evidence.losing.mean > 0


# --- promotion on evidence ---------------------------------------------------------------------------------------
def _decide(**kwargs):
    base = dict(challenger_version="5", champion_version="4", challenger_cv_score=0.65, champion_recorded_score=0.6,
                same_bars_scores=None, min_bars=30, rule="evidence", max_age_days=90.0, alpha=0.05, horizon=H)  # fmt: skip
    return decide_promotion(**{**base, **kwargs})


def test_promotion_on_evidence() -> None:
    rng = np.random.default_rng(3)
    better = -0.05 + 0.02 * rng.normal(size=60)  # challenger's Brier clearly lower
    noise = 0.05 * rng.normal(size=60)
    assert _decide(brier_difference=better).promote
    kept = _decide(brier_difference=noise)
    assert not kept.promote and "not better by more than noise" in kept.why
    fresh = _decide(brier_difference=better[:10], champion_age_days=20.0)
    assert not fresh.promote and fresh.comparison == "too_few_bars"
    old = _decide(brier_difference=better[:10], champion_age_days=120.0)
    assert old.promote and old.comparison == "too_old"
    failing = _decide(brier_difference=noise, champion_failing="worse than not trading: ...")
    assert failing.promote and failing.comparison == "failing"
    # The original rule is still there by name.
    assert _decide(rule="not_worse", brier_difference=None).promote


# --- the gate ---------------------------------------------------------------------------------------------------
def _candidate(name: str, fold_scores: list[float]) -> CandidateResult:
    """Folds of 4 bars; a fold's predictions are right where its score says (overall_score ~ share right)."""
    rows = []
    for fold, right in enumerate(fold_scores):
        for i in range(4):
            y = i % 2
            correct = i < round(right * 4)
            rows.append((fold * 10 + i, y, float(y if correct else 1 - y), fold))
    oos = pd.DataFrame(rows, columns=["t", "y", "proba", "fold"]).set_index("t")
    return CandidateResult(name, {}, [], {"overall_score": float(np.mean(fold_scores)), "accuracy": 0.5}, oos, 0.0)


def test_the_selection_aware_estimate_chooses_on_past_folds_only() -> None:
    lucky = _candidate("lucky", [0.0, 0.0, 1.0, 0.0])  # best on fold 2 only
    steady = _candidate("steady", [1.0, 1.0, 0.5, 1.0])
    evaluation = EvaluationResult([lucky, steady], steady, [], 16, 0)
    oos = selection_aware_oos(evaluation)
    assert sorted(set(oos["fold"])) == [1, 2, 3], "fold 0 has no past to choose on"
    assert set(oos["chosen"]) == {"steady"}, "fold 2's winner is not known before fold 2"


def test_the_edge_gate_asks_whether_the_signal_beats_not_trading() -> None:
    edge = Gate(gate_rule="edge")
    assert passes_gate({"sharpe_lcb": 0.3, "overall_vs_baseline_lcb": 0.02}, edge)[0]
    ok, why = passes_gate({"sharpe_lcb": -0.1, "overall_vs_baseline_lcb": 0.02}, edge)
    assert not ok and "sharpe_lcb" in why
    assert not passes_gate({"overall_vs_baseline_lcb": 0.02}, edge)[0], "a missing bound fails"


def test_an_honest_estimate_that_fails_the_gate_selects_nothing() -> None:
    good = CandidateResult(
        "lightgbm", {}, [], {"positive_accuracy": 0.7, "negative_accuracy": 0.7, "overall_score": 0.7, "accuracy": 0.7},
        pd.DataFrame(), 0.0,
    )  # fmt: skip
    evaluation = EvaluationResult([good], good, [], 0, 0)
    assert select_candidate(evaluation, Gate()).name == "lightgbm"
    honest = {"positive_accuracy": 0.55, "negative_accuracy": 0.7, "overall_score": 0.58}
    refused = select_candidate(evaluation, Gate(), honest)
    assert refused.candidate is None and "selection-aware estimate fails the gate" in refused.reasons["lightgbm"]


@pytest.mark.parametrize(
    ("name", "field", "value"),
    [
        ("default@gate_rule=edge", "gate_rule", "edge"),
        ("never@promotion_max_age_days=30", "promotion_max_age_days", 30),
    ],
)
def test_a_policy_can_override_any_decision_setting(name: str, field: str, value: object) -> None:
    assert getattr(parse_policy(name).settings(load_settings()), field) == value


@pytest.mark.parametrize("name", ["default@bucket", "default@data_bucket=x", "default@nonsense=1"])
def test_a_policy_cannot_override_what_is_not_a_decision(name: str) -> None:
    from common.core.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="not field=value"):
        parse_policy(name)
