"""The backtest state machine's steps (infra/backtest.asl.json), over :mod:`common.backtest.cloud`.

``run_model_handler``: one Map iteration, one (symbol, trend) replayed under every policy by
:func:`common.backtest.replay.backtest_model` (the unit ``retrain backtest`` runs on its process pool), its result written
to ``backtests/{run_id}/units/``. ``summarize_handler``: the report of the run's units under
``backtests/{run_id}/report/``. A retried invocation computes the same JSON and writes the same keys.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from common.aws.observability import lambda_handler, logger, metrics
from common.aws.storage import S3ObjectStore
from common.backtest.cloud import run_unit, summarize_units
from common.core.settings import get_settings
from common.loop.events import BacktestModelEvent, BacktestSummarizeEvent


@lambda_handler(BacktestModelEvent)
def run_model_handler(event: BacktestModelEvent, context: LambdaContext) -> dict[str, Any]:
    settings = get_settings()
    logger.append_keys(run_id=event.run_id, symbol=event.symbol, trend=event.trend)
    result = run_unit(S3ObjectStore(settings.bucket), event, progress=logger.info)
    metrics.add_metric(name="BacktestTrainings", unit=MetricUnit.Count, value=sum(result.trainings.values()))
    metrics.add_metric(name="BacktestModelSeconds", unit=MetricUnit.Seconds, value=result.wall_s or 0.0)
    summary = result.model_dump(mode="json")
    logger.info("backtest unit finished", extra=summary)
    return summary


@lambda_handler(BacktestSummarizeEvent)
def summarize_handler(event: BacktestSummarizeEvent, context: LambdaContext) -> dict[str, Any]:
    settings = get_settings()
    logger.append_keys(run_id=event.run_id)
    # The wall clock, not the settings' as-of: it times the run (timings.json), it decides nothing.
    report = summarize_units(S3ObjectStore(settings.bucket), event, now=datetime.now(UTC))
    metrics.add_metric(name="BacktestModelsDone", unit=MetricUnit.Count, value=len(report.models))
    metrics.add_metric(name="BacktestModelsFailed", unit=MetricUnit.Count, value=len(report.failed_models))
    if report.failed_models:
        logger.error("backtest report written without some models", extra={"failed_models": report.failed_models})
    summary = report.to_dict()
    logger.info("backtest report written", extra=summary)
    return summary
