"""Start a training execution and follow its steps as they happen."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from common.core.settings import model_label

_TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}


@dataclass(frozen=True)
class Step:
    """One history event, reduced to what a person reads."""

    elapsed_s: float
    kind: str
    state: str
    detail: str

    def __str__(self) -> str:
        text = f"+{self.elapsed_s:6.2f}s  {self.kind:<22} {self.state}"
        return f"{text}  {self.detail}" if self.detail else text


@dataclass(frozen=True)
class ExecutionResult:
    arn: str
    status: str
    output: Any
    error: str | None
    cause: str | None
    steps: list[Step]
    duration_s: float


def _step(event: dict[str, Any], started: datetime) -> Step:
    kind = event["type"]
    details = next((v for k, v in event.items() if k.endswith("EventDetails") and isinstance(v, dict)), {})
    state = details.get("name", "")
    detail = ""
    if "index" in details:
        detail = f"item {details['index']}"
    if kind.endswith("Failed") and ("error" in details or "cause" in details):
        detail = f"{details.get('error', '')}: {str(details.get('cause', ''))[:160]}"
    if kind == "TaskStateEntered" and str(details.get("input", "")).startswith("{"):
        model = json.loads(details["input"]).get("model") or {}
        if isinstance(model, dict) and model.get("symbol"):
            detail = model_label(model["symbol"], str(model.get("trend", "")), model.get("interval") or "1d")
    if kind == "TaskScheduled":
        resource = details.get("parameters", "")
        function = json.loads(resource).get("FunctionName", "") if resource.startswith("{") else ""
        detail = function.rsplit(":", 1)[-1]
    return Step((event["timestamp"] - started).total_seconds(), kind, state, detail)


def _history(sfn: Any, arn: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"executionArn": arn, "maxResults": 1000}
    while True:
        page = sfn.get_execution_history(**kwargs)
        events.extend(page["events"])
        if not page.get("nextToken"):
            return events
        kwargs["nextToken"] = page["nextToken"]


def execution_arn(state_machine_arn: str, name: str) -> str:
    return state_machine_arn.replace(":stateMachine:", ":execution:") + f":{name}"


def execution_exists(sfn: Any, state_machine_arn: str, name: str) -> bool:
    try:
        sfn.describe_execution(executionArn=execution_arn(state_machine_arn, name))
    except sfn.exceptions.ExecutionDoesNotExist:
        return False
    return True


def last_state(sfn: Any, arn: str) -> Any:
    """The data the execution's last finished state passed on: what a failed execution had got to (AWS
    gives a failed execution no output)."""
    for event in reversed(_history(sfn, arn)):
        output = (event.get("stateExitedEventDetails") or {}).get("output")
        if output:
            return json.loads(output)
    return None


def run_execution(
    sfn: Any,
    state_machine_arn: str,
    name: str,
    payload: dict[str, Any],
    *,
    on_step: Callable[[Step], None] = lambda step: None,
    timeout_s: float = 900,
    poll_s: float = 0.25,
    attach_only: bool = False,
) -> ExecutionResult:
    """Start (or, if ``name`` already ran, re-attach to) an execution and wait for it to finish.
    ``attach_only``: someone else started it (the trigger checker); only wait for it."""
    arn = execution_arn(state_machine_arn, name)
    if not attach_only:
        with contextlib.suppress(sfn.exceptions.ExecutionAlreadyExists):
            arn = sfn.start_execution(stateMachineArn=state_machine_arn, name=name, input=json.dumps(payload))[
                "executionArn"
            ]
    seen = 0
    started_at = time.monotonic()
    steps: list[Step] = []
    while True:
        description = sfn.describe_execution(executionArn=arn)
        events = _history(sfn, arn)
        for event in events[seen:]:
            step = _step(event, events[0]["timestamp"])
            steps.append(step)
            on_step(step)
        seen = len(events)
        if description["status"] in _TERMINAL:
            break
        if time.monotonic() - started_at > timeout_s:
            raise TimeoutError(f"execution {name} still running after {timeout_s:.0f}s")
        time.sleep(poll_s)
    output = json.loads(description["output"]) if description.get("output") else None
    stop = description.get("stopDate") or description["startDate"]
    return ExecutionResult(
        arn=arn,
        status=description["status"],
        output=output,
        error=description.get("error"),
        cause=description.get("cause"),
        steps=steps,
        duration_s=(stop - description["startDate"]).total_seconds(),
    )
