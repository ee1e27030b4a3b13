"""Market-data providers: where ingestion gets candles from.

:class:`BinanceKlinesProvider` fetches them from Binance's public klines endpoint (retrying what a retry can
fix, failing loudly on what it cannot); :class:`ReplayProvider` serves the bundled CSVs through the same
interface, so offline runs and the demo replay history through the ingestion code path unchanged.

Providers only translate: they refuse payloads they cannot parse, but value checks (non-positive prices,
high < low, gaps, the still-open bar) are the validation module's job.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, Self, runtime_checkable

import httpx
import pandas as pd
import tenacity

from common.core.errors import (
    ConfigurationError,
    DataFormatError,
    MarketDataError,
    ProviderUnavailableError,
    RegionBlockedError,
    UnknownSymbolError,
)
from common.core.settings import SYMBOL_RULE, as_utc, is_symbol
from common.data.ohlcv import COLUMNS, empty_bars, interval_length, parse_ohlcv_csv

if TYPE_CHECKING:
    from common.core.settings import Settings

logger = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_VALUE_COLUMNS: tuple[str, ...] = COLUMNS[1:]

#: Our interval names -> Binance's ``interval`` parameter.
BINANCE_INTERVALS: dict[str, str] = {"1d": "1d", "1h": "1h"}
#: Binance's maximum ``limit`` for klines; one request never asks for more.
BINANCE_PAGE_LIMIT = 1000
#: Binance error code for a symbol it does not list (no retry helps).
BINANCE_INVALID_SYMBOL = -1121
#: Fields per kline row in Binance's documented response.
KLINE_FIELDS = 12
# Row positions of our columns. Volume is the QUOTE asset volume (field 7, e.g. USDT), not the base asset
# volume (field 5, e.g. BTC): the stored history (sample_data, USD-quoted) counts volume in the quote
# currency, and mixing units would put a ~1e5x step into every volume-based feature at the seam.
_KLINE_POSITIONS: dict[str, int] = {"open": 1, "high": 2, "low": 3, "close": 4, "volume": 7}
_RETRYABLE_STATUS = frozenset({418, 429})
#: Binance's answer to a request from a location it does not serve (e.g. api.binance.com from US regions).
HTTP_UNAVAILABLE_FOR_LEGAL_REASONS = 451


@runtime_checkable
class MarketDataProvider(Protocol):
    """A source of OHLCV bars. Ingestion depends on this, not on a vendor.

    A provider may also say ``complete_history = True`` when it holds a series' whole history (a replay
    folder): a new series then gets all of it rather than the last ``RETRAIN_INGEST_BACKFILL_BARS``.
    """

    name: str

    def fetch_bars(self, symbol: str, interval: str, start: datetime, end: datetime) -> pd.DataFrame:
        """Bars whose open time is in ``[start, end)``, in :func:`common.data.ohlcv.parse_ohlcv_csv`'s shape and
        in the source's order (validation sorts them and reports disorder). May include the still-open
        current bar: validation drops it against the as-of clock."""
        ...


def _ceil_ms(value: datetime) -> int:
    """Epoch milliseconds rounded up: a bar opening at integer ms ``t`` satisfies ``t >= value`` iff
    ``t >= _ceil_ms(value)``, so sub-millisecond bounds keep the ``[start, end)`` contract exact."""
    return -(-(as_utc(value) - _EPOCH) // _MS)


def _slice(bars: pd.DataFrame, start: datetime, end: datetime) -> pd.DataFrame:
    index = bars.index
    return bars.loc[(index >= pd.Timestamp(as_utc(start))) & (index < pd.Timestamp(as_utc(end)))]


class _RetryableResponse(Exception):
    """A response worth retrying (429/418/5xx); carries what the wait strategy and the final error need."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code} {response.reason_phrase}".rstrip())
        self.status_code = response.status_code
        self.retry_after = _retry_after_seconds(response)


