"""The Step Functions adapter: start the training state machine, at most once per execution name."""

from __future__ import annotations

import json
from typing import Any


class TrainingWorkflow:
    def __init__(self, state_machine_arn: str, client: Any | None = None) -> None:
        self.state_machine_arn = state_machine_arn
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("stepfunctions")
        return self._client

    def execution_arn(self, name: str) -> str:
        return self.state_machine_arn.replace(":stateMachine:", ":execution:") + f":{name}"

    def exists(self, name: str) -> bool:
        try:
            self.client.describe_execution(executionArn=self.execution_arn(name))
        except self.client.exceptions.ExecutionDoesNotExist:
            return False
        return True

    def start(self, name: str, payload: dict[str, Any]) -> bool:
        """Start execution ``name``; False when one with that name already exists (nothing new starts).

        The name is the guarantee: Step Functions refuses a second execution with a used name (and answers
        a repeated identical request for a running one with that same execution), so two concurrent
        checks still make one run; the lookup first only makes the answer say which happened."""
        if self.exists(name):
            return False
        try:
            self.client.start_execution(stateMachineArn=self.state_machine_arn, name=name, input=json.dumps(payload))
        except self.client.exceptions.ExecutionAlreadyExists:
            return False
        return True
