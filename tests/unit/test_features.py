"""common.data.features: the 19 SPEC features, each checked against an independent computation where one is
practical (pandas/numpy re-implementations), the rest against TA-Lib called with the stated parameters."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import talib

from common.core.errors import DataFormatError
from common.data.features import (
    FEATURE_NAMES,
    WARMUP_BARS,
    compute_features,
    feature_table,
    labelled_features,
    line_pct_change,
)
from common.data.ohlcv import PRICE_COLUMNS, parse_ohlcv_csv
from common.data.targets import trend_labels

SAMPLE_DIR = Path(__file__).resolve().parents[2] / "sample_data" / "ohlcv"
SAMPLE_FILES = sorted(SAMPLE_DIR.glob("*/*.csv"))
BURN_IN = 200  # bars after which pandas' first-value-seeded EMAs agree with TA-Lib's SMA-seeded ones


def _bars(close: np.ndarray, high: np.ndarray, low: np.ndarray, volume: np.ndarray) -> pd.DataFrame:
    index = pd.date_range("2022-01-01", periods=len(close), freq="D", tz="UTC", name="datetime")
    opens = np.concatenate([close[:1], close[:-1]])
    return pd.DataFrame({"open": opens, "high": high, "low": low, "close": close, "volume": volume}, index=index)


def random_walk(n: int = 400, seed: int = 7) -> pd.DataFrame:
    """Continuous prices (no ties, no flat bars), positive volume: every feature is defined after warm-up."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    high = close * (1 + rng.uniform(0.001, 0.02, n))
    low = close * (1 - rng.uniform(0.001, 0.02, n))
    return _bars(close, high, low, rng.uniform(1e3, 1e4, n))


@cache
def _sample(path: Path) -> pd.DataFrame:
    bars = parse_ohlcv_csv(path.read_bytes(), source=str(path))
    # As validation will: AAVE's first bar has a zero open/low, a price that cannot be real.
    return bars[(bars[list(PRICE_COLUMNS)] > 0).all(axis=1)]


@pytest.fixture(scope="module")
def walk() -> pd.DataFrame:
    return random_walk()


@pytest.fixture(scope="module")
def features(walk: pd.DataFrame) -> pd.DataFrame:
    return compute_features(walk)


def _close_to(
    actual: pd.Series | np.ndarray, expected: pd.Series | np.ndarray, *, rtol: float = 1e-9, atol: float = 1e-9
) -> None:
    actual_arr, expected_arr = np.asarray(actual, dtype="float64"), np.asarray(expected, dtype="float64")
    np.testing.assert_allclose(actual_arr, expected_arr, rtol=rtol, atol=atol, equal_nan=True)


# --- shape, names, warm-up -----------------------------------------------------------------------
def test_feature_names_are_the_spec_names_in_order() -> None:
    assert FEATURE_NAMES == (
        "7_day_ADX",
        "AroonDown",
        "AroonUp",
        "MACD",
        "MACD_Signal",
        "MACD_Hist",
        "7_day_RSI",
        "SlowK",
        "SlowD",
        "7_day_MFI",
        "7_day_DX",
        "7_day_TRIX",
        "PPO",
        "OBV_pct_change",
        "AD_pct_change",
        "BBANDS_distance_pct",
        "2_day_SMA_10_day_SMA_pct_diff",
        "2_day_SMA_20_day_SMA_pct_diff",
        "10_day_SMA_20_day_SMA_pct_diff",
    )


def test_frame_has_bar_index_feature_columns_and_float64(walk: pd.DataFrame, features: pd.DataFrame) -> None:
    assert list(features.columns) == list(FEATURE_NAMES)
    assert features.index.equals(walk.index)
    assert (features.dtypes == np.float64).all()


def test_warmup_bars_is_the_measured_first_fully_defined_row(features: pd.DataFrame) -> None:
    defined = features.notna().all(axis=1).to_numpy()
    assert not defined[:WARMUP_BARS].any()
    assert defined[WARMUP_BARS:].all()
    # MACD_Signal is the last to appear: (26 - 1) + (9 - 1) bars of lookback.
    assert features["MACD_Signal"].first_valid_index() == features.index[WARMUP_BARS]


