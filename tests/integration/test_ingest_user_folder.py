"""`retrain ingest --provider replay --replay-dir DIR` with a user's own CSV folder, as a user runs it
(issue 15, part 3): against the session stack, and with no stack running at all."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import boto3
import pytest

from common.core.keys import ohlcv_key
from tests.integration.conftest import clean_environment, run_cli
from tests.planted_csv import DAYS_STORED, REFUSED, SYMBOL, iso, write_clean, write_planted

pytestmark = pytest.mark.integration


def _versions(bucket: str, symbol: str) -> int:
    s3 = boto3.client("s3")
    return len(s3.list_object_versions(Bucket=bucket, Prefix=ohlcv_key(symbol, "1d")).get("Versions", []))


def test_each_refused_row_is_listed_in_text_and_json_and_a_backfill_rerun_changes_nothing(stack, tmp_path: Path):
    env = clean_environment(**stack.info.client_environment())
    folder = write_planted(tmp_path / "mine")
    write_planted(folder, f"{SYMBOL}T")
    ingest = ("ingest", "--provider", "replay", "--replay-dir", str(folder), "--as-of", "2024-03-01T00:05")

    done = run_cli(*ingest, "--symbols", SYMBOL, "--json", env=env)
    assert done.returncode == 0, done.stderr
    [item] = json.loads(done.stdout)["symbols"]
    assert (item["status"], item["appended"], item["rejected_rows"]) == ("created", DAYS_STORED, len(REFUSED))
    assert [(r["time"], r["kind"], r["reason"]) for r in item["rejections"]] == [
        (iso(label), kind, reason) for label, kind, reason in REFUSED
    ]

    text = run_cli(*ingest, "--symbols", f"{SYMBOL}T", env=env)
    assert text.returncode == 0, text.stderr
    rows = text.stdout.split("refused rows:\n", 1)[1].splitlines()
    for line, (label, kind, reason) in zip(rows, REFUSED, strict=True):
        assert line.strip().startswith(label) and kind in line and line.endswith(reason), line

    written = _versions(stack.info.bucket, SYMBOL)
    again = run_cli(*ingest, "--symbols", SYMBOL, "--backfill", "--json", env=env)
    assert again.returncode == 0, again.stderr
    [item] = json.loads(again.stdout)["symbols"]
    assert (item["status"], item["appended"], len(item["rejections"])) == ("unchanged", 0, len(REFUSED))
    assert _versions(stack.info.bucket, SYMBOL) == written
    assert "Traceback" not in done.stderr + text.stderr + again.stderr


def test_a_symbol_without_sample_data_is_ingested_with_no_stack_running(tmp_path: Path):
    """The stack started for the command no longer refuses ZQX for having no sample data: the folder given
    on the command line provides it. The bars outlive that stack (its state folder keeps them)."""
    folder = write_clean(tmp_path / "mine", "ZQX", date(2023, 1, 1), 400)
    env = clean_environment(
        RETRAIN_LOCAL_STATE_DIR=str(tmp_path / "state"), RETRAIN_LOCAL_MOTO_PORT="0", RETRAIN_LOCAL_MLFLOW_PORT="0"
    )
    done = run_cli(
        "ingest", "--provider", "replay", "--replay-dir", str(folder), "--symbols", "ZQX", "--as-of", "2024-03-01",
        "--json", env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "starting the local stack for this command" in done.stderr and "no sample data" not in done.stderr
    [item] = json.loads(done.stdout)["symbols"]
    assert (item["status"], item["appended"], item["first_bar"]) == ("created", 400, "2023-01-01T00:00:00+00:00")

    check = run_cli("validate", "--symbols", "ZQX", "--as-of", "2024-03-01", "--json", env=env)
    assert check.returncode == 0, check.stdout + check.stderr
    assert json.loads(check.stdout)[0]["rows_out"] == 400
    assert not (tmp_path / "state" / "stack.json").exists()  # both stacks stopped after their command
