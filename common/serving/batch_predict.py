"""Batch predictions: every champion asked about the last closed bar, and the outcomes filled in later.

Runs daily after ingestion (``functions/batch_predict``) and writes the prediction log
(:mod:`common.data.prediction_log`) that the performance trigger reads.

- :func:`predict_champions` writes one record per (model, bar, version). The record's key is known before
  the model is loaded, so a run that finds it stored neither loads nor scores the model, and the write
  itself is conditional (only where none exists): a retried, repeated or concurrent run writes nothing
  new and changes nothing, neither ``created_at`` nor an outcome filled in since.
- :func:`resolve_outcomes` fills the realized label of each record whose horizon has passed, computed on
  the stored closed bars with the training label function (:func:`common.data.targets.trend_labels`), so a
  live outcome is exactly the label the model was trained to predict. The update is conditional on the
  ETag read, so two resolvers never lose each other's work.

A champion scores as the prediction API would serve it: loaded and checked by
:class:`common.serving.checked_versions.CheckedVersions` (the scorer the API compiles, which must reproduce
the probabilities its training run recorded). A version refused there is a ``failed`` model here, and the
refusal is remembered: a replay over many days loads it once.

Both isolate models: one model's problem (no bars, incomplete features, an artifact that fails to load or
its load-back check) is reported in the summary and never stops the others.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import pandas as pd

from common.aws.storage import S3ObjectStore
from common.core.errors import ConcurrentWriteError, RetrainError
from common.core.settings import TRENDS, Settings, Trend, as_utc, model_label, registered_model_name
from common.data.bar_store import OhlcvStore
from common.data.ohlcv import interval_length
from common.data.prediction_log import (
    PredictionRecord,
    is_logged,
    read_record,
    record_keys,
    replace_record,
    write_record,
)
from common.data.targets import forward_sma_change, trend_labels
from common.registry.mlflow_registry import CHAMPION, Registry, VersionInfo
from common.registry.promotion import decode_tags, suspension_of
from common.serving.checked_versions import CheckedVersions
from common.serving.feature_rows import FeatureRow, latest_features

Progress = Callable[[str], None]
PredictionStatus = Literal["written", "existing", "skipped", "failed"]


def _quiet(_: str) -> None:
    pass


def outcome_due(bar: datetime, interval: str, horizon: int) -> datetime:
    """When the label of ``bar`` becomes known: it needs SMA10 at bar+h, that is the close of the bar opened
    h intervals later, which is closed (``common.data.ohlcv.closed_mask``) h+1 intervals after ``bar`` opened."""
    return bar + (horizon + 1) * interval_length(interval)


# --- predictions ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelPrediction:
    """What the run did for one (symbol, trend)."""

    symbol: str
    trend: str
    status: PredictionStatus
    version: str | None = None
    bar: datetime | None = None
    probability: float | None = None
    reason: str = ""
    interval: str = "1d"

    def to_dict(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "trend": self.trend,
            "interval": self.interval,
            "status": self.status,
            "version": self.version,
            "bar": self.bar.isoformat() if self.bar else None,
            "probability": self.probability,
            "reason": self.reason,
        }

    def describe(self) -> str:
        version = f" v{self.version}" if self.version else ""
        bar = f" bar {self.bar:%Y-%m-%d %H:%M}" if self.bar else ""
        probability = f" p={self.probability:.3f}" if self.probability is not None else ""
        reason = f" ({self.reason})" if self.reason else ""
        return (
            f"{model_label(self.symbol, self.trend, self.interval)}{version}:{bar} {self.status}{probability}{reason}"
        )


@dataclass
class BatchSummary:
    as_of: datetime
    models: list[ModelPrediction] = field(default_factory=list)

    def count(self, status: PredictionStatus) -> int:
        return sum(m.status == status for m in self.models)

    @property
    def failed(self) -> list[ModelPrediction]:
        return [m for m in self.models if m.status == "failed"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of.isoformat(),
            **{status: self.count(status) for status in ("written", "existing", "skipped", "failed")},
            "models": [m.to_dict() for m in self.models],
        }


@dataclass
class _PredictionRun:
    """One run's adapters and clock, and what it computes once: a symbol's feature row (both trends share
    it; a failure is kept so both report it). Checked models come from ``models`` (kept across runs)."""

    settings: Settings
    objects: S3ObjectStore
    as_of: datetime
    models: CheckedVersions
    features: dict[tuple[str, str], FeatureRow | RetrainError] = field(default_factory=dict)

    def feature_row(self, symbol: str, interval: str) -> FeatureRow:
        key = (symbol, interval)
        if key not in self.features:
            try:
                self.features[key] = latest_features(
                    OhlcvStore(self.objects), symbol, interval, as_of=self.as_of, gap_policy=self.settings.gap_policy
                )
            except RetrainError as exc:
                self.features[key] = exc
        cached = self.features[key]
        if isinstance(cached, RetrainError):
            raise cached
        return cached

    def predict(self, champion: VersionInfo, symbol: str, trend: Trend, interval: str) -> ModelPrediction:
        tags = decode_tags(champion.tags)
        row = self.feature_row(symbol, interval)

        def outcome(status: PredictionStatus, probability: float | None = None, reason: str = "") -> ModelPrediction:
            return ModelPrediction(symbol, trend, status, champion.version, row.bar, probability, reason, interval)

        trained_as_of = tags.get("trained_as_of")
        if trained_as_of and as_utc(datetime.fromisoformat(str(trained_as_of))) > self.as_of:
            # A re-run of a past day: this version did not exist yet, so it made no live prediction then.
            return outcome("skipped", reason=f"v{champion.version} was trained as of {trained_as_of}, after this run")
        trained_until = (tags.get("data_range") or {}).get("last")
        if trained_until and row.bar <= as_utc(datetime.fromisoformat(str(trained_until))):
            # The model saw this bar's label in training (a replay before its training date): not a live prediction.
            return outcome("skipped", reason=f"the bar's label is in v{champion.version}'s training data")
        if is_logged(self.objects, symbol, trend, row.bar, champion.version, interval):
            return outcome("existing")  # logged by an earlier run: no need to load or score the model

        checked = self.models.get(champion)  # a refused version raises ModelLoadError: this model fails
        inputs = row.values[list(checked.feature_names)]
        probability = float(checked.score(row.array_for(checked.feature_names))[0])  # as ServedModel.probability
        horizon = int(tags.get("prediction_window", self.settings.prediction_window))
        record = PredictionRecord(
            created_at=self.as_of,
            symbol=symbol,
            trend=trend,
            model_name=champion.name,
            model_version=champion.version,
            bar=row.bar,
            prediction_prob=probability,
            prediction_input={name: float(value) for name, value in inputs.iloc[0].items()},
            target_pct=float(tags.get("target_pct", self.settings.target_pct(trend))),
            prediction_window_days=horizon,
            outcome_due=outcome_due(row.bar, interval, horizon),
            interval=interval,  # type: ignore[arg-type]
        )
        # A concurrent run may have written it since the check: the stored record is kept.
        return outcome("written" if write_record(self.objects, record) else "existing", probability)


def predict_champions(
    settings: Settings,
    registry: Registry,
    objects: S3ObjectStore,
    *,
    as_of: datetime,
    symbols: tuple[str, ...] | None = None,
    interval: str | None = None,
    models: CheckedVersions | None = None,
    progress: Progress = _quiet,
) -> BatchSummary:
    """Every champion of the pool on ``interval`` (default: the configured one): its prediction for its last
    closed bar at ``as_of``, logged once.

    ``models`` holds ``registry``'s checked versions (:meth:`CheckedVersions.of`); a replay over many days
    passes the same one to every run, so each version is loaded and checked once (a refused one too).
    Without it, this run's own.
    """
    interval = interval or settings.interval
    settings = settings.for_interval(interval)  # type: ignore[arg-type]
    checked = CheckedVersions.of(registry) if models is None else models
    run = _PredictionRun(settings, objects, as_utc(as_of), checked)
    summary = BatchSummary(run.as_of)
    for symbol in symbols or settings.symbols_on(interval):
        for trend in TRENDS:
            name = registered_model_name(symbol, trend, interval)
            champion: VersionInfo | None = None
            try:
                champion = registry.version_by_alias(name, CHAMPION)
                suspended = suspension_of(champion.tags) if champion else None
                if champion is None:
                    reason = f"{name} has no champion"
                    outcome = ModelPrediction(symbol, trend, "skipped", reason=reason, interval=interval)
                elif suspended is not None:  # not served, so nothing to log
                    reason = f"v{champion.version} is {suspended.text()}"
                    outcome = ModelPrediction(
                        symbol, trend, "skipped", champion.version, reason=reason, interval=interval
                    )
                else:
                    outcome = run.predict(champion, symbol, trend, interval)
            except Exception as exc:  # one model's problem never stops the others; the summary names it
                error = f"{type(exc).__name__}: {exc}"
                version = champion.version if champion else None
                outcome = ModelPrediction(symbol, trend, "failed", version, reason=error, interval=interval)
            summary.models.append(outcome)
            progress(outcome.describe())
    return summary


# --- outcomes ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Unresolved:
    """A record whose outcome is due but could not be filled in, and why (it is retried on the next run)."""

    key: str
    reason: str


@dataclass
class ResolveSummary:
    as_of: datetime
    since: datetime  # oldest bar looked at
    resolved: list[str] = field(default_factory=list)  # keys filled in by this run
    unresolved: list[Unresolved] = field(default_factory=list)
    not_due: int = 0
    already_resolved: int = 0
    errors: dict[str, str] = field(default_factory=dict)  # "SYMBOL trend" -> error

    def to_dict(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of.isoformat(),
            "since": self.since.isoformat(),
            "resolved": len(self.resolved),
            "not_due": self.not_due,
            "already_resolved": self.already_resolved,
            "unresolved": [{"key": u.key, "reason": u.reason} for u in self.unresolved],
            "errors": self.errors,
        }


def resolve_window_start(settings: Settings, as_of: datetime) -> datetime:
    """Oldest bar the resolver reads by default. The performance trigger reads records of bars from its window
    start minus the horizon; older outcomes can no longer count, so re-reading them daily would be wasted
    requests. A backfill passes an earlier ``since``."""
    horizon = (settings.prediction_window + 1) * interval_length(settings.interval)
    return as_utc(as_of) - timedelta(days=settings.perf_window_days) - horizon


@dataclass
class _Closes:
    """Closed bars' closes per (symbol, interval) at the run's as-of time, loaded once; a load error is kept."""

    store: OhlcvStore
    as_of: datetime
    settings: Settings
    loaded: dict[tuple[str, str], pd.Series | str] = field(default_factory=dict)

    def get(self, symbol: str, interval: str) -> pd.Series | str:
        key = (symbol, interval)
        if key not in self.loaded:
            try:
                bars = self.store.load(symbol, interval, as_of=self.as_of, gap_policy=self.settings.gap_policy).bars
                self.loaded[key] = bars["close"]
            except RetrainError as exc:
                self.loaded[key] = f"{type(exc).__name__}: {exc}"
        return self.loaded[key]


def resolve_outcomes(
    settings: Settings,
    objects: S3ObjectStore,
    *,
    as_of: datetime,
    symbols: tuple[str, ...] | None = None,
    interval: str | None = None,
    since: datetime | None = None,
    progress: Progress = _quiet,
) -> ResolveSummary:
    """Fill the realized label of every unresolved record (bars from ``since``) whose outcome is due, for the
    pool's models on ``interval`` (default: the configured one)."""
    as_of = as_utc(as_of)
    interval = interval or settings.interval
    settings = settings.for_interval(interval)  # type: ignore[arg-type]
    summary = ResolveSummary(as_of, as_utc(since) if since else resolve_window_start(settings, as_of))
    closes = _Closes(OhlcvStore(objects), as_of, settings)
    for symbol in symbols or settings.symbols_on(interval):
        for trend in TRENDS:
            try:
                for key in record_keys(objects, symbol, trend, since=summary.since, until=as_of, interval=interval):
                    _resolve_record(objects, closes, key, summary)
            except Exception as exc:  # one model's problem never stops the others; the summary names it
                summary.errors[model_label(symbol, trend, interval)] = f"{type(exc).__name__}: {exc}"
    for item in summary.unresolved:
        progress(f"{item.key}: outcome due but unresolved ({item.reason})")
    progress(f"outcomes: {len(summary.resolved)} resolved, {summary.not_due} not due yet")
    return summary


