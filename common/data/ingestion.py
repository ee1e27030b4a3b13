"""Daily ingestion: for every configured symbol, fetch the candles the store does not hold yet, validate
them and append them. One symbol's failure is recorded and never stops the others.

A new series gets ``backfill_bars`` bars from a vendor, or the whole history of a provider that holds it
all (a replay folder). A back-fill (``backfill=True``) fetches everything from ``since`` (default: all the
provider has) and adds every bar the store lacks, older ones included, through the same validation and
conditional append: stored bars are compared, never rewritten, and re-running it changes nothing. Every
row refused (by validation, or because it differs from a stored bar) is reported with its time and reason.

Pure orchestration: the provider (HTTP vendor or replay) and the store are passed in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

from common.aws.secrets import read_secret
from common.aws.storage import S3ObjectStore
from common.core.settings import GapPolicy, Settings
from common.data.bar_store import AppendResult, OhlcvStore, newest_bar
from common.data.ohlcv import interval_length
from common.data.validation import RejectedRow, Severity, ValidationIssue, bars_behind, render_findings

if TYPE_CHECKING:
    from common.data.market_feed import MarketDataProvider

SymbolStatus = Literal["created", "appended", "unchanged", "up_to_date", "failed", "not_reached"]
#: Bars a new series gets from a vendor unless RETRAIN_INGEST_BACKFILL_BARS says otherwise.
DEFAULT_BACKFILL_BARS = 1000
#: ... per interval: a new hourly series needs more than 1000 hours (41 days) for its 30-day walk-forward folds,
#: so it gets two years (18 pages of Binance's 1000).
BACKFILL_BARS_BY_INTERVAL = {"1d": DEFAULT_BACKFILL_BARS, "1h": 2 * 365 * 24}
#: Start of a window that reaches back to whatever a provider holds (the Unix epoch).
HISTORY_START = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class SymbolIngestion:
    symbol: str
    status: SymbolStatus
    appended: int = 0
    fetched: int = 0
    rejected_rows: int = 0  # fetched rows refused: by validation, or differing from a stored bar
    last_bar: datetime | None = None
    stale: bool = False
    error_type: str | None = None
    error: str | None = None
    append: AppendResult | None = None
    first_bar: datetime | None = None

    @property
    def findings(self) -> tuple[ValidationIssue, ...]:
        """Counts per reason (validation's findings on the fetched rows, and conflicts with stored bars)."""
        return self.append.findings if self.append is not None else ()

    @property
    def rejections(self) -> tuple[RejectedRow, ...]:
        """Each refused row: its open time and the reason."""
        return self.append.rejections if self.append is not None else ()

    @property
    def noteworthy(self) -> bool:
        """Findings a reader should see (errors or warnings; the routine open bar is not one)."""
        return any(issue.severity != Severity.INFO for issue in self.findings)

    def to_dict(self) -> dict[str, Any]:
        append = self.append
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
            "first_bar": self.first_bar.isoformat() if self.first_bar else None,
            "backfilled": append.backfilled if append is not None else 0,
            "conflicts": append.conflicts if append is not None else 0,
            "boundary_gap": append.boundary_gap if append is not None else 0,
            "issues": [issue.to_dict() for issue in self.findings],
            "rejections": [row.to_dict() for row in self.rejections],
        }

    def render_findings(self, indent: str = "  ") -> list[str]:
        return render_findings(self.findings, self.rejections, indent=indent)


