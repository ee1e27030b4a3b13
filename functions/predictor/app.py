"""The prediction API on Lambda: :mod:`common.serving.api`'s FastAPI app through Mangum (HTTP API payload v2).

Logs are JSON at the levels the template's ``LoggingConfig`` sets: Lambda's runtime formats the standard-library
lines of ``common`` (a hot swap at INFO, a refused load at ERROR), powertools this adapter's. Each swap and refused
load is also a metric (``ModelSwaps``, ``ModelLoadsRejected``), published with the invocation that caused it.
"""

from __future__ import annotations

from aws_lambda_powertools.metrics import MetricUnit
from mangum import Mangum

from common.aws.observability import http_handler, metrics
from common.serving.api import create_app, process_service
from common.serving.model_cache import CacheEvent

METRIC_OF_EVENT = {"swap": "ModelSwaps", "rejected": "ModelLoadsRejected"}


def count_cache_event(event: CacheEvent) -> None:
    metrics.add_metric(name=METRIC_OF_EVENT[event.kind], unit=MetricUnit.Count, value=1)


default_service = process_service(on_event=count_cache_event)
app = create_app(default_service)
# Most requests swap nothing: powertools then publishes no metric (and warns), which is not an error.
handler = http_handler(Mangum(app, lifespan="off", api_gateway_base_path=None))
