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

#: Tags written on every registered version (as the original system wrote them: metrics, symbol, classifier, trend, target_pct,
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
    "baseline",
    "honest_metrics",
)

Comparison = Literal[
    "no_champion", "same_bars", "recorded_score", "same_version", "always", "failing", "too_old", "too_few_bars"
]


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
    champion_failing: str | None = None,
    brier_difference: Any = None,
    champion_age_days: float | None = None,
    max_age_days: float | None = None,
    alpha: float = 0.05,
    horizon: int = 1,
) -> PromotionDecision:
    """Whether a challenger that passed the gate replaces the champion (``RETRAIN_PROMOTION_RULE``):

    - a champion that is suspended or failing (``champion_failing``: its live record says it is worse than
      not trading) is replaced under every rule;
    - ``always``: every challenger replaces the champion;
    - ``not_worse`` (the original rule): the challenger's score is not below the champion's, on the same
      bars when at least ``min_bars`` (``same_bars_scores``: challenger, champion, bars), else on their
      walk-forward estimates (module docstring);
    - ``evidence``: the challenger's Brier score is lower on the same bars by more than noise (a one-sided
      Diebold-Mariano test of ``brier_difference``, challenger minus champion per bar, with a HAC standard
      error over h - 1 lags, at ``alpha``); with fewer than ``min_bars`` such bars only a champion older than
      ``max_age_days`` is replaced. Otherwise the champion stays, and the decision says why. Fewer swaps:
      each costs a reload and churns the served signal.
    """
    if champion_version is None:
        return PromotionDecision(
            True, "no_champion", f"first champion ({metric} {challenger_cv_score:.3f})", challenger_cv_score
        )
    if champion_version == challenger_version:
        return PromotionDecision(True, "same_version", f"v{challenger_version} is already the champion")
    if champion_failing:
        why = f"champion v{champion_version} is {champion_failing}; the challenger passed the gate"
        return PromotionDecision(True, "failing", why, challenger_cv_score)
    if rule == "always":
        why = f"the promotion rule is always: it passed the gate ({metric} {challenger_cv_score:.3f})"
        return PromotionDecision(True, "always", why, challenger_cv_score)
    if rule == "evidence":
        return _on_evidence(
            champion_version, brier_difference, min_bars, champion_age_days, max_age_days, alpha, horizon
        )
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


def _on_evidence(
    champion_version: str,
    brier_difference: Any,
    min_bars: int,
    age_days: float | None,
    max_age_days: float | None,
    alpha: float,
    horizon: int,
) -> PromotionDecision:
    import numpy as np

    from common.training.evidence import hac_mean_test

    differences = np.asarray(brier_difference if brier_difference is not None else [], dtype="float64")
    bars = int(differences.size)
    if bars >= min_bars:
        test = hac_mean_test(-differences, max(horizon - 1, 0))  # mean(champion - challenger Brier) > 0?
        where = f"Brier {-test.mean:+.4f} against champion v{champion_version} on the same {bars} bars (p = {test.p_value:.3g})"
        if test.p_value < alpha:
            return PromotionDecision(True, "same_bars", f"better by more than noise: {where}", bars=bars)
        return PromotionDecision(
            False, "same_bars", f"not better by more than noise: {where}; champion kept", bars=bars
        )
    old = age_days is not None and max_age_days is not None and age_days > max_age_days
    age = f"champion v{champion_version} is {age_days:.0f} days old" if age_days is not None else "champion age unknown"
    if old:
        return PromotionDecision(
            True, "too_old", f"{age} (> {max_age_days:g}, too old to trust); {bars} unseen bars to compare", bars=bars
        )
    return PromotionDecision(
        False,
        "too_few_bars",
        f"{bars} unseen bars < {min_bars} to compare and {age} (<= {max_age_days:g}): champion kept",
        bars=bars,
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


# --- suspension ------------------------------------------------------------------------------------------------
#: On a champion version taken out of service: {"since": ISO time, "why": text, "by": "evidence" | "operator"}.
#: The predictor answers 404 for its pair while it is there; deleting the tag (or promoting a new champion)
#: restores service.
SUSPENDED_TAG = "retrain.suspended"


@dataclass(frozen=True)
class Suspension:
    """A champion taken out of service: since when, why, and by whom (the evidence rule or an operator)."""

    since: str
    why: str
    by: str = "evidence"

    def text(self) -> str:
        return f"suspended since {self.since[:10]} ({'by an operator' if self.by == 'operator' else 'on its live record'}): {self.why}"

    def to_tag(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def suspension_of(tags: Mapping[str, str]) -> Suspension | None:
    """The suspension recorded on a version's tags (``retrain.suspended``), or None while it serves."""
    text = tags.get(SUSPENDED_TAG)
    if not text:
        return None
    try:
        data = json.loads(text)
        return Suspension(str(data.get("since", "")), str(data.get("why", "")), str(data.get("by", "evidence")))
    except (json.JSONDecodeError, AttributeError):
        return Suspension("", str(text), "operator")  # set by hand with a plain reason: still suspended
