"""Training step 1: read the model's OHLCV from S3, validate it (closed bars at the as-of time only),
and write the dataset manifest (range, findings, label balance, source version) for the later steps."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from common.bar_store import OhlcvStore
from common.datasets import describe_dataset
from common.events import PrepareDatasetEvent
from common.keys import dataset_manifest_key
from common.settings import get_settings
from common.storage import S3ObjectStore

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=PrepareDatasetEvent)
def handler(event: PrepareDatasetEvent, context: LambdaContext) -> dict[str, Any]:
    settings = get_settings()
    store = S3ObjectStore(settings.bucket)
    interval = event.interval or settings.interval
    as_of = event.as_of or settings.now()
    symbol, trend = event.model.symbol, event.model.trend
    logger.append_keys(run_id=event.run_id, symbol=symbol, trend=trend)

    stored = OhlcvStore(store).read(symbol, interval)
    manifest = describe_dataset(
        stored.bars,
        symbol=symbol,
        trend=trend,
        interval=interval,
        as_of=as_of,
        prediction_window=settings.prediction_window,
        target_pct=settings.target_pct(trend),
        source_key=stored.key,
        source_version=stored.version_id,
        gap_policy=settings.gap_policy,
        stale_after_bars=settings.stale_after_bars,
    )
    key = dataset_manifest_key(event.run_id, symbol, trend)
    store.put_json(key, manifest.model_dump(mode="json"))
    metrics.add_metric(name="DatasetBars", unit=MetricUnit.Count, value=manifest.bars)
    logger.info("dataset prepared", extra={"manifest_key": key, "bars": manifest.bars})
    return {"manifest_key": key, **manifest.model_dump(mode="json")}
