"""``retrain train``: run the training state machine for one model or the whole pool and summarise it."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import boto3

from common.aws.storage import S3ObjectStore
from common.core.errors import ConfigurationError, DataNotFoundError
from common.notify.notification import ModelOutcome
from retrain.executions import ExecutionResult, Step, run_execution
from retrain.stack.session import Connection


def start_training(
    connection: Connection,
    models: list[dict[str, str]],
    *,
    as_of: datetime,
    name: str | None = None,
    echo: Callable[[str], None] = print,
    verbose_steps: bool = False,
    timeout_s: float = 3600,
) -> ExecutionResult:
    if connection.state_machine_arn is None:
        raise ConfigurationError("no training state machine: set RETRAIN_STATE_MACHINE_ARN")
    name = name or f"train-{time.strftime('%Y%m%dT%H%M%S')}"
    total = len(models)
    done = 0
    started = time.monotonic()

    def on_step(step: Step) -> None:
        nonlocal done
        if verbose_steps:
            echo(f"  {step}")
            return
        if step.kind == "TaskStateEntered" and step.state == "TrainModel":
            echo(f"  {_clock(started)} training {step.detail or ''}".rstrip())
        if step.kind == "PassStateExited" and (step.state == "ModelDone" or step.state.endswith("Failed")):
            done += 1
            echo(f"  {_clock(started)} [{done}/{total}] model finished ({step.state})")

    echo(f"execution {name}: {total} model(s), as of {as_of:%Y-%m-%d %H:%M} UTC")
    return run_execution(
        boto3.client("stepfunctions"),
        connection.state_machine_arn,
        name,
        {"models": models, "as_of": as_of.isoformat()},
        on_step=on_step,
        timeout_s=timeout_s,
    )


def _clock(started: float) -> str:
    return f"{time.monotonic() - started:6.1f}s"


def outcomes(result: ExecutionResult) -> list[ModelOutcome]:
    return [ModelOutcome.model_validate(item) for item in (result.output or {}).get("results", [])]


def render_summary(items: list[ModelOutcome]) -> str:
    header = (
        f"{'model':<20}{'status':<10}{'version':<10}{'classifier':<24}{'overall':>8}{'accuracy':>9}{'sharpe':>8}  why"
    )
    lines = [header, "-" * len(header)]
    for item in items:
        metrics = item.metrics or {}
        shown = f"v{item.version}" if item.version else "-"
        if item.status == "promoted" and item.previous_version:
            shown = f"v{item.previous_version}->v{item.version}"
        why = item.failure_message() if item.status == "failed" else (item.why or "")
        if item.status == "failed" and item.failed_step:
            why = f"in {item.failed_step}: {why}"
        lines.append(
            f"{item.symbol + ' ' + item.trend:<20}{item.status:<10}{shown:<10}{item.classifier or '-':<24}"
            f"{_num(metrics.get('overall_score')):>8}{_num(metrics.get('accuracy')):>9}{_num(metrics.get('sharpe')):>8}"
            f"  {why}"
        )
    return "\n".join(lines)


def _num(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "-"


def notification_text(output: dict[str, Any] | None) -> str:
    """The run's message as the operator got it (read back from the outbox), else its subject; "" if none."""
    notification = (output or {}).get("notification") or {}
    for uri in notification.get("delivered_to") or []:
        if uri.startswith("s3://"):
            bucket, key = uri.removeprefix("s3://").split("/", 1)
            try:
                return str(S3ObjectStore(bucket).get_json(key)["text"])
            except DataNotFoundError:
                break
    return str(notification.get("subject", ""))
