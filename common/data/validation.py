"""Validation of OHLCV bars before they are stored or used. Pure (pandas only).

Every rule yields a typed :class:`ValidationIssue` with a count and example timestamps; the
:class:`ValidationReport` collects them and says what was done about each:

======================  ========  ==========================================================================
kind                    severity  action
======================  ========  ==========================================================================
non_numeric_value       error     row dropped (a cell that is text, not a number: ``abc``, ``12,5``)
missing_value           error     row dropped (NaN/inf in an OHLCV column, or no timestamp)
misaligned_timestamp    error     row dropped (open time not on the interval's grid, e.g. 00:00 UTC daily)
non_positive_price      error     row dropped (open/high/low/close <= 0)
high_below_low          error     row dropped
price_outside_range     error     row dropped (open or close outside [low, high])
negative_volume         error     row dropped
conflicting_duplicate   error     same open time with different values: the last one is kept
conflicts_with_stored   error     (an append) differs from the stored bar of its open time: the stored one kept
duplicate_timestamp     warning   identical repeated rows: one is kept
out_of_order            warning   rows sorted by open time
zero_volume             warning   kept (real feeds report it; volume-based features see a flat bar)
gap                     warning   by ``gap_policy``: report (kept as is), fill (flat bars), reject (error)
open_bar                info      bars not closed at the as-of time are never used as closed bars
stale                   warning   the last closed bar is ``stale_after_bars`` or more intervals old
======================  ========  ==========================================================================

"error" means rows were refused; after the counts, the report lists each refused row with its open time
and the reason naming the cells at fault (:class:`RejectedRow`, e.g. ``high 90 < low 100``). Nothing here
ever raises for a bad row. Only ``gap_policy=reject`` raises (:class:`DataValidationError`), because
refusing the whole series is what that policy asks for.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd

from common.core.errors import DataValidationError
from common.core.settings import GapPolicy, as_utc
from common.data.ohlcv import COLUMNS, PRICE_COLUMNS, closed_mask, interval_length, number_cells

MAX_EXAMPLES = 5


class Severity(StrEnum):
    ERROR = "error"  # rows refused
    WARNING = "warning"  # kept, but worth knowing
    INFO = "info"  # expected, reported for completeness


class IssueKind(StrEnum):
    NON_NUMERIC_VALUE = "non_numeric_value"
    MISSING_VALUE = "missing_value"
    MISALIGNED_TIMESTAMP = "misaligned_timestamp"
    NON_POSITIVE_PRICE = "non_positive_price"
    HIGH_BELOW_LOW = "high_below_low"
    PRICE_OUTSIDE_RANGE = "price_outside_range"
    NEGATIVE_VOLUME = "negative_volume"
    CONFLICTING_DUPLICATE = "conflicting_duplicate"
    CONFLICTS_WITH_STORED = "conflicts_with_stored"  # found by the store's append, not by validate_bars
    DUPLICATE_TIMESTAMP = "duplicate_timestamp"
    OUT_OF_ORDER = "out_of_order"
    ZERO_VOLUME = "zero_volume"
    GAP = "gap"
    OPEN_BAR = "open_bar"
    STALE = "stale"


@dataclass(frozen=True)
class ValidationIssue:
    kind: IssueKind
    severity: Severity
    count: int
    message: str
    examples: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "severity": self.severity.value,
            "count": self.count,
            "message": self.message,
            "examples": list(self.examples),
        }


@dataclass(frozen=True)
class RejectedRow:
    """One refused row: its open time (None when it has none) and why, naming the cells at fault."""

    time: datetime | None
    kind: IssueKind
    reason: str

    @property
    def label(self) -> str:
        return "no time" if self.time is None else _stamp(self.time)

    def to_dict(self) -> dict[str, Any]:
        return {"time": self.time.isoformat() if self.time else None, "kind": self.kind.value, "reason": self.reason}


def by_time(rows: Sequence[RejectedRow]) -> tuple[RejectedRow, ...]:
    """Rows in time order (stable: the rule order within one time); rows without a time last."""
    return tuple(sorted(rows, key=lambda row: (row.time is None, row.time or datetime.min.replace(tzinfo=UTC))))


@dataclass(frozen=True)
class ValidationReport:
    symbol: str
    interval: str
    as_of: datetime
    rows_in: int
    rows_out: int
    issues: tuple[ValidationIssue, ...]
    first_bar: datetime | None
    last_closed_bar: datetime | None
    gap_policy: GapPolicy
    rejected: tuple[RejectedRow, ...] = ()  # every refused row, in time order

    def count(self, kind: IssueKind) -> int:
        return sum(issue.count for issue in self.issues if issue.kind == kind)

    @property
    def rejected_rows(self) -> int:
        return sum(issue.count for issue in self.issues if issue.severity == Severity.ERROR)

    @property
    def stale(self) -> bool:
        return self.count(IssueKind.STALE) > 0

    @property
    def clean(self) -> bool:
        """No errors and no warnings (info-level issues such as the open bar are expected)."""
        return all(issue.severity == Severity.INFO for issue in self.issues)

    def summary(self) -> str:
        head = f"{self.symbol} {self.interval}: {self.rows_out} usable closed bars of {self.rows_in}"
        if self.last_closed_bar is not None:
            head += f", last closed {self.last_closed_bar:%Y-%m-%d %H:%M}"
        notes = [f"{issue.kind.value}={issue.count}" for issue in self.issues]
        return head + (f" ({', '.join(notes)})" if notes else "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "interval": self.interval,
            "as_of": self.as_of.isoformat(),
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "rejected_rows": self.rejected_rows,
            "stale": self.stale,
            "gap_policy": self.gap_policy,
            "first_bar": self.first_bar.isoformat() if self.first_bar else None,
            "last_closed_bar": self.last_closed_bar.isoformat() if self.last_closed_bar else None,
            "issues": [issue.to_dict() for issue in self.issues],
            "rejections": [row.to_dict() for row in self.rejected],
        }

    def render_findings(self, indent: str = "  ") -> list[str]:
        return render_findings(self.issues, self.rejected, indent=indent)


def render_findings(
    issues: Sequence[ValidationIssue], rejected: Sequence[RejectedRow], *, indent: str = "  "
) -> list[str]:
    """Counts per reason, then each refused row with its open time and reason (text for a console)."""
    if not issues and not rejected:
        return []
    lines = [f"{indent}{'count':>6}  {'reason':<22} {'severity':<8} (error: rows refused)"]
    lines += [
        f"{indent}{issue.count:>6}  {issue.kind.value:<22} {issue.severity.value:<8} {issue.message}"
        for issue in issues
    ]
    if rejected:
        lines.append(f"{indent}refused rows:")
        lines += [f"{indent}  {row.label:<17} {row.kind.value:<22} {row.reason}" for row in rejected]
    return lines


@dataclass(frozen=True)
class ValidatedBars:
    """Closed, clean bars (sorted, unique, on the grid) and the report of how they were obtained."""

    bars: pd.DataFrame
    report: ValidationReport


@dataclass
class _Collector:
    issues: list[ValidationIssue] = field(default_factory=list)
    rejected: list[RejectedRow] = field(default_factory=list)

    def add(
        self,
        kind: IssueKind,
        severity: Severity,
        index: Sequence[pd.Timestamp] | pd.Index,
        message: str,
        reasons: Callable[[], Sequence[str]] | None = None,
    ) -> None:
        """One finding over the rows at ``index``; an error also records each row with its reason
        (``reasons()``, one per row, default ``message``: only worked out when there is a finding)."""
        if len(index):
            examples = tuple(_stamp(t) for t in list(index)[:MAX_EXAMPLES])
            self.issues.append(ValidationIssue(kind, severity, len(index), message, examples))
            if severity == Severity.ERROR:
                texts = reasons() if reasons is not None else [message] * len(index)
                self.rejected += [
                    RejectedRow(None if pd.isna(t) else pd.Timestamp(t).to_pydatetime(), kind, text)
                    for t, text in zip(index, texts, strict=True)
                ]


def _drop(frame: pd.DataFrame, mask: Any) -> pd.DataFrame:
    """``frame`` without the rows of ``mask`` (the frame itself when there are none: clean series skip the copy)."""
    return frame.loc[~mask] if np.any(mask) else frame


def _stamp(value: Any) -> str:
    return "NaT" if pd.isna(value) else pd.Timestamp(value).strftime("%Y-%m-%d %H:%M")


def _num(value: float) -> str:
    """A value as its shortest exact text (``100`` rather than ``100.0``)."""
    return repr(float(value)).removesuffix(".0")


def validate_bars(
    bars: pd.DataFrame,
    *,
    symbol: str,
    interval: str,
    as_of: datetime,
    gap_policy: GapPolicy = "report",
    stale_after_bars: int = 2,
    check_staleness: bool = True,
) -> ValidatedBars:
    """Apply every rule of the module docstring; return the usable closed bars and the report.

    ``bars`` is a frame as :func:`common.data.ohlcv.parse_ohlcv_csv` returns it (UTC DatetimeIndex, float
    columns). ``check_staleness=False`` suits a batch of new bars being appended (its freshness is the
    merged series' concern).
    """
    step = interval_length(interval)
    as_of_ts = pd.Timestamp(as_utc(as_of))
    rows_in = len(bars)
    issues = _Collector()
    raw = bars.loc[:, list(COLUMNS[1:])]
    frame, non_numeric = _as_numbers(raw)

    # Rows that cannot be a bar at all.
    bad_cells = non_numeric.any(axis=1)
    issues.add(
        IssueKind.NON_NUMERIC_VALUE,
        Severity.ERROR,
        frame.index[bad_cells],
        "a cell is not a number",
        lambda: [
            "; ".join(f"{column} {raw.iloc[i][column]!r} is not a number" for column in _cells(non_numeric, i))
            for i in np.flatnonzero(bad_cells)
        ],
    )
    frame = _drop(frame, bad_cells)

    missing = ~np.isfinite(frame.to_numpy()).all(axis=1) | frame.index.isna()
    issues.add(
        IssueKind.MISSING_VALUE,
        Severity.ERROR,
        frame.index[missing],
        "missing or infinite value or time",
        lambda: [_missing_reason(frame.index[i], frame.iloc[i]) for i in np.flatnonzero(missing)],
    )
    frame = _drop(frame, missing)

    misaligned = (frame.index - pd.Timestamp(0, tz="UTC")) % step != pd.Timedelta(0)
    issues.add(
        IssueKind.MISALIGNED_TIMESTAMP,
        Severity.ERROR,
        frame.index[misaligned],
        f"open time not on the {interval} grid",
        lambda: [f"opens at {t:%H:%M} UTC, off the {interval} grid" for t in frame.index[misaligned]],
    )
    frame = _drop(frame, misaligned)

    prices = frame[list(PRICE_COLUMNS)]
    non_positive = (prices <= 0).any(axis=1)
    issues.add(
        IssueKind.NON_POSITIVE_PRICE,
        Severity.ERROR,
        frame.index[non_positive],
        "a price is zero or negative",
        lambda: [
            ", ".join(f"{c} {_num(getattr(row, c))}" for c in PRICE_COLUMNS if getattr(row, c) <= 0) + " (must be > 0)"
            for row in frame.loc[non_positive].itertuples(index=False)
        ],
    )
    frame = _drop(frame, non_positive)

    high_below_low = frame["high"] < frame["low"]
    issues.add(
        IssueKind.HIGH_BELOW_LOW,
        Severity.ERROR,
        frame.index[high_below_low],
        "high is below low",
        lambda: [f"high {_num(r.high)} < low {_num(r.low)}" for r in frame.loc[high_below_low].itertuples(index=False)],
    )
    frame = _drop(frame, high_below_low)

    outside = (
        (frame["open"] > frame["high"])
        | (frame["open"] < frame["low"])
        | (frame["close"] > frame["high"])
        | (frame["close"] < frame["low"])
    )
    issues.add(
        IssueKind.PRICE_OUTSIDE_RANGE,
        Severity.ERROR,
        frame.index[outside],
        "open or close outside [low, high]",
        lambda: [_outside_reason(row) for row in frame.loc[outside].itertuples(index=False)],
    )
    frame = _drop(frame, outside)

    negative_volume = frame["volume"] < 0
    issues.add(
        IssueKind.NEGATIVE_VOLUME,
        Severity.ERROR,
        frame.index[negative_volume],
        "volume is negative",
        lambda: [f"volume {_num(v)} < 0" for v in frame.loc[negative_volume, "volume"]],
    )
    frame = _drop(frame, negative_volume)

    # Order and uniqueness.
    open_times = frame.index.to_series()
    out_of_order = (open_times < open_times.cummax().shift(1)).to_numpy()
    issues.add(IssueKind.OUT_OF_ORDER, Severity.WARNING, frame.index[out_of_order], "bars not in time order: sorted")
    frame = frame.sort_index(kind="stable")

    repeated = frame.index.duplicated(keep="last")
    if repeated.any():
        as_rows = frame.reset_index()
        identical = as_rows.duplicated(keep="last").to_numpy()
        issues.add(
            IssueKind.DUPLICATE_TIMESTAMP,
            Severity.WARNING,
            frame.index[identical],
            "identical bar repeated: one kept",
        )
        conflicting = repeated & ~identical
        kept = frame.loc[~repeated]
        issues.add(
            IssueKind.CONFLICTING_DUPLICATE,
            Severity.ERROR,
            frame.index[conflicting],
            "same open time with different values: the last one kept",
            lambda: [
                "differs from the later row of this open time, which is kept: " + differences(row, kept.loc[time])
                for time, row in frame.loc[conflicting].iterrows()
            ],
        )
        frame = kept

    # The open bar (and anything after the as-of time) is never a closed bar.
    not_closed = ~closed_mask(frame.index, interval, as_of_ts)
    issues.add(
        IssueKind.OPEN_BAR, Severity.INFO, frame.index[not_closed], f"not closed at {as_of_ts:%Y-%m-%d %H:%M}: dropped"
    )
    frame = _drop(frame, not_closed)

    zero_volume = frame["volume"] == 0
    issues.add(IssueKind.ZERO_VOLUME, Severity.WARNING, frame.index[zero_volume], "zero volume: kept")

    frame = _apply_gap_policy(frame, step, gap_policy, issues, symbol=symbol, interval=interval)

    if check_staleness and len(frame):
        missing_bars = bars_behind(frame.index[-1], as_of_ts, step)
        if missing_bars >= stale_after_bars:
            issues.add(
                IssueKind.STALE,
                Severity.WARNING,
                frame.index[-1:],
                f"last closed bar is {missing_bars} intervals behind the as-of time (limit {stale_after_bars})",
            )

    report = ValidationReport(
        symbol=symbol,
        interval=interval,
        as_of=as_of_ts.to_pydatetime(),
        rows_in=rows_in,
        rows_out=len(frame),
        issues=tuple(issues.issues),
        first_bar=frame.index[0].to_pydatetime() if len(frame) else None,
        last_closed_bar=frame.index[-1].to_pydatetime() if len(frame) else None,
        gap_policy=gap_policy,
        rejected=by_time(issues.rejected),
    )
    return ValidatedBars(frame, report)


def _as_numbers(raw: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The value columns as float64 (non-numbers as NaN) and a mask of the cells that were not numbers."""
    numbers, masks = {}, {}
    for column in raw.columns:
        numbers[column], masks[column] = number_cells(raw[column])
    return pd.DataFrame(numbers, index=raw.index), pd.DataFrame(masks, index=raw.index)


def _cells(mask: pd.DataFrame, position: int) -> list[str]:
    return [str(column) for column in mask.columns if mask.iloc[position][column]]


def _missing_reason(time: Any, row: pd.Series) -> str:
    parts = ["no timestamp"] if pd.isna(time) else []
    parts += [
        f"{column} is {'missing' if np.isnan(value) else 'infinite'}"
        for column, value in row.items()
        if not np.isfinite(value)
    ]
    return ", ".join(parts)


def _outside_reason(row: Any) -> str:
    parts = []
    for column in ("open", "close"):
        value = getattr(row, column)
        if value > row.high:
            parts.append(f"{column} {_num(value)} > high {_num(row.high)}")
        elif value < row.low:
            parts.append(f"{column} {_num(value)} < low {_num(row.low)}")
    return ", ".join(parts)


def differences(row: pd.Series, other: pd.Series) -> str:
    """``close 101 vs 100``: the columns where two bars of one open time disagree (``row`` first)."""
    return ", ".join(
        f"{column} {_num(row[column])} vs {_num(other[column])}"
        for column in COLUMNS[1:]
        if not (row[column] == other[column] or (pd.isna(row[column]) and pd.isna(other[column])))
    )


def bars_behind(last_open: datetime | pd.Timestamp, as_of: datetime | pd.Timestamp, step: Any) -> int:
    """Whole bars that should have closed after the bar opened at ``last_open``, by ``as_of``."""
    return int((pd.Timestamp(as_of) - (pd.Timestamp(last_open) + step)) // step)


def missing_bar_times(index: pd.DatetimeIndex, step: pd.Timedelta | Any) -> pd.DatetimeIndex:
    """Open times absent from a sorted, unique index between its first and last bar."""
    if len(index) < 2:
        return pd.DatetimeIndex([], tz="UTC", name=index.name)
    full = pd.date_range(index[0], index[-1], freq=step, name=index.name)
    return full.difference(index)


def _apply_gap_policy(
    frame: pd.DataFrame, step: Any, policy: GapPolicy, issues: _Collector, *, symbol: str, interval: str
) -> pd.DataFrame:
    missing = missing_bar_times(frame.index, step)
    if not len(missing):
        return frame
    if policy == "reject":
        raise DataValidationError(
            f"{symbol} {interval}: {len(missing)} missing bar(s), first at {_stamp(missing[0])} "
            "(RETRAIN_GAP_POLICY=reject refuses series with gaps; 'report' or 'fill' accept them)"
        )
    if policy == "report":
        issues.add(IssueKind.GAP, Severity.WARNING, missing, "missing bars: kept as is (gap_policy=report)")
        return frame
    issues.add(
        IssueKind.GAP, Severity.WARNING, missing, "missing bars: filled flat at the previous close (gap_policy=fill)"
    )
    filled = frame.reindex(frame.index.union(missing))
    close = filled["close"].ffill()
    for column in PRICE_COLUMNS:
        filled[column] = filled[column].fillna(close)
    filled["volume"] = filled["volume"].fillna(0.0)
    return filled
