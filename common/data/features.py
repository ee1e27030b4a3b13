"""The 19 model features (the original API's row: momentum, trend, volume and volatility indicators),
computed from OHLCV bars with TA-Lib.

Every feature at bar t uses bars <= t only (checked by :mod:`common.data.lookahead`). Parameters are pinned
explicitly rather than taken from TA-Lib's defaults, because those defaults change between releases
(TA-Lib 0.8 switched PPO from SMA to EMA) and the models must see what the original vendor served.

NaN policy: a feature is NaN during its warm-up (the first :data:`WARMUP_BARS` bars on clean data) and
where it is mathematically undefined:

- ``OBV_pct_change`` / ``AD_pct_change``: ``100 * (x[t] - x[t-1]) / abs(x[t-1])``, NaN where
  ``x[t-1] == 0``. Both lines cross zero, so the absolute value keeps the sign of the change (a rise is
  positive even from a negative level); near zero the value is large but finite.
- ``BBANDS_distance_pct``: NaN where the lower band is <= 0 (a percent of a non-positive level means
  nothing).
- SMA pct diffs: NaN where the reference SMA is 0 (only possible with zero prices).

Anything else that comes out non-finite (TA-Lib divisions on degenerate bars such as zero prices) is
turned into NaN, so no ±inf ever reaches a model. Training drops rows with a NaN feature.

History start matters: OBV and the A/D line are running sums from the first bar given, so their percent
changes depend on where the history starts, forever (the EMA-based features forget their seed within a
few hundred bars). Training and inference must compute features from the same first bar.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import talib

from common.core.errors import DataFormatError
from common.data.ohlcv import bar_labels
from common.data.targets import trend_labels

FEATURE_NAMES: tuple[str, ...] = (
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

# Columns the features read; ``open`` is not used by any of the 19 indicators.
REQUIRED_COLUMNS: tuple[str, ...] = ("high", "low", "close", "volume")

PERIOD = 7
MACD_FAST, MACD_SLOW, MACD_SIGNAL = 12, 26, 9
STOCH_FASTK, STOCH_SLOWK, STOCH_SLOWD = 5, 3, 3
SMA_MATYPE = 0  # TA-Lib MA_Type.SMA

# Bars before every feature is defined on clean data: MACD's lookback (26 - 1) + (9 - 1). The next
# longest are PPO (25), TRIX (19) and SMA20 (19). Measured in tests/unit/test_features.py.
WARMUP_BARS = 33

LABEL_COLUMNS: tuple[str, ...] = ("uptrend_label", "downtrend_label")


def compute_features(bars: pd.DataFrame) -> pd.DataFrame:
    """The 19 features, one row per bar (same index), float64; NaN in the warm-up and where undefined.

    Raises :class:`DataFormatError` when a required column is missing, the index is not sorted and
    unique, or an input value is not finite: TA-Lib silently turns one interior NaN into NaN for the
    rest of the series, so bad bars must be refused (or dropped by validation) before this point.
    """
    _check_bars(bars)
    high, low, close, volume = (np.ascontiguousarray(bars[c].to_numpy(dtype="float64")) for c in REQUIRED_COLUMNS)
    with np.errstate(divide="ignore", invalid="ignore"):
        aroon_down, aroon_up = talib.AROON(high, low, timeperiod=PERIOD)
        macd, macd_signal, macd_hist = talib.MACD(
            close, fastperiod=MACD_FAST, slowperiod=MACD_SLOW, signalperiod=MACD_SIGNAL
        )
        slow_k, slow_d = talib.STOCH(
            high,
            low,
            close,
            fastk_period=STOCH_FASTK,
            slowk_period=STOCH_SLOWK,
            slowk_matype=SMA_MATYPE,
            slowd_period=STOCH_SLOWD,
            slowd_matype=SMA_MATYPE,
        )
        upper, _middle, lower = talib.BBANDS(close, timeperiod=PERIOD, nbdevup=2.0, nbdevdn=2.0, matype=SMA_MATYPE)
        sma2, sma10, sma20 = (talib.SMA(close, timeperiod=n) for n in (2, 10, 20))
        columns = {
            "7_day_ADX": talib.ADX(high, low, close, timeperiod=PERIOD),
            "AroonDown": aroon_down,
            "AroonUp": aroon_up,
            "MACD": macd,
            "MACD_Signal": macd_signal,
            "MACD_Hist": macd_hist,
            "7_day_RSI": talib.RSI(close, timeperiod=PERIOD),
            "SlowK": slow_k,
            "SlowD": slow_d,
            "7_day_MFI": talib.MFI(high, low, close, volume, timeperiod=PERIOD),
            "7_day_DX": talib.DX(high, low, close, timeperiod=PERIOD),
            # TA-Lib's TRIX is already 100 * ROC of the triple EMA (verified against pandas in the tests).
            "7_day_TRIX": talib.TRIX(close, timeperiod=PERIOD),
            # matype pinned: TA-Lib >= 0.8 defaults PPO to EMA, the original vendor's PPO used SMA.
            "PPO": talib.PPO(close, fastperiod=MACD_FAST, slowperiod=MACD_SLOW, matype=SMA_MATYPE),
            "OBV_pct_change": line_pct_change(talib.OBV(close, volume)),
            "AD_pct_change": line_pct_change(talib.AD(high, low, close, volume)),
            "BBANDS_distance_pct": np.where(lower > 0, (upper - lower) / lower * 100.0, np.nan),
            "2_day_SMA_10_day_SMA_pct_diff": pct_diff(sma2, sma10),
            "2_day_SMA_20_day_SMA_pct_diff": pct_diff(sma2, sma20),
            "10_day_SMA_20_day_SMA_pct_diff": pct_diff(sma10, sma20),
        }
    values = np.column_stack([np.asarray(columns[name], dtype="float64") for name in FEATURE_NAMES])
    values[~np.isfinite(values)] = np.nan
    assert not np.isinf(values).any()
    return pd.DataFrame(values, index=bars.index, columns=list(FEATURE_NAMES))


def line_pct_change(line: np.ndarray) -> np.ndarray:
    """``100 * (x[t] - x[t-1]) / abs(x[t-1])``; NaN at t=0 and where ``x[t-1] == 0``.

    For lines that cross zero (OBV, A/D) a plain ``pct_change`` flips sign on a negative base and
    divides by zero at the crossing; this form keeps "up is positive" and never yields ±inf.
    """
    out = np.full(line.shape, np.nan, dtype="float64")
    if line.size > 1:
        previous = line[:-1]
        with np.errstate(divide="ignore", invalid="ignore"):
            out[1:] = np.where(previous != 0, 100.0 * (line[1:] - previous) / np.abs(previous), np.nan)
    return out


def pct_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(a - b) / b * 100``, NaN where ``b == 0``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b != 0, (a - b) / b * 100.0, np.nan)


def feature_table(bars: pd.DataFrame) -> pd.DataFrame:
    """Features with a leading ``date`` column (bar open time, UTC, as in the stored CSV) for printing or
    writing a CSV."""
    if not isinstance(bars.index, pd.DatetimeIndex):
        raise DataFormatError(f"bars must be indexed by bar open time (DatetimeIndex), got {type(bars.index).__name__}")
    features = compute_features(bars)
    table = features.reset_index(drop=True)
    table.insert(0, "date", bar_labels(bars.index))
    return table


def labelled_features(bars: pd.DataFrame, *, horizon: int, up_pct: float, down_pct: float) -> pd.DataFrame:
    """Features plus ``uptrend_label``/``downtrend_label`` (1.0/0.0, NaN where the outcome is unknown).

    ``up_pct``/``down_pct`` are fractions (0.05 = 5 %), as in settings. Rows with a NaN feature or label
    are kept here; training drops them, so the caller sees exactly what was dropped.
    """
    features = compute_features(bars)
    close = bars["close"].astype("float64")
    features["uptrend_label"] = trend_labels(close, horizon, up_pct, "uptrend")
    features["downtrend_label"] = trend_labels(close, horizon, down_pct, "downtrend")
    return features


def _check_bars(bars: pd.DataFrame) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in bars.columns]
    if missing:
        raise DataFormatError(f"bars lack columns {missing}; features need {list(REQUIRED_COLUMNS)}")
    if not bars.index.is_unique:
        duplicated = bars.index[bars.index.duplicated()][:3].tolist()
        raise DataFormatError(f"bars index has duplicate bar times (e.g. {duplicated}); deduplicate first")
    if not bars.index.is_monotonic_increasing:
        raise DataFormatError("bars index is not sorted ascending by bar time; sort first")
    try:
        values = bars[list(REQUIRED_COLUMNS)].to_numpy(dtype="float64")
    except (TypeError, ValueError) as exc:
        raise DataFormatError(f"bars columns {list(REQUIRED_COLUMNS)} are not numeric ({exc})") from None
    finite = np.isfinite(values)
    if not finite.all():
        row, col = np.argwhere(~finite)[0]
        raise DataFormatError(
            f"bars have {int((~finite).sum())} non-finite value(s) (first: {REQUIRED_COLUMNS[col]} "
            f"at {bars.index[row]}); TA-Lib would spread one NaN to all later bars"
        )
