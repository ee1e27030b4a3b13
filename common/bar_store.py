"""OHLCV history per (symbol, interval) in the object store: validated appends and validated loads.

One CSV object per series (``common.keys.ohlcv_key``). An append reads the object, adds only bars it
does not hold yet, and writes it back with a conditional PUT (If-Match on the ETag it read), so:

- re-running the same append changes nothing (no write at all);
- a stored bar is never rewritten or dropped (the merge only adds; a check refuses to write otherwise);
- a failed or concurrent write leaves the previous object intact (S3 PUTs are atomic, the condition
  makes a racing writer retry on top of the other's result instead of overwriting it), and the bucket
  is versioned, so every earlier state stays recoverable.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import pandas as pd

from common.errors import ConcurrentWriteError, DataNotFoundError, DataValidationError
from common.keys import ohlcv_key
from common.ohlcv import PRICE_COLUMNS, empty_bars, interval_length, parse_ohlcv_csv, to_ohlcv_csv
from common.settings import GapPolicy
from common.storage import S3ObjectStore
from common.validation import ValidatedBars, ValidationReport, missing_bar_times, validate_bars

AppendStatus = Literal["created", "appended", "unchanged"]
WRITE_ATTEMPTS = 3


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
    boundary_gap: int  # bars missing between the stored history and the first appended bar

    @property
    def appended(self) -> int:
        return self.bars_after - self.bars_before

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
            "validation": self.incoming.to_dict(),
        }


class OhlcvStore:
    def __init__(self, objects: S3ObjectStore) -> None:
        self.objects = objects

    def read(self, symbol: str, interval: str) -> StoredBars:
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
        bars = parse_ohlcv_csv(stored.body, source=f"s3://{self.objects.bucket}/{key}")
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
    ) -> LoadedBars:
        """The closed, validated bars at ``as_of``; :class:`DataNotFoundError` when none are usable."""
        stored = self.read(symbol, interval)
        validated = validate_bars(
            stored.bars,
            symbol=symbol,
            interval=interval,
            as_of=as_of,
            gap_policy=gap_policy,
            stale_after_bars=stale_after_bars,
        )
        if validated.bars.empty:
            raise DataNotFoundError(
                f"{symbol} {interval}: no valid closed bar at or before {as_of:%Y-%m-%d %H:%M} in s3://"
                f"{self.objects.bucket}/{stored.key} ({validated.report.summary()})"
            )
        return LoadedBars(stored.key, stored.version_id, validated)

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
        conflicts = int(
            (new.loc[overlap].to_numpy() != existing.loc[overlap, list(new.columns)].to_numpy()).any(axis=1).sum()
        )
        additions = new.loc[~new.index.isin(existing.index)]
        boundary_gap = 0
        if len(existing) and len(additions):
            additions, boundary_gap = _bridge_gap(existing, additions, interval, gap_policy, symbol)

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
                conflicts=conflicts,
                boundary_gap=boundary_gap,
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
    """Bars missing between the stored history and the first new bar, handled by the gap policy."""
    step = interval_length(interval)
    last_stored = existing.index.max()
    after = additions.index[additions.index > last_stored]
    if not len(after):
        return additions, 0  # only a back-fill of older bars: nothing to bridge
    missing = missing_bar_times(pd.DatetimeIndex([last_stored, after.min()]), step)
    if not len(missing):
        return additions, 0
    if policy == "reject":
        raise DataValidationError(
            f"{symbol} {interval}: appending from {after.min():%Y-%m-%d %H:%M} would leave {len(missing)} "
            f"missing bar(s) after the stored {last_stored:%Y-%m-%d %H:%M} (RETRAIN_GAP_POLICY=reject)"
        )
    if policy == "fill":
        close = float(existing.loc[last_stored, "close"])
        flat = pd.DataFrame({**dict.fromkeys(PRICE_COLUMNS, close), "volume": 0.0}, index=missing)
        additions = pd.concat([flat, additions])
    return additions, len(missing)


def _check_nothing_lost(existing: pd.DataFrame, merged: pd.DataFrame, key: str) -> None:
    """The merge only adds: refuse to write anything that would drop or rewrite a stored bar."""
    kept = merged.loc[merged.index.isin(existing.index)]
    if len(kept) != len(existing) or not kept.sort_index().equals(existing.sort_index()):
        raise RuntimeError(f"refusing to write {key}: the merged series would lose or change stored bars")
