"""common.notification: run summary text, Lambda error extraction, and the S3 outbox."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from common.keys import notification_key
from common.notification import ModelOutcome, OutboxNotifier, summarize_run

CREATED_AT = datetime(2025, 2, 20, 0, 5, tzinfo=UTC)

LAMBDA_ERROR_CAUSE = json.dumps(
    {
        "errorMessage": "s3://retrain-local/ohlcv/interval=1d/symbol=XYZ/bars.csv does not exist",
        "errorType": "DataNotFoundError",
        "requestId": "b7c1d3c4-0000-4000-8000-000000000000",
        "stackTrace": ['  File "/var/task/app.py", line 42, in handler\n    payload = store.get(key)\n'],
    }
)


def _outcomes() -> list[ModelOutcome]:
    return [
        ModelOutcome(symbol="BTC", trend="uptrend", status="promoted", reason="drift", detail="v15 -> v16"),
        ModelOutcome(symbol="ETH", trend="downtrend", status="kept", reason="schedule"),
        ModelOutcome(symbol="SOL", trend="uptrend", status="promoted", reason="performance", detail="v3 -> v4"),
        ModelOutcome(
            symbol="XYZ",
            trend="uptrend",
            status="failed",
            reason="manual",
            error="DataNotFoundError",
            cause=LAMBDA_ERROR_CAUSE,
        ),
    ]


# --- failure_message -------------------------------------------------------------------------------
def test_failure_message_extracts_lambda_error_message_without_stack_trace() -> None:
    outcome = _outcomes()[3]
    assert outcome.failure_message() == (
        "DataNotFoundError: s3://retrain-local/ohlcv/interval=1d/symbol=XYZ/bars.csv does not exist"
    )
    assert "stackTrace" not in outcome.failure_message()
    assert "app.py" not in outcome.failure_message()


@pytest.mark.parametrize(
    ("error", "cause", "expected"),
    [
        (
            "States.Timeout",
            "Task timed out after 120.00 seconds",
            "States.Timeout: Task timed out after 120.00 seconds",
        ),
        (None, "plain text cause", "plain text cause"),
        ("States.Runtime", None, "States.Runtime: "),
        (None, None, ""),
        # JSON that is not a Lambda error payload is shown as is.
        ("Boom", '["a", "b"]', 'Boom: ["a", "b"]'),
        ("Boom", '{"message": "no errorMessage key"}', 'Boom: {"message": "no errorMessage key"}'),
        ("Boom", "{not json", "Boom: {not json"),
        ("Boom", "42", "Boom: 42"),
        (None, json.dumps({"errorMessage": "bad input", "errorType": "ValidationError"}), "bad input"),
    ],
)
def test_failure_message_fallbacks(error: str | None, cause: str | None, expected: str) -> None:
    outcome = ModelOutcome(symbol="BTC", trend="uptrend", status="failed", error=error, cause=cause)
    assert outcome.failure_message() == expected


def test_outcome_keeps_extra_fields_from_the_state_machine() -> None:
    outcome = ModelOutcome.model_validate(
        {"symbol": "BTC", "trend": "uptrend", "status": "prepared", "bars": 3500, "dataset_key": "runs/x"}
    )
    assert outcome.model_dump()["bars"] == 3500


def test_outcome_rejects_unknown_status() -> None:
    with pytest.raises(ValueError):
        ModelOutcome(symbol="BTC", trend="uptrend", status="exploded")


# --- summarize_run ----------------------------------------------------------------------------------
def test_summary_subject_tallies_statuses() -> None:
    notification = summarize_run("run-42", _outcomes(), CREATED_AT)
    assert notification.subject == "Retraining run run-42: 1 failed, 1 kept, 2 promoted"
    assert notification.run_id == "run-42"
    assert notification.created_at == CREATED_AT
    assert len(notification.outcomes) == 4


def test_summary_text_has_one_line_per_model() -> None:
    text = summarize_run("run-42", _outcomes(), CREATED_AT).text
    assert text.splitlines() == [
        "Retraining run run-42: 1 failed, 1 kept, 2 promoted",
        "- BTC uptrend: promoted (v15 -> v16) [trigger: drift]",
        "- ETH downtrend: kept [trigger: schedule]",
        "- SOL uptrend: promoted (v3 -> v4) [trigger: performance]",
        "- XYZ uptrend: failed (DataNotFoundError: s3://retrain-local/ohlcv/interval=1d/symbol=XYZ/bars.csv"
        " does not exist) [trigger: manual]",
    ]


def test_summary_of_failure_uses_error_not_detail() -> None:
    outcome = ModelOutcome(
        symbol="BTC", trend="uptrend", status="failed", detail="ignored", error="States.Timeout", cause="timed out"
    )
    text = summarize_run("r", [outcome], CREATED_AT).text
    assert "(States.Timeout: timed out)" in text
    assert "ignored" not in text


def test_summary_of_empty_run() -> None:
    notification = summarize_run("run-0", [], CREATED_AT)
    assert notification.subject == "Retraining run run-0: no models"
    assert notification.text == "Retraining run run-0: no models"


# --- outbox -----------------------------------------------------------------------------------------
class FakeStore:
    """Records put_json calls the way S3ObjectStore would receive them."""

    def __init__(self, bucket: str) -> None:
        self.bucket = bucket
        self.puts: list[tuple[str, Any]] = []

    def put_json(self, key: str, document: Any) -> str:
        self.puts.append((key, document))
        return "version-1"


def test_outbox_writes_the_notification_under_its_key() -> None:
    store = FakeStore("retrain-local-123456789012-us-east-1")
    notification = summarize_run("run-42", _outcomes(), CREATED_AT)

    uri = OutboxNotifier(store).send(notification)  # type: ignore[arg-type]

    key = notification_key("run-42", CREATED_AT)
    assert key == "notifications/2025-02-20/run-42.json"
    assert uri == f"s3://retrain-local-123456789012-us-east-1/{key}"
    assert len(store.puts) == 1
    written_key, document = store.puts[0]
    assert written_key == key
    json.dumps(document)  # JSON-safe as stored (mode="json")
    assert document["subject"] == notification.subject
    assert document["text"] == notification.text
    assert document["created_at"].startswith("2025-02-20T00:05:00")
    assert [o["symbol"] for o in document["outcomes"]] == ["BTC", "ETH", "SOL", "XYZ"]


def test_outbox_is_idempotent_per_run() -> None:
    store = FakeStore("bucket")
    notifier = OutboxNotifier(store)  # type: ignore[arg-type]
    first = notifier.send(summarize_run("run-1", _outcomes(), CREATED_AT))
    second = notifier.send(summarize_run("run-1", _outcomes()[:1], CREATED_AT))
    other = notifier.send(summarize_run("run-2", _outcomes(), CREATED_AT))
    assert first == second != other
    assert store.puts[0][0] == store.puts[1][0] != store.puts[2][0]
