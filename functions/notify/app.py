"""Last step of a training run: tell the operator what happened to every model of the run."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from common.events import NotifyEvent
from common.notification import OutboxNotifier, summarize_run
from common.settings import get_settings
from common.storage import S3ObjectStore

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=NotifyEvent)
def handler(event: NotifyEvent, context: LambdaContext) -> dict[str, Any]:
    settings = get_settings()
    notification = summarize_run(event.run_id, event.results, created_at=event.as_of or settings.now())
    delivered = [OutboxNotifier(S3ObjectStore(settings.bucket)).send(notification)]
    metrics.add_metric(name="NotificationsSent", unit=MetricUnit.Count, value=len(delivered))
    logger.info("notification sent", extra={"run_id": event.run_id, "delivered_to": delivered})
    return {"subject": notification.subject, "text": notification.text, "delivered_to": delivered}
