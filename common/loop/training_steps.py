"""The two training steps of the state machine, as plain functions over the store and the registry.

``train_model``: validated bars -> features and labels -> walk-forward evaluation of the zoo and the
naive baseline -> one MLflow parent run per execution with a nested run per classifier (params, fold
and aggregate metrics, the fitted model, equity curve, confusion matrix) -> for the best candidate that
passes the gate: SHAP, the drift reference, the checks promotion needs, and a registered version.

``promote_model``: load the registered version back from the registry, check it scores the recorded
sample identically, compare it with the champion on the same bars, move the aliases.

Both are idempotent per execution id: a re-run returns the recorded result instead of training or
registering again, and an alias already in place is not moved.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from common.core.errors import DatasetMismatchError
from common.core.numbers import finite_metrics, is_finite
from common.core.settings import Settings, experiment_name, registered_model_name
from common.data.bar_store import OhlcvStore
from common.data.datasets import DatasetManifest, pinned_bars
from common.data.ohlcv import interval_length
from common.loop.events import TrainResult
from common.loop.live_record import live_evidence, suspend
from common.registry.mlflow_registry import (
    CHAMPION,
    EXECUTION_TAG,
    RESULT_TAG,
    Registry,
    load_back_problem,
)
from common.registry.promotion import decide_promotion, decode_tags, encode_tags, suspension_of
from common.training.scorer import positive_probability

Progress = Callable[[str], None]
SAMPLE_ROWS = 20  # rows whose probabilities the registered version must reproduce when loaded back
OOS_ARTIFACT = "checks/oos_predictions.json"
DRIFT_ARTIFACT = "drift/reference.json"


def _noop(_: str) -> None:
    pass


# --- TrainModel --------------------------------------------------------------------------------------
class TrainingMemo:
    """Walk-forward evaluations and final fits, computed once per (model, data, as-of, training settings).

    Both are deterministic functions of those (seeded), so a backtest that replays several policies over
    the same history trains each (model, day) once and shares it: every policy then runs its own gate,
    selection and promotion on the shared result. The live loop passes none."""

    def __init__(self) -> None:
        self._evaluations: dict[str, Any] = {}
        self._finals: dict[tuple[str, str], Any] = {}
        self.computed = 0  # evaluations computed
        self.reused = 0  # evaluations answered from the memo

    def evaluation(self, key: str, compute: Callable[[], Any]) -> Any:
        if key in self._evaluations:
            self.reused += 1
        else:
            self._evaluations[key] = compute()
            self.computed += 1
        return self._evaluations[key]

    def final(self, key: str, classifier: str, compute: Callable[[], Any]) -> Any:
        if (key, classifier) not in self._finals:
            self._finals[(key, classifier)] = compute()
        return self._finals[(key, classifier)]


def training_key(settings: Settings, *, symbol: str, trend: str, interval: str, as_of: datetime, data: Any) -> str:
    """What a training's evaluation depends on: the model, the labelled rows it saw, every training setting."""
    fields = {
        "symbol": symbol,
        "trend": trend,
        "interval": interval,
        "as_of": as_of.isoformat(),
        "rows": int(data.rows),
        "first": data.X.index[0].isoformat(),
        "last": data.X.index[-1].isoformat(),
        "prediction_window": settings.prediction_window,
        "target_pct": settings.target_pct(trend),
        "classifiers": list(settings.train_classifiers),
        "splits": settings.train_splits,
        "test_size": settings.train_test_size,
        "purge": settings.purge_bars,
        "seed": settings.train_seed,
        "cost_per_trade": settings.cost_per_trade,
        "edge_level": settings.gate_edge_level,
    }
    return json.dumps(fields, sort_keys=True)


