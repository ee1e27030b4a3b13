"""The daily check: every configured (symbol, trend) through the three triggers, one decision record per
model per day in S3 (with its PSI chart), and at most one training execution per day.

The execution name is derived from the day (``trigger-YYYY-MM-DD``): Step Functions refuses a second
execution with the same name, so a repeated or concurrent invocation on the same day starts nothing new.
The summary's ``training`` is that execution's name and input; the day state machine starts it itself (and
waits for it), a standalone check (``retrain check``, a manual invocation) through ``start_execution``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from common.aws.storage import S3ObjectStore
from common.core.errors import ConcurrentWriteError
from common.core.keys import decision_key
from common.core.settings import TRENDS, Settings, experiment_name, model_label, registered_model_name
from common.data.bar_store import OhlcvStore
from common.data.ohlcv import interval_length
from common.data.prediction_log import live_accuracy_counts, read_records, window_start
from common.loop.triggers import (
    Decision,
    TriggerResult,
    cooldown,
    off,
    performance_trigger,
    schedule_trigger,
    suspended_trigger,
)
from common.registry.mlflow_registry import CHAMPION, Registry, VersionInfo
from common.registry.promotion import decode_tags, suspension_of


class AlreadyDecided(Exception):
    """The model's check for this time cannot be made again (see :func:`check_model`)."""


StartExecution = Callable[[str, dict[str, Any]], bool]  # (name, input) -> started (False: already ran)
OnError = Callable[[str, Exception], None]  # (model, what it raised): the handler logs it with the traceback


def _ignore(_model: str, _error: Exception) -> None:
    pass


