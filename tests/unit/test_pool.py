"""The pool as (symbol, interval) entries (issue 19): how entries are read and refused, what settings an hourly
model sees, and that every name a model is known by carries its interval without changing a daily model's."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from common.core.errors import ConfigurationError
from common.core.keys import backtest_unit_key, dataset_manifest_key, decision_key, prediction_key
from common.core.settings import (
    PoolEntry,
    experiment_name,
    load_settings,
    model_label,
    model_stem,
    registered_model_name,
)
from retrain.stack import sample_data

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data" / "ohlcv"
WHEN = datetime(2025, 2, 20, 13, 5, tzinfo=UTC)


def test_entries_name_their_interval_or_take_the_configured_one() -> None:
    settings = load_settings(symbols=("BTC", "ETH", "XRP:1h", "DOGE:1h", "BTC:1h"))
    assert settings.pool == (
        PoolEntry("BTC", "1d"),
        PoolEntry("ETH", "1d"),
        PoolEntry("XRP", "1h"),
        PoolEntry("DOGE", "1h"),
        PoolEntry("BTC", "1h"),
    )
    assert settings.symbols_on("1d") == ("BTC", "ETH") and settings.symbols_on("1h") == ("XRP", "DOGE", "BTC")
    assert load_settings(symbols=("BTC", "ETH:1d"), interval="1h").pool == (
        PoolEntry("BTC", "1h"),
        PoolEntry("ETH", "1d"),
    )
    assert "XRP_1h_uptrend_model" in settings.model_names() and "BTC_uptrend_model" in settings.model_names()


@pytest.mark.parametrize(
    ("entries", "needle"),
    [
        (("BTC", "BTC:1d"), "pool entry 'BTC:1d' repeats 'BTC': BTC:1d is listed twice"),
        (("XRP:1h", "XRP:1h"), "pool entry 'XRP:1h' repeats 'XRP:1h'"),
        (("BTC:5m",), "pool entry 'BTC:5m': interval '5m' is not one of 1d, 1h"),
        (("BTC:",), "pool entry 'BTC:': interval '' is not one of 1d, 1h"),
        (("btc:1h",), "pool entry 'btc:1h': symbol names allow only"),
    ],
)
def test_a_bad_entry_is_one_configuration_error_naming_it(entries: tuple[str, ...], needle: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        load_settings(symbols=entries)
    assert "RETRAIN_SYMBOLS" in str(refused.value) and needle in str(refused.value)


def test_an_entry_without_data_for_its_interval_is_refused_at_start_naming_it() -> None:
    assert sample_data.check_symbols(SAMPLE, ("BTC", "XRP:1h", "XRP")) == ("BTC", "XRP")
    with pytest.raises(ConfigurationError, match=r"pool entry 'AAVE:1h': no 1h sample data for AAVE"):
        sample_data.check_symbols(SAMPLE, ("BTC", "AAVE:1h"))
    with pytest.raises(ConfigurationError, match=r"pool entry 'BTC:4h': interval '4h'"):
        sample_data.check_symbols(SAMPLE, ("BTC:4h",))


def test_an_hourly_model_sees_its_own_settings_and_durations_in_days_unchanged() -> None:
    settings = load_settings(symbols=("BTC", "XRP:1h"))
    hourly, daily = settings.for_interval("1h"), settings.for_interval("1d")
    assert (daily.target_up_pct, daily.train_test_size, daily.drift_window_bars) == (0.05, 60, 90)
    assert (hourly.interval, hourly.target_up_pct, hourly.target_down_pct) == ("1h", 0.005, 0.005)
    assert (hourly.train_test_size, hourly.drift_window_bars) == (720, 720)
    for days in ("max_model_age_days", "cooldown_days", "perf_window_days", "no_model_retry_days"):
        assert getattr(hourly, days) == getattr(daily, days)
    assert hourly.prediction_window == daily.prediction_window  # in bars of the model's own interval
    assert hourly.target_pct("uptrend") == 0.005


def test_daily_names_are_the_originals_and_hourly_ones_cannot_collide() -> None:
    assert registered_model_name("BTC", "uptrend") == "BTC_uptrend_model"
    assert registered_model_name("BTC", "uptrend", "1d") == "BTC_uptrend_model"
    assert registered_model_name("BTC", "uptrend", "1h") == "BTC_1h_uptrend_model"
    assert experiment_name("XRP", "downtrend", "1h") == "XRP_1h_downtrend" != experiment_name("XRP", "downtrend")
    assert model_label("XRP", "uptrend", "1h") == "XRP 1h uptrend" and model_label("XRP", "uptrend") == "XRP uptrend"
    # symbols hold only A-Z and 0-9, so a daily stem never contains "_1h_"
    daily = {model_stem(s, t) for s in ("BTC", "1H", "X1H") for t in ("uptrend", "downtrend")}
    hourly = {model_stem(s, t, "1h") for s in ("BTC", "1H", "X1H") for t in ("uptrend", "downtrend")}
    assert not daily & hourly


def test_every_key_of_a_model_carries_its_interval() -> None:
    assert decision_key("BTC", "uptrend", WHEN) == "decisions/date=2025-02-20/BTC_uptrend.json"
    assert (
        decision_key("XRP", "uptrend", WHEN, interval="1h") == "decisions/date=2025-02-20/hour=13/XRP_1h_uptrend.json"
    )
    assert decision_key("XRP", "uptrend", WHEN, "_psi.png", "1h").endswith("hour=13/XRP_1h_uptrend_psi.png")
    assert prediction_key("BTC", "uptrend", WHEN, "3") == "predictions/model=BTC_uptrend/bar=2025-02-20T13:05/v3.json"
    assert prediction_key("XRP", "uptrend", WHEN, "3", "1h").startswith("predictions/model=XRP_1h_uptrend/")
    assert dataset_manifest_key("r1", "XRP", "uptrend", "1h") == "runs/r1/XRP_1h_uptrend/dataset.json"
    assert backtest_unit_key("b1", "XRP", "uptrend", "1h") == "backtests/b1/units/XRP_1h_uptrend.json"


def test_a_backtest_takes_hourly_entries_and_refuses_to_mix_intervals_in_one_run() -> None:
    from retrain.backtest import plan

    start, end = datetime(2024, 6, 1, tzinfo=UTC), datetime(2024, 6, 3, tzinfo=UTC)
    common = {"start": start, "end": end, "policies": "default", "classifiers": "lightgbm", "data_dir": SAMPLE}
    hourly = plan(symbols="XRP:1h,doge:1h", interval="1d", **common)
    assert {(u.symbol, u.interval) for u in hourly.units} == {("XRP", "1h"), ("DOGE", "1h")}
    assert hourly.settings.interval == "1h"
    with pytest.raises(ConfigurationError, match="mixes 1d and 1h entries: a backtest run replays one interval"):
        plan(symbols="BTC,XRP:1h", interval="1d", **common)
