"""Make the event files that `sam local generate-event` cannot make (see README.md in this folder).

    .venv/bin/python tests/events/make_events.py predict-body > tests/events/predict_body.json
    .venv/bin/python tests/events/make_events.py task-inputs [--out tests/events]

``predict-body``: the body of ``POST /predict`` for BTC uptrend: the 19 features of BTC's last closed bar at
2025-02-20T00:00Z (the 2025-02-19 bar), computed from the sample data exactly as training computes them.

``task-inputs``: what each Step Functions task of ``infra/training.asl.json`` passes its Lambda. SAM offers
only a Step Functions *error* event, and a Task's Payload is whatever the ASL's ``ItemSelector`` and
``Parameters`` make of the execution input and of the previous tasks' results. So this runs the real
definition once on the embedded stack (moto's ASL interpreter, the real handlers, a real MLflow server;
no Docker, nothing leaves the machine) and records each Lambda's payload as the interpreter sent it.
The execution retrains BTC uptrend (full zoo, about a minute) and asks for SOL downtrend, which has no
data in that stack, so NotifyOperator receives one promoted and one failed result (PrepareDataset's
``DataNotFoundError`` as the ``Catch`` recorded it).

``backtest-inputs``: the same for ``infra/backtest.asl.json`` (no MLflow needed): BTC uptrend replayed over 20
days with LightGBM under ``never`` and ``default`` (a few seconds), and SOL downtrend, which has no data in that
stack, so Summarize receives one done and one failed result.

    .venv/bin/python tests/events/make_events.py backtest-inputs [--out tests/events]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

EXECUTION_NAME = "sample-run-2025-02-20"
EXECUTION_INPUT: dict[str, Any] = {
    "models": [
        {"symbol": "BTC", "trend": "uptrend", "reason": "drift"},
        {"symbol": "SOL", "trend": "downtrend", "reason": "schedule"},
    ],
    "as_of": "2025-02-20T00:00:00Z",
}
# Logical id in template.yaml -> file holding the payload its first invocation received.
TASK_FILES = {
    "PrepareDatasetFunction": "sfn_prepare_dataset.json",
    "TrainModelFunction": "sfn_train_model.json",
    "PromoteModelFunction": "sfn_promote_model.json",
    "NotifyFunction": "sfn_notify.json",
}


BACKTEST_EXECUTION_NAME = "sample-backtest-2024-11"
BACKTEST_EXECUTION_INPUT: dict[str, Any] = {
    "models": [{"symbol": "BTC", "trend": "uptrend"}, {"symbol": "SOL", "trend": "downtrend"}],
    "start": "2024-11-01",
    "end": "2024-11-21",
    "policies": ["never", "default"],
    "classifiers": ["lightgbm"],
    "replicates": 200,
}
# Logical id in template.yaml -> file holding the payload it received (the model function: BTC uptrend's).
BACKTEST_FILES = {
    "BacktestModelFunction": "backtest_model.json",
    "BacktestSummarizeFunction": "backtest_summarize.json",
}


def predict_body() -> dict[str, Any]:
    from common.data.features import FEATURE_NAMES, compute_features
    from common.data.ohlcv import closed_mask, parse_ohlcv_csv

    csv = (ROOT / "sample_data" / "ohlcv" / "1d" / "BTC.csv").read_bytes()
    bars = parse_ohlcv_csv(csv)
    bars = bars.loc[closed_mask(bars.index, "1d", datetime(2025, 2, 20, tzinfo=UTC))]
    row = compute_features(bars)[list(FEATURE_NAMES)].iloc[-1]
    return {"symbol": "BTC", "trend_type": "uptrend", "rows": [{name: float(row[name]) for name in FEATURE_NAMES}]}


def run_and_record(
    machine: str, name: str, execution_input: dict[str, Any], *, with_mlflow: bool = True
) -> list[tuple[str, Any]]:
    """Execute the template's state machine ``machine`` once on a fresh embedded stack holding BTC's bars;
    return every Lambda payload in the order the interpreter sent them, as (function logical id, payload)."""
    import boto3

    from retrain.stack.config import LocalStackConfig
    from retrain.stack.embedded import EmbeddedStack

    captured: list[tuple[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="retrain-events-") as state_dir:
        config = LocalStackConfig(
            moto_port=0, mlflow_port=0, state_dir=Path(state_dir), symbols=("BTC",), with_mlflow=with_mlflow
        )
        with EmbeddedStack(config, progress=lambda message: print(message, file=sys.stderr)) as stack:
            assert stack.router is not None and stack.info is not None
            by_name = {name: logical_id for logical_id, name in stack.info.functions.items()}
            route = stack.router.invoke

            def recording(function_name: str, payload: Any, headers: dict[str, Any]) -> bytes:
                logical_id = by_name.get(function_name.split(":")[-1], function_name)
                captured.append((logical_id, json.loads(payload) if payload else {}))
                return route(function_name, payload, headers)

            stack.router.invoke = recording  # type: ignore[method-assign]
            sfn = boto3.client("stepfunctions")
            arn = sfn.start_execution(
                stateMachineArn=stack.info.state_machines[machine], name=name, input=json.dumps(execution_input)
            )["executionArn"]
            while (execution := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
                time.sleep(1)
            if execution["status"] != "SUCCEEDED":
                raise SystemExit(f"execution {execution['status']}: {execution.get('cause')}")
    return captured


def capture_task_inputs(out: Path) -> dict[str, Any]:
    captured = run_and_record("TrainingStateMachine", EXECUTION_NAME, EXECUTION_INPUT)
    files = {"sfn_execution_input.json": EXECUTION_INPUT}
    for logical_id, name in TASK_FILES.items():
        payloads = [payload for function, payload in captured if function == logical_id]
        if not payloads:
            raise SystemExit(f"{logical_id} was never invoked; captured: {[f for f, _ in captured]}")
        files[name] = payloads[0]
    for result in files["sfn_notify.json"]["results"]:
        if "cause" in result:
            result["cause"] = _without_stack_trace(result["cause"])
    for name, content in files.items():
        (out / name).write_text(json.dumps(content, indent=2) + "\n")
        print(f"wrote {out / name}", file=sys.stderr)
    return files


def capture_backtest_inputs(out: Path) -> dict[str, Any]:
    captured = run_and_record(
        "BacktestStateMachine", BACKTEST_EXECUTION_NAME, BACKTEST_EXECUTION_INPUT, with_mlflow=False
    )
    first = BACKTEST_EXECUTION_INPUT["models"][0]
    files: dict[str, Any] = {"backtest_execution_input.json": BACKTEST_EXECUTION_INPUT}
    for logical_id, name in BACKTEST_FILES.items():
        # Map iterations run concurrently: the model function's file is the first model's payload, whatever ran first.
        payloads = [
            payload
            for function, payload in captured
            if function == logical_id
            and (
                logical_id != "BacktestModelFunction"
                or (payload.get("symbol"), payload.get("trend")) == tuple(first.values())
            )
        ]
        if not payloads:
            raise SystemExit(f"{logical_id} was never invoked as expected; captured: {[f for f, _ in captured]}")
        files[name] = payloads[0]
    for result in files["backtest_summarize.json"]["results"]:
        if result.get("cause"):
            result["cause"] = _without_stack_trace(result["cause"])
    for name, content in files.items():
        (out / name).write_text(json.dumps(content, indent=2) + "\n")
        print(f"wrote {out / name}", file=sys.stderr)
    return files


def _without_stack_trace(cause: str) -> str:
    """A failed task's Cause is the Lambda error JSON; its stackTrace holds this machine's file paths
    (on AWS: /var/task/...), so the sample keeps errorType and errorMessage and an empty trace."""
    try:
        error = json.loads(cause)
    except ValueError:
        return cause
    return json.dumps({**error, "stackTrace": []}, separators=(",", ":")) if isinstance(error, dict) else cause


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("predict-body", help="print the POST /predict body (BTC uptrend, 2025-02-19 bar)")
    tasks = commands.add_parser("task-inputs", help="record the state machine's task payloads on the local stack")
    tasks.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    backtest = commands.add_parser("backtest-inputs", help="the same for the backtest state machine")
    backtest.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    args = parser.parse_args(argv)
    if args.command == "predict-body":
        print(json.dumps(predict_body(), indent=2))
    elif args.command == "backtest-inputs":
        capture_backtest_inputs(args.out)
    else:
        capture_task_inputs(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
