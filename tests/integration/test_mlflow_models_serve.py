"""Registered versions load anywhere MLflow runs (issue 18): `mlflow models serve` builds an environment
from a version's logged requirements alone (MLflow's uv environment manager, packages from PyPI or uv's
cache), in a folder outside the repository and without it on any path, and answers the probabilities our
predictor serves. And a version logged the old way (pickled with the subclasses that used to live in
common.training.evaluation) still loads in the predictor.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import mlflow
import numpy as np
import pandas as pd
import pytest

from common.data.ohlcv import parse_ohlcv_csv
from common.registry.mlflow_registry import SAMPLE_ARTIFACT, Registry
from common.registry.promotion import encode_tags
from common.serving.model_cache import RegistrySource
from common.training.evaluation import fit_final, training_data
from tests.conftest import PROJECT_ROOT
from tests.integration.conftest import clean_environment

pytestmark = pytest.mark.integration

SYMBOL = "AVAX"  # no other test registers it
BUILD_AND_START_TIMEOUT = 480.0  # a cold uv cache downloads ~90 wheels (mlflow's own dependencies included)


def _uv() -> str:
    found = shutil.which("uv") or shutil.which(str(PROJECT_ROOT / ".tools" / "bin" / "uv"))
    if found is None:
        pytest.skip(
            "no uv executable (neither on PATH nor `make setup`'s .tools/bin/uv): MLflow's uv env manager needs it"
        )
    return found


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _register(registry: Registry, classifier: str, trend: str) -> tuple[str, pd.DataFrame]:
    """Fit ``classifier`` the way training does, log it as the trainer does, register it; returns
    (version, the rows to score: the newest bars' features)."""
    bars = parse_ohlcv_csv((PROJECT_ROOT / "sample_data" / "ohlcv" / "1d" / f"{SYMBOL}.csv").read_bytes())
    data = training_data(bars, trend=trend, horizon=10, target_pct=0.05)  # type: ignore[arg-type]
    model = fit_final(classifier, data, seed=3)  # type: ignore[arg-type]
    name = f"{SYMBOL}_{trend}_model"
    with mlflow.start_run(experiment_id=registry.experiment_id(f"{SYMBOL}_{trend}"), run_name=classifier):
        uri = Registry.log_model(model, classifier, data.X.tail(5))
        Registry.log_load_back_sample(model, data.X.tail(20))
    tags = encode_tags({"symbol": SYMBOL, "trend": trend, "classifier": classifier})
    return registry.register(name, uri, tags).version, data.X.tail(30)


def _serve(model_uri: str, env: dict[str, str], cwd: Path, port: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri, "--env-manager", "uv"]
    with (cwd / "serve.log").open("wb") as log:  # the child keeps its own descriptor
        return subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", str(port)],
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: mlflow and the uvicorn it starts end together
        )


def _stop(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGKILL)  # the uvicorn worker, should it outlive its parent


# Ridge: the classifier whose probability used to need a class of ours. One environment build is ~30-40 s of
# `make test`; every other classifier's portability is checked without a server (tests/unit/test_portable_models).
@pytest.mark.parametrize(("classifier", "trend"), [("ridge", "uptrend")])
def test_mlflow_serves_a_registered_version_from_its_requirements_alone(stack, classifier: str, trend: str) -> None:
    uv = _uv()
    registry = Registry(stack.info.mlflow_uri)
    version, rows = _register(registry, classifier, trend)
    name = f"{SYMBOL}_{trend}_model"
    ours = RegistrySource(registry).load(registry.version(name, version))  # the predictor's load, checked
    expected = ours.score(rows[list(ours.feature_names)].to_numpy(dtype="float64"))

    with tempfile.TemporaryDirectory(prefix="retrain-serve-") as folder:  # outside the repository
        cwd = Path(folder)
        assert PROJECT_ROOT not in cwd.parents
        env = clean_environment(**stack.info.client_environment())
        env.pop("PYTHONPATH", None)
        env.update(
            MLFLOW_ENV_ROOT=str(cwd / "envs"),  # a fresh environment each run, built from the requirements
            # uv, and the Python the version was logged with (python_env.yaml) for `uv venv --python`;
            # never a Python download: registries are the only network.
            PATH=os.pathsep.join([str(Path(uv).parent), str(Path(sys.base_prefix) / "bin"), env.get("PATH", "")]),
            UV_PYTHON_DOWNLOADS="never",
            MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false",
        )
        port = _free_port()
        started = time.monotonic()
        server = _serve(f"models:/{name}/{version}", env, cwd, port)
        try:
            url = f"http://127.0.0.1:{port}"
            while True:
                if server.poll() is not None:
                    pytest.fail(f"mlflow models serve exited ({server.returncode}):\n{_tail(cwd)}")
                if time.monotonic() - started > BUILD_AND_START_TIMEOUT:
                    pytest.fail(f"not serving after {BUILD_AND_START_TIMEOUT:.0f} s:\n{_tail(cwd)}")
                try:
                    if httpx.get(f"{url}/ping", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.5)
            ready = time.monotonic() - started
            payload = {"dataframe_split": {"columns": list(rows.columns), "data": rows.to_numpy().tolist()}}
            answer = httpx.post(f"{url}/invocations", json=payload, timeout=60)
            assert answer.status_code == 200, answer.text
            served = np.asarray(answer.json()["predictions"], dtype="float64")
            python = next((cwd / "envs").glob("*/bin/python"))
            where = subprocess.run(
                [str(python), "-c", "import importlib.util as u; print(u.find_spec('common') is None)"],
                cwd=cwd,
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
        finally:
            _stop(server)
    print(f"\n{classifier}: environment built and serving after {ready:.1f} s")
    assert where.stdout.strip() == "True", "the serving environment can import this repository"
    assert served.shape == (len(rows), 2)  # predict_proba's columns: labels 0, 1
    np.testing.assert_allclose(served[:, 1], expected, rtol=0, atol=1e-12)


def _tail(cwd: Path, lines: int = 40) -> str:
    path = cwd / "serve.log"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else "(no log)"


@pytest.mark.parametrize("classifier", ["ridge", "mlp"])
def test_the_predictor_loads_a_version_logged_with_the_old_subclasses(stack, classifier: str) -> None:
    """tests/fixtures/legacy_models: saved by the training code before models became portable; its pickle
    names common.training.RidgeProbabilityClassifier (or BalancedMLPClassifier)."""
    registry = Registry(stack.info.mlflow_uri)
    folder = PROJECT_ROOT / "tests" / "fixtures" / "legacy_models" / classifier
    name = f"{SYMBOL}_legacy_{classifier}_model"
    experiment = registry.experiment_id(f"{SYMBOL}_legacy")
    with registry.start_run(experiment_id=experiment, run_name=classifier, tags={}) as run_id:
        mlflow.log_artifacts(str(folder), artifact_path="model")
        mlflow.log_artifact(str(folder / "sample_predictions.json"), artifact_path=str(Path(SAMPLE_ARTIFACT).parent))
    info = registry.register(name, f"runs:/{run_id}/model", encode_tags({"classifier": classifier}))

    checked = RegistrySource(registry).load(info)  # raises unless it reproduces the recorded probabilities

    sample = json.loads((folder / "sample_predictions.json").read_text())
    assert type(checked.model[-1]).__module__ == "common.training.legacy_estimators"
    got = checked.score(np.asarray(sample["rows"], dtype="float64"))
    np.testing.assert_allclose(got, sample["proba"], rtol=0, atol=1e-12)
