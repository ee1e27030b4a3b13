"""The backtest state machine (infra/backtest.asl.json) on the embedded stack: moto's interpreter runs the Map over
models against functions/backtest/app.py, one invocation per (symbol, trend), then the report.

Each unit's JSON in the bucket is exactly what :func:`common.backtest.replay.backtest_model` gives in this process on the
bars `retrain backtest` reads (the sample CSV) with the settings it builds, and the report's summary is the
summary of those results; a model without data fails its own iteration, recorded, and the others complete.
BTC over 20 days with LightGBM, policies never and default (default's schedule retrains twice): about 20 s.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from common.backtest.replay import ModelUnit, backtest_model
from common.backtest.stats import summarize
from common.core.keys import backtest_report_key, backtest_unit_key
from common.core.settings import load_settings
from common.loop.policies import DEFAULT_POLICY, parse_policies
from retrain.backtest import read_series
from retrain.executions import ExecutionResult, run_execution
from tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.integration

RUN_ID = "it-backtest"
START, END = datetime(2024, 11, 1, tzinfo=UTC), datetime(2024, 11, 21, tzinfo=UTC)
POLICIES = ["never", "default"]
CLASSIFIERS = ["lightgbm"]
REPLICATES = 200
MODELS = [{"symbol": "BTC", "trend": "uptrend"}, {"symbol": "BTC", "trend": "downtrend"}]
NO_DATA = {"symbol": "NODATA", "trend": "uptrend"}  # a valid name the bucket holds no series for
REPORT_FILES = {"report.md", "backtest.json", "timings.json", "pareto.png", "equity.png", "estimate_vs_live.png"}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def execution(stack) -> ExecutionResult:
    payload = {
        "models": [MODELS[0], NO_DATA, MODELS[1]],
        "start": f"{START:%Y-%m-%d}",
        "end": f"{END:%Y-%m-%d}",
        "policies": POLICIES,
        "classifiers": CLASSIFIERS,
        "replicates": REPLICATES,
        "max_concurrency": 2,
    }
    sfn = boto3.client("stepfunctions")
    return run_execution(sfn, stack.info.state_machines["BacktestStateMachine"], RUN_ID, payload, timeout_s=240)


@pytest.fixture(scope="module")
def local_results() -> list[dict[str, Any]]:
    """The same units computed here, as `retrain backtest` computes them (its CSV reader, its settings)."""
    results = []
    for model in MODELS:
        settings = load_settings(symbols=(model["symbol"],), interval="1d", train_classifiers=tuple(CLASSIFIERS))
        bars = read_series(PROJECT_ROOT / "sample_data" / "ohlcv", "1d", model["symbol"])
        result, _ = backtest_model(
            ModelUnit(model["symbol"], model["trend"], "1d"),
            bars,
            base=settings,
            policies=parse_policies(",".join(POLICIES)),
            start=START,
            end=END,
        )
        results.append(json.loads(json.dumps(result)))  # as JSON holds it (tuples become lists)
    return results


def _get(stack, key: str) -> bytes:
    return boto3.client("s3").get_object(Bucket=stack.info.bucket, Key=key)["Body"].read()


def test_execution_succeeds_with_one_result_per_model(execution: ExecutionResult) -> None:
    assert execution.status == "SUCCEEDED", (execution.error, execution.cause)
    results = execution.output["results"]
    assert [(r["symbol"], r["trend"]) for r in results] == [
        (m["symbol"], m["trend"]) for m in (MODELS[0], NO_DATA, MODELS[1])
    ]
    assert [r["status"] for r in results] == ["done", "failed", "done"]
    entered = [s.state for s in execution.steps if s.kind == "TaskStateEntered"]
    assert entered.count("BacktestModel") == 3 and entered[-1] == "Summarize"


def test_a_model_without_data_fails_only_its_own_iteration(stack, execution: ExecutionResult) -> None:
    failed = execution.output["results"][1]
    assert failed["error"] == "DataNotFoundError"
    assert "no 1d bars for NODATA" in json.loads(failed["cause"])["errorMessage"]
    keys = [
        o["Key"]
        for o in boto3.client("s3").list_objects_v2(Bucket=stack.info.bucket, Prefix=f"backtests/{RUN_ID}/units/")[
            "Contents"
        ]
    ]
    assert sorted(keys) == sorted(backtest_unit_key(RUN_ID, m["symbol"], m["trend"]) for m in MODELS)
    report = execution.output["summary"]["report"]
    assert report["models"] == ["BTC uptrend", "BTC downtrend"]
    assert [(f["model"], f["error"]) for f in report["failed_models"]] == [("NODATA uptrend", "DataNotFoundError")]


def test_each_unit_is_the_json_the_engine_gives_locally(stack, execution, local_results) -> None:
    for model, local, result in zip(
        MODELS, local_results, [execution.output["results"][i] for i in (0, 2)], strict=True
    ):
        key = backtest_unit_key(RUN_ID, model["symbol"], model["trend"])
        assert result["key"] == key
        unit = json.loads(_get(stack, key))
        assert unit["result"] == local, f"{key} differs from backtest_model on the same bars and settings"
        assert unit["timings"]["model"] == f"{model['symbol']} {model['trend']}"
        runs = local["policies"]
        assert result["trainings"] == {name: len(run["trainings"]) for name, run in runs.items()}
        assert result["final_champion"] == {name: run["final_champion"] for name, run in runs.items()}
    assert execution.output["results"][0]["trainings"]["default"] > execution.output["results"][0]["trainings"]["never"]


def test_the_report_is_written_and_summarises_the_units(stack, execution, local_results) -> None:
    report = execution.output["summary"]["report"]
    assert report["files"] == {name: backtest_report_key(RUN_ID, name) for name in REPORT_FILES}
    for name in REPORT_FILES - {"report.md", "backtest.json", "timings.json"}:
        assert _get(stack, report["files"][name]).startswith(PNG_SIGNATURE), name
    assert _get(stack, report["files"]["report.md"]).decode().startswith("# Backtest 2024-11-01 .. 2024-11-21")
    document = json.loads(_get(stack, report["files"]["backtest.json"]))
    assert document["models"] == local_results
    settings = load_settings(interval="1d", train_classifiers=tuple(CLASSIFIERS))
    expected = summarize(
        local_results,
        policies=POLICIES,
        default=DEFAULT_POLICY,
        interval="1d",
        horizon=settings.prediction_window,
        cost_per_trade=settings.cost_per_trade,
        replicates=REPLICATES,
    )
    assert document["summary"] == json.loads(json.dumps(expected))
    meta = document["meta"]
    assert (meta["start"], meta["end"]) == (START.isoformat(), END.isoformat())
    assert meta["models"] == ["BTC uptrend", "BTC downtrend"] and meta["classifiers"] == CLASSIFIERS
    assert [p["name"] for p in meta["policies"]] == POLICIES and meta["run_id"] == RUN_ID
    assert [f["model"] for f in meta["failed_models"]] == ["NODATA uptrend"]
    timings = json.loads(_get(stack, report["files"]["timings.json"]))
    assert [t["model"] for t in timings["units"]] == meta["models"] and timings["jobs"] == 2
    assert timings["trainings_computed"] >= 2 and timings["wall_s"] > 0
