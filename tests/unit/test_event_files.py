"""The events in tests/events (what `sam local invoke <Function> -e <file>` feeds a handler), checked without
AWS against template.yaml, infra/*.asl.json and the handlers' own event models; and every handler,
given a malformed event with a Lambda context, fails with a typed error naming the field before any I/O.

The same events invoked for real, on the embedded stack, are tests/integration/test_handler_events.py.
"""

from __future__ import annotations

import base64
import importlib
import importlib.util
import json
import re
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from common.loop.events import (
    BacktestModelEvent,
    BacktestSummarizeEvent,
    BatchPredictEvent,
    CheckEvent,
    IngestEvent,
    ModelRequest,
    NotifyEvent,
    PrepareDatasetEvent,
    PromoteModelEvent,
    TrainModelEvent,
)
from retrain.stack.lambda_router import LocalLambdaContext
from retrain.stack.template import load_template, local_resources
from tests.conftest import PROJECT_ROOT

EVENTS = PROJECT_ROOT / "tests" / "events"
TEMPLATE = PROJECT_ROOT / "template.yaml"
ASL = json.loads((PROJECT_ROOT / "infra" / "training.asl.json").read_text())
BACKTEST_ASL = json.loads((PROJECT_ROOT / "infra" / "backtest.asl.json").read_text())

# Function (template logical id) -> the events it is invoked with, and the model its handler parses them with.
FUNCTION_EVENTS: dict[str, tuple[tuple[str, ...], type[BaseModel] | None]] = {
    "IngestFunction": (("schedule.json",), IngestEvent),
    "TriggerCheckerFunction": (("schedule.json",), CheckEvent),
    "BatchPredictFunction": (("schedule.json",), BatchPredictEvent),
    "PrepareDatasetFunction": (("sfn_prepare_dataset.json",), PrepareDatasetEvent),
    "TrainModelFunction": (("sfn_train_model.json",), TrainModelEvent),
    "PromoteModelFunction": (("sfn_promote_model.json",), PromoteModelEvent),
    "NotifyFunction": (("sfn_notify.json",), NotifyEvent),
    "BacktestModelFunction": (("backtest_model.json",), BacktestModelEvent),
    "BacktestSummarizeFunction": (("backtest_summarize.json",), BacktestSummarizeEvent),
    "PredictorFunction": (
        (
            "http_api_prediction.json",
            "http_api_models.json",
            "http_api_model.json",
            "http_api_predict.json",
            "http_api_health.json",
        ),
        None,  # Mangum: API Gateway HTTP API payload v2
    ),
}
# The files holding the execution inputs, and the request body the POST /predict event carries.
OTHER_FILES = {"sfn_execution_input.json", "backtest_execution_input.json", "predict_body.json"}


