"""What a backtest's served predictions are worth: per policy, per model and pooled, with intervals.

Inputs are the per-model results of :func:`common.backtest.replay.backtest_model`. Every served prediction is placed
on one bar grid (every bar of the model's interval from the start to the end), per policy and model: its probability, its realized
label (once known), the version that served it, and what following its signal earned on the next bar
(:func:`common.training.evaluation.strategy_returns`, net of the configured cost; flat where no model served).

- Levels use the same metric code as the gate (:func:`common.training.evaluation.compute_metrics` counts: accuracy,
  precision, positive/negative accuracy, overall_score, Brier; Sharpe, max drawdown, total return).
- Differences against the default policy and the gap between what the gate estimated and what a version
  then realized get a moving-block bootstrap interval over the bar grid (:mod:`common.training.bootstrap`), every
  series resampled on the same bars, so overlapping outcomes and the correlation between models and
  policies are kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from common.data.ohlcv import interval_length
from common.training.bootstrap import Interval, block_bootstrap
from common.training.evaluation import max_drawdown, periods_per_year, sharpe_ratio, strategy_returns

MIN_VERSION_OUTCOMES = 20  # a version's live score over fewer resolved predictions is not compared
LEVEL_METRICS = ("accuracy", "precision", "positive_accuracy", "negative_accuracy", "overall_score", "brier")
COMPARED = ("overall_score", "accuracy", "brier", "mean_sharpe", "portfolio_sharpe", "portfolio_total_return")


@dataclass
class PolicyGrid:
    """One policy's served predictions on the day grid: arrays of shape (models, days)."""

    name: str
    served: np.ndarray  # bool: a champion served this bar
    known: np.ndarray  # bool: served and its outcome is known
    signal: np.ndarray  # bool: probability > 0.5
    actual: np.ndarray  # bool: realized label (False where unknown)
    probability: np.ndarray  # float, NaN where not served
    returns: np.ndarray  # strategy return of the bar (0 where flat or not served)
    version: np.ndarray  # int index into ``versions`` (-1 where not served)
    versions: list[tuple[int, str]]  # (model index, version) per version index
    trainings: np.ndarray  # trainings per model


def bar_grid(start: datetime, end: datetime, interval: str) -> pd.DatetimeIndex:
    """The bars whose predictions a backtest serves: the bar before each replayed period's check (each day's
    for daily models, each hour's for hourly ones)."""
    step = pd.Timedelta(interval_length(interval))
    return pd.date_range(pd.Timestamp(start), pd.Timestamp(end) - step, freq=step)


def policy_grid(name: str, models: list[dict[str, Any]], grid: pd.DatetimeIndex, cost_per_trade: float) -> PolicyGrid:
    shape = (len(models), len(grid))
    served = np.zeros(shape, bool)
    known = np.zeros(shape, bool)
    actual = np.zeros(shape, bool)
    probability = np.full(shape, np.nan)
    next_return = np.zeros(shape)
    version = np.full(shape, -1)
    versions: list[tuple[int, str]] = []
    trainings = np.zeros(len(models))
    position = {bar: i for i, bar in enumerate(grid)}
    for m, model in enumerate(models):
        run = model["policies"][name]
        trainings[m] = len(run["trainings"])
        index: dict[str, int] = {}
        for row in run["served"]:
            d = position.get(pd.Timestamp(row["bar"]))
            if d is None:
                continue
            served[m, d] = True
            probability[m, d] = row["probability"]
            next_return[m, d] = row["next_return"] or 0.0
            if row["realized"] is not None:
                known[m, d] = True
                actual[m, d] = bool(row["realized"])
            if row["version"] not in index:
                index[row["version"]] = len(versions)
                versions.append((m, row["version"]))
            version[m, d] = index[row["version"]]
    signal = np.nan_to_num(probability, nan=0.0) > 0.5
    returns = (
        np.vstack(
            [
                strategy_returns(
                    np.nan_to_num(probability[m], nan=0.0),
                    next_returns=next_return[m],
                    trend=models[m]["trend"],
                    cost_per_trade=cost_per_trade,
                ).to_numpy()
                for m in range(len(models))
            ]
        )
        if models
        else np.zeros(shape)
    )
    return PolicyGrid(name, served, known, signal, actual, probability, returns, version, versions, trainings)


def _counts(grid: PolicyGrid, days: np.ndarray, rows: np.ndarray | None = None) -> tuple[float, float, float, float]:
    """TP, FP, TN, FN over the known outcomes of ``days`` (of model ``rows``, default all)."""
    take = (slice(None) if rows is None else rows, days)
    known = grid.known[take]
    signal, actual = grid.signal[take] & known, grid.actual[take] & known
    tp = float((signal & actual).sum())
    fp = float((signal & ~actual).sum())
    fn = float((~signal & actual & known).sum())
    tn = float(known.sum()) - tp - fp - fn
    return tp, fp, tn, fn


