"""Every Lambda handler of template.yaml invoked the way `sam local invoke <Function> -e <event>` would, without
Docker: through moto's Lambda API on the embedded stack, which runs functions/<name>/app.py in-process with a
Lambda context, fed the files in tests/events (only the fields a test varies are changed, on a copy).

One model's whole day: ingestion appends its newest bar, the state machine's task inputs prepare, train and
promote both trends and notify, the batch prediction logs each champion, the trigger checker decides, and
each route of the prediction API answers. Then one malformed event per function: a typed error naming the
field (Lambda's errorType/errorMessage), or a 4xx for the API, never an unexplained failure.

LINK is this file's own symbol: no other test stores or trains it. Training uses one candidate (ridge), with
which both LINK models pass the original gate (overall 0.65 and 0.66).
"""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from common.aws.storage import S3ObjectStore
from common.core.settings import TRENDS, get_settings
from common.data.bar_store import OhlcvStore
from common.data.ohlcv import parse_ohlcv_csv
from tests.conftest import PROJECT_ROOT
from tests.original_api import OriginalModel, OriginalPrediction

pytestmark = pytest.mark.integration

EVENTS = PROJECT_ROOT / "tests" / "events"
SYMBOL = "LINK"
# One candidate: the handlers' contract does not depend on the zoo's size, and ridge is what the reduced zoo
# picks for both LINK models anyway (2 x ~12 s of training become 2 x ~4 s).
CLASSIFIER = "ridge"
RUN_ID = "events-test-link"
STORED_AS_OF = datetime(2025, 2, 20, tzinfo=UTC)  # the bucket holds LINK's bars up to 2025-02-19 ...
INGEST_TIME = "2025-02-21T00:05:00Z"  # ... and the schedule appends the 2025-02-20 bar
TRAIN_AS_OF = "2025-02-21T00:00:00Z"
BATCH_TIME = "2025-02-21T00:15:00Z"
# Not 2025-02-21: test_trigger_checker owns that day's execution name (one training execution per day).
CHECK_TIME = "2025-02-22T00:00:00Z"


