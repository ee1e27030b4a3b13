"""Training step 1: read the model's OHLCV from S3, validate it (closed bars at the as-of time only),
and write the dataset manifest (range, findings, label balance, source version) for the later steps."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from common.aws.observability import lambda_handler, logger, metrics
from common.aws.storage import S3ObjectStore
from common.core.settings import get_settings
from common.data.datasets import prepare_dataset
from common.loop.events import PrepareDatasetEvent


@lambda_handler(PrepareDatasetEvent)
def handler(event: PrepareDatasetEvent, context: LambdaContext) -> dict[str, Any]:
    settings = get_settings()
    symbol, trend = event.model.symbol, event.model.trend
    logger.append_keys(run_id=event.run_id, symbol=symbol, trend=trend)
    key, manifest = prepare_dataset(
        settings,
        S3ObjectStore(settings.bucket),
        run_id=event.run_id,
        symbol=symbol,
        trend=trend,
        interval=event.model_interval or settings.interval,
        as_of=event.as_of or settings.now(),
    )
    metrics.add_metric(name="DatasetBars", unit=MetricUnit.Count, value=manifest.bars)
    logger.info("dataset prepared", extra={"manifest_key": key, "bars": manifest.bars})
    return {"manifest_key": key, **manifest.model_dump(mode="json")}
