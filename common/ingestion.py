"""Daily ingestion: for every configured symbol, fetch the candles the store does not hold yet, validate
them and append them. One symbol's failure is recorded and never stops the others.

Pure orchestration: the provider (HTTP vendor or replay) and the store are passed in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

from common.bar_store import AppendResult, OhlcvStore, newest_bar
from common.ohlcv import interval_length
from common.secrets import read_secret
from common.settings import GapPolicy, Settings
from common.storage import S3ObjectStore
from common.validation import bars_behind

if TYPE_CHECKING:
    from common.market_feed import MarketDataProvider

SymbolStatus = Literal["created", "appended", "unchanged", "up_to_date", "failed"]


@dataclass(frozen=True)
class SymbolIngestion:
    symbol: str
    status: SymbolStatus
    appended: int = 0
    fetched: int = 0
    rejected_rows: int = 0
    last_bar: datetime | None = None
    stale: bool = False
    error_type: str | None = None
    error: str | None = None
    append: AppendResult | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "status": self.status,
            "appended": self.appended,
            "fetched": self.fetched,
            "rejected_rows": self.rejected_rows,
            "last_bar": self.last_bar.isoformat() if self.last_bar else None,
            "stale": self.stale,
            "error_type": self.error_type,
            "error": self.error,
        }


@dataclass(frozen=True)
class IngestionSummary:
    as_of: datetime
    interval: str
    provider: str
    symbols: tuple[SymbolIngestion, ...]

    @property
    def appended(self) -> int:
        return sum(item.appended for item in self.symbols)

    @property
    def failed(self) -> tuple[SymbolIngestion, ...]:
        return tuple(item for item in self.symbols if item.status == "failed")

    @property
    def stale(self) -> tuple[SymbolIngestion, ...]:
        return tuple(item for item in self.symbols if item.stale)

    @property
    def rejected_rows(self) -> int:
        return sum(item.rejected_rows for item in self.symbols)

    def to_dict(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of.isoformat(),
            "interval": self.interval,
            "provider": self.provider,
            "appended": self.appended,
            "rejected_rows": self.rejected_rows,
            "failed": [item.symbol for item in self.failed],
            "stale": [item.symbol for item in self.stale],
            "symbols": [item.to_dict() for item in self.symbols],
        }

    def render(self) -> str:
        lines = [f"{'symbol':<8}{'status':<12}{'fetched':>8}{'appended':>9}{'rejected':>9}  last bar          note"]
        for item in self.symbols:
            last = f"{item.last_bar:%Y-%m-%d %H:%M}" if item.last_bar else "-"
            note = f"{item.error_type}: {item.error}" if item.error else ("stale" if item.stale else "")
            lines.append(
                f"{item.symbol:<8}{item.status:<12}{item.fetched:>8}{item.appended:>9}{item.rejected_rows:>9}"
                f"  {last:<17} {note}"
            )
        lines.append(
            f"{self.appended} bar(s) appended for {len(self.symbols)} symbol(s) as of {self.as_of:%Y-%m-%d %H:%M} "
            f"from {self.provider}; {len(self.failed)} failed, {len(self.stale)} stale"
        )
        return "\n".join(lines)


def fetch_window(
    last_stored: datetime | None, interval: str, as_of: datetime, backfill_bars: int
) -> tuple[datetime, datetime]:
    """[start, end) of open times to fetch: after the newest stored bar (so a missed day is back-filled
    on the next run), or ``backfill_bars`` back from the as-of time for a new series."""
    step = interval_length(interval)
    end = pd.Timestamp(as_of)
    if last_stored is not None:
        return (pd.Timestamp(last_stored) + step).to_pydatetime(), end.to_pydatetime()
    grid_end = end.floor(step)
    return (grid_end - backfill_bars * step).to_pydatetime(), end.to_pydatetime()


def ingest_symbols(
    store: OhlcvStore,
    provider: MarketDataProvider,
    symbols: Iterable[str],
    *,
    interval: str,
    as_of: datetime,
    gap_policy: GapPolicy = "report",
    stale_after_bars: int = 2,
    backfill_bars: int = 1000,
    progress: Callable[[SymbolIngestion], None] | None = None,
) -> IngestionSummary:
    step = interval_length(interval)
    results = []
    for symbol in symbols:
        try:
            item = _ingest_one(
                store, provider, symbol, interval, as_of, gap_policy, stale_after_bars, backfill_bars, step
            )
        except Exception as exc:  # one symbol's failure (vendor, validation, storage) never blocks the others
            item = SymbolIngestion(symbol, "failed", error_type=type(exc).__name__, error=str(exc))
        results.append(item)
        if progress is not None:
            progress(item)
    return IngestionSummary(as_of=as_of, interval=interval, provider=provider.name, symbols=tuple(results))


def _ingest_one(
    store: OhlcvStore,
    provider: MarketDataProvider,
    symbol: str,
    interval: str,
    as_of: datetime,
    gap_policy: GapPolicy,
    stale_after_bars: int,
    backfill_bars: int,
    step: Any,
) -> SymbolIngestion:
    stored = store.read_if_exists(symbol, interval)
    last = newest_bar(stored)
    start, end = fetch_window(last, interval, as_of, backfill_bars)
    if pd.Timestamp(start) + step > pd.Timestamp(end):
        # The next bar has not closed yet: nothing to ask the vendor for.
        return SymbolIngestion(
            symbol, "up_to_date", last_bar=last, stale=_is_stale(last, as_of, step, stale_after_bars)
        )
    fetched = provider.fetch_bars(symbol, interval, start, end)
    result = store.append(symbol, interval, fetched, as_of=as_of, gap_policy=gap_policy, base=stored)
    newest = result.last_appended or last
    return SymbolIngestion(
        symbol,
        result.status,
        appended=result.appended,
        fetched=len(fetched),
        rejected_rows=result.incoming.rejected_rows,
        last_bar=newest,
        stale=_is_stale(newest, as_of, step, stale_after_bars),
        append=result,
    )


def _is_stale(last_bar: datetime | None, as_of: datetime, step: Any, stale_after_bars: int) -> bool:
    if last_bar is None:
        return True
    return bars_behind(last_bar, as_of, step) >= stale_after_bars


def provider_from_settings(settings: Settings) -> MarketDataProvider:
    """The configured vendor: Binance klines (API key from Secrets Manager when configured) or replay."""
    from common.market_feed import BinanceKlinesProvider, ReplayProvider

    if settings.market_data_provider == "replay":
        return ReplayProvider.from_settings(settings)
    api_key = None
    if settings.market_data_secret_name:
        api_key = read_secret(settings.market_data_secret_name, field="api_key")
    return BinanceKlinesProvider.from_settings(settings, api_key=api_key)


def run_ingestion(
    settings: Settings,
    *,
    symbols: Iterable[str] | None = None,
    interval: str | None = None,
    as_of: datetime | None = None,
    store: OhlcvStore | None = None,
    provider: MarketDataProvider | None = None,
    progress: Callable[[SymbolIngestion], None] | None = None,
) -> IngestionSummary:
    """Ingestion with everything taken from settings unless given (the handler and the CLI share it)."""
    store = store or OhlcvStore(S3ObjectStore(settings.bucket))
    owns_provider = provider is None
    provider = provider or provider_from_settings(settings)
    try:
        return ingest_symbols(
            store,
            provider,
            symbols or settings.symbols,
            interval=interval or settings.interval,
            as_of=as_of or settings.now(),
            gap_policy=settings.gap_policy,
            stale_after_bars=settings.stale_after_bars,
            backfill_bars=settings.ingest_backfill_bars,
            progress=progress,
        )
    finally:
        close = getattr(provider, "close", None)
        if owns_provider and callable(close):
            close()
