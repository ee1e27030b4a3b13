"""Bad configuration gets a clear one-line error and exit code 2, never a traceback, and starts nothing."""

from __future__ import annotations

import socket
import subprocess

import pytest

from tests.integration.conftest import clean_environment, run_cli

pytestmark = pytest.mark.integration


def _retrain(*args: str, **env_overrides: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, env=clean_environment(**env_overrides), timeout=120)


def _assert_clear_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stderr.startswith("error: ")
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


def test_unknown_symbol(tmp_path):
    result = _retrain("demo", "--symbols", "BTC,NOPE", RETRAIN_LOCAL_STATE_DIR=str(tmp_path))
    _assert_clear_error(result, "unknown symbol", "NOPE", "available: AAVE,ADA")
    assert not (tmp_path / "stack.json").exists()


def test_malformed_symbol_in_environment(tmp_path):
    result = _retrain("demo", RETRAIN_SYMBOLS="btc;eth", RETRAIN_LOCAL_STATE_DIR=str(tmp_path))
    _assert_clear_error(result, "RETRAIN_SYMBOLS")


@pytest.mark.parametrize("uri", ["ftp://mlflow.example.com", "localhost:5000", "http://"])
def test_bad_tracking_uri(tmp_path, uri):
    result = _retrain("demo", MLFLOW_TRACKING_URI=uri, RETRAIN_LOCAL_STATE_DIR=str(tmp_path))
    _assert_clear_error(result, "RETRAIN_MLFLOW_TRACKING_URI", uri)


def test_bad_number(tmp_path):
    result = _retrain("demo", RETRAIN_PREDICTION_WINDOW="ten", RETRAIN_LOCAL_STATE_DIR=str(tmp_path))
    _assert_clear_error(result, "RETRAIN_PREDICTION_WINDOW")


def test_port_in_use(tmp_path):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        result = _retrain(
            "up",
            RETRAIN_LOCAL_MOTO_PORT=str(port),
            RETRAIN_LOCAL_MLFLOW_PORT="0",
            RETRAIN_LOCAL_STATE_DIR=str(tmp_path),
        )
    _assert_clear_error(result, f"port {port}", "already in use", "RETRAIN_LOCAL_MOTO_PORT")
    assert not (tmp_path / "stack.json").exists()


def test_bad_local_stack_setting(tmp_path):
    result = _retrain("up", RETRAIN_LOCAL_MOTO_PORT="99999", RETRAIN_LOCAL_STATE_DIR=str(tmp_path))
    _assert_clear_error(result, "RETRAIN_LOCAL_MOTO_PORT")


def test_bad_as_of_argument():
    result = _retrain("demo", "--start", "yesterday")
    assert result.returncode == 2 and "is not a date" in result.stderr and "Traceback" not in result.stderr


def test_a_demo_past_the_sample_data_is_refused_before_anything_starts(tmp_path):
    result = _retrain("demo", "--start", "2025-02-01", "--days", "30", RETRAIN_LOCAL_STATE_DIR=str(tmp_path))
    _assert_clear_error(result, "goes past the sample data", "2025-02-21")
    result = _retrain("demo", "--classifiers", "lightgbm,nope", RETRAIN_LOCAL_STATE_DIR=str(tmp_path))
    _assert_clear_error(result, "RETRAIN_TRAIN_CLASSIFIERS", "nope")
