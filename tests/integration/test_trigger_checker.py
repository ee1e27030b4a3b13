"""The trigger checker on the local stack: invoked through moto's Lambda API with an EventBridge event,
it records a decision per model and day, starts one training execution, and a second invocation on the
same day starts nothing new."""

from __future__ import annotations

import json
import time

import boto3
import pytest

from common.core.keys import decision_key
from common.loop.check import execution_name
from tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.integration

DAY = "2025-02-21"


def _event(detail: dict) -> dict:
    event = json.loads((PROJECT_ROOT / "tests" / "events" / "schedule.json").read_text())
    event["time"] = f"{DAY}T00:00:00Z"
    event["detail"] = detail
    return event


def _invoke(stack, detail: dict) -> dict:
    response = boto3.client("lambda").invoke(
        FunctionName=stack.info.functions["TriggerCheckerFunction"], Payload=json.dumps(_event(detail))
    )
    body = json.loads(response["Payload"].read())
    assert "FunctionError" not in response, body
    return body


def test_one_execution_per_day_however_often_the_check_runs(stack):
    from datetime import UTC, datetime

    first = _invoke(stack, {"symbols": ["XRP"]})
    second = _invoke(stack, {"symbols": ["XRP"]})

    assert first["execution"] == second["execution"] == execution_name(datetime(2025, 2, 21, tzinfo=UTC))
    assert first["retrain"], "XRP has no champion yet, or an old one: something must fire"
    assert first["started"] is True and second["started"] is False
    sfn = boto3.client("stepfunctions")
    arn = stack.info.state_machines["TrainingStateMachine"]
    runs = [e for e in sfn.list_executions(stateMachineArn=arn)["executions"] if e["name"] == first["execution"]]
    assert len(runs) == 1

    s3 = boto3.client("s3")
    for trend in ("uptrend", "downtrend"):
        key = decision_key("XRP", trend, datetime(2025, 2, 21, tzinfo=UTC))
        record = json.loads(s3.get_object(Bucket=stack.info.bucket, Key=key)["Body"].read())
        assert record["day"] == DAY and set(record["triggers"]) >= {"schedule"}
        assert record["retrain"] == (f"XRP {trend}" in first["retrain"])

    # Leave the stack quiet for the next tests: the started execution trains in the background.
    deadline = time.monotonic() + 300
    while sfn.describe_execution(executionArn=runs[0]["executionArn"])["status"] == "RUNNING":
        assert time.monotonic() < deadline, "training execution did not finish"
        time.sleep(1)


def test_a_malformed_event_is_a_clear_function_error(stack):
    response = boto3.client("lambda").invoke(
        FunctionName=stack.info.functions["TriggerCheckerFunction"],
        Payload=json.dumps(_event({"symbols": ["xrp"]})),
    )
    error = json.loads(response["Payload"].read())
    assert response.get("FunctionError") and error["errorType"] == "ValidationError"
