"""Pieces of the daily check that need no stack: the age clock, the execution name, the summary."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from common.loop.check import CheckSummary, _trained_at, execution_name
from common.loop.triggers import Decision, TriggerResult, schedule_trigger
from common.registry.mlflow_registry import VersionInfo
from common.registry.promotion import decode_tags, encode_tags
from tests.emf import emitted_metrics, emitted_points

WALL_CLOCK = datetime(2026, 11, 21, tzinfo=UTC)


def _version(**tags: object) -> VersionInfo:
    return VersionInfo("BTC_uptrend_model", "3", "run", encode_tags(tags), (), created_at=WALL_CLOCK)


def test_age_is_measured_on_the_data_clock_not_the_registry_wall_clock() -> None:
    tagged = _version(trained_as_of="2025-02-10T00:00:00+00:00", data_range={"last": "2025-01-30T00:00:00+00:00"})
    assert _trained_at(tagged, decode_tags(tagged.tags)) == datetime(2025, 2, 10, tzinfo=UTC)
    older = _version(data_range={"last": "2025-01-30T00:00:00+00:00"})  # versions from before the tag existed
    assert _trained_at(older, decode_tags(older.tags)) == datetime(2025, 1, 30, tzinfo=UTC)
    bare = _version()
    assert _trained_at(bare, {}) == WALL_CLOCK
    replay = datetime(2025, 2, 21, tzinfo=UTC)
    assert schedule_trigger(_trained_at(tagged, decode_tags(tagged.tags)), replay, 7).status == "fired"


def test_one_execution_name_per_day() -> None:
    assert execution_name(datetime(2025, 2, 21, 0, 0, tzinfo=UTC)) == "trigger-2025-02-21"
    assert execution_name(datetime(2025, 2, 21, 23, 59, tzinfo=UTC)) == "trigger-2025-02-21"


def test_summary_lists_every_model_and_what_started() -> None:
    as_of = datetime(2025, 2, 21, tzinfo=UTC)
    keep = Decision(
        "BTC", "uptrend", "2025-02-21", as_of.isoformat(), "3", (TriggerResult("schedule", "ok", "", 2.0, 7),)
    )
    train = Decision("ETH", "uptrend", "2025-02-21", as_of.isoformat(), None, (schedule_trigger(None, as_of, 7),))
    summary = CheckSummary(as_of=as_of, decisions=[keep, train], execution="trigger-2025-02-21", started=False)
    summary.errors["SOL uptrend"] = "DataNotFoundError: no 1d bars for SOL"
    text = summary.render()
    assert "BTC uptrend" in text and "ETH uptrend" in text and "no_model" in text
    assert "already ran today: nothing new started" in text and "error: DataNotFoundError" in text
    assert summary.to_dict()["retrain"] == ["ETH uptrend"]


def test_a_champion_trained_as_of_the_check_or_later_is_not_checked_again() -> None:
    """Re-running a day: what was decided then, with the champion of then, stands."""
    import pytest

    from common.loop.check import AlreadyDecided, check_model

    class Registry:
        def version_by_alias(self, name: str, alias: str) -> VersionInfo:
            return _version(trained_as_of="2025-02-10T00:00:00+00:00")

        def last_training(self, *args: object, **kwargs: object) -> None:
            raise AssertionError("nothing is read once the champion postdates the check")

    for day in (datetime(2025, 2, 10, tzinfo=UTC), datetime(2025, 2, 3, tzinfo=UTC)):
        with pytest.raises(AlreadyDecided, match="v3 was trained as of 2025-02-10 00:00"):
            check_model(
                None,
                Registry(),
                None,
                None,
                symbol="BTC",
                trend="uptrend",
                as_of=day,
                interval="1d",  # type: ignore[arg-type]
            )
    summary = CheckSummary(as_of=datetime(2025, 2, 3, tzinfo=UTC), skipped={"BTC uptrend": "champion v3 was ..."})
    assert "BTC uptrend" in summary.render() and "not checked again" in summary.render()
    assert summary.to_dict()["skipped"] == {"BTC uptrend": "champion v3 was ..."}


# --- one model's failure, of whatever kind, never stops the others ---------------------------------------------
AS_OF = datetime(2025, 2, 21, 0, 10, tzinfo=UTC)


class FlakyRegistry:
    """No champion anywhere (every model fires no_model); ``failures`` names the models whose lookup raises."""

    def __init__(self, failures: dict[str, Exception]) -> None:
        self.failures = failures

    def version_by_alias(self, name: str, alias: str) -> VersionInfo | None:
        if name in self.failures:
            raise self.failures[name]
        return None

    def last_training(self, *args: object, **kwargs: object) -> None:
        return None


class StoreFailingOn:
    """A MemoryObjectStore whose writes of one key fail the way S3 does when it cannot be reached."""

    def __init__(self, key: str) -> None:
        from common.aws.storage import MemoryObjectStore

        self.inner, self.key = MemoryObjectStore(), key

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def put_json(self, key: str, document: object, **conditions: object) -> str:
        if key == self.key:
            from botocore.exceptions import EndpointConnectionError

            raise EndpointConnectionError(endpoint_url=f"https://s3.amazonaws.com/{key}")
        return self.inner.put_json(key, document, **conditions)  # type: ignore[arg-type]


def _check(registry: object, objects: object, started: list[dict[str, object]], errors: list[tuple[str, str]]):
    from common.core.settings import load_settings
    from common.loop.check import run_check

    return run_check(
        load_settings(symbols=("BTC", "ETH", "SOL")),
        registry,  # type: ignore[arg-type]
        objects,  # type: ignore[arg-type]
        as_of=AS_OF,
        start_execution=lambda name, payload: started.append(payload) or True,
        on_error=lambda model, exc: errors.append((model, type(exc).__name__)),
    )


def test_a_transport_error_for_one_model_is_recorded_for_it_and_the_others_are_checked() -> None:
    from mlflow.exceptions import RestException
    from requests.exceptions import ConnectionError as RequestsConnectionError

    from common.aws.storage import MemoryObjectStore
    from common.core.keys import decision_key

    registry = FlakyRegistry(
        {
            "ETH_uptrend_model": RestException({"error_code": "INTERNAL_ERROR", "message": "MLflow is down"}),
            "SOL_downtrend_model": RequestsConnectionError("Connection refused"),
        }
    )
    objects, started, errors = MemoryObjectStore(), [], []

    summary = _check(registry, objects, started, errors)

    checked = {f"{d.symbol} {d.trend}" for d in summary.decisions}
    assert checked == {"BTC uptrend", "BTC downtrend", "ETH downtrend", "SOL uptrend"}
    assert summary.errors == {
        "ETH uptrend": "RestException: INTERNAL_ERROR: MLflow is down",
        "SOL downtrend": "ConnectionError: Connection refused",
    }
    assert errors == [("ETH uptrend", "RestException"), ("SOL downtrend", "ConnectionError")]
    # The others still train: one execution with the four that fired.
    (payload,) = started
    assert {(m["symbol"], m["trend"]) for m in payload["models"]} == {  # type: ignore[union-attr]
        ("BTC", "uptrend"), ("BTC", "downtrend"), ("ETH", "downtrend"), ("SOL", "uptrend")
    }  # fmt: skip
    # The failed model's decision record says so, with the exception's type and message.
    record = objects.get_json(decision_key("ETH", "uptrend", AS_OF))
    assert record["status"] == "error" and record["retrain"] is False
    assert record["error"] == {"type": "RestException", "message": "INTERNAL_ERROR: MLflow is down"}
    assert objects.get_json(decision_key("BTC", "uptrend", AS_OF))["retrain"] is True
    result = summary.to_dict()
    assert result["failed_models"] == 2 and set(result["errors"]) == {"ETH uptrend", "SOL downtrend"}
    text = summary.render()
    assert f"{'ETH uptrend':<20}error: RestException: INTERNAL_ERROR: MLflow is down" in text
    assert "4 of 4 model(s) to retrain; 2 failed" in text


def test_an_error_record_never_replaces_a_decision_of_the_same_day() -> None:
    from mlflow.exceptions import RestException

    from common.aws.storage import MemoryObjectStore
    from common.core.keys import decision_key

    objects = MemoryObjectStore()
    _check(FlakyRegistry({}), objects, [], [])
    decided = objects.get_json(decision_key("ETH", "uptrend", AS_OF))

    failing = FlakyRegistry({"ETH_uptrend_model": RestException({"error_code": "INTERNAL_ERROR", "message": "x"})})
    again = _check(failing, objects, [], [])

    assert "ETH uptrend" in again.errors
    assert objects.get_json(decision_key("ETH", "uptrend", AS_OF)) == decided


def test_a_decision_that_cannot_be_recorded_is_still_acted_on_and_reported() -> None:
    from common.core.keys import decision_key

    objects = StoreFailingOn(decision_key("BTC", "downtrend", AS_OF))
    started: list[dict[str, object]] = []
    errors: list[tuple[str, str]] = []

    summary = _check(FlakyRegistry({}), objects, started, errors)

    assert summary.errors == {
        "BTC downtrend": "decision not recorded: EndpointConnectionError: Could not connect to the endpoint URL: "
        f'"https://s3.amazonaws.com/{decision_key("BTC", "downtrend", AS_OF)}"'
    }
    assert errors == [("BTC downtrend", "EndpointConnectionError")]
    assert len(started[0]["models"]) == 6  # type: ignore[arg-type]


class Context:
    function_name = "retrain-trigger-checker"
    memory_limit_in_mb = 2048
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:retrain-trigger-checker"
    aws_request_id = "test-request"


def test_the_handler_logs_counts_and_returns_a_failed_model_and_checks_the_others(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The invocation succeeds (see the handler's docstring for why); the failure is in its result, in an
    error log line naming the model, and in the CheckErrors metric the TriggerCheckModelErrorsAlarm watches."""
    import io
    import json
    from pathlib import Path

    from botocore.exceptions import EndpointConnectionError

    from common.core.settings import get_settings
    from tests.conftest import versioned_bucket

    bucket = "retrain-check-test"
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "RETRAIN_DATA_BUCKET": bucket,
        "RETRAIN_SYMBOLS": "BTC,ETH",
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:1",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "RetrainTest",
        "POWERTOOLS_SERVICE_NAME": "trigger-checker",
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    import functions.trigger_checker.app as app

    failing = EndpointConnectionError(endpoint_url="https://api.sagemaker.us-east-1.amazonaws.com/mlflow")
    monkeypatch.setattr(app, "Registry", lambda uri: FlakyRegistry({"BTC_downtrend_model": failing}))
    logs = io.StringIO()
    monkeypatch.setattr(app.logger.registered_handler, "stream", logs)  # bound to the stdout of import time
    event = json.loads((Path(__file__).resolve().parents[1] / "events" / "schedule.json").read_text())
    event["time"] = AS_OF.isoformat()

    with versioned_bucket(bucket):
        result = app.handler(event, Context())

    assert result["failed_models"] == 1 and list(result["errors"]) == ["BTC downtrend"]
    assert result["errors"]["BTC downtrend"].startswith("EndpointConnectionError: Could not connect")
    assert {(d["symbol"], d["trend"]) for d in result["decisions"]} == {
        ("BTC", "uptrend"), ("ETH", "uptrend"), ("ETH", "downtrend")
    }  # fmt: skip
    records = [json.loads(line) for line in logs.getvalue().splitlines()]
    [failure] = [r for r in records if r["message"] == "trigger check failed for a model"]
    assert failure["level"] == "ERROR" and failure["model"] == "BTC downtrend"
    assert failure["error_type"] == "EndpointConnectionError" and "EndpointConnectionError" in failure["exception"]
    out = capsys.readouterr().out
    metrics = emitted_metrics(out)
    assert metrics["CheckErrors"] == 1 and metrics["ModelsToRetrain"] == 3
    # Triggers fired by kind, each kind its own series (the dashboard's first graph): three pairs without champion.
    fired = {dims["trigger"]: value for name, dims, value in emitted_points(out) if name == "TriggersFired"}
    assert fired == {"schedule": 0, "performance": 0, "drift": 0, "no_model": 3}


