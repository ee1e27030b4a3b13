"""Payloads that cross the state machines: what the training and backtest workflows pass between their tasks.

Strict pydantic models: unknown fields and wrong types are rejected with a clear message rather than
silently ignored, so a typo in an execution input fails at the first task that reads it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from common.core.errors import ConfigurationError
from common.core.settings import (
    ALL_CLASSIFIERS,
    SYMBOL_PATTERN,
    SYMBOL_RULE,
    ClassifierName,
    Interval,
    Trend,
    UtcDatetime,
    is_symbol,
)
from common.loop.policies import Policy, parse_policies
from common.notify.notification import ModelOutcome

_NAME = r"^[A-Za-z0-9_.:-]{1,80}$"


class ModelRequest(BaseModel):
    """One (symbol, trend) to retrain, and why."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    symbol: str = Field(pattern=SYMBOL_PATTERN.pattern)
    trend: Trend
    interval: Interval | None = None  # of the model's bars (null: the event's, else RETRAIN_INTERVAL)
    reason: str = Field("manual", max_length=200)


class PrepareDatasetEvent(BaseModel):
    """What every per-model step of the state machine receives: the run, the model, the clock."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: str = Field(pattern=_NAME)
    model: ModelRequest
    as_of: UtcDatetime | None = None
    interval: Interval | None = None

    @property
    def model_interval(self) -> Interval | None:
        """The model's bars: its own entry's interval, else the event's (null: RETRAIN_INTERVAL)."""
        return self.model.interval or self.interval


class NotifyEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: str = Field(pattern=_NAME)
    as_of: UtcDatetime | None = None
    results: list[ModelOutcome] = Field(max_length=1000)


class _SymbolsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    symbols: list[str] | None = Field(None, min_length=1, max_length=500)
    as_of: UtcDatetime | None = None
    # the pool's models on these bars (null: RETRAIN_INTERVAL's); the hourly schedule sends "1h"
    interval: Interval | None = None

    @field_validator("symbols")
    @classmethod
    def _tickers(cls, symbols: list[str] | None) -> list[str] | None:
        bad = [s for s in symbols or [] if not is_symbol(s)]
        if bad:
            raise ValueError(f"symbols must be upper-case tickers ({SYMBOL_RULE}), got {bad}")
        return symbols


class IngestRequest(_SymbolsRequest):
    """``detail`` of the ingest function's event. The scheduled rule sends ``{}`` (everything from
    settings, as-of = the event's time); a manual run may narrow symbols or replay a past day."""


class TrainModelEvent(PrepareDatasetEvent):
    """TrainModel's input: the model, and the manifest PrepareDataset wrote (a
    :class:`common.data.datasets.DatasetManifest`, parsed by the handler): training reads exactly the bars it pins."""

    dataset: dict[str, object]  # required: without it, training could only read whatever is stored by now


class TrainResult(BaseModel):
    """What TrainModel decided: the candidate it registered (if any) and why."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    symbol: str
    trend: Trend
    registered_model: str
    status: str  # "registered" | "rejected" (no candidate passed the gate)
    version: str | None = None
    classifier: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    baseline_metrics: dict[str, float] = Field(default_factory=dict)
    honest_metrics: dict[str, float] = Field(default_factory=dict)  # the selection-aware estimate (the gate's)
    why: str = ""
    mlflow_run_id: str = ""
    candidate_run_id: str = ""
    duration_s: float = 0.0
    data_last_bar: str | None = None
    candidates: dict[str, float] = Field(default_factory=dict)  # classifier -> overall_score


class PromoteModelEvent(PrepareDatasetEvent):
    """PromoteModel's input: the model and what TrainModel registered."""

    trained: TrainResult


class CheckRequest(_SymbolsRequest):
    """``detail`` of the trigger checker's event: ``{}`` from the schedule, or a manual narrowing/replay."""


class BatchPredictRequest(_SymbolsRequest):
    """``detail`` of the batch-prediction event: ``{}`` from the schedule, or a manual narrowing/replay."""


class ScheduledEvent(EventBridgeModel):
    """An EventBridge schedule's event. ``version`` is always "0" from EventBridge; events made with
    `sam local generate-event` omit it, so it defaults."""

    version: str = "0"


class IngestEvent(ScheduledEvent):
    detail: IngestRequest


class CheckEvent(ScheduledEvent):
    detail: CheckRequest


class BatchPredictEvent(ScheduledEvent):
    detail: BatchPredictRequest


class DayStep(_SymbolsRequest):
    """What the day state machine (infra/day.asl.json) passes each of its steps: its execution's name, the
    day's one as-of time, and the symbols the step works on (the check and the predictions get those whose
    newest bar ingestion stored)."""

    day: str = Field(pattern=_NAME)
    as_of: UtcDatetime