@pytest.mark.parametrize("n", [0, 1, 2, 10, WARMUP_BARS])
def test_short_and_empty_frames_give_nan_rows_without_error(n: int) -> None:
    bars = random_walk().iloc[:n]
    result = compute_features(bars)
    assert result.shape == (n, len(FEATURE_NAMES))
    assert result.index.equals(bars.index)
    assert (result.dtypes == np.float64).all()
    assert not np.isinf(result.to_numpy()).any()
    assert result["MACD_Signal"].isna().all()


def test_integer_columns_are_accepted(walk: pd.DataFrame) -> None:
    bars = walk.copy()
    bars["volume"] = bars["volume"].round().astype("int64")
    expected = compute_features(bars.astype("float64"))
    pd.testing.assert_frame_equal(compute_features(bars), expected)


# --- independent computations ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "short", "long"),
    [
        ("2_day_SMA_10_day_SMA_pct_diff", 2, 10),
        ("2_day_SMA_20_day_SMA_pct_diff", 2, 20),
        ("10_day_SMA_20_day_SMA_pct_diff", 10, 20),
    ],
)
def test_sma_pct_diffs(walk: pd.DataFrame, features: pd.DataFrame, name: str, short: int, long: int) -> None:
    a = walk["close"].rolling(short).mean()
    b = walk["close"].rolling(long).mean()
    _close_to(features[name], (a - b) / b * 100)
    assert features[name].iloc[: long - 1].isna().all()


def test_bbands_distance_pct(walk: pd.DataFrame, features: pd.DataFrame) -> None:
    mean = walk["close"].rolling(7).mean()
    std = walk["close"].rolling(7).std(ddof=0)  # TA-Lib's bands use the population deviation
    upper, lower = mean + 2 * std, mean - 2 * std
    _close_to(features["BBANDS_distance_pct"], (upper - lower) / lower * 100)


def test_bbands_distance_is_nan_where_lower_band_is_not_positive() -> None:
    # A 4x jump after six flat bars: 2 sigma exceeds the 7-bar mean, so the lower band goes negative.
    close = np.array([1.0] * 6 + [4.0] * 7)
    bars = _bars(close, close * 1.01, close * 0.99, np.ones(len(close)))
    lower = talib.BBANDS(close, 7, 2.0, 2.0, 0)[2]
    assert lower[6] < 0 < lower[-1]
    distance = compute_features(bars)["BBANDS_distance_pct"]
    assert (distance.isna() == ~(lower > 0)).all()
    assert distance.iloc[-1] == 0.0  # seven equal closes: the bands touch


def _obv(close: pd.Series, volume: pd.Series) -> pd.Series:
    """TA-Lib's OBV: starts at the first bar's volume, then adds/subtracts volume on up/down closes."""
    direction = np.sign(close.diff()).fillna(1.0)
    return (direction * volume).cumsum()


def _ad(bars: pd.DataFrame) -> pd.Series:
    span = bars["high"] - bars["low"]
    clv = ((bars["close"] - bars["low"]) - (bars["high"] - bars["close"])) / span.where(span != 0)
    return (clv.fillna(0.0) * bars["volume"]).cumsum()


def _pct_change_of_line(line: pd.Series) -> pd.Series:
    previous = line.shift(1)
    return (100 * (line - previous) / previous.abs()).where(previous != 0)


def test_obv_and_ad_pct_change(walk: pd.DataFrame, features: pd.DataFrame) -> None:
    obv, ad = _obv(walk["close"], walk["volume"]), _ad(walk)
    _close_to(talib.OBV(walk["close"].to_numpy(), walk["volume"].to_numpy()), obv)
    _close_to(features["OBV_pct_change"], _pct_change_of_line(obv))
    _close_to(features["AD_pct_change"], _pct_change_of_line(ad))
    assert np.isnan(features["OBV_pct_change"].iloc[0]) and np.isnan(features["AD_pct_change"].iloc[0])