def load(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def invoke(stack, function: str, event: dict[str, Any]) -> tuple[Any, str | None]:
    """lambda:Invoke of the template's function; returns (payload, FunctionError or None)."""
    response = boto3.client("lambda").invoke(FunctionName=stack.info.functions[function], Payload=json.dumps(event))
    return json.loads(response["Payload"].read()), response.get("FunctionError")


def ok(stack, function: str, event: dict[str, Any]) -> Any:
    payload, error = invoke(stack, function, event)
    assert error is None, payload
    return payload


def scheduled(time: str, **detail: Any) -> dict[str, Any]:
    return {**load("schedule.json"), "time": time, "detail": detail}


def task_input(name: str, **values: Any) -> dict[str, Any]:
    """A recorded task input with this run's values; the fields are the file's (the ASL's Payload)."""
    event = load(name)
    assert set(values) <= set(event), f"{name} has no {set(values) - set(event)}"
    return {**event, **values}


def for_symbol(name: str, symbol: str) -> dict[str, Any]:
    """An HTTP API event about BTC made about ``symbol`` (path, query and body)."""
    event = json.loads((EVENTS / name).read_text().replace("BTC", symbol))
    if event.get("isBase64Encoded"):
        body = base64.b64decode(event["body"]).decode().replace("BTC", symbol)
        event["body"] = base64.b64encode(body.encode()).decode()
    return event


@pytest.fixture(scope="module")
def day(stack) -> dict[str, Any]:
    """Ingest, then the state machine's four task inputs for both trends, chained as the ASL chains them."""
    bars = parse_ohlcv_csv((PROJECT_ROOT / "sample_data" / "ohlcv" / "1d" / f"{SYMBOL}.csv").read_bytes())
    OhlcvStore(S3ObjectStore(stack.info.bucket)).append(SYMBOL, "1d", bars, as_of=STORED_AS_OF)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RETRAIN_TRAIN_CLASSIFIERS", CLASSIFIER)
        get_settings.cache_clear()
        try:
            return _run_day(stack)
        finally:
            get_settings.cache_clear()


def _run_day(stack) -> dict[str, Any]:
    results: dict[str, Any] = {"ingest": ok(stack, "IngestFunction", scheduled(INGEST_TIME, symbols=[SYMBOL]))}
    outcomes = []
    for trend in TRENDS:
        task = {
            "run_id": RUN_ID,
            "as_of": TRAIN_AS_OF,
            "model": {"symbol": SYMBOL, "trend": trend, "reason": "drift"},
        }
        prepared = ok(stack, "PrepareDatasetFunction", task_input("sfn_prepare_dataset.json", **task))
        trained = ok(stack, "TrainModelFunction", task_input("sfn_train_model.json", **task, dataset=prepared))
        promoted = ok(stack, "PromoteModelFunction", task_input("sfn_promote_model.json", **task, trained=trained))
        results[trend] = {"prepared": prepared, "trained": trained, "promoted": promoted}
        outcomes.append(promoted)
    failed = load("sfn_notify.json")["results"][1]  # a model that failed in PrepareDataset, as the Catch records it
    notify = task_input("sfn_notify.json", run_id=RUN_ID, as_of=TRAIN_AS_OF, results=[*outcomes, failed])
    results["notify"] = ok(stack, "NotifyFunction", notify)
    return results


def test_ingest_appends_the_bar_that_closed(day) -> None:
    summary = day["ingest"]
    assert summary["provider"] == "replay" and summary["failed"] == [] and summary["appended"] == 1
    (link,) = summary["symbols"]
    assert link["symbol"] == SYMBOL and link["last_bar"].startswith("2025-02-20")


def test_training_tasks_prepare_train_and_promote_each_trend(day) -> None:
    for trend in TRENDS:
        prepared, trained, promoted = (day[trend][step] for step in ("prepared", "trained", "promoted"))
        assert prepared["manifest_key"] == f"runs/{RUN_ID}/{SYMBOL}_{trend}/dataset.json"
        assert prepared["last_closed_bar"].startswith("2025-02-20") and not prepared["stale"]
        assert trained["status"] == "registered" and trained["registered_model"] == f"{SYMBOL}_{trend}_model"
        assert set(trained["candidates"]) == {CLASSIFIER} and trained["classifier"] == CLASSIFIER
        assert promoted["status"] == "promoted" and promoted["version"] == trained["version"]
        assert promoted["champion_version"] == trained["version"] and promoted["reason"] == "drift"


def test_notify_tells_the_operator_about_every_model(stack, day) -> None:
    sent = day["notify"]
    assert sent["subject"] == f"Retraining run {RUN_ID}: 2 promoted, 1 failed" and sent["failed"] == []
    (outbox,) = sent["delivered_to"]
    key = outbox.removeprefix(f"s3://{stack.info.bucket}/")
    message = json.loads(boto3.client("s3").get_object(Bucket=stack.info.bucket, Key=key)["Body"].read())
    assert f"{SYMBOL} uptrend" in message["text"] and "DataNotFoundError" in message["text"]


def test_batch_predict_logs_each_champion_once(stack, day) -> None:
    first = ok(stack, "BatchPredictFunction", scheduled(BATCH_TIME, symbols=[SYMBOL]))
    again = ok(stack, "BatchPredictFunction", scheduled(BATCH_TIME, symbols=[SYMBOL]))
    assert first["failed_models"] == [] and first["predictions"]["written"] == 2
    for model in first["predictions"]["models"]:
        assert model["bar"].startswith("2025-02-20") and 0.0 <= model["probability"] <= 1.0
        assert model["version"] == day[model["trend"]]["promoted"]["version"]
    assert again["predictions"]["written"] == 0 and again["predictions"]["existing"] == 2


def test_trigger_checker_decides_for_each_model(stack, day) -> None:
    summary = ok(stack, "TriggerCheckerFunction", scheduled(CHECK_TIME, symbols=[SYMBOL]))
    assert summary["errors"] == {}
    decisions = {d["trend"]: d for d in summary["decisions"]}
    assert set(decisions) == set(TRENDS)
    for trend, decision in decisions.items():
        assert decision["champion_version"] == day[trend]["promoted"]["version"]
        assert decision["day"] == "2025-02-22" and {"schedule", "performance", "drift"} <= set(decision["triggers"])
        assert decision["triggers"]["schedule"]["status"] == "ok", "trained two days before: not stale"
        assert decision["triggers"]["performance"]["status"] == "insufficient_data", "one logged prediction"
    if summary["started"]:  # drift may fire on this window; leave the stack quiet for the next tests
        sfn = boto3.client("stepfunctions")
        arn = stack.info.state_machines["TrainingStateMachine"].replace(":stateMachine:", ":execution:")
        deadline = time.monotonic() + 300
        while sfn.describe_execution(executionArn=f"{arn}:{summary['execution']}")["status"] == "RUNNING":
            assert time.monotonic() < deadline, "training execution did not finish"
            time.sleep(1)


@pytest.fixture
def predictor(stack, monkeypatch: pytest.MonkeyPatch):
    """The predictor's Lambda environment for LINK: as on AWS (AWS_LAMBDA_FUNCTION_NAME set: inline model
    refresh), the pool narrowed to LINK, the clock at the batch run. Its service is built per warm
    environment (process), so it is dropped before and after.

    Invoked through moto's Lambda API like every other function: the stack's router gives moto's request
    thread the event loop Mangum needs, as Lambda's main thread has one."""
    from functions.predictor.app import default_service

    name = stack.info.functions["PredictorFunction"]
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", name)
    monkeypatch.setenv("RETRAIN_SYMBOLS", SYMBOL)
    monkeypatch.setenv("RETRAIN_AS_OF", BATCH_TIME)
    get_settings.cache_clear()
    default_service.cache_clear()

    def call(event: dict[str, Any]) -> tuple[Any, str | None]:
        return invoke(stack, "PredictorFunction", event)

    yield call
    default_service.cache_clear()
    get_settings.cache_clear()


def test_predictor_answers_every_route(day, predictor) -> None:
    versions = {trend: day[trend]["promoted"]["version"] for trend in TRENDS}
    answers = {}
    for name in ("http_api_prediction.json", "http_api_models.json", "http_api_model.json", "http_api_predict.json"):
        response, error = predictor(for_symbol(name, SYMBOL))
        assert error is None and response["statusCode"] == 200, (name, response)
        assert response["headers"]["content-type"] == "application/json"
        answers[name] = json.loads(response["body"])

    prediction = answers["http_api_prediction.json"]
    assert prediction["symbol"] == SYMBOL and prediction["model_version"] == versions["uptrend"]
    # What an old client of the original API checks, on the answers of real champions through API Gateway.
    OriginalPrediction.model_validate(prediction)
    assert prediction["class_probabilities"] == pytest.approx(
        [1 - prediction["prediction_probabilities"], prediction["prediction_probabilities"]]
    )
    assert prediction["as_of"].startswith("2025-02-20")
    summaries = {m["trend_type"]: m for m in answers["http_api_models.json"]}
    assert {t: m["model_version"] for t, m in summaries.items()} == versions
    for summary in [*answers["http_api_models.json"], answers["http_api_model.json"]]:
        OriginalModel.model_validate(summary)
    assert answers["http_api_model.json"] == summaries["uptrend"]
    predicted = answers["http_api_predict.json"]
    assert predicted["model_version"] == versions["uptrend"] and len(predicted["probabilities"]) == 1

    response, error = predictor(for_symbol("http_api_health.json", SYMBOL))
    health = json.loads(response["body"])
    assert error is None and response["statusCode"] == 200
    assert health["loaded"][f"{SYMBOL}_uptrend"] == versions["uptrend"] and health["rejected"] == {}


# --- malformed events --------------------------------------------------------------------------------------
def _without(name: str, field: str) -> dict[str, Any]:
    event = load(name)
    del event[field]
    return event


MALFORMED: dict[str, tuple[dict[str, Any], str]] = {
    # function: (event, the field the error names)
    "IngestFunction": (scheduled(INGEST_TIME, symbols=["link"]), "detail.symbols"),
    "TriggerCheckerFunction": (scheduled(CHECK_TIME, as_of="yesterday"), "detail.as_of"),
    "BatchPredictFunction": (_without("schedule.json", "time"), "time"),
    "PrepareDatasetFunction": ({**load("sfn_prepare_dataset.json"), "model": {"symbol": SYMBOL}}, "model.trend"),
    "TrainModelFunction": (_without("sfn_train_model.json", "model"), "model"),
    "PromoteModelFunction": (_without("sfn_promote_model.json", "trained"), "trained"),
    "NotifyFunction": ({**load("sfn_notify.json"), "run_id": "no spaces allowed"}, "run_id"),
    "BacktestModelFunction": ({**load("backtest_model.json"), "symbol": SYMBOL.lower()}, "symbol"),
    "BacktestSummarizeFunction": (_without("backtest_summarize.json", "results"), "results"),
}


def test_malformed_events_cover_every_function(stack) -> None:
    assert set(MALFORMED) | {"PredictorFunction"} == set(stack.info.functions)


@pytest.mark.parametrize("function", sorted(MALFORMED))
def test_a_malformed_event_is_a_typed_function_error(stack, function: str) -> None:
    event, field = MALFORMED[function]
    error, kind = invoke(stack, function, event)
    assert kind == "Unhandled" and error["errorType"] == "ValidationError"
    first_line, location = error["errorMessage"].splitlines()[:2]
    assert first_line.startswith("1 validation error for ") and location == field


def test_the_predictor_answers_a_malformed_request_with_a_4xx_and_refuses_a_non_http_event(predictor) -> None:
    response, error = predictor(for_symbol("http_api_prediction.json", SYMBOL.lower()))
    assert error is None and response["statusCode"] == 422
    assert "query.symbol" in json.loads(response["body"])["detail"]

    response, error = predictor(for_symbol("http_api_model.json", "LTC"))  # a pair outside the pool
    assert error is None and response["statusCode"] == 404
    assert "LTC is not in the configured pool" in json.loads(response["body"])["detail"]

    response, error = predictor(load("schedule.json"))
    assert error == "Unhandled" and response["errorType"] == "RuntimeError"
    assert "unable to infer a handler" in response["errorMessage"]
