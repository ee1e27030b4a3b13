"""A handler that publishes one metric per invocation, as the functions do (tests/unit/test_observability.py)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from common.aws.observability import lambda_handler, metrics


@lambda_handler()
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    metrics.add_metric(name="Invocations", unit=MetricUnit.Count, value=1)
    return {"ok": True}
