"""The embedded stack, started once for the integration tests: moto server on a free loopback port,
Lambda routed to the real handlers in this process, a real MLflow server with artifacts in moto S3."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from retrain.stack.config import LocalStackConfig
from retrain.stack.embedded import EmbeddedStack

STACK_SYMBOLS = ("BTC", "ETH", "XRP")  # XRP: trained only by test_training_pipeline
# The test stack trains a reduced zoo (one tree model, one linear) so a run takes seconds, not a minute.
# The plumbing tests need champions on short, fixed windows, so the test stack decides with the seed's
# rules (they pass the reduced zoo's models there); the default rules, which often refuse to serve, are
# tested on their own (unit tests on the memory twins, the backtest) and run end to end by `make demo`.
SEED_RULES = {
    "RETRAIN_GATE_RULE": "original",
    "RETRAIN_GATE_USE_HONEST": "false",
    "RETRAIN_PERF_RULE": "window",
    "RETRAIN_PROMOTION_RULE": "not_worse",
    "RETRAIN_SUSPEND_ON_EVIDENCE": "false",
}
FAST_TRAINING = {"RETRAIN_TRAIN_CLASSIFIERS": "lightgbm,ridge", "RETRAIN_SHAP_MAX_ROWS": "50", **SEED_RULES}
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def clean_environment(**overrides: str) -> dict[str, str]:
    """This process's environment without any retrain/AWS/MLflow configuration, plus ``overrides``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RETRAIN_", "AWS_", "MLFLOW_", "_RETRAIN_"))}
    env.update(overrides)
    return env


def run_cli(*args: str, env: dict[str, str], timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """``retrain ARGS`` as a user runs it: a separate process, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "retrain.cli", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def stack_config(state_dir: Path, **overrides: object) -> LocalStackConfig:
    return LocalStackConfig(moto_port=0, mlflow_port=0, state_dir=state_dir, symbols=STACK_SYMBOLS, **overrides)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    os.environ.update(FAST_TRAINING)  # the handlers run in this process and read it
    embedded = EmbeddedStack(stack_config(tmp_path_factory.mktemp("stack")))
    info = embedded.start()
    # The autouse isolation fixture must keep what the stack set for the handlers and clients.
    owned = set(info.client_environment()) | {n for n in os.environ if n.startswith(("RETRAIN_", "AWS_", "MLFLOW_"))}
    os.environ["_RETRAIN_TEST_STACK_VARS"] = ",".join(sorted(owned))
    try:
        yield embedded
    finally:
        os.environ.pop("_RETRAIN_TEST_STACK_VARS", None)
        embedded.stop()
        for name in FAST_TRAINING:
            os.environ.pop(name, None)
