"""Schedule and performance triggers: the age rule, and a binomial test so noise alone never fires."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from common.loop.triggers import (
    Decision,
    TriggerResult,
    accuracy_below_p_value,
    cooldown,
    performance_trigger,
    schedule_trigger,
)

AS_OF = datetime(2025, 2, 20, tzinfo=UTC)


def test_no_champion_fires_no_model() -> None:
    result = schedule_trigger(None, AS_OF, 7)
    assert (result.status, result.fired) == ("no_model", True)


@pytest.mark.parametrize(("age_days", "status"), [(6.9, "ok"), (7.0, "ok"), (7.01, "fired"), (30, "fired")])
def test_champion_older_than_the_limit_fires(age_days: float, status: str) -> None:
    result = schedule_trigger(AS_OF - timedelta(days=age_days), AS_OF, 7)
    assert result.status == status and result.value == pytest.approx(age_days) and result.threshold == 7


def test_a_lost_challenger_restarts_the_champions_age() -> None:
    """A champion 9 days old whose challenger lost 2 days ago was confirmed on newer data: no retrain
    until the period has passed again (not every day until a challenger wins)."""
    result = schedule_trigger(AS_OF - timedelta(days=9), AS_OF, 7, last_attempt=AS_OF - timedelta(days=2))
    assert (result.status, result.value) == ("ok", pytest.approx(2.0))
    assert "last confirmed by a retrain 2.0 days ago" in result.detail
    later = schedule_trigger(AS_OF - timedelta(days=9), AS_OF, 7, last_attempt=AS_OF - timedelta(days=8))
    assert later.status == "fired" and later.value == pytest.approx(8.0)


def test_an_attempt_older_than_the_champion_does_not_count() -> None:
    result = schedule_trigger(AS_OF - timedelta(days=3), AS_OF, 7, last_attempt=AS_OF - timedelta(days=5))
    assert result.status == "ok" and result.value == pytest.approx(3.0) and "3.0 days old" in result.detail


@pytest.mark.parametrize(("waited", "status"), [(1, "backoff"), (7, "backoff"), (7.5, "no_model")])
def test_without_a_champion_a_failed_attempt_backs_off_for_the_period(waited: float, status: str) -> None:
    result = schedule_trigger(None, AS_OF, 7, last_attempt=AS_OF - timedelta(days=waited))
    assert result.status == status and result.fired is (status == "no_model")
    assert result.value == pytest.approx(waited) and "produced none" in result.detail


def _perf(correct: int, total: int, **kw: object) -> TriggerResult:
    arguments: dict[str, object] = {"threshold": 0.52, "min_predictions": 100, "alpha": 0.05, "window_days": 14}
    arguments.update(kw)
    return performance_trigger(correct, total, **arguments)  # type: ignore[arg-type]


def test_too_few_predictions_is_insufficient_data_never_retrain() -> None:
    result = _perf(0, 99)
    assert result.status == "insufficient_data" and not result.fired
    assert _perf(0, 0).value is None


def test_accuracy_barely_below_the_threshold_is_noise_and_does_not_fire() -> None:
    result = _perf(50, 100)  # 0.50 < 0.52, but n=100 cannot tell
    assert result.status == "ok" and result.value == 0.5 and result.extra["p_value"] > 0.05
    assert "not credibly below" in result.detail


def test_accuracy_credibly_below_the_threshold_fires() -> None:
    result = _perf(40, 100)
    assert result.status == "fired" and result.extra["p_value"] < 0.05


def test_noise_alone_fires_at_most_alpha_of_the_time() -> None:
    """With a true accuracy exactly at the threshold, the test fires in <= alpha of windows."""
    import numpy as np

    rng = np.random.default_rng(7)
    fired = sum(_perf(int(rng.binomial(200, 0.52)), 200).fired for _ in range(2000))
    assert fired / 2000 <= 0.05
    # A bare comparison would fire about half the time.
    bare = sum(rng.binomial(200, 0.52) / 200 < 0.52 for _ in range(2000)) / 2000
    assert bare > 0.35


def test_binomial_p_value_matches_scipy_exact_test() -> None:
    from scipy.stats import binomtest

    assert accuracy_below_p_value(40, 100, 0.52) == pytest.approx(binomtest(40, 100, 0.52, alternative="less").pvalue)


def test_decision_collects_reasons() -> None:
    decision = Decision(
        "BTC",
        "uptrend",
        "2025-02-20",
        AS_OF.isoformat(),
        "3",
        (
            schedule_trigger(AS_OF - timedelta(days=9), AS_OF, 7),
            _perf(50, 100),
            TriggerResult("drift", "fired", "3 features drifted"),
        ),
    )
    assert decision.retrain and decision.reasons == ["schedule", "drift"] and decision.reason == "schedule+drift"
    record = decision.to_dict()
    assert record["triggers"]["performance"]["status"] == "ok" and record["retrain"] is True


@pytest.mark.parametrize(
    ("days_since", "cooldown_days", "held"), [(1, 3, True), (2.9, 3, True), (3, 3, False), (1, 0, False)]
)
def test_cooldown_holds_back_a_retrain_soon_after_the_last(days_since: float, cooldown_days: float, held: bool) -> None:
    why = cooldown(AS_OF - timedelta(days=days_since), AS_OF, cooldown_days)
    assert (why is not None) is held
    assert cooldown(None, AS_OF, 3) is None
    drift = TriggerResult("drift", "fired", "max PSI 0.4")
    decision = Decision("BTC", "uptrend", "2025-02-20", AS_OF.isoformat(), "3", (drift,), held_back=why)
    assert decision.retrain is not held and decision.reason == "drift"  # the firing is still recorded
    assert decision.to_dict()["held_back"] == why


def test_an_age_just_past_the_limit_never_reads_as_the_limit() -> None:
    result = schedule_trigger(AS_OF - timedelta(days=7, minutes=10), AS_OF, 7)
    assert result.status == "fired" and "7.01 days old (> 7)" in result.detail
    assert "7.0 days old (<= 7)" in schedule_trigger(AS_OF - timedelta(days=7), AS_OF, 7).detail
