"""The real ASL of infra/ executed by moto's interpreter against the real handlers."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from common.core.keys import dataset_manifest_key, ohlcv_key
from common.data.ohlcv import closed_mask, parse_ohlcv_csv
from retrain.executions import run_execution
from retrain.stack.sample_data import SAMPLE_DATA_END
from tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.integration


def _run(stack, name: str, models: list[dict], as_of: str = "2024-06-01T00:00:00+00:00"):
    sfn = boto3.client("stepfunctions")
    arn = stack.info.state_machines["TrainingStateMachine"]
    return run_execution(sfn, arn, name, {"models": models, "as_of": as_of}, timeout_s=120)


def test_execution_succeeds_and_writes_manifests(stack):
    result = _run(
        stack,
        "it-success",
        [
            {"symbol": "BTC", "trend": "uptrend", "reason": "test"},
            {"symbol": "ETH", "trend": "downtrend", "reason": "test"},
        ],
    )
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    outcomes = {(r["symbol"], r["trend"]): r for r in result.output["results"]}
    assert {o["status"] for o in outcomes.values()} <= {"promoted", "rejected"}, outcomes

    # The handler's effect in S3: a manifest whose figures match the sample file read directly.
    s3 = boto3.client("s3")
    manifest = s3.get_object(Bucket=stack.info.bucket, Key=dataset_manifest_key("it-success", "BTC", "uptrend"))
    import json

    manifest = json.loads(manifest["Body"].read())
    bars = parse_ohlcv_csv((PROJECT_ROOT / "sample_data/ohlcv/1d/BTC.csv").read_bytes())
    import pandas as pd

    expected = bars.loc[closed_mask(bars.index, "1d", pd.Timestamp("2024-06-01T00:00:00Z").to_pydatetime())]
    assert manifest["bars"] == len(expected)
    assert manifest["last_closed_bar"].startswith("2024-05-31")
    assert manifest["source_key"] == ohlcv_key("BTC", "1d")
    assert manifest["source_version"], "the bucket is versioned: the manifest pins the object version"
    assert 0 < manifest["positive_rate"] < 1

    # The steps ran through the real handlers, in order, and the operator was notified.
    entered = [s.state for s in result.steps if s.kind == "TaskStateEntered"]
    for step in ("PrepareDataset", "TrainModel", "PromoteModel"):
        assert entered.count(step) == 2, entered
    assert entered[-1] == "NotifyOperator"
    assert stack.router is not None
    called = {record.function.rsplit("-", 1)[-1] for record in stack.router.invocations}
    assert {"PrepareDatasetFunction", "TrainModelFunction", "PromoteModelFunction", "NotifyFunction"} <= called
    notification_uri = result.output["notification"]["delivered_to"][0]
    key = notification_uri.split(stack.info.bucket + "/", 1)[1]
    note = json.loads(s3.get_object(Bucket=stack.info.bucket, Key=key)["Body"].read())
    assert note["subject"].startswith("Retraining run it-success: ")


def test_one_failing_model_does_not_fail_the_others(stack):
    result = _run(
        stack,
        "it-isolation",
        [
            {"symbol": "BTC", "trend": "downtrend", "reason": "test"},
            {"symbol": "SOL", "trend": "uptrend", "reason": "test"},
        ],
    )
    assert result.status == "SUCCEEDED"
    by_symbol = {r["symbol"]: r for r in result.output["results"]}
    assert by_symbol["BTC"]["status"] in {"promoted", "rejected"}
    # SOL is not in this stack's bucket: the handler's typed error is the Step Functions error name.
    assert by_symbol["SOL"]["status"] == "failed"
    assert by_symbol["SOL"]["error"] == "DataNotFoundError"
    assert "symbol=SOL" in by_symbol["SOL"]["cause"] and by_symbol["SOL"]["failed_step"] == "PrepareDataset"
    assert "1 failed" in result.output["notification"]["subject"]


def test_bad_execution_input_is_rejected_per_model_with_a_clear_error(stack):
    result = _run(stack, "it-bad-input", [{"symbol": "btc", "trend": "sideways", "reason": "test"}])
    assert result.status == "SUCCEEDED"
    (outcome,) = result.output["results"]
    assert outcome["status"] == "failed"
    assert outcome["error"] == "ValidationError"
    assert "trend" in outcome["cause"] and "symbol" in outcome["cause"]


def _task_payloads(sfn: Any, execution_arn: str) -> list[tuple[str, dict[str, Any]]]:
    """(function, Payload) of every Lambda task the execution scheduled, in order."""
    events = sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]
    scheduled = [
        json.loads(e["taskScheduledEventDetails"]["parameters"]) for e in events if e["type"] == "TaskScheduled"
    ]
    return [(p["FunctionName"].rsplit(":", 1)[-1], p["Payload"]) for p in scheduled]


def _execution_start(sfn: Any, execution_arn: str) -> datetime:
    return sfn.describe_execution(executionArn=execution_arn)["startDate"].astimezone(UTC)


def _as_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_as_of_is_optional_and_the_open_bar_is_never_used(stack):
    sfn = boto3.client("stepfunctions")
    arn = stack.info.state_machines["TrainingStateMachine"]
    result = run_execution(sfn, arn, "it-no-as-of", {"models": [{"symbol": "ETH", "trend": "uptrend"}]}, timeout_s=120)
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    (outcome,) = result.output["results"]
    assert outcome["status"] in {"promoted", "rejected"}, outcome
    # No as_of means now: every sample bar is closed; the last one is the sample data's last day.
    manifest_key = dataset_manifest_key("it-no-as-of", "ETH", "uptrend")
    manifest = json.loads(boto3.client("s3").get_object(Bucket=stack.info.bucket, Key=manifest_key)["Body"].read())
    assert manifest["last_closed_bar"].startswith(f"{SAMPLE_DATA_END:%Y-%m-%d}")
    # "Now" is the execution's start, once for the run: every step saw the same as_of, not its own clock.
    started = _execution_start(sfn, result.arn)
    payloads = _task_payloads(sfn, result.arn)
    assert [f.rsplit("-", 1)[-1] for f, _ in payloads] == [
        "PrepareDatasetFunction", "TrainModelFunction", "PromoteModelFunction", "NotifyFunction"
    ]  # fmt: skip
    assert {_as_time(payload["as_of"]) for _, payload in payloads} == {started}
    assert _as_time(manifest["as_of"]) == started and _as_time(result.output["as_of"]) == started


def test_a_null_as_of_is_the_execution_start_too(stack):
    sfn = boto3.client("stepfunctions")
    arn = stack.info.state_machines["TrainingStateMachine"]
    models = [{"symbol": "SOL", "trend": "uptrend"}]  # not stored: fails in PrepareDataset, quickly
    result = run_execution(sfn, arn, "it-null-as-of", {"models": models, "as_of": None}, timeout_s=60)
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    started = _execution_start(sfn, result.arn)
    payloads = _task_payloads(sfn, result.arn)
    assert len(payloads) == 2 and {_as_time(payload["as_of"]) for _, payload in payloads} == {started}


def test_an_execution_that_outlives_its_timeout_times_out(stack, monkeypatch):
    """What the ExecutionsTimedOut alarm counts, produced by the real training definition: its top-level
    TimeoutSeconds cut to 1 s, and a NotifyOperator that takes 3 s. moto's interpreter honours TimeoutSeconds
    and ends the execution TIMED_OUT, as Step Functions does."""
    sfn = boto3.client("stepfunctions")
    deployed = stack.info.state_machines["TrainingStateMachine"]
    definition = json.loads(stack.resources.state_machine("TrainingStateMachine").definition)
    assert definition["TimeoutSeconds"] >= 3600
    definition["TimeoutSeconds"] = 1
    role = sfn.describe_state_machine(stateMachineArn=deployed)["roleArn"]
    arn = sfn.create_state_machine(name="it-timeout-probe", definition=json.dumps(definition), roleArn=role)[
        "stateMachineArn"
    ]
    route = stack.router._routes[stack.info.functions["NotifyFunction"]]
    notify, finished = route.handler, threading.Event()

    def slow_notify(event: Any, context: Any) -> Any:
        try:
            time.sleep(3)
            return notify(event, context)
        finally:
            finished.set()

    monkeypatch.setattr(route, "handler", slow_notify)
    try:
        result = run_execution(sfn, arn, "it-timeout", {"models": []}, timeout_s=60)
    finally:
        assert finished.wait(30), "the slow invocation should end before the next test"
        sfn.delete_state_machine(stateMachineArn=arn)
    assert result.status == "TIMED_OUT", (result.status, result.error, result.cause)