def train_model(
    settings: Settings,
    registry: Any,
    store: OhlcvStore,
    *,
    execution_id: str,
    symbol: str,
    trend: str,
    reason: str,
    as_of: datetime,
    interval: str | None = None,
    progress: Progress = _noop,
    memo: TrainingMemo | None = None,
    dataset: DatasetManifest | None = None,
) -> TrainResult:
    """One model's training step. ``registry`` is :class:`common.registry.mlflow_registry.Registry` (MLflow) in the live loop
    and :class:`common.registry.memory_registry.MemoryRegistry` in the backtest: the same steps, the same decisions;
    plots and SHAP are made only where the registry keeps them for people (``records_plots``).

    ``dataset`` is the manifest PrepareDataset wrote: training then uses exactly the bars it pins (object
    version, bar range), not whatever the series holds by now. Without one (the backtest), the bars stored
    at ``as_of``."""
    from common.training.evaluation import (
        evaluate_candidates,
        fit_final,
        honest_metrics,
        periods_per_year,
        select_candidate,
        training_data,
    )

    started = time.monotonic()
    interval = interval or (dataset.interval if dataset else settings.interval)
    settings = settings.for_interval(interval)  # type: ignore[arg-type]
    if dataset is not None:
        _check_manifest(dataset, symbol=symbol, trend=trend, interval=interval, as_of=as_of)
    name = registered_model_name(symbol, trend, interval)
    experiment_id = registry.experiment_id(experiment_name(symbol, trend, interval))
    recorded = registry.recorded_result(experiment_id, execution_id)
    if recorded is not None:
        progress(f"{name}: execution {execution_id} already trained (run {recorded[0]}); reusing it")
        return TrainResult.model_validate_json(recorded[1])

    if dataset is not None:
        loaded = pinned_bars(store, dataset, stale_after_bars=settings.stale_after_bars)
    else:
        loaded = store.load(
            symbol, interval, as_of=as_of, gap_policy=settings.gap_policy, stale_after_bars=settings.stale_after_bars
        )
    data = training_data(
        loaded.bars, trend=trend, horizon=settings.prediction_window, target_pct=settings.target_pct(trend)
    )
    progress(f"{name}: {len(data.y)} labelled bars up to {loaded.report.last_closed_bar:%Y-%m-%d %H:%M}")

    def evaluate() -> Any:
        return evaluate_candidates(
            data,
            classifiers=settings.train_classifiers,
            n_splits=settings.train_splits,
            test_size=settings.train_test_size,
            purge=settings.purge_bars,
            seed=settings.train_seed,
            cost_per_trade=settings.cost_per_trade,
            periods_per_year=periods_per_year(interval),
            progress=progress,
            edge_level=settings.gate_edge_level,
        )

    key = training_key(settings, symbol=symbol, trend=trend, interval=interval, as_of=as_of, data=data)
    evaluation = memo.evaluation(key, evaluate) if memo is not None else evaluate()

    def final_model(classifier: Any) -> Any:
        if memo is None:
            return fit_final(classifier, data, settings.train_seed)
        return memo.final(key, classifier, lambda: fit_final(classifier, data, settings.train_seed))

    honest = honest_metrics(
        evaluation,
        data,
        cost_per_trade=settings.cost_per_trade,
        periods_per_year=periods_per_year(interval),
        level=settings.gate_edge_level,
    )
    selection = select_candidate(evaluation, settings, honest if settings.gate_use_honest else None)
    data_range = {"first": data.X.index[0].isoformat(), "last": data.X.index[-1].isoformat()}
    run_tags = {
        EXECUTION_TAG: execution_id,
        "symbol": symbol,
        "trend": trend,
        "reason": reason,
        "as_of": as_of.isoformat(),
        "source": f"s3://{store.objects.bucket}/{loaded.key}?versionId={loaded.version_id}",
    }
    with registry.start_run(experiment_id=experiment_id, run_name=execution_id, tags=run_tags) as parent:  # run id
        registry.log_params(
            {
                "interval": interval,
                "prediction_window": settings.prediction_window,
                "target_pct": settings.target_pct(trend),
                "n_splits": settings.train_splits,
                "test_size": settings.train_test_size,
                "purge_bars": settings.purge_bars,
                "seed": settings.train_seed,
                "cost_per_trade": settings.cost_per_trade,
                "gate_rule": settings.gate_rule,
                "rows": evaluation.rows,
                "dropped_rows": evaluation.dropped_rows,
            }
        )
        registry.log_metrics({f"baseline_{k}": v for k, v in evaluation.baseline.metrics.items() if is_finite(v)})
        registry.log_metrics({f"honest_{k}": v for k, v in honest.items() if is_finite(v)})
        registry.log_json(loaded.report.to_dict(), "data/validation.json")
        chosen = selection.candidate.name if selection.candidate else None
        selected_importance: dict[str, float] = {}
        selected_direction: dict[str, float] = {}
        candidate_runs: dict[str, tuple[str, str | None]] = {}
        for candidate in evaluation.candidates:
            if candidate.name != chosen and not registry.records_plots:
                continue  # a run per candidate is for people browsing the tracking server
            with registry.start_run(
                experiment_id=experiment_id,
                run_name=candidate.name,
                nested=True,
                tags={**run_tags, "classifier": candidate.name},
            ) as child:
                _log_candidate(registry, candidate, data, settings, title=f"{name} {candidate.name}")
                model = final_model(candidate.name)
                model_uri = registry.log_model(model, candidate.name, data.X.tail(5))
                if candidate.name == chosen:
                    shap = _log_selected(registry, model, candidate, data, settings, title=f"{name} {candidate.name}")
                    if shap is not None:
                        progress(f"{name}: SHAP ({shap.method}) on {shap.rows} rows in {shap.seconds:.1f}s")
                        selected_importance, selected_direction = shap.importance, shap.correlation
                candidate_runs[candidate.name] = (child, model_uri)

        result_fields: dict[str, Any] = {
            "symbol": symbol,
            "trend": trend,
            "registered_model": name,
            "baseline_metrics": finite_metrics(evaluation.baseline.metrics),
            "honest_metrics": finite_metrics(honest),
            "mlflow_run_id": parent,
            "data_last_bar": data_range["last"],
            "candidates": {c.name: round(c.metrics["overall_score"], 6) for c in evaluation.candidates},
        }
        if selection.candidate is None:
            result = TrainResult(status="rejected", why=_no_candidate_why(evaluation, selection), **result_fields)
        else:
            candidate = selection.candidate
            run_id, model_uri = candidate_runs[candidate.name]
            existing = registry.version_for_execution(name, execution_id)
            tags = encode_tags(
                {
                    "symbol": symbol,
                    "trend": trend,
                    "classifier": candidate.name,
                    "metrics": finite_metrics(candidate.metrics),
                    "baseline_metrics": finite_metrics(evaluation.baseline.metrics),
                    "honest_metrics": finite_metrics(honest),
                    "target_pct": settings.target_pct(trend),
                    "prediction_window": settings.prediction_window,
                    "interval": interval,
                    "feature_names": list(data.X.columns),
                    "feature_importance": selected_importance,
                    "feature_direction": selected_direction,
                    "data_range": data_range,
                    "drift_reference": f"runs:/{run_id}/{DRIFT_ARTIFACT}",
                    "reason": reason,
                    "gate": settings.gate_rule,
                    "trained_as_of": as_of.isoformat(),
                    # the naive baseline's forecast (the training positive rate): live monitoring compares with it
                    "baseline": {"positive_rate": round(float(data.y.mean()), 6)},
                }
            )
            version = existing or registry.register(name, model_uri or "", {**tags, EXECUTION_TAG: execution_id})
            progress(
                f"{name}: registered v{version.version} ({candidate.name}, overall {candidate.metrics['overall_score']:.3f})"
            )
            result = TrainResult(
                status="registered",
                version=version.version,
                classifier=candidate.name,
                metrics=finite_metrics(candidate.metrics),
                why=selection.reasons[candidate.name],
                candidate_run_id=run_id,
                **result_fields,
            )
        result = result.model_copy(update={"duration_s": round(time.monotonic() - started, 2)})
        registry.set_run_tag(RESULT_TAG, result.model_dump_json())  # marks the execution as done (re-runs reuse it)
    return result


