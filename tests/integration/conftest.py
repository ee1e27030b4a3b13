"""The embedded stack, started once for the integration tests: moto server on a free loopback port,
Lambda routed to the real handlers in this process, a real MLflow server with artifacts in moto S3."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from retrain.stack.config import LocalStackConfig
from retrain.stack.embedded import EmbeddedStack

STACK_SYMBOLS = ("BTC", "ETH")


def stack_config(state_dir: Path, **overrides: object) -> LocalStackConfig:
    return LocalStackConfig(moto_port=0, mlflow_port=0, state_dir=state_dir, symbols=STACK_SYMBOLS, **overrides)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
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
