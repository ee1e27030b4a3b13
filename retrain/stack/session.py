"""Which AWS and MLflow a command talks to: configured endpoints, a running local stack, or an
embedded stack started for the duration of the command."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

from common.settings import get_settings
from retrain.stack.config import LocalStackConfig, load_local_config
from retrain.stack.control import running_stack, start_daemon, stop_daemon
from retrain.stack.embedded import Progress, StackInfo


@dataclass(frozen=True)
class Connection:
    source: str  # "configured" | "local stack (pid N)" | "local stack started for this command"
    bucket: str
    state_machine_arn: str | None
    mlflow_uri: str | None
    stack: StackInfo | None = None


def configured() -> bool:
    return bool(os.environ.get("RETRAIN_DATA_BUCKET"))


@contextlib.contextmanager
def connect(config: LocalStackConfig | None = None, progress: Progress = print) -> Iterator[Connection]:
    config = config or load_local_config()
    if configured():
        yield Connection(
            source="configured",
            bucket=os.environ["RETRAIN_DATA_BUCKET"],
            state_machine_arn=os.environ.get("RETRAIN_STATE_MACHINE_ARN"),
            mlflow_uri=os.environ.get("MLFLOW_TRACKING_URI") or os.environ.get("RETRAIN_MLFLOW_TRACKING_URI"),
        )
        return
    info = running_stack(config)
    if info is not None:
        with _client_environment(info):
            yield _connection(f"local stack (pid {info.pid})", info)
        return
    progress("no stack configured or running: starting the local stack for this command")
    info = start_daemon(config, progress=progress)
    try:
        with _client_environment(info):
            yield _connection("local stack started for this command", info)
    finally:
        progress("stopping the local stack")
        stop_daemon(info)


@contextlib.contextmanager
def _client_environment(info: StackInfo) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in info.client_environment()}
    os.environ.update(info.client_environment())
    get_settings.cache_clear()
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        get_settings.cache_clear()


def _connection(source: str, info: StackInfo) -> Connection:
    return Connection(
        source=source,
        bucket=info.bucket,
        state_machine_arn=info.state_machines.get("TrainingStateMachine"),
        mlflow_uri=info.mlflow_uri if info.mlflow_port else None,
        stack=info,
    )
