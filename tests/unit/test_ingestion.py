"""Ingestion end to end on moto's S3 (in-process): the orchestration, the Binance client on recorded
payloads, and the Lambda handler invoked with an EventBridge scheduled event."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from common.aws.storage import S3ObjectStore
from common.core.errors import ProviderUnavailableError
from common.core.keys import ohlcv_key
from common.core.settings import load_settings
from common.data.bar_store import OhlcvStore
from common.data.ingestion import fetch_window, ingest_symbols, run_ingestion
from common.data.market_feed import BinanceKlinesProvider, ReplayProvider
from common.data.ohlcv import parse_ohlcv_csv
from tests.conftest import versioned_bucket

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SAMPLE = PROJECT_ROOT / "sample_data" / "ohlcv"
FIXTURES = PROJECT_ROOT / "tests" / "fixtures"
BUCKET = "retrain-ingest-test"
DAY = timedelta(days=1)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def sample(symbol: str, interval: str = "1d") -> pd.DataFrame:
    return parse_ohlcv_csv((SAMPLE / interval / f"{symbol}.csv").read_bytes())


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    with versioned_bucket(BUCKET) as client:
        yield client


@pytest.fixture
def store(s3: Any) -> OhlcvStore:
    return OhlcvStore(S3ObjectStore(BUCKET, s3))


def seed_until(store: OhlcvStore, symbol: str, last_open: datetime, interval: str = "1d") -> None:
    bars = sample(symbol, interval)
    bars = bars.loc[bars.index <= pd.Timestamp(last_open)]
    store.append(symbol, interval, bars, as_of=last_open + timedelta(days=1))


def versions(s3: Any) -> int:
    return len(s3.list_object_versions(Bucket=BUCKET).get("Versions", []))


class CountingProvider:
    """Replay provider that counts calls and can fail or corrupt chosen symbols."""

    name = "counting"

    def __init__(self, fail: set[str] | None = None, corrupt: set[str] | None = None) -> None:
        self.replay = ReplayProvider(SAMPLE)
        self.calls: list[tuple[str, datetime, datetime]] = []
        self.fail = fail or set()
        self.corrupt = corrupt or set()

    def fetch_bars(self, symbol: str, interval: str, start: datetime, end: datetime) -> pd.DataFrame:
        self.calls.append((symbol, start, end))
        if symbol in self.fail:
            raise ProviderUnavailableError(f"{symbol}: HTTP 503 after 5 attempts")
        bars = self.replay.fetch_bars(symbol, interval, start, end)
        if symbol in self.corrupt and len(bars):
            bars = bars.copy()
            bars.iloc[0, bars.columns.get_loc("high")] = bars.iloc[0]["low"] / 2  # high < low
        return bars


# --- the fetch window --------------------------------------------------------------------------------
def test_window_starts_after_the_newest_stored_bar_so_missed_days_are_backfilled() -> None:
    assert fetch_window(utc(2025, 2, 10), "1d", utc(2025, 2, 15, 0, 5), 1000) == (
        utc(2025, 2, 11),
        utc(2025, 2, 15, 0, 5),
    )


def test_window_of_a_new_series_reaches_back_the_backfill_length() -> None:
    start, end = fetch_window(None, "1h", utc(2025, 2, 15, 10, 30), 48)
    assert (start, end) == (utc(2025, 2, 13, 10), utc(2025, 2, 15, 10, 30))


# --- orchestration -----------------------------------------------------------------------------------
def test_appends_the_closed_days_since_the_last_run_and_never_the_open_bar(store: OhlcvStore) -> None:
    seed_until(store, "BTC", utc(2025, 2, 10))
    summary = ingest_symbols(store, ReplayProvider(SAMPLE), ["BTC"], interval="1d", as_of=utc(2025, 2, 15, 0, 5))

    [btc] = summary.symbols
    assert (btc.status, btc.appended, btc.last_bar, btc.stale) == ("appended", 4, utc(2025, 2, 14), False)
    stored = store.read("BTC", "1d").bars
    assert stored.index.max() == pd.Timestamp(utc(2025, 2, 14))  # the bar opened 02-15 is still open
    pd.testing.assert_frame_equal(stored, sample("BTC").loc[:"2025-02-14"], check_freq=False)


def test_rerunning_the_same_day_changes_nothing(store: OhlcvStore, s3: Any) -> None:
    seed_until(store, "ETH", utc(2025, 2, 10))
    as_of = utc(2025, 2, 15, 0, 5)
    first = ingest_symbols(store, ReplayProvider(SAMPLE), ["ETH"], interval="1d", as_of=as_of)
    before = versions(s3)
    provider = CountingProvider()
    second = ingest_symbols(store, provider, ["ETH"], interval="1d", as_of=as_of)

    assert first.appended == 4
    assert second.appended == 0 and second.symbols[0].status == "up_to_date"
    assert provider.calls == []  # the next bar has not closed: the vendor is not even asked
    assert versions(s3) == before


def test_one_failing_symbol_never_blocks_the_others(store: OhlcvStore) -> None:
    for symbol in ("BTC", "ETH", "SOL"):
        seed_until(store, symbol, utc(2025, 2, 10))
    provider = CountingProvider(fail={"ETH"})
    summary = ingest_symbols(store, provider, ["BTC", "ETH", "SOL"], interval="1d", as_of=utc(2025, 2, 15, 0, 5))

    by_symbol = {item.symbol: item for item in summary.symbols}
    assert [item.symbol for item in summary.failed] == ["ETH"]
    assert by_symbol["ETH"].error_type == "ProviderUnavailableError" and "503" in (by_symbol["ETH"].error or "")
    assert by_symbol["BTC"].appended == by_symbol["SOL"].appended == 4
    assert summary.appended == 8
    assert store.last_bar("ETH", "1d") == utc(2025, 2, 10)  # untouched


def test_invalid_fetched_rows_are_refused_and_counted(store: OhlcvStore) -> None:
    seed_until(store, "SOL", utc(2025, 2, 10))
    summary = ingest_symbols(
        store, CountingProvider(corrupt={"SOL"}), ["SOL"], interval="1d", as_of=utc(2025, 2, 15, 0, 5)
    )
    [sol] = summary.symbols
    assert sol.rejected_rows == 1 and sol.appended == 3
    assert sol.append is not None and sol.append.boundary_gap == 1  # the refused 02-11 bar is now missing
    assert pd.Timestamp(utc(2025, 2, 11)) not in store.read("SOL", "1d").bars.index


def test_a_vendor_that_stops_delivering_makes_the_series_stale(store: OhlcvStore) -> None:
    seed_until(store, "BTC", utc(2025, 2, 20))
    summary = ingest_symbols(store, ReplayProvider(SAMPLE), ["BTC"], interval="1d", as_of=utc(2025, 2, 25, 0, 5))
    [btc] = summary.symbols
    assert (btc.status, btc.appended, btc.stale) == ("unchanged", 0, True)
    assert summary.to_dict()["stale"] == ["BTC"]
    assert "1 stale" in summary.render()


def test_a_new_series_is_backfilled(store: OhlcvStore) -> None:
    summary = ingest_symbols(
        store, ReplayProvider(SAMPLE), ["ETH"], interval="1h", as_of=utc(2025, 2, 19, 12, 30), backfill_bars=24
    )
    [eth] = summary.symbols
    assert eth.status == "created"
    stored = store.read("ETH", "1h").bars
    assert stored.index.min() == pd.Timestamp(utc(2025, 2, 18, 12)) and stored.index.max() == pd.Timestamp(
        utc(2025, 2, 19, 11)
    )


# --- the Binance client on recorded payloads ----------------------------------------------------------
def test_binance_payload_is_validated_and_appended(store: OhlcvStore, s3: Any) -> None:
    seed_until(store, "BTC", utc(2025, 2, 13))
    payload = (FIXTURES / "binance" / "klines_BTCUSDT_1d.json").read_bytes()
    seen: list[httpx.URL] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        return httpx.Response(200, content=payload, headers={"content-type": "application/json"})

    client = httpx.Client(transport=httpx.MockTransport(handler))
    provider = BinanceKlinesProvider(base_url="https://data-api.binance.vision", client=client, sleep=lambda _: None)
    settings = load_settings(data_bucket=BUCKET, symbols=("BTC",))
    summary = run_ingestion(settings, as_of=utc(2025, 2, 20, 12), store=store, provider=provider)

    [btc] = summary.symbols
    assert seen and seen[0].params["symbol"] == "BTCUSDT"
    assert seen[0].params["startTime"] == str(int(utc(2025, 2, 14).timestamp() * 1000))
    assert (btc.fetched, btc.appended, btc.last_bar) == (7, 6, utc(2025, 2, 19))  # 02-20 is still open
    stored = store.read("BTC", "1d").bars
    assert (
        stored.loc["2025-02-14":, "close"].round(4).tolist()
        == sample("BTC").loc["2025-02-14":"2025-02-19", "close"].round(4).tolist()
    )


# --- the Lambda handler -------------------------------------------------------------------------------
def scheduled_event(time: str, detail: dict[str, Any] | None = None) -> dict[str, Any]:
    event = json.loads((PROJECT_ROOT / "tests" / "events" / "schedule.json").read_text())
    event["time"] = time
    event["detail"] = detail or {}
    return event


class Context:
    function_name = "retrain-ingest"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:retrain-ingest"
    aws_request_id = "test-request"

    def __init__(self, remaining_ms: list[int] | None = None) -> None:
        self._remaining = list(remaining_ms or [300_000])  # one value per call; the last one repeats

    def get_remaining_time_in_millis(self) -> int:
        return self._remaining.pop(0) if len(self._remaining) > 1 else self._remaining[0]


@pytest.fixture
def handler_env(monkeypatch: pytest.MonkeyPatch, s3: Any) -> None:
    monkeypatch.setenv("RETRAIN_DATA_BUCKET", BUCKET)
    monkeypatch.setenv("RETRAIN_SYMBOLS", "BTC,ETH")
    monkeypatch.setenv("RETRAIN_MARKET_DATA_PROVIDER", "replay")
    monkeypatch.setenv("RETRAIN_MARKET_DATA_REPLAY_DIR", str(SAMPLE))
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "RetrainTest")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "ingest")


def test_scheduled_event_appends_yesterdays_bar_once(handler_env: None, store: OhlcvStore, s3: Any) -> None:
    from functions.ingest.app import handler

    for symbol in ("BTC", "ETH"):
        seed_until(store, symbol, utc(2025, 2, 13))
    event = scheduled_event("2025-02-15T00:05:00Z")
    first = handler(event, Context())
    before = versions(s3)
    second = handler(event, Context())  # EventBridge retries deliver the same event again

    assert first["appended"] == 2 and first["failed"] == [] and first["as_of"].startswith("2025-02-15T00:05")
    assert [s["last_bar"][:10] for s in first["symbols"]] == ["2025-02-14", "2025-02-14"]
    assert second["appended"] == 0 and versions(s3) == before


def test_manual_event_narrows_symbols_and_replays_a_past_day(handler_env: None, store: OhlcvStore) -> None:
    from functions.ingest.app import handler

    seed_until(store, "BTC", utc(2025, 2, 1))
    result = handler(scheduled_event("2026-11-21T00:05:00Z", {"symbols": ["BTC"], "as_of": "2025-02-05"}), Context())
    assert [s["symbol"] for s in result["symbols"]] == ["BTC"]
    assert result["appended"] == 3  # 02-02, 02-03, 02-04


@pytest.mark.parametrize(
    "detail",
    [{"symbols": ["btc"]}, {"symbols": []}, {"interval": "5m"}, {"as_of": "yesterday"}, {"unknown": 1}],
)
def test_malformed_events_are_rejected_before_any_work(handler_env: None, store: OhlcvStore, detail: dict) -> None:
    from pydantic import ValidationError

    from functions.ingest.app import handler

    with pytest.raises(ValidationError):
        handler(scheduled_event("2025-02-15T00:05:00Z", detail), Context())
    assert not store.objects.exists(ohlcv_key("BTC", "1d"))


def test_a_day_step_from_the_state_machine_is_ingested_with_the_days_as_of(
    handler_env: None, store: OhlcvStore
) -> None:
    from functions.ingest.app import handler

    seed_until(store, "BTC", utc(2025, 2, 13))
    result = handler({"day": "day-2025-02-15", "as_of": "2025-02-15T00:05:00Z", "symbols": ["BTC"]}, Context())
    assert result["appended"] == 1 and result["ready"] == ["BTC"] and result["complete"] is True


def test_ingestion_stops_before_the_lambda_deadline_and_names_what_it_did_not_reach(
    handler_env: None, store: OhlcvStore
) -> None:
    """Plenty of time for BTC, then less than the reserve (one symbol's worst case + the report margin): ETH
    is not started, and the result says so instead of Lambda killing the invocation."""
    from functions.ingest.app import REPORT_MARGIN_S, handler

    for symbol in ("BTC", "ETH"):
        seed_until(store, symbol, utc(2025, 2, 13))
    short = int(REPORT_MARGIN_S * 1000) - 1
    result = handler(scheduled_event("2025-02-15T00:05:00Z"), Context([300_000, short]))

    by_symbol = {s["symbol"]: s for s in result["symbols"]}
    assert by_symbol["BTC"]["status"] == "appended" and by_symbol["ETH"]["status"] == "not_reached"
    assert result["not_reached"] == ["ETH"] and result["ready"] == ["BTC"] and result["complete"] is False
    assert result["not_ready"] == {"ETH": "not reached before the ingestion's deadline"}
    assert store.read_if_exists("ETH", "1d").bars.index.max() == pd.Timestamp(utc(2025, 2, 13))


def test_the_reserve_is_the_vendors_worst_case_for_one_symbol(store: OhlcvStore) -> None:
    """5 attempts x 10 s + 4 waits at the 30 s cap: with 100 s left a Binance fetch is not started."""
    vendor = BinanceKlinesProvider(base_url="https://vendor.invalid", timeout_s=10, max_attempts=5, backoff_max_s=30)
    assert vendor.worst_case_seconds() == 170
    summary = run_ingestion(
        load_settings(symbols=("BTC",), data_bucket=BUCKET),
        store=store,
        provider=vendor,
        as_of=utc(2025, 2, 15),
        time_left_s=lambda: 100.0,
    )
    assert [(s.symbol, s.status) for s in summary.symbols] == [("BTC", "not_reached")]


def test_a_symbol_one_bar_behind_is_not_ready(store: OhlcvStore) -> None:
    """The vendor has not published the bar that closed at midnight: stored, unchanged, but the check and the
    predictions would judge yesterday's bar, so the day must not take it as ready."""
    seed_until(store, "BTC", utc(2025, 2, 13))  # the bar that closed at 02-14 00:00 is stored
    summary = ingest_symbols(store, _Empty(), ["BTC"], interval="1d", as_of=utc(2025, 2, 14, 0, 5))
    assert summary.to_dict()["ready"] == ["BTC"]
    late = ingest_symbols(store, _Empty(), ["BTC"], interval="1d", as_of=utc(2025, 2, 15, 0, 5))
    assert late.to_dict()["ready"] == [] and "1 bar(s) behind" in late.not_ready()["BTC"]


class _Empty:
    """A vendor that has nothing new yet."""

    name = "empty"

    def fetch_bars(self, symbol: str, interval: str, start: datetime, end: datetime) -> pd.DataFrame:
        return sample(symbol).iloc[0:0]


SAMPLE_SERIES = sorted((path.parent.name, path.stem) for path in SAMPLE.glob("*/*.csv"))


@pytest.mark.parametrize(("interval", "symbol"), SAMPLE_SERIES, ids=[f"{s}-{i}" for i, s in SAMPLE_SERIES])
def test_every_sample_series_replays_through_ingestion_to_its_validated_self(
    store: OhlcvStore, interval: str, symbol: str
) -> None:
    """Seed all but the last 30 bars, ingest the rest a few bars at a time (as a schedule with missed runs would): the stored series
    equals the whole sample file validated once, and a second pass appends nothing."""
    from common.data.ohlcv import interval_length
    from common.data.validation import validate_bars

    bars = sample(symbol, interval)
    step = interval_length(interval)
    cut = bars.index[-31]
    seed_until(store, symbol, cut.to_pydatetime(), interval)
    replay = ReplayProvider(SAMPLE)
    end = bars.index[-1] + step
    for as_of in pd.date_range(cut + 2 * step, end, freq=3 * step if interval == "1d" else 6 * step):
        summary = ingest_symbols(store, replay, [symbol], interval=interval, as_of=as_of.to_pydatetime())
        assert not summary.failed, summary.render()
    final = ingest_symbols(store, replay, [symbol], interval=interval, as_of=end.to_pydatetime())
    again = ingest_symbols(store, replay, [symbol], interval=interval, as_of=end.to_pydatetime())

    assert again.appended == 0
    expected = validate_bars(bars, symbol=symbol, interval=interval, as_of=end.to_pydatetime()).bars
    stored = store.read(symbol, interval).bars
    pd.testing.assert_frame_equal(stored, expected, check_freq=False)
    assert final.symbols[0].stale is False
