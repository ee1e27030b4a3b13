"""Benchmark: the prediction API next to ``mlflow models serve``, same LightGBM model, same run, on loopback.

Run ``.venv/bin/python bench/bench_predictor.py``. It starts the embedded stack (moto S3 + a real MLflow
server), trains the zoo's LightGBM for BTC uptrend on the sample bars, registers it as champion, then:

- **in process, warm**: ``GET /prediction`` through the Mangum handler with an HTTP API v2 event (what
  Lambda runs per request once the environment is warm);
- **over HTTP**, one uvicorn worker each, single-row requests from 1 and 8 keep-alive clients in a separate
  process: ours (``retrain serve``: ``GET /prediction`` computes nothing per request, ``POST /predict``
  carries the row like MLflow's request does) and ``mlflow models serve`` of the same registered version
  (``POST /invocations``, ``dataframe_split``). Requests/s, p50 and p99;
- **cold start**: process start to the first answered prediction. Ours as Lambda runs it (a fresh
  interpreter imports the handler module and answers one event: Lambda's init plus first invoke), once with
  the predictor image's lean set (a venv built from the lock's ``predictor`` group, what
  functions/predictor/Dockerfile installs; built once under .local/bench/) and once with the project's whole
  set; and as ``retrain serve``; MLflow's as ``mlflow models serve``. Median of three
  (``BENCH_PREDICTOR_COLD_REPEATS``). The lean cold start's parts: the handler module's import (Lambda's init)
  and the first invoke (the registry's alias, run and two artifacts over MLflow's REST API, the booster's native
  model loaded through its C library, the load-back check, the bars from S3 and their features concurrently;
  common.serving.model_cache, common.registry.mlflow_rest). Then the packages whose imports weigh most on the lean cold path
  (``python -X importtime``), and each set's installed size. The Lambda child gets a plain context object, as
  Lambda's runtime hands one (not the local stack's, whose module imports the stack's template reader).

Targets (issue 6): in-process p50 <= 1 ms; ours >= 10x MLflow's requests/s at 1 and 8 clients with a p50
at most a tenth of its p50; cold start <= 3 s (issue 18: at most a quarter of ``mlflow models serve``'s).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SYMBOL, TREND = "BTC", "uptrend"
NAME = f"{SYMBOL}_{TREND}_model"
AS_OF = datetime(2025, 2, 21, tzinfo=UTC)
WARM_CALLS = 3000
LOAD_SECONDS = float(os.environ.get("BENCH_PREDICTOR_SECONDS", "8"))
CLIENT_COUNTS = (1, 8)
COLD_REPEATS = int(os.environ.get("BENCH_PREDICTOR_COLD_REPEATS", "3"))  # 0 skips the cold starts
HOST = "127.0.0.1"
LEAN_VENV = ROOT / ".local" / "bench" / "predictor-venv"
UV = ROOT / ".tools" / "bin" / "uv"


def lean_python() -> Path:
    """A venv of the predictor image's set (the lock's ``predictor`` group, exported as the Dockerfile does,
    without the runtime interface client, which Lambda needs and a laptop does not); rebuilt when the lock moves."""
    requirements = LEAN_VENV.with_suffix(".txt")
    export = [str(UV), "export", "--frozen", "--project", str(ROOT), "--only-group", "predictor"]
    export += ["--no-emit-project", "--format", "requirements-txt", "--quiet"]
    wanted = subprocess.run(export, capture_output=True, text=True, check=True).stdout
    python = LEAN_VENV / "bin" / "python"
    if python.exists() and requirements.exists() and requirements.read_text() == wanted:
        return python
    subprocess.run([str(UV), "venv", "--quiet", "--clear", "--python", sys.executable, str(LEAN_VENV)], check=True)
    requirements.write_text(wanted)
    install = [str(UV), "pip", "install", "--quiet", "--python", str(python), "--require-hashes", "--no-deps"]
    install += ["--only-binary", ":all:", "--compile-bytecode", "--requirement", str(requirements)]
    subprocess.run(install, check=True)
    return python


def folder_mib(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) / 2**20


def site_packages(python: Path) -> Path:
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    return Path(subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True).stdout.strip())


# --- the load generator (runs in its own process: the clients must not share a GIL with our server) -------
@dataclass(frozen=True)
class Target:
    label: str
    method: str
    path: str
    body: bytes | None


def _client_loop(port: int, target: Target, deadline: float, warmup_until: float, out: list[float]) -> None:
    connection = http.client.HTTPConnection(HOST, port, timeout=30)
    headers = {"Content-Type": "application/json"} if target.body else {}
    while (start := time.perf_counter()) < deadline:
        connection.request(target.method, target.path, body=target.body, headers=headers)
        response = connection.getresponse()
        payload = response.read()
        if response.status != 200:
            raise RuntimeError(f"{target.label}: HTTP {response.status}: {payload[:200]!r}")
        if start >= warmup_until:
            out.append(time.perf_counter() - start)
    connection.close()


def load_main(port: int, target: Target, clients: int, seconds: float) -> dict[str, float]:
    """``clients`` keep-alive connections calling ``target`` for ``seconds`` (after a one-second warm-up)."""
    now = time.perf_counter()
    warmup_until, deadline = now + 1.0, now + 1.0 + seconds
    latencies: list[list[float]] = [[] for _ in range(clients)]
    threads = [
        threading.Thread(target=_client_loop, args=(port, target, deadline, warmup_until, latencies[i]))
        for i in range(clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    merged = sorted(x for per_client in latencies for x in per_client)
    return {
        "requests": len(merged),
        "rps": len(merged) / seconds,
        "p50_ms": 1000 * merged[len(merged) // 2],
        "p99_ms": 1000 * merged[min(len(merged) - 1, int(len(merged) * 0.99))],
    }


def run_load(port: int, target: Target, clients: int) -> dict[str, float]:
    spec = json.dumps(
        {"port": port, "target": target.__dict__ | {"body": (target.body or b"").decode()}, "clients": clients}
    )
    done = subprocess.run(
        [sys.executable, __file__, "--load", spec, str(LOAD_SECONDS)],
        capture_output=True,
        text=True,
        check=False,
        timeout=LOAD_SECONDS + 120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout)


# --- the model ---------------------------------------------------------------------------------------------
def register_champion(registry: Any) -> tuple[str, list[float]]:
    """The zoo's LightGBM for BTC uptrend, fitted on the sample bars, registered as champion.
    Returns its version and one feature row (the newest training row) to send in requests."""
    import mlflow

    from common.data.ohlcv import parse_ohlcv_csv
    from common.registry.mlflow_registry import Registry
    from common.registry.promotion import encode_tags
    from common.training.evaluation import make_classifier, training_data

    bars = parse_ohlcv_csv((ROOT / "sample_data" / "ohlcv" / "1d" / f"{SYMBOL}.csv").read_bytes())
    data = training_data(bars.loc[bars.index < AS_OF], trend=TREND, horizon=10, target_pct=0.05)
    model = make_classifier("lightgbm", y_train=data.y, seed=7).fit(data.X, data.y)
    with mlflow.start_run(experiment_id=registry.experiment_id(f"{SYMBOL}_{TREND}"), run_name="bench-predictor"):
        uri = Registry.log_model(model, "lightgbm", data.X.tail(5))
        Registry.log_load_back_sample(model, data.X.tail(20))
    tags = {"feature_names": list(data.X.columns), "symbol": SYMBOL, "trend": TREND, "classifier": "lightgbm"}
    version = registry.register(NAME, uri, encode_tags(tags)).version
    registry.move_champion(NAME, version)
    return version, [float(v) for v in data.X.iloc[-1]]


# --- servers -----------------------------------------------------------------------------------------------
def _wait_until(ready: Callable[[], bool], process: subprocess.Popen[bytes], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = process.stderr.read().decode(errors="replace")[-3000:] if process.stderr else ""
            raise RuntimeError(f"{what} exited with code {process.returncode}:\n{tail}")
        if ready():
            return
        time.sleep(0.01)
    raise RuntimeError(f"{what} did not answer within {timeout}s")


def _answers(port: int, target: Target) -> bool:
    try:
        connection = http.client.HTTPConnection(HOST, port, timeout=5)
        headers = {"Content-Type": "application/json"} if target.body else {}
        connection.request(target.method, target.path, body=target.body, headers=headers)
        response = connection.getresponse()
        response.read()
        connection.close()
        return response.status == 200
    except OSError:
        return False


class Server:
    """A server process, timed from spawn to its first answered prediction."""

    def __init__(self, command: list[str], env: dict[str, str], port: int, probe: Target, what: str) -> None:
        self.port = port
        started = time.perf_counter()
        self.process = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )
        try:
            _wait_until(lambda: _answers(port, probe), self.process, what)
        except BaseException:
            self.stop()
            raise
        self.cold_start_s = time.perf_counter() - started

    def stop(self) -> None:
        """Stop the whole process group (``mlflow models serve`` runs uvicorn as a child)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def lambda_cold_start(
    env: dict[str, str], event: dict[str, Any], python: Path | None = None, importtime: bool = False
) -> tuple[float, float, float] | dict[str, float]:
    """A fresh interpreter: import the handler module (Lambda's init), answer one event (the first invoke).
    ``python``: the interpreter (default this one; the lean venv's sees the sources through PYTHONPATH).
    Returns (process start to the answer, the handler module's import, the first invoke) in seconds; with
    ``importtime``, instead, the cumulative import seconds per top-level package."""
    script = (
        "import time; started = time.perf_counter()\n"
        "import json, sys\n"
        "from functions.predictor.app import handler\n"
        "imported = time.perf_counter()\n"
        "class Context:  # the attributes of Lambda's context that powertools reads\n"
        "    function_name, function_version, memory_limit_in_mb = 'PredictorFunction', '$LATEST', 1024\n"
        "    invoked_function_arn = 'arn:aws:lambda:us-east-1:123456789012:function:PredictorFunction'\n"
        "    aws_request_id, log_group_name, log_stream_name = 'bench', '', 'bench'\n"
        "    def get_remaining_time_in_millis(self): return 900000\n"
        "response = handler(json.loads(sys.argv[1]), Context())\n"
        "assert response['statusCode'] == 200, response\n"
        "print('answered', imported - started, time.perf_counter() - imported, flush=True)\n"
    )
    started = time.perf_counter()
    child = subprocess.Popen(
        [str(python or sys.executable), *(["-X", "importtime"] if importtime else []), "-c", script, json.dumps(event)],
        env={**env, "AWS_LAMBDA_FUNCTION_NAME": "PredictorFunction"},
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    if importtime:  # its report floods stderr: read both pipes to the end (one at a time would deadlock)
        out, err = child.communicate(timeout=120)
        if "answered" not in out:
            raise RuntimeError(f"the Lambda cold start failed: {err[-2000:]}")
        return import_seconds(err)
    assert child.stdout is not None
    line = child.stdout.readline()
    while line and line.startswith("{"):  # the invocation's metrics (EMF: the first swap) come first
        line = child.stdout.readline()
    elapsed = time.perf_counter() - started
    _, err = child.communicate(timeout=60)
    if not line.startswith("answered"):
        raise RuntimeError(f"the Lambda cold start failed: {err[-2000:]}")
    _, imported, invoked = line.split()
    return elapsed, float(imported), float(invoked)


def import_seconds(report: str) -> dict[str, float]:
    """``-X importtime``'s report summed per top-level package (each module's own time, so nothing twice)."""
    seconds: dict[str, float] = {}
    for line in report.splitlines():
        if line.startswith("import time:") and "|" in line:
            own, _, name = (part.strip() for part in line.removeprefix("import time:").split("|"))
            if own.isdigit():
                package = name.split(".")[0]
                seconds[package] = seconds.get(package, 0.0) + int(own) / 1e6
    return seconds


# --- the run -----------------------------------------------------------------------------------------------
def warm_in_process(settings: Any, event: dict[str, Any]) -> dict[str, float]:
    from mangum import Mangum

    from common.serving.api import Service, create_app
    from retrain.stack.lambda_router import LocalLambdaContext

    service = Service.from_settings(settings, background=False)
    handler = Mangum(create_app(lambda: service), lifespan="off")
    context = LocalLambdaContext("PredictorFunction", "arn:local")
    for _ in range(200):
        assert handler(event, context)["statusCode"] == 200
    times = []
    for _ in range(WARM_CALLS):
        start = time.perf_counter()
        handler(event, context)
        times.append(time.perf_counter() - start)
    times.sort()
    return {"p50_ms": 1000 * times[len(times) // 2], "p99_ms": 1000 * times[int(len(times) * 0.99)]}


def main() -> None:
    from common.core.settings import load_settings
    from common.data.features import FEATURE_NAMES
    from common.registry.mlflow_registry import Registry
    from retrain.stack.config import LocalStackConfig
    from retrain.stack.embedded import EmbeddedStack, free_port

    print("## Prediction API vs `mlflow models serve` (same LightGBM model, loopback, one uvicorn worker each)\n")
    with tempfile.TemporaryDirectory() as state_dir:
        config = LocalStackConfig(moto_port=0, mlflow_port=0, state_dir=Path(state_dir), symbols=(SYMBOL,))
        with EmbeddedStack(config, progress=lambda m: print(f"  {m}", file=sys.stderr)) as stack:
            info = stack.info
            assert info is not None
            registry = Registry(info.mlflow_uri)
            with contextlib.redirect_stdout(sys.stderr):  # MLflow prints run links; the report is stdout
                version, row = register_champion(registry)
            env = {
                **os.environ,
                **info.client_environment(),
                "RETRAIN_SYMBOLS": SYMBOL,
                "RETRAIN_AS_OF": AS_OF.isoformat(),
                "PYTHONPATH": str(ROOT),
                # mlflow models serve execs `uvicorn` from PATH
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            }
            settings = load_settings(
                symbols=(SYMBOL,), data_bucket=info.bucket, mlflow_tracking_uri=info.mlflow_uri, as_of=AS_OF
            )
            event = json.loads((ROOT / "tests" / "events" / "http_api_prediction.json").read_text())
            prediction = Target("ours GET /prediction", "GET", f"/prediction?symbol={SYMBOL}&trend_type={TREND}", None)
            predict = Target(
                "ours POST /predict (row in the body)",
                "POST",
                "/predict",
                json.dumps(
                    {"symbol": SYMBOL, "trend_type": TREND, "rows": [dict(zip(FEATURE_NAMES, row, strict=True))]}
                ).encode(),
            )
            invocations = Target(
                "mlflow models serve POST /invocations",
                "POST",
                "/invocations",
                json.dumps({"dataframe_split": {"columns": list(FEATURE_NAMES), "data": [row]}}).encode(),
            )

            print("running in-process warm calls ...", file=sys.stderr, flush=True)
            warm = warm_in_process(settings, event)

            print("cold starts ...", file=sys.stderr, flush=True)
            ours_cmd = [str(Path(sys.executable).with_name("retrain")), "serve", "--date", AS_OF.date().isoformat()]
            mlflow_cmd = [str(Path(sys.executable).with_name("mlflow")), "models", "serve"]
            mlflow_cmd += ["-m", f"models:/{NAME}/{version}", "--env-manager", "local", "--host", HOST]
            lean = lean_python() if COLD_REPEATS else None
            cold: dict[str, list[float]] = {"lean": [], "lambda": [], "ours": [], "mlflow": []}
            phases: dict[str, list[float]] = {"import": [], "invoke": [], "rest": []}  # of the lean cold starts
            for _ in range(COLD_REPEATS):
                total, imported, invoked = lambda_cold_start(env, event, lean)  # type: ignore[misc]
                cold["lean"].append(total)
                phases["import"].append(imported)
                phases["invoke"].append(invoked)
                phases["rest"].append(total - imported - invoked)
                cold["lambda"].append(lambda_cold_start(env, event)[0])  # type: ignore[index]
                for key, command, probe in (("ours", ours_cmd, prediction), ("mlflow", mlflow_cmd, invocations)):
                    port = free_port(HOST)
                    server = Server([*command, "--port", str(port)], env, port, probe, key)
                    server.stop()
                    cold[key].append(server.cold_start_s)
            imports = lambda_cold_start(env, event, lean, importtime=True) if lean else {}
            sizes = {"lean": folder_mib(site_packages(lean)), "full": folder_mib(site_packages(Path(sys.executable)))}

            print("throughput ...", file=sys.stderr, flush=True)
            results: list[tuple[Target, int, dict[str, float]]] = []
            servers: dict[str, Server] = {}
            try:
                for key, command, probe in (("ours", ours_cmd, prediction), ("mlflow", mlflow_cmd, invocations)):
                    port = free_port(HOST)
                    servers[key] = Server([*command, "--port", str(port)], env, port, probe, key)
                check_same_probability(servers["ours"].port, servers["mlflow"].port, predict, invocations)
                for clients in CLIENT_COUNTS:
                    for target, key in ((invocations, "mlflow"), (prediction, "ours"), (predict, "ours")):
                        print(f"  {target.label}, {clients} client(s)", file=sys.stderr, flush=True)
                        results.append((target, clients, run_load(servers[key].port, target, clients)))
            finally:
                for server in servers.values():
                    server.stop()

    print_tables(warm, cold, phases, results, imports, sizes)  # type: ignore[arg-type]


def check_same_probability(ours_port: int, mlflow_port: int, predict: Target, invocations: Target) -> None:
    """Both servers score the same row with the same model: the probabilities must agree."""

    def post(port: int, target: Target) -> Any:
        connection = http.client.HTTPConnection(HOST, port, timeout=30)
        connection.request("POST", target.path, body=target.body, headers={"Content-Type": "application/json"})
        return json.loads(connection.getresponse().read())

    ours = post(ours_port, predict)["probabilities"][0]
    theirs = post(mlflow_port, invocations)["predictions"][0][1]
    if abs(ours - theirs) > 1e-9:
        raise RuntimeError(f"the servers disagree on the same row: ours {ours}, mlflow {theirs}")


def print_tables(
    warm: dict[str, float],
    cold: dict[str, list[float]],
    phases: dict[str, list[float]],
    results: list[tuple[Target, int, dict[str, float]]],
    imports: dict[str, float],
    sizes: dict[str, float],
) -> None:
    print("### In process, warm (Mangum handler, HTTP API v2 event, `GET /prediction`)\n")
    print("| calls | p50 ms | p99 ms | target p50 <= 1 ms |\n|---|---|---|---|")
    print(f"| {WARM_CALLS} | {warm['p50_ms']:.3f} | {warm['p99_ms']:.3f} | {warm['p50_ms'] <= 1.0} |\n")

    print(f"### Over HTTP, single-row requests, {LOAD_SECONDS:.0f} s per row after a 1 s warm-up\n")
    print("| server / request | clients | requests/s | p50 ms | p99 ms | x MLflow req/s | MLflow p50 / p50 |")
    print("|---|---|---|---|---|---|---|")
    peer = {clients: stats for target, clients, stats in results if target.label.startswith("mlflow")}
    for target, clients, stats in results:
        base = peer[clients]
        print(
            f"| {target.label} | {clients} | {stats['rps']:.0f} | {stats['p50_ms']:.2f} | {stats['p99_ms']:.2f} "
            f"| {stats['rps'] / base['rps']:.1f} | {base['p50_ms'] / stats['p50_ms']:.1f} |"
        )
    print("\nTarget: ours >= 10x MLflow's requests/s with a p50 at most a tenth of its p50, at 1 and 8 clients.\n")

    if not COLD_REPEATS:
        return
    print(f"### Cold start: process start to the first answered prediction (median of {COLD_REPEATS})\n")
    print("| server | median s | runs s | / MLflow's | target <= 3 s |\n|---|---|---|---|---|")
    labels = {
        "lean": "ours, as Lambda, the predictor image's lean set: import the handler, answer one event",
        "lambda": "ours, as Lambda, the project's whole set (the shared image's)",
        "ours": "ours, `retrain serve` (uvicorn, whole set)",
        "mlflow": "`mlflow models serve`",
    }
    peer = statistics.median(cold["mlflow"])
    for key, label in labels.items():
        median = statistics.median(cold[key])
        runs = ", ".join(f"{x:.2f}" for x in cold[key])
        met = str(median <= 3.0) if key != "mlflow" else "(peer)"
        print(f"| {label} | {median:.2f} | {runs} | {median / peer:.2f} | {met} |")
    print("\nTarget (issue 18): the lean Lambda cold start at most a quarter (0.25) of `mlflow models serve`'s.\n")
    imported, invoked, rest = (statistics.median(phases[k]) for k in ("import", "invoke", "rest"))
    print("The lean cold start's parts (medians of each part):\n")
    print("| part | s |\n|---|---|")
    print(f"| the interpreter's start, and reading the answer (the rest) | {rest:.2f} |")
    print(f"| Lambda's init: import the handler module | {imported:.2f} |")
    print(f"| the first invoke: champion and features loaded (concurrently), checked, answered | {invoked:.2f} |\n")
    print("Imports on the lean cold path (`-X importtime`, each module's own time summed per package, one run):\n")
    print("| package | s |\n|---|---|")
    for package, seconds in sorted(imports.items(), key=lambda item: -item[1])[:8]:
        print(f"| {package} | {seconds:.2f} |")
    print(f"| (all {len(imports)} packages) | {sum(imports.values()):.2f} |\n")
    print(f"Installed packages: lean set {sizes['lean']:.0f} MiB, the project's venv {sizes['full']:.0f} MiB.\n")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--load":
        spec = json.loads(sys.argv[2])
        target = Target(**{**spec["target"], "body": spec["target"]["body"].encode() or None})
        print(json.dumps(load_main(spec["port"], target, spec["clients"], float(sys.argv[3]))))
    else:
        main()
