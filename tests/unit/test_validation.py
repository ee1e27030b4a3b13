"""common.data.validation: one focused test per rule on small synthetic frames, the report, and the real
sample data (every file of both intervals, with the known defects found at their exact counts)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common.core.errors import DataValidationError
from common.data.ohlcv import closed_mask, interval_length, parse_ohlcv_csv
from common.data.validation import (
    MAX_EXAMPLES,
    IssueKind,
    Severity,
    ValidatedBars,
    bars_behind,
    missing_bar_times,
    validate_bars,
)

SAMPLE_OHLCV = Path(__file__).resolve().parents[2] / "sample_data" / "ohlcv"
SAMPLE_CSVS = sorted(SAMPLE_OHLCV.glob("*/*.csv"))
HEADER = b"datetime,open,high,low,close,volume\n"
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
SYMBOL = "TEST"

Row = tuple[str, float, float, float, float, float]


def _ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _frame(rows: Sequence[Row]) -> pd.DataFrame:
    """A frame shaped like parse_ohlcv_csv's output (UTC DatetimeIndex named datetime, float64 columns)."""
    index = pd.DatetimeIndex([_ts(r[0]) for r in rows], name="datetime", dtype="datetime64[ns, UTC]")
    data = [r[1:] for r in rows]
    return pd.DataFrame(data, index=index, columns=["open", "high", "low", "close", "volume"], dtype="float64")


def _good(stamp: str, close: float = 1.5, volume: float = 10.0) -> Row:
    return (stamp, 1.0, 2.0, 0.5, close, volume)


def _days(first: str, count: int) -> list[Row]:
    start = _ts(first)
    return [_good(f"{start + i * DAY:%Y-%m-%d}", close=1.0 + i / 8, volume=10.0 + i) for i in range(count)]


# Five clean daily bars, 2024-01-01..05; the last one closes exactly at AS_OF (fresh, nothing open).
FIVE_DAYS = _days("2024-01-01", 5)
AS_OF = _utc("2024-01-06")


def _validate(rows: Sequence[Row] | pd.DataFrame, **kwargs) -> ValidatedBars:
    bars = rows if isinstance(rows, pd.DataFrame) else _frame(rows)
    kwargs.setdefault("symbol", SYMBOL)
    kwargs.setdefault("interval", "1d")
    kwargs.setdefault("as_of", AS_OF)
    return validate_bars(bars, **kwargs)


def _only_issue(result: ValidatedBars, kind: IssueKind, count: int, severity: Severity) -> None:
    """The report holds exactly one issue, of this kind/count/severity."""
    kinds = [(i.kind, i.count, i.severity) for i in result.report.issues]
    assert kinds == [(kind, count, severity)]


def _assert_well_formed(bars: pd.DataFrame, interval: str) -> None:
    assert isinstance(bars.index, pd.DatetimeIndex)
    assert str(bars.index.tz) == "UTC"
    assert bars.index.is_monotonic_increasing
    assert bars.index.is_unique
    step = interval_length(interval)
    assert ((bars.index - pd.Timestamp(0, tz="UTC")) % step == timedelta(0)).all()
    assert list(bars.columns) == ["open", "high", "low", "close", "volume"]
    assert all(dtype == "float64" for dtype in bars.dtypes)


# --- the clean case ---------------------------------------------------------------------------------


def test_clean_series_passes_unchanged() -> None:
    result = _validate(FIVE_DAYS)
    assert result.report.issues == ()
    assert result.report.clean
    assert result.report.rejected_rows == 0
    assert (result.report.rows_in, result.report.rows_out) == (5, 5)
    pd.testing.assert_frame_equal(result.bars, _frame(FIVE_DAYS))
    assert result.report.first_bar == _utc("2024-01-01")
    assert result.report.last_closed_bar == _utc("2024-01-05")
    assert not result.report.stale


# --- rows that cannot be a bar: dropped, severity error ------------------------------------------------