@pytest.mark.parametrize(("day_step", "starts"), [(True, False), (False, True)], ids=["day-step", "standalone"])
def test_as_a_step_of_the_day_the_check_names_the_training_and_the_day_starts_it(
    monkeypatch: pytest.MonkeyPatch, day_step: bool, starts: bool
) -> None:
    """The day state machine starts (and waits for) the training the check names; a standalone invocation
    starts it itself. Same decision, same name and input either way."""
    import json
    from pathlib import Path

    from common.core.settings import get_settings
    from tests.conftest import versioned_bucket

    bucket = "retrain-check-day-test"
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "RETRAIN_DATA_BUCKET": bucket,
        "RETRAIN_SYMBOLS": "BTC",
        "RETRAIN_STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:training",
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:1",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_SERVICE_NAME": "trigger-checker",
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    import functions.trigger_checker.app as app

    started: list[tuple[str, dict[str, object]]] = []

    class Workflow:
        def __init__(self, arn: str) -> None:
            pass

        def start(self, name: str, payload: dict[str, object]) -> bool:
            started.append((name, payload))
            return True

    monkeypatch.setattr(app, "TrainingWorkflow", Workflow)
    monkeypatch.setattr(app, "Registry", lambda uri: FlakyRegistry({}))
    if day_step:
        event: dict[str, object] = {"day": "day-2025-02-20", "as_of": AS_OF.isoformat(), "symbols": ["BTC"]}
    else:
        event = json.loads((Path(__file__).resolve().parents[1] / "events" / "schedule.json").read_text())
        event["time"] = AS_OF.isoformat()

    with versioned_bucket(bucket):
        result = app.handler(event, Context())

    training = result["training"]
    assert training["name"] == f"trigger-{AS_OF:%Y-%m-%d}"  # no champion: both trends fire no_model
    assert {(m["symbol"], m["trend"]) for m in training["input"]["models"]} == {
        ("BTC", "uptrend"),
        ("BTC", "downtrend"),
    }
    assert training["input"]["as_of"] == AS_OF.isoformat()
    assert started == ([(training["name"], training["input"])] if starts else [])
    assert result["started"] is starts
