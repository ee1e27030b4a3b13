"""Zero-downtime hot swap on the real parts: the predictor served by uvicorn on loopback, champions in the
real MLflow server with artifacts in moto's S3, bars in the bucket. 32 clients call /prediction for 21 s
while a new champion is promoted and then a corrupt version is registered and made champion.

Required (issue 6): zero non-2xx responses, one model_version per response, per-client versions never go
backwards, the corrupt version is never served. Latency p50/p99 before, during and after are printed.
DOGE is this file's own symbol (no other test touches it; SOL must stay without data for the others),
registered here with a small LightGBM.
"""

from __future__ import annotations

import statistics
import threading
import time
from datetime import UTC, datetime

import boto3
import httpx
import numpy as np
import pytest

from common.aws.storage import S3ObjectStore
from common.core.settings import load_settings
from common.data.bar_store import OhlcvStore
from common.data.features import FEATURE_NAMES, labelled_features
from common.data.ohlcv import parse_ohlcv_csv
from common.registry.mlflow_registry import Registry
from common.registry.promotion import encode_tags
from common.training.native_models import LIGHTGBM_ARTIFACT
from retrain.loopback import serving
from tests.conftest import PROJECT_ROOT
from tests.original_api import OriginalPrediction, is_original_prediction

pytestmark = pytest.mark.integration

SYMBOL, TREND = "DOGE", "uptrend"
NAME = f"{SYMBOL}_{TREND}_model"
AS_OF = datetime(2025, 2, 21, tzinfo=UTC)
CLIENTS = 32
PROMOTE_AT, CORRUPT_AT, DURATION = 6.0, 13.0, 21.0
# Traffic goes on at least this long after the corrupt version became champion: registering it can take
# seconds on a loaded machine, and the cache must see the alias move and refuse the version under load.
AFTER_CORRUPT = 8.0


def _seed_bars(bucket: str) -> None:
    bars = parse_ohlcv_csv((PROJECT_ROOT / "sample_data" / "ohlcv" / "1d" / f"{SYMBOL}.csv").read_bytes())
    OhlcvStore(S3ObjectStore(bucket)).append(SYMBOL, "1d", bars, as_of=AS_OF)


def _register(registry: Registry, seed: int) -> tuple[str, tuple[str, str]]:
    """Train a small LightGBM on the symbol's features, log it with its load-back sample, register it.
    Returns (version, (model id of the logged model, id of the run that logged it))."""
    import lightgbm
    import mlflow

    bars = parse_ohlcv_csv((PROJECT_ROOT / "sample_data" / "ohlcv" / "1d" / f"{SYMBOL}.csv").read_bytes())
    data = labelled_features(bars, horizon=10, up_pct=0.05, down_pct=0.05).dropna()
    X, y = data[list(FEATURE_NAMES)], data[f"{TREND}_label"].astype(int)
    model = lightgbm.LGBMClassifier(n_estimators=30 + seed, random_state=seed, verbose=-1).fit(X, y)
    sample = X.tail(20)
    with mlflow.start_run(experiment_id=registry.experiment_id(NAME), run_name=f"hot-swap-{seed}"):
        uri = Registry.log_model(model, "lightgbm", sample)
        Registry.log_load_back_sample(model, sample)
    tags = encode_tags(
        {"feature_names": list(FEATURE_NAMES), "symbol": SYMBOL, "trend": TREND, "classifier": "lightgbm"}
    )
    version = registry.register(NAME, uri, tags)
    return version.version, (uri.rsplit("/", 1)[-1], version.run_id)


def _corrupt_artifacts(bucket: str, ids: tuple[str, str]) -> int:
    """Overwrite the version's model in the bucket with garbage (the logged model's pickle and the run's
    native LightGBM model, which the predictor loads instead); returns how many objects changed."""
    model_id, run_id = ids
    s3 = boto3.client("s3")
    keys = [
        item["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="mlflow/")
        for item in page.get("Contents", [])
        if (model_id in item["Key"] and item["Key"].endswith(".pkl"))
        or (run_id in item["Key"] and item["Key"].endswith(LIGHTGBM_ARTIFACT))
    ]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=b"not a pickle")
    return len(keys)


