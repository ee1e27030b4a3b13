"""The predictor: the model cache's hot swap (common.serving.model_cache) and the API's contract (functions/predictor),
with a fake registry and fake feature rows. The real-stack swap under load is tests/integration."""

from __future__ import annotations

import itertools
import json
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from common.core.errors import DataNotFoundError
from common.core.settings import load_settings
from common.data.features import FEATURE_NAMES
from common.registry.mlflow_registry import VersionInfo
from common.registry.promotion import encode_tags
from common.serving.api import MAX_BATCH_ROWS, Service, create_app
from common.serving.checked_versions import CheckedModel, ModelLoadError
from common.serving.feature_rows import FeatureCache, FeatureRow
from common.serving.model_cache import CacheEvent, ModelCache
from common.training.scorer import compile_scorer
from retrain.stack.lambda_router import LocalLambdaContext
from tests.emf import emitted_metrics
from tests.original_api import OriginalModel, OriginalPrediction, is_original_prediction

BAR = datetime(2025, 2, 19, tzinfo=UTC)


class ConstantModel:
    """P(trend) = ``p`` for every row; checks it was given the model's feature columns in order."""

    classes_ = np.array([0, 1])
    feature_names_in_ = np.array(FEATURE_NAMES)  # fitted on a frame: the scorer hands it one

    def __init__(self, p: float) -> None:
        self.p = p

    def predict_proba(self, rows: pd.DataFrame) -> np.ndarray:
        assert list(rows.columns) == list(FEATURE_NAMES)
        return np.tile([1 - self.p, self.p], (len(rows), 1))


class FakeSource:
    """Champion aliases that tests move; versions in ``broken`` fail to load."""

    def __init__(self) -> None:
        self.aliases: dict[str, str] = {}
        self.broken: set[str] = set()
        self.loads: list[str] = []
        self.fail_resolve = False

    def champion(self, name: str) -> VersionInfo | None:
        if self.fail_resolve:
            raise ConnectionError("registry unreachable")
        version = self.aliases.get(name)
        if version is None:
            return None
        tags = encode_tags(
            {
                "feature_names": list(FEATURE_NAMES),
                "metrics": {
                    "accuracy": 0.6,
                    "precision": 0.5,
                    "positive_accuracy": 0.55,
                    "negative_accuracy": 0.7,
                    "overall_score": 0.62,
                    "brier": 0.2,
                },
                "feature_importance": {"PPO": 0.3, "MACD": 0.1},
                "target_pct": 0.05,
                "prediction_window": 10,
                "classifier": "lightgbm",
            }
        )
        return VersionInfo(name, version, f"run-{version}", tags, ("champion",))

    def load(self, info: VersionInfo) -> Any:
        self.loads.append(info.version)
        if info.version in self.broken:
            raise ModelLoadError(f"v{info.version} is corrupt")
        model = ConstantModel(int(info.version) / 10)
        return CheckedModel(model, compile_scorer(model, FEATURE_NAMES), FEATURE_NAMES)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _cache(source: FakeSource, clock: Clock, **kwargs: Any) -> ModelCache:
    return ModelCache(source, refresh_seconds=10, background=False, clock=clock, **kwargs)


def test_first_request_loads_the_champion_and_later_ones_reuse_it() -> None:
    source, clock = FakeSource(), Clock()
    source.aliases["BTC_uptrend_model"] = "1"
    cache = _cache(source, clock)
    first = cache.get("BTC", "uptrend")
    assert first is not None and first.version == "1" and first.feature_names == FEATURE_NAMES
    clock.now = 5
    source.aliases["BTC_uptrend_model"] = "2"
    assert cache.get("BTC", "uptrend") is first  # not re-resolved within refresh_seconds
    assert source.loads == ["1"]


def test_a_new_champion_is_swapped_in_and_a_held_model_keeps_scoring() -> None:
    source, clock = FakeSource(), Clock()
    source.aliases["BTC_uptrend_model"] = "1"
    cache = _cache(source, clock)
    in_flight = cache.get("BTC", "uptrend")
    source.aliases["BTC_uptrend_model"] = "2"
    clock.now = 10
    swapped = cache.get("BTC", "uptrend")
    assert swapped is not None and swapped.version == "2"
    assert in_flight is not None and in_flight.version == "1"
    assert in_flight.probability(_row()) == pytest.approx(0.1)  # still its own model
    assert cache.stats().swaps == 2


