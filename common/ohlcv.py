"""OHLCV bars: parsing and the closed-bar rule. Pure (pandas only); storage lives in adapters."""

from __future__ import annotations

import io
from datetime import datetime, timedelta

import pandas as pd

from common.errors import DataFormatError

COLUMNS: tuple[str, ...] = ("datetime", "open", "high", "low", "close", "volume")
PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")
INTERVALS: dict[str, timedelta] = {"1d": timedelta(days=1), "1h": timedelta(hours=1)}


def interval_length(interval: str) -> timedelta:
    try:
        return INTERVALS[interval]
    except KeyError:
        raise DataFormatError(f"unknown interval {interval!r}; expected one of {sorted(INTERVALS)}") from None


def parse_ohlcv_csv(payload: bytes, *, source: str = "<bytes>") -> pd.DataFrame:
    """Parse ``datetime,open,high,low,close,volume`` CSV into a frame indexed by UTC bar open time.

    Raises :class:`DataFormatError` naming ``source`` when columns are missing or values are not
    numbers/timestamps. Content checks (gaps, duplicates, non-positive prices) belong to validation.
    """
    try:
        frame = pd.read_csv(io.BytesIO(payload))
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataFormatError(f"{source}: not a CSV file ({exc})") from None
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise DataFormatError(f"{source}: missing columns {missing}; expected {list(COLUMNS)}")
    try:
        index = pd.to_datetime(frame["datetime"], utc=True, format="ISO8601")
        values = frame[list(COLUMNS[1:])].astype("float64")
    except (ValueError, TypeError) as exc:
        raise DataFormatError(f"{source}: unparseable values ({exc})") from None
    values.index = pd.DatetimeIndex(index, name="datetime")
    return values


def closed_bars(bars: pd.DataFrame, interval: str, as_of: datetime) -> pd.DataFrame:
    """Bars whose close time (open + interval) is at or before ``as_of``: the open bar is never used."""
    close_times = bars.index + interval_length(interval)
    return bars.loc[close_times <= pd.Timestamp(as_of)]
