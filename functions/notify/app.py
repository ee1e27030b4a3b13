"""Last step of a training run: tell the operator what happened to every model of the run.

The outbox (S3) is written first; Telegram follows when configured. A channel that fails is reported in
the result and counted (``NotificationsFailed``), never raised: the run's outcome does not depend on
whether the operator could be told about it. Invoked again for the same run (a retry, a redrive), it sends
Telegram only the chunks of the message not delivered yet (``common.notify.notification.SentChunks``).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from common.aws.observability import lambda_handler, logger, metrics
from common.aws.storage import S3ObjectStore
from common.core.settings import get_settings
from common.loop.events import NotifyEvent
from common.notify.notification import deliver, notifiers_from_settings, summarize_run

if TYPE_CHECKING:
    import httpx


TELEGRAM_TIMEOUT_S = 10.0


@functools.cache
def telegram_client() -> httpx.Client:
    """One HTTP client per warm Lambda (connections are reused); tests replace this factory."""
    import httpx

    return httpx.Client(timeout=TELEGRAM_TIMEOUT_S)


@lambda_handler(NotifyEvent)
def handler(event: NotifyEvent, context: LambdaContext) -> dict[str, Any]:
    settings = get_settings()
    logger.append_keys(run_id=event.run_id)
    notification = summarize_run(event.run_id, event.results, created_at=event.as_of or settings.now())
    client = telegram_client() if "telegram" in settings.notify_channels else None
    notifiers = notifiers_from_settings(settings, store=S3ObjectStore(settings.bucket), client=client)
    report = deliver(notification, notifiers, log=logger)
    metrics.add_metric(name="NotificationsSent", unit=MetricUnit.Count, value=len(report.delivered_to))
    metrics.add_metric(name="NotificationsFailed", unit=MetricUnit.Count, value=len(report.failed))
    logger.info(
        "notification finished",
        extra={"subject": notification.subject, "delivered_to": report.delivered_to, "failed": report.failed},
    )
    return {
        "subject": notification.subject,
        "text": notification.text,
        "delivered_to": report.delivered_to,
        "failed": report.failed,
    }