def test_hot_swap_under_load_serves_every_request_and_never_the_corrupt_version(stack) -> None:
    from common.serving.api import Service, create_app

    bucket = stack.info.bucket
    registry = Registry(stack.info.mlflow_uri)
    _seed_bars(bucket)
    first, _ = _register(registry, seed=1)
    registry.move_champion(NAME, first)

    settings = load_settings(
        symbols=(SYMBOL,),
        data_bucket=bucket,
        mlflow_tracking_uri=stack.info.mlflow_uri,
        as_of=AS_OF,
        predictor_model_refresh_seconds=1.0,
    )
    service = Service.from_settings(settings, background=True)
    results: list[list[tuple[float, int, str | None, float]]] = [[] for _ in range(CLIENTS)]
    with serving(create_app(lambda: service)) as base_url:
        url = f"{base_url}/prediction"
        params = {"symbol": SYMBOL, "trend_type": TREND}
        first_answer = httpx.get(url, params=params, timeout=30)
        assert first_answer.status_code == 200, first_answer.text
        OriginalPrediction.model_validate(first_answer.json())  # what an old client of the API checks
        not_original: list[dict] = []  # bodies an old client's schema refuses (a thread cannot fail the test itself)
        start = time.monotonic()

        def client(out: list[tuple[float, int, str | None, float]]) -> None:
            with httpx.Client(timeout=30) as http:
                while not stop.is_set():
                    now = time.monotonic() - start
                    sent = time.perf_counter()
                    response = http.get(url, params=params)
                    latency = time.perf_counter() - sent
                    body = response.json() if response.status_code == 200 else {}
                    if body and not is_original_prediction(body):
                        not_original.append(body)
                    out.append((now, response.status_code, body.get("model_version"), latency))

        stop = threading.Event()
        workers = [threading.Thread(target=client, args=(out,)) for out in results]
        try:
            for worker in workers:
                worker.start()
            time.sleep(PROMOTE_AT)
            second, _ = _register(registry, seed=2)
            registry.move_champion(NAME, second)
            promoted_at = time.monotonic() - start
            time.sleep(max(0.0, CORRUPT_AT - (time.monotonic() - start)))
            corrupt, model_id = _register(registry, seed=3)
            assert _corrupt_artifacts(bucket, model_id) == 2
            registry.move_champion(NAME, corrupt)
            corrupted_at = time.monotonic() - start
            time.sleep(max(DURATION, corrupted_at + AFTER_CORRUPT) - (time.monotonic() - start))
            stop.set()
            for worker in workers:
                worker.join(timeout=DURATION + 60)
        finally:
            stop.set()
            service.models.close()

    responses = [r for out in results for r in out]
    failures = [r for r in responses if r[1] != 200]
    assert not failures, f"{len(failures)} non-2xx responses, e.g. {failures[:3]}"
    assert not not_original, f"{len(not_original)} answers an original client refuses, e.g. {not_original[:2]}"
    assert all(isinstance(r[2], str) and r[2] for r in responses)
    for out in results:
        versions = [int(r[2]) for r in out]
        assert versions == sorted(versions), "a client saw the version go backwards"
    served = {r[2] for r in responses}
    assert corrupt not in served and {first, second} <= served
    assert service.models.rejected()[(SYMBOL, TREND, "1d")].keys() == {corrupt}

    def summary(rows: list[tuple[float, int, str | None, float]]) -> str:
        latencies = np.array([r[3] for r in rows]) * 1000
        if not len(latencies):
            return "no requests"
        return (
            f"{len(latencies)} requests, p50 {np.percentile(latencies, 50):.1f} ms, "
            f"p99 {np.percentile(latencies, 99):.1f} ms"
        )

    before = [r for r in responses if r[0] < PROMOTE_AT]
    during = [r for r in responses if PROMOTE_AT <= r[0] < corrupted_at + 3]
    after = [r for r in responses if r[0] >= corrupted_at + 3]
    elapsed = max(r[0] for r in responses)
    rate = len(responses) / elapsed
    print(
        f"\nhot swap, {CLIENTS} clients, {elapsed:.0f} s, {rate:.0f} req/s; v{first} -> v{second} at "
        f"{promoted_at:.1f} s, corrupt v{corrupt} made champion at {corrupted_at:.1f} s (never served)\n"
        f"  before: {summary(before)}\n  during: {summary(during)}\n  after:  {summary(after)}"
    )
    assert statistics.median(r[3] for r in responses) < 5.0
