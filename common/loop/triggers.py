"""The retraining triggers as pure decisions: schedule (age), performance (live accuracy), drift (PSI).

Each gives a :class:`TriggerResult` with a status that is never ambiguous:
``fired`` (retrain), ``ok``, ``insufficient_data`` (not enough evidence either way: never a retrain),
``no_model`` (nothing to watch: train one), ``backoff`` (no champion, and the last attempt to train one
is too recent to try again), ``not_checked`` (the trigger could not run, with why) or ``off`` (the
configuration leaves this trigger out: ``RETRAIN_TRIGGERS``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

from common.core.settings import TriggerName, model_label

TriggerStatus = Literal["fired", "ok", "insufficient_data", "no_model", "backoff", "not_checked", "off"]
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


def schedule_trigger(
    champion_trained: datetime | None,
    as_of: datetime,
    max_age_days: int | None,
    last_attempt: datetime | None = None,
    retry_days: float | None = None,
) -> TriggerResult:
    """Fires when the model has gone ``max_age_days`` without a training attempt on fresh data.

    The age runs from the later of the champion's training and the last completed retrain: a challenger
    that lost to the champion confirmed it on newer data, so the next scheduled attempt is a full period
    later, not every day until a challenger wins. Without a champion, ``no_model`` fires at once, and
    after an attempt that produced none (nothing passed the gate) again only once ``retry_days`` (default:
    ``max_age_days``) have passed: a gate that rejects today's data would reject it tomorrow too, at the
    price of a training each day. ``max_age_days=None`` turns the age rule off (a champion is then never
    "too old"); a model without a champion is still trained.
    """
    if champion_trained is None:
        retry = retry_days if retry_days is not None else max_age_days
        if last_attempt is None:
            return TriggerResult("schedule", "no_model", "no champion yet: train one")
        waited = _days(as_of, last_attempt)
        if retry is None or waited > retry:
            detail = f"no champion; the last attempt {waited:.1f} days ago produced none: try again"
            return TriggerResult("schedule", "no_model", detail, waited, retry)
        detail = f"no champion; the last attempt {waited:.1f} days ago produced none: next attempt after {retry:g} days"
        return TriggerResult("schedule", "backoff", detail, waited, retry)
    if max_age_days is None:
        return off("schedule")
    since = champion_trained if last_attempt is None else max(champion_trained, last_attempt)
    confirmed = since != champion_trained
    age_days = _days(as_of, since)
    status: TriggerStatus = "fired" if age_days > max_age_days else "ok"
    bound = f"({'>' if status == 'fired' else '<='} {max_age_days})"
    age = _days_text(age_days, max_age_days)
    if confirmed:
        detail = f"champion last confirmed by a retrain {age} days ago {bound}"
    else:
        detail = f"champion is {age} days old {bound}"
    return TriggerResult("schedule", status, detail, age_days, max_age_days)


def suspended_trigger(
    version: str, suspension: str, as_of: datetime, last_attempt: datetime | None, retry_days: float
) -> TriggerResult:
    """A suspended champion serves nothing: train a replacement, retried like a model without a champion
    (``retry_days`` after an attempt whose challenger did not pass)."""
    head = f"champion v{version} is {suspension}"
    if last_attempt is None:
        return TriggerResult("schedule", "no_model", f"{head}: train a replacement")
    waited = _days(as_of, last_attempt)
    if waited > retry_days:
        detail = f"{head}; the last attempt {waited:.1f} days ago produced no replacement: try again"
        return TriggerResult("schedule", "no_model", detail, waited, retry_days)
    detail = f"{head}; the last attempt {waited:.1f} days ago produced no replacement: next after {retry_days:g} days"
    return TriggerResult("schedule", "backoff", detail, waited, retry_days)


def off(trigger: TriggerName) -> TriggerResult:
    """The verdict of a trigger the configuration leaves out."""
    return TriggerResult(trigger, "off", f"the {trigger} trigger is off (not in RETRAIN_TRIGGERS)")


def cooldown(last_attempt: datetime | None, as_of: datetime, cooldown_days: float) -> str | None:
    """Why a model retrained too recently to retrain again, or None. A challenger that just lost leaves
    the champion with the same drift and the same live accuracy: without a pause, every day would
    retrain it again on nearly the same data."""
    if last_attempt is None or cooldown_days <= 0:
        return None
    since = _days(as_of, last_attempt)
    if since >= cooldown_days:
        return None
    return f"last retrain {since:.1f} days ago (< {cooldown_days:g}-day cooldown)"


def _days_text(days: float, limit: float) -> str:
    """One decimal, or two where one would read as the limit itself ("7.0 days (> 7)")."""
    text = f"{days:.1f}"
    return f"{days:.2f}" if float(text) == limit and days != limit else text


def _days(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds() / 86400


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
    held_back: str | None = None  # why fired triggers start nothing today (cooldown)
    interval: str = "1d"  # of the model's bars (an hourly model is checked every hour)

    @property
    def model(self) -> str:
        """The model in words: ``BTC uptrend`` (daily), ``XRP 1h uptrend``."""
        return model_label(self.symbol, self.trend, self.interval)

    @property
    def retrain(self) -> bool:
        return self.held_back is None and any(result.fired for result in self.triggers)

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
            "interval": self.interval,
            "day": self.day,
            "as_of": self.as_of,
            "champion_version": self.champion_version,
            "retrain": self.retrain,
            "reasons": self.reasons,
            "held_back": self.held_back,
            "triggers": {result.trigger: result.to_dict() for result in self.triggers},
        }
