"""Which AWS and MLflow a command talks to: configured endpoints, a running local stack, or an
embedded stack started for the duration of the command."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

from common.settings import get_settings, load_settings
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
    """Endpoints are configured when the settings name a data bucket (real AWS or a stack of one's own)."""
    return load_settings().data_bucket is not None


@contextlib.contextmanager
def connect(config: LocalStackConfig | None = None, progress: Progress = print) -> Iterator[Connection]:
    config = config or load_local_config()
    settings = load_settings()
    if settings.data_bucket is not None:
        yield Connection(
            source="configured",
            bucket=settings.data_bucket,
            state_machine_arn=settings.state_machine_arn,
            mlflow_uri=settings.mlflow_tracking_uri,
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