def test_a_version_that_fails_to_load_is_never_served_nor_retried() -> None:
    source, clock = FakeSource(), Clock()
    source.aliases["BTC_uptrend_model"] = "1"
    cache = _cache(source, clock)
    cache.get("BTC", "uptrend")
    source.aliases["BTC_uptrend_model"] = "3"
    source.broken.add("3")
    for step in range(1, 4):
        clock.now = 10 * step
        served = cache.get("BTC", "uptrend")
        assert served is not None and served.version == "1"
    assert source.loads == ["1", "3"]  # rejected once, remembered
    assert "corrupt" in cache.rejected()[("BTC", "uptrend", "1d")]["3"]
    assert cache.stats().rejected_loads == 1


def test_registry_outage_or_deleted_alias_keeps_the_current_model() -> None:
    source, clock = FakeSource(), Clock()
    source.aliases["BTC_uptrend_model"] = "1"
    cache = _cache(source, clock)
    cache.get("BTC", "uptrend")
    source.fail_resolve, clock.now = True, 10
    assert cache.get("BTC", "uptrend").version == "1"
    source.fail_resolve, clock.now = False, 20
    del source.aliases["BTC_uptrend_model"]
    assert cache.get("BTC", "uptrend").version == "1"


def test_no_champion_and_a_broken_first_version_serve_nothing() -> None:
    source, clock = FakeSource(), Clock()
    cache = _cache(source, clock)
    assert cache.get("ETH", "downtrend") is None
    source.aliases["ETH_downtrend_model"] = "4"
    source.broken.add("4")
    clock.now = 10
    assert cache.get("ETH", "downtrend") is None


def test_concurrent_readers_during_swaps_never_go_backwards() -> None:
    source = FakeSource()
    source.aliases["BTC_uptrend_model"] = "1"
    cache = ModelCache(source, refresh_seconds=0, background=True)
    seen: list[list[int]] = [[] for _ in range(8)]
    stop = threading.Event()

    def reader(out: list[int]) -> None:
        while not stop.is_set():
            served = cache.get("BTC", "uptrend")
            assert served is not None
            out.append(int(served.version))

    threads = [threading.Thread(target=reader, args=(out,)) for out in seen]
    for thread in threads:
        thread.start()
    for version in ("2", "3", "4"):
        source.aliases["BTC_uptrend_model"] = version
        if version == "3":
            source.broken.add(version)
        threading.Event().wait(0.05)
    stop.set()
    for thread in threads:
        thread.join()
    cache.close()
    for versions in seen:
        assert versions and all(a <= b for a, b in itertools.pairwise(versions))
        assert 3 not in versions
    assert cache.get("BTC", "uptrend").version == "4"


def test_feature_cache_reuses_a_fresh_row_and_falls_back_to_the_last_good_one() -> None:
    clock, calls = Clock(), []

    def load(symbol: str, interval: str) -> FeatureRow:
        calls.append(clock.now)
        if clock.now >= 100:
            raise DataNotFoundError("bucket unreachable")
        return _row()

    cache = FeatureCache(load, refresh_seconds=60, clock=clock)
    first = cache.get("BTC", "1d")
    clock.now = 30
    assert cache.get("BTC", "1d") is first and calls == [0]
    clock.now = 100
    assert cache.get("BTC", "1d") is first  # failed refresh: the last good row serves
    with pytest.raises(DataNotFoundError):
        cache.get("ETH", "1d")  # nothing to fall back to


# --- the API --------------------------------------------------------------------------------------


def _row(symbol: str = "BTC") -> FeatureRow:
    values = pd.DataFrame([[0.5] * len(FEATURE_NAMES)], columns=list(FEATURE_NAMES), index=[pd.Timestamp(BAR)])
    return FeatureRow(symbol, "1d", BAR, values, "v-1")


@pytest.fixture
def source() -> FakeSource:
    fake = FakeSource()
    fake.aliases.update({"BTC_uptrend_model": "7", "BTC_downtrend_model": "2"})
    return fake


@pytest.fixture
def client(source: FakeSource) -> TestClient:
    settings = load_settings(symbols=("BTC", "ETH"), data_bucket="unused")

    def load(symbol: str, interval: str) -> FeatureRow:
        if symbol == "ETH":
            raise DataNotFoundError("ETH 1d: no bars stored")
        return _row(symbol)

    service = Service(settings, ModelCache(source, refresh_seconds=0, background=False), FeatureCache(load))
    return TestClient(create_app(lambda: service))


