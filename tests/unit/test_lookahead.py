"""common.data.lookahead: compute_features never uses future bars, and the same harness catches features
that do (planted: shift(-1), a centred window, whole-series normalisation)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common.data.features import FEATURE_NAMES, WARMUP_BARS, compute_features
from common.data.lookahead import LookaheadViolation, default_cut_points, find_lookahead, violating_features
from common.data.ohlcv import PRICE_COLUMNS, parse_ohlcv_csv

SAMPLE_DIR = Path(__file__).resolve().parents[2] / "sample_data" / "ohlcv"
SAMPLE_FILES = sorted(SAMPLE_DIR.glob("*/*.csv"))


@cache
def _sample(path: Path) -> pd.DataFrame:
    bars = parse_ohlcv_csv(path.read_bytes(), source=str(path))
    return bars[(bars[list(PRICE_COLUMNS)] > 0).all(axis=1)]  # AAVE's zero-price first bar, as validation


def test_sample_files_cover_both_intervals() -> None:
    intervals = {p.parent.name for p in SAMPLE_FILES}
    assert intervals == {"1d", "1h"}
    assert len([p for p in SAMPLE_FILES if p.parent.name == "1d"]) == 16


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_compute_features_has_no_lookahead_on_sample_data(path: Path) -> None:
    bars = _sample(path)
    cuts = default_cut_points(len(bars), warmup=WARMUP_BARS)
    assert len(cuts) >= 5
    assert cuts[0] == WARMUP_BARS + 1, "the first cut ends on the first fully defined row"
    violations = find_lookahead(compute_features, bars, cuts, rtol=0, atol=0)
    assert violations == []


def test_compute_features_has_no_lookahead_at_every_early_cut() -> None:
    """Dense cuts through the warm-up, where seeding off-by-ones would show."""
    bars = _sample(SAMPLE_DIR / "1d" / "BTC.csv").iloc[:120]
    assert find_lookahead(compute_features, bars, range(1, 120), rtol=0, atol=0) == []


# --- planted look-ahead ------------------------------------------------------------------------------
def _next_close(bars: pd.DataFrame) -> pd.Series:
    return bars["close"].shift(-1) / bars["close"] - 1


def _centred_mean(bars: pd.DataFrame) -> pd.Series:
    return bars["close"].rolling(5, center=True).mean()


def _full_series_zscore(bars: pd.DataFrame) -> pd.Series:
    return (bars["close"] - bars["close"].mean()) / bars["close"].std()


PLANTED: dict[str, Callable[[pd.DataFrame], pd.Series]] = {
    "next_close_return": _next_close,
    "centred_rolling_mean": _centred_mean,
    "full_series_zscore": _full_series_zscore,
}


def _with_planted(name: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def compute(bars: pd.DataFrame) -> pd.DataFrame:
        features = compute_features(bars)
        features[name] = PLANTED[name](bars)
        return features

    return compute


@pytest.mark.parametrize("interval", ["1d", "1h"])
@pytest.mark.parametrize("name", sorted(PLANTED))
def test_planted_lookahead_is_reported_by_name_and_clean_features_are_not(name: str, interval: str) -> None:
    bars = _sample(SAMPLE_DIR / interval / "BTC.csv")
    violations = find_lookahead(_with_planted(name), bars, default_cut_points(len(bars), warmup=WARMUP_BARS))
    assert violating_features(violations) == {name}
    assert not violating_features(violations) & set(FEATURE_NAMES)
    cuts = {v.cut for v in violations}
    assert len(cuts) >= 5, "caught at every cut, not by luck at one"


def test_shift_minus_one_is_caught_on_the_last_bar_of_each_cut() -> None:
    bars = _sample(SAMPLE_DIR / "1d" / "ETH.csv")
    cuts = [100, 500, 1000, 1500, 2000]
    violations = find_lookahead(_with_planted("next_close_return"), bars, cuts)
    assert [(v.cut, v.timestamp) for v in violations] == [(c, bars.index[c - 1]) for c in cuts]
    first = violations[0]
    assert np.isnan(first.value_truncated)
    assert first.value_full == pytest.approx(bars["close"].iloc[100] / bars["close"].iloc[99] - 1)


def test_centred_window_is_caught_on_the_last_half_window() -> None:
    bars = _sample(SAMPLE_DIR / "1d" / "SOL.csv")
    violations = find_lookahead(_with_planted("centred_rolling_mean"), bars, [300])
    assert [v.timestamp for v in violations] == list(bars.index[298:300])


def test_full_series_normalisation_is_caught_on_every_row() -> None:
    bars = _sample(SAMPLE_DIR / "1h" / "ETH.csv")
    violations = find_lookahead(_with_planted("full_series_zscore"), bars, [400])
    assert len(violations) == 400


# --- the harness itself ------------------------------------------------------------------------------
def _toy(n: int = 50) -> pd.DataFrame:
    index = pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC")
    return pd.DataFrame({"close": np.arange(1.0, n + 1)}, index=index)


def test_nan_equals_nan_and_nan_versus_value_is_a_violation() -> None:
    def causal(bars: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"slow": bars["close"].rolling(10).mean()}, index=bars.index)

    assert find_lookahead(causal, _toy(), [3, 10, 20]) == []

    def fills_backwards(bars: pd.DataFrame) -> pd.DataFrame:
        return causal(bars).bfill()

    violations = find_lookahead(fills_backwards, _toy(), [5])
    assert len(violations) == 5 and all(np.isnan(v.value_truncated) for v in violations)


def test_tolerance_absorbs_rounding_only() -> None:
    def noisy(bars: pd.DataFrame) -> pd.DataFrame:
        wobble = 1e-13 * len(bars)  # depends on the history length, but only at rounding level
        return pd.DataFrame({"x": bars["close"] + wobble}, index=bars.index)

    assert find_lookahead(noisy, _toy(), [10, 20]) == []
    assert violating_features(find_lookahead(noisy, _toy(), [10, 20], rtol=0, atol=0)) == {"x"}


def test_violation_is_a_small_frozen_record() -> None:
    violation = LookaheadViolation("f", pd.Timestamp("2024-01-01", tz="UTC"), 1.0, 2.0, cut=3)
    with pytest.raises(AttributeError):
        violation.feature = "g"  # type: ignore[misc]


def test_default_cut_points_are_spread_after_the_warmup() -> None:
    cuts = default_cut_points(1000, warmup=33)
    assert len(cuts) >= 5
    assert cuts[0] == 34 and cuts[-1] == 999
    assert all(b - a > 100 for a, b in itertools.pairwise(cuts))
    assert default_cut_points(1) == []
    assert default_cut_points(3, warmup=33) == [2]


def test_default_cut_points_are_used_when_none_given() -> None:
    violations = find_lookahead(lambda b: pd.DataFrame({"z": b["close"] - b["close"].mean()}), _toy(100))
    assert len({v.cut for v in violations}) >= 5


def test_bad_cut_points_and_misaligned_results_are_refused() -> None:
    def identity(bars: pd.DataFrame) -> pd.DataFrame:
        return bars

    with pytest.raises(ValueError, match="outside"):
        find_lookahead(identity, _toy(), [0])
    with pytest.raises(ValueError, match="same index"):
        find_lookahead(lambda b: b.iloc[1:], _toy(), [10])
