"""The stack starts with one call, stops cleanly with no stray process or port, and the CLI round trip
(up, status, demo against the running stack, down) works as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from retrain.stack.embedded import EmbeddedStack, StackError, port_in_use
from retrain.stack.process import alive
from tests.conftest import PROJECT_ROOT
from tests.integration.conftest import FAST_TRAINING, clean_environment, run_cli, stack_config

pytestmark = pytest.mark.integration


def _processes_mentioning(marker: str) -> list[int]:
    """PIDs whose command line mentions ``marker`` (our state folder is unique per test)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline and alive(int(entry.name)):
            found.append(int(entry.name))
    return found


_ROUND_TRIP = """
import json, sys
from pathlib import Path
from retrain.stack.embedded import EmbeddedStack
from tests.integration.conftest import stack_config
stack = EmbeddedStack(stack_config(Path(sys.argv[1])))
info = stack.start()
print(json.dumps(info.__dict__), flush=True)
sys.stdin.readline()  # the test checks the running stack, then asks it to stop
stack.stop()
print("stopped", flush=True)
"""


def test_embedded_stack_stops_without_stray_processes_or_ports(tmp_path):
    """EmbeddedStack.start/stop, in a process of its own (moto's state is per process)."""
    child = subprocess.Popen(
        [sys.executable, "-c", _ROUND_TRIP, str(tmp_path / "state")],
        cwd=PROJECT_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        info = json.loads(child.stdout.readline())
        assert port_in_use(info["host"], info["moto_port"]) and port_in_use(info["host"], info["mlflow_port"])
        assert info["mlflow_pid"] and alive(info["mlflow_pid"])
        assert _processes_mentioning(str(tmp_path)), "the MLflow server runs with its DB in the state folder"
        child.stdin.write("stop\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "stopped"
        # Checked while the stack's host process still lives: stop() itself cleaned up.
        assert not alive(info["mlflow_pid"])
        assert [pid for pid in _processes_mentioning(str(tmp_path)) if pid != child.pid] == []
        assert not port_in_use(info["host"], info["moto_port"])
        assert not port_in_use(info["host"], info["mlflow_port"])
    finally:
        child.stdin.close()
        child.wait(timeout=60)
    assert child.returncode == 0
    # The bucket was snapshotted to the state folder so MLflow's DB and artifacts survive a restart.
    assert (tmp_path / "state" / "s3" / "ohlcv").is_dir()


def test_a_second_embedded_stack_in_one_process_is_refused(stack, tmp_path):
    with pytest.raises(StackError, match="already runs in this process"):
        EmbeddedStack(stack_config(tmp_path)).start()
    assert stack.info is not None, "the refused start must not stop the running stack"


@pytest.fixture
def cli_env(tmp_path) -> dict[str, str]:
    return clean_environment(
        RETRAIN_LOCAL_STATE_DIR=str(tmp_path / "state"),
        RETRAIN_LOCAL_MOTO_PORT="0",
        RETRAIN_LOCAL_MLFLOW_PORT="0",
        RETRAIN_SYMBOLS="BTC,ETH",
        **FAST_TRAINING,  # the daemon's handlers read it
    )


def test_cli_up_status_demo_down(cli_env, tmp_path):
    up = run_cli("up", env=cli_env)
    assert up.returncode == 0, up.stdout + up.stderr
    state = json.loads((tmp_path / "state" / "stack.json").read_text())
    try:
        again = run_cli("up", env=cli_env)
        assert again.returncode == 0 and "already running" in again.stdout

        status = run_cli("status", "--json", env=cli_env)
        assert status.returncode == 0, status.stderr
        report = json.loads(status.stdout)
        assert report["running"] and report["mlflow"]["healthy"] is True
        assert report["objects"]["ohlcv/"] == 4  # BTC and ETH, 1d and 1h

        train = run_cli("train", "BTC", "uptrend", "--end", "2025-02-19", env=cli_env)
        assert train.returncode == 0, train.stdout + train.stderr
        # It used the running stack (its MLflow), not one of its own.
        assert f"MLflow UI: http://127.0.0.1:{state['mlflow_port']}" in train.stdout
        assert "starting the local stack" not in train.stdout + train.stderr and "BTC uptrend" in train.stdout
        assert "Traceback" not in train.stdout + train.stderr
    finally:
        down = run_cli("down", env=cli_env)
    assert down.returncode == 0, down.stdout + down.stderr
    assert not alive(state["pid"]) and not alive(state["mlflow_pid"])
    assert _processes_mentioning(str(tmp_path)) == []
    assert not port_in_use("127.0.0.1", state["moto_port"]) and not port_in_use("127.0.0.1", state["mlflow_port"])
    assert not (tmp_path / "state" / "stack.json").exists()
    assert "not running" in run_cli("status", env=cli_env).stdout


@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
def test_the_demo_stops_cleanly_on_ctrl_c_or_sigterm_during_training(tmp_path, signal_name):
    """Interrupted while the initial training runs: exit 130, one line saying so, no traceback, and no
    process (MLflow server, moto) left behind."""
    import signal
    import time

    state = tmp_path / "demo"
    child = subprocess.Popen(
        [sys.executable, "-m", "retrain.cli", "demo", "--symbols", "BTC", "--days", "2", "--state-dir", str(state)],
        cwd=PROJECT_ROOT,
        env=clean_environment(**FAST_TRAINING),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # As from a terminal: a background job of a non-interactive shell (CI, `make test &`) inherits
        # SIGINT ignored, and Python then keeps ignoring it instead of raising KeyboardInterrupt.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 120
        lines = []
        while time.monotonic() < deadline:
            line = child.stdout.readline()
            lines.append(line)
            if "training BTC" in line or not line:
                break
        assert any("training BTC" in line for line in lines), "".join(lines)
        child.send_signal(getattr(signal, signal_name))
        out, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 130, "".join(lines) + out + err
    assert "interrupted: stopped cleanly" in err and "Traceback" not in out + err
    time.sleep(0.5)
    assert _processes_mentioning(str(state)) == []


def test_the_demo_command_end_to_end_on_a_tiny_replay(tmp_path):
    """`retrain demo` as a user runs it, one symbol and one day: the summary JSON, the story, the outbox,
    the plots and the MLflow address, and none of the libraries' log lines on the console."""
    summary_path = tmp_path / "summary.json"
    result = run_cli(
        "demo",
        *("--symbols", "BTC", "--days", "1", "--classifiers", "lightgbm,ridge"),
        *("--state-dir", str(tmp_path / "demo"), "--summary-json", str(summary_path)),
        env=clean_environment(),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(summary_path.read_text())
    from retrain.replay import SUMMARY_KEYS

    assert set(SUMMARY_KEYS) <= set(summary)
    assert summary["models_trained"] == 2 and summary["retrains_by_trigger"] == {"initial": 2}
    assert summary["notifications_sent"] == 1 and summary["failed_requests"] == 0
    for files in summary["plots"].values():
        assert all(Path(f).is_file() for f in files)
    out = result.stdout
    for part in ("what happened", "notification outbox (1 written", "MLflow UI: http"):
        assert part in out, out
    if summary["plots"]:
        assert "plots of each champion" in out, out
    else:  # the default gate may refuse both models: the story then says why, with the evidence
        assert "plots: none (no champion)" in out and "no candidate passed the gate" in out, out
    assert not [line for line in out.splitlines() if line.startswith("{")], "library JSON on the console"
    assert "Traceback" not in out + result.stderr and (tmp_path / "demo" / "demo.log").stat().st_size > 0


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGINT"])
def test_serve_with_a_stack_of_its_own_stops_it_on_sigterm_or_ctrl_c(cli_env, tmp_path, signal_name):
    """`retrain serve` with no stack running starts one for its own duration; `kill PID` stops both, as
    Ctrl-C does: exit 130, no daemon, MLflow server or port left behind."""
    import signal
    import time

    from retrain.stack.embedded import free_port

    port = free_port("127.0.0.1")
    child = subprocess.Popen(
        [sys.executable, "-m", "retrain.cli", "serve", "--port", str(port)],
        cwd=PROJECT_ROOT,
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as from a terminal (see above)
    )
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            line = child.stdout.readline()
            lines.append(line)
            if "serving the prediction API" in line or not line:
                break
        assert any("serving the prediction API" in line for line in lines), "".join(lines)
        assert _processes_mentioning(str(tmp_path / "state")), "the command started a stack of its own"
        deadline = time.monotonic() + 30
        while not port_in_use("127.0.0.1", port) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert port_in_use("127.0.0.1", port), "uvicorn listens"
        child.send_signal(getattr(signal, signal_name))
        out, _ = child.communicate(timeout=90)
    finally:
        if child.poll() is None:
            child.kill()
    output = "".join(lines) + out
    assert child.returncode == 130, output
    assert "stopping the local stack" in output and "interrupted: stopped cleanly" in output
    assert "Traceback" not in output
    time.sleep(0.5)
    assert _processes_mentioning(str(tmp_path / "state")) == []
    assert not port_in_use("127.0.0.1", port)
    assert not (tmp_path / "state" / "stack.json").exists()
