"""The ingest function against Binance's klines API over a real socket: a local HTTP server serves the recorded
fixtures (tests/fixtures/binance) as Binance does (filtered by startTime/endTime, errors with their status and
headers), and the function runs on the embedded stack, invoked through moto's Lambda API, with the provider's
settings pointing at the server (RETRAIN_MARKET_DATA_URL). Each test ingests into a fresh bucket.

The unit tests (tests/unit/test_market_feed.py) cover the provider's logic with a mock transport; these cover
what only a socket shows: real timeouts, Retry-After honoured in wall-clock time, and what reaches the
function's result and metrics.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import boto3
import pytest

from common.core.keys import ohlcv_key
from common.core.settings import get_settings
from common.data.ohlcv import parse_ohlcv_csv
from tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.integration

FIXTURES = PROJECT_ROOT / "tests" / "fixtures" / "binance"
INTERVAL_OF = {"1d": "1d", "1h": "1h"}


@dataclass
class Answer:
    """One scripted answer: an error status with a fixture body (and headers), or a delay before the klines."""

    status: int = 200
    body_file: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


class FakeBinance:
    """``GET /api/v3/klines`` on a loopback port. Each pair answers its script in order, then its klines."""

    def __init__(self) -> None:
        self.scripts: dict[str, list[Answer]] = {}
        self.requests: list[tuple[float, str, dict[str, str]]] = []  # (monotonic time, pair, query)
        self._lock = threading.Lock()
        binance = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlparse(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                pair = query.get("symbol", "")
                with binance._lock:
                    binance.requests.append((time.monotonic(), pair, query))
                    script = binance.scripts.get(pair, [])
                    answer = script.pop(0) if script else Answer()
                if url.path != "/api/v3/klines":
                    return self._send(404, b'{"code": -1, "msg": "not found"}', {})
                time.sleep(answer.delay_s)
                if answer.status != 200:
                    body = (FIXTURES / answer.body_file).read_bytes() if answer.body_file else b"{}"
                    return self._send(answer.status, body, answer.headers)
                return self._send(200, json.dumps(binance.klines(pair, query)).encode(), answer.headers)

            def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):  # the client timed out and went away
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def klines(self, pair: str, query: dict[str, str]) -> list[list[Any]]:
        """The pair's recorded rows inside [startTime, endTime] (both inclusive, as Binance), at most ``limit``."""
        path = FIXTURES / f"klines_{pair}_{INTERVAL_OF[query['interval']]}.json"
        rows = json.loads(path.read_text()) if path.exists() else []
        start, end = int(query.get("startTime", 0)), int(query.get("endTime", 2**62))
        return [row for row in rows if start <= row[0] <= end][: int(query.get("limit", 500))]

    def requests_for(self, pair: str) -> list[tuple[float, str, dict[str, str]]]:
        return [r for r in self.requests if r[1] == pair]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def binance() -> Iterator[FakeBinance]:
    server = FakeBinance()
    yield server
    server.close()


@pytest.fixture
def ingest(stack, binance: FakeBinance, monkeypatch: pytest.MonkeyPatch):
    """Invoke the ingest function as the schedule would, with the Binance provider on the local server and a
    fresh bucket; returns (result, bucket)."""
    bucket = f"retrain-binance-{uuid.uuid4().hex[:12]}"
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    for name, value in {
        "RETRAIN_MARKET_DATA_PROVIDER": "binance",
        "RETRAIN_MARKET_DATA_URL": binance.url,
        "RETRAIN_DATA_BUCKET": bucket,
        "RETRAIN_INGEST_BACKFILL_BARS": "7",
        "RETRAIN_HTTP_TIMEOUT_S": "0.5",
        "RETRAIN_HTTP_MAX_ATTEMPTS": "5",
    }.items():
        monkeypatch.setenv(name, value)  # the handlers run in this process and read it
    get_settings.cache_clear()
    binance.requests.clear()

    def call(symbols: list[str], interval: str, time_: str) -> tuple[dict[str, Any], str]:
        event = json.loads((PROJECT_ROOT / "tests" / "events" / "schedule.json").read_text())
        event["time"] = time_
        event["detail"] = {"symbols": symbols, "interval": interval}
        response = boto3.client("lambda").invoke(
            FunctionName=stack.info.functions["IngestFunction"], Payload=json.dumps(event)
        )
        result = json.loads(response["Payload"].read())
        assert "FunctionError" not in response, result
        return result, bucket

    yield call
    get_settings.cache_clear()


