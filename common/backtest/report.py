"""A backtest's report: the tables as Markdown and JSON, and the plots a person would rather look at.

:func:`report_files` turns the per-model results and their summary (:func:`common.backtest.stats.summarize`)
into named files (``report.md``, ``backtest.json``, ``timings.json``, ``pareto.png``, ``equity.png``,
``estimate_vs_live.png``); the caller writes them to a folder (``retrain backtest --report``) or to S3 (the
backtest state machine). ``backtest.json`` holds no timing and is byte-identical for the same inputs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pandas as pd

from common.backtest.replay import ModelUnit
from common.core.settings import Settings
from common.loop.policies import DEFAULT_POLICY, Policy
from common.training.plots import estimate_vs_live_png, policy_equity_png, policy_pareto_png

DEFAULT_REPLICATES = 1000  # bootstrap replicates of the summary (retrain backtest --bootstrap)


def _f(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def _pct(value: Any) -> str:
    return "-" if value is None else f"{value:+.1%}"


def _interval(entry: dict[str, Any] | None, digits: int = 3, percent: bool = False) -> str:
    if not entry or entry.get("estimate") is None:
        return "-"
    scale, suffix = (100.0, " pp") if percent else (1.0, "")
    est, low, high = (entry.get(k) for k in ("estimate", "low", "high"))
    if low is None or high is None:
        return f"{est * scale:+.{digits}f}{suffix}"
    marker = " *" if low > 0 or high < 0 else ""
    return f"{est * scale:+.{digits}f} [{low * scale:+.{digits}f}, {high * scale:+.{digits}f}]{suffix}{marker}"


_BAR_NAMES = {"1d": "days", "1h": "hours"}  # the grid's bars, in words


def render_markdown(summary: dict[str, Any], meta: dict[str, Any]) -> str:
    policies = summary["policies"]
    default = meta["default_policy"]
    lines = [
        f"# Backtest {meta['start'][:10]} .. {meta['end'][:10]}",
        "",
        f"{len(meta['models'])} models ({', '.join(meta['models'])}), classifiers {', '.join(meta['classifiers'])}, "
        f"interval {meta['interval']}, cost {meta['cost_per_trade'] * 1e4:g} bp per position change; "
        f"{summary['days']} {_BAR_NAMES.get(meta['interval'], meta['interval'] + ' bars')}. Intervals: 95 % "
        f"moving-block bootstrap over the bars, blocks of {summary['block_days']} bars (twice the "
        f"{meta['horizon']}-bar label horizon), {summary['replicates']} replicates; every policy resampled on the "
        "same bars.",
        "",
        "## Policies",
        "",
        "| policy | what it is |",
        "|---|---|",
        *[f"| {p['name']} | {p['description']} |" for p in meta["policies"]],
        "",
        "## Cost and worth, pooled over the models",
        "",
        "| policy | trainings per model | swaps per model-year | coverage | live accuracy | live overall_score [95 %] | "
        "Brier | mean Sharpe of models | models with Sharpe < 0 (their share of served bars) | pooled Sharpe [95 %] "
        "| pooled total return |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    n_models = len(meta["models"])
    for name, p in policies.items():
        pooled, level = p["pooled"], p["levels"]["overall_score"]
        score = f"{_f(pooled['overall_score'])} [{_f(level.get('low'))}, {_f(level.get('high'))}]"
        sharpe = p["levels"]["portfolio_sharpe"]
        share = pooled.get("served_days_of_negative_sharpe_models")
        lines.append(
            f"| {name} | {_f(pooled['trainings_per_model'], 1)} | {_f(pooled.get('swaps_per_model_year'), 1)} "
            f"| {_f(pooled['coverage'], 2)} | {_f(pooled['accuracy'])} | {score} | {_f(pooled['brier'])} "
            f"| {_f(pooled['mean_sharpe'], 2)} | {pooled['models_with_negative_sharpe']} of {n_models} "
            f"({'-' if share is None else f'{share:.0%}'}) "
            f"| {_f(pooled['portfolio_sharpe'], 2)} [{_f(sharpe.get('low'), 2)}, {_f(sharpe.get('high'), 2)}] "
            f"| {_pct(pooled['portfolio_total_return'])} |"
        )
    lines += [
        "",
        f"## Each policy against `{default}` (difference, 95 % interval; * where the interval excludes 0)",
        "",
        "| policy | overall_score | accuracy | Brier | mean Sharpe | pooled Sharpe | pooled total return |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, p in policies.items():
        d = p["differences_from_default"]
        if not d:
            continue
        lines.append(
            f"| {name} | {_interval(d.get('overall_score'))} | {_interval(d.get('accuracy'))} | "
            f"{_interval(d.get('brier'))} | {_interval(d.get('mean_sharpe'), 2)} | "
            f"{_interval(d.get('portfolio_sharpe'), 2)} | {_interval(d.get('portfolio_total_return'), 1, True)} |"
        )
    lines += [
        "",
        "## Honesty: what the gate estimated against what the served versions realized",
        "",
        "Gap = estimated minus live overall_score, weighted by each version's resolved predictions (versions "
        "with at least 20). Positive: the estimate promised more than the version delivered. Raw: the winning "
        "candidate's own walk-forward score; selection-aware: the procedure's (classifier chosen on earlier "
        "folds, scored on the next).",
        "",
        "| policy | versions served | compared | mean raw estimate | mean live | raw gap [95 %] | selection-aware gap [95 %] |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, p in policies.items():
        compared = [v for v in p["versions"] if v["compared"]]
        est = [v["estimate_overall_score"] for v in compared if v["estimate_overall_score"] is not None]
        live = [v["live_overall_score"] for v in compared if v["live_overall_score"] is not None]
        lines.append(
            f"| {name} | {len(p['versions'])} | {len(compared)} | {_f(sum(est) / len(est) if est else None)} "
            f"| {_f(sum(live) / len(live) if live else None)} | {_interval(p['gap'])} | {_interval(p.get('honest_gap'))} |"
        )
    lines += ["", "## Per model", ""]
    for name, p in policies.items():
        lines += [
            f"### {name}",
            "",
            "| model | trainings | promotions | coverage | resolved | accuracy | overall_score | Brier | Sharpe | "
            "max drawdown | total return |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for model, m in p["models"].items():
            lines.append(
                f"| {model} | {m['trainings']} | {m['promotions']} | {_f(m['coverage'], 2)} | {m['resolved']} "
                f"| {_f(m['accuracy'])} | {_f(m['overall_score'])} | {_f(m['brier'])} | {_f(m['sharpe'], 2)} "
                f"| {_pct(-m['max_drawdown'] if m['max_drawdown'] is not None else None)} | {_pct(m['total_return'])} |"
            )
        lines.append("")
    lines += [
        "## Plots",
        "",
        "- `pareto.png`: trainings per model against pooled live overall_score, per policy, with intervals",
        "- `equity.png`: the pooled strategy's equity per policy",
        "- `estimate_vs_live.png`: each served version's gate-time estimate against what it realized",
        "",
    ]
    return "\n".join(lines)


def report_files(
    models: list[dict[str, Any]], summary: dict[str, Any], meta: dict[str, Any], timings: dict[str, Any]
) -> dict[str, bytes]:
    """Every file of the report, by name (module docstring)."""
    document = {"meta": meta, "summary": summary, "models": models}
    files = {
        "backtest.json": json.dumps(document, indent=1, sort_keys=True, allow_nan=False).encode(),
        "timings.json": json.dumps(timings, indent=1, sort_keys=True).encode(),
        "report.md": render_markdown(summary, meta).encode(),
    }
    policies = summary["policies"]
    period = f"{meta['start'][:10]} .. {meta['end'][:10]}"
    files["pareto.png"] = policy_pareto_png(
        {
            name: (
                _num(p["pooled"]["trainings_per_model"]),
                _num(p["pooled"]["overall_score"]),
                _num(p["levels"]["overall_score"].get("low")),
                _num(p["levels"]["overall_score"].get("high")),
            )
            for name, p in policies.items()
        },
        title=f"Retraining policies: cost against live worth, {period}",
    )
    files["equity.png"] = policy_equity_png(
        {
            name: pd.Series(p["equity"]["portfolio"], index=pd.to_datetime(p["equity"]["days"], utc=True))
            for name, p in policies.items()
        },
        title=f"Pooled strategy of each policy's served signals (equal weight, net of costs), {period}",
    )
    files["estimate_vs_live.png"] = estimate_vs_live_png(
        {
            name: [
                (_num(v["estimate_overall_score"]), _num(v["live_overall_score"]))
                for v in p["versions"]
                if v["compared"]
            ]
            for name, p in policies.items()
        },
        title="Served versions: the gate's estimate against the live result",
        metric="overall_score",
    )
    return files


def _num(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else math.nan


# --- what retrain backtest and the backtest state machine both state about a run -----------------------------
def report_meta(
    *,
    start: datetime,
    end: datetime,
    units: Sequence[ModelUnit],
    settings: Settings,
    policies: Sequence[Policy],
    baseline: str = DEFAULT_POLICY,
) -> dict[str, Any]:
    """The report's ``meta``: the period, the models, the zoo and cost, the policies."""
    return {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "models": [u.name for u in units],
        "interval": units[0].interval,
        "classifiers": list(settings.train_classifiers),
        "cost_per_trade": settings.cost_per_trade,
        "horizon": settings.prediction_window,
        "default_policy": baseline,
        "policies": [{**p.to_dict(), "settings": decision_settings(p.settings(settings))} for p in policies],
    }


