"""common.loop.events: strict payloads between the state machine's tasks."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from common.loop.events import NotifyEvent, PrepareDatasetEvent


def _prepare(**changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "run_id": "retrain-2025-02-20T00-00-00Z",
        "model": {"symbol": "BTC", "trend": "uptrend", "reason": "drift"},
        "as_of": "2025-02-20T00:00:00Z",
    }
    event.update(changes)
    return event


def _notify(**changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "run_id": "abc-123",
        "as_of": None,
        "results": [
            {"symbol": "BTC", "trend": "uptrend", "status": "prepared", "bars": 3500},
            {"symbol": "ETH", "trend": "downtrend", "status": "failed", "error": "E", "cause": "c"},
        ],
    }
    event.update(changes)
    return event


# --- PrepareDatasetEvent ---------------------------------------------------------------------------
def test_prepare_event_valid() -> None:
    event = PrepareDatasetEvent.model_validate(_prepare())
    assert event.model.symbol == "BTC"
    assert event.model.trend == "uptrend"
    assert event.as_of == datetime(2025, 2, 20, tzinfo=UTC)
    assert event.interval is None


def test_prepare_event_defaults() -> None:
    event = PrepareDatasetEvent.model_validate(
        {"run_id": "r1", "model": {"symbol": "SOL", "trend": "downtrend"}, "as_of": None}
    )
    assert event.model.reason == "manual"
    assert event.as_of is None


@pytest.mark.parametrize("run_id", ["88d7d2c6-5f7b-4a4e-9a55-0a1b2c3d4e5f", "a", "x" * 80, "run_1.2:3-4"])
def test_prepare_event_accepts_execution_names(run_id: str) -> None:
    assert PrepareDatasetEvent.model_validate(_prepare(run_id=run_id)).run_id == run_id


@pytest.mark.parametrize(
    "event",
    [
        pytest.param(_prepare(unexpected=1), id="unknown-top-level-field"),
        pytest.param(_prepare(model={"symbol": "BTC", "trend": "uptrend", "sym": "x"}), id="unknown-model-field"),
        pytest.param(_prepare(model={"symbol": "btc", "trend": "uptrend"}), id="lowercase-symbol"),
        pytest.param(_prepare(model={"symbol": "BTC-USD", "trend": "uptrend"}), id="symbol-with-dash"),
        pytest.param(_prepare(model={"symbol": "", "trend": "uptrend"}), id="empty-symbol"),
        pytest.param(_prepare(model={"symbol": "A" * 16, "trend": "uptrend"}), id="symbol-too-long"),
        pytest.param(_prepare(model={"symbol": "BTC", "trend": "sideways"}), id="bad-trend"),
        pytest.param(_prepare(model={"symbol": "BTC"}), id="missing-trend"),
        pytest.param(_prepare(model={"symbol": "BTC", "trend": "uptrend", "reason": "r" * 201}), id="long-reason"),
        pytest.param(_prepare(run_id=""), id="empty-run-id"),
        pytest.param(_prepare(run_id="has space"), id="run-id-space"),
        pytest.param(_prepare(run_id="../etc/passwd"), id="run-id-path"),
        pytest.param(_prepare(run_id="x" * 81), id="run-id-too-long"),
        pytest.param(_prepare(run_id=None), id="run-id-null"),
        pytest.param(_prepare(interval="5m"), id="bad-interval"),
        pytest.param(_prepare(as_of="not a time"), id="bad-as-of"),
        pytest.param({k: v for k, v in _prepare().items() if k != "model"}, id="missing-model"),
    ],
)
def test_prepare_event_rejects(event: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        PrepareDatasetEvent.model_validate(event)


def test_prepare_event_error_names_the_bad_field() -> None:
    with pytest.raises(ValidationError) as excinfo:
        PrepareDatasetEvent.model_validate(_prepare(model={"symbol": "BTC", "trend": "sideways"}))
    assert [error["loc"] for error in excinfo.value.errors()] == [("model", "trend")]


# --- NotifyEvent -------------------------------------------------------------------------------------
def test_notify_event_valid() -> None:
    event = NotifyEvent.model_validate(_notify())
    assert [r.status for r in event.results] == ["prepared", "failed"]
    assert event.results[1].failure_message() == "E: c"


@pytest.mark.parametrize(
    "event",
    [
        pytest.param(_notify(extra_field=True), id="unknown-field"),
        pytest.param(_notify(run_id="bad id"), id="run-id-space"),
        pytest.param(_notify(run_id="a/b"), id="run-id-slash"),
        pytest.param(_notify(run_id=""), id="empty-run-id"),
        pytest.param(_notify(results=[{"symbol": "BTC", "trend": "uptrend", "status": "exploded"}]), id="bad-status"),
        pytest.param(_notify(results=[{"symbol": "BTC", "status": "kept"}]), id="result-without-trend"),
        pytest.param(_notify(results=None), id="results-null"),
        pytest.param({"run_id": "r1"}, id="results-missing"),
        pytest.param(_notify(results=[{"symbol": "BTC", "trend": "uptrend", "status": "kept"}] * 1001), id="too-many"),
    ],
)
def test_notify_event_rejects(event: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        NotifyEvent.model_validate(event)


def test_notify_event_reports_a_failed_model_whose_request_was_invalid() -> None:
    """A request with a bad symbol/trend fails in PrepareDataset and reaches Notify as a failed result; the
    notification must still go out, so results are not held to the request's symbol/trend rules."""
    event = NotifyEvent.model_validate(
        _notify(results=[{"symbol": "btc", "trend": "sideways", "status": "failed", "error": "ValidationError"}])
    )
    assert event.results[0].symbol == "btc"


@pytest.mark.parametrize("model", [PrepareDatasetEvent, NotifyEvent])
def test_naive_as_of_is_read_as_utc(model: type[PrepareDatasetEvent] | type[NotifyEvent]) -> None:
    base = _prepare() if model is PrepareDatasetEvent else _notify()
    event = model.model_validate({**base, "as_of": "2025-02-20T00:00:00"})
    assert event.as_of == datetime(2025, 2, 20, tzinfo=UTC)
