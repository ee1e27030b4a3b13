"""The replay: real market history through the deployed logic, day by day, on the embedded stack.

An embedded stack (moto S3 + Step Functions interpreter + the real handlers, a real MLflow server) is seeded
with the sample bars up to the start day; the pool is trained as of then. Each replayed day then runs what
the schedules run on AWS, through lambda:Invoke with EventBridge events:

- 00:00 the trigger checker (it starts a training execution when a trigger fires; the replay waits for it);
- 00:05 ingestion of the bar that just closed (the replay provider reads the sample files);
- 00:15 batch predictions into the log, and the outcomes that came due.

Meanwhile the predictor runs on loopback (uvicorn, its model cache re-resolving aliases every half second)
and a client keeps calling ``/prediction`` for every model: a promotion shows as a version change in its
answers, and any failed request is counted.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from common.settings import TRENDS, load_settings

Echo = Callable[[str], None]


@dataclass
class ModelTimeline:
    """What happened to one model during the replay."""

    symbol: str
    trend: str
    versions_served: list[str] = field(default_factory=list)  # in the order the client saw them
    triggers: list[str] = field(default_factory=list)  # "2025-01-08 schedule: champion is 8 days old"
    last_psi: float | None = None


@dataclass
class ReplaySummary:
    start: datetime
    days: int
    symbols: tuple[str, ...]
    models_trained: int = 0
    models_promoted: int = 0
    retrains_by_trigger: Counter[str] = field(default_factory=Counter)
    swaps_observed: int = 0
    requests: int = 0
    failed_requests: int = 0
    failed_requests_during_swaps: int = 0
    notifications_sent: int = 0
    executions: list[str] = field(default_factory=list)
    models: dict[str, ModelTimeline] = field(default_factory=dict)
    live_accuracy: dict[str, dict[str, float | int | None]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "days": self.days,
            "symbols": list(self.symbols),
            "models_trained": self.models_trained,
            "models_promoted": self.models_promoted,
            "retrains_by_trigger": dict(self.retrains_by_trigger),
            "swaps_observed": self.swaps_observed,
            "requests": self.requests,
            "failed_requests": self.failed_requests,
            "failed_requests_during_swaps": self.failed_requests_during_swaps,
            "notifications_sent": self.notifications_sent,
            "executions": self.executions,
            "models": {
                name: {
                    "versions_served": m.versions_served,
                    "triggers": m.triggers,
                    "last_psi": m.last_psi,
                    "live_accuracy": self.live_accuracy.get(name, {}),
                }
                for name, m in self.models.items()
            },
        }


def scheduled_event(at: datetime, **detail: Any) -> dict[str, Any]:
    """The event an EventBridge schedule sends at ``at``."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/replay"],
        "detail": detail,
    }


def invoke(function_name: str, event: dict[str, Any]) -> dict[str, Any]:
    """lambda:Invoke, as the schedule would; a function error is raised with the function's own message."""
    import boto3

    response = boto3.client("lambda").invoke(FunctionName=function_name, Payload=json.dumps(event))
    payload = json.loads(response["Payload"].read())
    if response.get("FunctionError"):
        raise RuntimeError(f"{function_name}: {payload.get('errorType')}: {payload.get('errorMessage')}")
    return payload


