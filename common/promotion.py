"""Champion/challenger: typed registry tags and the promotion decision. Pure (no MLflow here).

MLflow tags are strings. Every tag value we write is JSON, so numbers, lists and dicts come back with
their types (``json.loads``), never by guessing (no ``ast.literal_eval`` of a repr).

The decision compares the challenger with the champion **on the same bars**: the walk-forward test
bars of this run that the champion never saw in training (after its ``data_end`` plus the label
horizon, so neither its features nor its labels leaked). Both are scored with the same metric on
those bars. When fewer than ``min_bars`` such bars exist (a champion trained days ago), the
comparison falls back to the champion's own recorded walk-forward score: both numbers are then
out-of-sample estimates from the same procedure. The decision says which comparison it used.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

#: Tags written on every registered version (SPEC: metrics, symbol, classifier, trend, target_pct,
#: prediction_window, feature_names, feature importance, data range, drift reference) and the training
#: as-of time (the schedule trigger measures a champion's age on the same clock).
VERSION_TAGS: tuple[str, ...] = (
    "symbol",
    "trend",
    "classifier",
    "metrics",
    "baseline_metrics",
    "target_pct",
    "prediction_window",
    "interval",
    "feature_names",
    "feature_importance",
    "feature_direction",
    "data_range",
    "drift_reference",
    "execution_id",
    "reason",
    "gate",
    "trained_as_of",
)

Comparison = Literal["no_champion", "same_bars", "recorded_score", "same_version", "always"]


def encode_tags(values: Mapping[str, Any]) -> dict[str, str]:
    """Typed values as JSON strings for MLflow tags."""
    return {key: json.dumps(value, sort_keys=True, allow_nan=False) for key, value in values.items()}


def decode_tags(tags: Mapping[str, str], keys: tuple[str, ...] = VERSION_TAGS) -> dict[str, Any]:
    """The typed values back; a tag that is not JSON (written by hand in the UI) stays a string."""
    decoded: dict[str, Any] = {}
    for key in keys:
        if key not in tags:
            continue
        try:
            decoded[key] = json.loads(tags[key])
        except json.JSONDecodeError:
            decoded[key] = tags[key]
    return decoded


@dataclass(frozen=True)
class PromotionDecision:
    promote: bool
    comparison: Comparison
    why: str
    challenger_score: float | None = None
    champion_score: float | None = None
    bars: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide_promotion(
    *,
    challenger_version: str,
    champion_version: str | None,
    challenger_cv_score: float,
    champion_recorded_score: float | None,
    same_bars_scores: tuple[float, float, int] | None,
    min_bars: int,
    metric: str = "overall_score",
    rule: str = "not_worse",
) -> PromotionDecision:
    """Promote when the challenger is not worse than the champion (see module docstring); with
    ``rule="always"`` (``RETRAIN_PROMOTION_RULE``) every challenger that passed the gate replaces it.

    ``same_bars_scores`` is (challenger, champion, bars) on the bars the champion never trained on.
    """
    if champion_version is None:
        return PromotionDecision(
            True, "no_champion", f"first champion ({metric} {challenger_cv_score:.3f})", challenger_cv_score
        )
    if champion_version == challenger_version:
        return PromotionDecision(True, "same_version", f"v{challenger_version} is already the champion")
    if rule == "always":
        why = f"the promotion rule is always: it passed the gate ({metric} {challenger_cv_score:.3f})"
        return PromotionDecision(True, "always", why, challenger_cv_score)
    if same_bars_scores is not None and same_bars_scores[2] >= min_bars:
        challenger, champion, bars = same_bars_scores
        return _verdict("same_bars", challenger, champion, bars, champion_version, metric, f"on the same {bars} bars")
    if champion_recorded_score is None:
        return PromotionDecision(
            True,
            "recorded_score",
            f"champion v{champion_version} has no recorded {metric}: the challenger passed the gate",
            challenger_cv_score,
        )
    bars = same_bars_scores[2] if same_bars_scores else 0
    where = f"walk-forward estimates ({bars} unseen bars < {min_bars} for a direct comparison)"
    return _verdict(
        "recorded_score", challenger_cv_score, champion_recorded_score, bars, champion_version, metric, where
    )


def _verdict(
    comparison: Comparison,
    challenger: float,
    champion: float,
    bars: int,
    champion_version: str,
    metric: str,
    where: str,
) -> PromotionDecision:
    if challenger >= champion:
        why = f"{metric} {challenger:.3f} >= champion v{champion_version} {champion:.3f}, {where}"
        return PromotionDecision(True, comparison, why, challenger, champion, bars)
    why = f"{metric.split('_')[0]} {challenger:.2f} < champion {champion:.2f} {where}"
    return PromotionDecision(False, comparison, why, challenger, champion, bars)