@pytest.mark.parametrize("column", ["open", "high", "low", "close", "volume"])
def test_missing_value_row_is_dropped(column: str) -> None:
    bars = _frame(FIVE_DAYS)
    bars.loc[_ts("2024-01-03"), column] = np.nan
    # Rows 1-2 and 4-5 survive; the dropped row leaves a one-bar hole, which the gap rule reports.
    result = _validate(bars)
    assert result.report.count(IssueKind.MISSING_VALUE) == 1
    assert result.report.rejected_rows == 1
    assert _ts("2024-01-03") not in result.bars.index
    assert result.bars.notna().all().all()
    issue = next(i for i in result.report.issues if i.kind == IssueKind.MISSING_VALUE)
    assert issue.severity == Severity.ERROR
    assert issue.examples == ("2024-01-03 00:00",)


@pytest.mark.parametrize(
    ("interval", "stamps", "bad", "as_of"),
    [
        ("1d", ["2024-01-01", "2024-01-02 12:00", "2024-01-02"], "2024-01-02 12:00", "2024-01-03"),
        ("1d", ["2024-01-01", "2024-01-01 00:00:01", "2024-01-02"], "2024-01-01 00:00", "2024-01-03"),
        ("1h", ["2024-01-01 00:00", "2024-01-01 00:30", "2024-01-01 01:00"], "2024-01-01 00:30", "2024-01-01 02:00"),
    ],
    ids=["daily-noon", "daily-one-second-off", "hourly-half-past"],
)
def test_misaligned_timestamp_is_dropped(interval: str, stamps: list[str], bad: str, as_of: str) -> None:
    result = _validate([_good(s) for s in stamps], interval=interval, as_of=_utc(as_of))
    _only_issue(result, IssueKind.MISALIGNED_TIMESTAMP, 1, Severity.ERROR)
    assert result.report.rows_out == 2
    _assert_well_formed(result.bars, interval)
    assert result.report.issues[0].examples == (bad,)  # examples are minute-resolution stamps


@pytest.mark.parametrize("column", ["open", "high", "low", "close"])
@pytest.mark.parametrize("value", [0.0, -1.0])
def test_non_positive_price_is_dropped(column: str, value: float) -> None:
    bars = _frame(FIVE_DAYS)
    bars.loc[_ts("2024-01-05"), column] = value
    result = _validate(bars)
    # Reported as non-positive only (checked before high<low / outside-range, which it would also break).
    _only_issue(result, IssueKind.NON_POSITIVE_PRICE, 1, Severity.ERROR)
    assert list(result.bars.index) == [_ts(r[0]) for r in FIVE_DAYS[:4]]


def test_high_below_low_is_dropped() -> None:
    rows = [*FIVE_DAYS[:4], ("2024-01-05", 1.0, 0.9, 1.1, 1.0, 5.0)]
    result = _validate(rows)
    _only_issue(result, IssueKind.HIGH_BELOW_LOW, 1, Severity.ERROR)
    assert _ts("2024-01-05") not in result.bars.index


def test_high_equal_to_low_is_a_valid_flat_bar() -> None:
    rows = [*FIVE_DAYS[:4], ("2024-01-05", 3.0, 3.0, 3.0, 3.0, 5.0)]
    result = _validate(rows)
    assert result.report.clean
    assert result.report.rows_out == 5


@pytest.mark.parametrize(
    "row",
    [
        ("2024-01-05", 2.5, 2.0, 0.5, 1.0, 5.0),  # open above high
        ("2024-01-05", 0.4, 2.0, 0.5, 1.0, 5.0),  # open below low
        ("2024-01-05", 1.0, 2.0, 0.5, 2.5, 5.0),  # close above high
        ("2024-01-05", 1.0, 2.0, 0.5, 0.4, 5.0),  # close below low
    ],
    ids=["open-above-high", "open-below-low", "close-above-high", "close-below-low"],
)
def test_open_or_close_outside_range_is_dropped(row: Row) -> None:
    result = _validate([*FIVE_DAYS[:4], row])
    _only_issue(result, IssueKind.PRICE_OUTSIDE_RANGE, 1, Severity.ERROR)
    assert result.report.rows_out == 4


def test_open_and_close_on_the_range_edges_are_valid() -> None:
    rows = [*FIVE_DAYS[:3], ("2024-01-04", 0.5, 2.0, 0.5, 2.0, 5.0), ("2024-01-05", 2.0, 2.0, 0.5, 0.5, 5.0)]
    assert _validate(rows).report.clean