def test_line_pct_change_through_zero_keeps_the_sign_of_the_move_and_never_divides_by_zero() -> None:
    line = np.array([10.0, 20.0, 10.0, 0.0, -10.0, -20.0, -10.0, 0.0, 10.0])
    expected = [np.nan, 100.0, -50.0, -100.0, np.nan, -100.0, 50.0, 100.0, np.nan]
    _close_to(line_pct_change(line), expected)


def test_obv_and_ad_crossing_zero_give_finite_or_nan_never_inf() -> None:
    # Constant volume 10; closes at the high on up bars and at the low on down bars (CLV = +1/-1), so
    # OBV and A/D both walk 10, 20, 10, 0, -10, -20, -10, 0, 10: through zero in both directions.
    moves = [0, +1, -1, -1, -1, -1, +1, +1, +1]
    close = 100 + np.cumsum(moves).astype("float64")
    high = np.where(np.array(moves) >= 0, close, close + 0.5)
    low = np.where(np.array(moves) >= 0, close - 0.5, close)
    bars = _bars(close, high, low, np.full(len(close), 10.0))
    result = compute_features(bars)
    expected = [np.nan, 100.0, -50.0, -100.0, np.nan, -100.0, 50.0, 100.0, np.nan]
    _close_to(talib.OBV(close, bars["volume"].to_numpy()), [10, 20, 10, 0, -10, -20, -10, 0, 10])
    _close_to(result["OBV_pct_change"], expected)
    _close_to(result["AD_pct_change"], expected)
    assert not np.isinf(result.to_numpy()).any()


def test_trix_is_percent_rate_of_change_of_the_triple_ema(walk: pd.DataFrame, features: pd.DataFrame) -> None:
    """TA-Lib's TRIX is already x100: it equals pandas' 100 * pct_change of EMA(EMA(EMA(close)))."""
    ema3 = walk["close"]
    for _ in range(3):
        ema3 = ema3.ewm(span=7, adjust=False).mean()
    percent = ema3.pct_change() * 100
    _close_to(features["7_day_TRIX"].iloc[BURN_IN:], percent.iloc[BURN_IN:], rtol=1e-7)
    ratio = (features["7_day_TRIX"] / ema3.pct_change()).iloc[BURN_IN:]
    assert ratio.between(99.99, 100.01).all(), "TRIX must be in percent, not a fraction"


def test_trix_of_a_steady_one_percent_rise_is_one() -> None:
    close = 100 * 1.01 ** np.arange(300.0)
    bars = _bars(close, close * 1.001, close * 0.999, np.ones(300))
    assert compute_features(bars)["7_day_TRIX"].iloc[-1] == pytest.approx(1.0, rel=1e-9)


def _wilder(values: pd.Series, period: int) -> np.ndarray:
    """Wilder's smoothing seeded with the mean of the first ``period`` values (values[0] is NaN)."""
    raw = values.to_numpy()
    out = np.full(len(raw), np.nan)
    out[period] = raw[1 : period + 1].mean()
    for i in range(period + 1, len(raw)):
        out[i] = (out[i - 1] * (period - 1) + raw[i]) / period
    return out


def test_rsi(walk: pd.DataFrame, features: pd.DataFrame) -> None:
    change = walk["close"].diff()
    gain, loss = _wilder(change.clip(lower=0), 7), _wilder((-change).clip(lower=0), 7)
    _close_to(features["7_day_RSI"], 100 * gain / (gain + loss))


def _ema(values: np.ndarray, period: int, start: int = 0) -> np.ndarray:
    """TA-Lib's EMA: seeded with the SMA of ``period`` values from ``start``."""
    out = np.full(len(values), np.nan)
    alpha = 2 / (period + 1)
    out[start + period - 1] = values[start : start + period].mean()
    for i in range(start + period, len(values)):
        out[i] = alpha * values[i] + (1 - alpha) * out[i - 1]
    return out