@dataclass(frozen=True)
class IngestionSummary:
    as_of: datetime
    interval: str
    provider: str
    symbols: tuple[SymbolIngestion, ...]
    backfill: bool = False

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

    @property
    def not_reached(self) -> tuple[SymbolIngestion, ...]:
        return tuple(item for item in self.symbols if item.status == "not_reached")

    def not_ready(self) -> dict[str, str]:
        """Symbols whose newest closed bar is not stored, and why: what a check or a prediction would judge on
        an older bar. Failed, not reached before the deadline, or the vendor has not published the bar yet."""
        step = interval_length(self.interval)
        why = {}
        for item in self.symbols:
            if item.status == "failed":
                why[item.symbol] = f"failed: {item.error_type}: {item.error}"
            elif item.status == "not_reached":
                why[item.symbol] = "not reached before the ingestion's deadline"
            elif item.last_bar is None:
                why[item.symbol] = "no bars stored"
            elif (behind := bars_behind(item.last_bar, self.as_of, step)) > 0:
                why[item.symbol] = f"newest bar {item.last_bar:%Y-%m-%d %H:%M} is {behind} bar(s) behind"
        return why

    def to_dict(self) -> dict[str, Any]:
        not_ready = self.not_ready()
        return {
            "as_of": self.as_of.isoformat(),
            "interval": self.interval,
            "provider": self.provider,
            "backfill": self.backfill,
            "appended": self.appended,
            "rejected_rows": self.rejected_rows,
            "failed": [item.symbol for item in self.failed],
            "stale": [item.symbol for item in self.stale],
            "not_reached": [item.symbol for item in self.not_reached],
            # What the day's next steps may judge: each symbol's newest closed bar is stored.
            "ready": [item.symbol for item in self.symbols if item.symbol not in not_ready],
            "not_ready": not_ready,
            "complete": not not_ready,
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
            f"from {self.provider}{' (back-fill)' if self.backfill else ''}; {len(self.failed)} failed, "
            f"{len(self.stale)} stale, {self.rejected_rows} row(s) refused"
            + (f", {len(self.not_reached)} not reached before the deadline" if self.not_reached else "")
        )
        for item in self.symbols:
            if item.noteworthy:
                what = f"{item.fetched} fetched row(s)"
                if item.append is not None and item.append.backfilled:
                    what += f"; {item.append.backfilled} older bar(s) back-filled"
                lines += ["", f"{item.symbol}: {item.rejected_rows} row(s) refused, findings in the {what}:"]
                lines += item.render_findings()
        return "\n".join(lines)


def fetch_window(
    last_stored: datetime | None, interval: str, as_of: datetime, backfill_bars: int | None
) -> tuple[datetime, datetime]:
    """[start, end) of open times to fetch: after the newest stored bar (so a missed day is back-filled
    on the next run), or for a new series ``backfill_bars`` back from the as-of time (None: the whole
    history the provider holds)."""
    step = interval_length(interval)
    end = pd.Timestamp(as_of)
    if last_stored is not None:
        return (pd.Timestamp(last_stored) + step).to_pydatetime(), end.to_pydatetime()
    if backfill_bars is None:
        return HISTORY_START, end.to_pydatetime()
    grid_end = end.floor(step)
    return (grid_end - backfill_bars * step).to_pydatetime(), end.to_pydatetime()


def new_series_bars(provider: MarketDataProvider, backfill_bars: int | None, interval: str = "1d") -> int | None:
    """Bars a new series gets: as configured, else all of a provider that holds the whole history (a
    replay folder: a user loading years of their own data gets all of it), else the vendor default of the
    interval."""
    if backfill_bars is not None:
        return backfill_bars
    return None if getattr(provider, "complete_history", False) else BACKFILL_BARS_BY_INTERVAL[interval]


def ingest_symbols(
    store: OhlcvStore,
    provider: MarketDataProvider,
    symbols: Iterable[str],
    *,
    interval: str,
    as_of: datetime,
    gap_policy: GapPolicy = "report",
    stale_after_bars: int = 2,
    backfill_bars: int | None = None,
    backfill: bool = False,
    since: datetime | None = None,
    progress: Callable[[SymbolIngestion], None] | None = None,
    time_left_s: Callable[[], float] | None = None,
    reserve_s: float = 0.0,
) -> IngestionSummary:
    """Ingest each symbol (see the module doc). ``backfill_bars`` None: :func:`new_series_bars`.
    ``backfill``: fetch from ``since`` (default: all the provider holds) instead of after the newest bar.
    ``time_left_s``: seconds left before the caller's deadline; no symbol is started with less than
    ``reserve_s`` left (one symbol's worst case and the time to report), the rest are ``not_reached``."""
    step = interval_length(interval)
    window = _Window(interval, as_of, new_series_bars(provider, backfill_bars, interval), backfill, since, step)
    results: list[SymbolIngestion] = []
    for symbol in symbols:
        if time_left_s is not None and time_left_s() < reserve_s:
            item = SymbolIngestion(symbol, "not_reached")
            results.append(item)
            if progress is not None:
                progress(item)
            continue
        try:
            item = _ingest_one(store, provider, symbol, window, gap_policy, stale_after_bars)
        except Exception as exc:  # one symbol's failure (vendor, validation, storage) never blocks the others
            item = SymbolIngestion(symbol, "failed", error_type=type(exc).__name__, error=str(exc))
        results.append(item)
        if progress is not None:
            progress(item)
    return IngestionSummary(
        as_of=as_of, interval=interval, provider=provider.name, symbols=tuple(results), backfill=backfill
    )


