"""OHLCV bars: parsing and the closed-bar rule. Pure (pandas only); storage lives in adapters."""

from __future__ import annotations

import io
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from common.errors import DataFormatError

COLUMNS: tuple[str, ...] = ("datetime", "open", "high", "low", "close", "volume")
PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")
INTERVALS: dict[str, timedelta] = {"1d": timedelta(days=1), "1h": timedelta(hours=1)}


def empty_bars() -> pd.DataFrame:
    """A frame with no bars but the right columns, dtypes and index (so callers need no special case)."""
    index = pd.DatetimeIndex([], dtype="datetime64[ns, UTC]", name="datetime")
    return pd.DataFrame({c: pd.Series(dtype="float64") for c in COLUMNS[1:]}, index=index)


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
        # round_trip: the default fast parser can be 1 ulp off, which would make rewrites drift.
        frame = pd.read_csv(io.BytesIO(payload), float_precision="round_trip")
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


def bar_labels(index: pd.DatetimeIndex, interval: str | None = None) -> pd.Index:
    """Bar open times as text: ``YYYY-MM-DD`` for daily bars, else with the time. Without ``interval``,
    daily means every bar opens at midnight."""
    if interval is not None:
        daily = interval_length(interval) >= INTERVALS["1d"]
    else:
        daily = bool(len(index)) and bool((index == index.normalize()).all())
    return pd.Index(index.strftime("%Y-%m-%d" if daily else "%Y-%m-%d %H:%M:%S"), name="datetime")


def to_ohlcv_csv(bars: pd.DataFrame, *, interval: str | None = None, header: bool = True) -> bytes:
    """The inverse of :func:`parse_ohlcv_csv`: the stored format (floats round-trip exactly).
    ``header=False`` gives rows to append to an existing object."""
    frame = bars.loc[:, list(COLUMNS[1:])]
    stamps = bar_labels(frame.index, interval)
    # repr() is the shortest text that parses back to the same float (pandas' writer rounds to 16
    # digits); integral volumes drop the ".0", as vendors write them.
    text = frame.astype("float64").map(repr)
    text["volume"] = text["volume"].str.removesuffix(".0")
    return text.set_axis(stamps).to_csv(header=header).encode()


def closed_mask(index: pd.DatetimeIndex, interval: str, as_of: datetime) -> np.ndarray:
    """True for bars whose close time (open + interval) is at or before ``as_of``."""
    return np.asarray((index + interval_length(interval)) <= pd.Timestamp(as_of))


def closed_bars(bars: pd.DataFrame, interval: str, as_of: datetime) -> pd.DataFrame:
    """Bars closed at ``as_of``: the open bar is never used."""
    return bars.loc[closed_mask(bars.index, interval, as_of)]
