"""Benchmark: appending one day of bars for every daily symbol, through S3 on a moto server (loopback HTTP).

Run ``.venv/bin/python bench/bench_append.py``. Rows:

- ``ingest_symbols`` (ours): fetch from the replay provider, validate, merge, conditional PUT, per symbol;
- the same again on the same day: the idempotent no-op (what a retried schedule costs);
- a naive peer in the same run: GET, ``pd.read_csv``, concat, ``to_csv``, PUT, no validation and no
  write condition; the price of the guarantees is the difference.
"""

from __future__ import annotations

import os
import socket
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pandas as pd

from common.aws.storage import S3ObjectStore
from common.core.keys import ohlcv_key
from common.core.settings import DEFAULT_SYMBOLS
from common.data.bar_store import OhlcvStore
from common.data.ingestion import ingest_symbols
from common.data.market_feed import ReplayProvider
from common.data.ohlcv import parse_ohlcv_csv

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data" / "ohlcv"
BUCKET = "retrain-bench-append"
SEED_UNTIL = datetime(2025, 2, 18, tzinfo=UTC)
AS_OF = datetime(2025, 2, 20, 0, 5, tzinfo=UTC)  # one new closed bar per symbol: 2025-02-19
REPEATS = 5


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _seed(store: OhlcvStore) -> None:
    for symbol in DEFAULT_SYMBOLS:
        bars = parse_ohlcv_csv((SAMPLE / "1d" / f"{symbol}.csv").read_bytes())
        bars = bars.loc[bars.index <= pd.Timestamp(SEED_UNTIL)]
        store.objects.client.delete_object(Bucket=BUCKET, Key=ohlcv_key(symbol, "1d"))  # start from the seed
        store.append(symbol, "1d", bars, as_of=SEED_UNTIL + timedelta(days=1))


def _naive_append(s3: object, replay: ReplayProvider) -> None:
    import io

    for symbol in DEFAULT_SYMBOLS:
        key = ohlcv_key(symbol, "1d")
        body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()  # type: ignore[attr-defined]
        frame = pd.read_csv(io.BytesIO(body))
        new = replay.fetch_bars(symbol, "1d", SEED_UNTIL + timedelta(days=1), AS_OF).reset_index()
        new["datetime"] = new["datetime"].dt.strftime("%Y-%m-%d")
        merged = pd.concat([frame, new.iloc[:1]])
        s3.put_object(Bucket=BUCKET, Key=key, Body=merged.to_csv(index=False).encode())  # type: ignore[attr-defined]


def run(repeats: int = REPEATS) -> list[dict]:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's per-request access log
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL")}
    os.environ.update(
        {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
    )
    try:
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        store = OhlcvStore(S3ObjectStore(BUCKET, s3))
        replay = ReplayProvider(SAMPLE)
        ours, noop, naive = [], [], []
        for _ in range(repeats):
            _seed(store)
            started = time.perf_counter()
            summary = ingest_symbols(store, replay, DEFAULT_SYMBOLS, interval="1d", as_of=AS_OF)
            ours.append(time.perf_counter() - started)
            assert summary.appended == len(DEFAULT_SYMBOLS) and not summary.failed, summary.render()
            started = time.perf_counter()
            again = ingest_symbols(store, replay, DEFAULT_SYMBOLS, interval="1d", as_of=AS_OF)
            noop.append(time.perf_counter() - started)
            assert again.appended == 0
            _seed(store)
            started = time.perf_counter()
            _naive_append(s3, replay)
            naive.append(time.perf_counter() - started)
    finally:
        server.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    n = len(DEFAULT_SYMBOLS)
    return [
        _row("ingest_symbols: validate + merge + conditional PUT", ours, n),
        _row("ingest_symbols again, same day (idempotent no-op)", noop, n),
        _row("naive peer: read_csv + concat + to_csv + PUT", naive, n),
    ]


def _row(name: str, seconds: list[float], symbols: int) -> dict:
    median = statistics.median(seconds)
    return {
        "implementation": name,
        "symbols": symbols,
        "wall s (median)": round(median, 3),
        "ms per symbol": round(1000 * median / symbols, 1),
        "repeats": len(seconds),
    }


def main() -> None:
    rows = run()
    columns = list(rows[0])
    print("## Append of one day for every daily symbol (moto server on loopback)\n")
    print("| " + " | ".join(columns) + " |")
    print("|" + "|".join("---" for _ in columns) + "|")
    for row in rows:
        print("| " + " | ".join(str(row[c]) for c in columns) + " |")


if __name__ == "__main__":
    main()