def _check_manifest(dataset: DatasetManifest, *, symbol: str, trend: str, interval: str, as_of: datetime) -> None:
    """The manifest handed over must be this model's, prepared for this interval and as-of time."""
    asked = (symbol, trend, interval, as_of)
    pinned = (dataset.symbol, dataset.trend, dataset.interval, dataset.as_of)
    if asked != pinned:
        raise DatasetMismatchError(
            f"training {symbol} {trend} {interval} as of {as_of.isoformat()} was handed the manifest of "
            f"{dataset.symbol} {dataset.trend} {dataset.interval} as of {dataset.as_of.isoformat()}"
        )


def _log_candidate(registry: Any, candidate: Any, data: Any, settings: Settings, *, title: str) -> None:
    """Params, per-fold (as steps) and aggregate metrics of one candidate into the active nested run, and
    (where the registry keeps plots) its walk-forward equity curve and confusion matrix."""
    from common.training.evaluation import strategy_returns

    registry.log_params({k: _param(v) for k, v in candidate.params.items()})
    for step, fold in enumerate(candidate.fold_metrics):
        registry.log_metrics({k: v for k, v in fold.items() if isinstance(v, float) and is_finite(v)}, step=step)
    registry.log_metrics({k: v for k, v in candidate.metrics.items() if is_finite(v)})
    if not registry.records_plots:
        return
    from common.training.plots import confusion_matrix_png, equity_curve_png

    oos = candidate.oos
    next_returns = data.next_returns.loc[oos.index]
    returns = strategy_returns(
        oos["proba"], next_returns=next_returns, trend=data.trend, cost_per_trade=settings.cost_per_trade
    )
    registry.log_bytes(
        equity_curve_png(returns, buy_and_hold=next_returns, title=f"{title}: walk-forward equity"),
        "plots/equity_curve.png",
    )
    predicted = (oos["proba"] > 0.5).astype(int).to_numpy()  # the metrics' threshold rule
    registry.log_bytes(confusion_matrix_png(oos["y"].to_numpy(), predicted, title=title), "plots/confusion_matrix.png")


