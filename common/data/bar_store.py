"""OHLCV history per (symbol, interval) in the object store: validated appends and validated loads.

One CSV object per series (``common.core.keys.ohlcv_key``). An append reads the object, adds only bars it
does not hold yet, and writes it back with a conditional PUT (If-Match on the ETag it read), so:

- re-running the same append changes nothing (no write at all);
- a stored bar is never rewritten or dropped (the merge only adds; a check refuses to write otherwise); a
  fetched bar that differs from the stored bar of its open time is refused and reported row by row;
- older bars (a back-fill) are added the same way, before the stored ones;
- a failed or concurrent write leaves the previous object intact (S3 PUTs are atomic, the condition
  makes a racing writer retry on top of the other's result instead of overwriting it), and the bucket
  is versioned, so every earlier state stays recoverable.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import pandas as pd

from common.aws.storage import S3ObjectStore, StoredObject
from common.core.errors import ConcurrentWriteError, DataNotFoundError, DataValidationError
from common.core.keys import ohlcv_key
from common.core.settings import GapPolicy
from common.data.ohlcv import PRICE_COLUMNS, empty_bars, interval_length, parse_ohlcv_csv, to_ohlcv_csv
from common.data.validation import (
    MAX_EXAMPLES,
    IssueKind,
    RejectedRow,
    Severity,
    ValidatedBars,
    ValidationIssue,
    ValidationReport,
    by_time,
    differences,
    missing_bar_times,
    validate_bars,
)

AppendStatus = Literal["created", "appended", "unchanged"]
WRITE_ATTEMPTS = 3


class _Memo:
    """A small least-recently-used memo, safe across threads (the predictor's refreshes run on several).

    Parsing and validating a stored series are pure functions of its bytes (identified by key and ETag) and
    of the load's arguments; a warm Lambda, the predictor's refreshes, and a backtest that loads the same
    series for several policies on the same day skip the work. Cached frames are shared: callers never
    modify a loaded frame in place (every step builds new frames)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: Hashable, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)


_PARSED = _Memo(8)  # (key, etag) -> parsed frame
_VALIDATED = _Memo(32)  # (key, etag, load arguments) -> ValidatedBars


@dataclass(frozen=True)
class StoredBars:
    key: str
    bars: pd.DataFrame  # as stored, not validated
    version_id: str
    etag: str
    body: bytes


@dataclass(frozen=True)
class LoadedBars:
    key: str
    version_id: str
    validated: ValidatedBars
    etag: str = ""  # of the object read: the bytes' identity where the bucket keeps no versions

    @property
    def bars(self) -> pd.DataFrame:
        return self.validated.bars

    @property
    def report(self) -> ValidationReport:
        return self.validated.report


@dataclass(frozen=True)
class AppendResult:
    symbol: str
    interval: str
    key: str
    status: AppendStatus
    bars_before: int
    bars_after: int
    first_appended: datetime | None
    last_appended: datetime | None
    version_id: str
    incoming: ValidationReport  # what validation made of the fetched bars
    conflicts: int  # fetched bars that disagree with a stored one (the stored one is kept)
    boundary_gap: int  # bars missing between the stored history and the bars added before or after it
    conflict_rows: tuple[RejectedRow, ...] = ()  # each of the `conflicts`, with the values that differ
    backfilled: int = 0  # of the bars added, those older than the newest stored bar

    @property
    def appended(self) -> int:
        return self.bars_after - self.bars_before

    @property
    def rejected_rows(self) -> int:
        """Fetched rows refused: by validation, or because they differ from a stored bar."""
        return self.incoming.rejected_rows + self.conflicts

    @property
    def findings(self) -> tuple[ValidationIssue, ...]:
        """Validation's findings on the fetched bars, plus the conflicts with stored bars."""
        if not self.conflict_rows:
            return self.incoming.issues
        conflict = ValidationIssue(
            IssueKind.CONFLICTS_WITH_STORED,
            Severity.ERROR,
            len(self.conflict_rows),
            "differs from the stored bar of its open time: refused, the stored bar kept",
            tuple(row.label for row in self.conflict_rows[:MAX_EXAMPLES]),
        )
        return (*self.incoming.issues, conflict)

    @property
    def rejections(self) -> tuple[RejectedRow, ...]:
        """Every refused row with its open time and reason, in time order."""
        return by_time((*self.incoming.rejected, *self.conflict_rows))

    def to_dict(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "interval": self.interval,
            "key": self.key,
            "status": self.status,
            "appended": self.appended,
            "bars_before": self.bars_before,
            "bars_after": self.bars_after,
            "first_appended": self.first_appended.isoformat() if self.first_appended else None,
            "last_appended": self.last_appended.isoformat() if self.last_appended else None,
            "version_id": self.version_id,
            "rejected_rows": self.incoming.rejected_rows,
            "conflicts": self.conflicts,
            "boundary_gap": self.boundary_gap,
            "backfilled": self.backfilled,
            "rejections": [row.to_dict() for row in self.rejections],
            "validation": self.incoming.to_dict(),
        }


