"""A user's own daily CSV with planted defects, and what ingestion must say about each of them.

Sixty days of clean bars (2024-01-01 .. 2024-03-01) in which thirteen kinds of defect are planted on
known days: nine rows that validation refuses (each with its time and reason) and findings that are
kept or expected (duplicates, disorder, zero volume, a gap, the still-open bar at the as-of time).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

SYMBOL = "PLNT"
FIRST_DAY = date(2024, 1, 1)
LAST_DAY = date(2024, 3, 1)  # open at AS_OF: reported as the open bar, never stored
AS_OF = datetime(2024, 3, 1, 0, 5, tzinfo=UTC)
HEADER = "datetime,open,high,low,close,volume"

# (time label as the reports print it, kind, reason): every row that must be refused, in time order.
REFUSED: list[tuple[str, str, str]] = [
    ("2024-01-10 00:00", "non_numeric_value", "close 'abc' is not a number"),
    ("2024-01-12 00:00", "missing_value", "volume is missing"),
    ("2024-01-14 12:00", "misaligned_timestamp", "opens at 12:00 UTC, off the 1d grid"),
    ("2024-01-16 00:00", "non_positive_price", "close 0 (must be > 0)"),
    ("2024-01-18 00:00", "non_positive_price", "low -5 (must be > 0)"),
    ("2024-01-20 00:00", "high_below_low", "high 90 < low 95"),
    ("2024-01-22 00:00", "price_outside_range", "open 120 > high 110"),
    ("2024-01-24 00:00", "negative_volume", "volume -10 < 0"),
    ("2024-01-26 00:00", "conflicting_duplicate", "differs from the later row of this open time, which is kept: "
     "close 101 vs 102"),
]  # fmt: skip

# kind -> (severity, count, first example): every finding, refused or not.
FINDINGS: dict[str, tuple[str, int, str]] = {
    "non_numeric_value": ("error", 1, "2024-01-10 00:00"),
    "missing_value": ("error", 1, "2024-01-12 00:00"),
    "misaligned_timestamp": ("error", 1, "2024-01-14 12:00"),
    "non_positive_price": ("error", 2, "2024-01-16 00:00"),
    "high_below_low": ("error", 1, "2024-01-20 00:00"),
    "price_outside_range": ("error", 1, "2024-01-22 00:00"),
    "negative_volume": ("error", 1, "2024-01-24 00:00"),
    "conflicting_duplicate": ("error", 1, "2024-01-26 00:00"),
    "duplicate_timestamp": ("warning", 1, "2024-01-28 00:00"),
    "out_of_order": ("warning", 1, "2024-01-30 00:00"),
    "zero_volume": ("warning", 1, "2024-02-02 00:00"),
    "gap": ("warning", 8, "2024-01-10 00:00"),  # the 7 days refused whole (01-14 and 01-26 keep a row) + 02-04
    "open_bar": ("info", 1, "2024-03-01 00:00"),
}
DAYS_STORED = 60 - 8  # 2024-01-01 .. 2024-02-29, less the seven refused days and the missing 02-04


def clean_row(day: date) -> str:
    n = (day - FIRST_DAY).days
    return f"{day:%Y-%m-%d},100,110,90,{100 + n % 5},{1000 + n}"


def planted_rows() -> list[str]:
    special = {
        date(2024, 1, 10): ["2024-01-10,100,110,90,abc,1000"],
        date(2024, 1, 12): ["2024-01-12,100,110,90,100,"],
        date(2024, 1, 14): [clean_row(date(2024, 1, 14)), "2024-01-14 12:00:00,100,110,90,100,1000"],
        date(2024, 1, 16): ["2024-01-16,100,110,90,0,1000"],
        date(2024, 1, 18): ["2024-01-18,100,110,-5,100,1000"],
        date(2024, 1, 20): ["2024-01-20,92,90,95,93,1000"],
        date(2024, 1, 22): ["2024-01-22,120,110,90,100,1000"],
        date(2024, 1, 24): ["2024-01-24,100,110,90,100,-10"],
        date(2024, 1, 26): ["2024-01-26,100,110,90,101,1000", "2024-01-26,100,110,90,102,1000"],
        date(2024, 1, 28): [clean_row(date(2024, 1, 28))] * 2,
        date(2024, 1, 30): [clean_row(date(2024, 1, 31)), clean_row(date(2024, 1, 30))],  # swapped
        date(2024, 1, 31): [],
        date(2024, 2, 2): ["2024-02-02,100,110,90,100,0"],
        date(2024, 2, 4): [],  # missing: a gap
    }
    rows = []
    day = FIRST_DAY
    while day <= LAST_DAY:
        rows += special.get(day, [clean_row(day)])
        day += timedelta(days=1)
    return rows


def write_planted(folder: Path, symbol: str = SYMBOL) -> Path:
    """``folder/1d/{symbol}.csv`` with the planted defects; returns ``folder`` (a --replay-dir)."""
    path = folder / "1d" / f"{symbol}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([HEADER, *planted_rows()]) + "\n")
    return folder


def write_clean(folder: Path, symbol: str, first: date, days: int, *, close_offset: float = 0.0) -> Path:
    """``folder/1d/{symbol}.csv`` with ``days`` clean bars from ``first``."""
    path = folder / "1d" / f"{symbol}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [HEADER]
    for n in range(days):
        day = first + timedelta(days=n)
        lines.append(f"{day:%Y-%m-%d},100,110,90,{100 + n % 7 + close_offset},{1000 + n}")
    path.write_text("\n".join(lines) + "\n")
    return folder


def iso(label: str) -> str:
    """The JSON time of a report label: ``2024-01-14 12:00`` -> ``2024-01-14T12:00:00+00:00``."""
    return datetime.fromisoformat(label).replace(tzinfo=UTC).isoformat()