@dataclass(frozen=True)
class _Window:
    interval: str
    as_of: datetime
    new_series_bars: int | None
    backfill: bool
    since: datetime | None
    step: Any

    def bounds(self, last_stored: datetime | None) -> tuple[datetime, datetime]:
        if self.backfill:
            start = pd.Timestamp(self.since).ceil(self.step).to_pydatetime() if self.since else HISTORY_START
            return start, self.as_of
        return fetch_window(last_stored, self.interval, self.as_of, self.new_series_bars)


def _ingest_one(
    store: OhlcvStore,
    provider: MarketDataProvider,
    symbol: str,
    window: _Window,
    gap_policy: GapPolicy,
    stale_after_bars: int,
) -> SymbolIngestion:
    interval, as_of, step = window.interval, window.as_of, window.step
    stored = store.read_if_exists(symbol, interval)
    last = newest_bar(stored)
    first = stored.bars.index.min().to_pydatetime() if stored is not None and len(stored.bars) else None
    start, end = window.bounds(last)
    if pd.Timestamp(start) + step > pd.Timestamp(end):
        # The next bar has not closed yet: nothing to ask the vendor for.
        return SymbolIngestion(
            symbol,
            "up_to_date",
            last_bar=last,
            stale=_is_stale(last, as_of, step, stale_after_bars),
            first_bar=first,
        )
    fetched = provider.fetch_bars(symbol, interval, start, end)
    result = store.append(symbol, interval, fetched, as_of=as_of, gap_policy=gap_policy, base=stored)
    newest = max(filter(None, (result.last_appended, last)), default=None)
    oldest = min(filter(None, (result.first_appended, first)), default=None)
    return SymbolIngestion(
        symbol,
        result.status,
        appended=result.appended,
        fetched=len(fetched),
        rejected_rows=result.rejected_rows,
        last_bar=newest,
        stale=_is_stale(newest, as_of, step, stale_after_bars),
        append=result,
        first_bar=oldest,
    )


def _is_stale(last_bar: datetime | None, as_of: datetime, step: Any, stale_after_bars: int) -> bool:
    if last_bar is None:
        return True
    return bars_behind(last_bar, as_of, step) >= stale_after_bars


def provider_from_settings(settings: Settings) -> MarketDataProvider:
    """The configured vendor: Binance klines (API key from Secrets Manager when configured) or replay."""
    from common.data.market_feed import BinanceKlinesProvider, ReplayProvider

    if settings.market_data_provider == "replay":
        return ReplayProvider.from_settings(settings)
    api_key = None
    if settings.market_data_secret_name:
        api_key = read_secret(settings.market_data_secret_name, field="api_key")
    return BinanceKlinesProvider.from_settings(settings, api_key=api_key)


def worst_case_seconds(provider: MarketDataProvider) -> float:
    """How long one symbol's fetch can take at worst (every attempt timing out, every backoff at its cap);
    0 for a provider that does not say (a local folder)."""
    worst = getattr(provider, "worst_case_seconds", None)
    return float(worst()) if callable(worst) else 0.0


def run_ingestion(
    settings: Settings,
    *,
    symbols: Iterable[str] | None = None,
    interval: str | None = None,
    as_of: datetime | None = None,
    store: OhlcvStore | None = None,
    provider: MarketDataProvider | None = None,
    progress: Callable[[SymbolIngestion], None] | None = None,
    backfill: bool = False,
    since: datetime | None = None,
    time_left_s: Callable[[], float] | None = None,
    reserve_margin_s: float = 0.0,
) -> IngestionSummary:
    """Ingestion with everything taken from settings unless given (the handler and the CLI share it).
    ``time_left_s``: see :func:`ingest_symbols`; the reserve is the provider's worst case for one symbol plus
    ``reserve_margin_s``."""
    store = store or OhlcvStore(S3ObjectStore(settings.bucket))
    owns_provider = provider is None
    provider = provider or provider_from_settings(settings)
    interval = interval or settings.interval
    try:
        return ingest_symbols(
            store,
            provider,
            symbols or settings.symbols_on(interval),
            interval=interval,
            as_of=as_of or settings.now(),
            gap_policy=settings.gap_policy,
            stale_after_bars=settings.stale_after_bars,
            backfill_bars=settings.ingest_backfill_bars,
            backfill=backfill,
            since=since,
            progress=progress,
            time_left_s=time_left_s,
            reserve_s=worst_case_seconds(provider) + reserve_margin_s,
        )
    finally:
        close = getattr(provider, "close", None)
        if owns_provider and callable(close):
            close()