def _resolve_record(objects: S3ObjectStore, closes: _Closes, key: str, summary: ResolveSummary) -> None:
    record, etag = read_record(objects, key)
    if record.realized is not None:
        summary.already_resolved += 1
        return
    if record.outcome_due > summary.as_of:
        summary.not_due += 1
        return
    realized = realized_label(record, closes.get(record.symbol, record.interval or closes.settings.interval))
    if isinstance(realized, str):
        summary.unresolved.append(Unresolved(key, realized))
        return
    label, pct = realized
    resolved = record.model_copy(update={"realized": label, "realized_pct": pct, "resolved_at": summary.as_of})
    try:
        replace_record(objects, key, resolved, etag=etag)
    except ConcurrentWriteError:
        # Changed since it was read (another resolver): nothing is overwritten; the next run looks again.
        summary.unresolved.append(Unresolved(key, "changed concurrently; left to the next run"))
        return
    summary.resolved.append(key)


def realized_label(record: PredictionRecord, close: pd.Series | str) -> tuple[bool, float] | str:
    """(label, SMA10 change) of the record's bar with the training label's definition, or why it is not known.

    ``close`` holds the closed bars' closes (or the error loading them). Labels shift by rows as training's do,
    so after a gap the outcome waits until h stored bars follow the bar.
    """
    if isinstance(close, str):
        return close
    bar = pd.Timestamp(record.bar)
    if bar not in close.index:
        return f"bar {bar:%Y-%m-%d %H:%M} is not among the stored closed bars"
    horizon = record.prediction_window_days
    label = trend_labels(close, horizon, record.target_pct, record.trend).loc[bar]
    if pd.isna(label):
        return f"SMA10 {horizon} bars after {bar:%Y-%m-%d %H:%M} is not among the stored closed bars yet"
    return bool(label), float(forward_sma_change(close, horizon).loc[bar])


