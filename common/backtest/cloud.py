"""The backtest as a Step Functions Map over models (``infra/backtest.asl.json``): one (symbol, trend) per Lambda
invocation, every result in the data bucket.

- :func:`run_unit` is one Map iteration: the model's stored series (the object the live loop reads, parsed as
  stored, as ``retrain backtest`` parses its CSV file), :func:`common.backtest.replay.backtest_model` under every policy,
  and the result with its timings written to ``backtests/{run_id}/units/{SYMBOL}_{trend}.json``.
- :func:`summarize_units` is the last step: the units that completed, read back in the order of the execution
  input, :func:`common.backtest.stats.summarize` and :func:`common.backtest.report.report_files`, every file of the
  report under ``backtests/{run_id}/report/``.

A unit's settings are built as ``retrain backtest`` builds them (the configured settings, the pool narrowed to
the unit's symbol, the request's interval and zoo), so one request gives the same JSON on AWS, on the embedded
stack and on a laptop's process pool.

What the CLI decides too (the history a run needs, the report's meta, the summary's arguments, timings.json)
comes from the same functions (:func:`common.backtest.replay.check_history`, :mod:`common.backtest.report`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any

from common.aws.storage import S3ObjectStore
from common.backtest.replay import ModelUnit, backtest_model, check_history
from common.backtest.report import DEFAULT_REPLICATES, report_meta, summarize_models, timing_summary
from common.core.errors import RetrainError
from common.core.keys import backtest_prefix, backtest_report_key, backtest_unit_key
from common.core.settings import Settings, load_settings
from common.data.bar_store import OhlcvStore
from common.loop.events import BacktestModelEvent, BacktestModelResult, BacktestRequest, BacktestSummarizeEvent

CONTENT_TYPES = {".md": "text/markdown; charset=utf-8", ".json": "application/json", ".png": "image/png"}

Progress = Callable[[str], None]


class BacktestRunError(RetrainError):
    """A backtest run cannot be summarised: no model completed, or a unit's result is not this run's."""


def _quiet(_: str) -> None:
    pass


# --- one Map iteration ---------------------------------------------------------------------------------------
def request_settings(request: BacktestRequest, symbols: Sequence[str]) -> Settings:
    """The configured settings with the request's interval and zoo, the pool narrowed to ``symbols``
    (what ``retrain backtest`` passes its units: ``load_settings(symbols=..., **overrides)``)."""
    overrides: dict[str, Any] = {}
    if request.interval is not None:
        overrides["interval"] = request.interval
    if request.classifiers is not None:
        overrides["train_classifiers"] = request.classifiers
    return load_settings(symbols=tuple(dict.fromkeys(symbols)), **overrides)


def run_unit(
    objects: S3ObjectStore, request: BacktestModelEvent, *, progress: Progress = _quiet
) -> BacktestModelResult:
    """Replay one (symbol, trend) under every policy of the request; write its result; say what it did.

    :class:`common.core.errors.DataNotFoundError` when the symbol has no stored series, :class:`ConfigurationError`
    when its bars do not cover the period (nothing is written then)."""
    settings = request_settings(request, [request.symbol])
    unit = ModelUnit(request.symbol, request.trend, settings.interval)
    bars = OhlcvStore(objects).read(unit.symbol, unit.interval).bars
    check_history(
        bars, symbol=unit.symbol, trends=[unit.trend], start=request.start, end=request.end, settings=settings
    )
    result, timings = backtest_model(
        unit,
        bars,
        base=settings,
        policies=request.parsed_policies(),
        start=request.start,
        end=request.end,
        progress=progress,
    )
    key = backtest_unit_key(request.run_id, unit.symbol, unit.trend, unit.interval)
    objects.put_json(key, {"result": result, "timings": {"model": unit.name, **timings.to_dict()}})
    runs = result["policies"]
    return BacktestModelResult(
        symbol=unit.symbol,
        trend=unit.trend,
        interval=unit.interval,
        status="done",
        key=key,
        trainings={name: len(run["trainings"]) for name, run in runs.items()},
        promotions={name: sum(t["status"] == "promoted" for t in run["trainings"]) for name, run in runs.items()},
        final_champion={name: run["final_champion"] for name, run in runs.items()},
        replay_errors={name: len(run["errors"]) for name, run in runs.items()},
        wall_s=round(timings.wall_s, 2),
    )


# --- the summary ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BacktestReport:
    run_id: str
    files: dict[str, str]  # file name -> key
    models: list[str]
    failed_models: list[dict[str, Any]]
    pooled: dict[str, dict[str, Any]]  # policy -> headline figures

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "prefix": backtest_prefix(self.run_id),
            "files": self.files,
            "models": self.models,
            "failed_models": self.failed_models,
            "pooled": self.pooled,
        }


def summarize_units(
    objects: S3ObjectStore, request: BacktestSummarizeEvent, *, now: datetime, cpu_count: int | None = None
) -> BacktestReport:
    """The report of every unit that completed (in the order of ``request.results``); the failed ones are
    listed in its meta. :class:`BacktestRunError` when none completed or a unit is not this run's."""
    done = [r for r in request.results if r.status == "done"]
    failed = [
        {"model": f"{r.symbol} {r.trend}", "error": r.error, "message": _error_message(r.cause)}
        for r in request.results
        if r.status == "failed"
    ]
    if not done:
        errors = "; ".join(f"{f['model']}: {f['error']}" for f in failed)
        raise BacktestRunError(f"backtest {request.run_id}: no model completed ({errors})")
    models, timings = [], []
    for item in done:
        assert item.symbol and item.trend and item.key  # BacktestModelResult checks a done result has them
        expected = backtest_unit_key(request.run_id, item.symbol, item.trend, item.interval)
        if item.key != expected:
            raise BacktestRunError(f"{item.symbol} {item.trend}: result {item.key} is not this run's ({expected})")
        document = objects.get_json(item.key)
        result = document["result"]
        _check_unit(result, request, item.key)
        models.append(result)
        timings.append(document["timings"])
    policies = request.parsed_policies()
    settings = request_settings(request, [item.symbol for item in done if item.symbol])
    units = [ModelUnit(m["symbol"], m["trend"], m["interval"]) for m in models]
    summary = summarize_models(
        models,
        policies=policies,
        settings=settings,
        interval=units[0].interval,
        replicates=request.replicates or DEFAULT_REPLICATES,
    )
    meta = {
        **report_meta(start=request.start, end=request.end, units=units, settings=settings, policies=policies),
        "run_id": request.run_id,
        "failed_models": failed,
    }
    wall_s = (now - request.started_at).total_seconds() if request.started_at else sum(t["wall_s"] for t in timings)
    jobs = request.max_concurrency or len(done)
    times = timing_summary(timings, wall_s, jobs, cpu_count=cpu_count)
    from common.backtest.report import report_files

    files = {}
    for name, payload in report_files(models, summary, meta, times).items():
        key = backtest_report_key(request.run_id, name)
        objects.put_bytes(
            key, payload, content_type=CONTENT_TYPES.get(PurePosixPath(name).suffix, "application/octet-stream")
        )
        files[name] = key
    pooled = {
        name: {k: p["pooled"].get(k) for k in ("trainings_per_model", "promotions", "overall_score", "mean_sharpe")}
        for name, p in summary["policies"].items()
    }
    return BacktestReport(request.run_id, files, [u.name for u in units], failed, pooled)


def _error_message(cause: str | None) -> str | None:
    """The message of a failed iteration's cause: a Lambda error's ``errorMessage`` (its stack trace left out),
    or the cause as Step Functions gave it (States.Timeout, States.Runtime)."""
    try:
        error = json.loads(cause or "")
    except ValueError:
        return cause
    return str(error.get("errorMessage", cause)) if isinstance(error, dict) else cause


def _check_unit(result: dict[str, Any], request: BacktestRequest, key: str) -> None:
    """A unit written for another period or other policies would make the summary compare unlike things."""
    expected = (request.start.isoformat(), request.end.isoformat(), sorted(request.policies))
    found = (result.get("start"), result.get("end"), sorted(result.get("policies", {})))
    if found != expected:
        raise BacktestRunError(f"{key} holds start, end, policies {found}, not this run's {expected}")