def test_macd_12_26_9(walk: pd.DataFrame, features: pd.DataFrame) -> None:
    close = walk["close"].to_numpy()
    # TA-Lib starts the fast EMA where the slow one starts, so both cover the same bars.
    macd = _ema(close, 12, start=26 - 12) - _ema(close, 26)
    signal = _ema(macd, 9, start=25)
    defined = np.arange(len(close)) >= WARMUP_BARS
    _close_to(features["MACD"].where(defined), np.where(defined, macd, np.nan))
    _close_to(features["MACD_Signal"], signal)
    _close_to(features["MACD_Hist"], np.where(defined, macd - signal, np.nan))
    # ...and, once the different seeds have decayed, agrees with pandas' own EMAs (seeded with close[0]).
    fast, slow = (walk["close"].ewm(span=s, adjust=False).mean() for s in (12, 26))
    _close_to(features["MACD"].iloc[BURN_IN:], (fast - slow).iloc[BURN_IN:], rtol=0, atol=1e-4)


def test_ppo_uses_simple_moving_averages(walk: pd.DataFrame, features: pd.DataFrame) -> None:
    """PPO 12/26 with matype 0 (SMA), TA-Lib's historical default; TA-Lib >= 0.8 defaults to EMA."""
    fast, slow = walk["close"].rolling(12).mean(), walk["close"].rolling(26).mean()
    _close_to(features["PPO"], (fast - slow) / slow * 100)
    library_default = talib.PPO(walk["close"].to_numpy())
    assert not np.allclose(features["PPO"].iloc[WARMUP_BARS:], library_default[WARMUP_BARS:])


def test_stochastic_5_3_3(walk: pd.DataFrame, features: pd.DataFrame) -> None:
    lowest, highest = walk["low"].rolling(5).min(), walk["high"].rolling(5).max()
    fast_k = 100 * (walk["close"] - lowest) / (highest - lowest)
    slow_k = fast_k.rolling(3).mean()
    # TA-Lib aligns both outputs on SlowD's lookback (4 + 2 + 2 bars): SlowK's first two values are hidden.
    _close_to(features["SlowK"], slow_k.where(np.arange(len(walk)) >= 8))
    _close_to(features["SlowD"], slow_k.rolling(3).mean())


def test_aroon_7(walk: pd.DataFrame, features: pd.DataFrame) -> None:
    def since_extreme(window: np.ndarray, pick: str) -> float:
        reversed_ = window[::-1]
        return float(np.argmax(reversed_) if pick == "max" else np.argmin(reversed_))

    bars_since_high = walk["high"].rolling(8).apply(since_extreme, raw=True, args=("max",))
    bars_since_low = walk["low"].rolling(8).apply(since_extreme, raw=True, args=("min",))
    _close_to(features["AroonUp"], 100 * (7 - bars_since_high) / 7)
    _close_to(features["AroonDown"], 100 * (7 - bars_since_low) / 7)


def test_mfi_7(walk: pd.DataFrame, features: pd.DataFrame) -> None:
    typical = (walk["high"] + walk["low"] + walk["close"]) / 3
    flow = typical * walk["volume"]
    positive = flow.where(typical > typical.shift(1), 0.0).rolling(7).sum()
    negative = flow.where(typical < typical.shift(1), 0.0).rolling(7).sum()
    expected = (100 * positive / (positive + negative)).where(np.arange(len(walk)) >= 7)
    _close_to(features["7_day_MFI"], expected)


def test_adx_and_dx_are_talib_with_period_7(walk: pd.DataFrame, features: pd.DataFrame) -> None:
    high, low, close = (walk[c].to_numpy() for c in ("high", "low", "close"))
    _close_to(features["7_day_ADX"], talib.ADX(high, low, close, timeperiod=7))
    _close_to(features["7_day_DX"], talib.DX(high, low, close, timeperiod=7))
    # ADX is the Wilder average of DX: its first value is the mean of the first 7 DX values.
    dx = features["7_day_DX"].dropna()
    assert features["7_day_ADX"].dropna().iloc[0] == pytest.approx(dx.iloc[:7].mean())


