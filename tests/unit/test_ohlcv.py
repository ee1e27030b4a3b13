"""common.data.ohlcv: CSV parsing into UTC-indexed float bars, and the closed-bar rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from common.core.errors import DataFormatError
from common.data.ohlcv import interval_length, parse_ohlcv_csv
from tests.conftest import closed_bars

SAMPLE_DATA = Path(__file__).resolve().parents[2] / "sample_data"
SAMPLE_CSVS = sorted((SAMPLE_DATA / "ohlcv").glob("*/*.csv"))
HEADER = b"datetime,open,high,low,close,volume\n"


def _sample(interval: str, symbol: str) -> pd.DataFrame:
    path = SAMPLE_DATA / "ohlcv" / interval / f"{symbol}.csv"
    return parse_ohlcv_csv(path.read_bytes(), source=str(path))


def test_sample_data_is_present() -> None:
    intervals = {p.parent.name for p in SAMPLE_CSVS}
    assert intervals == {"1d", "1h"}
    assert len(SAMPLE_CSVS) >= 2


@pytest.mark.parametrize("path", SAMPLE_CSVS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_sample_csv_parses(path: Path) -> None:
    payload = path.read_bytes()
    bars = parse_ohlcv_csv(payload, source=str(path))
    assert list(bars.columns) == ["open", "high", "low", "close", "volume"]
    assert all(dtype == "float64" for dtype in bars.dtypes)
    assert isinstance(bars.index, pd.DatetimeIndex)
    assert str(bars.index.tz) == "UTC"
    assert bars.index.name == "datetime"
    assert len(bars) == payload.count(b"\n") - 1  # one bar per data line
    assert bars.index.is_monotonic_increasing and bars.index.is_unique
    # Bars open on the interval grid.
    step = interval_length(path.parent.name)
    assert ((bars.index - bars.index[0]) % step == timedelta(0)).all()
    assert bars[["open", "high", "low", "close"]].notna().all().all()


def test_values_and_timestamps_are_parsed_exactly() -> None:
    payload = HEADER + b"2024-01-01T02:00:00+02:00,1.5,2.25,1,2,1000\n2024-01-02,2,3,1.75,2.5,0\n"
    bars = parse_ohlcv_csv(payload)
    assert list(bars.index) == [
        pd.Timestamp("2024-01-01T00:00:00Z"),
        pd.Timestamp("2024-01-02T00:00:00Z"),
    ]
    assert bars.iloc[0].tolist() == [1.5, 2.25, 1.0, 2.0, 1000.0]
    assert bars.iloc[1].tolist() == [2.0, 3.0, 1.75, 2.5, 0.0]


def test_extra_columns_are_dropped() -> None:
    payload = b"datetime,open,high,low,close,volume,adj_close\n2024-01-01,1,2,0.5,1.5,10,1.4\n"
    assert list(parse_ohlcv_csv(payload).columns) == ["open", "high", "low", "close", "volume"]


@pytest.mark.parametrize(
    ("payload", "detail"),
    [
        (b"datetime,open,high,low,close\n2024-01-01,1,2,0.5,1.5\n", "volume"),
        (b"date,open,high,low,close,volume\n2024-01-01,1,2,0.5,1.5,10\n", "datetime"),
        (HEADER + b"2024-01-01,1,2,abc,1.5,10\n", "unparseable"),
        (HEADER + b"yesterday,1,2,0.5,1.5,10\n", "unparseable"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe\x00", "not a CSV"),
        (bytes(range(256)) * 4, "not a CSV"),
        (b"", "not a CSV"),
    ],
    ids=["missing-volume", "missing-datetime", "non-numeric", "bad-timestamp", "png", "binary", "empty"],
)
def test_bad_payload_raises_data_format_error_naming_the_source(payload: bytes, detail: str) -> None:
    source = "s3://bucket/ohlcv/interval=1d/symbol=BTC/bars.csv"
    with pytest.raises(DataFormatError) as excinfo:
        parse_ohlcv_csv(payload, source=source)
    assert source in str(excinfo.value)
    assert detail in str(excinfo.value)


# --- closed bars --------------------------------------------------------------------------------
def test_interval_lengths() -> None:
    assert interval_length("1d") == timedelta(days=1)
    assert interval_length("1h") == timedelta(hours=1)


@pytest.mark.parametrize("interval", ["5m", "1D", "", "1w"])
def test_unknown_interval_raises_data_format_error(interval: str) -> None:
    with pytest.raises(DataFormatError, match="interval"):
        interval_length(interval)


def test_closed_bars_daily_excludes_the_open_bar() -> None:
    bars = _sample("1d", "BTC")
    assert bars.index[-1] == pd.Timestamp("2025-02-20T00:00Z")
    closed = closed_bars(bars, "1d", datetime(2025, 2, 20, tzinfo=UTC))
    assert closed.index[-1] == pd.Timestamp("2025-02-19T00:00Z")
    assert len(closed) == len(bars) - 1
    pd.testing.assert_frame_equal(closed, bars.iloc[:-1])


@pytest.mark.parametrize(
    ("as_of", "last_closed"),
    [
        (datetime(2025, 2, 20, 23, 59, 59, tzinfo=UTC), "2025-02-19"),  # 2025-02-20 bar still open
        (datetime(2025, 2, 21, tzinfo=UTC), "2025-02-20"),  # closes exactly at as_of: closed
        (datetime(2025, 2, 20, 1, tzinfo=timezone(timedelta(hours=1))), "2025-02-19"),  # 00:00Z
        (datetime(2024, 6, 1, 12, tzinfo=UTC), "2024-05-31"),
    ],
)
def test_closed_bars_daily_boundaries(as_of: datetime, last_closed: str) -> None:
    closed = closed_bars(_sample("1d", "BTC"), "1d", as_of)
    assert closed.index[-1] == pd.Timestamp(last_closed, tz="UTC")


@pytest.mark.parametrize(
    ("as_of", "last_closed"),
    [
        (datetime(2025, 2, 20, tzinfo=UTC), "2025-02-19T23:00Z"),  # last bar closes exactly at as_of
        (datetime(2025, 2, 19, 23, 59, tzinfo=UTC), "2025-02-19T22:00Z"),  # 23:00 bar still open
        (datetime(2025, 2, 19, 23, tzinfo=UTC), "2025-02-19T22:00Z"),
        (datetime(2025, 2, 1, 12, 30, tzinfo=UTC), "2025-02-01T11:00Z"),
    ],
)
def test_closed_bars_hourly_boundaries(as_of: datetime, last_closed: str) -> None:
    bars = _sample("1h", "BTC")
    closed = closed_bars(bars, "1h", as_of)
    assert closed.index[-1] == pd.Timestamp(last_closed)
    assert (closed.index + timedelta(hours=1) <= pd.Timestamp(as_of)).all()
    assert len(closed) == (bars.index + timedelta(hours=1) <= pd.Timestamp(as_of)).sum()


def test_closed_bars_before_first_bar_is_empty() -> None:
    bars = _sample("1d", "BTC")
    assert closed_bars(bars, "1d", bars.index[0].to_pydatetime()).empty


def test_closed_bars_rejects_unknown_interval() -> None:
    with pytest.raises(DataFormatError):
        closed_bars(_sample("1d", "BTC"), "5m", datetime(2025, 1, 1, tzinfo=UTC))
