"""``retrain demo``: the retraining loop on the embedded stack and the sample data.

At this stage of the project the loop is one training execution: the real state machine from infra/,
run by moto's interpreter, calling the real handlers, over the sample OHLCV. Later stages replay history
day by day and add triggers, training, promotion and the hot-swapping predictor.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3

from common.errors import ConfigurationError
from common.keys import ohlcv_key
from common.notification import ModelOutcome
from common.settings import TRENDS, load_settings
from common.storage import S3ObjectStore
from retrain.executions import ExecutionResult, run_execution
from retrain.stack.session import Connection

DEFAULT_DEMO_SYMBOLS = ("BTC", "ETH")
SAMPLE_DATA_END = datetime(2025, 2, 20, tzinfo=UTC)


@dataclass(frozen=True)
class DemoResult:
    execution: ExecutionResult
    outcomes: list[ModelOutcome]
    notification_text: str | None


def run_demo(
    connection: Connection,
    *,
    symbols: tuple[str, ...] = DEFAULT_DEMO_SYMBOLS,
    as_of: datetime = SAMPLE_DATA_END,
    execution_name: str | None = None,
    echo: Any = print,
) -> DemoResult:
    if connection.state_machine_arn is None:
        raise ConfigurationError("no training state machine: set RETRAIN_STATE_MACHINE_ARN")
    store = S3ObjectStore(connection.bucket)
    interval = load_settings().interval
    missing = [s for s in symbols if not store.exists(ohlcv_key(s, interval))]
    if missing:
        raise ConfigurationError(
            f"unknown symbol(s) {missing}: no {interval} OHLCV at s3://{connection.bucket}/{ohlcv_key(missing[0], interval)}"
        )
    sfn = boto3.client("stepfunctions")
    models = [{"symbol": s, "trend": t, "reason": "demo"} for s in symbols for t in TRENDS]
    name = execution_name or f"demo-{int(time.time())}"
    echo(f"starting execution {name}: {len(models)} models ({', '.join(symbols)} x {', '.join(TRENDS)}), "
         f"as of {as_of:%Y-%m-%d}")  # fmt: skip
    result = run_execution(
        sfn,
        connection.state_machine_arn,
        name,
        {"models": models, "as_of": as_of.isoformat()},
        on_step=lambda step: echo(f"  {step}"),
    )
    output = result.output or {}
    outcomes = [ModelOutcome.model_validate(item) for item in output.get("results", [])]
    notification_text = None
    delivered = (output.get("notification") or {}).get("delivered_to") or []
    if delivered:
        bucket, key = delivered[0].removeprefix("s3://").split("/", 1)
        notification_text = S3ObjectStore(bucket).get_json(key)["text"]
    return DemoResult(result, outcomes, notification_text)


def render_outcomes(outcomes: list[ModelOutcome]) -> str:
    header = f"{'model':<22} {'status':<9} {'bars':>6} {'last closed bar':<12} detail"
    lines = [header, "-" * len(header)]
    for outcome in outcomes:
        extra = outcome.model_extra or {}
        last = str(extra.get("last_closed_bar", ""))[:10]
        detail = outcome.failure_message() if outcome.status == "failed" else extra.get("dataset_key", "")
        lines.append(
            f"{outcome.symbol + ' ' + outcome.trend:<22} {outcome.status:<9} {extra.get('bars', ''):>6} {last:<12} {detail}"
        )
    return "\n".join(lines)