def test_negative_volume_is_dropped() -> None:
    rows = [*FIVE_DAYS[:4], _good("2024-01-05", volume=-1.0)]
    result = _validate(rows)
    _only_issue(result, IssueKind.NEGATIVE_VOLUME, 1, Severity.ERROR)
    assert result.report.rows_out == 4


# --- duplicates and order ---------------------------------------------------------------------------


def test_identical_duplicate_is_a_warning_and_one_copy_is_kept() -> None:
    rows = [*FIVE_DAYS[:3], FIVE_DAYS[2], *FIVE_DAYS[3:]]
    result = _validate(rows)
    _only_issue(result, IssueKind.DUPLICATE_TIMESTAMP, 1, Severity.WARNING)
    assert result.report.rejected_rows == 0  # a warning: nothing of value was refused
    assert (result.report.rows_in, result.report.rows_out) == (6, 5)
    pd.testing.assert_frame_equal(result.bars, _frame(FIVE_DAYS))


def test_conflicting_duplicate_is_an_error_and_the_last_one_is_kept() -> None:
    first = _good("2024-01-03", close=1.25)
    last = _good("2024-01-03", close=1.75)
    rows = [*FIVE_DAYS[:2], first, last, *FIVE_DAYS[3:]]
    result = _validate(rows)
    _only_issue(result, IssueKind.CONFLICTING_DUPLICATE, 1, Severity.ERROR)
    assert result.report.rejected_rows == 1
    assert result.report.rows_out == 5
    assert result.bars.loc[_ts("2024-01-03"), "close"] == 1.75
    assert result.report.issues[0].examples == ("2024-01-03 00:00",)


def test_conflicting_duplicate_keeps_the_last_even_when_an_earlier_copy_repeats() -> None:
    a = _good("2024-01-03", close=1.25)
    b = _good("2024-01-03", close=1.75)
    result = _validate([*FIVE_DAYS[:2], a, a, b, *FIVE_DAYS[3:]])
    assert result.report.count(IssueKind.DUPLICATE_TIMESTAMP) == 1
    assert result.report.count(IssueKind.CONFLICTING_DUPLICATE) == 1
    assert result.bars.loc[_ts("2024-01-03"), "close"] == 1.75
    assert result.report.rows_out == 5


def test_out_of_order_rows_are_sorted_and_counted() -> None:
    d1, d2, d3, d4, d5 = FIVE_DAYS
    result = _validate([d1, d4, d2, d3, d5])  # d2 and d3 come after a later bar
    _only_issue(result, IssueKind.OUT_OF_ORDER, 2, Severity.WARNING)
    assert result.report.rejected_rows == 0
    # Sorted, with each bar's values still attached to its own open time.
    pd.testing.assert_frame_equal(result.bars, _frame(FIVE_DAYS))


def test_out_of_order_duplicates_are_sorted_then_deduplicated() -> None:
    d1, d2, d3, d4, d5 = FIVE_DAYS
    result = _validate([d1, d2, d3, d4, d5, d2])
    assert result.report.count(IssueKind.OUT_OF_ORDER) == 1
    assert result.report.count(IssueKind.DUPLICATE_TIMESTAMP) == 1
    pd.testing.assert_frame_equal(result.bars, _frame(FIVE_DAYS))


def test_zero_volume_bar_is_kept_with_a_warning() -> None:
    rows = [*FIVE_DAYS[:2], _good("2024-01-03", volume=0.0), *FIVE_DAYS[3:]]
    result = _validate(rows)
    _only_issue(result, IssueKind.ZERO_VOLUME, 1, Severity.WARNING)
    assert result.report.rows_out == 5
    assert result.bars.loc[_ts("2024-01-03"), "volume"] == 0.0
    assert result.report.rejected_rows == 0
    assert not result.report.clean


# --- the open bar and staleness ----------------------------------------------------------------------