# --- one scheduled run ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class BatchRun:
    """One run of the batch function: today's predictions, then the outcomes that came due."""

    predictions: BatchSummary
    outcomes: ResolveSummary

    @property
    def failed_models(self) -> list[str]:
        failed = [f"{m.symbol} {m.trend}" for m in self.predictions.failed]
        return sorted({*failed, *self.outcomes.errors})

    def to_dict(self) -> dict[str, Any]:
        return {
            "as_of": self.predictions.as_of.isoformat(),
            "predictions": self.predictions.to_dict(),
            "outcomes": self.outcomes.to_dict(),
            "failed_models": self.failed_models,
        }

    def render(self) -> str:
        lines = [m.describe() for m in self.predictions.models]
        p, o = self.predictions, self.outcomes
        lines.append(
            f"predictions: {p.count('written')} written, {p.count('existing')} already logged, "
            f"{p.count('skipped')} skipped, {p.count('failed')} failed"
        )
        lines.extend(f"{u.key}: unresolved ({u.reason})" for u in o.unresolved)
        lines.extend(f"{model}: error resolving outcomes: {error}" for model, error in o.errors.items())
        lines.append(
            f"outcomes since {o.since:%Y-%m-%d}: {len(o.resolved)} resolved, {o.not_due} not due yet, "
            f"{o.already_resolved} resolved before"
        )
        return "\n".join(lines)


def run_batch(
    settings: Settings,
    registry: Registry,
    objects: S3ObjectStore,
    *,
    as_of: datetime,
    symbols: tuple[str, ...] | None = None,
    interval: str | None = None,
    models: CheckedVersions | None = None,
    progress: Progress = _quiet,
) -> BatchRun:
    """Predict first, then resolve: a record whose horizon is already over at ``as_of`` (a replay that
    starts late) gets its outcome in the same run."""
    predictions = predict_champions(
        settings, registry, objects, as_of=as_of, symbols=symbols, interval=interval, models=models, progress=progress
    )
    outcomes = resolve_outcomes(settings, objects, as_of=as_of, symbols=symbols, interval=interval, progress=progress)
    return BatchRun(predictions, outcomes)