def _log_selected(registry: Any, model: Any, candidate: Any, data: Any, settings: Settings, *, title: str) -> Any:
    """What only the selected candidate carries: the drift reference of its training features, the checks
    promotion runs (recorded probabilities of a sample, out-of-sample predictions) and, where the registry
    keeps them, SHAP and its plot (returned; None otherwise)."""
    from common.loop.drift_reference import build_reference

    shap = None
    if registry.records_plots:
        from common.training.explain import shap_importance
        from common.training.plots import shap_summary_png

        shap = shap_importance(
            model,
            data.X,
            max_rows=settings.shap_max_rows,
            background_rows=settings.shap_background_rows,
            seed=settings.train_seed,
            time_budget_s=settings.shap_time_budget_s,
        )
        registry.log_json(shap.to_dict(), "shap/importance.json")
        registry.log_bytes(shap_summary_png(shap, title=f"{title}: SHAP"), "plots/shap_summary.png")
    reference = build_reference(
        data.X, bins=settings.psi_bins, first_bar=data.X.index[0].isoformat(), last_bar=data.X.index[-1].isoformat()
    )
    registry.log_json(reference.to_dict(), DRIFT_ARTIFACT)
    registry.log_load_back_sample(model, data.X.tail(SAMPLE_ROWS))
    oos = candidate.oos
    registry.log_json(
        {
            "index": [t.isoformat() for t in oos.index],
            "y": oos["y"].astype(int).tolist(),
            "proba": oos["proba"].tolist(),
        },
        OOS_ARTIFACT,
    )
    return shap


# --- PromoteModel ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PromoteResult:
    status: str  # promoted | rejected | kept
    why: str
    version: str | None
    previous_version: str | None
    champion_version: str | None
    comparison: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def promote_model(
    settings: Settings,
    registry: Any,
    store: OhlcvStore,
    *,
    trained: TrainResult,
    as_of: datetime,
    interval: str | None = None,
    progress: Progress = _noop,
) -> PromoteResult:
    """Promote ``trained``'s version if the rule says so (:func:`common.registry.promotion.decide_promotion`); when no
    challenger passed the gate and the champion's live record says it is worse than not trading, suspend it
    (``RETRAIN_SUSPEND_ON_EVIDENCE``): the predictor stops serving it until a challenger passes."""
    name = trained.registered_model
    interval = interval or settings.interval
    settings = settings.for_interval(interval)  # type: ignore[arg-type]
    champion = registry.version_by_alias(name, CHAMPION)
    champion_version = champion.version if champion else None
    suspended = suspension_of(champion.tags) if champion else None
    failing = suspended.text() if suspended else None
    if (
        champion is not None
        and failing is None
        and settings.suspend_on_evidence
        and champion.version != trained.version
    ):
        failing = _failing(settings, store, champion, trained, as_of, interval)
    if trained.version is None:
        if champion is not None and failing and suspended is None:
            why = f"no challenger passed the gate and v{champion.version} is {failing}"
            suspend(registry, name, champion.version, why=failing, since=as_of)
            progress(f"{name}: v{champion.version} suspended ({why})")
            return PromoteResult("suspended", why, None, champion_version, champion_version)
        return PromoteResult("rejected", trained.why, None, champion_version, champion_version)

    challenger = registry.version(name, trained.version)
    model = registry.load_model(name, trained.version)
    problem = load_back_problem(registry, model, challenger.run_id)
    if problem:
        registry.set_version_tags(name, trained.version, {"retrain.load_check": json.dumps(problem)})
        return PromoteResult(
            "rejected",
            f"v{trained.version} failed the load-back check: {problem}",
            trained.version,
            champion_version,
            champion_version,
        )

    same_bars = None
    recorded = None
    age_days = None
    if champion is not None and champion.version != trained.version and settings.promotion_rule != "always":
        champion_tags = decode_tags(champion.tags)
        recorded = (champion_tags.get("metrics") or {}).get("overall_score")
        trained_as_of = champion_tags.get("trained_as_of")
        if trained_as_of:
            age_days = (as_of - datetime.fromisoformat(str(trained_as_of))).total_seconds() / 86400
        if failing is None:
            same_bars = _same_bars(settings, registry, store, trained, challenger.run_id, champion, as_of, interval)
    decision = decide_promotion(
        challenger_version=trained.version,
        champion_version=champion_version,
        challenger_cv_score=trained.metrics.get("overall_score", 0.0),
        champion_recorded_score=recorded,
        same_bars_scores=same_bars.scores if same_bars else None,
        min_bars=settings.promotion_min_compare_bars,
        rule=settings.promotion_rule,
        champion_failing=failing,
        brier_difference=same_bars.brier_difference if same_bars else None,
        champion_age_days=age_days,
        max_age_days=settings.promotion_max_age_days,
        alpha=settings.promotion_alpha,
        horizon=settings.prediction_window,
    )
    registry.set_version_tags(name, trained.version, {"retrain.promotion": json.dumps(decision.to_dict())})
    if not decision.promote:
        progress(f"{name}: v{trained.version} rejected: {decision.why}")
        return PromoteResult(
            "rejected", decision.why, trained.version, champion_version, champion_version, decision.comparison
        )
    replaced = registry.move_champion(name, trained.version)
    previous = replaced if replaced is not None else (champion_version if champion_version != trained.version else None)
    progress(f"{name}: v{trained.version} is the champion ({decision.why})")
    return PromoteResult("promoted", decision.why, trained.version, previous, trained.version, decision.comparison)


