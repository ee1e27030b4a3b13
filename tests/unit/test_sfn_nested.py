"""retrain.stack.sfn_nested: moto's interpreter runs ``states:startExecution.sync:2`` as AWS does (the day state
machine nests the training state machine), in-process, on a child that succeeds and on one that fails."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from retrain.stack import sfn_nested

ROLE = "arn:aws:iam::123456789012:role/sfn"


def _parent(child: str) -> dict[str, Any]:
    return {
        "StartAt": "Nested",
        "States": {
            "Nested": {
                "Type": "Task",
                "Resource": "arn:aws:states:::states:startExecution.sync:2",
                "Parameters": {"StateMachineArn": child, "Name.$": "$.name", "Input": {"models.$": "$.models"}},
                "ResultSelector": {"execution.$": "$.ExecutionArn", "results.$": "$.Output.results"},
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Failed"}],
                "End": True,
            },
            "Failed": {"Type": "Pass", "End": True},
        },
    }


@pytest.fixture
def sfn() -> Iterator[Any]:
    import boto3
    from moto import mock_aws

    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        yield boto3.client("stepfunctions", region_name="us-east-1")


def _run(sfn: Any, child_definition: dict[str, Any]) -> dict[str, Any]:
    child = sfn.create_state_machine(name="child", definition=json.dumps(child_definition), roleArn=ROLE)
    parent = sfn.create_state_machine(
        name="parent", definition=json.dumps(_parent(child["stateMachineArn"])), roleArn=ROLE
    )
    payload = {"name": "child-run", "models": ["BTC uptrend"]}
    arn = sfn.start_execution(stateMachineArn=parent["stateMachineArn"], input=json.dumps(payload))["executionArn"]
    for _ in range(100):
        described = sfn.describe_execution(executionArn=arn)
        if described["status"] != "RUNNING":
            return described
        time.sleep(0.1)
    raise AssertionError("the parent execution did not finish")


@pytest.fixture
def installed() -> Iterator[None]:
    sfn_nested.install()
    try:
        yield
    finally:
        sfn_nested.uninstall()


def test_a_nested_execution_runs_under_its_name_and_returns_its_output(sfn: Any, installed: None) -> None:
    echo = {
        "StartAt": "Echo",
        "States": {"Echo": {"Type": "Pass", "Parameters": {"results.$": "$.models"}, "End": True}},
    }
    described = _run(sfn, echo)
    assert described["status"] == "SUCCEEDED"
    output = json.loads(described["output"])
    assert output == {"execution": output["execution"], "results": ["BTC uptrend"]}
    assert output["execution"].endswith(":execution:child:child-run")


def test_a_failed_nested_execution_is_a_task_failure_the_parent_catches(sfn: Any, installed: None) -> None:
    fails = {"StartAt": "Fail", "States": {"Fail": {"Type": "Fail", "Error": "Boom", "Cause": "broken"}}}
    output = json.loads(_run(sfn, fails)["output"])
    assert output["error"]["Error"] == "States.TaskFailed" and '"Boom"' in output["error"]["Cause"]


def test_without_the_patch_moto_cannot_start_the_nested_execution(sfn: Any) -> None:
    """What the patch is for (if a moto release fixes this, the patch can go)."""
    echo = {"StartAt": "Echo", "States": {"Echo": {"Type": "Pass", "End": True}}}
    output = json.loads(_run(sfn, echo)["output"])
    assert output["error"]["Error"] == "States.Runtime"