def test_prediction_keeps_the_original_shape_plus_version_and_bar(client: TestClient) -> None:
    response = client.get("/prediction", params={"symbol": "BTC", "trend_type": "uptrend"})
    assert response.status_code == 200
    body = response.json()
    # The original contract: ONE number, P(trend), exactly as the original's predict_proba(x)[0][1].
    assert is_original_prediction(body) and body["prediction_probabilities"] == pytest.approx(0.7)
    assert body["symbol"] == "BTC" and body["trend_type"] == "uptrend"
    # Additions an old client ignores.
    assert body["class_probabilities"] == pytest.approx([0.3, 0.7])
    assert body["model_name"] == "BTC_uptrend_model" and body["model_version"] == "7"
    assert body["as_of"].startswith("2025-02-19T00:00:00")


def test_the_original_schemas_accept_live_answers_and_refuse_the_list_form(client: TestClient) -> None:
    for trend in ("uptrend", "downtrend"):
        OriginalPrediction.model_validate(
            client.get("/prediction", params={"symbol": "BTC", "trend_type": trend}).json()
        )
    for entry in client.get("/models").json():
        OriginalModel.model_validate(entry)
    OriginalModel.model_validate(client.get("/models/BTC/uptrend").json())
    # The documented answer passes; the two-element list this API once returned is what old clients choke on.
    assert is_original_prediction({"prediction_probabilities": 0.4, "symbol": "SOL", "trend_type": "uptrend"})
    assert not is_original_prediction(
        {"prediction_probabilities": [0.6, 0.4], "symbol": "SOL", "trend_type": "uptrend"}
    )


def test_models_list_and_one_model(client: TestClient) -> None:
    listed = client.get("/models").json()
    assert {(m["symbol"], m["trend_type"], m["model_version"]) for m in listed} == {
        ("BTC", "uptrend", "7"),
        ("BTC", "downtrend", "2"),
    }
    one = client.get("/models/BTC/uptrend").json()
    assert one["performance_metrics"]["overall_score"] == 0.62 and one["feature_importance"]["PPO"] == 0.3
    assert one["target_pct"] == 0.05 and one["prediction_window_days"] == 10


@pytest.mark.parametrize(
    ("path", "params", "status", "needle"),
    [
        ("/prediction", {"symbol": "SOL", "trend_type": "uptrend"}, 404, "SOL uptrend"),
        ("/prediction", {"symbol": "ETH", "trend_type": "uptrend"}, 404, "no champion"),
        ("/prediction", {"symbol": "BTC", "trend_type": "sideways"}, 422, "trend_type"),
        ("/prediction", {"symbol": "btc; drop", "trend_type": "uptrend"}, 422, "symbol"),
        ("/prediction", {"symbol": "BTC"}, 422, "trend_type"),
        ("/prediction", {"symbol": "BTC", "trend_type": "uptrend", "debug": "1"}, 422, "debug"),
        ("/models/SOL/downtrend", {}, 404, "SOL downtrend"),
        ("/models/BTC/flat", {}, 422, "trend_type"),
    ],
)
def test_bad_requests_get_a_clear_4xx(client: TestClient, path: str, params: dict, status: int, needle: str) -> None:
    response = client.get(path, params=params)
    assert response.status_code == status
    assert needle in json.dumps(response.json())


def test_missing_data_for_a_configured_pair_is_503_with_the_reason(client: TestClient, source: FakeSource) -> None:
    source.aliases["ETH_uptrend_model"] = "1"
    response = client.get("/prediction", params={"symbol": "ETH", "trend_type": "uptrend"})
    assert response.status_code == 503 and "no bars stored" in response.json()["detail"]


def _rows(n: int = 2) -> list[dict[str, float]]:
    return [dict.fromkeys(FEATURE_NAMES, 0.1 * i) for i in range(n)]


