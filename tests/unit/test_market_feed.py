"""common.data.market_feed: Binance klines over a mocked transport (parsing, paging, retries, errors) and the
replay provider over the sample data. No network, no real sleeping."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from common.core.errors import (
    ConfigurationError,
    DataFormatError,
    MarketDataError,
    ProviderUnavailableError,
    RegionBlockedError,
    UnknownSymbolError,
)
from common.core.settings import load_settings
from common.data.market_feed import BinanceKlinesProvider, MarketDataProvider, ReplayProvider, empty_bars
from common.data.ohlcv import parse_ohlcv_csv
from tests.conftest import closed_bars

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "binance"
SAMPLE_OHLCV = ROOT / "sample_data" / "ohlcv"
BASE_URL = "https://data-api.binance.vision"
KLINES_URL = f"{BASE_URL}/api/v3/klines"
HOUR_MS = 3_600_000
DAY_MS = 86_400_000

Handler = Callable[[httpx.Request], httpx.Response]


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def _json_response(name: str, status: int = 200, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(
        status, content=_fixture(name), headers={"content-type": "application/json", **(headers or {})}
    )


def _sample(interval: str, symbol: str) -> pd.DataFrame:
    path = SAMPLE_OHLCV / interval / f"{symbol}.csv"
    return parse_ohlcv_csv(path.read_bytes(), source=str(path))


def _kline(open_ms: int, step_ms: int, price: float = 100.0) -> list[Any]:
    """One row in Binance's shape."""
    p = f"{price:.8f}"
    return [open_ms, p, p, p, p, "1.00000000", open_ms + step_ms - 1, p, 1, "0.50000000", "50.00000000", "0"]


