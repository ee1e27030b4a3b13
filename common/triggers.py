"""The retraining triggers as pure decisions: schedule (age), performance (live accuracy), drift (PSI).

Each gives a :class:`TriggerResult` with a status that is never ambiguous:
``fired`` (retrain), ``ok``, ``insufficient_data`` (not enough evidence either way: never a retrain),
``no_model`` (nothing to watch: train one) or ``not_checked`` (the trigger could not run, with why).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

TriggerName = Literal["schedule", "performance", "drift"]
TriggerStatus = Literal["fired", "ok", "insufficient_data", "no_model", "not_checked"]
FIRING: frozenset[str] = frozenset({"fired", "no_model"})


@dataclass(frozen=True)
class TriggerResult:
    trigger: TriggerName
    status: TriggerStatus
    detail: str
    value: float | None = None
    threshold: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def fired(self) -> bool:
        return self.status in FIRING

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "fired": self.fired}


def schedule_trigger(champion_created: datetime | None, as_of: datetime, max_age_days: int) -> TriggerResult:
    """Fires when the champion is older than ``max_age_days``; no champion fires ``no_model``."""
    if champion_created is None:
        return TriggerResult("schedule", "no_model", "no champion yet: train one")
    age_days = (as_of - champion_created).total_seconds() / 86400
    if age_days > max_age_days:
        return TriggerResult(
            "schedule", "fired", f"champion is {age_days:.1f} days old (> {max_age_days})", age_days, max_age_days
        )
    return TriggerResult(
        "schedule", "ok", f"champion is {age_days:.1f} days old (<= {max_age_days})", age_days, max_age_days
    )


def accuracy_below_p_value(correct: int, total: int, threshold: float) -> float:
    """One-sided exact binomial p-value of seeing at most ``correct`` hits if the true accuracy were
    ``threshold``: small means the live accuracy is credibly below it, not just noisy."""
    from scipy.stats import binom

    return float(binom.cdf(correct, total, threshold))


def performance_trigger(
    correct: int, total: int, *, threshold: float, min_predictions: int, alpha: float, window_days: int
) -> TriggerResult:
    """Live accuracy of resolved predictions in the window, tested against ``threshold`` (binomial).

    Below ``min_predictions`` the answer is "insufficient_data", never "retrain"."""
    if total < min_predictions:
        return TriggerResult(
            "performance",
            "insufficient_data",
            f"{total} resolved predictions in {window_days} days (< {min_predictions})",
            None if total == 0 else correct / total,
            threshold,
            {"correct": correct, "total": total},
        )
    accuracy = correct / total
    p_value = accuracy_below_p_value(correct, total, threshold)
    extra = {"correct": correct, "total": total, "p_value": p_value, "alpha": alpha}
    if p_value < alpha:
        detail = f"live accuracy {accuracy:.3f} < {threshold} (binomial p={p_value:.3g} < {alpha}, n={total})"
        return TriggerResult("performance", "fired", detail, accuracy, threshold, extra)
    relation = "<" if accuracy < threshold else ">="
    detail = f"live accuracy {accuracy:.3f} {relation} {threshold}, not credibly below (p={p_value:.3g}, n={total})"
    return TriggerResult("performance", "ok", detail, accuracy, threshold, extra)


@dataclass(frozen=True)
class Decision:
    """One model's check on one day: every trigger's verdict and whether it retrains."""

    symbol: str
    trend: str
    day: str
    as_of: str
    champion_version: str | None
    triggers: tuple[TriggerResult, ...]

    @property
    def retrain(self) -> bool:
        return any(result.fired for result in self.triggers)

    @property
    def reasons(self) -> list[str]:
        return [
            result.trigger if result.status != "no_model" else "no_model" for result in self.triggers if result.fired
        ]

    @property
    def reason(self) -> str:
        """The execution's ``reason`` for this model (e.g. "drift+schedule")."""
        return "+".join(self.reasons) or "none"

    def to_dict(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "trend": self.trend,
            "day": self.day,
            "as_of": self.as_of,
            "champion_version": self.champion_version,
            "retrain": self.retrain,
            "reasons": self.reasons,
            "triggers": {result.trigger: result.to_dict() for result in self.triggers},
        }