# --- degenerate bars ------------------------------------------------------------------------------
def test_zero_volume_and_flat_bars_give_no_inf() -> None:
    n = 80
    flat = np.full(n, 50.0)
    bars = _bars(flat, flat, flat, np.zeros(n))
    result = compute_features(bars)
    assert not np.isinf(result.to_numpy()).any()
    assert result["OBV_pct_change"].isna().all(), "OBV stays 0: every change is relative to zero"
    assert result["AD_pct_change"].isna().all()
    assert (result["BBANDS_distance_pct"].iloc[WARMUP_BARS:] == 0).all()
    assert (result["2_day_SMA_20_day_SMA_pct_diff"].iloc[WARMUP_BARS:] == 0).all()


def test_mixed_zero_volume_bars_give_no_inf(walk: pd.DataFrame) -> None:
    bars = walk.copy()
    bars.loc[bars.index[::2], "volume"] = 0.0  # like the hourly sample: half the bars have no volume
    bars.loc[bars.index[5:40:3], ["high", "low"]] = bars.loc[bars.index[5:40:3], ["close", "close"]].to_numpy()
    result = compute_features(bars)
    assert not np.isinf(result.to_numpy()).any()
    assert result.iloc[WARMUP_BARS:].notna().all().all()


def test_zero_prices_give_nan_not_inf() -> None:
    bars = random_walk(60)
    bars.iloc[:3, :4] = 0.0  # like AAVE's first bar, before validation drops it
    assert not np.isinf(compute_features(bars).to_numpy()).any()


# --- refused input --------------------------------------------------------------------------------
def test_missing_columns_are_refused(walk: pd.DataFrame) -> None:
    with pytest.raises(DataFormatError, match=r"lack columns \['volume'\]"):
        compute_features(walk.drop(columns="volume"))


def test_unsorted_index_is_refused(walk: pd.DataFrame) -> None:
    with pytest.raises(DataFormatError, match="not sorted"):
        compute_features(walk.iloc[::-1])


def test_duplicate_bar_times_are_refused(walk: pd.DataFrame) -> None:
    with pytest.raises(DataFormatError, match="duplicate"):
        compute_features(pd.concat([walk.iloc[:5], walk.iloc[4:10]]))


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_inputs_are_refused(walk: pd.DataFrame, value: float) -> None:
    bars = walk.copy()
    bars.loc[bars.index[50], "close"] = value
    with pytest.raises(DataFormatError, match=r"non-finite value\(s\) \(first: close at 2022-02-20"):
        compute_features(bars)


# --- real sample data -----------------------------------------------------------------------------
def _documented_nan(bars: pd.DataFrame) -> pd.Series:
    """Rows where a feature is NaN by the documented rules, recomputed independently."""
    close = bars["close"]
    lower = close.rolling(7).mean() - 2 * close.rolling(7).std(ddof=0)
    obv_previous = _obv(close, bars["volume"]).shift(1)
    ad_previous = _ad(bars).shift(1)
    # 1e-9 relative slack: the rolling-std recomputation may land on the other side of 0 by rounding.
    return (lower <= 1e-9 * close) | (obv_previous == 0) | (ad_previous == 0)


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_sample_data_has_no_inf_and_nan_only_in_warmup_or_documented_cases(path: Path) -> None:
    bars = _sample(path)
    result = compute_features(bars)
    assert not np.isinf(result.to_numpy()).any()
    after = result.iloc[WARMUP_BARS:]
    nan_rows = after.isna().any(axis=1)
    unexplained = nan_rows & ~_documented_nan(bars).iloc[WARMUP_BARS:]
    assert not unexplained.any(), f"NaN outside the documented cases at {after.index[unexplained][:5].tolist()}"
    # The documented cases are rare: a 7-bar lower Bollinger band <= 0 needs a several-fold jump within
    # a week (2017 alt-coin pumps); UNI's sample is the worst at ~4 % because its early history is a
    # sub-cent token (bad data, kept on purpose). Elsewhere it is a handful of rows.
    assert nan_rows.mean() < (0.05 if path.stem == "UNI" else 0.005)
    # Only BBANDS_distance_pct is ever undefined here (OBV/A/D never sit exactly on zero in real data).
    assert set(after.columns[after.isna().any()]) <= {"BBANDS_distance_pct"}


