"""Which AWS and MLflow a command talks to: configured endpoints, a running local stack, or an
embedded stack started for the duration of the command."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from retrain.stack.config import LocalStackConfig
from retrain.stack.embedded import STATE_FILE, EmbeddedStack, Progress, StackInfo
from retrain.stack.process import alive


@dataclass(frozen=True)
class Connection:
    source: str  # "configured" | "local stack (pid N)" | "embedded for this command"
    bucket: str
    state_machine_arn: str | None
    mlflow_uri: str | None
    stack: StackInfo | None = None


def running_stack(config: LocalStackConfig) -> StackInfo | None:
    """The stack started by ``retrain up`` for this state folder, if its process is alive."""
    info = StackInfo.load(Path(config.state_dir) / STATE_FILE)
    return info if info is not None and alive(info.pid) else None


def configured() -> bool:
    return bool(os.environ.get("RETRAIN_DATA_BUCKET"))


@contextlib.contextmanager
def connect(config: LocalStackConfig | None = None, progress: Progress = print) -> Iterator[Connection]:
    config = config or LocalStackConfig()
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
        saved = {name: os.environ.get(name) for name in info.client_environment()}
        os.environ.update(info.client_environment())
        try:
            yield _connection(f"local stack (pid {info.pid})", info)
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
        return
    progress("no stack configured or running: starting the embedded stack for this command")
    with EmbeddedStack(config, progress=progress) as stack:
        assert stack.info is not None
        yield _connection("embedded for this command", stack.info)


def _connection(source: str, info: StackInfo) -> Connection:
    return Connection(
        source=source,
        bucket=info.bucket,
        state_machine_arn=info.state_machines.get("TrainingStateMachine"),
        mlflow_uri=info.mlflow_uri if info.mlflow_port else None,
        stack=info,
    )
