"""Benchmark: training one model of the pool (BTC uptrend, full daily history) with the whole 9-model zoo.

Run ``.venv/bin/python bench/bench_training.py``. Stages, in the order the trainer runs them:

- imports: xgboost and lightgbm, which ``make_classifier`` imports lazily (paid once per cold start);
- features: ``training_data`` (TA-Lib features, labels, dropping unusable rows);
- evaluation: ``evaluate_candidates``, 5 purged walk-forward folds (settings defaults) plus the baseline;
- final fit: every candidate refitted on all rows (the trainer refits only the selected one);
- :data:`POST_FIT_STAGES`: SHAP and MLflow logging are measured by their own benchmarks; plug them in there.

Target: <= 60 s in total on the 2-core dev machine. Per classifier: the fold fits, the fold predictions and
the final fit, with the out-of-sample metrics next to the naive baseline's (majority class of each fold).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from common.core.settings import ALL_CLASSIFIERS, ClassifierName, Settings, Trend
from common.data.ohlcv import PRICE_COLUMNS, parse_ohlcv_csv
from common.training.evaluation import (
    Gate,
    TrainingData,
    evaluate_candidates,
    fit_final,
    passes_gate,
    periods_per_year,
    training_data,
)

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "sample_data" / "ohlcv"
DAILY_DIR = SAMPLE_DIR / "1d"
#: The demo's zoo (retrain.cli.DEMO_CLASSIFIERS) for the daily/hourly comparison; the models it trains.
DEMO_ZOO: tuple[ClassifierName, ...] = ("lightgbm", "ridge", "random_forest")
INTERVAL_MODELS = (("BTC", "1d"), ("XRP", "1d"), ("XRP", "1h"))
TARGET_S = 60.0
SYMBOL = "BTC"
TREND: Trend = "uptrend"


# Stages measured elsewhere (SHAP explanations, MLflow logging of the selected model). Each takes the fitted
# final models by name and the training data; run() times it and reports it as its own stage.
def _shap(name: str) -> Callable[[dict[str, Any], TrainingData], object]:
    def explain(models: dict[str, Any], data: TrainingData) -> object:
        from common.training.explain import shap_importance

        return shap_importance(
            models[name],
            data.X,
            max_rows=_default("shap_max_rows"),
            background_rows=_default("shap_background_rows"),
            time_budget_s=_default("shap_time_budget_s"),
        )

    return explain


# SHAP runs for the selected model only: the cheap tree path and the bounded model-agnostic worst case.
POST_FIT_STAGES: dict[str, Callable[[dict[str, Any], TrainingData], object]] = {
    "shap (if lightgbm is selected)": _shap("lightgbm"),
    "shap (if svc is selected: worst case, time-boxed)": _shap("svc"),
}
NOT_MEASURED_HERE = ("mlflow_logging (see `retrain train` end to end in the README)",)


def _default(field: str) -> Any:
    """Settings defaults without reading the environment: the benchmark measures the shipped configuration."""
    return Settings.model_fields[field].default


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _since(started: tuple[float, float]) -> tuple[float, float]:
    """Wall and CPU seconds since ``started``: CPU time shows how much of the wall time other processes took."""
    return time.perf_counter() - started[0], time.process_time() - started[1]


def load_bars(symbol: str = SYMBOL, interval: str = "1d") -> Any:
    path = SAMPLE_DIR / interval / f"{symbol}.csv"
    bars = parse_ohlcv_csv(path.read_bytes(), source=str(path))
    return bars[(bars[list(PRICE_COLUMNS)] > 0).all(axis=1)]


def run(
    symbol: str = SYMBOL,
    trend: Trend = TREND,
    classifiers: Sequence[ClassifierName] = ALL_CLASSIFIERS,
    post_fit_stages: dict[str, Callable[[dict[str, Any], TrainingData], object]] | None = None,
) -> list[dict]:
    """Rows with ``section`` "classifier" (one per candidate, then the baseline) and "stage" (one per stage,
    then the total)."""
    horizon = _default("prediction_window")
    purge = horizon
    gate = Gate(
        gate_min_positive_accuracy=_default("gate_min_positive_accuracy"),
        gate_min_negative_accuracy=_default("gate_min_negative_accuracy"),
        gate_min_overall_score=_default("gate_min_overall_score"),
    )
    stages: dict[str, tuple[float, float]] = {}  # stage -> (wall s, CPU s of this process, all threads)

    started = _clock()
    import lightgbm  # noqa: F401
    import xgboost  # noqa: F401

    stages["imports (xgboost, lightgbm)"] = _since(started)

    bars = load_bars(symbol)
    started = _clock()
    data = training_data(bars, trend=trend, horizon=horizon, target_pct=_default("target_up_pct"))
    stages["features + labels"] = _since(started)

    started = _clock()
    result = evaluate_candidates(
        data,
        classifiers=classifiers,
        n_splits=_default("train_splits"),
        test_size=_default("train_test_size"),
        purge=purge,
        seed=_default("train_seed"),
        cost_per_trade=_default("cost_per_trade"),
        periods_per_year=periods_per_year("1d"),
    )
    stages[f"evaluation ({_default('train_splits')} folds x {len(classifiers)} models + baseline)"] = _since(started)

    final_models: dict[str, Any] = {}
    final_seconds: dict[str, float] = {}
    all_final = _clock()
    for name in classifiers:
        started = time.perf_counter()
        final_models[name] = fit_final(name, data, _default("train_seed"))
        final_seconds[name] = time.perf_counter() - started
    stages[f"final fit (all {len(classifiers)} models)"] = _since(all_final)

    for stage, call in (post_fit_stages if post_fit_stages is not None else POST_FIT_STAGES).items():
        started = _clock()
        call(final_models, data)
        stages[stage] = _since(started)

    rows: list[dict] = []
    for candidate in [*result.candidates, result.baseline]:
        m = candidate.metrics
        final = final_seconds.get(candidate.name, 0.0)
        rows.append(
            {
                "section": "classifier",
                "classifier": candidate.name,
                "fold_fits_s": round(candidate.fit_seconds, 2),
                "fold_predict_s": round(candidate.predict_seconds, 3),
                "final_fit_s": round(final, 2),
                "total_s": round(candidate.fit_seconds + candidate.predict_seconds + final, 2),
                "overall_score": round(m["overall_score"], 3),
                "accuracy": round(m["accuracy"], 3),
                "precision": round(m["precision"], 3),
                "positive_accuracy": round(m["positive_accuracy"], 3),
                "negative_accuracy": round(m["negative_accuracy"], 3),
                "sharpe": round(m["sharpe"], 2),
                "max_drawdown": round(m["max_drawdown"], 3),
                "n_signals": m["n_signals"],
                "gate": "pass" if passes_gate(m, gate)[0] else "fail",
            }
        )
    total = sum(wall for wall, _ in stages.values())
    rows.extend(
        {"section": "stage", "stage": stage, "seconds": round(wall, 2), "cpu_seconds": round(cpu, 2)}
        for stage, (wall, cpu) in stages.items()
    )
    rows.extend(
        {"section": "stage", "stage": f"{stage} (not measured here)", "seconds": None}
        for stage in NOT_MEASURED_HERE
        if stage not in stages
    )
    rows.append(
        {
            "section": "stage",
            "stage": f"total ({result.rows} rows, {result.dropped_rows} dropped; target <= {TARGET_S:.0f} s)",
            "seconds": round(total, 2),
            "cpu_seconds": round(sum(cpu for _, cpu in stages.values()), 2),
            "target_met": total <= TARGET_S,
        }
    )
    return rows


def interval_rows(classifiers: Sequence[ClassifierName] = DEMO_ZOO) -> list[dict]:
    """One model's training on each interval with the demo's zoo, under that interval's settings
    (``Settings.for_interval``: hourly folds of 720 bars, the 0.5 % label): the walk-forward evaluation of every
    candidate and the final fit of the best one, as the trainer runs them (the selection-aware estimate reuses
    the evaluation's folds; SHAP and MLflow have their own benchmarks)."""
    rows = []
    for symbol, interval in INTERVAL_MODELS:
        settings = Settings(symbols=(f"{symbol}:{interval}",)).for_interval(interval)  # type: ignore[arg-type]
        bars = load_bars(symbol, interval)
        started = _clock()
        data = training_data(
            bars, trend=TREND, horizon=settings.prediction_window, target_pct=settings.target_pct(TREND)
        )
        common = {
            "n_splits": settings.train_splits,
            "test_size": settings.train_test_size,
            "purge": settings.purge_bars,
            "seed": settings.train_seed,
            "cost_per_trade": settings.cost_per_trade,
            "periods_per_year": periods_per_year(interval),
        }
        result = evaluate_candidates(data, classifiers=classifiers, **common)
        evaluated = _since(started)
        started = _clock()
        best = max(result.candidates, key=lambda c: c.metrics["overall_score"])
        fit_final(best.name, data, settings.train_seed)
        final = _since(started)
        rows.append(
            {
                "model": f"{symbol} {interval} {TREND}",
                "bars": len(bars),
                "rows": result.rows,
                "fold_bars": settings.train_test_size,
                "label_pct": settings.target_pct(TREND),
                "positive_share": round(float(data.y.mean()), 3),
                "features_and_evaluation_s": round(evaluated[0], 1),
                "final_fit_s": round(final[0], 1),
                "total_s": round(evaluated[0] + final[0], 1),
                "cpu_s": round(evaluated[1] + final[1], 1),
            }
        )
    return rows


def _markdown(rows: list[dict], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        cells = ["" if row.get(c) is None else str(row[c]) for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    rows = run()
    classifiers = [r for r in rows if r["section"] == "classifier"]
    stages = [r for r in rows if r["section"] == "stage"]
    print(
        f"## Training {SYMBOL} {TREND} on daily bars, 9-model zoo, {_default('train_splits')} walk-forward folds "
        f"of {_default('train_test_size')} bars ({os.cpu_count()} cores)\n"
    )
    print(_markdown(classifiers, [c for c in classifiers[0] if c != "section"]))
    print("\nOut-of-sample metrics on the concatenated test folds; gate: the original rule at the settings defaults.\n")
    print(_markdown(stages, ["stage", "seconds", "cpu_seconds", "target_met"]))
    by_interval = interval_rows()
    print(f"\n## One model's training, daily against hourly, with the demo's zoo ({', '.join(DEMO_ZOO)})\n")
    print(_markdown(by_interval, list(by_interval[0])))
    print(
        "\nEach under its interval's settings (hourly: folds of 720 bars, the 0.5 % label): features and labels, "
        "the walk-forward evaluation of the three candidates, and the best one's final fit."
    )


if __name__ == "__main__":
    main()