#: The settings that make a policy's decisions: recorded per policy, so a report says what "default" meant.
DECISION_SETTINGS = (
    "triggers",
    "max_model_age_days",
    "no_model_retry_days",
    "cooldown_days",
    "perf_rule",
    "perf_evidence_alpha",
    "perf_min_outcomes",
    "drift_rule",
    "gate_rule",
    "gate_use_honest",
    "gate_min_overall_score",
    "gate_min_sharpe_lcb",
    "gate_edge_level",
    "promotion_rule",
    "promotion_alpha",
    "promotion_max_age_days",
    "suspend_on_evidence",
)


def decision_settings(settings: Settings) -> dict[str, Any]:
    values = settings.model_dump(include=set(DECISION_SETTINGS))
    return {k: list(v) if isinstance(v, tuple) else v for k, v in sorted(values.items())}


def summarize_models(
    models: list[dict[str, Any]],
    *,
    policies: Sequence[Policy],
    settings: Settings,
    interval: str,
    replicates: int,
    baseline: str = DEFAULT_POLICY,
) -> dict[str, Any]:
    """:func:`common.backtest.stats.summarize` with the run's settings."""
    from common.backtest.stats import summarize

    return summarize(
        models,
        policies=[p.name for p in policies],
        default=baseline,
        interval=interval,
        horizon=settings.prediction_window,
        cost_per_trade=settings.cost_per_trade,
        replicates=replicates,
    )


def timing_summary(
    timings: list[dict[str, Any]], wall_s: float, jobs: int, *, cpu_count: int | None = None
) -> dict[str, Any]:
    """timings.json: ``jobs`` units at a time on ``cpu_count`` CPUs
    (None on a Map, whose units each run on their own Lambda). Units marked ``resumed`` were replayed by an
    earlier run: they count in the totals, not in this run's rate."""
    computed = sum(t["trainings_computed"] for t in timings)
    reused = sum(t["trainings_reused"] for t in timings)
    asked = computed + reused
    computed_here = sum(t["trainings_computed"] for t in timings if not t.get("resumed"))
    return {
        "wall_s": round(wall_s, 1),
        "jobs": jobs,
        "cpu_count": cpu_count,
        "trainings_asked": asked,
        "trainings_computed": computed,
        "shared_share": round(reused / asked, 4) if asked else 0.0,
        "trainings_per_second": round(computed_here / wall_s, 3) if wall_s else None,
        "units_resumed": sum(1 for t in timings if t.get("resumed")),
        "units": timings,
    }
