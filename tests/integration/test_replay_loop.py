"""The whole loop end to end, as `retrain demo` runs it: a small replay (2 symbols, two weeks, the test
stack's reduced zoo) on the session stack, through lambda:Invoke with EventBridge events, the real state
machine, the real MLflow server and the predictor on loopback under a polling client. Then the same days
again, which must change nothing.

The window is chosen so the loop does everything once: on day 8 the schedule fires for the champions (and
the models without one are tried again), the state machine retrains, promotes one challenger and rejects
others, and the predictor swaps to the promoted version while the client keeps calling it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from common.core.keys import NOTIFICATIONS_PREFIX, decision_key
from common.core.settings import TRENDS, registered_model_name
from common.data.prediction_log import predictions_prefix
from retrain.replay import ReplaySummary, replay

pytestmark = pytest.mark.integration

# Symbols no other test touches (the stack's pool is BTC, ETH, XRP; LINK, SOL, DOGE, LTC are used by others),
# and days before any other test's trigger-check execution names.
SYMBOLS = ("BNB", "DOT")
START = datetime(2024, 11, 1, tzinfo=UTC)
DAYS = 14


def _state(stack: Any) -> dict[str, Any]:
    """What a re-run must leave exactly as it was."""
    s3 = boto3.client("s3")
    bucket = stack.info.bucket

    def keys(prefix: str) -> list[str]:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    from mlflow import MlflowClient

    client = MlflowClient(stack.info.mlflow_uri)
    versions = {
        name: sorted(v.version for v in client.search_model_versions(f"name = '{name}'"))
        for name in (registered_model_name(s, t) for s in SYMBOLS for t in TRENDS)
    }
    runs = {
        f"{s}_{t}": len(client.search_runs([client.get_experiment_by_name(f"{s}_{t}").experiment_id]))
        for s in SYMBOLS
        for t in TRENDS
    }
    sfn = boto3.client("stepfunctions")
    arn = stack.info.state_machines["TrainingStateMachine"]
    executions = sorted(
        e["name"]
        for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=arn)
        for e in page["executions"]
    )
    return {
        "versions": versions,
        "runs": runs,
        "executions": executions,
        "predictions": [k for s in SYMBOLS for t in TRENDS for k in keys(predictions_prefix(s, t))],
        "notifications": keys(NOTIFICATIONS_PREFIX),
        "decisions": {
            key: s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            for key in keys("decisions/")
            if any(f"/{s}_" in key for s in SYMBOLS) and key.endswith(".json")
        },
    }


def _diff(before: Any, after: Any, path: str = "") -> list[str]:
    import json

    if isinstance(before, bytes) and isinstance(after, bytes):
        before, after = json.loads(before), json.loads(after)
    if isinstance(before, dict) and isinstance(after, dict):
        return [d for k in before.keys() | after.keys() for d in _diff(before.get(k), after.get(k), f"{path}.{k}")]
    return [] if before == after else [f"{path}: {before!r} -> {after!r}"]


@pytest.fixture(scope="module")
def first_replay(stack, tmp_path_factory) -> tuple[ReplaySummary, dict[str, Any]]:
    plots = tmp_path_factory.mktemp("plots")
    summary = replay(stack.info, symbols=SYMBOLS, start=START, days=DAYS, echo=print, plots_dir=plots)
    return summary, _state(stack)


def test_a_trigger_fires_for_a_stated_reason_and_the_state_machine_retrains(first_replay, stack):
    summary, state = first_replay
    fired = [entry for timeline in summary.models.values() for entry in timeline.triggers]
    assert fired, "no trigger fired in two weeks"
    for entry in fired:  # "11-09 schedule: champion is 8.0 days old (> 7)"
        reason, why = entry[6:].split(": ", 1)
        assert set(reason.split("+")) <= {"schedule", "no_model", "performance", "drift"} and why
    assert summary.executions, "a trigger fired but no training execution ran"
    assert set(summary.executions) <= set(state["executions"])
    sfn = boto3.client("stepfunctions")
    arn = stack.info.state_machines["TrainingStateMachine"]
    for name in summary.executions:
        execution = sfn.describe_execution(executionArn=f"{arn.replace(':stateMachine:', ':execution:')}:{name}")
        assert execution["status"] == "SUCCEEDED"
    # The day's decision records say the same as the replay saw.
    day = datetime.strptime(summary.executions[0].removeprefix("trigger-"), "%Y-%m-%d").replace(tzinfo=UTC)
    retrained = [
        (s, t)
        for s in SYMBOLS
        for t in TRENDS
        if decision_key(s, t, day) in state["decisions"]
        and b'"retrain": true' in state["decisions"][decision_key(s, t, day)]
    ]
    assert retrained


def test_promotions_and_rejections_are_recorded_and_the_new_version_is_served_without_a_failed_request(first_replay):
    summary, state = first_replay
    outcomes = [entry for timeline in summary.models.values() for entry in timeline.outcomes[1:]]  # after the initial
    assert any(" promoted: " in entry for entry in outcomes), outcomes
    assert any(" rejected: " in entry for entry in outcomes), outcomes
    assert summary.models_promoted >= 2  # at least one initial champion and one challenger
    swapped = {name: t.versions_served for name, t in summary.models.items() if len(t.versions_served) > 1}
    assert swapped and summary.swaps_observed >= 1
    for name, served in swapped.items():
        versions = [int(v) for v in served]
        assert versions == sorted(versions), f"{name} went back to an older version: {served}"
        assert str(versions[-1]) in state["versions"][registered_model_name(*name.split())]
    assert summary.requests > 500 and summary.failed_requests == 0 and summary.failed_requests_during_swaps == 0


def test_every_execution_notified_and_the_predictions_were_logged(first_replay):
    summary, state = first_replay
    assert summary.notifications_sent == len(summary.executions) + 1  # + the initial training
    assert all(item["subject"] and item["text"] for item in summary.notifications)
    assert state["predictions"], "no prediction was logged"
    resolved = sum(v["resolved"] for per_version in summary.live_accuracy.values() for v in per_version.values())
    assert resolved > 0, "no outcome came due in two weeks"


def test_each_champions_plots_and_the_last_psi_chart_are_copied_out(first_replay):
    from pathlib import Path

    summary, _ = first_replay
    champions = {name for name, t in summary.models.items() if t.versions_served}
    assert champions and set(summary.plots) >= champions
    for name in champions:
        names = {Path(f).name for f in summary.plots[name]}
        assert {"equity_curve.png", "shap_summary.png"} <= names, names
        assert any(n.endswith(".png") and "_psi_" in n for n in names), names
        for file in summary.plots[name]:
            assert Path(file).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_replaying_the_same_days_again_changes_nothing(first_replay, stack):
    _, before = first_replay
    again = replay(stack.info, symbols=SYMBOLS, start=START, days=DAYS, echo=print)
    after = _state(stack)
    for what in before:  # no new version, run, execution, prediction record, notification or decision
        if isinstance(before[what], dict):
            changed = {k for k in before[what].keys() | after[what].keys() if before[what].get(k) != after[what].get(k)}
            first = sorted(changed)[0] if changed else None
            assert not changed, (
                f"{what} changed on the re-run: {sorted(changed)}; first: {_diff(before[what].get(first), after[what].get(first))}"
            )
        else:
            assert after[what] == before[what], f"{what}: {sorted(set(after[what]) ^ set(before[what]))}"
    assert again.executions == [] and again.notifications_sent == 0
    assert again.failed_requests == 0 and again.swaps_observed == 0


def test_the_backtest_makes_the_same_decisions_as_the_live_loop(first_replay, stack):
    """The same two weeks through `retrain backtest`'s engine (the pure functions on in-memory twins, no moto,
    no MLflow) and through the embedded stack (Lambdas, the real state machine, MLflow, S3): the same trigger
    decisions every day, the same versions promoted or rejected, the same probabilities served."""
    import json
    import re
    from datetime import timedelta

    from common.aws.storage import S3ObjectStore
    from common.backtest.replay import ModelUnit, backtest_model
    from common.core.settings import load_settings
    from common.data.ohlcv import parse_ohlcv_csv
    from common.data.prediction_log import read_records
    from common.loop.policies import parse_policies
    from tests.conftest import PROJECT_ROOT

    summary, state = first_replay
    settings = load_settings(symbols=SYMBOLS)  # the handlers' settings: the stack's environment
    store = S3ObjectStore(stack.info.bucket)
    end = START + timedelta(days=DAYS)
    compared = 0
    for symbol in SYMBOLS:
        bars = parse_ohlcv_csv((PROJECT_ROOT / "sample_data" / "ohlcv" / "1d" / f"{symbol}.csv").read_bytes())
        for trend in TRENDS:
            result, _ = backtest_model(
                ModelUnit(symbol, trend), bars, base=settings, policies=parse_policies("default"), start=START, end=end
            )
            run = result["policies"]["default"]
            # Trigger decisions, day by day, against the records the live check wrote.
            for decision in run["decisions"]:
                day = datetime.fromisoformat(decision["day"]).replace(tzinfo=UTC)
                live = json.loads(state["decisions"][decision_key(symbol, trend, day)])
                assert decision["retrain"] == live["retrain"], (symbol, trend, decision, live["reasons"])
                assert {k: v["status"] for k, v in live["triggers"].items()} == decision["triggers"]
                compared += 1
            # Trainings: the same day, outcome and version ("11-09 promoted: v2 ...").
            live_outcomes = []
            for entry in summary.models[f"{symbol} {trend}"].outcomes:
                match = re.match(r"(\d\d-\d\d) (\w+): (?:v(\d+) )?", entry)
                assert match, entry
                live_outcomes.append((match.group(1), match.group(2), match.group(3)))
            ours = [(t["day"][5:], t["status"], t["version"]) for t in run["trainings"]]
            assert ours == live_outcomes, (symbol, trend)
            # Served probabilities: the live prediction log against the backtest's served predictions.
            logged = {
                (r.bar.isoformat(), r.model_version): r.prediction_prob
                for r in read_records(store, symbol, trend, since=START, until=end + timedelta(days=1), interval="1d")
            }
            served = {(s["bar"], s["version"]): s["probability"] for s in run["served"]}
            assert served.keys() == logged.keys(), (symbol, trend)
            for key, probability in served.items():
                assert abs(probability - logged[key]) < 1e-9, (symbol, trend, key)
    assert compared == len(SYMBOLS) * len(TRENDS) * DAYS