class OhlcvStore:
    def __init__(self, objects: S3ObjectStore) -> None:
        self.objects = objects

    def read(self, symbol: str, interval: str, version_id: str | None = None) -> StoredBars:
        """The stored series as it is now, or as it was in the object version ``version_id``."""
        if version_id:
            # A pinned version that is gone (deleted by hand) says so itself, not "no bars stored".
            key = ohlcv_key(symbol, interval)
            return self._parsed(key, self.objects.get_object(key, version_id))
        stored = self.read_if_exists(symbol, interval)
        if stored is None:
            known = ",".join(self.symbols(interval)) or "none"
            raise DataNotFoundError(
                f"no {interval} bars for {symbol}: s3://{self.objects.bucket}/{ohlcv_key(symbol, interval)} does not "
                f"exist (stored {interval} symbols: {known})"
            )
        return stored

    def read_if_exists(self, symbol: str, interval: str) -> StoredBars | None:
        key = ohlcv_key(symbol, interval)
        try:
            stored = self.objects.get_object(key)
        except DataNotFoundError:
            return None
        return self._parsed(key, stored)

    def _parsed(self, key: str, stored: StoredObject) -> StoredBars:
        bars = _PARSED.get((key, stored.etag))
        if bars is None:
            bars = parse_ohlcv_csv(stored.body, source=f"s3://{self.objects.bucket}/{key}")
            _PARSED.put((key, stored.etag), bars)
        return StoredBars(key, bars, stored.version_id, stored.etag, stored.body)

    def symbols(self, interval: str) -> list[str]:
        """Symbols with a stored series for ``interval``."""
        prefix = ohlcv_key("", interval).split("symbol=", 1)[0] + "symbol="
        return sorted({key[len(prefix) :].split("/", 1)[0] for key in self.objects.list_keys(prefix)})

    def load(
        self,
        symbol: str,
        interval: str,
        *,
        as_of: datetime,
        gap_policy: GapPolicy = "report",
        stale_after_bars: int = 2,
        version_id: str | None = None,
    ) -> LoadedBars:
        """The closed, validated bars at ``as_of`` (of the object version ``version_id``, else the newest);
        :class:`DataNotFoundError` when none are usable."""
        stored = self.read(symbol, interval, version_id)
        memo_key = (stored.key, stored.etag, symbol, interval, as_of, gap_policy, stale_after_bars)
        validated = _VALIDATED.get(memo_key)
        if validated is None:
            validated = validate_bars(
                stored.bars,
                symbol=symbol,
                interval=interval,
                as_of=as_of,
                gap_policy=gap_policy,
                stale_after_bars=stale_after_bars,
            )
            _VALIDATED.put(memo_key, validated)
        if validated.bars.empty:
            raise DataNotFoundError(
                f"{symbol} {interval}: no valid closed bar at or before {as_of:%Y-%m-%d %H:%M} in s3://"
                f"{self.objects.bucket}/{stored.key} ({validated.report.summary()})"
            )
        return LoadedBars(stored.key, stored.version_id, validated, stored.etag)

    def last_bar(self, symbol: str, interval: str) -> datetime | None:
        """Open time of the newest stored bar, or None when nothing is stored yet."""
        return newest_bar(self.read_if_exists(symbol, interval))

    def append(
        self,
        symbol: str,
        interval: str,
        incoming: pd.DataFrame,
        *,
        as_of: datetime,
        gap_policy: GapPolicy = "report",
        base: StoredBars | None = None,
    ) -> AppendResult:
        """Validate ``incoming`` and add the closed bars the store does not hold yet (see module doc).

        ``base`` is the series as the caller just read it (saves a read); None reads it here.
        """
        validated = validate_bars(
            incoming, symbol=symbol, interval=interval, as_of=as_of, gap_policy=gap_policy, check_staleness=False
        )
        stored = base or self.read_if_exists(symbol, interval)
        for _ in range(WRITE_ATTEMPTS):
            try:
                return self._merge_and_write(symbol, interval, validated, gap_policy, stored)
            except ConcurrentWriteError:
                # Another writer got there first: merge again on top of its result.
                stored = self.read_if_exists(symbol, interval)
        raise ConcurrentWriteError(
            f"{symbol} {interval}: the stored series kept changing during {WRITE_ATTEMPTS} append attempts"
        )

    def _merge_and_write(
        self, symbol: str, interval: str, validated: ValidatedBars, gap_policy: GapPolicy, stored: StoredBars | None
    ) -> AppendResult:
        key = ohlcv_key(symbol, interval)
        existing = stored.bars if stored is not None else empty_bars()
        new = validated.bars
        overlap = new.index.intersection(existing.index)
        differ = (new.loc[overlap].to_numpy() != existing.loc[overlap, list(new.columns)].to_numpy()).any(axis=1)
        conflict_rows = tuple(
            RejectedRow(
                time.to_pydatetime(),
                IssueKind.CONFLICTS_WITH_STORED,
                "differs from the stored bar, which is kept: " + differences(new.loc[time], existing.loc[time]),
            )
            for time in overlap[differ]
        )
        additions = new.loc[~new.index.isin(existing.index)]
        boundary_gap = 0
        if len(existing) and len(additions):
            additions, boundary_gap = _bridge_gap(existing, additions, interval, gap_policy, symbol)
        backfilled = int((additions.index < existing.index.max()).sum()) if len(existing) else 0

        def result(status: AppendStatus, merged_len: int, version_id: str) -> AppendResult:
            return AppendResult(
                symbol=symbol,
                interval=interval,
                key=key,
                status=status,
                bars_before=len(existing),
                bars_after=merged_len,
                first_appended=additions.index.min().to_pydatetime() if len(additions) else None,
                last_appended=additions.index.max().to_pydatetime() if len(additions) else None,
                version_id=version_id,
                incoming=validated.report,
                conflicts=len(conflict_rows),
                boundary_gap=boundary_gap,
                conflict_rows=conflict_rows,
                backfilled=backfilled,
            )

        if additions.empty:
            return result("unchanged", len(existing), stored.version_id if stored else "")
        merged = pd.concat([existing, additions]).sort_index(kind="stable")
        _check_nothing_lost(existing, merged, key)
        if stored is not None and stored.body.endswith(b"\n") and additions.index.min() > existing.index.max():
            # The usual case, bars after the newest stored one: the stored bytes stay byte for byte.
            payload = stored.body + to_ohlcv_csv(additions, interval=interval, header=False)
        else:
            payload = to_ohlcv_csv(merged, interval=interval)
        version_id = self.objects.put_bytes(
            key,
            payload,
            content_type="text/csv",
            if_match=stored.etag if stored is not None else None,
            if_absent=stored is None,
        )
        return result("created" if stored is None else "appended", len(merged), version_id)