def _stored_closes(bucket: str, symbol: str, interval: str) -> dict[str, float]:
    body = boto3.client("s3").get_object(Bucket=bucket, Key=ohlcv_key(symbol, interval))["Body"].read()
    bars = parse_ohlcv_csv(body)
    return {str(index): float(close) for index, close in bars["close"].items()}


def _fixture_closes(file: str, before_ms: int) -> dict[str, float]:
    import pandas as pd

    rows = json.loads((FIXTURES / file).read_text())
    return {
        str(pd.Timestamp(row[0], unit="ms", tz="UTC")): float(row[4]) for row in rows if row[6] < before_ms
    }  # closed bars only


def _ms(text: str) -> int:
    import pandas as pd

    return int(pd.Timestamp(text).value // 1_000_000)


def test_ingest_over_http_waits_out_a_429_with_retry_after(ingest, binance: FakeBinance) -> None:
    binance.scripts["BTCUSDT"] = [Answer(429, "error_rate_limit.json", {"Retry-After": "1"})]
    result, bucket = ingest(["BTC"], "1d", "2025-02-20T12:00:00Z")

    assert result["provider"] == "binance" and result["failed"] == []
    [item] = result["symbols"]
    assert item["status"] == "created" and item["appended"] == 6  # the seventh bar (2025-02-20) is still open
    assert _stored_closes(bucket, "BTC", "1d") == _fixture_closes("klines_BTCUSDT_1d.json", _ms("2025-02-20T12:00Z"))
    first, second = binance.requests_for("BTCUSDT")[:2]
    assert second[0] - first[0] >= 0.95, "the retry came before Binance's Retry-After"


def test_ingest_over_http_rides_out_a_5xx_burst_and_a_timeout(ingest, binance: FakeBinance) -> None:
    binance.scripts["ETHUSDT"] = [Answer(503), Answer(502), Answer(delay_s=1.5), Answer(500)]
    result, bucket = ingest(["ETH"], "1h", "2025-02-19T23:30:00Z")

    assert result["failed"] == [], result
    [item] = result["symbols"]
    assert item["status"] == "created" and item["appended"] == 5  # 23:00 is still open at 23:30
    assert _stored_closes(bucket, "ETH", "1h") == _fixture_closes("klines_ETHUSDT_1h.json", _ms("2025-02-19T23:30Z"))
    assert len(binance.requests_for("ETHUSDT")) == 5  # four failures (one a client-side timeout), then the bars


def test_ingest_over_http_names_a_region_block_and_gives_up_at_once(ingest, binance: FakeBinance) -> None:
    binance.scripts["BTCUSDT"] = [Answer(451, "error_restricted_location.json")] * 3
    result, bucket = ingest(["BTC"], "1d", "2025-02-20T12:00:00Z")

    assert result["failed"] == ["BTC"]
    [item] = result["symbols"]
    assert item["error_type"] == "RegionBlockedError"
    assert "HTTP 451, region block" in item["error"] and "restricted location" in item["error"]
    assert "RETRAIN_MARKET_DATA_URL" in item["error"]
    assert len(binance.requests_for("BTCUSDT")) == 1  # no retry can lift a region block
    listing = boto3.client("s3").list_objects_v2(Bucket=bucket)
    assert listing.get("KeyCount", 0) == 0  # nothing stored


def test_ingest_over_http_gives_up_after_the_configured_attempts(ingest, binance: FakeBinance) -> None:
    binance.scripts["BTCUSDT"] = [Answer(503)] * 5
    result, _ = ingest(["BTC"], "1d", "2025-02-20T12:00:00Z")

    [item] = result["symbols"]
    assert item["status"] == "failed" and item["error_type"] == "ProviderUnavailableError"
    assert "after 5 attempts" in item["error"] and "HTTP 503" in item["error"]
    assert len(binance.requests_for("BTCUSDT")) == 5


def test_the_fixture_server_filters_like_binance(binance: FakeBinance) -> None:
    """The server under the tests above: a window inside the recorded rows returns just those rows."""
    start, end = _ms("2025-02-15"), _ms("2025-02-17")
    rows = binance.klines("BTCUSDT", {"interval": "1d", "startTime": str(start), "endTime": str(end)})
    assert [row[0] for row in rows] == [start, start + 86_400_000, end]