def load(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def functions() -> dict[str, Any]:
    resources = local_resources(TEMPLATE, parameters={"Stage": "test", "MlflowTrackingUri": "http://127.0.0.1:1"})
    return {function.logical_id: function for function in resources.functions}


def context(name: str = "retrain-test-Function") -> LocalLambdaContext:
    return LocalLambdaContext(name, f"arn:aws:lambda:us-east-1:123456789012:function:{name}")


# --- coverage ---------------------------------------------------------------------------------------------
def test_every_function_in_the_template_has_events() -> None:
    assert set(functions()) == set(FUNCTION_EVENTS)


def test_every_event_file_is_listed_with_its_command() -> None:
    readme = (EVENTS / "README.md").read_text()
    listed = set(re.findall(r"^\| `([a-z_]+\.json)` \| `[^`]+`", readme, flags=re.MULTILINE))
    on_disk = {path.name for path in EVENTS.glob("*.json")}
    used = {name for names, _ in FUNCTION_EVENTS.values() for name in names} | OTHER_FILES
    assert on_disk == used, "an event file no function uses, or a mapped file that does not exist"
    assert listed == on_disk, "tests/events/README.md must give the command that made every file"


@pytest.mark.parametrize(
    ("function", "name", "model"),
    [(f, name, model) for f, (names, model) in FUNCTION_EVENTS.items() if model for name in names],
)
def test_event_parses_with_the_handlers_model(function: str, name: str, model: type[BaseModel]) -> None:
    model.model_validate(load(name))


# --- Step Functions task inputs ---------------------------------------------------------------------------
def _tasks(states: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every Task state of the definition, Map iterations included."""
    found: dict[str, dict[str, Any]] = {}
    for state in states.values():
        if state["Type"] == "Task":
            found[state["Parameters"]["FunctionName"]] = state["Parameters"]["Payload"]
        if state["Type"] == "Map":
            found.update(_tasks(state["ItemProcessor"]["States"]))
    return found


def test_each_task_input_file_has_exactly_the_asl_payload_fields() -> None:
    tasks = _tasks(ASL["States"])
    assert len(tasks) == 4
    for function_arn, payload in tasks.items():
        logical_id = re.fullmatch(r"\$\{(\w+)Arn\}", function_arn).group(1)  # type: ignore[union-attr]
        (name,), _ = FUNCTION_EVENTS[logical_id]
        fields = {key.removesuffix(".$") for key in payload}
        assert set(load(name)) == fields, f"{name} out of date with the ASL's Payload of {logical_id}"


def test_task_inputs_are_one_run() -> None:
    """The files were recorded from one execution: each task received the previous one's result."""
    execution = load("sfn_execution_input.json")
    prepare, train, promote, notify = (
        load(f"sfn_{n}.json") for n in ("prepare_dataset", "train_model", "promote_model", "notify")
    )
    first = ModelRequest.model_validate(execution["models"][0])
    assert prepare["model"] == train["model"] == promote["model"] == first.model_dump()
    assert prepare["run_id"] == train["run_id"] == promote["run_id"] == notify["run_id"]
    assert prepare["as_of"] == execution["as_of"] == notify["as_of"]
    assert train["dataset"]["manifest_key"] == f"runs/{prepare['run_id']}/BTC_uptrend/dataset.json"
    assert notify["results"][0]["version"] == promote["trained"]["version"]
    assert [r["status"] for r in notify["results"]] == ["promoted", "failed"]
    assert json.loads(notify["results"][1]["cause"])["errorType"] == notify["results"][1]["error"]


def test_backtest_task_input_files_have_exactly_the_asl_payload_fields() -> None:
    each_model = BACKTEST_ASL["States"]["BacktestEachModel"]
    selector = each_model["ItemSelector"]
    task = each_model["ItemProcessor"]["States"]["BacktestModel"]["Parameters"]
    assert task["Payload.$"] == "States.JsonMerge($.model, $.request, false)"
    item_defaults = json.loads(re.search(r"StringToJson\('([^']*)'\)", selector["model.$"]).group(1))  # type: ignore[union-attr]
    fields = set(item_defaults) | {key.removesuffix(".$") for key in selector["request"]}
    assert set(load("backtest_model.json")) == fields
    summarize = BACKTEST_ASL["States"]["Summarize"]["Parameters"]["Payload"]
    assert set(load("backtest_summarize.json")) == {key.removesuffix(".$") for key in summarize}


def test_backtest_task_inputs_are_one_run() -> None:
    execution = load("backtest_execution_input.json")
    model, summarize = load("backtest_model.json"), load("backtest_summarize.json")
    assert {"symbol": model["symbol"], "trend": model["trend"]} == execution["models"][0]
    assert model["run_id"] == summarize["run_id"]
    for field in ("start", "end", "policies", "classifiers"):
        assert model[field] == summarize[field] == execution[field], field
    done, failed = summarize["results"]
    assert done["status"] == "done" and done["key"] == f"backtests/{model['run_id']}/units/BTC_uptrend.json"
    assert failed["status"] == "failed" and (failed["symbol"], failed["trend"]) == tuple(
        execution["models"][1].values()
    )
    assert json.loads(failed["cause"])["errorType"] == failed["error"] == "DataNotFoundError"


# --- HTTP API events ---------------------------------------------------------------------------------------
def test_http_events_are_what_the_api_route_sends() -> None:
    api = load_template(TEMPLATE)["Resources"]["PredictorFunction"]["Properties"]["Events"]["Api"]["Properties"]
    route = f"{api['Method']} {api['Path']}"
    (names, _) = FUNCTION_EVENTS["PredictorFunction"]
    for name in names:
        event = load(name)
        http = event["requestContext"]["http"]
        assert event["version"] == "2.0" and event["routeKey"] == event["requestContext"]["routeKey"] == route
        assert event["rawPath"] == http["path"] == "/" + event["pathParameters"]["proxy"], name
        query = dict(part.split("=", 1) for part in event["rawQueryString"].split("&") if part)
        assert event.get("queryStringParameters", {}) == query, name
        assert "iam" in event["requestContext"]["authorizer"], "the API is IAM-authorised"
        if http["method"] == "POST":
            assert event["headers"]["content-type"] == "application/json"
            body = base64.b64decode(event["body"]) if event["isBase64Encoded"] else event["body"].encode()
            assert json.loads(body) == load("predict_body.json")
        else:
            assert "body" not in event and http["method"] == "GET"


def test_predict_body_has_the_19_features() -> None:
    from common.data.features import FEATURE_NAMES

    (row,) = load("predict_body.json")["rows"]
    assert list(row) == list(FEATURE_NAMES)


# --- malformed events: a typed error, before any I/O --------------------------------------------------------
def _scheduled(**changes: Any) -> dict[str, Any]:
    return {**load("schedule.json"), **changes}


def _without(name: str, field: str) -> dict[str, Any]:
    event = load(name)
    del event[field]
    return event


MALFORMED: dict[str, tuple[dict[str, Any], str, str]] = {
    # function: (event, where the error points, what it says)
    "IngestFunction": (_scheduled(detail={"symbols": ["btc"]}), "detail.symbols", "upper-case tickers"),
    "TriggerCheckerFunction": (_scheduled(detail={"as_of": "yesterday"}), "detail.as_of", "datetime"),
    "BatchPredictFunction": (_without("schedule.json", "time"), "time", "Field required"),
    "PrepareDatasetFunction": (
        {**load("sfn_prepare_dataset.json"), "model": {"symbol": "BTC", "trend": "sideways"}},
        "model.trend",
        "'uptrend' or 'downtrend'",
    ),
    "TrainModelFunction": (_without("sfn_train_model.json", "model"), "model", "Field required"),
    "PromoteModelFunction": (_without("sfn_promote_model.json", "trained"), "trained", "Field required"),
    "NotifyFunction": ({**load("sfn_notify.json"), "results": "none"}, "results", "valid list"),
    "BacktestModelFunction": ({**load("backtest_model.json"), "end": "2024-11-21T12:00:00Z"}, "end", "must be a day"),
    "BacktestSummarizeFunction": (
        {**load("backtest_summarize.json"), "policies": ["sometimes"]},
        "policies",
        "unknown policy 'sometimes'",
    ),
}


@pytest.fixture
def lambda_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Powertools' settings, as the template's Globals give them to every function. The handler modules read
    them when first imported (the metrics namespace among them), so this test must not be the one that
    imports a handler without them."""
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "retrain-test")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Retrain")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")  # no X-Ray daemon here


@pytest.mark.parametrize("function", sorted(MALFORMED))
def test_a_malformed_event_is_a_validation_error_naming_the_field(function: str, lambda_environment: None) -> None:
    spec = functions()[function]
    handler = getattr(importlib.import_module(spec.module), spec.attribute)
    event, location, message = MALFORMED[function]
    with pytest.raises(ValidationError) as excinfo:
        handler(event, context(spec.name))
    errors = excinfo.value.errors()
    assert [".".join(str(part) for part in error["loc"]) for error in errors] == [location]
    assert message in str(excinfo.value)


def test_the_predictor_answers_a_malformed_request_with_a_422_naming_the_parameter() -> None:
    from functions.predictor.app import handler

    event = load("http_api_prediction.json")
    event["rawQueryString"] = "symbol=btc&trend_type=uptrend"
    event["queryStringParameters"] = {"symbol": "btc", "trend_type": "uptrend"}
    response = handler(event, context("retrain-test-PredictorFunction"))
    assert response["statusCode"] == 422
    assert "query.symbol" in json.loads(response["body"])["detail"]


def test_the_predictor_refuses_an_event_that_is_not_an_http_request() -> None:
    from functions.predictor.app import handler

    with pytest.raises(RuntimeError, match="unable to infer a handler"):
        handler(load("schedule.json"), context("retrain-test-PredictorFunction"))


def test_make_events_writes_the_predict_body_it_documents() -> None:
    spec = importlib.util.spec_from_file_location("make_events", EVENTS / "make_events.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.predict_body() == load("predict_body.json")
    assert set(module.TASK_FILES.values()) | {"sfn_execution_input.json"} == {p.name for p in EVENTS.glob("sfn_*.json")}
    assert set(module.BACKTEST_FILES.values()) | {"backtest_execution_input.json"} == {
        p.name for p in EVENTS.glob("backtest_*.json")
    }
    assert load("backtest_execution_input.json") == module.BACKTEST_EXECUTION_INPUT
