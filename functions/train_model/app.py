"""Training step 2: walk-forward evaluation of the zoo, MLflow logging, registration of the best
candidate that passes the gate, on exactly the bars PrepareDataset's manifest pinned (its object version
and bar range, not the newest object). Idempotent per execution (a retried task reuses the recorded result)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from common.aws.observability import lambda_handler, logger, metrics
from common.aws.storage import S3ObjectStore
from common.core.settings import get_settings
from common.data.bar_store import OhlcvStore
from common.data.datasets import DatasetManifest
from common.loop.events import TrainModelEvent
from common.loop.training_steps import train_model
from common.registry.mlflow_registry import Registry


@lambda_handler(TrainModelEvent)
def handler(event: TrainModelEvent, context: LambdaContext) -> dict[str, Any]:
    settings = get_settings()
    symbol, trend = event.model.symbol, event.model.trend
    logger.append_keys(run_id=event.run_id, symbol=symbol, trend=trend)
    dataset = DatasetManifest.model_validate(event.dataset)
    result = train_model(
        settings,
        Registry(settings.tracking_uri),
        OhlcvStore(S3ObjectStore(settings.bucket)),
        execution_id=event.run_id,
        symbol=symbol,
        trend=trend,
        reason=event.model.reason,
        as_of=event.as_of or dataset.as_of,
        interval=event.model_interval,
        progress=logger.info,
        dataset=dataset,
    )
    metrics.add_metric(name="ModelsTrained", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="TrainingSeconds", unit=MetricUnit.Seconds, value=result.duration_s)
    if result.status == "registered":
        metrics.add_metric(name="VersionsRegistered", unit=MetricUnit.Count, value=1)
    logger.info("training finished", extra=result.model_dump(exclude={"candidates"}))
    return result.model_dump(mode="json")
