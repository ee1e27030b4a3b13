"""The replay: real market history through the deployed logic, day by day, on the embedded stack.

An embedded stack (moto S3 + Step Functions interpreter + the real handlers, a real MLflow server) is seeded
with the sample bars up to the start day; the pool is trained as of then. Each replayed day then starts what
the schedule starts on AWS at 00:05: one execution of the day state machine (infra/day.asl.json), which

- ingests the bar that just closed (the replay provider reads the sample files);
- checks the models whose newest bar is stored, and runs the training state machine (nested) for the ones
  whose triggers fired: retrain, gate, promote or reject, notify;
- logs the day's predictions, and resolves the outcomes that came due.

The replay waits for the day and reads what each step wrote from its output (or, for a day that failed,
from its last state in the history) to tell the story.

Meanwhile the predictor runs on loopback (uvicorn, its model cache re-resolving aliases every half second)
and a client keeps calling ``/prediction`` for every model: a promotion shows as a version change in its
answers, and any failed request is counted.

:func:`replay` runs on any running stack (the demo's own, or a test session's: every event names the
replay's symbols, so other models in the pool are left alone); :func:`replay_stack` starts a fresh one seeded
up to the start day. Re-running the same days changes nothing: the initial training and each day's
executions have fixed names (``day-YYYY-MM-DD``: Step Functions refuses a second start; the replay re-attaches
and retells that day, counting nothing again), the trigger check
judges a day by what happened strictly before it, and the prediction log's writes are conditional.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from common.core.keys import NOTIFICATIONS_PREFIX
from common.core.settings import TRENDS, PoolEntry, load_settings, model_label

if TYPE_CHECKING:
    from retrain.stack.embedded import StackInfo

Echo = Callable[[str], None]
# The template's DaySchedule and HourSchedule (UTC): five minutes after the bar closed.
DAY_AT = timedelta(minutes=5)
Model = tuple[str, str, str]  # (symbol, trend, interval)


def _stamp(when: datetime, interval: str) -> str:
    """When, in a model's timeline: the day for a daily model, the day and hour for an hourly one."""
    return f"{when:%m-%d}" if interval == "1d" else f"{when:%m-%dT%H}"


@dataclass
class ModelTimeline:
    """What happened to one model during the replay."""

    symbol: str
    trend: str
    versions_served: list[str] = field(default_factory=list)  # in the order the client saw them
    triggers: list[str] = field(default_factory=list)  # "01-08 schedule: champion is 8.0 days old (> 7)"
    last_psi: float | None = None
    outcomes: list[str] = field(default_factory=list)  # "01-08 promoted: v2 overall 0.64 >= champion v1 0.61"
    held_back: list[str] = field(default_factory=list)  # "01-09 drift: last retrain 1.0 days ago (< 3-day cooldown)"
    last_psi_threshold: float | None = None  # last_psi is the PSI of the feature nearest its threshold
    evidence: str | None = None  # the champion's live record at the last check, in words (evidence rule)
    performance: str | None = None  # the performance trigger's verdict at the last check that judged it
    interval: str = "1d"


#: What ``--summary-json`` always holds (issue 8's list); ``ReplaySummary.to_dict`` adds per-model details.
SUMMARY_KEYS = (
    "models_trained",
    "models_promoted",
    "retrains_by_trigger",
    "swaps_observed",
    "failed_requests_during_swaps",
    "notifications_sent",
)


