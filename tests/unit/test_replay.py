"""retrain.replay's pure parts: the schedule events it sends, the client's swap and failure accounting, the
execution counting and the summary; the replay itself runs on the embedded stack (`retrain replay`)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import pytest

from common.events import BatchPredictEvent, CheckEvent, IngestEvent
from retrain.replay import ModelTimeline, PredictionClient, ReplaySummary, _count_execution, render, scheduled_event

DAY = datetime(2024, 12, 21, tzinfo=UTC)


@pytest.mark.parametrize("model", [IngestEvent, CheckEvent, BatchPredictEvent])
def test_scheduled_events_parse_as_each_scheduled_function_expects(model) -> None:
    event = model.model_validate(scheduled_event(DAY))
    assert event.time == DAY


def _client(answers: list[httpx.Response]) -> tuple[PredictionClient, dict[str, ModelTimeline]]:
    def handle(request: httpx.Request) -> httpx.Response:
        return answers.pop(0)

    timeline = {"BTC uptrend": ModelTimeline("BTC", "uptrend")}
    client = PredictionClient("http://predictor", [("BTC", "uptrend")], timeline, httpx.MockTransport(handle))
    return client, timeline


def _version(version: str) -> httpx.Response:
    return httpx.Response(200, json={"model_version": version, "prediction_probabilities": [0.4, 0.6]})


def test_the_client_counts_a_swap_per_version_change_and_no_champion_is_not_a_failure() -> None:
    answers = [httpx.Response(404, json={"detail": "no champion"}), _version("1"), _version("1"), _version("3")]
    client, timeline = _client(answers)
    for _ in range(4):
        client.call_all_once()
    assert timeline["BTC uptrend"].versions_served == ["1", "3"]
    assert (client.swaps, client.requests, client.failed) == (1, 4, 0)


def test_a_failed_request_during_a_swap_is_counted_as_such() -> None:
    client, _ = _client([httpx.Response(500, text="boom"), httpx.Response(503, text="no data")])
    client.call_all_once()
    with client.swap_window():
        client.call_all_once()
    assert (client.failed, client.failed_during_swaps) == (2, 1)
    assert "HTTP 500" in client.failures[0]


def test_executions_count_registered_versions_promotions_and_reasons() -> None:
    summary = ReplaySummary(start=DAY, days=3, symbols=("BTC",))
    initial = {"results": [{"status": "promoted", "version": "1"}, {"status": "failed"}]}
    _count_execution(summary, initial, "initial")
    check = {
        "execution": "trigger-2024-12-29",
        "decisions": [
            {"retrain": True, "reasons": ["schedule", "drift"]},
            {"retrain": False, "reasons": []},
        ],
    }
    _count_execution(summary, {"results": [{"status": "rejected", "version": "2"}]}, None, check)
    assert (summary.models_trained, summary.models_promoted) == (2, 1)
    assert summary.retrains_by_trigger == {"initial": 2, "schedule": 1, "drift": 1}
    assert summary.executions == ["trigger-2024-12-29"]


def test_summary_json_holds_what_the_issue_asks_for() -> None:
    summary = ReplaySummary(start=DAY, days=3, symbols=("BTC",))
    summary.models = {"BTC uptrend": ModelTimeline("BTC", "uptrend", ["1", "3"], ["12-28 schedule: 8 days old"], 0.2)}
    document = json.loads(json.dumps(summary.to_dict()))
    for key in (
        "models_trained",
        "models_promoted",
        "retrains_by_trigger",
        "swaps_observed",
        "failed_requests_during_swaps",
        "notifications_sent",
    ):
        assert key in document
    assert "v1 -> v3" in render(summary) and "schedule x1" in render(summary)