def test_open_bar_and_bars_after_as_of_are_dropped() -> None:
    rows = _days("2024-01-01", 7)  # 01..07
    as_of = _utc("2024-01-05 12:00")  # the 01-05 bar is open; 01-06 and 01-07 lie in the future
    result = _validate(rows, as_of=as_of)
    _only_issue(result, IssueKind.OPEN_BAR, 3, Severity.INFO)
    assert result.report.issues[0].examples == ("2024-01-05 00:00", "2024-01-06 00:00", "2024-01-07 00:00")
    assert result.report.last_closed_bar == _utc("2024-01-04")
    assert list(result.bars.index) == [_ts(f"2024-01-0{d}") for d in range(1, 5)]
    assert result.report.clean  # the open bar is expected: info only
    assert result.report.rejected_rows == 0
    # Same rule as common.data.ohlcv.closed_mask.
    pd.testing.assert_frame_equal(result.bars, _frame(rows).loc[closed_mask(_frame(rows).index, "1d", as_of)])


def test_bar_closing_exactly_at_as_of_is_closed() -> None:
    rows = _days("2024-01-01", 5)
    result = _validate(rows, as_of=_utc("2024-01-05"))  # 01-04 closes at exactly 01-05 00:00
    assert result.report.count(IssueKind.OPEN_BAR) == 1
    assert result.report.last_closed_bar == _utc("2024-01-04")


def test_hourly_open_bar_is_dropped() -> None:
    rows = [_good(f"2024-01-01 {h:02d}:00") for h in range(4)]
    result = _validate(rows, interval="1h", as_of=_utc("2024-01-01 03:59:59"))
    assert result.report.count(IssueKind.OPEN_BAR) == 1
    assert result.report.last_closed_bar == _utc("2024-01-01 02:00")


@pytest.mark.parametrize("stale_after_bars", [1, 2, 3])
@pytest.mark.parametrize(("interval", "step"), [("1d", DAY), ("1h", HOUR)])
def test_stale_boundary(interval: str, step: timedelta, stale_after_bars: int) -> None:
    last_open = _ts("2024-01-05")
    rows = [_good(f"{last_open - i * step:%Y-%m-%d %H:%M}") for i in reversed(range(3))]
    last_close = (last_open + step).to_pydatetime()

    def check(as_of: datetime) -> ValidatedBars:
        return _validate(rows, interval=interval, as_of=as_of, stale_after_bars=stale_after_bars)

    fresh = check(last_close + (stale_after_bars - 1) * step)
    assert not fresh.report.stale
    assert fresh.report.count(IssueKind.STALE) == 0
    # Still fresh one microsecond before the next whole interval has elapsed.
    assert not check(last_close + stale_after_bars * step - timedelta(microseconds=1)).report.stale
    stale = check(last_close + stale_after_bars * step)
    assert stale.report.stale
    _only_issue(stale, IssueKind.STALE, 1, Severity.WARNING)
    assert stale.report.issues[0].examples == (f"{last_open:%Y-%m-%d %H:%M}",)
    assert stale.report.rows_out == 3  # stale data is reported, never dropped


def test_staleness_check_can_be_switched_off() -> None:
    result = _validate(FIVE_DAYS, as_of=_utc("2025-01-01"), check_staleness=False)
    assert not result.report.stale
    assert result.report.clean


def test_bars_behind_counts_whole_intervals() -> None:
    assert bars_behind(_ts("2024-01-05"), _ts("2024-01-06"), DAY) == 0
    assert bars_behind(_ts("2024-01-05"), _ts("2024-01-06 23:59"), DAY) == 0
    assert bars_behind(_ts("2024-01-05"), _ts("2024-01-07"), DAY) == 1
    assert bars_behind(_ts("2024-01-05 10:00"), _ts("2024-01-05 14:00"), HOUR) == 3


# --- gaps, by policy ---------------------------------------------------------------------------------

# 01-01, 01-02, then 01-05, 01-06: 01-03 and 01-04 are missing.
GAPPED = [FIVE_DAYS[0], FIVE_DAYS[1], *_days("2024-01-05", 2)]
GAP_AS_OF = _utc("2024-01-07")


def test_missing_bar_times() -> None:
    index = _frame(GAPPED).index
    assert list(missing_bar_times(index, DAY)) == [_ts("2024-01-03"), _ts("2024-01-04")]
    assert len(missing_bar_times(_frame(FIVE_DAYS).index, DAY)) == 0
    assert len(missing_bar_times(index[:1], DAY)) == 0