def _retry_after_seconds(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds (what Binance sends); HTTP-date values are ignored, not guessed at."""
    raw = response.headers.get("Retry-After")
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        return None
    return max(seconds, 0.0) if math.isfinite(seconds) else None


def _describe(exc: BaseException | None) -> str:
    if isinstance(exc, _RetryableResponse):
        return str(exc)
    if exc is None:
        return "unknown error"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class BinanceKlinesProvider:
    """Candles from Binance's public ``GET /api/v3/klines`` (docs: developers.binance.com, spot REST API,
    market data endpoints). The default host, data-api.binance.vision, serves market data only.

    Retries 429/418 (honouring ``Retry-After``), 5xx and transport errors/timeouts with capped exponential
    backoff and jitter; an unknown symbol or another 4xx fails at once, since no retry can fix it.
    """

    name = "binance"
    complete_history = False  # a new series gets RETRAIN_INGEST_BACKFILL_BARS bars; --backfill reaches further

    def __init__(
        self,
        *,
        base_url: str,
        quote: str = "USDT",
        api_key: str | None = None,
        timeout_s: float = 10.0,
        max_attempts: int = 5,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        self.base_url = base_url.rstrip("/")
        self.quote = quote
        self.max_attempts = max_attempts
        self.backoff_max_s = backoff_max_s
        self._api_key = api_key
        self._timeout = httpx.Timeout(timeout_s)
        self._sleep = sleep
        self._backoff = tenacity.wait_exponential_jitter(
            multiplier=backoff_initial_s, max=backoff_max_s, jitter=backoff_initial_s
        )
        # Close only what we opened: an injected client belongs to the caller.
        self._owns_client = client is None
        self._client = client if client is not None else httpx.Client(timeout=self._timeout)

    @classmethod
    def from_settings(
        cls, settings: Settings, api_key: str | None = None, client: httpx.Client | None = None
    ) -> BinanceKlinesProvider:
        """The provider the settings describe; the API key comes from the caller (a secret, not a setting)."""
        return cls(
            base_url=settings.market_data_url,
            quote=settings.market_data_quote,
            api_key=api_key,
            timeout_s=settings.http_timeout_s,
            max_attempts=settings.http_max_attempts,
            client=client,
        )

    def __repr__(self) -> str:  # never shows the API key
        return f"{type(self).__name__}(base_url={self.base_url!r}, quote={self.quote!r})"

    # --- lifecycle ----------------------------------------------------------------------------------
    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def worst_case_seconds(self) -> float:
        """One request at its worst: every attempt timing out, every wait between them at its cap (a
        ``Retry-After`` is capped there too). The ingestion keeps this much time in reserve."""
        timeout = self._timeout.read or 0.0
        return self.max_attempts * timeout + (self.max_attempts - 1) * self.backoff_max_s

    # --- fetching -----------------------------------------------------------------------------------
    def pair(self, symbol: str) -> str:
        """Binance's symbol for one of ours: ``BTC`` -> ``BTCUSDT``."""
        return f"{symbol}{self.quote}"

    def fetch_bars(self, symbol: str, interval: str, start: datetime, end: datetime) -> pd.DataFrame:
        """Bars opening in ``[start, end)``, paging 1000 at a time (Binance's ``endTime`` is inclusive,
        so the request asks for open times up to ``end`` minus one millisecond)."""
        step_ms = interval_length(interval) // _MS
        binance_interval = BINANCE_INTERVALS[interval]
        pair = self.pair(symbol)
        start_ms, last_ms = _ceil_ms(start), _ceil_ms(end) - 1
        opens: list[int] = []
        rows: list[list[float]] = []
        cursor = start_ms
        while cursor <= last_ms:
            params = {
                "symbol": pair,
                "interval": binance_interval,
                "startTime": cursor,
                "endTime": last_ms,
                "limit": BINANCE_PAGE_LIMIT,
            }
            page = self._request_page(symbol, pair, params)
            where = f"{pair} {interval} klines (startTime={cursor})"
            page_opens, page_rows = _parse_page(page, where=where, step_ms=step_ms)
            if not page_opens:
                break
            # Everything must lie in the window asked for: a page starting before the cursor means the server
            # ignored startTime, and following it would repeat bars or loop forever.
            if page_opens[0] < cursor:
                raise DataFormatError(
                    f"{where}: page does not advance (first openTime {page_opens[0]} is before startTime "
                    f"{cursor}); refusing to loop"
                )
            if page_opens[-1] > last_ms:
                raise DataFormatError(f"{where}: openTime {page_opens[-1]} is after the requested endTime {last_ms}")
            opens.extend(page_opens)
            rows.extend(page_rows)
            if len(page_opens) < BINANCE_PAGE_LIMIT:
                break
            cursor = page_opens[-1] + step_ms  # past the last bar: open times lie on the interval grid
        if not opens:
            return empty_bars()
        index = pd.DatetimeIndex(pd.to_datetime(opens, unit="ms", utc=True), name="datetime")
        return pd.DataFrame(rows, index=index, columns=list(_VALUE_COLUMNS), dtype="float64")

    def _request_page(self, symbol: str, pair: str, params: dict[str, Any]) -> Any:
        """One klines request with retries; returns the decoded JSON body of a 2xx response."""
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.max_attempts),
            wait=self._wait,
            retry=tenacity.retry_if_exception_type((_RetryableResponse, httpx.TransportError)),
            sleep=self._sleep,
            before_sleep=lambda state: self._log_retry(pair, state),
            reraise=False,
        )
        try:
            response = retrying(self._get, params)
        except tenacity.RetryError as exc:
            last = exc.last_attempt.exception()
            raise ProviderUnavailableError(
                f"Binance klines for {pair} (symbol {symbol}) unavailable after {self.max_attempts} attempts; "
                f"last: {_describe(last)}"
            ) from None
        if not response.is_success:
            raise self._client_error(symbol, pair, response)
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            content_type = response.headers.get("content-type", "unknown")
            snippet = response.text[:80].replace("\n", " ")
            raise DataFormatError(
                f"{pair} klines (symbol {symbol}): response is not JSON (HTTP {response.status_code}, "
                f"content-type {content_type}, starts {snippet!r})"
            ) from None

    def _get(self, params: dict[str, Any]) -> httpx.Response:
        headers = {"X-MBX-APIKEY": self._api_key} if self._api_key else {}
        response = self._client.get(
            f"{self.base_url}/api/v3/klines", params=params, headers=headers, timeout=self._timeout
        )
        if response.status_code in _RETRYABLE_STATUS or response.status_code >= 500:
            raise _RetryableResponse(response)
        return response

    def _wait(self, state: tenacity.RetryCallState) -> float:
        """The server's ``Retry-After`` when it sent one (capped), else exponential backoff with jitter."""
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _RetryableResponse) and exc.retry_after is not None:
            return min(exc.retry_after, self.backoff_max_s)
        return self._backoff(state)

    def _log_retry(self, pair: str, state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        delay = state.next_action.sleep if state.next_action else 0.0
        logger.warning(
            "binance klines %s: attempt %d/%d failed (%s); retrying in %.2fs",
            pair,
            state.attempt_number,
            self.max_attempts,
            _describe(exc),
            delay,
        )

    def _client_error(self, symbol: str, pair: str, response: httpx.Response) -> MarketDataError:
        """A non-retryable answer (4xx, or a redirect we do not follow), explained with Binance's own ``{"code", "msg"}`` when the body has one."""
        code: object = None
        msg = response.text[:200]
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        if isinstance(body, dict):
            code, msg = body.get("code"), str(body.get("msg", msg))
        if response.status_code == HTTP_UNAVAILABLE_FOR_LEGAL_REASONS:
            return RegionBlockedError(
                f"Binance refuses requests from this location (HTTP 451, region block) for {pair} at "
                f"{self.base_url}: {msg}. Run ingestion from a region Binance serves, or set "
                "RETRAIN_MARKET_DATA_URL to a klines host that serves it"
            )
        if code == BINANCE_INVALID_SYMBOL:
            return UnknownSymbolError(
                f"Binance does not list {pair} (symbol {symbol!r} with quote {self.quote!r}): {msg}"
            )
        detail = f"code {code}: {msg}" if code is not None else msg
        return MarketDataError(
            f"Binance klines for {pair} (symbol {symbol}) failed: HTTP {response.status_code}, {detail}"
        )


def _parse_page(page: Any, *, where: str, step_ms: int) -> tuple[list[int], list[list[float]]]:
    """Open times and float values of one klines page; any malformed row refuses the whole page."""
    if not isinstance(page, list):
        hint = f" ({page.get('msg')})" if isinstance(page, dict) and "msg" in page else ""
        raise DataFormatError(f"{where}: expected a JSON list of klines, got {type(page).__name__}{hint}")
    opens: list[int] = []
    rows: list[list[float]] = []
    for n, row in enumerate(page):
        if not isinstance(row, list):
            raise DataFormatError(f"{where}: row {n} is {type(row).__name__}, expected a list")
        if len(row) != KLINE_FIELDS:
            raise DataFormatError(f"{where}: row {n} has {len(row)} fields, expected {KLINE_FIELDS}")
        open_ms = row[0]
        if not isinstance(open_ms, int) or isinstance(open_ms, bool):
            raise DataFormatError(f"{where}: row {n} openTime {open_ms!r} is not an integer of milliseconds")
        if open_ms % step_ms:
            raise DataFormatError(f"{where}: row {n} openTime {open_ms} is not on the {step_ms} ms interval grid")
        if opens and open_ms <= opens[-1]:
            raise DataFormatError(f"{where}: row {n} openTime {open_ms} does not increase (previous {opens[-1]})")
        values = []
        for column in _VALUE_COLUMNS:
            raw = row[_KLINE_POSITIONS[column]]
            value = _number(raw)
            if value is None:
                raise DataFormatError(f"{where}: row {n} (openTime {open_ms}) {column} {raw!r} is not a number")
            values.append(value)
        opens.append(open_ms)
        rows.append(values)
    return opens, rows


def _number(raw: object) -> float | None:
    """Binance sends decimals as strings; a finite number (string or JSON number) or None."""
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


class ReplayProvider:
    """Serves ``{directory}/{interval}/{SYMBOL}.csv`` (the sample_data/ohlcv layout) as if it were live, for
    offline runs, the demo and a user's own history. Each file is parsed once per instance.

    A cell that is not a number refuses its row only (validation names the row and the cell), never the
    file; rows are served in the file's order, so validation reports disorder and duplicates as it finds
    them. A row without a timestamp is served with any window that reaches back to the file's first bar
    (a first ingest or a back-fill), where validation refuses and reports it.
    """

    name = "replay"
    complete_history = True  # the file is the whole history: a first ingest takes all of it

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self._cache: dict[tuple[str, str], pd.DataFrame] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> ReplayProvider:
        if not settings.market_data_replay_dir:
            raise ConfigurationError(
                "RETRAIN_MARKET_DATA_PROVIDER=replay needs RETRAIN_MARKET_DATA_REPLAY_DIR (e.g. sample_data/ohlcv)"
            )
        return cls(settings.market_data_replay_dir)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(directory={str(self.directory)!r})"

    def path(self, symbol: str, interval: str) -> Path:
        return self.directory / interval / f"{symbol}.csv"

    def listing(self, interval: str) -> tuple[list[str], list[str]]:
        """Symbols with a file for ``interval``, and the CSV files whose names are not symbol names."""
        folder = self.directory / interval
        names = sorted(path.name for path in folder.glob("*.csv") if path.is_file()) if folder.is_dir() else []
        symbols = [name.removesuffix(".csv") for name in names if is_symbol(name.removesuffix(".csv"))]
        return symbols, [name for name in names if not is_symbol(name.removesuffix(".csv"))]

    def fetch_bars(self, symbol: str, interval: str, start: datetime, end: datetime) -> pd.DataFrame:
        """Bars opening in ``[start, end)``; a copy, so callers cannot alter the cached history."""
        bars = self._bars(symbol, interval)
        window = _slice(bars, start, end)
        timeless = bars.index.isna()
        if timeless.any() and pd.Timestamp(as_utc(start)) <= bars.index.min():
            window = pd.concat([window, bars.loc[timeless]])
        return window.copy()

    def _bars(self, symbol: str, interval: str) -> pd.DataFrame:
        interval_length(interval)  # unknown interval -> DataFormatError, before touching the filesystem
        key = (interval, symbol)
        if key not in self._cache:
            # The symbol becomes a file name: refuse anything that is not a plain ticker (no "../").
            if not is_symbol(symbol):
                raise UnknownSymbolError(self._not_a_symbol(symbol, interval))
            path = self.path(symbol, interval)
            if not path.is_file():
                raise UnknownSymbolError(
                    f"replay data has no {interval} bars for {symbol!r}: {path} does not exist{self._holds(interval)}"
                )
            self._cache[key] = parse_ohlcv_csv(path.read_bytes(), source=str(path), invalid_cells="keep")
        return self._cache[key]

    def _not_a_symbol(self, symbol: str, interval: str) -> str:
        message = f"{symbol!r} is not a symbol name: {SYMBOL_RULE}"
        if not any(part in symbol for part in ("/", "\\", "..")) and self.path(symbol, interval).is_file():
            stem = re.match(r"[A-Za-z0-9]+", symbol)
            example = f"{stem.group(0).upper()[:15]}.csv" if stem else "BTC.csv"
            message += (
                f"; the file {self.path(symbol, interval)} exists but cannot be ingested under that name: rename it "
                f"(e.g. to {example}) and ingest that symbol"
            )
        return message

    def _holds(self, interval: str) -> str:
        folder = self.directory / interval
        if not folder.is_dir():
            return f" (the replay folder holds {{interval}}/{{SYMBOL}}.csv files, and {folder} is not a folder)"
        symbols, misnamed = self.listing(interval)
        text = f" ({folder} holds {', '.join(symbols) or 'no symbol'})"
        if misnamed:
            text += f"; {', '.join(misnamed)} never read, since {SYMBOL_RULE}"
        return text
