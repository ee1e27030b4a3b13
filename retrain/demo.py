"""``retrain demo``: the retraining loop on the embedded stack and the sample data.

At this stage of the project the loop is one training execution: the real state machine from infra/,
run by moto's interpreter, calling the real handlers (dataset, walk-forward zoo, registry, promotion,
notification) over the sample OHLCV and a real MLflow server. Later stages replay history day by day
and add the triggers and the hot-swapping predictor.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from common.errors import ConfigurationError
from common.keys import ohlcv_key
from common.notification import ModelOutcome
from common.settings import TRENDS, load_settings
from common.storage import S3ObjectStore
from retrain.executions import ExecutionResult
from retrain.stack.session import Connection
from retrain.train import notification_text, render_summary, start_training

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
    models = [{"symbol": s, "trend": t, "reason": "demo"} for s in symbols for t in TRENDS]
    result = start_training(
        connection, models, as_of=as_of, name=execution_name or f"demo-{int(time.time())}", echo=echo
    )
    output = result.output or {}
    outcomes = [ModelOutcome.model_validate(item) for item in output.get("results", [])]
    return DemoResult(result, outcomes, notification_text(output) or None)


def render_outcomes(items: list[ModelOutcome]) -> str:
    return render_summary(items)