def test_predict_scores_explicit_rows(client: TestClient) -> None:
    response = client.post("/predict", json={"symbol": "BTC", "trend_type": "downtrend", "rows": _rows(3)})
    assert response.status_code == 200
    assert response.json()["probabilities"] == pytest.approx([0.2, 0.2, 0.2])
    assert response.json()["model_version"] == "2"


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"symbol": "BTC", "trend_type": "uptrend", "rows": _rows(), "extra": 1}, "extra"),
        ({"symbol": "BTC", "trend_type": "uptrend", "rows": []}, "rows"),
        ({"symbol": "BTC", "trend_type": "uptrend", "rows": _rows(MAX_BATCH_ROWS + 1)}, "rows"),
        ({"symbol": "BTC", "trend_type": "uptrend", "rows": [{"PPO": 1.0}]}, "body.rows.0: missing ['7_day_ADX', "),
        ({"symbol": "BTC", "trend_type": "uptrend", "rows": [{**_rows(1)[0], "x": 1.0}]}, "rows.0.x: Extra inputs"),
        ({"symbol": "BTC", "trend_type": "uptrend"}, "body: missing ['rows']"),
        ({"symbol": "BTC", "trend_type": "uptrend", "rows": [{**_rows(1)[0], "PPO": "high"}]}, "rows.0.PPO"),
    ],
)
def test_predict_rejects_bad_bodies(client: TestClient, body: dict, needle: str) -> None:
    response = client.post("/predict", json=body)
    assert response.status_code == 422 and needle in response.json()["detail"]
    assert response.json()["errors"], "each problem is listed with where it is"


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_predict_rejects_nan_and_infinity(client: TestClient, token: str) -> None:
    row = json.dumps(_rows(1)[0]).replace("0.0", token, 1)
    payload = '{"symbol": "BTC", "trend_type": "uptrend", "rows": [' + row + "]}"
    response = client.post("/predict", content=payload, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text


def test_malformed_json_is_a_4xx(client: TestClient) -> None:
    response = client.post("/predict", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422


def test_health_reports_loaded_and_rejected_versions(client: TestClient, source: FakeSource) -> None:
    client.get("/prediction", params={"symbol": "BTC", "trend_type": "uptrend"})
    source.aliases["BTC_uptrend_model"] = "8"
    source.broken.add("8")
    client.get("/prediction", params={"symbol": "BTC", "trend_type": "uptrend"})
    health = client.get("/health").json()
    assert health["loaded"]["BTC_uptrend"] == "7" and health["status"] == "degraded"
    assert "corrupt" in health["rejected"]["BTC_uptrend"]["8"] and health["last_bar"]["BTC"].startswith("2025-02-19")


def test_openapi_documents_every_endpoint(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/health", "/models", "/models/{symbol}/{trend_type}", "/prediction", "/predict"} <= set(paths)


def test_lambda_handler_answers_an_http_api_v2_event(source: FakeSource) -> None:
    from pathlib import Path

    from mangum import Mangum

    # tests/events/http_api_prediction.json: `sam local generate-event apigateway http-api-proxy`, set to
    # GET /prediction?symbol=BTC&trend_type=uptrend.
    event = json.loads((Path(__file__).parents[1] / "events" / "http_api_prediction.json").read_text())
    settings = load_settings(symbols=("BTC",), data_bucket="unused")
    service = Service(settings, ModelCache(source, background=False), FeatureCache(lambda s, i: _row(s)))
    response = Mangum(create_app(lambda: service), lifespan="off")(event, None)
    assert response["statusCode"] == 200
    body = json.loads(response["body"])
    assert body["model_version"] == "7" and body["prediction_probabilities"] == pytest.approx(0.7)


def test_a_suspended_champion_answers_404_with_the_reason_and_serves_again_once_resumed(source: FakeSource) -> None:
    from common.registry.promotion import SUSPENDED_TAG, Suspension

    suspended: dict[str, str] = {}
    champion = source.champion

    def with_suspension(name: str) -> VersionInfo | None:
        info = champion(name)
        if info is not None and name in suspended:
            info = VersionInfo(info.name, info.version, info.run_id, {**info.tags, SUSPENDED_TAG: suspended[name]}, ())
        return info

    source.champion = with_suspension  # type: ignore[method-assign]
    settings = load_settings(symbols=("BTC",), data_bucket="unused")
    service = Service(
        settings, ModelCache(source, refresh_seconds=0, background=False), FeatureCache(lambda s, i: _row(s))
    )
    client = TestClient(create_app(lambda: service))
    params = {"symbol": "BTC", "trend_type": "uptrend"}
    assert client.get("/prediction", params=params).status_code == 200

    why = "worse than not trading: v7: 40 resolved outcomes, 12 correct"
    suspended["BTC_uptrend_model"] = Suspension("2025-02-19T00:10:00+00:00", why).to_tag()
    answer = client.get("/prediction", params=params)
    assert (
        answer.status_code == 404
        and "v7 is suspended since 2025-02-19" in answer.json()["detail"]
        and why in answer.json()["detail"]
    )
    listed = {m["trend_type"]: m for m in client.get("/models").json()}
    assert listed["uptrend"]["status"] == "suspended" and why in listed["uptrend"]["suspended_reason"]
    assert listed["downtrend"]["status"] == "serving"
    assert client.get("/models/BTC/uptrend").json()["status"] == "suspended"  # described, not hidden
    OriginalModel.model_validate(listed["uptrend"])  # old clients still read the entry

    del suspended["BTC_uptrend_model"]  # resumed by hand (the tag deleted)
    again = client.get("/prediction", params=params)
    assert again.status_code == 200 and again.json()["model_version"] == "7"
    assert source.loads.count("7") == 1, "suspending and resuming never reloads the model"


# --- the Lambda adapter: swaps and refused loads as metrics --------------------------------------------------
def test_the_cache_reports_each_swap_and_refused_load_and_survives_a_failing_observer() -> None:
    source, clock = FakeSource(), Clock()
    heard: list[CacheEvent] = []
    source.aliases["BTC_uptrend_model"] = "1"
    cache = _cache(source, clock, on_event=heard.append)
    cache.get("BTC", "uptrend")
    source.aliases["BTC_uptrend_model"], source.broken = "2", {"2"}
    clock.now = 10
    cache.get("BTC", "uptrend")
    assert [(e.kind, e.version, e.previous) for e in heard] == [("swap", "1", None), ("rejected", "2", "1")]
    assert heard[1].why == "ModelLoadError: v2 is corrupt"

    def broken_observer(event: CacheEvent) -> None:
        raise RuntimeError("metrics down")

    source.aliases["BTC_uptrend_model"] = "3"
    failing = _cache(source, clock, on_event=broken_observer)
    assert failing.get("BTC", "uptrend").version == "3"  # type: ignore[union-attr]


def test_the_lambda_handler_publishes_swaps_and_refused_loads_as_metrics(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """functions/predictor/app.py as Lambda runs it: the handler's service hears its cache's events and the
    invocation that swapped publishes ModelSwaps; one whose champion fails to load, ModelLoadsRejected."""
    import functions.predictor.app as app
    from common.serving.api import Service

    for name, value in {
        "AWS_LAMBDA_FUNCTION_NAME": "retrain-test-PredictorFunction",
        "RETRAIN_SYMBOLS": "BTC",
        "RETRAIN_DATA_BUCKET": "unused",
        "POWERTOOLS_SERVICE_NAME": "retrain-test",
        "POWERTOOLS_METRICS_NAMESPACE": "RetrainTest",
    }.items():
        monkeypatch.setenv(name, value)
    source, clock = FakeSource(), Clock()
    source.aliases["BTC_uptrend_model"] = "1"

    def from_settings(settings: Any, *, background: bool, on_event: Any = None, **_: Any) -> Service:
        assert background is False  # on Lambda the refresh runs inline
        cache = ModelCache(source, refresh_seconds=10, background=False, clock=clock, on_event=on_event)
        return Service(settings, cache, FeatureCache(lambda s, i: _row(s)))

    monkeypatch.setattr(Service, "from_settings", from_settings)
    # The module may have been imported by an earlier test: its Metrics read the namespace and service then.
    monkeypatch.setattr(app.metrics.provider, "namespace", "RetrainTest")
    monkeypatch.setattr(app.metrics.provider, "service", "retrain-test")
    app.default_service.cache_clear()
    event = json.loads((Path(__file__).resolve().parents[1] / "events" / "http_api_prediction.json").read_text())
    context = LocalLambdaContext("retrain-test-PredictorFunction", "arn:aws:lambda:us-east-1:1:function:x")
    try:
        assert app.handler(event, context)["statusCode"] == 200
        first = emitted_metrics(capsys.readouterr().out)
        assert app.handler(event, context)["statusCode"] == 200  # nothing new: no swap counted
        second = emitted_metrics(capsys.readouterr().out)
        source.aliases["BTC_uptrend_model"], source.broken = "2", {"2"}
        clock.now = 10
        assert json.loads(app.handler(event, context)["body"])["model_version"] == "1"  # v1 keeps serving
        third = emitted_metrics(capsys.readouterr().out)
    finally:
        app.default_service.cache_clear()
    assert first == {"ModelSwaps": 1}
    assert "ModelSwaps" not in second and "ModelLoadsRejected" not in second
    assert third == {"ModelLoadsRejected": 1}


# --- a mixed pool: daily and hourly models side by side (issue 19) -------------------------------------------


@pytest.fixture
def mixed_client(source: FakeSource) -> TestClient:
    source.aliases.update({"XRP_1h_uptrend_model": "3", "BTC_1h_uptrend_model": "5"})
    settings = load_settings(symbols=("BTC", "XRP:1h", "BTC:1h"), data_bucket="unused")

    def load(symbol: str, interval: str) -> FeatureRow:
        row = _row(symbol)
        return FeatureRow(symbol, interval, BAR if interval == "1d" else BAR.replace(hour=13), row.values, "v-1")

    service = Service(settings, ModelCache(source, refresh_seconds=0, background=False), FeatureCache(load))
    return TestClient(create_app(lambda: service))


def test_a_mixed_pool_answers_old_clients_with_the_daily_model_and_names_the_hourly_one(
    mixed_client: TestClient,
) -> None:
    old = mixed_client.get("/prediction", params={"symbol": "BTC", "trend_type": "uptrend"}).json()
    assert is_original_prediction(old)
    assert (old["model_name"], old["model_version"], old["interval"]) == ("BTC_uptrend_model", "7", "1d")
    hourly = mixed_client.get("/prediction", params={"symbol": "BTC", "trend_type": "uptrend", "interval": "1h"})
    assert hourly.status_code == 200, hourly.text
    body = hourly.json()
    assert (body["model_name"], body["model_version"], body["interval"]) == ("BTC_1h_uptrend_model", "5", "1h")
    assert body["as_of"].startswith("2025-02-19T13:00") and body["prediction_probabilities"] == pytest.approx(0.5)
    listed = {
        (m["symbol"], m["trend_type"], m["interval"], m["model_version"]) for m in mixed_client.get("/models").json()
    }
    assert listed == {
        ("BTC", "uptrend", "1d", "7"),
        ("BTC", "downtrend", "1d", "2"),
        ("XRP", "uptrend", "1h", "3"),
        ("BTC", "uptrend", "1h", "5"),
    }
    one = mixed_client.get("/models/XRP/uptrend", params={"interval": "1h"}).json()
    assert one["interval"] == "1h" and one["model_version"] == "3"
    batch = mixed_client.post(
        "/predict",
        json={"symbol": "XRP", "trend_type": "uptrend", "interval": "1h", "rows": [dict.fromkeys(FEATURE_NAMES, 0.1)]},
    )
    assert batch.status_code == 200 and batch.json()["interval"] == "1h" and batch.json()["model_version"] == "3"


@pytest.mark.parametrize(
    ("params", "status", "needle"),
    [
        ({"symbol": "XRP", "trend_type": "uptrend", "interval": "5m"}, 422, "interval"),
        ({"symbol": "XRP", "trend_type": "uptrend"}, 404, "the pool holds XRP on 1h bars only"),
        ({"symbol": "XRP", "trend_type": "downtrend", "interval": "1h"}, 404, "XRP 1h downtrend: no champion"),
    ],
)
def test_a_mixed_pool_refuses_an_unknown_interval_and_a_model_it_does_not_hold(
    mixed_client: TestClient, params: dict, status: int, needle: str
) -> None:
    response = mixed_client.get("/prediction", params=params)
    assert response.status_code == status
    assert needle in response.json()["detail"] or needle in json.dumps(response.json())


def test_a_cold_start_loads_the_champion_and_the_features_concurrently(source: FakeSource) -> None:
    """The first ``/prediction`` of a pair overlaps the registry's round trips with the bars' read (issue 18):
    each load here waits for the other to have started, so one after the other would time out."""
    both_started = threading.Barrier(2, timeout=10)
    settings = load_settings(symbols=("BTC",), data_bucket="unused")

    class WaitingSource(FakeSource):
        def load(self, info: VersionInfo) -> Any:
            both_started.wait()
            return super().load(info)

    waiting = WaitingSource()
    waiting.aliases.update(source.aliases)

    def load(symbol: str, interval: str) -> FeatureRow:
        both_started.wait()
        return _row(symbol)

    service = Service(settings, ModelCache(waiting, background=False), FeatureCache(load))
    response = TestClient(create_app(lambda: service)).get(
        "/prediction", params={"symbol": "BTC", "trend_type": "uptrend"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["model_version"] == "7" and waiting.loads == ["7"]
