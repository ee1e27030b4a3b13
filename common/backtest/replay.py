"""The live loop replayed over years of history, one model at a time, under several policies at once.

For one (symbol, trend) and each policy (:mod:`common.loop.policies`), day by day after ``start``:

1. 00:05 (the day's one as-of time, infra/day.asl.json), after the bar of the previous day closed: the trigger check, :func:`common.loop.check.check_model`
   (schedule, performance from the predictions served so far and resolved only once due, drift against the
   champion's own reference, cooldown, backoff);
2. when it says retrain: :func:`common.loop.training_steps.train_model` and :func:`common.loop.training_steps.promote_model`, as
   the state machine's TrainModel and PromoteModel steps run them, as of that check;
3. then :func:`common.serving.batch_predict.run_batch`, the champion of that moment predicting the bar that just
   closed and the outcomes that came due being resolved.

Those are the live loop's functions, unchanged: what they read from MLflow and S3 (the champion and its
tags, the last training, the drift reference, the prediction log, the bars) they read here from
:class:`common.registry.memory_registry.MemoryRegistry` and :class:`common.aws.storage.MemoryObjectStore`. The start day
itself trains every model (``initial``), as ``retrain demo`` does. Each decision sees only the bars closed
at its time (:meth:`common.data.bar_store.OhlcvStore.load` with its as-of); the served predictions are scored
once the run is over, against their realized labels (known h + 1 bars after each bar), so the results of
the days up to D need no bar after D + h + 1.

Trainings are shared between policies through :class:`common.loop.training_steps.TrainingMemo`: a model trained as of
the same day on the same bars with the same training settings is computed once. Everything the result holds
is a deterministic function of the bars and the settings; timings are kept apart (:class:`Timings`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from threadpoolctl import threadpool_limits

from common.aws.storage import MemoryObjectStore
from common.core.errors import ConfigurationError, RetrainError
from common.core.numbers import finite_or_none
from common.core.settings import Settings, Trend, model_label, registered_model_name
from common.data.bar_store import OhlcvStore
from common.data.ohlcv import interval_length
from common.data.prediction_log import read_records
from common.loop.check import check_model, execution_name
from common.loop.policies import Policy
from common.loop.training_steps import TrainingMemo, promote_model, train_model
from common.loop.triggers import Decision
from common.registry.memory_registry import MemoryRegistry
from common.registry.mlflow_registry import CHAMPION
from common.registry.promotion import decode_tags
from common.serving.batch_predict import run_batch
from common.serving.checked_versions import CheckedVersions

# When the day runs after a bar closes (template.yaml's DaySchedule, 00:05): its check, trainings and predictions
# all work with the day's one as-of time (infra/day.asl.json).
DAY_AT = timedelta(minutes=5)
ESTIMATE_KEYS = ("accuracy", "precision", "positive_accuracy", "negative_accuracy", "overall_score", "sharpe")

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


@dataclass(frozen=True)
class ModelUnit:
    """One (symbol, trend) of the pool: the unit of work a worker (or a Map iteration) runs."""

    symbol: str
    trend: Trend
    interval: str = "1d"

    @property
    def name(self) -> str:
        return model_label(self.symbol, self.trend, self.interval)


@dataclass
class Timings:
    """Wall and CPU seconds: reported, never part of the deterministic result."""

    trainings_computed: int = 0  # evaluated here (the others came from the memo)
    trainings_reused: int = 0
    training_cpu_s: dict[str, float] = field(default_factory=dict)  # policy -> CPU seconds of its trainings
    wall_s: float = 0.0
    cpu_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "trainings_computed": self.trainings_computed,
            "trainings_reused": self.trainings_reused,
            "training_cpu_s": {k: round(v, 2) for k, v in self.training_cpu_s.items()},
            "wall_s": round(self.wall_s, 2),
            "cpu_s": round(self.cpu_s, 2),
        }


@dataclass
class PolicyRun:
    """One policy's replay of one model: its adapters and what happened."""

    policy: Policy
    settings: Settings
    objects: MemoryObjectStore
    registry: MemoryRegistry = field(default_factory=MemoryRegistry)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    trainings: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)
    # The registry's versions as the batch predictions score them: each loaded and checked once for the replay.
    models: CheckedVersions = field(init=False)

    def __post_init__(self) -> None:
        self.models = CheckedVersions.of(self.registry)

    @property
    def store(self) -> OhlcvStore:
        return OhlcvStore(self.objects)