def parse_daily_event[E: ScheduledEvent](event: Any, scheduled: type[E]) -> DayStep | E:
    """A daily function's event: a step of the day state machine, or an EventBridge-shaped event (a manual
    run, `sam local invoke`). Told apart by the ``day`` key, so a malformed event is reported against the one
    shape it meant, its errors naming the field as that shape spells it."""
    if isinstance(event, dict) and "day" in event:
        return DayStep.model_validate(event)
    return scheduled.model_validate(event)


def daily_request(
    event: DayStep | IngestEvent | CheckEvent | BatchPredictEvent, configured_as_of: datetime | None
) -> tuple[_SymbolsRequest, datetime]:
    """What a daily function works on and its one as-of time. A step of the day state machine carries the
    day's; an EventBridge-shaped event takes its detail's ``as_of``, else the configured ``RETRAIN_AS_OF``
    (a replay), else the event's own time."""
    if isinstance(event, DayStep):
        return event, event.as_of
    return event.detail, event.detail.as_of or configured_as_of or event.time


# --- the backtest state machine (infra/backtest.asl.json) -----------------------------------------------------
class BacktestRequest(BaseModel):
    """What every task of one backtest run shares: the run, the period, the policies and the zoo.

    ``start`` is the initial training day and ``end`` the last replayed day, both days (00:00 UTC), as
    ``retrain backtest --start/--end``. ``policies`` are normalised as the CLI normalises them (each name once,
    ``default`` added), so every Map iteration and the summary replay and compare the same list.
    ``interval`` and ``classifiers`` left null mean the function's configuration (RETRAIN_INTERVAL,
    RETRAIN_TRAIN_CLASSIFIERS)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: str = Field(pattern=_NAME)
    start: UtcDatetime
    end: UtcDatetime
    policies: tuple[str, ...] = Field(min_length=1, max_length=20)
    interval: Interval | None = None
    classifiers: tuple[ClassifierName, ...] | None = Field(None, min_length=1, max_length=len(ALL_CLASSIFIERS))

    @field_validator("start", "end")
    @classmethod
    def _a_day(cls, value: UtcDatetime) -> UtcDatetime:
        if value != value.replace(hour=0, minute=0, second=0, microsecond=0):
            raise ValueError(f"must be a day (YYYY-MM-DD, 00:00 UTC), got {value.isoformat()}")
        return value

    @field_validator("policies")
    @classmethod
    def _known_policies(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        bad = [name for name in names if not name.strip() or "," in name]
        if bad:
            raise ValueError(f"one policy name per item, got {bad}")
        try:
            return tuple(policy.name for policy in parse_policies(",".join(names)))
        except ConfigurationError as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _end_after_start(self) -> BacktestRequest:
        if self.end <= self.start:
            raise ValueError(f"end ({self.end:%Y-%m-%d}) must be after start ({self.start:%Y-%m-%d})")
        return self

    def parsed_policies(self) -> list[Policy]:
        return parse_policies(",".join(self.policies))


class BacktestModelEvent(BacktestRequest):
    """One Map iteration: the (symbol, trend) it replays, with the run's shared fields."""

    symbol: str = Field(pattern=SYMBOL_PATTERN.pattern)
    trend: Trend


class BacktestModelResult(BaseModel):
    """One Map iteration's result: what the unit wrote (``done``), or its failure as the ``Catch`` records it
    (``failed``, with the Step Functions error and cause; symbol and trend as the item gave them, maybe null)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    symbol: str | None = None
    trend: str | None = None
    interval: str = "1d"
    status: Literal["done", "failed"]
    key: str | None = None  # the unit's JSON: {"result": ..., "timings": ...}
    trainings: dict[str, int] = Field(default_factory=dict)  # policy -> trainings
    promotions: dict[str, int] = Field(default_factory=dict)  # policy -> promotions
    final_champion: dict[str, str | None] = Field(default_factory=dict)  # policy -> version
    replay_errors: dict[str, int] = Field(default_factory=dict)  # policy -> steps that raised during the replay
    wall_s: float | None = None
    error: str | None = None
    cause: str | None = None

    @model_validator(mode="after")
    def _status_has_its_fields(self) -> BacktestModelResult:
        if self.status == "done" and not (self.key and self.symbol and self.trend):
            raise ValueError("a done result names its symbol, trend and key")
        if self.status == "failed" and not self.error:
            raise ValueError("a failed result names its error")
        return self


class BacktestSummarizeEvent(BacktestRequest):
    """The last step: the Map's results (in the order of the execution input's models) and the run's fields.
    ``started_at`` is the execution's start (the run's wall time in timings.json), ``max_concurrency`` its Map's."""

    results: list[BacktestModelResult] = Field(min_length=1, max_length=1000)
    replicates: int | None = Field(None, ge=1, le=100_000)
    started_at: UtcDatetime | None = None
    max_concurrency: int | None = Field(None, ge=1)
