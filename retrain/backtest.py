"""``retrain backtest``: the loop's own decisions replayed over years of history, policy against policy.

Each (symbol, trend) is an independent unit (:func:`common.backtest.replay.backtest_model`), run on a process pool
(``--jobs``); the summary, intervals and plots come from :mod:`common.backtest.stats` and
:mod:`common.backtest.report`. The same unit runs as one Map iteration of the backtest state machine on AWS
(``functions/backtest``).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from common.backtest.replay import ModelUnit, backtest_model, check_history
from common.backtest.report import DEFAULT_REPLICATES, report_meta, summarize_models, timing_summary
from common.core.errors import ConfigurationError
from common.core.settings import (
    ALL_CLASSIFIERS,
    TRENDS,
    Settings,
    is_symbol,
    load_settings,
    parse_pool_entry,
    pool_entry_text,
)
from common.loop.policies import DEFAULT_POLICY, Policy, parse_policies

DEFAULT_SYMBOLS = "BTC,ETH"
DEFAULT_START = "2022-01-01"
DEFAULT_END = "2025-02-05"
DEFAULT_POLICIES = "never,every-30d,default"
DEFAULT_CLASSIFIERS = "lightgbm"

Echo = Callable[[str], None]


@dataclass(frozen=True)
class BacktestPlan:
    """Everything a run needs, validated before any work starts."""

    units: list[ModelUnit]
    policies: list[Policy]
    start: datetime
    end: datetime
    data_dir: Path
    overrides: dict[str, Any]  # settings every unit applies (the classifiers)
    settings: Settings
    baseline: str = DEFAULT_POLICY  # the policy every difference is reported against

    def meta(self) -> dict[str, Any]:
        return report_meta(
            start=self.start,
            end=self.end,
            units=self.units,
            settings=self.settings,
            policies=self.policies,
            baseline=self.baseline,
        )


def series_path(data_dir: Path, interval: str, symbol: str) -> Path:
    return data_dir / interval / f"{symbol}.csv"


def read_series(data_dir: Path, interval: str, symbol: str) -> pd.DataFrame:
    from common.data.ohlcv import parse_ohlcv_csv

    path = series_path(data_dir, interval, symbol)
    return parse_ohlcv_csv(path.read_bytes(), source=str(path), invalid_cells="keep")


def plan(
    *,
    symbols: str,
    start: datetime,
    end: datetime,
    policies: str,
    classifiers: str,
    interval: str,
    data_dir: Path,
    baseline: str = DEFAULT_POLICY,
) -> BacktestPlan:
    """The run's units and settings; :class:`ConfigurationError` (one line) for anything it cannot run."""
    if end <= start:
        raise ConfigurationError(f"--end {end:%Y-%m-%d} must be after --start {start:%Y-%m-%d}")
    if not data_dir.is_dir():
        raise ConfigurationError(f"--data-dir {data_dir}: not a folder (it holds {{interval}}/{{SYMBOL}}.csv)")
    entries = [pool_entry_text(s) for s in symbols.split(",") if s.strip()]
    if not entries:
        raise ConfigurationError("--symbols is empty")
    bad = [e for e in entries if not is_symbol(e.partition(":")[0])]
    if bad:
        raise ConfigurationError(f"--symbols {','.join(bad)}: not symbol names (A-Z and 0-9 only)")
    try:
        pool = [parse_pool_entry(entry, interval) for entry in entries]
    except ValueError as exc:
        raise ConfigurationError(f"--symbols: {exc}") from None
    intervals = sorted({entry.interval for entry in pool})
    if len(intervals) > 1:
        raise ConfigurationError(
            f"--symbols mixes {' and '.join(intervals)} entries: a backtest run replays one interval (its report "
            "annualises and bootstraps on one bar length); run one per interval, e.g. --interval 1h for the hourly ones"
        )
    interval = intervals[0]
    names = [entry.symbol for entry in pool]
    missing = [s for s in names if not series_path(data_dir, interval, s).is_file()]
    if missing:
        held = sorted(p.stem for p in (data_dir / interval).glob("*.csv")) if (data_dir / interval).is_dir() else []
        raise ConfigurationError(
            f"no {interval} data for {', '.join(missing)} in {data_dir / interval} (it holds: {', '.join(held) or 'nothing'})"
        )
    overrides: dict[str, Any] = {"interval": interval}
    zoo = tuple(c.strip() for c in classifiers.split(",") if c.strip())
    unknown = [c for c in zoo if c not in ALL_CLASSIFIERS]
    if unknown:
        raise ConfigurationError(f"--classifiers {','.join(unknown)}: unknown; choose from {','.join(ALL_CLASSIFIERS)}")
    if zoo:
        overrides["train_classifiers"] = zoo
    settings = load_settings(symbols=tuple(names), **overrides)
    chosen = parse_policies(policies, baseline)
    for policy in chosen:
        policy.settings(settings)  # every policy's settings validate before anything runs
    for symbol in names:
        try:
            check_history(
                read_series(data_dir, interval, symbol),
                symbol=symbol,
                trends=TRENDS,
                start=start,
                end=end,
                settings=settings,
            )
        except ConfigurationError as exc:  # the same check as the Lambda's, in the CLI's words
            raise ConfigurationError(
                str(exc).replace("end ", "--end ", 1).replace("before start", "before --start")
            ) from None
    units = [ModelUnit(symbol, trend, interval) for symbol in names for trend in TRENDS]
    return BacktestPlan(units, chosen, start, end, data_dir, overrides, settings, baseline)