def classification(tp: float, fp: float, tn: float, fn: float) -> dict[str, float]:
    """The gate's classification metrics from counts (as :func:`common.training.evaluation.compute_metrics`)."""
    n = tp + fp + tn + fn
    if n == 0:
        return {
            key: math.nan
            for key in ("accuracy", "precision", "positive_accuracy", "negative_accuracy", "overall_score")
        }
    accuracy = (tp + tn) / n
    precision = tp / (tp + fp) if tp + fp else 0.0
    positive = tp / (tp + fn) if tp + fn else 0.0
    negative = tn / (tn + fp) if tn + fp else 0.0
    return {
        "accuracy": accuracy,
        "precision": precision,
        "positive_accuracy": positive,
        "negative_accuracy": negative,
        "overall_score": 0.1 * accuracy + 0.4 * precision + 0.2 * negative + 0.3 * positive,
    }


def _brier(grid: PolicyGrid, days: np.ndarray, rows: np.ndarray | None = None) -> float:
    take = (slice(None) if rows is None else rows, days)
    known = grid.known[take]
    if not known.any():
        return math.nan
    p = grid.probability[take][known]
    y = grid.actual[take][known].astype(float)
    return float(np.mean((p - y) ** 2))


def _model_sharpe(grid: PolicyGrid, m: int, days: np.ndarray, per_year: float) -> float:
    served = grid.served[m, days]
    return sharpe_ratio(grid.returns[m, days][served], per_year) if served.sum() >= 2 else math.nan


def statistic(grid: PolicyGrid, key: str, days: np.ndarray, per_year: float) -> float:
    """One compared statistic of a policy on (resampled) ``days``."""
    if key in ("accuracy", "precision", "positive_accuracy", "negative_accuracy", "overall_score"):
        return classification(*_counts(grid, days))[key]
    if key == "brier":
        return _brier(grid, days)
    if key == "mean_sharpe":
        values = [_model_sharpe(grid, m, days, per_year) for m in range(grid.served.shape[0])]
        finite = [v for v in values if np.isfinite(v)]
        return float(np.mean(finite)) if finite else math.nan
    portfolio = grid.returns[:, days].mean(axis=0)
    if key == "portfolio_sharpe":
        return sharpe_ratio(portfolio, per_year)
    if key == "portfolio_total_return":
        return float(np.prod(np.maximum(1.0 + portfolio, 0.0)) - 1.0)
    raise KeyError(key)


def model_summary(grid: PolicyGrid, m: int, per_year: float) -> dict[str, Any]:
    days = np.arange(grid.served.shape[1])
    rows = np.array([m])
    served = grid.served[m]
    returns = grid.returns[m][served]
    out = {
        "trainings": int(grid.trainings[m]),
        "served_bars": int(served.sum()),
        "coverage": float(served.mean()) if served.size else 0.0,
        "resolved": int(grid.known[m].sum()),
        **classification(*_counts(grid, days, rows)),
        "brier": _brier(grid, days, rows),
        "sharpe": sharpe_ratio(returns, per_year) if returns.size >= 2 else math.nan,
        "max_drawdown": max_drawdown(returns),
        "total_return": float(np.prod(np.maximum(1.0 + returns, 0.0)) - 1.0) if returns.size else 0.0,
    }
    return out


def version_rows(grid: PolicyGrid, models: list[dict[str, Any]], per_year: float) -> list[dict[str, Any]]:
    """Each served version: what the gate estimated (walk-forward, at training) beside what it realized live."""
    rows = []
    for v, (m, version) in enumerate(grid.versions):
        mine = grid.version[m] == v
        known = mine & grid.known[m]
        recorded = models[m]["policies"][grid.name]["versions"].get(version, {})
        estimate = recorded.get("estimate", {})
        honest = recorded.get("honest", {})
        tp, fp, tn, fn = _counts(grid, np.flatnonzero(mine), np.array([m]))
        live = classification(tp, fp, tn, fn)
        returns = grid.returns[m][mine]
        rows.append(
            {
                "model": f"{models[m]['symbol']} {models[m]['trend']}",
                "version": version,
                "served_bars": int(mine.sum()),
                "resolved": int(known.sum()),
                "estimate_overall_score": estimate.get("overall_score"),
                "honest_overall_score": honest.get("overall_score"),
                "live_overall_score": live["overall_score"],
                "estimate_sharpe": estimate.get("sharpe"),
                "live_sharpe": sharpe_ratio(returns, per_year) if returns.size >= 2 else math.nan,
                "compared": bool(known.sum() >= MIN_VERSION_OUTCOMES and estimate.get("overall_score") is not None),
            }
        )
    return rows


def gap_statistic(grid: PolicyGrid, estimates: np.ndarray, days: np.ndarray) -> float:
    """Outcome-weighted mean of (estimated - live overall_score) over the compared versions, on ``days``."""
    per_version = np.zeros((len(grid.versions), 4))
    for v, (m, _) in enumerate(grid.versions):
        if not np.isfinite(estimates[v]):
            continue
        mine = grid.version[m, days] == v
        sub = days[mine]
        per_version[v] = _counts(grid, sub, np.array([m]))
    n = per_version.sum(axis=1)
    usable = (n >= MIN_VERSION_OUTCOMES) & np.isfinite(estimates)
    if not usable.any():
        return math.nan
    live = np.array([classification(*per_version[v])["overall_score"] for v in np.flatnonzero(usable)])
    return float(np.average(estimates[usable] - live, weights=n[usable]))