def _failing(
    settings: Settings, store: OhlcvStore, champion: Any, trained: TrainResult, as_of: datetime, interval: str
) -> str | None:
    """What the champion's live record says against it (worse than not trading), or None."""
    evidence = live_evidence(
        settings, store.objects, champion, symbol=trained.symbol, trend=trained.trend, as_of=as_of, interval=interval
    )
    return f"worse than not trading: {evidence.text()}" if evidence.worse_than_not_trading else None


@dataclass(frozen=True)
class SameBars:
    """Challenger and champion on this run's test bars the champion never trained on."""

    scores: tuple[float, float, int]  # (challenger overall_score, champion overall_score, bars)
    brier_difference: np.ndarray  # per bar: challenger's Brier minus champion's (negative: the challenger is better)


def _same_bars(
    settings: Settings,
    registry: Registry,
    store: OhlcvStore,
    trained: TrainResult,
    challenger_run_id: str,
    champion: Any,
    as_of: datetime,
    interval: str,
) -> SameBars | None:
    from common.data.features import compute_features
    from common.training.evaluation import compute_metrics, periods_per_year

    champion_tags = decode_tags(champion.tags)
    champion_last = (champion_tags.get("data_range") or {}).get("last")
    if not champion_last:
        return None
    oos = registry.load_json_artifact(challenger_run_id, OOS_ARTIFACT)
    frame = pd.DataFrame({"y": oos["y"], "proba": oos["proba"]}, index=pd.to_datetime(oos["index"], utc=True))
    horizon = int(champion_tags.get("prediction_window", settings.prediction_window))
    unseen_from = pd.Timestamp(champion_last) + (horizon + 1) * interval_length(interval)
    frame = frame.loc[frame.index >= unseen_from]
    if frame.empty:
        return SameBars((0.0, 0.0, 0), np.zeros(0))
    bars = store.load(trained.symbol, interval, as_of=as_of, gap_policy=settings.gap_policy).bars
    features = compute_features(bars).loc[frame.index]
    columns = champion_tags.get("feature_names") or list(features.columns)
    champion_model = registry.load_model(champion.name, champion.version)
    champion_proba = positive_probability(champion_model, features[columns])
    zeros = np.zeros(len(frame))
    y = frame["y"].to_numpy(dtype="float64")

    def score(proba: np.ndarray) -> float:
        metrics = compute_metrics(
            y,
            proba,
            next_returns=zeros,
            forward_returns=zeros,
            trend=trained.trend,
            cost_per_trade=0.0,
            periods_per_year=periods_per_year(interval),
        )
        return float(metrics["overall_score"])

    challenger_proba = frame["proba"].to_numpy(dtype="float64")
    return SameBars(
        (score(challenger_proba), score(champion_proba), len(frame)),
        (challenger_proba - y) ** 2 - (np.asarray(champion_proba, dtype="float64") - y) ** 2,
    )


def _no_candidate_why(evaluation: Any, selection: Any) -> str:
    """Why nothing was registered, by the best candidate's gate verdict (the closest miss)."""
    best = max(evaluation.candidates, key=lambda c: c.metrics.get("overall_score", 0.0))
    return f"no candidate passed the gate; best {best.name}: {selection.reasons[best.name]}"


def _param(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool) or value is None else json.dumps(value, default=str)