@dataclass
class ReplaySummary:
    start: datetime
    days: int
    symbols: tuple[str, ...]
    models_trained: int = 0  # trainings that finished (a failed step is not one), whatever the gate said
    versions_registered: int = 0
    models_promoted: int = 0
    retrains_by_trigger: Counter[str] = field(default_factory=Counter)
    swaps_observed: int = 0
    requests: int = 0
    failed_requests: int = 0
    failed_requests_during_swaps: int = 0
    notifications_sent: int = 0
    executions: list[str] = field(default_factory=list)  # training executions the replayed days started
    failed_days: list[str] = field(default_factory=list)  # "2024-11-21 Retrain.DayIncomplete: {...}"
    models: dict[str, ModelTimeline] = field(default_factory=dict)
    live_accuracy: dict[str, dict[str, Any]] = field(default_factory=dict)
    notifications: list[dict[str, str]] = field(default_factory=list)  # {"key", "subject", "text"}
    plots: dict[str, list[str]] = field(default_factory=dict)  # model -> local copies of its plots
    mlflow_uri: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "days": self.days,
            "symbols": list(self.symbols),
            "models_trained": self.models_trained,
            "versions_registered": self.versions_registered,
            "models_promoted": self.models_promoted,
            "retrains_by_trigger": dict(self.retrains_by_trigger),
            "swaps_observed": self.swaps_observed,
            "requests": self.requests,
            "failed_requests": self.failed_requests,
            "failed_requests_during_swaps": self.failed_requests_during_swaps,
            "notifications_sent": self.notifications_sent,
            "executions": self.executions,
            "failed_days": self.failed_days,
            "notifications": self.notifications,
            "plots": self.plots,
            "mlflow_uri": self.mlflow_uri,
            "seconds": round(self.seconds, 1),
            "models": {
                name: {
                    "versions_served": m.versions_served,
                    "triggers": m.triggers,
                    "outcomes": m.outcomes,
                    "held_back": m.held_back,
                    "last_psi": m.last_psi,
                    "last_psi_threshold": m.last_psi_threshold,
                    "performance": m.performance,
                    "live_accuracy": self.live_accuracy.get(name, {}),
                }
                for name, m in self.models.items()
            },
        }


