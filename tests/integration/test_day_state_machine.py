"""The day state machine (infra/day.asl.json) on the embedded stack: moto's interpreter runs the real ASL, the
real handlers, and the training state machine nested in it.

ADA is no other test's symbol: it is seeded here up to the day before, so the day's ingestion appends one bar,
the check finds no champion and the nested training trains both trends. ZZZ has no data at all.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from common.aws.storage import S3ObjectStore
from common.core.keys import decision_key
from common.data.prediction_log import predictions_prefix
from common.registry.mlflow_registry import Registry
from retrain.executions import execution_arn, last_state, run_execution
from retrain.stack import sample_data
from retrain.stack.config import LocalStackConfig

pytestmark = pytest.mark.integration

DAY = datetime(2024, 9, 15, tzinfo=UTC)  # no other test's trigger-check execution name
AS_OF = DAY + timedelta(minutes=5)


def _day(stack, name: str, symbols: list[str]):
    sfn = boto3.client("stepfunctions")
    payload = {"as_of": AS_OF.isoformat(), "symbols": symbols}
    result = run_execution(sfn, stack.info.state_machines["DayStateMachine"], name, payload, timeout_s=600)
    return sfn, result


def _entered(result) -> list[str]:
    return [step.state for step in result.steps if step.kind == "TaskStateEntered"]


def test_a_day_ingests_checks_trains_nested_predicts_and_fails_visibly_for_a_symbol_not_ingested(stack):
    store = S3ObjectStore(stack.info.bucket)
    sample_data.seed(store, LocalStackConfig().sample_data_dir, ("ADA",), until=DAY - timedelta(days=1))

    sfn, result = _day(stack, "it-day-partial", ["ADA", "ZZZ"])

    # Everything ran, one step after the other, and then the day failed for what it could not do.
    assert _entered(result) == ["Ingest", "Check", "Train", "BatchPredict"], result.steps
    assert (result.status, result.error) == ("FAILED", "Retrain.DayIncomplete"), result.cause
    cause = json.loads(result.cause)
    assert list(cause["not_ingested"]) == ["ZZZ"] and cause["failed_steps"]["training"] is None
    state = last_state(sfn, result.arn)
    assert state["ingestion"]["appended"] == 1 and state["ingestion"]["ready"] == ["ADA"]
    # The check saw the bar ingestion appended (its decisions are of ADA only), and named the day's training.
    assert {(d["symbol"], d["retrain"]) for d in state["check"]["decisions"]} == {("ADA", True)}
    assert state["check"]["training"]["name"] == "trigger-2024-09-15"
    assert store.exists(decision_key("ADA", "uptrend", AS_OF))
    # The nested training ran under that name, as its own execution of the training state machine.
    training = sfn.describe_execution(
        executionArn=execution_arn(stack.info.state_machines["TrainingStateMachine"], "trigger-2024-09-15")
    )
    assert training["status"] == "SUCCEEDED" and state["training"]["execution"] == training["executionArn"]
    results = {(r["symbol"], r["trend"]): r["status"] for r in state["training"]["results"]}
    assert set(results) == {("ADA", "uptrend"), ("ADA", "downtrend")}
    assert set(results.values()) <= {"promoted", "rejected"}, results
    # Predictions came after the trainings: a promoted champion predicted the day's bar.
    logged = state["predictions"]["predictions"]["models"]
    assert {(m["symbol"], m["trend"]) for m in logged} == set(results)
    for model in logged:
        expected = "written" if results[(model["symbol"], model["trend"])] == "promoted" else "skipped"
        assert model["status"] == expected, model
    if "promoted" in results.values():
        assert store.list_keys(predictions_prefix("ADA", "uptrend")) or store.list_keys(
            predictions_prefix("ADA", "downtrend")
        )


def test_a_failed_ingestion_fails_the_day_before_anything_is_checked(stack):
    _, result = _day(stack, "it-day-ingest-fails", ["ada"])  # the ingest handler refuses a lower-case ticker

    assert (result.status, result.error) == ("FAILED", "Retrain.IngestionFailed")
    assert "ValidationError" in result.cause and "symbols" in result.cause
    assert _entered(result) == ["Ingest"]


HOUR = datetime(2024, 9, 15, 13, tzinfo=UTC)  # an hour of the same day: its own execution names


def test_an_hour_runs_the_same_machine_for_hourly_models_under_their_own_names(stack):
    """The hourly schedule's run: LINK's hourly bar is ingested, its hourly models checked (decisions of the
    hour), trained under hourly names with hourly settings, and their predictions logged under hourly keys."""
    store = S3ObjectStore(stack.info.bucket)
    sample_data.seed(store, LocalStackConfig().sample_data_dir, ("LINK",), until=HOUR - timedelta(hours=1))
    sfn = boto3.client("stepfunctions")
    as_of = HOUR + timedelta(minutes=5)
    payload = {"as_of": as_of.isoformat(), "interval": "1h", "symbols": ["LINK"]}
    machine = stack.info.state_machines["DayStateMachine"]
    result = run_execution(sfn, machine, "it-hour-link", payload, timeout_s=900)

    assert result.status == "SUCCEEDED", (result.error, result.cause)
    assert _entered(result) == ["Ingest", "Check", "Train", "BatchPredict"], result.steps
    state = result.output
    assert state["ingestion"]["appended"] == 1 and state["ingestion"]["ready"] == ["LINK"]
    assert {(d["symbol"], d["interval"]) for d in state["check"]["decisions"]} == {("LINK", "1h")}
    assert state["check"]["training"]["name"] == "trigger-1h-2024-09-15T1305"
    assert store.exists(decision_key("LINK", "uptrend", as_of, interval="1h"))
    assert not store.exists(decision_key("LINK", "uptrend", as_of))  # no daily record was written
    results = state["training"]["results"]
    assert {(r["symbol"], r["trend"], r["interval"]) for r in results} == {
        ("LINK", "uptrend", "1h"),
        ("LINK", "downtrend", "1h"),
    }
    manifest = store.get_json("runs/trigger-1h-2024-09-15T1305/LINK_1h_uptrend/dataset.json")
    assert manifest["interval"] == "1h" and manifest["target_pct"] == 0.005  # the hourly label threshold
    registry = Registry(stack.info.mlflow_uri)
    for r in results:
        if r["status"] == "promoted":
            champion = registry.version_by_alias(f"LINK_1h_{r['trend']}_model", "champion")
            assert champion is not None and champion.version == str(r["version"])
            assert store.list_keys(predictions_prefix("LINK", r["trend"], "1h"))
    assert all(m["interval"] == "1h" for m in state["predictions"]["predictions"]["models"])


def test_a_run_for_an_interval_without_models_succeeds_at_once(stack):
    """The hourly schedule of a pool with no hourly model: nothing to ingest, check or predict, and no
    failed execution (which would page someone every hour)."""
    sfn = boto3.client("stepfunctions")
    payload = {"as_of": (HOUR + timedelta(minutes=5)).isoformat(), "interval": "1h"}
    result = run_execution(sfn, stack.info.state_machines["DayStateMachine"], "it-hour-empty", payload, timeout_s=300)

    assert result.status == "SUCCEEDED", (result.error, result.cause)
    assert _entered(result) == ["Ingest"]
    assert result.output["ingestion"]["pool_count"] == 0
