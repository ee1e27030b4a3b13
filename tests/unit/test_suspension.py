"""Taking a losing champion out of service, on the live loop's own functions and the in-memory twins: when its
live record says following it loses money and no challenger passes the gate, promote_model suspends it; the
check then trains a replacement (backing off like a model without a champion), batch predictions skip it,
the next challenger that passes restores service, and an operator can resume it by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from common.aws.storage import MemoryObjectStore
from common.core.errors import RetrainError
from common.core.settings import load_settings
from common.data.bar_store import OhlcvStore
from common.data.prediction_log import PredictionRecord, write_record
from common.loop.check import check_model
from common.loop.events import TrainResult
from common.loop.live_record import resume, suspend
from common.loop.training_steps import promote_model
from common.registry.memory_registry import MemoryRegistry
from common.registry.mlflow_registry import CHAMPION, EXECUTION_TAG, RESULT_TAG
from common.registry.promotion import encode_tags, suspension_of
from common.serving.batch_predict import outcome_due, run_batch

NAME = "BTC_uptrend_model"
AS_OF = datetime(2024, 6, 1, 0, 10, tzinfo=UTC)


class AlwaysLong:
    """Says 'uptrend' (p = 0.9) for every row."""

    classes_ = np.array([0, 1])

    def predict_proba(self, rows: pd.DataFrame) -> np.ndarray:
        return np.tile([0.1, 0.9], (len(rows), 1))


@pytest.fixture
def world() -> tuple[MemoryRegistry, MemoryObjectStore]:
    """A champion trained on 2024-01-01 that said 'uptrend' every day of a falling market since."""
    registry, objects = MemoryRegistry(), MemoryObjectStore()
    days = pd.date_range("2023-06-01", "2024-06-01", freq="D", tz="UTC")
    close = np.linspace(100.0, 60.0, len(days))  # falls every day
    bars = pd.DataFrame(
        {"open": close, "high": close * 1.01, "low": close * 0.99, "close": close, "volume": 1000.0}, index=days
    )
    bars.index.name = "datetime"
    OhlcvStore(objects).append("BTC", "1d", bars, as_of=AS_OF + timedelta(days=1))
    experiment = registry.experiment_id("BTC_uptrend")
    trained = datetime(2024, 1, 1, 0, 10, tzinfo=UTC)
    with registry.start_run(
        experiment_id=experiment, run_name="t", tags={EXECUTION_TAG: "t", "as_of": trained.isoformat()}
    ):
        uri = registry.log_model(AlwaysLong(), "always", bars.head(1))
        registry.set_run_tag(RESULT_TAG, "{}")
    tags = encode_tags(
        {
            "metrics": {"brier": 0.1, "accuracy": 0.8, "overall_score": 0.7},
            "baseline": {"positive_rate": 0.3},
            "prediction_window": 10,
            "trained_as_of": trained.isoformat(),
            "data_range": {"last": "2023-12-20T00:00:00+00:00"},
            "feature_names": [],
        }
    )
    registry.move_champion(NAME, registry.register(NAME, uri, tags).version)
    for bar in pd.date_range("2024-01-02", "2024-05-15", freq="D", tz="UTC"):
        record = PredictionRecord(
            created_at=bar + timedelta(days=1), symbol="BTC", trend="uptrend", model_name=NAME, model_version="1",
            bar=bar, prediction_prob=0.9, prediction_input={}, target_pct=0.05, prediction_window_days=10,
            outcome_due=outcome_due(bar, "1d", 10), interval="1d", realized=False, realized_pct=-0.04,
            resolved_at=bar + timedelta(days=11),
        )  # fmt: skip
        write_record(objects, record)
    return registry, objects


def _settings(**overrides: object):
    return load_settings(symbols=("BTC",), suspend_on_evidence=True, perf_rule="evidence", **overrides)


def _rejected() -> TrainResult:
    return TrainResult(symbol="BTC", trend="uptrend", registered_model=NAME, status="rejected", why="gate says no")


def test_a_losing_champion_is_suspended_when_no_challenger_passes_and_restored_by_the_next(world) -> None:
    registry, objects = world
    settings = _settings()
    store = OhlcvStore(objects)
    result = promote_model(settings, registry, store, trained=_rejected(), as_of=AS_OF)
    assert result.status == "suspended" and "worse than not trading" in result.why
    champion = registry.version_by_alias(NAME, CHAMPION)
    suspension = suspension_of(champion.tags)
    assert suspension is not None and suspension.by == "evidence" and suspension.since.startswith("2024-06-01")

    # The check: nothing to judge, a replacement to train (and backs off after an attempt that found none).
    decision, _ = check_model(
        settings,
        registry,
        store,
        objects,
        symbol="BTC",
        trend="uptrend",
        as_of=AS_OF + timedelta(days=1),
        interval="1d",
    )
    assert decision.retrain and decision.reasons == ["no_model"]
    assert "suspended since 2024-06-01" in decision.triggers[0].detail and len(decision.triggers) == 1
    # Batch predictions serve nothing for it.
    batch = run_batch(settings, registry, objects, as_of=AS_OF + timedelta(days=1), symbols=("BTC",))
    mine = next(m for m in batch.predictions.models if m.trend == "uptrend")
    assert mine.status == "skipped" and "suspended" in mine.reason

    # A challenger that passed the gate replaces a suspended champion (whatever the comparison would say).
    experiment = registry.experiment_id("BTC_uptrend")
    with registry.start_run(experiment_id=experiment, run_name="c", tags={}) as run_id:
        uri = registry.log_model(AlwaysLong(), "always", pd.DataFrame({"a": [1.0]}))
        registry.log_load_back_sample(
            AlwaysLong(), pd.DataFrame({"a": [1.0]}, index=pd.to_datetime(["2024-05-30"], utc=True))
        )
    challenger = registry.register(NAME, uri, encode_tags({"metrics": {"overall_score": 0.61}}))
    trained = TrainResult(symbol="BTC", trend="uptrend", registered_model=NAME, status="registered",
                          version=challenger.version, metrics={"overall_score": 0.61}, candidate_run_id=run_id)  # fmt: skip
    promoted = promote_model(settings, registry, store, trained=trained, as_of=AS_OF + timedelta(days=2))
    assert promoted.status == "promoted" and promoted.comparison == "failing"
    assert suspension_of(registry.version_by_alias(NAME, CHAMPION).tags) is None, "service restored"


def test_without_the_setting_a_losing_champion_keeps_serving(world) -> None:
    registry, objects = world
    settings = load_settings(symbols=("BTC",), suspend_on_evidence=False)
    result = promote_model(settings, registry, OhlcvStore(objects), trained=_rejected(), as_of=AS_OF)
    assert result.status == "rejected" and suspension_of(registry.version_by_alias(NAME, CHAMPION).tags) is None


def test_the_evidence_rule_fires_on_the_losing_record_and_says_why(world) -> None:
    registry, objects = world
    decision, _ = check_model(
        _settings(), registry, OhlcvStore(objects), objects, symbol="BTC", trend="uptrend", as_of=AS_OF, interval="1d"
    )
    performance = next(t for t in decision.triggers if t.trigger == "performance")
    assert performance.status == "fired" and "worse than not trading" in performance.detail
    assert "resolved outcomes, 0 correct" in performance.detail


def test_an_operator_suspends_and_resumes_by_hand(world) -> None:
    registry, _ = world
    suspend(registry, NAME, "1", why="exchange outage", since=AS_OF, by="operator")
    text = suspension_of(registry.version_by_alias(NAME, CHAMPION).tags).text()
    assert "by an operator" in text and "exchange outage" in text
    assert resume(registry, NAME).version == "1"
    assert suspension_of(registry.version_by_alias(NAME, CHAMPION).tags) is None
    with pytest.raises(RetrainError, match="not suspended"):
        resume(registry, NAME)