def summarize(
    models: list[dict[str, Any]],
    *,
    policies: list[str],
    default: str,
    interval: str,
    horizon: int,
    cost_per_trade: float,
    replicates: int,
    seed: int = 0,
) -> dict[str, Any]:
    """Per policy: per-model and pooled levels, the version honesty table and gap, and every compared
    statistic's difference from ``default`` with its interval."""
    start = min(datetime.fromisoformat(m["start"]) for m in models)
    end = max(datetime.fromisoformat(m["end"]) for m in models)
    grid = bar_grid(start, end, interval)
    per_year = periods_per_year(interval)
    block = max(2 * horizon, 1)  # outcomes overlap over h bars: blocks of twice that keep them together
    grids = {name: policy_grid(name, models, grid, cost_per_trade) for name in policies}
    n_days = len(grid)
    out: dict[str, Any] = {"days": n_days, "block_days": block, "replicates": replicates, "policies": {}}
    for name in policies:
        g = grids[name]
        all_days = np.arange(n_days)
        level = {
            key: block_bootstrap(
                lambda d, k=key, gg=g: statistic(gg, k, d, per_year),
                n_days,
                block_days=block,
                replicates=replicates,
                seed=seed,
            ).to_dict()
            for key in ("overall_score", "portfolio_sharpe")
        }
        gaps = {}
        for kind in ("estimate", "honest"):  # the raw walk-forward score of the winner, and the selection-aware one
            estimates = np.array(
                [
                    float(
                        models[m]["policies"][name]["versions"].get(v, {}).get(kind, {}).get("overall_score", math.nan)
                    )
                    for m, v in g.versions
                ]
            )
            gaps[kind] = block_bootstrap(
                lambda d, gg=g, e=estimates: gap_statistic(gg, e, d),
                n_days,
                block_days=block,
                replicates=replicates,
                seed=seed,
            ).to_dict()
        differences = {}
        if name != default:
            base = grids[default]
            for key in COMPARED:
                differences[key] = block_bootstrap(
                    lambda d, k=key, gg=g, b=base: statistic(gg, k, d, per_year) - statistic(b, k, d, per_year),
                    n_days,
                    block_days=block,
                    replicates=replicates,
                    seed=seed,
                ).to_dict()
        out["policies"][name] = {
            "pooled": {
                "trainings_per_model": float(g.trainings.mean()) if len(models) else 0.0,
                "trainings": int(g.trainings.sum()),
                "coverage": float(g.served.mean()) if g.served.size else 0.0,
                **classification(*_counts(g, all_days)),
                "brier": _brier(g, all_days),
                **{key: statistic(g, key, all_days, per_year) for key in COMPARED if key not in LEVEL_METRICS},
                "models_with_negative_sharpe": 0,
                "served_days_of_negative_sharpe_models": 0.0,
                "promotions": 0,
                "swaps_per_model_year": 0.0,
            },
            "levels": level,
            "models": {},
            "versions": version_rows(g, models, per_year),
            "gap": gaps["estimate"],
            "honest_gap": gaps["honest"],
            "differences_from_default": differences,
        }
        pooled = out["policies"][name]["pooled"]
        for m, model in enumerate(models):
            summary = model_summary(g, m, per_year)
            run = model["policies"][name]
            summary["promotions"] = sum(1 for t in run["trainings"] if t["status"] == "promoted")
            out["policies"][name]["models"][f"{model['symbol']} {model['trend']}"] = summary
            pooled["promotions"] += summary["promotions"]
            losing = bool(np.isfinite(summary["sharpe"]) and summary["sharpe"] < 0)
            pooled["models_with_negative_sharpe"] += int(losing)
            pooled["served_days_of_negative_sharpe_models"] += float(g.served[m].sum()) if losing else 0.0
        served_days = float(g.served.sum())
        pooled["served_days_of_negative_sharpe_models"] = (
            pooled["served_days_of_negative_sharpe_models"] / served_days if served_days else 0.0
        )
        # A swap: a promotion that replaced a serving champion (the first champion of a model is not one).
        swaps = sum(
            1
            for model in models
            for t in model["policies"][name]["trainings"]
            if t["status"] == "promoted" and t.get("champion_before")
        )
        model_years = len(models) * n_days / per_year
        pooled["swaps_per_model_year"] = swaps / model_years if model_years else 0.0
        out["policies"][name]["equity"] = {
            "days": [d.isoformat() for d in grid],
            "portfolio": np.cumprod(np.maximum(1.0 + g.returns.mean(axis=0), 0.0)).round(6).tolist()
            if len(models)
            else [],
        }
    return _clean(out)


def _clean(value: Any) -> Any:
    """JSON-ready and stable: floats rounded to 6 places, NaN as None."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, float | np.floating):
        return round(float(value), 6) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


__all__ = ["Interval", "summarize"]
