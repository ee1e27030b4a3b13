"""Training step 3: load the registered challenger back, check it, compare it with the champion on the
same bars, move the ``champion``/``previous`` aliases. Returns the model's result for the run summary."""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from common.aws.observability import lambda_handler, logger, metrics
from common.aws.storage import S3ObjectStore
from common.core.settings import get_settings
from common.data.bar_store import OhlcvStore
from common.loop.events import PromoteModelEvent
from common.loop.training_steps import promote_model
from common.registry.mlflow_registry import Registry


@lambda_handler(PromoteModelEvent)
def handler(event: PromoteModelEvent, context: LambdaContext) -> dict[str, Any]:
    started = time.monotonic()
    settings = get_settings()
    trained = event.trained
    logger.append_keys(run_id=event.run_id, symbol=trained.symbol, trend=trained.trend)
    result = promote_model(
        settings,
        Registry(settings.tracking_uri),
        OhlcvStore(S3ObjectStore(settings.bucket)),
        trained=trained,
        as_of=event.as_of or settings.now(),
        interval=event.model_interval,
        progress=logger.info,
    )
    counted = {"promoted": "ModelsPromoted", "suspended": "ModelsSuspended"}.get(result.status, "ModelsRejected")
    metrics.add_metric(name=counted, unit=MetricUnit.Count, value=1)
    outcome = {
        "symbol": trained.symbol,
        "trend": trained.trend,
        "interval": event.model_interval or settings.interval,
        "reason": event.model.reason,
        "status": result.status,
        "why": result.why,
        "version": result.version,
        "previous_version": result.previous_version,
        "champion_version": result.champion_version,
        "classifier": trained.classifier,
        "metrics": {
            k: trained.metrics[k] for k in ("overall_score", "accuracy", "precision", "sharpe") if k in trained.metrics
        },
        "baseline_overall_score": trained.baseline_metrics.get("overall_score"),
        "comparison": result.comparison,
        "mlflow_run_id": trained.mlflow_run_id,
        "duration_s": round(trained.duration_s + time.monotonic() - started, 2),
    }
    logger.info("promotion decided", extra=outcome)
    return outcome
