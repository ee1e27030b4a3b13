"""Daily batch predictions, the day state machine's last step (after ingestion and the day's trainings):
every champion's prediction for the last closed bar goes to the prediction log, then the outcomes that came
due are filled in.

The as-of time is the day's (or a manual event's own time), so a retried or repeated invocation asks about the same bar and
finds its records already logged: it writes nothing new and changes nothing. Per-model failures (whatever
one model raises: its bars, its artifact, MLflow or S3 failing for it) are logged with the model's name, in
the result and counted (``ModelsFailed`` alarms); they do not fail the invocation, the other models are
logged. Failing it would make Lambda retry the whole run twice and then dead-letter it: a persistent
problem of one model (a broken artifact) would do so every day, and a transient one costs one record of
one bar, which the performance trigger does without. The ``ModelsFailed`` alarm fires on the first.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from common.aws.observability import lambda_handler, logger, metrics
from common.aws.storage import S3ObjectStore
from common.core.settings import get_settings, model_label
from common.loop.events import BatchPredictEvent, daily_request, parse_daily_event
from common.registry.mlflow_registry import Registry
from common.serving.batch_predict import run_batch


@lambda_handler()
def handler(raw: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    event = parse_daily_event(raw, BatchPredictEvent)
    settings = get_settings()
    request, as_of = daily_request(event, settings.as_of)
    run = run_batch(
        settings,
        Registry(settings.tracking_uri),
        S3ObjectStore(settings.bucket),
        as_of=as_of,
        symbols=tuple(request.symbols) if request.symbols else None,
        interval=request.interval,
        progress=logger.info,
    )
    predictions = run.predictions
    metrics.add_metric(name="PredictionsWritten", unit=MetricUnit.Count, value=predictions.count("written"))
    metrics.add_metric(name="PredictionsExisting", unit=MetricUnit.Count, value=predictions.count("existing"))
    metrics.add_metric(name="OutcomesResolved", unit=MetricUnit.Count, value=len(run.outcomes.resolved))
    metrics.add_metric(name="ModelsFailed", unit=MetricUnit.Count, value=len(run.failed_models))
    result = run.to_dict()
    for failed in predictions.failed:
        logger.error(
            "batch prediction failed for a model",
            extra={
                "model": model_label(failed.symbol, failed.trend, failed.interval),
                "version": failed.version,
                "error": failed.reason,
            },
        )
    for model, error in run.outcomes.errors.items():
        logger.error("resolving outcomes failed for a model", extra={"model": model, "error": error})
    if run.failed_models:
        logger.error("batch predictions finished with failures", extra={"failed_models": run.failed_models})
    logger.info("batch predictions finished", extra=result)
    return result