class Recorder:
    """A MockTransport handler that records requests and replays a scripted list of answers."""

    def __init__(self, *answers: httpx.Response | Exception | Handler) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers[min(len(self.requests), len(self.answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        if callable(answer):
            return answer(request)
        return answer


class FakeSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def _provider(
    handler: Handler, sleep: FakeSleep | None = None, **kwargs: Any
) -> tuple[BinanceKlinesProvider, FakeSleep]:
    sleep = sleep or FakeSleep()
    client = httpx.Client(transport=httpx.MockTransport(handler))
    return BinanceKlinesProvider(base_url=BASE_URL, client=client, sleep=sleep, **kwargs), sleep


BTC_START, BTC_END = _utc("2025-02-14"), _utc("2025-02-21")
BTC_AS_OF = _utc("2025-02-20T12:00")


# --- parsing --------------------------------------------------------------------------------------


def test_daily_klines_parse_to_the_ohlcv_frame_and_request_is_well_formed() -> None:
    recorder = Recorder(_json_response("klines_BTCUSDT_1d.json"))
    provider, sleep = _provider(recorder, timeout_s=7.5)

    bars = provider.fetch_bars("BTC", "1d", BTC_START, BTC_END)

    assert len(recorder.requests) == 1 and sleep.delays == []
    request = recorder.requests[0]
    assert request.method == "GET"
    assert str(request.url).split("?")[0] == KLINES_URL
    assert dict(request.url.params) == {
        "symbol": "BTCUSDT",
        "interval": "1d",
        "startTime": str(_ms(BTC_START)),
        "endTime": str(_ms(BTC_END) - 1),  # Binance's endTime is inclusive; ours is exclusive
        "limit": "1000",
    }
    assert "x-mbx-apikey" not in request.headers
    assert request.extensions["timeout"] == httpx.Timeout(7.5).as_dict()

    assert list(bars.columns) == ["open", "high", "low", "close", "volume"]
    assert all(dtype == "float64" for dtype in bars.dtypes)
    assert bars.index.name == "datetime" and str(bars.index.tz) == "UTC"
    assert bars.index.dtype == _sample("1d", "BTC").index.dtype
    assert list(bars.index) == list(pd.date_range("2025-02-14", "2025-02-20", freq="D", tz="UTC"))
    # Prices are the sample data's (to Binance's 8 decimals); volume is the quote-asset (USD-like) volume.
    expected = _sample("1d", "BTC").loc["2025-02-14":"2025-02-20"]
    pd.testing.assert_frame_equal(bars, expected, check_exact=False, rtol=1e-12, check_freq=False)
    assert bars.loc["2025-02-20", "close"].item() == 97600.0625
    # The still-open 2025-02-20 bar is served; the closed-bar rule downstream drops it.
    assert list(closed_bars(bars, "1d", BTC_AS_OF).index) == list(bars.index[:-1])


def test_hourly_klines_and_api_key_header() -> None:
    recorder = Recorder(_json_response("klines_ETHUSDT_1h.json"))
    provider, _ = _provider(recorder, api_key="secret-key-123")
    start, end = _utc("2025-02-19T18:00"), _utc("2025-02-20T00:00")

    bars = provider.fetch_bars("ETH", "1h", start, end)

    request = recorder.requests[0]
    assert request.headers["X-MBX-APIKEY"] == "secret-key-123"
    assert request.url.params["symbol"] == "ETHUSDT"
    assert request.url.params["interval"] == "1h"
    assert request.url.params["startTime"] == str(_ms(start))
    assert request.url.params["endTime"] == str(_ms(end) - 1)
    assert len(bars) == 6 and bars.index.is_monotonic_increasing
    assert bars.index[0] == pd.Timestamp("2025-02-19T18:00Z") and bars.index[-1] == pd.Timestamp("2025-02-19T23:00Z")
    expected = _sample("1h", "ETH").loc["2025-02-19 18:00":"2025-02-19 23:00"]
    pd.testing.assert_frame_equal(bars, expected, check_exact=False, rtol=1e-8, check_freq=False)
    assert "secret-key-123" not in repr(provider)


def test_quote_and_base_url_are_configurable() -> None:
    recorder = Recorder(httpx.Response(200, json=[]))
    client = httpx.Client(transport=httpx.MockTransport(recorder))
    provider = BinanceKlinesProvider(base_url="http://mirror.local:8080/", quote="FDUSD", client=client)
    provider.fetch_bars("SOL", "1d", BTC_START, BTC_END)
    assert str(recorder.requests[0].url).startswith("http://mirror.local:8080/api/v3/klines?symbol=SOLFDUSD&")


def test_no_bars_is_an_empty_frame_of_the_right_shape() -> None:
    recorder = Recorder(httpx.Response(200, json=[]))
    provider, _ = _provider(recorder)
    bars = provider.fetch_bars("BTC", "1d", BTC_START, BTC_END)
    pd.testing.assert_frame_equal(bars, empty_bars())
    assert list(bars.columns) == ["open", "high", "low", "close", "volume"]
    assert bars.index.dtype == "datetime64[ns, UTC]" and bars.index.name == "datetime"
    # An empty window asks nothing.
    assert provider.fetch_bars("BTC", "1d", BTC_END, BTC_END).empty
    assert len(recorder.requests) == 1


def test_value_problems_pass_through_to_validation() -> None:
    """Non-positive prices or high < low are well-formed payloads: validation judges them, not the provider."""
    row = _kline(_ms(BTC_START), DAY_MS)
    row[1], row[2], row[3] = "0.00000000", "90.00000000", "95.00000000"
    provider, _ = _provider(Recorder(httpx.Response(200, json=[row])))
    bars = provider.fetch_bars("BTC", "1d", BTC_START, BTC_END)
    assert bars.iloc[0][["open", "high", "low"]].tolist() == [0.0, 90.0, 95.0]


# --- malformed payloads ---------------------------------------------------------------------------


def test_html_page_with_200_is_a_data_format_error() -> None:
    recorder = Recorder(
        httpx.Response(200, content=_fixture("maintenance.html"), headers={"content-type": "text/html"})
    )
    provider, sleep = _provider(recorder)
    with pytest.raises(DataFormatError, match=r"BTCUSDT.*not JSON.*text/html"):
        provider.fetch_bars("BTC", "1d", BTC_START, BTC_END)
    assert len(recorder.requests) == 1 and sleep.delays == []


def test_html_maintenance_page_with_503_is_retried_then_unavailable() -> None:
    page = httpx.Response(503, content=_fixture("maintenance.html"), headers={"content-type": "text/html"})
    recorder = Recorder(page)
    provider, sleep = _provider(recorder, max_attempts=3)
    with pytest.raises(ProviderUnavailableError, match="503"):
        provider.fetch_bars("BTC", "1d", BTC_START, BTC_END)
    assert len(recorder.requests) == 3 and len(sleep.delays) == 2


def _bad_row(mutate: Callable[[list[Any]], Any]) -> list[list[Any]]:
    rows = [_kline(_ms(BTC_START) + i * DAY_MS, DAY_MS) for i in range(3)]
    mutate(rows[1])
    return rows


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        pytest.param({"code": -1000, "msg": "An unknown error occurred."}, "expected a JSON list", id="object"),
        pytest.param("klines", "expected a JSON list", id="string"),
        pytest.param([{"openTime": 1}], "row 0 is dict", id="row-not-list"),
        pytest.param(_bad_row(lambda r: r.pop()), "row 1 has 11 fields, expected 12", id="short-row"),
        pytest.param(_bad_row(lambda r: r.append("x")), "row 1 has 13 fields", id="long-row"),
        pytest.param(_bad_row(lambda r: r.__setitem__(4, "n/a")), r"row 1 .*close 'n/a' is not a number", id="close"),
        pytest.param(_bad_row(lambda r: r.__setitem__(1, None)), "open None is not a number", id="null-open"),
        pytest.param(_bad_row(lambda r: r.__setitem__(7, "NaN")), "volume 'NaN' is not a number", id="nan-volume"),
        pytest.param(_bad_row(lambda r: r.__setitem__(0, "1739491200000")), "not an integer", id="string-time"),
        pytest.param(_bad_row(lambda r: r.__setitem__(0, r[0] + HOUR_MS)), "interval grid", id="misaligned"),
        pytest.param(_bad_row(lambda r: r.__setitem__(0, r[0] - 2 * DAY_MS)), "does not increase", id="decreasing"),
        pytest.param(_bad_row(lambda r: r.__setitem__(0, r[0] - DAY_MS)), "does not increase", id="duplicate"),
    ],
)
def test_malformed_payloads_are_refused(payload: Any, message: str) -> None:
    recorder = Recorder(httpx.Response(200, json=payload))
    provider, _ = _provider(recorder)
    with pytest.raises(DataFormatError, match=message) as info:
        provider.fetch_bars("BTC", "1d", BTC_START, BTC_END)
    assert "BTCUSDT" in str(info.value)
    assert len(recorder.requests) == 1


def test_bar_after_the_requested_end_is_refused() -> None:
    rows = [_kline(_ms(BTC_END), DAY_MS)]
    provider, _ = _provider(Recorder(httpx.Response(200, json=rows)))
    with pytest.raises(DataFormatError, match="after the requested endTime"):
        provider.fetch_bars("BTC", "1d", BTC_START, BTC_END)


def test_unknown_interval_is_refused_before_any_request() -> None:
    recorder = Recorder(httpx.Response(200, json=[]))
    provider, _ = _provider(recorder)
    with pytest.raises(DataFormatError, match="unknown interval '4h'"):
        provider.fetch_bars("BTC", "4h", BTC_START, BTC_END)
    assert recorder.requests == []


# --- retries --------------------------------------------------------------------------------------


def test_rate_limit_honours_retry_after_then_succeeds(caplog: pytest.LogCaptureFixture) -> None:
    recorder = Recorder(
        _json_response("error_rate_limit.json", 429, {"Retry-After": "7"}),
        _json_response("klines_BTCUSDT_1d.json"),
    )
    provider, sleep = _provider(recorder, api_key="do-not-log-me")
    with caplog.at_level(logging.WARNING, logger="common.data.market_feed"):
        bars = provider.fetch_bars("BTC", "1d", BTC_START, BTC_END)
    assert len(bars) == 7
    assert sleep.delays == [7.0]
    assert len(recorder.requests) == 2
    assert all(r.headers["X-MBX-APIKEY"] == "do-not-log-me" for r in recorder.requests)
    assert "BTCUSDT" in caplog.text and "429" in caplog.text
    assert "do-not-log-me" not in caplog.text


def test_ip_ban_418_is_retried_and_retry_after_is_capped() -> None:
    recorder = Recorder(
        httpx.Response(
            418, json={"code": -1003, "msg": "Way too many requests; IP banned."}, headers={"Retry-After": "3600"}
        ),
        _json_response("klines_BTCUSDT_1d.json"),
    )
    provider, sleep = _provider(recorder, backoff_max_s=12.0)
    assert len(provider.fetch_bars("BTC", "1d", BTC_START, BTC_END)) == 7
    assert sleep.delays == [12.0]


def test_server_errors_back_off_exponentially_then_succeed() -> None:
    recorder = Recorder(
        httpx.Response(500, text="Internal Server Error"),
        httpx.Response(503, text="Service Unavailable"),
        _json_response("klines_BTCUSDT_1d.json"),
    )
    provider, sleep = _provider(recorder, backoff_initial_s=0.5)
    assert len(provider.fetch_bars("BTC", "1d", BTC_START, BTC_END)) == 7
    assert len(recorder.requests) == 3
    # initial * 2**(n-1) plus up to `initial` of jitter.
    first, second = sleep.delays
    assert 0.5 <= first <= 1.0
    assert 1.0 <= second <= 1.5


def test_persistent_503_gives_up_after_exactly_max_attempts() -> None:
    recorder = Recorder(httpx.Response(503, text="Service Unavailable"))
    provider, sleep = _provider(recorder, max_attempts=4, backoff_initial_s=1.0, backoff_max_s=3.0)
    with pytest.raises(ProviderUnavailableError) as info:
        provider.fetch_bars("BTC", "1d", BTC_START, BTC_END)
    assert len(recorder.requests) == 4
    assert len(sleep.delays) == 3 and all(0 < d <= 3.0 for d in sleep.delays)
    message = str(info.value)
    assert "BTCUSDT" in message and "503" in message and "4 attempts" in message


def test_timeout_is_retried_then_succeeds() -> None:
    recorder = Recorder(httpx.ReadTimeout("timed out"), _json_response("klines_BTCUSDT_1d.json"))
    provider, sleep = _provider(recorder)
    assert len(provider.fetch_bars("BTC", "1d", BTC_START, BTC_END)) == 7
    assert len(recorder.requests) == 2 and len(sleep.delays) == 1


def test_persistent_connection_errors_name_the_last_exception() -> None:
    recorder = Recorder(httpx.ConnectError("connection refused"))
    provider, sleep = _provider(recorder, max_attempts=2)
    with pytest.raises(ProviderUnavailableError, match=r"BTCUSDT.*2 attempts.*ConnectError: connection refused"):
        provider.fetch_bars("BTC", "1d", BTC_START, BTC_END)
    assert len(recorder.requests) == 2 and len(sleep.delays) == 1


def test_single_attempt_means_no_retry() -> None:
    recorder = Recorder(httpx.Response(502))
    provider, sleep = _provider(recorder, max_attempts=1)
    with pytest.raises(ProviderUnavailableError, match="1 attempts"):
        provider.fetch_bars("BTC", "1d", BTC_START, BTC_END)
    assert len(recorder.requests) == 1 and sleep.delays == []


def test_invalid_symbol_fails_at_once() -> None:
    recorder = Recorder(_json_response("error_invalid_symbol.json", 400))
    provider, sleep = _provider(recorder)
    with pytest.raises(UnknownSymbolError, match=r"BTCXUSDT.*'BTCX'.*Invalid symbol"):
        provider.fetch_bars("BTCX", "1d", BTC_START, BTC_END)
    assert len(recorder.requests) == 1 and sleep.delays == []


def test_other_client_errors_fail_at_once_with_binance_message() -> None:
    recorder = Recorder(_json_response("error_invalid_interval.json", 400))
    provider, sleep = _provider(recorder)
    with pytest.raises(MarketDataError, match=r"BTCUSDT.*HTTP 400.*-1120.*Invalid interval") as info:
        provider.fetch_bars("BTC", "1d", BTC_START, BTC_END)
    assert type(info.value) is MarketDataError
    assert len(recorder.requests) == 1 and sleep.delays == []


def test_client_error_without_json_body() -> None:
    recorder = Recorder(httpx.Response(403, text="Forbidden by the proxy"))
    provider, _ = _provider(recorder)
    with pytest.raises(MarketDataError, match=r"HTTP 403.*Forbidden by the proxy"):
        provider.fetch_bars("BTC", "1d", BTC_START, BTC_END)


def test_a_region_block_fails_at_once_naming_the_cause_and_the_way_out() -> None:
    recorder = Recorder(_json_response("error_restricted_location.json", 451))
    provider, sleep = _provider(recorder)
    with pytest.raises(RegionBlockedError) as info:
        provider.fetch_bars("BTC", "1d", BTC_START, BTC_END)
    message = str(info.value)
    assert "HTTP 451, region block" in message and "restricted location" in message
    assert "RETRAIN_MARKET_DATA_URL" in message and BASE_URL in message
    assert len(recorder.requests) == 1 and sleep.delays == []
    assert len(recorder.requests) == 1


# --- pagination -----------------------------------------------------------------------------------

HOURLY_START = _utc("2025-01-01")


def _hourly_server(total: int) -> Handler:
    """Serves ``total`` hourly bars from HOURLY_START the way Binance does: open times in
    [startTime, endTime], at most ``limit`` of them."""
    first = _ms(HOURLY_START)
    universe = [first + i * HOUR_MS for i in range(total)]

    def handler(request: httpx.Request) -> httpx.Response:
        params = request.url.params
        start, end, limit = int(params["startTime"]), int(params["endTime"]), int(params["limit"])
        assert limit <= 1000
        page = [t for t in universe if start <= t <= end][:limit]
        return httpx.Response(200, json=[_kline(t, HOUR_MS, price=1 + (t - first) / HOUR_MS) for t in page])

    return handler


def test_pagination_returns_every_bar_once_in_order() -> None:
    recorder = Recorder(_hourly_server(2500))
    provider, _ = _provider(recorder)
    end = HOURLY_START + timedelta(hours=2500)

    bars = provider.fetch_bars("BTC", "1h", HOURLY_START, end)

    assert len(bars) == 2500
    assert bars.index.is_unique and bars.index.is_monotonic_increasing
    assert list(bars.index) == list(pd.date_range(HOURLY_START, periods=2500, freq="h"))
    assert bars["close"].tolist() == [float(1 + i) for i in range(2500)]
    starts = [int(r.url.params["startTime"]) for r in recorder.requests]
    first = _ms(HOURLY_START)
    assert starts == [first, first + 1000 * HOUR_MS, first + 2000 * HOUR_MS]
    assert {r.url.params["endTime"] for r in recorder.requests} == {str(_ms(end) - 1)}
    assert {r.url.params["limit"] for r in recorder.requests} == {"1000"}


def test_pagination_stops_when_the_end_is_reached() -> None:
    """A full last page that reaches the end needs no extra request."""
    recorder = Recorder(_hourly_server(5000))
    provider, _ = _provider(recorder)
    bars = provider.fetch_bars("BTC", "1h", HOURLY_START, HOURLY_START + timedelta(hours=2000))
    assert len(bars) == 2000 and bars.index.is_unique
    assert len(recorder.requests) == 2


def test_a_page_that_does_not_advance_is_refused_not_looped() -> None:
    """A server that ignores startTime returns the same full page forever."""
    first = _ms(HOURLY_START)
    same_page = [_kline(first + i * HOUR_MS, HOUR_MS) for i in range(1000)]
    recorder = Recorder(lambda request: httpx.Response(200, json=same_page))
    provider, _ = _provider(recorder)
    with pytest.raises(DataFormatError, match="does not advance"):
        provider.fetch_bars("BTC", "1h", HOURLY_START, HOURLY_START + timedelta(hours=5000))
    assert len(recorder.requests) == 2


def test_retries_are_per_page() -> None:
    server = _hourly_server(1500)
    recorder = Recorder(server, httpx.Response(503), server)
    provider, sleep = _provider(recorder)
    bars = provider.fetch_bars("BTC", "1h", HOURLY_START, HOURLY_START + timedelta(hours=1500))
    assert len(bars) == 1500 and bars.index.is_unique
    assert len(recorder.requests) == 3 and len(sleep.delays) == 1
    assert recorder.requests[1].url.params == recorder.requests[2].url.params


# --- construction and lifecycle -------------------------------------------------------------------


def test_from_settings() -> None:
    settings = load_settings(
        market_data_url="http://klines.local", market_data_quote="USDC", http_timeout_s=3, http_max_attempts=2
    )
    recorder = Recorder(httpx.Response(503))
    client = httpx.Client(transport=httpx.MockTransport(recorder))
    provider = BinanceKlinesProvider.from_settings(settings, api_key="k", client=client)
    provider._sleep = FakeSleep()  # from_settings takes no sleep: keep the test instant
    with pytest.raises(ProviderUnavailableError, match=r"BTCUSDC.*2 attempts"):
        provider.fetch_bars("BTC", "1d", BTC_START, BTC_END)
    assert str(recorder.requests[0].url).startswith("http://klines.local/api/v3/klines?symbol=BTCUSDC")
    assert recorder.requests[0].extensions["timeout"] == httpx.Timeout(3).as_dict()
    assert recorder.requests[0].headers["X-MBX-APIKEY"] == "k"
    assert provider.name == settings.market_data_provider == "binance"


def test_owned_client_is_closed_injected_one_is_not() -> None:
    with BinanceKlinesProvider(base_url=BASE_URL) as owned:
        client = owned._client
    assert client.is_closed

    injected = httpx.Client(transport=httpx.MockTransport(Recorder(httpx.Response(200, json=[]))))
    with BinanceKlinesProvider(base_url=BASE_URL, client=injected):
        pass
    assert not injected.is_closed
    injected.close()


def test_providers_satisfy_the_protocol(tmp_path: Path) -> None:
    assert isinstance(BinanceKlinesProvider(base_url=BASE_URL), MarketDataProvider)
    assert isinstance(ReplayProvider(tmp_path), MarketDataProvider)


# --- replay ---------------------------------------------------------------------------------------


def test_replay_serves_the_half_open_window_from_sample_data() -> None:
    provider = ReplayProvider(SAMPLE_OHLCV)
    bars = provider.fetch_bars("BTC", "1d", _utc("2025-02-14"), _utc("2025-02-20"))
    expected = _sample("1d", "BTC").loc["2025-02-14":"2025-02-19"]
    pd.testing.assert_frame_equal(bars, expected)
    assert bars.index[0] == pd.Timestamp("2025-02-14T00:00Z") and bars.index[-1] == pd.Timestamp("2025-02-19T00:00Z")

    hourly = provider.fetch_bars("ETH", "1h", _utc("2025-02-19T18:00"), _utc("2025-02-19T18:00") + timedelta(hours=3))
    assert list(hourly.index) == list(pd.date_range("2025-02-19T18:00", periods=3, freq="h", tz="UTC"))

    assert provider.fetch_bars("BTC", "1d", _utc("2030-01-01"), _utc("2030-02-01")).empty


def test_replay_missing_symbol_names_the_path(tmp_path: Path) -> None:
    provider = ReplayProvider(SAMPLE_OHLCV)
    with pytest.raises(UnknownSymbolError, match=r"NOPE.*1d[/\\]NOPE\.csv"):
        provider.fetch_bars("NOPE", "1d", BTC_START, BTC_END)
    with pytest.raises(UnknownSymbolError):  # AAVE has no hourly file
        provider.fetch_bars("AAVE", "1h", BTC_START, BTC_END)
    with pytest.raises(UnknownSymbolError):  # not a ticker: never becomes a path outside the folder
        provider.fetch_bars("../1d/BTC", "1h", BTC_START, BTC_END)


def test_replay_caches_parsed_files_and_returns_copies(tmp_path: Path) -> None:
    (tmp_path / "1d").mkdir()
    csv = tmp_path / "1d" / "BTC.csv"
    csv.write_bytes((SAMPLE_OHLCV / "1d" / "BTC.csv").read_bytes())
    provider = ReplayProvider(tmp_path)
    first = provider.fetch_bars("BTC", "1d", BTC_START, BTC_END)
    first.iloc[0, 0] = -1.0  # callers may not alter the cached history
    csv.unlink()  # a second read would fail: the parsed file is cached
    second = provider.fetch_bars("BTC", "1d", BTC_START, BTC_END)
    assert len(second) == 7 and second.iloc[0, 0] == pytest.approx(96623.3671875)


def test_replay_from_settings() -> None:
    provider = ReplayProvider.from_settings(load_settings(market_data_replay_dir=str(SAMPLE_OHLCV)))
    assert provider.directory == SAMPLE_OHLCV and provider.name == "replay"
    with pytest.raises(ConfigurationError, match="RETRAIN_MARKET_DATA_REPLAY_DIR"):
        ReplayProvider.from_settings(load_settings())


def test_replay_and_binance_agree_on_the_frame_shape() -> None:
    """The replay path exercises the same downstream code as live ingestion: same columns, dtypes, index."""
    replay = ReplayProvider(SAMPLE_OHLCV).fetch_bars("BTC", "1d", BTC_START, BTC_END)
    live, _ = _provider(Recorder(_json_response("klines_BTCUSDT_1d.json")))
    binance = live.fetch_bars("BTC", "1d", BTC_START, BTC_END)
    pd.testing.assert_frame_equal(replay, binance, check_exact=False, rtol=1e-12, check_freq=False)
    assert json.loads(_fixture("klines_BTCUSDT_1d.json"))[-1][6] > _ms(BTC_AS_OF)  # the open bar
