"""Operator notifications: what a run did, as one short message, and where it is delivered.

The message text is pure; delivery goes through a ``Notifier``. The outbox notifier writes the message
to S3 (the durable record every deployment has); channels such as Telegram add to it.
"""

from __future__ import annotations

import contextlib
import json
from datetime import datetime
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from common.keys import notification_key
from common.storage import S3ObjectStore

ModelStatus = Literal["promoted", "kept", "prepared", "failed"]


class ModelOutcome(BaseModel):
    """One model's result in a run, as the state machine reports it."""

    model_config = ConfigDict(extra="allow")

    symbol: str
    trend: str
    status: ModelStatus
    reason: str = ""
    detail: str = ""
    error: str | None = None  # Step Functions error name (the exception type for a Lambda error)
    cause: str | None = None  # Step Functions cause: a Lambda error payload (JSON) or plain text

    def failure_message(self) -> str:
        """``ErrorName: message`` without the stack trace a Lambda error payload carries."""
        message = self.cause or ""
        with contextlib.suppress(ValueError, TypeError):
            payload = json.loads(message)
            if isinstance(payload, dict) and "errorMessage" in payload:
                message = str(payload["errorMessage"])
        return f"{self.error}: {message}" if self.error else message


class Notification(BaseModel):
    model_config = ConfigDict(frozen=True)

    run_id: str
    created_at: datetime
    subject: str
    text: str
    outcomes: list[ModelOutcome] = Field(default_factory=list)


class Notifier(Protocol):
    def send(self, notification: Notification) -> str:
        """Deliver; return where it went (a key, a message id)."""
        ...


def summarize_run(run_id: str, outcomes: list[ModelOutcome], created_at: datetime) -> Notification:
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    tally = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no models"
    lines = [f"Retraining run {run_id}: {tally}"]
    for outcome in outcomes:
        line = f"- {outcome.symbol} {outcome.trend}: {outcome.status}"
        detail = outcome.failure_message() if outcome.status == "failed" else outcome.detail
        if detail:
            line += f" ({detail})"
        if outcome.reason:
            line += f" [trigger: {outcome.reason}]"
        lines.append(line)
    return Notification(
        run_id=run_id,
        created_at=created_at,
        subject=f"Retraining run {run_id}: {tally}",
        text="\n".join(lines),
        outcomes=outcomes,
    )


class OutboxNotifier:
    """Writes each notification as JSON under ``notifications/`` (idempotent per run id)."""

    def __init__(self, store: S3ObjectStore) -> None:
        self.store = store

    def send(self, notification: Notification) -> str:
        key = notification_key(notification.run_id, notification.created_at)
        self.store.put_json(key, notification.model_dump(mode="json"))
        return f"s3://{self.store.bucket}/{key}"
