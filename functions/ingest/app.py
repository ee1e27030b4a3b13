"""Daily ingestion, the day state machine's first step: append the newest closed candles of every symbol.

The as-of time is the day's (or a manual event's own time), so a retried or replayed invocation asks for the
same bars and appends nothing twice. Per-symbol failures are reported in the result and counted; they do
not fail the invocation (the other symbols' bars are stored), the ``SymbolsFailed`` metric alarms.

It stops starting symbols before Lambda's deadline (the context's remaining time, less one symbol's worst
case and a margin to report): a vendor outage then ends in a result that names the symbols it did not reach
(``not_reached``, counted in ``SymbolsNotReached``) with its metrics flushed, instead of a killed invocation.
The result's ``ready`` lists the symbols whose newest closed bar is stored: what the day's check and
predictions may judge.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from common.aws.observability import lambda_handler, logger, metrics
from common.core.settings import get_settings
from common.data.ingestion import SymbolIngestion, run_ingestion
from common.loop.events import IngestEvent, daily_request, parse_daily_event

# Seconds kept beyond one symbol's worst case: its append to S3, the summary, the metrics' flush.
REPORT_MARGIN_S = 15.0


def _log_symbol(item: SymbolIngestion) -> None:
    details = item.to_dict()  # with the counts per reason ("issues") and each refused row ("rejections")
    if item.status == "failed":
        logger.error("symbol ingestion failed", extra=details)
    elif item.status == "not_reached":
        logger.error("symbol not reached before the deadline", extra=details)
    elif item.stale or item.rejected_rows:
        logger.warning("symbol ingested with findings", extra=details)
    else:
        logger.info("symbol ingested", extra=details)


@lambda_handler()
def handler(raw: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    event = parse_daily_event(raw, IngestEvent)
    settings = get_settings()
    request, as_of = daily_request(event, settings.as_of)
    summary = run_ingestion(
        settings,
        symbols=request.symbols,
        interval=request.interval,
        as_of=as_of,
        progress=_log_symbol,
        time_left_s=lambda: context.get_remaining_time_in_millis() / 1000,
        reserve_margin_s=REPORT_MARGIN_S,
    )
    metrics.add_metric(name="BarsAppended", unit=MetricUnit.Count, value=summary.appended)
    metrics.add_metric(name="RowsRejected", unit=MetricUnit.Count, value=summary.rejected_rows)
    metrics.add_metric(name="SymbolsFailed", unit=MetricUnit.Count, value=len(summary.failed))
    metrics.add_metric(name="SymbolsStale", unit=MetricUnit.Count, value=len(summary.stale))
    metrics.add_metric(name="SymbolsNotReached", unit=MetricUnit.Count, value=len(summary.not_reached))
    logger.info(
        "ingestion finished",
        extra={
            "appended": summary.appended,
            "failed": len(summary.failed),
            "not_reached": [item.symbol for item in summary.not_reached],
        },
    )
    return summary.to_dict()