@threadpool_limits.wrap(limits=1, user_api="blas")
def backtest_model(
    unit: ModelUnit,
    bars: pd.DataFrame,
    *,
    base: Settings,
    policies: list[Policy],
    start: datetime,
    end: datetime,
    progress: Progress = _quiet,
) -> tuple[dict[str, Any], Timings]:
    """Replay ``unit`` from ``start`` (its initial training) to ``end`` under each policy.

    Returns the result (JSON-ready, deterministic) and the timings. ``bars`` is the whole series (validated
    like any stored series: every load applies the same rules at its own as-of time).

    BLAS runs on one thread here: the matrices are small (19 features), and with several backtest processes
    on a machine, idle BLAS threads spinning for a core made a 5 ms residual fit take 110 ms (measured on
    the 2-core dev machine)."""
    began, cpu_began = time.monotonic(), time.process_time()
    step = interval_length(unit.interval)
    days = _periods(start, end, step)
    per_progress = round(timedelta(days=30) / step)  # a line per 30 days of replay
    timings = Timings()
    memo = TrainingMemo()
    runs = [_policy_run(policy, base, unit, bars, end, step) for policy in policies]
    for run in runs:
        _initial_training(run, unit, start, memo, timings)
    for number, day in enumerate(days, start=1):
        for run in runs:
            _replay_day(run, unit, day, memo, timings)
        if number % per_progress == 0 or number == len(days):
            trained = sum(len(run.trainings) for run in runs)
            progress(f"{unit.name}: {day:%Y-%m-%d} ({number}/{len(days)} runs), {trained} trainings so far")
    timings.trainings_computed, timings.trainings_reused = memo.computed, memo.reused
    result = {
        "symbol": unit.symbol,
        "trend": unit.trend,
        "interval": unit.interval,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "policies": {run.policy.name: _policy_result(run, unit, bars, start, end) for run in runs},
    }
    timings.wall_s, timings.cpu_s = time.monotonic() - began, time.process_time() - cpu_began
    return result, timings


def _periods(start: datetime, end: datetime, step: timedelta) -> list[datetime]:
    """The opens of the periods the schedules run after ``start`` up to ``end``: every day for daily models,
    every hour for hourly ones (the template's DaySchedule and HourSchedule)."""
    if end <= start:
        raise RetrainError(f"the end ({end:%Y-%m-%d}) must be after the start ({start:%Y-%m-%d})")
    count = int((end - start) / step)
    return [start + step * n for n in range(1, count + 1)]


def _policy_run(
    policy: Policy, base: Settings, unit: ModelUnit, bars: pd.DataFrame, end: datetime, step: timedelta
) -> PolicyRun:
    settings = policy.settings(base).model_copy(update={"symbols": (unit.symbol,)}).for_interval(unit.interval)  # type: ignore[arg-type]
    objects = MemoryObjectStore(bucket=f"backtest-{policy.name}")
    # The whole series is stored once; every load sees only the bars closed at its own as-of time.
    OhlcvStore(objects).append(unit.symbol, unit.interval, bars, as_of=end + step * (settings.prediction_window + 2))
    return PolicyRun(policy, settings, objects)


def _initial_training(run: PolicyRun, unit: ModelUnit, start: datetime, memo: TrainingMemo, timings: Timings) -> None:
    as_of = start + DAY_AT  # as if the start day's check had trained it: its age counts from there
    _train(run, unit, as_of, "initial", f"initial-{start:%Y-%m-%d}", memo, timings)


def _replay_day(run: PolicyRun, unit: ModelUnit, day: datetime, memo: TrainingMemo, timings: Timings) -> None:
    check_at = day + DAY_AT
    try:
        decision, _ = check_model(
            run.settings,
            run.registry,  # type: ignore[arg-type]
            run.store,
            run.objects,  # type: ignore[arg-type]
            symbol=unit.symbol,
            trend=unit.trend,
            as_of=check_at,
            interval=unit.interval,
        )
    except RetrainError as exc:
        run.errors.append({"day": f"{day:%Y-%m-%d}", "step": "check", "error": f"{type(exc).__name__}: {exc}"})
    else:
        run.decisions.append(_decision_record(decision))
        if decision.retrain:
            execution = execution_name(check_at, unit.interval)
            _train(run, unit, check_at, decision.reason, execution, memo, timings)
    batch = run_batch(
        run.settings,
        run.registry,  # type: ignore[arg-type]
        run.objects,  # type: ignore[arg-type]
        as_of=check_at,
        symbols=(unit.symbol,),
        interval=unit.interval,
        models=run.models,
    )
    for failed in batch.predictions.failed:
        if failed.trend == unit.trend:
            run.errors.append({"day": f"{day:%Y-%m-%d}", "step": "predict", "error": failed.reason})


def _train(
    run: PolicyRun, unit: ModelUnit, as_of: datetime, reason: str, execution_id: str, memo: TrainingMemo, t: Timings
) -> None:
    cpu = time.process_time()
    try:
        trained = train_model(
            run.settings,
            run.registry,
            run.store,
            execution_id=execution_id,
            symbol=unit.symbol,
            trend=unit.trend,
            reason=reason,
            as_of=as_of,
            interval=unit.interval,
            memo=memo,
        )
        promoted = promote_model(
            run.settings, run.registry, run.store, trained=trained, as_of=as_of, interval=unit.interval
        )  # type: ignore[arg-type]
    except RetrainError as exc:
        run.errors.append({"day": f"{as_of:%Y-%m-%d}", "step": "train", "error": f"{type(exc).__name__}: {exc}"})
        return
    finally:
        t.training_cpu_s[run.policy.name] = t.training_cpu_s.get(run.policy.name, 0.0) + time.process_time() - cpu
    run.trainings.append(
        {
            "day": f"{as_of:%Y-%m-%d}",
            "reason": reason,
            "status": promoted.status,
            "version": trained.version,
            "classifier": trained.classifier,
            "champion_before": promoted.previous_version
            if promoted.status == "promoted"
            else promoted.champion_version,
            "why": promoted.why,
            "comparison": promoted.comparison,
            "estimate": {k: trained.metrics[k] for k in ESTIMATE_KEYS if k in trained.metrics},
            "honest": {k: trained.honest_metrics[k] for k in ESTIMATE_KEYS if k in trained.honest_metrics},
        }
    )


