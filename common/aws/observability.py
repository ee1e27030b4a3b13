"""The Lambda handlers' powertools setup, in one place: every handler logs, traces and publishes metrics the
same way, and a new function gets it by one decorator.

- :data:`logger`: JSON lines with the Lambda context (request id, cold start, function) in each.
- :data:`metrics`: CloudWatch embedded metrics, flushed when the invocation ends. Under
  ``POWERTOOLS_METRICS_DISABLED`` powertools neither prints nor clears them, so across warm invocations (and
  the local stack's hundreds in one process) they would pile up until it prints a metric's set at its 100th
  value anyway: they are dropped when the invocation ends instead. The ``ColdStart`` metric, which powertools
  emits even when disabled, is captured only when metrics are enabled. The namespace and service are read
  from the environment at each invocation, like every other setting, not frozen at import by whichever
  function imported this module first (the local stack runs every function in one process).
- The tracer (X-Ray) is made on first use: the predictor, whose lean image skips the X-Ray SDK, never
  makes one.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

logger = Logger()
metrics = Metrics()

Handler = Callable[[Any, Any], Any]


@functools.cache
def tracer() -> Any:
    from aws_lambda_powertools import Tracer

    return Tracer()


def lambda_handler(model: type[Any] | None = None) -> Callable[[Handler], Handler]:
    """Decorate a handler: its event parsed into ``model`` when given (a malformed event fails the invocation
    with the model's validation errors), an X-Ray segment, the metrics flushed, the context in every log line."""

    # the parser is imported here, not at the top: the predictor's cold start (http_handler) never needs it
    from aws_lambda_powertools.utilities.parser import event_parser

    def wrap(function: Handler) -> Handler:
        handler = function if model is None else event_parser(function, model=model)
        handler = metrics.log_metrics(handler, capture_cold_start_metric=not is_metrics_disabled())
        handler = tracer().capture_lambda_handler(handler)
        return _per_invocation(logger.inject_lambda_context(handler))

    return wrap


def http_handler(app: Handler) -> Handler:
    """An HTTP adapter (Mangum) as a handler: logs with the context and metrics flushed, no tracer."""
    return _per_invocation(logger.inject_lambda_context(metrics.log_metrics(app)))


def _per_invocation(handler: Handler) -> Handler:
    @functools.wraps(handler)
    def invoke(event: Any, context: Any) -> Any:
        metrics.provider.namespace = os.getenv("POWERTOOLS_METRICS_NAMESPACE") or metrics.provider.namespace
        metrics.provider.service = os.getenv("POWERTOOLS_SERVICE_NAME") or metrics.provider.service
        try:
            return handler(event, context)
        finally:
            if is_metrics_disabled():
                metrics.clear_metrics()

    return invoke
