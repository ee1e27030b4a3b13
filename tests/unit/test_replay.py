"""retrain.replay's pure parts: the client's swap and failure accounting, the execution counting and the
summary; the replay itself runs on the embedded stack (`retrain demo`, tests/integration/test_replay_loop.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx

from retrain.replay import (
    SUMMARY_KEYS,
    ModelTimeline,
    PredictionClient,
    ReplaySummary,
    _count_execution,
    render,
)

DAY = datetime(2024, 12, 21, tzinfo=UTC)


def _client(answers: list[httpx.Response]) -> tuple[PredictionClient, dict[str, ModelTimeline]]:
    def handle(request: httpx.Request) -> httpx.Response:
        return answers.pop(0)

    timeline = {"BTC uptrend": ModelTimeline("BTC", "uptrend")}
    client = PredictionClient("http://predictor", [("BTC", "uptrend", "1d")], timeline, httpx.MockTransport(handle))
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
    initial = {"results": [{"status": "promoted", "version": "1"}, {"status": "failed"}, {"status": "rejected"}]}
    _count_execution(summary, initial, "initial")
    check = {
        "training": {"name": "trigger-2024-12-29", "input": {}},
        "decisions": [
            {"retrain": True, "reasons": ["schedule", "drift"]},
            {"retrain": False, "reasons": []},
        ],
    }
    _count_execution(summary, {"results": [{"status": "rejected", "version": "2"}]}, None, check)
    assert (summary.models_trained, summary.versions_registered, summary.models_promoted) == (3, 2, 1)
    assert summary.retrains_by_trigger == {"initial": 3, "schedule": 1, "drift": 1}
    assert summary.executions == ["trigger-2024-12-29"]


def test_summary_json_holds_what_the_issue_asks_for() -> None:
    summary = ReplaySummary(start=DAY, days=3, symbols=("BTC",))
    summary.models = {"BTC uptrend": ModelTimeline("BTC", "uptrend", ["1", "3"], ["12-28 schedule: 8 days old"], 0.2)}
    document = json.loads(json.dumps(summary.to_dict()))
    assert set(SUMMARY_KEYS) <= set(document)
    assert "v1 -> v3" in render(summary) and "schedule x1" in render(summary)


def test_render_tells_each_models_story_in_day_order_and_the_outbox() -> None:
    from retrain.replay import render_outbox

    summary = ReplaySummary(start=DAY, days=10, symbols=("BTC",))
    summary.models = {
        "BTC uptrend": ModelTimeline(
            "BTC",
            "uptrend",
            ["1", "2"],
            triggers=["12-29 schedule: champion is 8.0 days old (> 7)"],
            outcomes=["12-21 promoted: v1 first champion", "12-29 promoted: v2 overall 0.64 >= champion v1 0.61"],
            held_back=["12-30 drift: last retrain 1.0 days ago (< 3-day cooldown)"],
        )
    }
    summary.live_accuracy = {"BTC uptrend": {"v1": {"resolved": 4, "accuracy": 0.5}}}
    text = render(summary)
    story = text[text.index("what happened") :]
    order = ["12-21  -> promoted: v1", "12-29  fired schedule", "12-29  -> promoted: v2", "12-30  held back drift"]
    positions = [story.index(line) for line in order]
    assert positions == sorted(positions)
    assert "v1 0.50 (n=4)" in text
    assert render_outbox(summary) == "notification outbox: empty"
    summary.notifications = [
        {"key": "notifications/2024-12-21/a.json", "subject": "first", "text": "one"},
        {"key": "notifications/2024-12-29/b.json", "subject": "BTC uptrend v2 promoted", "text": "line 1\nline 2"},
    ]
    outbox = render_outbox(summary)
    assert "2 written" in outbox and "first" in outbox and "    line 2" in outbox and "    one" not in outbox


def test_render_plots_lists_each_models_files() -> None:
    from retrain.replay import render_plots

    summary = ReplaySummary(start=DAY, days=3, symbols=("BTC",))
    assert "none" in render_plots(summary)
    summary.plots = {"BTC uptrend": ["/x/BTC_uptrend_v2/plots/equity_curve.png", "/x/BTC_uptrend_psi.png"]}
    assert "BTC uptrend: /x/BTC_uptrend_v2/plots/equity_curve.png, /x/BTC_uptrend_psi.png" in render_plots(summary)