class PredictionClient:
    """Calls ``/prediction`` for every model in a loop on its own thread, recording versions and failures."""

    def __init__(
        self,
        base_url: str,
        models: list[tuple[str, str]],
        timeline: dict[str, ModelTimeline],
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._base_url, self._models, self._timeline, self._transport = base_url, models, timeline, transport
        self._stop = threading.Event()
        self._swapping = threading.Event()  # set while a promotion is being rolled out
        self.requests = self.failed = self.failed_during_swaps = self.swaps = 0
        self.failures: list[str] = []
        self._thread = threading.Thread(target=self._run, name="replay-client", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    @contextlib.contextmanager
    def swap_window(self) -> Iterator[None]:
        self._swapping.set()
        try:
            yield
        finally:
            self._swapping.clear()

    def _run(self) -> None:
        with httpx.Client(base_url=self._base_url, timeout=10, transport=self._transport) as client:
            while not self._stop.is_set():
                for symbol, trend in self._models:
                    self._call(client, symbol, trend)
                time.sleep(0.02)

    def call_all_once(self) -> None:
        """One round over every model, on the caller's thread (tests)."""
        with httpx.Client(base_url=self._base_url, timeout=10, transport=self._transport) as client:
            for symbol, trend in self._models:
                self._call(client, symbol, trend)

    def _call(self, client: httpx.Client, symbol: str, trend: str) -> None:
        self.requests += 1
        try:
            response = client.get("/prediction", params={"symbol": symbol, "trend_type": trend})
        except httpx.HTTPError as exc:
            self._failure(f"{symbol} {trend}: {type(exc).__name__}: {exc}")
            return
        if response.status_code == 404:  # no champion yet: an expected answer, not a failure
            return
        if response.status_code != 200:
            self._failure(f"{symbol} {trend}: HTTP {response.status_code}: {response.text[:200]}")
            return
        version = response.json()["model_version"]
        served = self._timeline[f"{symbol} {trend}"].versions_served
        if not served or served[-1] != version:
            if served:
                self.swaps += 1
            served.append(version)

    def _failure(self, message: str) -> None:
        self.failed += 1
        if self._swapping.is_set():
            self.failed_during_swaps += 1
        if len(self.failures) < 20:
            self.failures.append(message)


def wait_until(condition: Callable[[], bool], timeout_s: float, poll_s: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(poll_s)
    return condition()


def run_replay(
    *,
    symbols: tuple[str, ...],
    start: datetime,
    days: int,
    state_dir: Path,
    echo: Echo = print,
    classifiers: tuple[str, ...] | None = None,
) -> ReplaySummary:
    """Replay ``days`` days after ``start`` (see the module docstring); returns what happened."""
    import uvicorn

    from common.registry import Registry
    from common.storage import S3ObjectStore
    from functions.predictor.app import Service, create_app
    from retrain.stack.config import LocalStackConfig
    from retrain.stack.embedded import EmbeddedStack, free_port
    from retrain.stack.session import Connection
    from retrain.train import start_training

    summary = ReplaySummary(start=start, days=days, symbols=symbols)
    models = [(s, t) for s in symbols for t in TRENDS]
    summary.models = {f"{s} {t}": ModelTimeline(s, t) for s, t in models}
    config = LocalStackConfig(moto_port=0, mlflow_port=0, state_dir=state_dir, symbols=symbols, sample_data_until=start)
    overrides = {"RETRAIN_TRAIN_CLASSIFIERS": ",".join(classifiers)} if classifiers else {}
    with _environment(overrides), EmbeddedStack(config, progress=lambda m: echo(f"  stack: {m}")) as stack:
        info = stack.info
        assert info is not None
        functions = info.functions
        connection = Connection("replay", info.bucket, info.state_machines.get("TrainingStateMachine"), info.mlflow_uri)
        registry = Registry(info.mlflow_uri)

        echo(f"initial training of {len(models)} model(s) as of {start:%Y-%m-%d}")
        first = start_training(
            connection,
            [{"symbol": s, "trend": t, "reason": "initial"} for s, t in models],
            as_of=start,
            name=f"replay-initial-{start:%Y%m%d}",
            echo=echo,
        )
        _count_execution(summary, first.output, "initial")

        clock = [start]
        settings = load_settings(
            symbols=symbols,
            data_bucket=info.bucket,
            mlflow_tracking_uri=info.mlflow_uri,
            predictor_model_refresh_seconds=0.5,
            predictor_feature_refresh_seconds=0.5,
        )
        service = Service.from_settings(settings, background=True, clock=lambda: clock[0])
        port = free_port("127.0.0.1")
        server = uvicorn.Server(
            uvicorn.Config(create_app(lambda: service), host="127.0.0.1", port=port, log_level="warning")
        )
        server_thread = threading.Thread(target=server.run, name="replay-predictor", daemon=True)
        server_thread.start()
        wait_until(lambda: server.started, 30)
        client = PredictionClient(f"http://127.0.0.1:{port}", models, summary.models)
        client.start()
        echo(f"predictor on http://127.0.0.1:{port}; a client calls /prediction for every model meanwhile")
        try:
            for day_number in range(1, days + 1):
                day = start + timedelta(days=day_number)
                _replay_day(day, day_number, days, functions, connection, registry, summary, client, clock, echo)
        finally:
            client.stop()
            server.should_exit = True
            server_thread.join(timeout=10)
            service.models.close()
        summary.requests, summary.failed_requests = client.requests, client.failed
        summary.failed_requests_during_swaps = client.failed_during_swaps
        summary.swaps_observed = client.swaps
        if client.failures:
            echo("failed requests (first ones): " + "; ".join(client.failures[:5]))
        summary.notifications_sent = sum(1 for _ in S3ObjectStore(info.bucket).list_keys("notifications/"))
        summary.live_accuracy = _live_accuracy(S3ObjectStore(info.bucket), models, start, start + timedelta(days))
    return summary


def _replay_day(
    day: datetime,
    number: int,
    total: int,
    functions: dict[str, str],
    connection: Any,
    registry: Any,
    summary: ReplaySummary,
    client: PredictionClient,
    clock: list[datetime],
    echo: Echo,
) -> None:
    import boto3

    from retrain.executions import run_execution

    only = {"symbols": list(summary.symbols)}  # the replay's models, whatever else the stack's pool holds
    check = invoke(functions["TriggerCheckerFunction"], scheduled_event(day, **only))
    for decision in check.get("decisions", []):
        name = f"{decision['symbol']} {decision['trend']}"
        timeline = summary.models.get(name)
        if timeline is None:
            continue
        triggers = decision.get("triggers", {})
        drift = triggers.get("drift") or {}
        if drift.get("value") is not None:
            timeline.last_psi = drift["value"]
        if decision.get("retrain"):
            fired = [triggers[r]["detail"] if r in triggers else r for r in decision.get("reasons", [])]
            timeline.triggers.append(f"{day:%m-%d} {'+'.join(decision.get('reasons', []))}: {'; '.join(fired)}")
    line = f"[{number}/{total}] {day:%Y-%m-%d}"
    if check.get("execution") and check.get("started"):
        echo(f"{line} triggers fired for {', '.join(check['retrain'])}: training ({check['execution']})")
        with client.swap_window():
            result = run_execution(
                boto3.client("stepfunctions"),
                connection.state_machine_arn,
                check["execution"],
                {},
                timeout_s=1800,
                attach_only=True,
            )
            _count_execution(summary, result.output, None, check)
            promoted = [r for r in (result.output or {}).get("results", []) if r.get("status") == "promoted"]
            for item in promoted:
                expected = str(item.get("version"))
                name = f"{item['symbol']} {item['trend']}"
                seen = wait_until(lambda n=name, v=expected: summary.models[n].versions_served[-1:] == [v], 30)
                echo(f"    {name}: v{expected} promoted; " + ("now served" if seen else "not yet served after 30 s"))
            for item in (result.output or {}).get("results", []):
                if item.get("status") != "promoted":
                    echo(f"    {item['symbol']} {item['trend']}: {item.get('status')} ({item.get('why', '')[:80]})")
    ingest = invoke(functions["IngestFunction"], scheduled_event(day + timedelta(minutes=5), **only))
    clock[0] = day + timedelta(minutes=5)
    batch = invoke(functions["BatchPredictFunction"], scheduled_event(day + timedelta(minutes=15), **only))
    predictions, outcomes = batch.get("predictions", {}), batch.get("outcomes", {})
    echo(
        f"{line} ingested {ingest.get('appended', 0)} bar(s); logged {predictions.get('written', 0)} "
        f"prediction(s), resolved {outcomes.get('resolved', 0)} outcome(s); "
        f"{client.requests} requests, {client.failed} failed"
    )


def _count_execution(
    summary: ReplaySummary, output: dict[str, Any] | None, reason: str | None, check: dict[str, Any] | None = None
) -> None:
    results = (output or {}).get("results", [])
    summary.models_trained += sum(1 for r in results if r.get("version") or r.get("status") in {"promoted", "kept"})
    summary.models_promoted += sum(1 for r in results if r.get("status") == "promoted")
    if reason is not None:
        summary.retrains_by_trigger[reason] += len(results)
    elif check is not None:
        for decision in check.get("decisions", []):
            for reason in decision.get("reasons", []) if decision.get("retrain") else []:
                summary.retrains_by_trigger[reason] += 1
        summary.executions.append(check["execution"])


def _live_accuracy(store: Any, models: list[tuple[str, str]], since: datetime, until: datetime) -> dict[str, Any]:
    """Per model and champion version: resolved predictions and how many were right."""
    from common.prediction_log import read_records

    accuracy: dict[str, Any] = {}
    for symbol, trend in models:
        by_version: dict[str, list[int]] = {}
        for record in read_records(store, symbol, trend, since=since, until=until + timedelta(days=1)):
            if record.correct is None:
                continue
            counts = by_version.setdefault(record.model_version, [0, 0])
            counts[0] += 1
            counts[1] += int(record.correct)
        accuracy[f"{symbol} {trend}"] = {
            f"v{version}": {"resolved": n, "accuracy": round(right / n, 3)}
            for version, (n, right) in by_version.items()
        }
    return accuracy


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    from retrain.stack.process import patched_environment

    with patched_environment(values):
        yield


def render(summary: ReplaySummary) -> str:
    header = f"{'model':<18}{'versions served':<18}{'retrains by trigger':<30}{'PSI':>7}  live accuracy by version"
    lines = [header, "-" * len(header)]
    for name, timeline in summary.models.items():
        reasons = Counter(entry.split(" ", 2)[1].rstrip(":") for entry in timeline.triggers)
        fired = ", ".join(f"{reason} x{count}" for reason, count in reasons.items()) or "-"
        psi = f"{timeline.last_psi:.3f}" if timeline.last_psi is not None else "-"
        accuracy = summary.live_accuracy.get(name, {})
        live = ", ".join(f"{v} {a['accuracy']:.2f} (n={a['resolved']})" for v, a in accuracy.items()) or "-"
        versions = " -> ".join(f"v{v}" for v in timeline.versions_served) or "-"
        lines.append(f"{name:<18}{versions:<18}{fired:<30}{psi:>7}  {live}")
    lines.append("")
    lines.append(
        f"models trained {summary.models_trained}, promoted {summary.models_promoted}; retrains by trigger "
        f"{dict(summary.retrains_by_trigger)}; swaps observed {summary.swaps_observed}; "
        f"{summary.requests} requests, {summary.failed_requests} failed "
        f"({summary.failed_requests_during_swaps} during swaps); notifications {summary.notifications_sent}"
    )
    return "\n".join(lines)