def test_gap_report_keeps_the_bars_and_counts_missing_ones() -> None:
    result = _validate(GAPPED, as_of=GAP_AS_OF, gap_policy="report")
    _only_issue(result, IssueKind.GAP, 2, Severity.WARNING)
    assert result.report.issues[0].examples == ("2024-01-03 00:00", "2024-01-04 00:00")
    pd.testing.assert_frame_equal(result.bars, _frame(GAPPED))
    assert result.report.gap_policy == "report"


def test_gap_fill_inserts_flat_bars_at_the_previous_close() -> None:
    result = _validate(GAPPED, as_of=GAP_AS_OF, gap_policy="fill")
    _only_issue(result, IssueKind.GAP, 2, Severity.WARNING)
    assert result.report.rows_in == 4
    assert result.report.rows_out == 6
    _assert_well_formed(result.bars, "1d")
    assert len(missing_bar_times(result.bars.index, DAY)) == 0
    previous_close = GAPPED[1][4]
    for day in ("2024-01-03", "2024-01-04"):
        bar = result.bars.loc[_ts(day)]
        assert bar[["open", "high", "low", "close"]].tolist() == [previous_close] * 4
        assert bar["volume"] == 0.0
    # The real bars are untouched.
    pd.testing.assert_frame_equal(result.bars.loc[_frame(GAPPED).index], _frame(GAPPED))


def test_gap_fill_over_two_gaps_uses_each_gaps_own_previous_close() -> None:
    rows = [_good("2024-01-01", close=1.25), _good("2024-01-03", close=1.5), _good("2024-01-06", close=1.75)]
    result = _validate(rows, as_of=_utc("2024-01-07"), gap_policy="fill")
    assert result.report.count(IssueKind.GAP) == 3
    closes = result.bars["close"].tolist()
    assert closes == [1.25, 1.25, 1.5, 1.5, 1.5, 1.75]
    assert result.bars["volume"].tolist() == [10.0, 0.0, 10.0, 0.0, 0.0, 10.0]


def test_gap_reject_raises_naming_the_symbol_and_first_missing_time() -> None:
    with pytest.raises(DataValidationError, match=r"TEST 1d: 2 missing bar\(s\), first at 2024-01-03 00:00"):
        _validate(GAPPED, as_of=GAP_AS_OF, gap_policy="reject")


def test_gap_reject_accepts_a_series_without_gaps() -> None:
    assert _validate(FIVE_DAYS, gap_policy="reject").report.clean


def test_gap_left_by_a_dropped_row_is_also_reported() -> None:
    rows = [*FIVE_DAYS[:2], _good("2024-01-03", volume=-5.0), *FIVE_DAYS[3:]]
    result = _validate(rows)
    assert result.report.count(IssueKind.NEGATIVE_VOLUME) == 1
    assert result.report.count(IssueKind.GAP) == 1
    with pytest.raises(DataValidationError, match="first at 2024-01-03 00:00"):
        _validate(rows, gap_policy="reject")


def test_open_bar_is_not_a_gap_and_is_not_filled() -> None:
    # Bars after the as-of time are dropped before gaps are looked for: no gap reaches past the last closed bar.
    rows = [*FIVE_DAYS[:3], *_days("2024-01-08", 1)]
    result = _validate(rows, as_of=_utc("2024-01-04"), gap_policy="fill")
    assert result.report.count(IssueKind.GAP) == 0
    assert result.report.count(IssueKind.OPEN_BAR) == 1
    assert result.report.rows_out == 3


# --- the report ----------------------------------------------------------------------------------------


