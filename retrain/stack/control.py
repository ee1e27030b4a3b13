"""Start and stop the stack daemon (``python -m retrain.stack.daemon``) for ``retrain up``/``down``
and for commands that need a stack only while they run. Handlers then run in the daemon's process,
as they would in Lambda, and their logs go to ``<state_dir>/stack.log`` rather than the terminal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from common.core.settings import load_settings
from retrain.stack import sample_data
from retrain.stack.config import LocalStackConfig
from retrain.stack.embedded import (
    STATE_FILE,
    Progress,
    StackError,
    StackInfo,
    port_in_use,
    port_in_use_message,
    stack_owned_notes,
    template_parameters,
)
from retrain.stack.process import alive
from retrain.stack.template import local_resources


def running_stack(config: LocalStackConfig) -> StackInfo | None:
    """The stack started for this state folder, if its process is alive."""
    info = StackInfo.load(Path(config.state_dir) / STATE_FILE)
    return info if info is not None and alive(info.pid) else None


def start_daemon(config: LocalStackConfig, *, timeout: float = 120, progress: Progress = print) -> StackInfo:
    """Start the daemon with this process's environment: its functions keep the configuration in effect now
    (every ``RETRAIN_*`` setting) until it stops; a later command with another one does not change theirs."""
    # The functions' configuration, refused here with the variable at fault rather than in the daemon's log.
    load_settings()
    parameters, sources = template_parameters(config, os.environ, f"http://{config.host}:{config.mlflow_port}")
    local_resources(config.template_path, parameters=parameters, parameter_sources=sources, region=config.region)
    sample_data.check_symbols(config.sample_data_dir, config.symbols, config.interval)
    for note in stack_owned_notes(os.environ):
        progress(note)
    for component, port in (("moto", config.moto_port), ("mlflow", config.mlflow_port)):
        if port and port_in_use(config.host, port):  # fail fast, before the daemon's slow imports
            raise StackError(port_in_use_message(config.host, port, component))
    state_dir = Path(config.state_dir).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / STATE_FILE).unlink(missing_ok=True)
    log_path = state_dir / "stack.log"
    with open(log_path, "ab") as log:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "retrain.stack.daemon"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # outlives the command that started it, ignores its Ctrl-C
            env={**os.environ, **config.to_environment()},
        )
    progress(f"starting the local stack (pid {daemon.pid}, log {log_path})")
    started = time.monotonic()
    try:
        while time.monotonic() - started < timeout:
            info = running_stack(config)
            if info is not None and info.pid == daemon.pid:
                progress(f"local stack ready in {time.monotonic() - started:.1f}s")
                return info
            if daemon.poll() is not None:
                tail = log_path.read_text(errors="replace").splitlines()[-12:]
                message = next((line.split("error: ", 1)[1] for line in reversed(tail) if "error: " in line), None)
                raise StackError(message or "the local stack did not start:\n  " + "\n  ".join(tail))
            time.sleep(0.2)
    except BaseException:  # Ctrl-C or SIGTERM while it starts: a half-started daemon must not outlive us
        _terminate(daemon.pid, timeout=30)
        raise
    _terminate(daemon.pid, timeout=30)
    raise StackError(f"the local stack was not ready within {timeout:.0f}s (see {log_path})")


def stop_daemon(info: StackInfo, *, timeout: float = 60) -> None:
    """Stop the daemon and check that its processes and ports are gone."""
    _terminate(info.pid, timeout=timeout)
    leftovers = [pid for pid in (info.pid, info.mlflow_pid) if pid and alive(pid)]
    if leftovers:
        raise StackError(f"processes {leftovers} of the local stack are still running")
    busy = [port for port in (info.moto_port, info.mlflow_port) if port and port_in_use(info.host, port)]
    if busy:
        raise StackError(f"the local stack stopped but ports {busy} are still in use")


def _terminate(pid: int, *, timeout: float) -> None:
    if not alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if alive(pid):
        raise StackError(f"the stack process {pid} did not stop within {timeout:.0f}s")