class PredictionClient:
    """Calls ``/prediction`` for every model in a loop on its own thread, recording versions and failures."""

    def __init__(
        self,
        base_url: str,
        models: list[Model],
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
        if self._thread.is_alive():
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
                for symbol, trend, interval in self._models:
                    self._call(client, symbol, trend, interval)
                time.sleep(0.02)

    def call_all_once(self) -> None:
        """One round over every model, on the caller's thread (tests)."""
        with httpx.Client(base_url=self._base_url, timeout=10, transport=self._transport) as client:
            for symbol, trend, interval in self._models:
                self._call(client, symbol, trend, interval)

    def _call(self, client: httpx.Client, symbol: str, trend: str, interval: str = "1d") -> None:
        self.requests += 1
        name = model_label(symbol, trend, interval)
        # daily models are asked as the original API's clients ask (no interval parameter)
        params = {"symbol": symbol, "trend_type": trend} | ({} if interval == "1d" else {"interval": interval})
        try:
            response = client.get("/prediction", params=params)
        except httpx.HTTPError as exc:
            self._failure(f"{name}: {type(exc).__name__}: {exc}")
            return
        if response.status_code == 404:  # no champion yet: an expected answer, not a failure
            return
        if response.status_code != 200:
            self._failure(f"{name}: HTTP {response.status_code}: {response.text[:200]}")
            return
        version = response.json()["model_version"]
        served = self._timeline[name].versions_served
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


@contextlib.contextmanager
def replay_stack(
    *,
    symbols: tuple[str, ...],
    start: datetime,
    state_dir: Path,
    classifiers: tuple[str, ...] | None = None,
    echo: Echo = print,
) -> Iterator[StackInfo]:
    """A fresh embedded stack for a replay: the sample bars of ``symbols`` up to ``start`` only (ingestion
    appends the rest day by day), and the zoo reduced to ``classifiers`` for the handlers it runs."""
    from retrain.stack.config import LocalStackConfig
    from retrain.stack.embedded import EmbeddedStack

    config = LocalStackConfig(moto_port=0, mlflow_port=0, state_dir=state_dir, symbols=symbols, sample_data_until=start)
    overrides = {"RETRAIN_TRAIN_CLASSIFIERS": ",".join(classifiers)} if classifiers else {}
    with _environment(overrides), EmbeddedStack(config, progress=lambda m: echo(f"stack: {m}")) as stack:
        assert stack.info is not None
        yield stack.info


def replay(
    info: StackInfo,
    *,
    symbols: tuple[str, ...],
    start: datetime,
    days: int,
    echo: Echo = print,
    plots_dir: Path | None = None,
) -> ReplaySummary:
    """Replay ``days`` days after ``start`` on a running stack (see the module docstring)."""
    from common.aws.storage import S3ObjectStore
    from retrain.stack import sample_data
    from retrain.stack.config import LocalStackConfig
    from retrain.stack.session import Connection
    from retrain.train import start_training

    began = time.monotonic()
    summary = ReplaySummary(start=start, days=days, symbols=symbols, mlflow_uri=info.mlflow_uri)
    pool = load_settings(symbols=symbols).pool
    models = [(e.symbol, t, e.interval) for e in pool for t in TRENDS]
    summary.models = {model_label(*m): ModelTimeline(m[0], m[1], interval=m[2]) for m in models}
    store = S3ObjectStore(info.bucket)
    # Bars already stored are never rewritten: on the replay's own stack (seeded up to the start) this adds
    # nothing; on a shared stack it gives the replay's symbols their history up to the start.
    config = LocalStackConfig()
    seeded = sample_data.check_symbols(config.sample_data_dir, tuple(str(e) for e in pool))
    sample_data.seed(store, config.sample_data_dir, seeded, until=start)
    notifications_before = set(store.list_keys(NOTIFICATIONS_PREFIX))
    connection = Connection("replay", info.bucket, info.state_machines.get("TrainingStateMachine"), info.mlflow_uri)

    echo(f"initial training of {len(models)} model(s) on the bars up to {start:%Y-%m-%d}")
    first = start_training(
        connection,
        [{"symbol": s, "trend": t, "interval": i, "reason": "initial"} for s, t, i in models],
        as_of=start + DAY_AT,  # as if the start day's check had trained them: ages count from there
        name=f"replay-initial-{start:%Y%m%d}",
        echo=lambda m: echo(f"  {m.strip()}"),
    )
    _count_execution(summary, first.output, "initial")
    _record_outcomes(summary, first.output, start, echo)

    clock = [start]
    with _predictor_under_calls(info, symbols, models, summary.models, clock, echo) as client:
        for run in _scheduled_runs(pool, start, days):
            _replay_run(run, info.state_machines["DayStateMachine"], summary, client, clock, echo)
    summary.requests, summary.failed_requests = client.requests, client.failed
    summary.failed_requests_during_swaps = client.failed_during_swaps
    summary.swaps_observed = client.swaps
    if client.failures:
        echo("failed requests (first ones): " + "; ".join(client.failures[:5]))
    new_keys = sorted(set(store.list_keys(NOTIFICATIONS_PREFIX)) - notifications_before)
    summary.notifications = [_notification(store, key) for key in new_keys]
    summary.notifications_sent = len(summary.notifications)
    summary.live_accuracy = _live_accuracy(store, models, start, start + timedelta(days))
    if plots_dir is not None:
        summary.plots = _copy_plots(info, store, models, start + timedelta(days) + DAY_AT, plots_dir)
    summary.seconds = time.monotonic() - began
    return summary


def _scheduled_runs(pool: tuple[PoolEntry, ...], start: datetime, days: int) -> list[ScheduledRun]:
    """What the schedules start over the replayed days, in time order: each day at 00:05 the daily models'
    run, and at HH:05 of every hour the hourly models' run (as the template's DaySchedule and HourSchedule)."""
    daily = [e.symbol for e in pool if e.interval == "1d"]
    hourly = [e.symbol for e in pool if e.interval == "1h"]
    runs: list[tuple[datetime, str, list[str]]] = []
    for day_number in range(1, days + 1):
        day = start + timedelta(days=day_number)
        if daily:
            runs.append((day, "1d", daily))
        if hourly:
            # the hours of the day before (the day's own run at 00:05 is its first hour's too)
            runs += [(day - timedelta(hours=23 - h), "1h", hourly) for h in range(24)]
    runs.sort(key=lambda run: (run[0], run[1] != "1d"))
    return [ScheduledRun(when, interval, symbols, n, len(runs)) for n, (when, interval, symbols) in enumerate(runs, 1)]


@dataclass(frozen=True)
class ScheduledRun:
    """One execution of the day state machine the replay starts: as of ``when`` + 5 min, for ``interval``."""

    when: datetime  # the open of the period that starts (a day, or an hour)
    interval: str
    symbols: list[str]
    number: int
    total: int

    @property
    def as_of(self) -> datetime:
        return self.when + DAY_AT

    @property
    def name(self) -> str:
        return day_execution_name(self.when, self.interval)

    @property
    def line(self) -> str:
        when = f"{self.when:%Y-%m-%d}" if self.interval == "1d" else f"{self.when:%Y-%m-%d %H:%M} 1h"
        return f"[{self.number}/{self.total}] {when}"


@contextlib.contextmanager
def _predictor_under_calls(
    info: StackInfo,
    symbols: tuple[str, ...],
    models: list[Model],
    timeline: dict[str, ModelTimeline],
    clock: list[datetime],
    echo: Echo,
) -> Iterator[PredictionClient]:
    """The predictor on loopback (uvicorn in a thread, the replay's clock, aliases re-resolved every half
    second) and a client calling it for every model until the block ends."""
    from common.serving.api import Service, create_app
    from retrain.loopback import serving

    settings = load_settings(
        symbols=symbols,
        data_bucket=info.bucket,
        mlflow_tracking_uri=info.mlflow_uri,
        predictor_model_refresh_seconds=0.5,
        predictor_feature_refresh_seconds=0.5,
    )
    service = Service.from_settings(settings, background=True, clock=lambda: clock[0])
    try:
        with serving(create_app(lambda: service)) as url:
            client = PredictionClient(url, models, timeline)
            client.start()
            try:
                echo(f"predictor on {url}; a client calls /prediction for every model throughout")
                yield client
            finally:
                client.stop()
    finally:
        service.models.close()


def _copy_plots(
    info: StackInfo, store: Any, models: list[Model], last_check: datetime, folder: Path
) -> dict[str, list[str]]:
    """Each champion's plots from MLflow (walk-forward equity curve, SHAP, confusion matrix) and the last
    check's PSI chart from S3, copied to ``folder``: what the stack held, still there once it stops."""
    from common.core.keys import decision_key
    from common.core.settings import model_stem, registered_model_name
    from common.registry.mlflow_registry import CHAMPION, Registry

    registry = Registry(info.mlflow_uri)
    copied: dict[str, list[str]] = {}
    for symbol, trend, interval in models:
        files: list[Path] = []
        stem = model_stem(symbol, trend, interval)
        champion = registry.version_by_alias(registered_model_name(symbol, trend, interval), CHAMPION)
        if champion is not None:
            target = folder / f"{stem}_v{champion.version}"
            files += sorted(registry.download_artifacts(champion.run_id, "plots", target).glob("*.png"))
        # the replay's last run of either interval is as of the last day's 00:05
        psi_key = decision_key(symbol, trend, last_check, "_psi.png", interval)
        if store.exists(psi_key):
            psi = folder / f"{stem}_psi_{last_check:%Y-%m-%dT%H}.png"
            psi.parent.mkdir(parents=True, exist_ok=True)
            psi.write_bytes(store.get_bytes(psi_key))
            files.append(psi)
        if files:
            copied[model_label(symbol, trend, interval)] = [str(f) for f in files]
    return copied


def _notification(store: Any, key: str) -> dict[str, str]:
    document = store.get_json(key)
    return {"key": key, "subject": str(document.get("subject", "")), "text": str(document.get("text", ""))}


def _record_outcomes(summary: ReplaySummary, output: dict[str, Any] | None, when: datetime, echo: Echo) -> None:
    """Each model's result of one execution: in its timeline, and as a line on the console."""
    for item in (output or {}).get("results", []):
        interval = str(item.get("interval") or "1d")
        name = model_label(str(item.get("symbol")), str(item.get("trend")), interval)
        version = f"v{item['version']} " if item.get("version") else ""
        line = f"{item.get('status')}: {version}{str(item.get('why') or '').strip()}"[:160]
        if name in summary.models:
            summary.models[name].outcomes.append(f"{_stamp(when, interval)} {line}")
        echo(f"    {name}: {line}")


def day_execution_name(day: datetime, interval: str = "1d") -> str:
    """The replay's execution of a day (daily models) or of an hour (hourly models): fixed, so a re-run
    re-attaches instead of starting it again."""
    return f"day-{day:%Y-%m-%d}" if interval == "1d" else f"hour-{day:%Y-%m-%dT%H}"


def _replay_run(
    run: ScheduledRun,
    day_machine: str,
    summary: ReplaySummary,
    client: PredictionClient,
    clock: list[datetime],
    echo: Echo,
) -> None:
    """One run as a schedule starts it: one execution of the day state machine (ingest, check, train, predict)
    for the models of one interval, as of five minutes past the period's open. The whole run is a swap window:
    a promotion may be served before its last step has finished."""
    import boto3

    from retrain.executions import execution_exists, last_state, run_execution

    sfn = boto3.client("stepfunctions")
    name, line, as_of = run.name, run.line, run.as_of
    new = not execution_exists(sfn, day_machine, name)

    def on_step(step: Any) -> None:
        if step.kind == "TaskStateExited" and step.state == "Ingest":
            clock[0] = max(clock[0], as_of)  # the predictor now serves features of the bar that just closed

    with client.swap_window():
        # The replay's models only, whatever else the stack's pool holds.
        payload = {"as_of": as_of.isoformat(), "interval": run.interval, "symbols": run.symbols}
        result = run_execution(sfn, day_machine, name, payload, on_step=on_step, timeout_s=3600)
        clock[0] = max(clock[0], as_of)
        state = result.output if result.status == "SUCCEEDED" else last_state(sfn, result.arn)
        state = state or {}
        check, training = state.get("check") or {}, state.get("training") or {}
        _record_decisions(summary, check, run.when)
        if check.get("training"):
            execution = check["training"]["name"]
            echo(f"{line} triggers fired for {', '.join(check.get('retrain', []))}: training ({execution})")
            if new:
                _count_execution(summary, training, None, check)
            _record_outcomes(summary, training, run.when, echo)
            _wait_for_promotions(summary, training, echo)
    if result.status != "SUCCEEDED":
        echo(f"{line} {name} {result.status}: {result.error}: {str(result.cause)[:300]}")
        summary.failed_days.append(f"{name} {result.error}: {str(result.cause)[:300]}")
    ingestion, batch = state.get("ingestion") or {}, state.get("predictions") or {}
    predictions, outcomes = batch.get("predictions", {}), batch.get("outcomes", {})
    quiet = run.interval != "1d" and not check.get("training") and result.status == "SUCCEEDED"
    if quiet and run.when.hour != 0:
        return  # an hour where nothing but the routine happened: the day's line (00:05) sums it up
    echo(
        f"{line} {name} {result.status.lower()} in {result.duration_s:.1f}s{'' if new else ' (ran before: re-attached)'}; "
        f"ingested {ingestion.get('appended', 0)} bar(s); "
        f"logged {predictions.get('written', 0)} prediction(s), resolved {outcomes.get('resolved', 0)} outcome(s); "
        f"{client.requests} requests, {client.failed} failed"
    )


def _record_decisions(summary: ReplaySummary, check: dict[str, Any], when: datetime) -> None:
    for decision in check.get("decisions", []):
        interval = str(decision.get("interval") or "1d")
        timeline = summary.models.get(model_label(decision["symbol"], decision["trend"], interval))
        if timeline is None:
            continue
        stamp = _stamp(when, interval)
        triggers = decision.get("triggers", {})
        drift = triggers.get("drift") or {}
        evidence = ((triggers.get("performance") or {}).get("extra") or {}).get("evidence") or {}
        if evidence.get("text"):
            timeline.evidence = evidence["text"]
        performance = triggers.get("performance") or {}
        if performance.get("status") not in (None, "off", "not_checked"):
            timeline.performance = f"{stamp} {performance['status']}: {performance.get('detail', '')}"
        if drift.get("value") is not None:
            timeline.last_psi, timeline.last_psi_threshold = drift["value"], drift.get("threshold")
        # "no_model" is the schedule trigger's verdict when there is no champion: its detail says why.
        fired = [
            (triggers.get("schedule" if r == "no_model" else r) or {}).get("detail", r)
            for r in decision.get("reasons", [])
        ]
        reasons = "+".join(decision.get("reasons", []))
        if decision.get("retrain"):
            timeline.triggers.append(f"{stamp} {reasons}: {'; '.join(fired)}")
        elif decision.get("held_back"):
            timeline.held_back.append(f"{stamp} {reasons}: {decision['held_back']}")


def _wait_for_promotions(summary: ReplaySummary, training: dict[str, Any], echo: Echo) -> None:
    """Waits for the predictor to serve each version the day promoted, while the client keeps calling it."""
    for item in training.get("results", []):
        if item.get("status") != "promoted":
            continue
        expected = str(item.get("version"))
        name = model_label(item["symbol"], item["trend"], str(item.get("interval") or "1d"))
        if name not in summary.models:
            continue
        seen = wait_until(lambda n=name, v=expected: summary.models[n].versions_served[-1:] == [v], 30)
        swap = " -> ".join(f"v{v}" for v in summary.models[name].versions_served[-2:])
        echo(f"    {name}: predictor now serves {swap}" if seen else f"    {name}: v{expected} not served after 30 s")


def _count_execution(
    summary: ReplaySummary, output: dict[str, Any] | None, reason: str | None, check: dict[str, Any] | None = None
) -> None:
    results = (output or {}).get("results", [])
    summary.models_trained += sum(1 for r in results if r.get("status") != "failed")
    summary.versions_registered += sum(1 for r in results if r.get("version"))
    summary.models_promoted += sum(1 for r in results if r.get("status") == "promoted")
    if reason is not None:
        summary.retrains_by_trigger[reason] += len(results)
    elif check is not None:
        for decision in check.get("decisions", []):
            for reason in decision.get("reasons", []) if decision.get("retrain") else []:
                summary.retrains_by_trigger[reason] += 1
        summary.executions.append(check["training"]["name"])


def _live_accuracy(store: Any, models: list[Model], since: datetime, until: datetime) -> dict[str, Any]:
    """Per model and champion version: resolved predictions and how many were right."""
    from common.data.prediction_log import read_records

    accuracy: dict[str, Any] = {}
    for symbol, trend, interval in models:
        by_version: dict[str, list[int]] = {}
        end = until + timedelta(days=1)
        for record in read_records(store, symbol, trend, since=since, until=end, interval=interval):
            if record.correct is None:
                continue
            counts = by_version.setdefault(record.model_version, [0, 0])
            counts[0] += 1
            counts[1] += int(record.correct)
        accuracy[model_label(symbol, trend, interval)] = {
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
    """The per-model table, then what happened to each model day by day, then the totals."""
    header = (
        f"{'model':<20}{'versions served':<22}{'retrains by trigger':<26}{'PSI/limit':>11}  live accuracy by version"
    )
    lines = [header, "-" * len(header)]
    for name, timeline in summary.models.items():
        reasons = Counter(entry.split(" ", 2)[1].rstrip(":") for entry in timeline.triggers)
        fired = ", ".join(f"{reason} x{count}" for reason, count in reasons.items()) or "-"
        psi = "-"  # the last check's PSI of the feature nearest its threshold, and that threshold
        if timeline.last_psi is not None:
            limit = f"{timeline.last_psi_threshold:.2f}" if timeline.last_psi_threshold is not None else "?"
            psi = f"{timeline.last_psi:.2f}/{limit}"
        accuracy = summary.live_accuracy.get(name, {})
        live = ", ".join(f"{v} {a['accuracy']:.2f} (n={a['resolved']})" for v, a in accuracy.items()) or "-"
        versions = " -> ".join(f"v{v}" for v in timeline.versions_served) or "none served"
        lines.append(f"{name:<20}{versions:<22}{fired:<26}{psi:>11}  {live}")
    lines += ["", "what happened (day: trigger and why -> outcome):"]
    for name, timeline in summary.models.items():

        def split(entry: str) -> tuple[str, str]:
            stamp, _, text = entry.partition(" ")
            return stamp, text

        events = sorted(
            [(split(e)[0], 0, "fired " + split(e)[1]) for e in timeline.triggers]
            + [(split(e)[0], 1, "-> " + split(e)[1]) for e in timeline.outcomes]
            + [(split(e)[0], 0, "held back " + split(e)[1]) for e in timeline.held_back]
        )
        lines.append(f"  {name}")
        lines += [f"    {day}  {text}" for day, _, text in events] or ["    (nothing)"]
        if timeline.evidence:
            lines.append(f"    live record at the last check: {timeline.evidence}")
        elif timeline.performance:
            lines.append(f"    performance trigger at the last check: {timeline.performance}")
    lines.append("")
    lines.append(
        f"models trained {summary.models_trained}, versions registered {summary.versions_registered}, promoted "
        f"{summary.models_promoted}; retrains by trigger "
        f"{dict(summary.retrains_by_trigger)}; swaps observed {summary.swaps_observed}; "
        f"{summary.requests} requests, {summary.failed_requests} failed "
        f"({summary.failed_requests_during_swaps} during swaps); notifications {summary.notifications_sent}"
    )
    return "\n".join(lines)


def render_plots(summary: ReplaySummary) -> str:
    if not summary.plots:
        return "plots: none (no champion)"
    lines = ["plots of each champion (from MLflow) and the last PSI chart (from S3):"]
    for model, files in summary.plots.items():
        lines.append(f"  {model}: " + ", ".join(files))
    return "\n".join(lines)


def render_outbox(summary: ReplaySummary, last_in_full: int = 1) -> str:
    """The notifications the replay wrote: one line each, the newest in full."""
    if not summary.notifications:
        return "notification outbox: empty"
    lines = [f"notification outbox ({len(summary.notifications)} written to s3://.../notifications/):"]
    lines += [f"  {item['key']}: {item['subject']}" for item in summary.notifications]
    for item in summary.notifications[-last_in_full:]:
        lines += ["", f"  newest, {item['key']}:"] + [f"    {line}" for line in item["text"].splitlines()]
    return "\n".join(lines)