def test_report_fields_and_counts() -> None:
    rows = [
        _good("2024-01-01"),
        ("2024-01-02", 1.0, 2.0, 0.5, math.nan, 10.0),  # missing_value
        ("2024-01-03", 0.0, 2.0, 0.5, 1.0, 10.0),  # non_positive_price
        _good("2024-01-04", volume=0.0),  # zero_volume (kept)
        _good("2024-01-04", volume=0.0),  # duplicate (kept once)
        _good("2024-01-05"),
        _good("2024-01-06"),  # open at as-of
    ]
    result = _validate(rows, as_of=_utc("2024-01-06 06:00"))
    report = result.report
    assert report.symbol == SYMBOL
    assert report.interval == "1d"
    assert report.as_of == _utc("2024-01-06 06:00")
    assert report.rows_in == 7
    assert report.rows_out == 3
    assert report.rejected_rows == 2
    assert report.count(IssueKind.MISSING_VALUE) == 1
    assert report.count(IssueKind.NON_POSITIVE_PRICE) == 1
    assert report.count(IssueKind.DUPLICATE_TIMESTAMP) == 1
    assert report.count(IssueKind.ZERO_VOLUME) == 1
    assert report.count(IssueKind.OPEN_BAR) == 1
    assert report.count(IssueKind.GAP) == 2
    assert report.count(IssueKind.STALE) == 0
    assert not report.clean
    assert report.first_bar == _utc("2024-01-01")
    assert report.last_closed_bar == _utc("2024-01-05")
    # The summary's wording is free; it names the series, the counts and the issues found.
    summary = report.summary()
    assert summary.startswith("TEST 1d:")
    assert "3" in summary and "7" in summary and "2024-01-05 00:00" in summary
    assert "missing_value=1" in summary and "non_positive_price=1" in summary and "gap=2" in summary


def test_examples_are_capped() -> None:
    rows = [(f"2024-01-{d:02d}", 1.0, 2.0, 0.5, 1.5, -1.0) for d in range(1, 9)]
    result = _validate(rows, as_of=_utc("2024-01-09"))
    issue = result.report.issues[0]
    assert issue.kind == IssueKind.NEGATIVE_VOLUME
    assert issue.count == 8
    assert len(issue.examples) == MAX_EXAMPLES == 5
    assert issue.examples[0] == "2024-01-01 00:00"


def test_report_to_dict_is_json_serialisable() -> None:
    rows = [*GAPPED, ("2024-01-07", 1.0, 2.0, 0.5, math.nan, 1.0)]
    report = _validate(rows, as_of=_utc("2024-01-09"), gap_policy="fill").report
    document = json.loads(json.dumps(report.to_dict()))
    assert document["symbol"] == SYMBOL
    assert document["as_of"] == "2024-01-09T00:00:00+00:00"
    assert document["rows_in"] == 5
    assert document["rows_out"] == 6
    assert document["rejected_rows"] == 1
    assert document["stale"] is True  # last closed bar 01-06, two days behind 01-09
    assert document["gap_policy"] == "fill"
    assert document["first_bar"] == "2024-01-01T00:00:00+00:00"
    assert document["last_closed_bar"] == "2024-01-06T00:00:00+00:00"
    kinds = {issue["kind"]: issue for issue in document["issues"]}
    assert set(kinds) == {"missing_value", "gap", "stale"}
    assert kinds["gap"] == {
        "kind": "gap",
        "severity": "warning",
        "count": 2,
        "message": kinds["gap"]["message"],
        "examples": ["2024-01-03 00:00", "2024-01-04 00:00"],
    }


def test_every_kind_has_a_documented_rule() -> None:
    import common.data.validation as module

    for kind in IssueKind:
        assert kind.value in (module.__doc__ or "")


# --- never raises for bad rows; empty input -------------------------------------------------------------


def test_validation_never_raises_for_bad_rows() -> None:
    rows = [
        ("2024-01-01", math.nan, math.nan, math.nan, math.nan, math.nan),
        ("2024-01-02 03:00", 1.0, 2.0, 0.5, 1.5, 1.0),
        ("2024-01-03", -1.0, 2.0, 0.5, 1.5, 1.0),
        ("2024-01-04", 1.0, 0.1, 0.5, 1.5, 1.0),
        ("2024-01-05", 9.0, 2.0, 0.5, 1.5, 1.0),
        ("2024-01-06", 1.0, 2.0, 0.5, 1.5, -1.0),
        _good("2024-01-08", close=1.25),
        _good("2024-01-07"),
        _good("2024-01-08", close=1.75),
        _good("2024-01-10", volume=0.0),
        _good("2024-01-30"),
    ]
    for policy in ("report", "fill"):
        result = _validate(rows, as_of=_utc("2024-01-20"), gap_policy=policy)
        assert result.report.rejected_rows == 7  # six bad rows and one conflicting duplicate
        assert result.report.count(IssueKind.OPEN_BAR) == 1
        _assert_well_formed(result.bars, "1d")