def error_text(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"


def execution_name(day: datetime, interval: str = "1d") -> str:
    """The training execution a check starts: one per day for daily models, one per hour for hourly ones."""
    return f"trigger-{day:%Y-%m-%d}" if interval == "1d" else f"trigger-{interval}-{day:%Y-%m-%dT%H%M}"


@dataclass
class CheckSummary:
    as_of: datetime
    decisions: list[Decision] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # model -> why it was not checked again
    execution: str | None = None
    started: bool = False
    drift: dict[str, dict[str, Any]] = field(default_factory=dict)  # model -> drift report (to_dict)
    training: dict[str, Any] | None = None  # {"name", "input"} of the day's training execution, if any

    @property
    def to_retrain(self) -> list[Decision]:
        return [d for d in self.decisions if d.retrain]

    def to_dict(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of.isoformat(),
            "execution": self.execution,
            "started": self.started,
            "retrain": [f"{d.symbol} {d.trend}" for d in self.to_retrain],
            "decisions": [d.to_dict() for d in self.decisions],
            "errors": self.errors,
            "failed_models": len(self.errors),
            "skipped": self.skipped,
            "training": self.training,
        }

    def render(self) -> str:
        header = f"{'model':<20}{'champion':<10}{'schedule':<12}{'performance':<20}{'drift':<22}retrain"
        lines = [header, "-" * len(header)]
        for d in self.decisions:
            by = {t.trigger: t for t in d.triggers}
            lines.append(
                f"{d.symbol + ' ' + d.trend:<20}{('v' + d.champion_version) if d.champion_version else '-':<10}"
                f"{_cell(by.get('schedule')):<12}{_cell(by.get('performance')):<20}{_cell(by.get('drift')):<22}"
                f"{d.reason if d.retrain else ('held: ' + d.reason) if d.held_back else '-'}"
            )
        for d in self.decisions:  # the live record behind the performance verdict, in words
            performance = next((t for t in d.triggers if t.trigger == "performance"), None)
            if performance is not None and "evidence" in performance.extra:
                lines.append(f"{d.symbol + ' ' + d.trend:<20}evidence: {performance.extra['evidence']['text']}")
        for model, error in self.errors.items():
            lines.append(f"{model:<20}error: {error}")
        for model, why in self.skipped.items():
            lines.append(f"{model:<20}not checked again: {why}")
        started = "started" if self.started else "already ran today: nothing new started"
        tail = f"{len(self.to_retrain)} of {len(self.decisions)} model(s) to retrain"
        if self.errors:
            tail += f"; {len(self.errors)} failed (see error lines)"
        if self.execution:
            tail += f"; execution {self.execution} {started}"
        lines.append(tail)
        return "\n".join(lines)


def _cell(result: TriggerResult | None) -> str:
    if result is None:
        return "-"
    if result.value is None:
        return result.status
    return f"{result.status} {result.value:.3g}"


def check_model(
    settings: Settings,
    registry: Registry,
    bars: OhlcvStore,
    objects: S3ObjectStore,
    *,
    symbol: str,
    trend: str,
    as_of: datetime,
    interval: str,
) -> tuple[Decision, dict[str, Any] | None]:
    name = registered_model_name(symbol, trend, interval)
    champion = registry.version_by_alias(name, CHAMPION)
    tags = decode_tags(champion.tags) if champion else {}
    trained = _trained_at(champion, tags) if champion else None
    if trained is not None and trained >= as_of:
        # This day's own check led to this champion, or the day is in the past: what was decided then
        # (with the champion of then) stands, and is not overwritten with today's registry.
        raise AlreadyDecided(
            f"champion v{champion.version} was trained as of {trained:%Y-%m-%d %H:%M}, not before this check"
        )
    last_attempt = registry.last_training(experiment_name(symbol, trend, interval), before=as_of)
    on = settings.triggers
    max_age = settings.max_model_age_days if "schedule" in on else None
    suspended = suspension_of(champion.tags) if champion else None
    if champion is not None and suspended is not None:
        # Out of service: it makes no predictions to judge; what it needs is a replacement.
        results = [
            suspended_trigger(champion.version, suspended.text(), as_of, last_attempt, settings.no_model_retry_days)
        ]
    else:
        results = [schedule_trigger(trained, as_of, max_age, last_attempt, settings.no_model_retry_days)]
    drift_report = None
    if champion is not None and suspended is None:
        if "performance" in on and settings.perf_rule == "evidence":
            results.append(_evidence(settings, objects, champion, symbol, trend, as_of, interval))
        elif "performance" in on:
            horizon = int(tags.get("prediction_window", 0))
            results.append(_performance(settings, objects, symbol, trend, as_of, horizon, interval))
        else:
            results.append(off("performance"))
        if "drift" in on:
            drift_result, drift_report = _drift(settings, registry, bars, champion, tags, symbol, as_of, interval)
            results.append(drift_result)
        else:
            results.append(off("drift"))
    decision = Decision(
        symbol=symbol,
        trend=trend,
        day=f"{as_of:%Y-%m-%d}",
        as_of=as_of.isoformat(),
        champion_version=champion.version if champion else None,
        triggers=tuple(results),
        held_back=cooldown(last_attempt, as_of, settings.cooldown_days)
        if any(result.fired for result in results)
        else None,
        interval=interval,
    )
    return decision, drift_report


def _trained_at(champion: VersionInfo, tags: dict[str, Any]) -> datetime | None:
    """When the champion was trained, on the data clock (replays judge age against their as-of time):
    its training as-of tag, else its last training bar, else (older versions) the registry's wall clock."""
    for text in (tags.get("trained_as_of"), (tags.get("data_range") or {}).get("last")):
        if text:
            return datetime.fromisoformat(str(text))
    return champion.created_at


def _performance(
    settings: Settings,
    objects: S3ObjectStore,
    symbol: str,
    trend: str,
    as_of: datetime,
    horizon_bars: int,
    interval: str,
) -> TriggerResult:
    since = window_start(as_of, settings.perf_window_days)
    # A prediction resolves a horizon after its bar: read far enough back to see what resolved in the window.
    read_from = since - (horizon_bars + 1) * interval_length(interval)
    records = read_records(objects, symbol, trend, since=read_from, until=as_of, interval=interval)
    in_window = [r for r in records if r.resolved_at is not None and since <= r.resolved_at <= as_of]
    correct, total = live_accuracy_counts(in_window)
    return performance_trigger(
        correct,
        total,
        threshold=settings.perf_accuracy_threshold,
        min_predictions=settings.perf_min_predictions,
        alpha=settings.perf_alpha,
        window_days=settings.perf_window_days,
    )


def _evidence(
    settings: Settings,
    objects: S3ObjectStore,
    champion: VersionInfo,
    symbol: str,
    trend: str,
    as_of: datetime,
    interval: str,
) -> TriggerResult:
    """The evidence rule: fires when the champion's live record since it went live is credibly worse than
    promised, than the naive baseline, or than not trading (:mod:`common.loop.live_record`)."""
    from common.loop.live_record import live_evidence

    evidence = live_evidence(settings, objects, champion, symbol=symbol, trend=trend, as_of=as_of, interval=interval)
    extra = {"evidence": evidence.to_dict()}
    if not evidence.enough:
        return TriggerResult("performance", "insufficient_data", evidence.text(), evidence.live_accuracy, None, extra)
    if evidence.worse_than_not_trading or evidence.below_promise:
        why = "worse than not trading" if evidence.worse_than_not_trading else "below its promise"
        return TriggerResult("performance", "fired", f"{why}: {evidence.text()}", evidence.live_accuracy, None, extra)
    return TriggerResult("performance", "ok", evidence.text(), evidence.live_accuracy, None, extra)


def _drift(
    settings: Settings,
    registry: Registry,
    bars: OhlcvStore,
    champion: VersionInfo,
    tags: dict[str, Any],
    symbol: str,
    as_of: datetime,
    interval: str,
) -> tuple[TriggerResult, dict[str, Any] | None]:
    from common.data.features import compute_features
    from common.loop.drift import check_drift
    from common.loop.drift_reference import DriftReference

    uri = str(tags.get("drift_reference") or "")
    if not uri.startswith("runs:/"):
        return TriggerResult("drift", "not_checked", f"v{champion.version} has no drift reference"), None
    run_id, path = uri.removeprefix("runs:/").split("/", 1)
    reference = DriftReference.from_dict(registry.load_json_artifact(run_id, path))
    loaded = bars.load(symbol, interval, as_of=as_of, gap_policy=settings.gap_policy)
    features = compute_features(loaded.bars)  # the whole history, as training computed them
    current = features.tail(settings.drift_window_bars)
    report = check_drift(reference, current, settings)
    return report.trigger_result(), report.to_dict()


def run_check(
    settings: Settings,
    registry: Registry,
    objects: S3ObjectStore,
    *,
    as_of: datetime,
    start_execution: StartExecution | None,
    symbols: tuple[str, ...] | None = None,
    interval: str | None = None,
    progress: Callable[[str], None] = lambda _: None,
    on_error: OnError = _ignore,
) -> CheckSummary:
    """Check every model of the pool on ``interval`` (default: the daily ones, or all models of the configured
    interval when the pool has only that); whatever one model's check raises (its data, its drift reference, MLflow or S3
    unreachable for it) is recorded for that model (``errors``, a decision record with status ``error``,
    ``on_error``) and the others are checked all the same."""
    interval = interval or settings.interval
    model_settings = settings.for_interval(interval)  # type: ignore[arg-type]
    bars = OhlcvStore(objects)
    summary = CheckSummary(as_of=as_of)
    for symbol in symbols or settings.symbols_on(interval):
        for trend in TRENDS:
            model = model_label(symbol, trend, interval)
            try:
                decision, drift = check_model(
                    model_settings, registry, bars, objects, symbol=symbol, trend=trend, as_of=as_of, interval=interval
                )
            except AlreadyDecided as exc:
                summary.skipped[model] = str(exc)
                progress(f"{model}: not checked again ({exc})")
                continue
            except Exception as exc:  # one model's failure, of whatever kind, never stops the others
                summary.errors[model] = error_text(exc)
                on_error(model, exc)
                progress(f"{model}: error: {summary.errors[model]}")
                _record_error(objects, symbol, trend, interval, as_of, exc, on_error)
                continue
            summary.decisions.append(decision)
            record = decision.to_dict()
            try:
                if drift is not None:
                    record["drift"] = drift
                    summary.drift[model] = drift
                    _write_psi_chart(objects, decision, drift)
                objects.put_json(decision_key(symbol, trend, as_of, interval=interval), record)
            except Exception as exc:  # the decision stands (and is acted on); that it went unrecorded is an error
                summary.errors[model] = f"decision not recorded: {error_text(exc)}"
                on_error(model, exc)
            progress(f"{model}: {_verdict(decision)}")
    if summary.to_retrain:
        models = [
            {"symbol": d.symbol, "trend": d.trend, "interval": d.interval, "reason": d.reason}
            for d in summary.to_retrain
        ]
        name = execution_name(as_of, interval)
        summary.training = {"name": name, "input": {"models": models, "as_of": as_of.isoformat()}}
        if start_execution is not None:
            summary.execution = summary.training["name"]
            summary.started = start_execution(summary.execution, summary.training["input"])
    return summary


def _record_error(
    objects: S3ObjectStore,
    symbol: str,
    trend: str,
    interval: str,
    as_of: datetime,
    error: Exception,
    on_error: OnError,
) -> None:
    """The day's decision record of a model whose check failed: status ``error``, the exception's type and
    message. Written only where no decision is stored: a failed re-run never hides an earlier decision."""
    record = {
        "symbol": symbol,
        "trend": trend,
        "interval": interval,
        "day": f"{as_of:%Y-%m-%d}",
        "as_of": as_of.isoformat(),
        "status": "error",
        "error": {"type": type(error).__name__, "message": str(error)},
        "retrain": False,
        "reasons": [],
        "triggers": {},
    }
    try:
        objects.put_json(decision_key(symbol, trend, as_of, interval=interval), record, if_absent=True)
    except ConcurrentWriteError:
        pass  # a decision (or an earlier error) of this day is stored already
    except Exception as exc:  # often the same outage; the summary still names the model
        on_error(model_label(symbol, trend, interval), exc)


def _verdict(decision: Decision) -> str:
    if decision.retrain:
        return f"retrain ({decision.reason})"
    if decision.held_back:
        return f"keep: {decision.reason} fired, but {decision.held_back}"
    return "keep"


def _write_psi_chart(objects: S3ObjectStore, decision: Decision, drift: dict[str, Any]) -> None:
    from common.loop.drift import as_chart_input
    from common.training.plots import psi_bars_png

    psi, thresholds = as_chart_input(drift)
    if not psi:
        return
    png = psi_bars_png(
        psi,
        threshold=thresholds,
        title=f"{decision.model}: PSI on {decision.day} ({drift.get('decision')})",
    )
    objects.put_bytes(
        decision_key(
            decision.symbol, decision.trend, datetime.fromisoformat(decision.as_of), "_psi.png", decision.interval
        ),
        png,
        content_type="image/png",
    )
