"""retrain.stack.sfn_context: moto's interpreter gives ``$$.Execution.StartTime`` as AWS does (ISO 8601 text), so
a state machine that keeps it in its data (training's default as_of) has an output DescribeExecution can return."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from retrain.stack import sfn_context


@pytest.mark.parametrize(
    ("start", "text"),
    [
        (datetime(2024, 6, 1, 0, 10, 0, 123456, tzinfo=UTC), "2024-06-01T00:10:00.123Z"),
        (datetime(2024, 6, 1, 0, 10), "2024-06-01T00:10:00.000Z"),  # moto's naive times are UTC
        (datetime(2024, 6, 1, 2, 10, tzinfo=timezone(timedelta(hours=2))), "2024-06-01T00:10:00.000Z"),
        ("2019-03-26T20:14:13.192Z", "2019-03-26T20:14:13.192Z"),
    ],
)
def test_start_time_is_written_as_step_functions_writes_it(start: datetime | str, text: str) -> None:
    assert sfn_context.aws_start_time(start) == text


def _run(definition: dict[str, Any]) -> dict[str, Any]:
    import boto3
    from moto import mock_aws

    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        arn = sfn.create_state_machine(
            name="start-time", definition=json.dumps(definition), roleArn="arn:aws:iam::123456789012:role/sfn"
        )["stateMachineArn"]
        execution = sfn.start_execution(stateMachineArn=arn, input="{}")["executionArn"]
        for _ in range(100):
            described = sfn.describe_execution(executionArn=execution)
            if described["status"] != "RUNNING":
                return described
            time.sleep(0.05)
    raise AssertionError("the execution did not finish")


def test_the_context_start_time_is_text_in_the_executions_output() -> None:
    definition = {
        "StartAt": "Clock",
        "States": {"Clock": {"Type": "Pass", "Parameters": {"as_of.$": "$$.Execution.StartTime"}, "End": True}},
    }
    sfn_context.install()
    try:
        described = _run(definition)
    finally:
        sfn_context.uninstall()
    assert described["status"] == "SUCCEEDED"
    as_of = json.loads(described["output"])["as_of"]
    assert as_of == sfn_context.aws_start_time(described["startDate"])
