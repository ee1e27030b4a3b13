"""OHLCV bars: parsing and the closed-bar rule. Pure (pandas only); storage lives in adapters."""

from __future__ import annotations

import io
from datetime import datetime, timedelta
from typing import Literal

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_numeric_dtype

from common.core.errors import DataFormatError

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


InvalidCells = Literal["raise", "keep"]
#: Cells named in one error message; the rest are counted.
_CELLS_NAMED = 5


def number_cells(column: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """``column`` as float64, and a mask of its cells that are text but not a number (``abc``, ``12,5``).

    Blank cells are NaN (a missing value, not a non-number). The one place that decides what a number is:
    parsing uses it to name such cells, validation to refuse their rows.
    """
    if is_numeric_dtype(column.dtype) and not is_bool_dtype(column.dtype):
        return column.astype("float64"), np.zeros(len(column), dtype=bool)
    values = np.full(len(column), np.nan)
    bad = np.zeros(len(column), dtype=bool)
    for position, cell in enumerate(column.tolist()):
        if isinstance(cell, bool | np.bool_):
            bad[position] = True
        elif isinstance(cell, int | float | np.number):
            values[position] = float(cell)
        elif cell is None or cell is pd.NA or cell is pd.NaT:
            continue
        else:
            try:
                # float() of the text: exact (round trip), unlike a vectorised parser.
                values[position] = float(str(cell).strip())
            except ValueError:
                bad[position] = True
    return pd.Series(values, index=column.index, name=column.name, dtype="float64"), bad


def parse_ohlcv_csv(payload: bytes, *, source: str = "<bytes>", invalid_cells: InvalidCells = "raise") -> pd.DataFrame:
    """Parse ``datetime,open,high,low,close,volume`` CSV into a frame indexed by UTC bar open time.

    Raises :class:`DataFormatError` naming ``source`` when it is not a CSV or columns are missing, and naming
    the line, the column and the text of any timestamp that is not one. A value cell that is not a number
    does the same with ``invalid_cells="raise"``; with ``"keep"`` its column keeps the cell's text (the
    others are floats) so that validation refuses that row, and only that row, naming the cell. Blank cells
    are NaN/NaT: validation refuses those rows. Content checks (gaps, duplicates, non-positive prices)
    belong to validation.
    """
    try:
        # round_trip: the default fast parser can be 1 ulp off, which would make rewrites drift.
        frame = pd.read_csv(io.BytesIO(payload), float_precision="round_trip")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataFormatError(f"{source}: not a CSV file ({exc})") from None
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise DataFormatError(f"{source}: missing columns {missing}; expected {list(COLUMNS)}")
    lines = np.arange(len(frame)) + 2  # the header is line 1
    stamps = frame["datetime"]
    try:
        index = pd.DatetimeIndex(pd.to_datetime(stamps, utc=True, format="ISO8601", errors="coerce"), name="datetime")
    except (ValueError, TypeError, OverflowError) as exc:
        raise DataFormatError(f"{source}: unparseable values (datetime: {exc})") from None
    not_a_time = np.asarray(index.isna() & stamps.notna())
    if not_a_time.any():
        named = [f"line {lines[i]}: datetime {stamps.iloc[i]!r} is not a timestamp" for i in np.flatnonzero(not_a_time)]
        raise DataFormatError(f"{source}: unparseable values: {_enumerate(named)} (ISO 8601 expected, e.g. 2024-01-31)")
    values: dict[str, pd.Series] = {}
    named = []
    for column in COLUMNS[1:]:
        numbers, bad = number_cells(frame[column])
        if bad.any():
            named += [
                (lines[i], f"line {lines[i]} ({_label(index[i])}): {column} {frame[column].iloc[i]!r} is not a number")
                for i in np.flatnonzero(bad)
            ]
            if invalid_cells == "keep":  # the text stays for validation to name; the other cells are floats
                numbers = numbers.astype(object).where(~bad, frame[column])
        values[column] = numbers
    if named and invalid_cells == "raise":
        raise DataFormatError(f"{source}: unparseable values: {_enumerate([text for _, text in sorted(named)])}")
    result = pd.DataFrame(values)
    result.index = index
    return result


def _label(stamp: pd.Timestamp) -> str:
    return "no time" if pd.isna(stamp) else f"{stamp:%Y-%m-%d %H:%M}"


def _enumerate(items: list[str]) -> str:
    shown = "; ".join(items[:_CELLS_NAMED])
    return shown + (f"; and {len(items) - _CELLS_NAMED} more" if len(items) > _CELLS_NAMED else "")


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
