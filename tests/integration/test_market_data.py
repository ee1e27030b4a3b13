"""Market data on the real local stack: the seeded store, the ingest function invoked through moto's
Lambda API with an EventBridge event, its schedule, and the data commands of the CLI as a user runs them."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import boto3
import pandas as pd
import pytest

from common.core.keys import ohlcv_key
from common.data.features import FEATURE_NAMES, compute_features
from common.data.ohlcv import parse_ohlcv_csv
from tests.conftest import PROJECT_ROOT
from tests.integration.conftest import clean_environment, run_cli

pytestmark = pytest.mark.integration

SAMPLE = PROJECT_ROOT / "sample_data" / "ohlcv"


def _client_env(stack, **overrides: str) -> dict[str, str]:
    return clean_environment(**stack.info.client_environment(), **overrides)


def test_seeding_stored_the_clean_sample_series_byte_for_byte(stack):
    s3 = boto3.client("s3")
    for interval, symbol in (("1d", "BTC"), ("1d", "ETH"), ("1h", "ETH")):
        body = s3.get_object(Bucket=stack.info.bucket, Key=ohlcv_key(symbol, interval))["Body"].read()
        assert body == (SAMPLE / interval / f"{symbol}.csv").read_bytes()


def test_the_day_is_scheduled_after_the_close_and_nothing_else_is(stack):
    """One schedule per interval (the template's DaySchedule and HourSchedule) starts the day state machine,
    whose first step is ingestion, for the pool's models of that interval; no function has a cron rule of its
    own any more."""
    scheduler = boto3.client("scheduler")
    schedules = [scheduler.get_schedule(Name=s["Name"]) for s in scheduler.list_schedules()["Schedules"]]
    found = {(s["ScheduleExpression"], s["Target"]["Arn"], s["Target"]["Input"]) for s in schedules}
    day = stack.info.state_machines["DayStateMachine"]
    assert found == {
        ("cron(5 0 * * ? *)", day, '{"as_of": "<aws.scheduler.scheduled-time>", "interval": "1d"}'),
        ("cron(5 * * * ? *)", day, '{"as_of": "<aws.scheduler.scheduled-time>", "interval": "1h"}'),
    }
    assert boto3.client("events").list_rules()["Rules"] == []


def test_ingest_function_through_the_lambda_api_is_idempotent(stack):
    awslambda = boto3.client("lambda")
    event = json.loads((PROJECT_ROOT / "tests" / "events" / "schedule.json").read_text())
    event["time"] = "2025-02-22T00:05:00Z"
    versions_before = _versions(stack)

    response = awslambda.invoke(FunctionName=stack.info.functions["IngestFunction"], Payload=json.dumps(event))
    result = json.loads(response["Payload"].read())

    assert "FunctionError" not in response, result
    assert result["provider"] == "replay" and result["failed"] == []  # the local stack never leaves the machine
    assert {s["status"] for s in result["symbols"]} == {"unchanged"}
    assert _versions(stack) == versions_before


def test_ingest_function_rejects_a_malformed_event_as_a_function_error(stack):
    awslambda = boto3.client("lambda")
    event = json.loads((PROJECT_ROOT / "tests" / "events" / "schedule.json").read_text())
    event["detail"] = {"symbols": ["not a ticker"]}
    response = awslambda.invoke(FunctionName=stack.info.functions["IngestFunction"], Payload=json.dumps(event))
    error = json.loads(response["Payload"].read())
    assert response.get("FunctionError") and error["errorType"] == "ValidationError"


def _versions(stack) -> int:
    s3 = boto3.client("s3")
    return len(s3.list_object_versions(Bucket=stack.info.bucket, Prefix="ohlcv/").get("Versions", []))


# --- the CLI --------------------------------------------------------------------------------------------
def test_features_command_writes_the_table_training_uses(stack, tmp_path: Path):
    out = tmp_path / "btc.csv"
    done = run_cli(
        "features", "BTC", "--interval", "1d", "--end", "2024-12-31", "--csv", str(out), env=_client_env(stack)
    )
    assert done.returncode == 0, done.stderr

    with out.open() as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["date", *FEATURE_NAMES]
    bars = parse_ohlcv_csv((SAMPLE / "1d" / "BTC.csv").read_bytes()).loc[:"2024-12-31"]
    assert len(rows) - 1 == len(bars) and rows[-1][0] == "2024-12-31"
    expected = compute_features(bars).iloc[-1]
    written = pd.Series([float(v) for v in rows[-1][1:]], index=list(FEATURE_NAMES))
    pd.testing.assert_series_equal(written, expected, check_names=False, rtol=1e-12)
    assert "3759 usable closed bars" in done.stderr


def test_features_command_prints_the_last_rows(stack):
    done = run_cli("features", "ETH", "--interval", "1h", "--end", "2025-02-01", "--tail", "3", env=_client_env(stack))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:2] == ["date", "7_day_ADX"]
    assert lines[3].startswith("2025-02-01 23:00:00")
    assert "last 3 of" in lines[-1]


def test_features_command_names_an_unknown_symbol(stack):
    done = run_cli("features", "NOPE", env=_client_env(stack))
    assert done.returncode == 2
    assert "no 1d bars for NOPE" in done.stderr and "BTC,ETH" in done.stderr
    assert "Traceback" not in done.stderr


def test_validate_command_reports_every_series(stack):
    done = run_cli("validate", "--as-of", "2025-02-21", "--json", env=_client_env(stack, RETRAIN_SYMBOLS="BTC,ETH"))
    assert done.returncode == 0, done.stderr
    reports = {r["symbol"]: r for r in json.loads(done.stdout)}
    assert set(reports) == {"BTC", "ETH"}  # as configured, although the stack also holds XRP
    assert reports["BTC"]["rejected_rows"] == 0 and not reports["BTC"]["stale"]
    assert reports["BTC"]["last_closed_bar"].startswith("2025-02-20")


def test_validate_command_names_configured_symbols_without_data(stack):
    done = run_cli("validate", "--as-of", "2025-02-21", env=_client_env(stack))  # the default pool of 16
    assert done.returncode == 1
    assert "BTC 1d" in done.stdout and "clean" in done.stdout
    assert "XLM 1d" in done.stdout and "error: no 1d bars for XLM" in done.stdout


def test_ingest_command_with_the_replay_provider(stack):
    done = run_cli(
        "ingest",
        "--provider",
        "replay",
        "--symbols",
        "BTC,ETH",
        "--as-of",
        "2025-02-22",
        "--json",
        env=_client_env(stack),
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["appended"] == 0 and summary["failed"] == [] and summary["provider"] == "replay"
    assert "BTC: unchanged" in done.stderr