def test_sample_data_nan_share_after_warmup_is_tiny_overall() -> None:
    total = nan = 0
    for path in SAMPLE_FILES:
        after = compute_features(_sample(path)).iloc[WARMUP_BARS:]
        total += len(after)
        nan += int(after.isna().any(axis=1).sum())
    assert nan / total < 0.003


# --- feature_table and labelled_features ------------------------------------------------------------
def test_feature_table_has_date_then_features() -> None:
    bars = _sample(SAMPLE_DIR / "1h" / "BTC.csv")
    table = feature_table(bars)
    assert list(table.columns) == ["date", *FEATURE_NAMES]
    assert len(table) == len(bars)
    assert table["date"].iloc[0] == "2024-11-16 00:00:00"  # as in the stored CSV
    daily = feature_table(_sample(SAMPLE_DIR / "1d" / "BTC.csv"))
    assert daily["date"].iloc[-1] == "2025-02-20"
    pd.testing.assert_frame_equal(table[list(FEATURE_NAMES)], compute_features(bars).reset_index(drop=True))


def test_feature_table_needs_bar_times(walk: pd.DataFrame) -> None:
    with pytest.raises(DataFormatError, match="DatetimeIndex"):
        feature_table(walk.reset_index(drop=True))


def test_labelled_features_add_both_labels(walk: pd.DataFrame, features: pd.DataFrame) -> None:
    result = labelled_features(walk, horizon=10, up_pct=0.05, down_pct=0.03)
    assert list(result.columns) == [*FEATURE_NAMES, "uptrend_label", "downtrend_label"]
    pd.testing.assert_frame_equal(result[list(FEATURE_NAMES)], features)
    up = trend_labels(walk["close"], 10, 0.05, "uptrend")
    down = trend_labels(walk["close"], 10, 0.03, "downtrend")
    pd.testing.assert_series_equal(result["uptrend_label"], up)
    pd.testing.assert_series_equal(result["downtrend_label"], down)
    assert result[["uptrend_label", "downtrend_label"]].iloc[-10:].isna().all().all()
    assert set(result["downtrend_label"].dropna().unique()) == {0.0, 1.0}
    trainable = result.dropna()
    assert len(trainable) == len(walk) - WARMUP_BARS - 10


def test_any_remaining_inf_becomes_nan(walk: pd.DataFrame, monkeypatch: pytest.MonkeyPatch) -> None:
    """The last line of defence: whatever TA-Lib returns, no ±inf leaves compute_features."""

    def exploding_trix(close: np.ndarray, timeperiod: int) -> np.ndarray:
        out = np.full(len(close), np.inf)
        out[::2] = -np.inf
        return out

    monkeypatch.setattr(talib, "TRIX", exploding_trix)
    result = compute_features(walk)
    assert result["7_day_TRIX"].isna().all()
    assert result["7_day_RSI"].iloc[WARMUP_BARS:].notna().all()


def test_only_obv_and_ad_depend_on_where_the_history_starts() -> None:
    """OBV and A/D are running sums from the first bar: their percent changes never forget the start, so
    inference must use the same first bar as training. Every other feature forgets it (EMA seeds decay)."""
    bars = _sample(SAMPLE_DIR / "1d" / "BTC.csv")
    full = compute_features(bars).iloc[-100:]
    later_start = compute_features(bars.iloc[-600:]).iloc[-100:]
    differs = {name for name in FEATURE_NAMES if not np.allclose(full[name], later_start[name], rtol=1e-6)}
    assert differs == {"OBV_pct_change", "AD_pct_change"}
