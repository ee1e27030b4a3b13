"""The backtest: the live loop's own decisions on in-memory twins, deterministic, without look-ahead, and
the same functions under every policy (policies are setting overrides, never special code)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from common.backtest.replay import ModelUnit, backtest_model
from common.core.errors import ConfigurationError
from common.core.settings import load_settings
from common.data.ohlcv import parse_ohlcv_csv
from common.loop.policies import parse_policies, parse_policy
from common.training.bootstrap import block_bootstrap, block_indices
from tests.conftest import PROJECT_ROOT

START = datetime(2024, 3, 1, tzinfo=UTC)
END = datetime(2024, 4, 10, tzinfo=UTC)
# A fast zoo and small folds: the decisions are the live loop's, only cheaper to train.
FAST = {"train_classifiers": ("ridge",), "train_splits": 3, "train_test_size": 30}


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return parse_ohlcv_csv((PROJECT_ROOT / "sample_data" / "ohlcv" / "1d" / "ETH.csv").read_bytes())


def _run(bars: pd.DataFrame, policies: str, *, end: datetime = END, trend: str = "uptrend") -> dict:
    settings = load_settings(symbols=("ETH",), **FAST)
    result, _ = backtest_model(
        ModelUnit("ETH", trend), bars, base=settings, policies=parse_policies(policies), start=START, end=end
    )
    return result


# --- policies --------------------------------------------------------------------------------------------------
def test_policies_are_setting_overrides() -> None:
    base = load_settings(symbols=("BTC",))
    never, monthly, drift, always = (parse_policy(n) for n in ("never", "every-30d", "drift", "default+always"))
    assert never.settings(base).triggers == ()
    assert (monthly.settings(base).triggers, monthly.settings(base).max_model_age_days) == (("schedule",), 30)
    assert drift.settings(base).triggers == ("drift",)
    assert always.settings(base).promotion_rule == "always" and always.settings(base).triggers == base.triggers
    assert parse_policy("default").settings(base) is base
    assert [p.name for p in parse_policies("never, every-30d")] == ["never", "every-30d", "default"]


@pytest.mark.parametrize("name", ["sometimes", "every-0d", "every-xd", "never+sometimes", ""])
def test_an_unknown_policy_is_a_clear_error(name: str) -> None:
    with pytest.raises(ConfigurationError, match=r"policy|empty"):
        parse_policies(name)


# --- bootstrap -------------------------------------------------------------------------------------------------
def test_blocks_are_consecutive_days_and_deterministic() -> None:
    draws = block_indices(100, 10, 50, seed=3)
    assert draws.shape == (50, 100) and draws.min() >= 0 and draws.max() < 100
    steps = np.diff(draws[:, :10], axis=1) % 100
    assert (steps == 1).all(), "within a block the days follow each other (circularly)"
    assert (block_indices(100, 10, 50, seed=3) == draws).all()


def test_block_bootstrap_covers_the_mean_of_autocorrelated_noise() -> None:
    """An AR(1) series with strong dependence (phi 0.9): 95 % intervals from blocks cover the true mean (0) in
    most of 40 series (block bootstraps under-cover somewhat at this dependence: 31 of 40 here), resampling
    single days in few (12 of 40): it ignores the dependence that overlapping outcomes have."""
    rng = np.random.default_rng(7)
    covered_blocks = covered_days = 0
    for _ in range(40):
        noise = rng.normal(size=400)
        series = np.zeros(400)
        for t in range(1, 400):
            series[t] = 0.9 * series[t - 1] + noise[t]
        blocks = block_bootstrap(lambda d, s=series: float(s[d].mean()), 400, block_days=40, replicates=300)
        days = block_bootstrap(lambda d, s=series: float(s[d].mean()), 400, block_days=1, replicates=300)
        covered_blocks += blocks.low <= 0 <= blocks.high
        covered_days += days.low <= 0 <= days.high
    assert covered_blocks >= 28 and covered_days <= covered_blocks - 12


def test_a_difference_of_identical_series_is_exactly_zero() -> None:
    series = np.arange(50.0)
    interval = block_bootstrap(lambda d: float(series[d].mean() - series[d].mean()), 50, block_days=5)
    assert (interval.estimate, interval.low, interval.high) == (0.0, 0.0, 0.0) and not interval.excludes_zero


# --- the replay ------------------------------------------------------------------------------------------------
def test_each_policy_runs_the_loop_and_the_result_is_deterministic(bars: pd.DataFrame) -> None:
    first = _run(bars, "never,every-7d")
    second = _run(bars, "never,every-7d")
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)
    runs = first["policies"]
    assert set(runs) == {"never", "every-7d", "default"}
    days = (END - START).days
    for run in runs.values():
        assert len(run["decisions"]) == days and run["errors"] == []
        assert run["trainings"][0]["reason"] == "initial" and run["trainings"][0]["day"] == "2024-03-01"
    # never: no trigger is on, so a champion is never retrained (only a model without one is retried).
    never = runs["never"]
    assert all(set(d["triggers"].values()) <= {"off", "ok", "no_model", "backoff"} for d in never["decisions"])
    if never["final_champion"] is not None:
        assert len(never["trainings"]) == 1 + sum(1 for d in never["decisions"] if d["retrain"])
        assert all(d["reason"] in (None, "no_model") for d in never["decisions"])
    weekly = runs["every-7d"]
    assert any(d["reason"] == "schedule" for d in weekly["decisions"]), "a weekly schedule retrains"
    assert all(d["triggers"]["performance"] == "off" for d in weekly["decisions"] if d["champion"])


def test_served_predictions_come_from_the_champion_of_their_day(bars: pd.DataFrame) -> None:
    run = _run(bars, "every-7d")["policies"]["every-7d"]
    served = run["served"]
    assert served and all(0 <= s["probability"] <= 1 for s in served)
    # The bar served on day d is d - 1 (it closed at midnight): one per day once a champion exists.
    bars_served = [pd.Timestamp(s["bar"]) for s in served]
    assert bars_served == sorted(bars_served) and len(set(bars_served)) == len(bars_served)
    promoted = {t["version"]: t["day"] for t in run["trainings"] if t["status"] == "promoted"}
    for row in served:
        day = (pd.Timestamp(row["bar"]) + pd.Timedelta(days=1)).strftime("%Y-%m-%d")
        assert promoted[row["version"]] <= day, "no version serves before it was promoted"
    # Every outcome is known: the run scores with the bars up to h + 1 bars after the end.
    assert all(row["realized"] is not None for row in served)


def test_no_look_ahead(bars: pd.DataFrame) -> None:
    """The results for the days up to D do not change when every bar after D + h + 1 is removed."""
    cut_day = START + timedelta(days=20)
    horizon = load_settings().prediction_window
    full = _run(bars, "every-7d")["policies"]
    truncated_bars = bars.loc[bars.index <= pd.Timestamp(cut_day) + pd.Timedelta(days=horizon + 1)]
    short = _run(truncated_bars, "every-7d", end=cut_day)["policies"]
    for name in full:
        day = f"{cut_day:%Y-%m-%d}"
        assert [d for d in full[name]["decisions"] if d["day"] <= day] == short[name]["decisions"]
        assert [t for t in full[name]["trainings"] if t["day"] <= day] == short[name]["trainings"]
        served_full = [s for s in full[name]["served"] if s["bar"] < pd.Timestamp(cut_day).isoformat()]
        assert served_full == short[name]["served"]


def test_trainings_are_shared_across_policies(bars: pd.DataFrame) -> None:
    settings = load_settings(symbols=("ETH",), **FAST)
    _, timings = backtest_model(
        ModelUnit("ETH", "downtrend"),
        bars,
        base=settings,
        policies=parse_policies("never,every-7d,default+always"),
        start=START,
        end=START + timedelta(days=15),
    )
    assert timings.trainings_reused >= 3, "the initial training at least is computed once for all policies"
    assert timings.trainings_computed >= 1


def test_an_hourly_backtest_counts_every_hour_it_served() -> None:
    """The summary's grid has the models' own bars: an hourly champion's 48 predictions over two days are 48
    served bars (a day grid kept only the midnight one of each day and annualised it as an hour)."""
    from common.backtest.report import render_markdown, report_meta
    from common.backtest.stats import summarize

    hourly = parse_ohlcv_csv((PROJECT_ROOT / "sample_data" / "ohlcv" / "1h" / "XRP.csv").read_bytes())
    settings = load_settings(symbols=("XRP",), interval="1h", train_classifiers=("ridge",), train_splits=3)
    start = datetime(2024, 3, 1, tzinfo=UTC)
    result, _ = backtest_model(
        ModelUnit("XRP", "uptrend", "1h"),
        hourly,
        base=settings,
        policies=[parse_policy("default+seed")],  # the original gate: this champion passes it, so it serves
        start=start,
        end=start + timedelta(days=2),
    )
    served = result["policies"]["default+seed"]["served"]
    assert len(served) == 48 and {pd.Timestamp(row["bar"]).hour for row in served} == set(range(24))
    summary = summarize(
        [result],
        policies=["default+seed"],
        default="default+seed",
        interval="1h",
        horizon=settings.prediction_window,
        cost_per_trade=settings.cost_per_trade,
        replicates=50,
    )
    model = summary["policies"]["default+seed"]["models"]["XRP uptrend"]
    assert summary["days"] == 48 and model["served_bars"] == 48 and model["coverage"] == 1.0
    assert model["resolved"] == sum(row["realized"] is not None for row in served)
    meta = report_meta(
        start=start,
        end=start + timedelta(days=2),
        units=[ModelUnit("XRP", "uptrend", "1h")],
        settings=settings,
        policies=[parse_policy("default+seed")],
        baseline="default+seed",
    )
    assert "48 hours" in render_markdown(summary, meta) and "blocks of 20 bars" in render_markdown(summary, meta)
