"""A champion's live record: its resolved predictions since it went live, read from the prediction log, and
what they say (:func:`common.training.evidence.champion_evidence`).

One function serves the daily check (the performance trigger's ``evidence`` rule) and the promotion step
(which suspends a champion that the evidence says is worse than not trading when no challenger passed).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import numpy as np

from common.aws.storage import ObjectStore
from common.core.settings import Settings
from common.data.bar_store import OhlcvStore
from common.data.prediction_log import read_records
from common.registry.mlflow_registry import VersionInfo
from common.registry.promotion import SUSPENDED_TAG, Suspension, decode_tags, suspension_of
from common.training.evidence import ChampionEvidence, champion_evidence

# How far back a champion's record is read: a year of daily outcomes (its whole life, for nearly all).
EVIDENCE_LOOKBACK = timedelta(days=366)


def live_evidence(
    settings: Settings,
    objects: ObjectStore,
    champion: VersionInfo,
    *,
    symbol: str,
    trend: str,
    as_of: datetime,
    interval: str,
) -> ChampionEvidence:
    """The champion's resolved outcomes (bars since it went live, in order) against its promise, the naive
    baseline and not trading."""
    tags = decode_tags(champion.tags)
    metrics: dict[str, Any] = tags.get("metrics") or {}
    honest = tags.get("honest_metrics") or {}
    promised = {**metrics, **{k: v for k, v in honest.items() if k in ("brier", "accuracy")}}
    base_rate = float((tags.get("baseline") or {}).get("positive_rate", metrics.get("positive_rate", 0.5)))
    records = [
        r
        for r in read_records(objects, symbol, trend, since=as_of - EVIDENCE_LOOKBACK, until=as_of, interval=interval)
        if r.model_version == champion.version and r.realized is not None
    ]
    records.sort(key=lambda r: r.bar)
    next_returns = np.zeros(len(records))
    if records:
        close = OhlcvStore(objects).load(symbol, interval, as_of=as_of, gap_policy=settings.gap_policy).bars["close"]
        following = (close.shift(-1) / close - 1.0).fillna(0.0)
        next_returns = np.array([float(following.get(r.bar, 0.0)) for r in records])
    return champion_evidence(
        version=champion.version,
        probabilities=np.array([r.prediction_prob for r in records]),
        outcomes=np.array([float(bool(r.realized)) for r in records]),
        next_returns=next_returns,
        trend=trend,
        promised=promised,
        base_rate=base_rate,
        horizon=int(tags.get("prediction_window", settings.prediction_window)),
        cost_per_trade=settings.cost_per_trade,
        alpha=settings.perf_evidence_alpha,
        min_outcomes=settings.perf_min_outcomes,
    )


def suspend(registry: Any, name: str, version: str, *, why: str, since: datetime, by: str = "evidence") -> Suspension:
    """Take ``name``'s champion ``version`` out of service: the predictor answers 404 for its pair (with
    ``why``), batch predictions skip it, the daily check trains a replacement. Promoting a challenger, or
    :func:`resume`, restores service."""
    suspension = Suspension(since.isoformat(), why, by)
    registry.set_version_tags(name, version, {SUSPENDED_TAG: suspension.to_tag()})
    return suspension


def resume(registry: Any, name: str) -> VersionInfo:
    """Put a suspended champion back in service (the operator's call: ``retrain resume``)."""
    from common.core.errors import RetrainError
    from common.registry.mlflow_registry import CHAMPION

    champion = registry.version_by_alias(name, CHAMPION)
    if champion is None:
        raise RetrainError(f"{name} has no champion to resume")
    if suspension_of(champion.tags) is None:
        raise RetrainError(f"{name} v{champion.version} is not suspended")
    registry.delete_version_tag(name, champion.version, SUSPENDED_TAG)
    return champion
