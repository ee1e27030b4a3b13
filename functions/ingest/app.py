"""Daily ingestion (EventBridge schedule): append the newest closed candles of every configured symbol.

The as-of time is the scheduled event's own time, so a retried or replayed invocation asks for the same
bars and appends nothing twice. Per-symbol failures are reported in the result and counted; they do
not fail the invocation (the other symbols' bars are stored), the ``SymbolsFailed`` metric alarms.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.functions import is_metrics_disabled
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from common.events import IngestEvent
from common.ingestion import SymbolIngestion, run_ingestion
from common.settings import get_settings

logger = Logger()
tracer = Tracer()
metrics = Metrics()


def _log_symbol(item: SymbolIngestion) -> None:
    details = item.to_dict()  # with the counts per reason ("issues") and each refused row ("rejections")
    if item.status == "failed":
        logger.error("symbol ingestion failed", extra=details)
    elif item.stale or item.rejected_rows:
        logger.warning("symbol ingested with findings", extra=details)
    else:
        logger.info("symbol ingested", extra=details)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=not is_metrics_disabled())  # its ColdStart ignores METRICS_DISABLED
@event_parser(model=IngestEvent)
def handler(event: IngestEvent, context: LambdaContext) -> dict[str, Any]:
    settings = get_settings()
    request = event.detail
    as_of = request.as_of or settings.as_of or event.time
    summary = run_ingestion(
        settings, symbols=request.symbols, interval=request.interval, as_of=as_of, progress=_log_symbol
    )
    metrics.add_metric(name="BarsAppended", unit=MetricUnit.Count, value=summary.appended)
    metrics.add_metric(name="RowsRejected", unit=MetricUnit.Count, value=summary.rejected_rows)
    metrics.add_metric(name="SymbolsFailed", unit=MetricUnit.Count, value=len(summary.failed))
    metrics.add_metric(name="SymbolsStale", unit=MetricUnit.Count, value=len(summary.stale))
    logger.info("ingestion finished", extra={"appended": summary.appended, "failed": len(summary.failed)})
    return summary.to_dict()