def newest_bar(stored: StoredBars | None) -> datetime | None:
    if stored is None or stored.bars.empty:
        return None
    return stored.bars.index.max().to_pydatetime()


def _bridge_gap(
    existing: pd.DataFrame, additions: pd.DataFrame, interval: str, policy: GapPolicy, symbol: str
) -> tuple[pd.DataFrame, int]:
    """Bars missing between the stored history and the new bars after it (an append) or before it (a
    back-fill), handled by the gap policy. Holes inside the stored range are the stored series' own."""
    step = interval_length(interval)
    first_stored, last_stored = existing.index.min(), existing.index.max()
    bridged = 0
    after = additions.index[additions.index > last_stored]
    if len(after):
        missing = missing_bar_times(pd.DatetimeIndex([last_stored, after.min()]), step)
        additions = _bridge(
            additions,
            missing,
            float(existing.loc[last_stored, "close"]),
            policy,
            f"{symbol} {interval}: appending from {after.min():%Y-%m-%d %H:%M} would leave {len(missing)} "
            f"missing bar(s) after the stored {last_stored:%Y-%m-%d %H:%M} (RETRAIN_GAP_POLICY=reject)",
        )
        bridged += len(missing)
    before = additions.index[additions.index < first_stored]
    if len(before):
        missing = missing_bar_times(pd.DatetimeIndex([before.max(), first_stored]), step)
        additions = _bridge(
            additions,
            missing,
            float(additions.loc[before.max(), "close"]),
            policy,
            f"{symbol} {interval}: back-filling up to {before.max():%Y-%m-%d %H:%M} would leave {len(missing)} "
            f"missing bar(s) before the stored {first_stored:%Y-%m-%d %H:%M} (RETRAIN_GAP_POLICY=reject)",
        )
        bridged += len(missing)
    return additions, bridged


def _bridge(
    additions: pd.DataFrame, missing: pd.DatetimeIndex, previous_close: float, policy: GapPolicy, refusal: str
) -> pd.DataFrame:
    if not len(missing):
        return additions
    if policy == "reject":
        raise DataValidationError(refusal)
    if policy == "fill":
        flat = pd.DataFrame({**dict.fromkeys(PRICE_COLUMNS, previous_close), "volume": 0.0}, index=missing)
        return pd.concat([flat, additions]).sort_index(kind="stable")
    return additions


def _check_nothing_lost(existing: pd.DataFrame, merged: pd.DataFrame, key: str) -> None:
    """The merge only adds: refuse to write anything that would drop or rewrite a stored bar."""
    kept = merged.loc[merged.index.isin(existing.index)]
    if len(kept) != len(existing) or not kept.sort_index().equals(existing.sort_index()):
        raise RuntimeError(f"refusing to write {key}: the merged series would lose or change stored bars")