def test_all_rows_invalid_gives_an_empty_result() -> None:
    rows = [(f"2024-01-{d:02d}", 0.0, 2.0, 0.5, 1.5, 1.0) for d in range(1, 4)]
    result = _validate(rows)
    assert result.bars.empty
    assert result.report.rows_out == 0
    assert result.report.rejected_rows == 3
    assert result.report.first_bar is None and result.report.last_closed_bar is None
    assert not result.report.stale  # nothing to be stale about
    _assert_well_formed(result.bars, "1d")
    json.dumps(result.report.to_dict())


@pytest.mark.parametrize("policy", ["report", "fill", "reject"])
def test_empty_frame_gives_an_empty_result(policy: str) -> None:
    result = _validate(parse_ohlcv_csv(HEADER), gap_policy=policy)
    assert result.bars.empty
    _assert_well_formed(result.bars, "1d")
    report = result.report
    assert (report.rows_in, report.rows_out, report.rejected_rows) == (0, 0, 0)
    assert report.issues == ()
    assert report.clean and not report.stale
    assert report.first_bar is None and report.last_closed_bar is None
    assert report.summary().startswith("TEST 1d:")
    assert "=" not in report.summary()  # no issue to list
    assert json.loads(json.dumps(report.to_dict()))["last_closed_bar"] is None


def test_blank_timestamp_row_is_rejected_not_raised() -> None:
    """A blank datetime cell parses to NaT: refused as a missing value, never a crash."""
    payload = HEADER + b",1,2,0.5,1.5,10\n2024-01-01,1,2,0.5,1.5,10\n2024-01-02,1,2,0.5,1.5,10\n"
    bars = parse_ohlcv_csv(payload)
    assert bars.index.isna().sum() == 1  # the parser lets it through to validation
    result = _validate(bars, as_of=_utc("2024-01-03"))
    assert result.report.rejected_rows == 1
    assert result.report.rows_out == 2


# --- the real sample data -------------------------------------------------------------------------------

SAMPLE_AS_OF = {"1d": _utc("2025-02-21"), "1h": _utc("2025-02-20")}  # the last sample bar just closed
DAILY_DEFECTS = {"AAVE", "AVAX", "UNI"}


def _sample(path: Path) -> pd.DataFrame:
    return parse_ohlcv_csv(path.read_bytes(), source=str(path))


def _validate_sample(interval: str, symbol: str, **kwargs) -> ValidatedBars:
    path = SAMPLE_OHLCV / interval / f"{symbol}.csv"
    return validate_bars(_sample(path), symbol=symbol, interval=interval, as_of=SAMPLE_AS_OF[interval], **kwargs)


def test_sample_files_cover_both_intervals() -> None:
    assert len([p for p in SAMPLE_CSVS if p.parent.name == "1d"]) == 16
    assert len([p for p in SAMPLE_CSVS if p.parent.name == "1h"]) == 9  # BTC ETH SOL; ADA BNB DOGE LINK LTC XRP


