"""Daily trigger check: schedule, performance and drift triggers for every model, a decision record per
model per day, and one training execution for the models that need it.

As a step of the day state machine (a ``DayStep`` event) it only decides: the result's ``training`` names
the execution and its input, and the day starts it and waits for it. Invoked on its own (an EventBridge-shaped
event, by hand) it starts that execution itself when RETRAIN_STATE_MACHINE_ARN is set. The as-of time is the
day's (or the event's own time) and the execution name is derived from its day, so a retried, repeated or
concurrent invocation on the same day starts nothing new.

A model whose check fails (whatever it raises: its data, MLflow or S3 unreachable for it) is logged with its
name, recorded with status ``error``, counted (``CheckErrors``, which alarms) and listed in the result; the
other models are checked and trained all the same, and the invocation succeeds. Raising at the end would add
nothing but harm: Lambda would retry the whole check twice and dead-letter it, while the day's execution,
already started for the other models under the day's name, could not take in a model a retry recovers.
What fails the invocation (and the ``TriggerCheckerErrorsAlarm``) is a failure of the check as a whole, such
as starting the training execution.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.metrics.functions import is_metrics_disabled
from aws_lambda_powertools.utilities.typing import LambdaContext

from common.aws.observability import lambda_handler, logger, metrics
from common.aws.storage import S3ObjectStore
from common.aws.workflow import TrainingWorkflow
from common.core.settings import get_settings, model_stem
from common.loop.check import run_check
from common.loop.events import CheckEvent, DayStep, daily_request, parse_daily_event
from common.registry.mlflow_registry import Registry

METRIC_NAMES = {"schedule": "ChampionAgeDays", "performance": "LiveAccuracy", "drift": "MaxPSI"}
TRIGGER_KINDS = ("schedule", "performance", "drift", "no_model")


@lambda_handler()
def handler(raw: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    event = parse_daily_event(raw, CheckEvent)
    settings = get_settings()
    request, as_of = daily_request(event, settings.as_of)
    # A step of the day: the day starts the training and waits for it. Invoked alone: start it here.
    starts_training = not isinstance(event, DayStep) and settings.state_machine_arn
    workflow = TrainingWorkflow(settings.state_machine_arn) if starts_training else None
    summary = run_check(
        settings,
        Registry(settings.tracking_uri),
        S3ObjectStore(settings.bucket),
        as_of=as_of,
        start_execution=workflow.start if workflow else None,
        symbols=tuple(request.symbols) if request.symbols else None,
        interval=request.interval,
        progress=logger.info,
        on_error=_log_model_error,
    )
    # powertools' single_metric prints even when POWERTOOLS_METRICS_DISABLED is set; Metrics honours it.
    per_model = not is_metrics_disabled()
    for decision in summary.decisions:
        for result in decision.triggers:
            # Without a champion the schedule's value is the wait since the last attempt, not an age.
            is_age = result.trigger != "schedule" or decision.champion_version is not None
            if per_model and is_age and result.value is not None:
                # One metric per model: a per-model dimension needs its own EMF document.
                with single_metric(
                    name=METRIC_NAMES[result.trigger], unit=MetricUnit.Count, value=result.value
                ) as metric:
                    metric.add_dimension(
                        name="model", value=model_stem(decision.symbol, decision.trend, decision.interval)
                    )
    if per_model:
        # Triggers fired by kind ("no_model": a pair without a champion), zeros too: a kind that stops firing
        # shows as 0 on the dashboard, not as a gap.
        fired = Counter(reason for decision in summary.decisions for reason in decision.reasons)
        for kind in TRIGGER_KINDS:
            with single_metric(name="TriggersFired", unit=MetricUnit.Count, value=fired[kind]) as metric:
                metric.add_dimension(name="trigger", value=kind)
    metrics.add_metric(name="ModelsToRetrain", unit=MetricUnit.Count, value=len(summary.to_retrain))
    metrics.add_metric(name="CheckErrors", unit=MetricUnit.Count, value=len(summary.errors))
    if summary.errors:
        logger.error("check finished with failed models", extra={"failed_models": sorted(summary.errors)})
    logger.info("check finished", extra=summary.to_dict())
    return summary.to_dict()


def _log_model_error(model: str, error: Exception) -> None:
    logger.error(
        "trigger check failed for a model",
        extra={"model": model, "error_type": type(error).__name__, "error": str(error)},
        exc_info=error,
    )
