"""Payloads that cross the state machine: what the training workflow passes between its tasks.

Strict pydantic models: unknown fields and wrong types are rejected with a clear message rather than
silently ignored, so a typo in an execution input fails at the first task that reads it.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from common.notification import ModelOutcome
from common.settings import Interval, Trend, UtcDatetime

_NAME = r"^[A-Za-z0-9_.:-]{1,80}$"


class ModelRequest(BaseModel):
    """One (symbol, trend) to retrain, and why."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    symbol: str = Field(pattern=r"^[A-Z0-9]{1,15}$")
    trend: Trend
    reason: str = Field("manual", max_length=200)


class PrepareDatasetEvent(BaseModel):
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