@pytest.mark.parametrize("policy", ["report", "fill"])
@pytest.mark.parametrize("path", SAMPLE_CSVS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_sample_file_validates(path: Path, policy: str) -> None:
    interval = path.parent.name
    raw = _sample(path)
    result = _validate_sample(interval, path.stem, gap_policy=policy)
    bars = result.bars
    assert result.report.rows_out == len(bars) > 0
    _assert_well_formed(bars, interval)
    assert (bars[["open", "high", "low", "close"]] > 0).all().all()
    assert (bars["high"] >= bars["low"]).all()
    assert (bars["open"].between(bars["low"], bars["high"])).all()
    assert (bars["close"].between(bars["low"], bars["high"])).all()
    assert (bars["volume"] >= 0).all()
    assert not result.report.stale
    assert result.report.last_closed_bar == raw.index.max().to_pydatetime()
    json.dumps(result.report.to_dict())


def test_aave_zero_price_first_bar_is_rejected() -> None:
    result = _validate_sample("1d", "AAVE")
    report = result.report
    assert report.count(IssueKind.NON_POSITIVE_PRICE) == 1
    assert report.rejected_rows == 1
    assert report.rows_out == report.rows_in - 1
    first_raw = _sample(SAMPLE_OHLCV / "1d" / "AAVE.csv").index[0]
    assert first_raw not in result.bars.index
    assert report.first_bar == (first_raw + DAY).to_pydatetime()
    # Four zero-volume bars in the file; the rejected first bar is one of them, so three are kept.
    raw = _sample(SAMPLE_OHLCV / "1d" / "AAVE.csv")
    assert int((raw["volume"] == 0).sum()) == 4
    assert report.count(IssueKind.ZERO_VOLUME) == 3


def test_avax_gap_under_each_policy() -> None:
    reported = _validate_sample("1d", "AVAX", gap_policy="report")
    assert reported.report.count(IssueKind.GAP) == 69
    assert reported.report.rows_out == reported.report.rows_in

    filled = _validate_sample("1d", "AVAX", gap_policy="fill")
    assert filled.report.count(IssueKind.GAP) == 69
    assert filled.report.rows_out == filled.report.rows_in + 69
    inserted = filled.bars.index.difference(reported.bars.index)
    assert len(inserted) == 69
    flat = filled.bars.loc[inserted]
    assert (flat["volume"] == 0).all()
    assert (flat[["open", "high", "low", "close"]].nunique(axis=1) == 1).all()
    assert len(missing_bar_times(filled.bars.index, DAY)) == 0

    first_missing = missing_bar_times(reported.bars.index, DAY)[0]
    with pytest.raises(DataValidationError, match=f"AVAX 1d: 69 missing bar.*first at {first_missing:%Y-%m-%d %H:%M}"):
        _validate_sample("1d", "AVAX", gap_policy="reject")


def test_uni_zero_volume_days_are_kept() -> None:
    result = _validate_sample("1d", "UNI")
    assert result.report.count(IssueKind.ZERO_VOLUME) == 71
    assert result.report.rows_out == result.report.rows_in
    assert int((result.bars["volume"] == 0).sum()) == 71


@pytest.mark.parametrize("symbol", sorted(p.stem for p in SAMPLE_OHLCV.glob("1h/*.csv")))
def test_each_hourly_file_has_one_missing_hour(symbol: str) -> None:
    result = _validate_sample("1h", symbol)
    assert result.report.count(IssueKind.GAP) == 1
    assert result.report.rejected_rows == 0
    assert result.report.count(IssueKind.ZERO_VOLUME) > 0
    with pytest.raises(DataValidationError, match=f"{symbol} 1h: 1 missing bar"):
        _validate_sample("1h", symbol, gap_policy="reject")


@pytest.mark.parametrize("symbol", sorted(p.stem for p in SAMPLE_OHLCV.glob("1d/*.csv") if p.stem not in DAILY_DEFECTS))
def test_other_daily_files_have_no_error(symbol: str) -> None:
    report = _validate_sample("1d", symbol).report
    assert [i for i in report.issues if i.severity == Severity.ERROR] == []
    assert report.rejected_rows == 0
    assert report.count(IssueKind.GAP) == 0
    assert report.rows_out == report.rows_in


def test_infinite_values_are_refused_like_missing_ones() -> None:
    payload = HEADER + b"2024-01-01,1,inf,0.5,1.5,10\n2024-01-02,1,2,0.5,1.5,10\n"
    result = _validate(parse_ohlcv_csv(payload), as_of=_utc("2024-01-03"))
    assert result.report.count(IssueKind.MISSING_VALUE) == 1 and result.report.rows_out == 1


def test_a_naive_as_of_is_taken_as_utc() -> None:
    from datetime import datetime

    payload = HEADER + b"2024-01-01,1,2,0.5,1.5,10\n2024-01-02,1,2,0.5,1.5,10\n"
    result = _validate(parse_ohlcv_csv(payload), as_of=datetime(2024, 1, 2, 12))
    assert result.report.rows_out == 1 and result.report.count(IssueKind.OPEN_BAR) == 1
