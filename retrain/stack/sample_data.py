"""The sample OHLCV shipped in ``sample_data/ohlcv/{interval}/{SYMBOL}.csv``, and its seeding of S3."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from common.aws.storage import S3ObjectStore
from common.core.errors import ConfigurationError
from common.core.settings import parse_pool_entry
from common.data.bar_store import AppendResult, OhlcvStore
from common.data.ohlcv import interval_length, parse_ohlcv_csv

#: The day of the last daily bar in the shipped sample data; ingestion appends it on the next day.
SAMPLE_DATA_END = datetime(2025, 2, 20, tzinfo=UTC)


def available(sample_dir: Path) -> dict[str, list[str]]:
    """Intervals available per symbol."""
    found: dict[str, list[str]] = {}
    for path in sorted(sample_dir.glob("*/*.csv")):
        found.setdefault(path.stem, []).append(path.parent.name)
    return found


def check_symbols(sample_dir: Path, entries: tuple[str, ...], default_interval: str = "1d") -> tuple[str, ...]:
    """The symbols of the pool's ``entries`` (``SYMBOL`` on ``default_interval``, or ``SYMBOL:INTERVAL``), once
    each; a :class:`ConfigurationError` naming the first entry the sample data has no series for."""
    if not sample_dir.is_dir():
        raise ConfigurationError(f"sample data folder {sample_dir} does not exist")
    known = available(sample_dir)
    symbols: dict[str, None] = {}
    for text in entries:
        try:
            entry = parse_pool_entry(text, default_interval)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        if entry.symbol not in known:
            raise ConfigurationError(
                f"pool entry {text!r}: unknown symbol {entry.symbol}, no sample data for it in {sample_dir}; "
                f"available: {','.join(sorted(known))}"
            )
        if entry.interval not in known[entry.symbol]:
            on = sorted(s for s, intervals in known.items() if entry.interval in intervals)
            raise ConfigurationError(
                f"pool entry {text!r}: no {entry.interval} sample data for {entry.symbol} in {sample_dir}; "
                f"{entry.interval} bars exist for: {','.join(on) or 'none'}"
            )
        symbols[entry.symbol] = None
    return tuple(symbols)


@dataclass(frozen=True)
class SeedSummary:
    results: tuple[AppendResult, ...]
    not_yet: tuple[str, ...] = ()  # series with no bar before the seed's `until`

    def summary(self) -> str:
        created = sum(r.status == "created" for r in self.results)
        appended = sum(r.status == "appended" for r in self.results)
        rejected = [
            f"{r.symbol} {r.interval}: {r.incoming.rejected_rows}" for r in self.results if r.incoming.rejected_rows
        ]
        text = f"{len(self.results)} series, {created} created, {appended} extended"
        if self.not_yet:
            text += f", {len(self.not_yet)} starting later ({', '.join(self.not_yet)})"
        return text + (f", rows refused by validation ({'; '.join(rejected)})" if rejected else "")


def seed(
    store: S3ObjectStore, sample_dir: Path, symbols: tuple[str, ...], *, until: datetime | None = None
) -> SeedSummary:
    """Seed the bucket with each symbol's sample series through the validated append: bad rows (AAVE's
    zero-price first bar) are refused and reported, and bars already stored are never rewritten, so
    history appended since (ingestion) survives a restart."""
    bars_store = OhlcvStore(store)
    results = []
    skipped: list[str] = []
    for symbol in symbols:
        for path in sorted(sample_dir.glob(f"*/{symbol}.csv")):
            interval = path.parent.name
            bars = parse_ohlcv_csv(path.read_bytes(), source=str(path))
            if until is not None:  # a replay starts from history up to its start; ingestion appends the rest
                bars = bars.loc[bars.index + interval_length(interval) <= until]
                if bars.empty:  # the series starts later (SOL's hourly file): ingestion brings it in time
                    skipped.append(f"{symbol} {interval}")
                    continue
            every_bar_closed = bars.index.max() + interval_length(interval)
            results.append(bars_store.append(symbol, interval, bars, as_of=every_bar_closed.to_pydatetime()))
    return SeedSummary(tuple(results), tuple(skipped))
