"""Trend labels: how far the 10-bar SMA moves over the next h bars, ``pct = (SMA10[t+h] - SMA10[t]) / SMA10[t]``.

uptrend: ``pct >= +up``; downtrend: ``pct <= -down``. The last ``h`` bars have no label yet (their
outcome lies in the future) and come back as NaN, never as a 0 that would poison training.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SMA_WINDOW = 10


def forward_sma_change(close: pd.Series, horizon: int) -> pd.Series:
    sma = close.rolling(SMA_WINDOW, min_periods=SMA_WINDOW).mean()
    return (sma.shift(-horizon) - sma) / sma


def trend_labels(close: pd.Series, horizon: int, threshold: float, trend: str) -> pd.Series:
    """1.0/0.0 labels for ``trend``, NaN where the horizon is not yet observed or SMA10 undefined."""
    pct = forward_sma_change(close, horizon)
    if trend == "uptrend":
        hit = pct >= threshold
    elif trend == "downtrend":
        hit = pct <= -threshold
    else:
        raise ValueError(f"unknown trend {trend!r}; expected 'uptrend' or 'downtrend'")
    return hit.astype("float64").where(pct.notna(), np.nan).rename(f"{trend}_label")