def run_unit(job: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """One (symbol, trend) under every policy: the unit a worker process (or a Lambda) runs."""
    from common.loop.policies import parse_policy

    unit = ModelUnit(job["symbol"], job["trend"], job["interval"])
    began = job.get("began", time.time())

    def say(message: str) -> None:
        print(f"{time.time() - began:7.1f}s   {message}", flush=True)

    settings = load_settings(symbols=(unit.symbol,), **job["overrides"])
    bars = read_series(Path(job["data_dir"]), unit.interval, unit.symbol)
    result, timings = backtest_model(
        unit,
        bars,
        base=settings,
        policies=[parse_policy(name) for name in job["policies"]],
        start=datetime.fromisoformat(job["start"]),
        end=datetime.fromisoformat(job["end"]),
        progress=say,
    )
    return result, {"model": unit.name, **timings.to_dict()}


UNITS_FOLDER = "units"  # inside the report folder: one file per finished unit, what --resume reuses


def code_fingerprint() -> str:
    """A digest of the replay's code (every module of ``common``): a finished unit is reused only by the same code."""
    import common

    digest = hashlib.sha256()
    root = Path(common.__file__).parent
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def unit_key(job: dict[str, Any], code: str) -> str:
    """What a unit's result depends on: its job (minus the clock), the settings its worker resolves (the
    environment included), the bytes of its series and the code. Equal keys give equal results: the replay is
    deterministic."""
    settings = load_settings(symbols=(job["symbol"],), **job["overrides"]).model_dump(mode="json")
    series = series_path(Path(job["data_dir"]), job["interval"], job["symbol"]).read_bytes()
    material = {
        "job": {k: v for k, v in job.items() if k not in ("began", "data_dir")},
        "settings": settings,
        "series_sha256": hashlib.sha256(series).hexdigest(),
        "code": code,
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class UnitCheckpoints:
    """Finished units kept in ``<report>/units/``: a run killed after hours loses only the units in flight."""

    folder: Path
    code: str

    def path(self, job: dict[str, Any]) -> Path:
        return self.folder / f"{job['symbol']}_{job['interval']}_{job['trend']}.json"

    def key(self, job: dict[str, Any]) -> str:
        return unit_key(job, self.code)

    def load(self, job: dict[str, Any], key: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """The unit's saved result if it was made from ``key``; None if absent, stale or unreadable."""
        try:
            saved = json.loads(self.path(job).read_text())
            if saved["key"] == key:
                return saved["result"], saved["timings"]
        except (OSError, ValueError, KeyError, TypeError):
            pass
        return None

    def save(self, job: dict[str, Any], key: str, outcome: tuple[dict[str, Any], dict[str, Any]]) -> None:
        result, timings = outcome
        document = {"key": key, "result": result, "timings": timings}
        write_report(self.folder, {self.path(job).name: json.dumps(document, sort_keys=True).encode()})


def run(
    plan_: BacktestPlan,
    *,
    jobs: int,
    echo: Echo,
    checkpoints: UnitCheckpoints | None = None,
    resume: bool = False,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every unit, ``jobs`` at a time; results in the plan's order (the same JSON whatever ``jobs`` is).

    With ``checkpoints`` each finished unit is saved as it finishes; with ``resume`` too, a unit saved by an
    earlier run with the same key is reused instead of replayed."""
    began = time.time()
    work = [
        {
            "symbol": u.symbol,
            "trend": u.trend,
            "interval": u.interval,
            "start": plan_.start.isoformat(),
            "end": plan_.end.isoformat(),
            "policies": [p.name for p in plan_.policies],
            "overrides": plan_.overrides,
            "data_dir": str(plan_.data_dir),
            "began": began,
        }
        for u in plan_.units
    ]
    results: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}
    # Each unit's key, computed once (it reads the series): what a saved unit must match, what a new one gets.
    keys = [checkpoints.key(job) for job in work] if checkpoints is not None else []

    def finished(index: int, outcome: tuple[dict[str, Any], dict[str, Any]]) -> None:
        results[index] = outcome
        if checkpoints is not None:
            checkpoints.save(work[index], keys[index], outcome)
        echo(f"[{len(results)}/{len(work)}] {plan_.units[index].name} done")

    if checkpoints is not None:
        saved = {index: checkpoints.load(job, keys[index]) for index, job in enumerate(work)}
        reusable = {
            index: (outcome[0], {**outcome[1], "resumed": True})  # its wall and CPU seconds are the earlier run's
            for index, outcome in saved.items()
            if outcome is not None
        }
        if reusable and resume:
            results.update(reusable)
            names = ", ".join(plan_.units[index].name for index in sorted(reusable))
            echo(f"[{len(results)}/{len(work)}] reused from {checkpoints.folder}: {names}")
        elif reusable:
            echo(
                f"{len(reusable)} unit(s) in {checkpoints.folder} were finished by an earlier run of these arguments; "
                "--resume reuses them (this run replays them again)"
            )
    pending = [index for index in range(len(work)) if index not in results]
    try:
        if jobs <= 1:
            for index in pending:
                finished(index, run_unit(work[index]))
        elif pending:
            with ProcessPoolExecutor(max_workers=jobs) as pool:
                futures = {pool.submit(run_unit, work[index]): index for index in pending}
                for future in as_completed(futures):
                    finished(futures[future], future.result())
    except KeyboardInterrupt:
        if checkpoints is not None:
            echo(
                f"stopped: {len(results)} of {len(work)} unit(s) finished and kept in {checkpoints.folder}; "
                "the same command with --resume goes on"
            )
        raise
    ordered = [results[i] for i in range(len(work))]
    return [r for r, _ in ordered], [t for _, t in ordered]


def summarize_run(
    plan_: BacktestPlan, models: list[dict[str, Any]], *, replicates: int = DEFAULT_REPLICATES
) -> dict[str, Any]:
    return summarize_models(
        models,
        policies=plan_.policies,
        settings=plan_.settings,
        interval=plan_.units[0].interval,
        replicates=replicates,
        baseline=plan_.baseline,
    )


def run_timings(timings: list[dict[str, Any]], wall_s: float, jobs: int) -> dict[str, Any]:
    return timing_summary(timings, wall_s, jobs, cpu_count=os.cpu_count())


def write_report(folder: Path, files: dict[str, bytes]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, payload in files.items():
        tmp = folder / f".{name}.tmp"
        tmp.write_bytes(payload)
        tmp.replace(folder / name)


def render_console(summary: dict[str, Any], meta: dict[str, Any]) -> str:
    """The pooled table and the differences from the default, for the terminal."""
    width = max([18, *(len(name) + 2 for name in summary["policies"])])
    lines = [
        f"{'policy':<{width}}{'trainings/model':>16}{'promotions':>11}{'accuracy':>10}{'overall_score [95%]':>26}"
        f"{'mean Sharpe':>12}{'Sharpe<0':>10}{'total return':>14}"
    ]
    for name, p in summary["policies"].items():
        pooled, level = p["pooled"], p["levels"]["overall_score"]
        score = f"{_num(pooled['overall_score'])} [{_num(level.get('low'))}, {_num(level.get('high'))}]"
        total = pooled["portfolio_total_return"]
        lines.append(
            f"{name:<{width}}{pooled['trainings_per_model']:>16.1f}{pooled['promotions']:>11}{_num(pooled['accuracy']):>10}"
            f"{score:>26}{_num(pooled['mean_sharpe'], 2):>12}"
            f"{pooled['models_with_negative_sharpe']:>5} of {len(meta['models']):<3}"
            f"{(f'{total:+.1%}' if total is not None else '-'):>12}"
        )
    lines.append("")
    lines.append(f"difference from {meta['default_policy']} (95 % block-bootstrap interval; * excludes 0):")
    for name, p in summary["policies"].items():
        d = p["differences_from_default"]
        if not d:
            continue
        parts = []
        for key, label in (("overall_score", "overall_score"), ("mean_sharpe", "mean Sharpe")):
            entry = d.get(key) or {}
            if entry.get("estimate") is None:
                continue
            star = " *" if (entry.get("low") or 0) > 0 or (entry.get("high") or 0) < 0 else ""
            parts.append(f"{label} {entry['estimate']:+.3f} [{entry['low']:+.3f}, {entry['high']:+.3f}]{star}")
        lines.append(f"  {name:<{width - 2}}{'; '.join(parts)}")
    lines.append("")
    lines.append("estimate minus live overall_score of the served versions (outcome-weighted; raw, selection-aware):")
    for name, p in summary["policies"].items():
        texts = []
        for gap in (p["gap"], p.get("honest_gap") or {}):
            texts.append(
                "-"
                if gap.get("estimate") is None
                else f"{gap['estimate']:+.3f} [{_num(gap.get('low'))}, {_num(gap.get('high'))}]"
            )
        lines.append(f"  {name:<{width - 2}}{texts[0]}; {texts[1]}")
    return "\n".join(lines)


def _num(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def parse_day(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigurationError(f"{text!r} is not a date (YYYY-MM-DD)") from None
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value.replace(hour=0, minute=0, second=0, microsecond=0)
