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

    def start(self, name: str, payload: dict[str, Any]) -> bool:
        """Start execution ``name``; False when one with that name already exists (nothing new starts)."""
        try:
            self.client.start_execution(stateMachineArn=self.state_machine_arn, name=name, input=json.dumps(payload))
        except self.client.exceptions.ExecutionAlreadyExists:
            return False
        return True
