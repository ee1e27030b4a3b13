"""Payloads that cross the state machine: what the training workflow passes between its tasks.

Strict pydantic models: unknown fields and wrong types are rejected with a clear message rather than
silently ignored, so a typo in an execution input fails at the first task that reads it.
"""

from __future__ import annotations

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import BaseModel, ConfigDict, Field, field_validator

from common.notification import ModelOutcome
from common.settings import SYMBOL_PATTERN, SYMBOL_RULE, Interval, Trend, UtcDatetime, is_symbol

_NAME = r"^[A-Za-z0-9_.:-]{1,80}$"


class ModelRequest(BaseModel):
    """One (symbol, trend) to retrain, and why."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    symbol: str = Field(pattern=SYMBOL_PATTERN.pattern)
    trend: Trend
    reason: str = Field("manual", max_length=200)


class PrepareDatasetEvent(BaseModel):
    """What every per-model step of the state machine receives: the run, the model, the clock."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: str = Field(pattern=_NAME)
    model: ModelRequest
    as_of: UtcDatetime | None = None
    interval: Interval | None = None


class NotifyEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: str = Field(pattern=_NAME)
    as_of: UtcDatetime | None = None
    results: list[ModelOutcome] = Field(max_length=1000)


class _SymbolsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    symbols: list[str] | None = Field(None, min_length=1, max_length=500)
    as_of: UtcDatetime | None = None

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

    interval: Interval | None = None


class TrainModelEvent(PrepareDatasetEvent):
    """TrainModel's input: the model, and the manifest PrepareDataset wrote (its figures are logged)."""

    dataset: dict[str, object] = Field(default_factory=dict)


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
