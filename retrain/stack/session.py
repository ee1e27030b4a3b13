"""Which AWS and MLflow a command talks to: configured endpoints, a running local stack, or an
embedded stack started for the duration of the command."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

from common.core.settings import load_settings
from retrain.stack.config import LocalStackConfig, load_local_config
from retrain.stack.control import running_stack, start_daemon, stop_daemon
from retrain.stack.embedded import Progress, StackInfo, configuration_differences, user_configuration
from retrain.stack.process import patched_environment


@dataclass(frozen=True)
class Connection:
    source: str  # "configured" | "local stack (pid N)" | "local stack started for this command"
    bucket: str
    state_machine_arn: str | None
    mlflow_uri: str | None
    stack: StackInfo | None = None
    stops_after_command: bool = False  # a stack started only for this command


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
        _warn_of_other_configuration(info, progress)
        with patched_environment(info.client_environment()):
            yield _connection(f"local stack (pid {info.pid})", info)
        return
    progress("no stack configured or running: starting the local stack for this command")
    info = start_daemon(config, progress=progress)
    try:
        with patched_environment(info.client_environment()):
            yield _connection("local stack started for this command", info, stops_after_command=True)
    finally:
        progress("stopping the local stack")
        stop_daemon(info)


def _warn_of_other_configuration(info: StackInfo, progress: Progress) -> None:
    """The running stack's functions keep the settings it started with; say which ones this command's
    environment would change, as the command itself (its clock, its checks) reads this environment."""
    if info.configuration is None:  # a stack started before the configuration was recorded
        return
    differences = configuration_differences(info.configuration, user_configuration(os.environ))
    if differences:
        progress(
            f"warning: the running local stack (pid {info.pid}) keeps the settings it was started with; "
            "this command's environment differs (`retrain down`, then `retrain up` with these settings, "
            "to give them to its functions):\n  " + "\n  ".join(differences)
        )


def _connection(source: str, info: StackInfo, *, stops_after_command: bool = False) -> Connection:
    return Connection(
        source=source,
        bucket=info.bucket,
        state_machine_arn=info.state_machines.get("TrainingStateMachine"),
        mlflow_uri=info.mlflow_uri if info.mlflow_port else None,
        stack=info,
        stops_after_command=stops_after_command,
    )
