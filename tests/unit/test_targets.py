"""common.data.targets: pct = (SMA10[t+h] - SMA10[t]) / SMA10[t]; uptrend pct >= +x, downtrend pct <= -x."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from common.data.targets import forward_sma_change, trend_labels

# 30 hand-written closes: a rise, a plateau, a fall.
CLOSES = [
    100, 101, 99, 102, 104, 103, 105, 108, 110, 109,
    112, 115, 118, 117, 120, 123, 125, 124, 126, 128,
    127, 124, 120, 116, 113, 110, 108, 105, 103, 100,
]  # fmt: skip
INDEX = pd.date_range("2024-01-01", periods=len(CLOSES), freq="D", tz="UTC")


def _close(values: list[float]) -> pd.Series:
    return pd.Series([float(v) for v in values], index=INDEX[: len(values)], name="close")


def _sma10_by_hand(values: list[float]) -> list[float | None]:
    return [None if t < 9 else sum(values[t - 9 : t + 1]) / 10 for t in range(len(values))]


def _expected_labels(values: list[float], horizon: int, threshold: float, trend: str) -> list[float | None]:
    sma = _sma10_by_hand(values)
    labels: list[float | None] = []
    for t in range(len(values)):
        if sma[t] is None or t + horizon >= len(values):
            labels.append(None)
            continue
        pct = (sma[t + horizon] - sma[t]) / sma[t]
        hit = pct >= threshold if trend == "uptrend" else pct <= -threshold
        labels.append(1.0 if hit else 0.0)
    return labels


def _as_list(series: pd.Series) -> list[float | None]:
    return [None if math.isnan(v) else v for v in series.tolist()]


@pytest.mark.parametrize("trend", ["uptrend", "downtrend"])
@pytest.mark.parametrize(("horizon", "threshold"), [(3, 0.02), (5, 0.05), (1, 0.01)])
def test_labels_match_hand_computed_sma10(trend: str, horizon: int, threshold: float) -> None:
    labels = trend_labels(_close(CLOSES), horizon, threshold, trend)
    expected = _expected_labels(CLOSES, horizon, threshold, trend)
    assert _as_list(labels) == expected
    assert labels.name == f"{trend}_label"
    assert labels.index.equals(INDEX)


def test_hand_computed_labels_have_both_classes() -> None:
    """Guard for the test above: the sample series must exercise both outcomes for both trends."""
    for trend in ("uptrend", "downtrend"):
        values = {v for v in _expected_labels(CLOSES, 3, 0.02, trend) if v is not None}
        assert values == {0.0, 1.0}, trend


def test_forward_sma_change_matches_hand_computation() -> None:
    sma = _sma10_by_hand(CLOSES)
    pct = forward_sma_change(_close(CLOSES), 4)
    # t=9: SMA10 over closes[0:10] = 1041/10; t=13: closes[4:14] = 1101/10.
    assert sma[9] == pytest.approx(104.1) and sma[13] == pytest.approx(110.1)
    assert pct.iloc[9] == pytest.approx((110.1 - 104.1) / 104.1)
    for t in range(9, len(CLOSES) - 4):
        assert pct.iloc[t] == pytest.approx((sma[t + 4] - sma[t]) / sma[t])


@pytest.mark.parametrize("horizon", [1, 3, 10])
def test_warm_up_and_last_horizon_rows_are_nan(horizon: int) -> None:
    labels = trend_labels(_close(CLOSES), horizon, 0.05, "uptrend")
    assert labels.iloc[:9].isna().all(), "SMA10 undefined for the first 9 bars"
    assert labels.iloc[len(CLOSES) - horizon :].isna().all(), "outcome of the last h bars lies in the future"
    assert labels.iloc[9 : len(CLOSES) - horizon].notna().all()
    assert labels.notna().sum() == len(CLOSES) - horizon - 9


def test_unlabelled_rows_are_nan_not_zero() -> None:
    labels = trend_labels(_close(CLOSES), 5, 0.05, "downtrend")
    assert labels.dtype == np.float64
    assert set(labels.dropna().unique()) <= {0.0, 1.0}
    assert labels.isna().sum() == 9 + 5


# --- exact threshold boundaries -----------------------------------------------------------------
# Ten bars at 100 give SMA10 = 100 at t=9; the 11th close moves SMA10 at t=10 by (close - 100) / 10.
# Integer sums keep the arithmetic exact: 150 -> SMA 105 -> pct exactly 0.05.
@pytest.mark.parametrize(
    ("last_close", "up", "down"),
    [
        (150, 1.0, 0.0),  # pct = +0.05 exactly: uptrend uses >=
        (149, 0.0, 0.0),  # pct = +0.049
        (151, 1.0, 0.0),
        (50, 0.0, 1.0),  # pct = -0.05 exactly: downtrend uses <=
        (51, 0.0, 0.0),  # pct = -0.049
        (49, 0.0, 1.0),
        (100, 0.0, 0.0),  # flat
    ],
)
def test_threshold_boundaries(last_close: int, up: float, down: float) -> None:
    close = _close([100] * 10 + [last_close])
    pct = forward_sma_change(close, 1).iloc[9]
    assert pct == pytest.approx((last_close - 100) / 1000)
    if last_close in (150, 50):
        assert abs(pct) == 0.05, "the boundary case must hit the threshold exactly"
    assert trend_labels(close, 1, 0.05, "uptrend").iloc[9] == up
    assert trend_labels(close, 1, 0.05, "downtrend").iloc[9] == down


def test_thresholds_are_configurable() -> None:
    close = _close([100] * 10 + [130])  # pct = +0.03
    assert trend_labels(close, 1, 0.05, "uptrend").iloc[9] == 0.0
    assert trend_labels(close, 1, 0.03, "uptrend").iloc[9] == 1.0


@pytest.mark.parametrize("trend", ["sideways", "Uptrend", "up", ""])
def test_unknown_trend_raises_value_error(trend: str) -> None:
    with pytest.raises(ValueError, match="trend"):
        trend_labels(_close(CLOSES), 3, 0.05, trend)


# --- no look-ahead beyond the horizon -------------------------------------------------------------
@pytest.mark.parametrize("horizon", [1, 3, 5])
@pytest.mark.parametrize("trend", ["uptrend", "downtrend"])
def test_label_at_t_depends_only_on_bars_up_to_t_plus_h(horizon: int, trend: str) -> None:
    full = trend_labels(_close(CLOSES), horizon, 0.02, trend)
    for t in range(9, len(CLOSES) - horizon):
        truncated = trend_labels(_close(CLOSES[: t + horizon + 1]), horizon, 0.02, trend)
        assert truncated.iloc[t] == full.iloc[t], f"label {t} changed when bars after t+h were dropped"
        # And once bar t+h is missing, label t is unknown rather than guessed.
        shorter = trend_labels(_close(CLOSES[: t + horizon]), horizon, 0.02, trend)
        assert math.isnan(shorter.iloc[t])


def test_label_ignores_bars_after_t_plus_h_even_when_they_are_extreme() -> None:
    horizon, t = 3, 12
    shocked = list(CLOSES)
    for i in range(t + horizon + 1, len(shocked)):
        shocked[i] = 10_000.0
    base = trend_labels(_close(CLOSES), horizon, 0.02, "uptrend")
    after = trend_labels(_close(shocked), horizon, 0.02, "uptrend")
    assert after.iloc[: t + 1].equals(base.iloc[: t + 1])