def _decision_record(decision: Decision) -> dict[str, Any]:
    return {
        "day": decision.day,
        "champion": decision.champion_version,
        "retrain": decision.retrain,
        "reason": decision.reason if decision.retrain else None,
        "held_back": decision.held_back,
        "triggers": {t.trigger: t.status for t in decision.triggers},
    }


def _policy_result(
    run: PolicyRun, unit: ModelUnit, bars: pd.DataFrame, start: datetime, end: datetime
) -> dict[str, Any]:
    name = registered_model_name(unit.symbol, unit.trend, unit.interval)
    versions = {}
    for info in run.registry.versions(name):
        tags = decode_tags(info.tags)
        metrics = tags.get("metrics") or {}
        versions[info.version] = {
            "trained_as_of": tags.get("trained_as_of"),
            "classifier": tags.get("classifier"),
            "estimate": {k: metrics[k] for k in ESTIMATE_KEYS if k in metrics},
            "honest": {k: v for k, v in (tags.get("honest_metrics") or {}).items() if k in ESTIMATE_KEYS},
        }
    champion = run.registry.version_by_alias(name, CHAMPION)
    return {
        "policy": run.policy.to_dict(),
        "served": served_predictions(run, unit, bars, start, end),
        "trainings": run.trainings,
        "decisions": run.decisions,
        "versions": versions,
        "final_champion": champion.version if champion else None,
        "errors": run.errors,
    }


def served_predictions(
    run: PolicyRun, unit: ModelUnit, bars: pd.DataFrame, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """Every prediction the champions served, with its realized label (resolved with the bars up to h + 1
    bars after it: scoring, never a decision, sees them), the next bar's return (what following the signal
    earned) and the h-bar forward return."""
    from common.serving.batch_predict import realized_label

    # The stored, validated closes (as the live resolver reads them), up to the end of the bars given.
    close = run.store.load(unit.symbol, unit.interval, as_of=_after(bars), gap_policy=run.settings.gap_policy).bars[
        "close"
    ]
    next_return = close.shift(-1) / close - 1.0
    horizon = run.settings.prediction_window
    forward_return = close.shift(-horizon) / close - 1.0
    served = []
    records = read_records(
        run.objects, unit.symbol, unit.trend, since=start, until=end + timedelta(days=1), interval=unit.interval
    )
    for record in sorted(records, key=lambda r: r.bar):
        realized = record.realized
        if realized is None:
            answer = realized_label(record, close)
            realized = None if isinstance(answer, str) else answer[0]
        bar = pd.Timestamp(record.bar)
        served.append(
            {
                "bar": bar.isoformat(),
                "version": record.model_version,
                "probability": round(record.prediction_prob, 9),
                "realized": realized,
                "next_return": finite_or_none(next_return.get(bar), 9),
                "forward_return": finite_or_none(forward_return.get(bar), 9),
            }
        )
    return served


def _after(bars: pd.DataFrame) -> datetime:
    """An as-of time at which every bar of ``bars`` is closed."""
    return (bars.index.max() + pd.Timedelta(days=2)).to_pydatetime()


def check_history(
    bars: pd.DataFrame,
    *,
    symbol: str,
    trends: Sequence[str],
    start: datetime,
    end: datetime,
    settings: Settings,
) -> None:
    """The bars cover the period: they reach the end, and each trend has enough labelled history before the
    start for the walk-forward training (:class:`ConfigurationError` naming what to change otherwise).
    ``retrain backtest`` and the backtest Lambda both check their input with it."""
    from common.training.evaluation import training_data, walk_forward_splits

    last = bars.index.max()
    if pd.Timestamp(end) > last + pd.Timedelta(days=1):
        raise ConfigurationError(
            f"{symbol}: end {end:%Y-%m-%d} is after its last bar ({last:%Y-%m-%d}); "
            f"end on {last + pd.Timedelta(days=1):%Y-%m-%d} at the latest"
        )
    before = bars.loc[bars.index < pd.Timestamp(start)]
    for trend in trends:
        rows = (
            len(
                training_data(
                    before, trend=trend, horizon=settings.prediction_window, target_pct=settings.target_pct(trend)
                ).y
            )
            if len(before)
            else 0
        )
        try:
            walk_forward_splits(
                rows, n_splits=settings.train_splits, test_size=settings.train_test_size, purge=settings.purge_bars
            )
        except RetrainError as exc:
            raise ConfigurationError(
                f"{symbol}: not enough history before start {start:%Y-%m-%d} to train ({exc}); start later"
            ) from None
