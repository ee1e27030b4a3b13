"""Batch predictions and outcome resolution (common.serving.batch_predict) on moto's S3 in-process, with a fake
registry whose champions are stand-in models: the record's fields, the outcome's due time at the exact
boundary, idempotent re-runs, outcomes never overwritten, per-model isolation, and realized labels that
equal the training labels."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from common.aws.storage import S3ObjectStore
from common.core.errors import RetrainError
from common.core.keys import ohlcv_key, prediction_key
from common.core.settings import Settings
from common.data.bar_store import OhlcvStore
from common.data.features import FEATURE_NAMES
from common.data.ohlcv import parse_ohlcv_csv
from common.data.prediction_log import PredictionRecord, live_accuracy_counts, read_records, write_record
from common.data.targets import forward_sma_change, trend_labels
from common.loop.check import _performance
from common.registry.memory_registry import MemoryRegistry
from common.registry.mlflow_registry import SAMPLE_ARTIFACT, RegistryError, VersionInfo
from common.registry.promotion import encode_tags
from common.serving import batch_predict
from common.serving.batch_predict import (
    outcome_due,
    predict_champions,
    resolve_outcomes,
    resolve_window_start,
    run_batch,
)
from common.serving.checked_versions import CheckedModel, CheckedVersions, ModelLoadError
from common.serving.feature_rows import latest_features
from common.serving.model_cache import ModelCache, RegistrySource
from retrain.batch import add_parser, replay_days
from tests.conftest import closed_bars, versioned_bucket
from tests.emf import emitted_metrics
from tests.unit.test_import_side_effects import GUARDS, _report, _run

BUCKET = "retrain-batch-test"
SAMPLE = Path(__file__).resolve().parents[2] / "sample_data" / "ohlcv"
DAY = timedelta(days=1)
AS_OF = datetime(2024, 6, 1, 0, 15, tzinfo=UTC)  # batch time: after ingestion stored the 2024-05-31 bar
LAST_BAR = datetime(2024, 5, 31, tzinfo=UTC)
TRAINED_UNTIL = "2024-01-31T00:00:00+00:00"  # last labelled training bar of every fake champion


class StandInModel:
    """A pyfunc-like model (``predict`` returns predict_proba's columns) that records what it was asked."""

    def __init__(self, probability: float) -> None:
        self.probability = probability
        self.columns: list[list[str]] = []

    def predict(self, rows: pd.DataFrame) -> np.ndarray:
        self.columns.append(list(rows.columns))
        return np.tile([1 - self.probability, self.probability], (len(rows), 1))


class FakeRegistry:
    """Champions by registered name; ``load_model`` counts loads and raises what it is given to raise. Each
    champion's run recorded a load-back sample of what its stand-in model answers (``samples``, by run id)."""

    def __init__(self) -> None:
        self.champions: dict[str, VersionInfo] = {}
        self.models: dict[tuple[str, str], Any] = {}
        self.samples: dict[str, dict[str, Any]] = {}
        self.loads: list[tuple[str, str]] = []

    def crown(self, name: str, version: str, model: Any, **tags: Any) -> None:
        values = {
            "interval": "1d",
            "prediction_window": 10,
            "target_pct": 0.05,
            "feature_names": list(FEATURE_NAMES),
            "data_range": {"first": "2018-01-01T00:00:00+00:00", "last": TRAINED_UNTIL},
            **tags,
        }
        run_id = f"run-{name}-{version}"
        self.champions[name] = VersionInfo(name, version, run_id, encode_tags(values), ("champion",))
        self.models[(name, version)] = model
        if isinstance(model, StandInModel):
            index = pd.date_range("2024-01-01", periods=3, freq="D", tz="UTC")
            self.samples[run_id] = {
                "index": [t.isoformat() for t in index],
                "columns": list(values["feature_names"]),
                "rows": np.arange(3 * len(FEATURE_NAMES), dtype="float64").reshape(3, -1).tolist(),
                "proba": [model.probability] * len(index),
            }

    def version_by_alias(self, name: str, alias: str) -> VersionInfo | None:
        assert alias == "champion"
        return self.champions.get(name)

    def load_model(self, name: str, version: str) -> Any:
        self.loads.append((name, version))
        model = self.models[(name, version)]
        if isinstance(model, Exception):
            raise model
        return model

    def run_tags(self, run_id: str) -> dict[str, str]:
        return {}  # no native model file: versions load through load_model

    def load_json_artifact(self, run_id: str, artifact_path: str) -> Any:
        assert artifact_path == SAMPLE_ARTIFACT
        if run_id not in self.samples:
            raise RegistryError(f"run {run_id} has no artifact {artifact_path}")
        return self.samples[run_id]


@pytest.fixture
def objects() -> Iterator[S3ObjectStore]:
    with versioned_bucket(BUCKET) as s3:
        for symbol in ("BTC", "ETH"):
            s3.put_object(
                Bucket=BUCKET, Key=ohlcv_key(symbol, "1d"), Body=(SAMPLE / "1d" / f"{symbol}.csv").read_bytes()
            )
        yield S3ObjectStore(BUCKET, client=s3)


@pytest.fixture
def settings() -> Settings:
    return Settings(symbols=("BTC",), data_bucket=BUCKET, mlflow_tracking_uri="http://127.0.0.1:1")


@pytest.fixture
def registry() -> FakeRegistry:
    fake = FakeRegistry()
    fake.crown("BTC_uptrend_model", "3", StandInModel(0.7))
    fake.crown("BTC_downtrend_model", "5", StandInModel(0.2))
    return fake


def _record(objects: S3ObjectStore, trend: str, bar: datetime, version: str) -> PredictionRecord:
    return PredictionRecord.model_validate(objects.get_json(prediction_key("BTC", trend, bar, version)))


def _versions(objects: S3ObjectStore) -> list[tuple[str, str]]:
    listing = objects.client.list_object_versions(Bucket=BUCKET, Prefix="predictions/")
    return sorted((v["Key"], v["VersionId"]) for v in listing.get("Versions", []))


# --- predictions ---------------------------------------------------------------------------------------
def test_a_record_holds_the_spec_fields_the_version_the_bar_and_the_models_own_input(
    objects: S3ObjectStore, settings: Settings, registry: FakeRegistry
) -> None:
    model = StandInModel(0.7)
    shuffled = list(reversed(FEATURE_NAMES))  # the model's columns come from its tag, in its order
    registry.crown("BTC_uptrend_model", "3", model, feature_names=shuffled)

    summary = predict_champions(settings, registry, objects, as_of=AS_OF)

    assert [(m.trend, m.status, m.version, m.bar) for m in summary.models] == [
        ("uptrend", "written", "3", LAST_BAR),
        ("downtrend", "written", "5", LAST_BAR),
    ]
    record = _record(objects, "uptrend", LAST_BAR, "3")
    row = latest_features(OhlcvStore(objects), "BTC", "1d", as_of=AS_OF)  # the row the predictor serves
    assert record.created_at == AS_OF and record.symbol == "BTC" and record.trend == "uptrend"
    assert (record.model_name, record.model_version, record.bar) == ("BTC_uptrend_model", "3", LAST_BAR)
    assert record.prediction_prob == pytest.approx(0.7) and summary.models[0].probability == pytest.approx(0.7)
    assert record.prediction_input == row.as_dict()
    assert model.columns and all(columns == shuffled for columns in model.columns)  # load-back check and bar
    assert (record.target_pct, record.prediction_window_days, record.interval) == (0.05, 10, "1d")
    assert record.outcome_due == datetime(2024, 6, 11, tzinfo=UTC)  # bar + (10 + 1) days
    assert record.realized is None and record.resolved_at is None
    assert _record(objects, "downtrend", LAST_BAR, "5").prediction_prob == pytest.approx(0.2)


@pytest.mark.parametrize(("interval", "bar"), [("1d", "2024-03-04"), ("1h", "2025-01-06T13:00")])
def test_the_outcome_is_due_exactly_when_the_training_label_of_the_bar_becomes_known(interval: str, bar: str) -> None:
    bars = parse_ohlcv_csv((SAMPLE / interval / "BTC.csv").read_bytes())
    opened = pd.Timestamp(bar, tz="UTC")
    due = outcome_due(opened.to_pydatetime(), interval, 10)

    def label_at(as_of: datetime) -> float:
        close = closed_bars(bars, interval, as_of)["close"]
        return trend_labels(close, 10, 0.05, "uptrend").get(opened, np.nan)

    assert not np.isnan(label_at(due))
    assert np.isnan(label_at(due - timedelta(seconds=1)))


def test_rerunning_the_same_as_of_writes_nothing_and_loads_no_model(
    objects: S3ObjectStore, settings: Settings, registry: FakeRegistry
) -> None:
    predict_champions(settings, registry, objects, as_of=AS_OF)
    stored = _versions(objects)
    loads = list(registry.loads)

    again = predict_champions(settings, registry, objects, as_of=AS_OF + timedelta(hours=3))

    assert [m.status for m in again.models] == ["existing", "existing"]
    assert _versions(objects) == stored and len(stored) == 2  # no new object, no new version
    assert registry.loads == loads  # the key is known before the model is: nothing loaded or scored
    assert _record(objects, "uptrend", LAST_BAR, "3").created_at == AS_OF  # the first run's


def test_a_new_champion_gets_its_own_record_for_the_same_bar(
    objects: S3ObjectStore, settings: Settings, registry: FakeRegistry
) -> None:
    predict_champions(settings, registry, objects, as_of=AS_OF)
    registry.crown("BTC_uptrend_model", "4", StandInModel(0.9))

    summary = predict_champions(settings, registry, objects, as_of=AS_OF)

    assert [m.status for m in summary.models] == ["written", "existing"]
    assert _record(objects, "uptrend", LAST_BAR, "3").prediction_prob == pytest.approx(0.7)
    assert _record(objects, "uptrend", LAST_BAR, "4").prediction_prob == pytest.approx(0.9)


def test_write_record_never_replaces_a_stored_record(objects: S3ObjectStore, settings: Settings) -> None:
    first = _manual_record(prediction_prob=0.6)
    assert write_record(objects, first) is True
    assert write_record(objects, first.model_copy(update={"prediction_prob": 0.1, "realized": True})) is False
    assert _record(objects, "uptrend", first.bar, "1") == first


def test_a_bar_whose_label_the_champion_was_trained_on_is_not_logged(
    objects: S3ObjectStore, settings: Settings, registry: FakeRegistry
) -> None:
    replay = datetime(2024, 1, 20, tzinfo=UTC)  # bar 2024-01-19 <= the training data's last labelled bar

    summary = predict_champions(settings, registry, objects, as_of=replay)

    assert {m.status for m in summary.models} == {"skipped"}
    assert "training data" in summary.models[0].reason
    assert _versions(objects) == [] and registry.loads == []


def test_a_version_trained_after_the_run_is_not_logged_for_a_past_day(
    objects: S3ObjectStore, settings: Settings, registry: FakeRegistry
) -> None:
    """Re-running a past day (a replay, a backfill) with today's champion would log predictions it never
    made live: a version trained as of a later time is skipped."""
    registry.crown("BTC_uptrend_model", "4", StandInModel(0.7), trained_as_of="2025-02-10T00:00:00+00:00")
    past = datetime(2025, 2, 5, 0, 15, tzinfo=UTC)

    summary = predict_champions(settings, registry, objects, as_of=past)

    by_trend = {m.trend: m for m in summary.models}
    assert by_trend["uptrend"].status == "skipped" and "after this run" in by_trend["uptrend"].reason
    assert by_trend["downtrend"].status == "written"  # v5 carries no training time: judged as before
    assert registry.loads == [("BTC_downtrend_model", "5")]
    later = predict_champions(settings, registry, objects, as_of=datetime(2025, 2, 10, 0, 15, tzinfo=UTC))
    assert {m.trend: m.status for m in later.models}["uptrend"] == "written"


def test_one_models_failure_never_blocks_the_others(
    objects: S3ObjectStore, settings: Settings, registry: FakeRegistry
) -> None:
    few_bars = b"".join((SAMPLE / "1d" / "DOGE.csv").read_bytes().splitlines(keepends=True)[:15])
    objects.put_bytes(ohlcv_key("DOGE", "1d"), few_bars)
    registry.crown("BTC_uptrend_model", "3", OSError("artifact download failed"))
    registry.crown("ETH_uptrend_model", "2", StandInModel(0.4))
    registry.crown("SOL_uptrend_model", "1", StandInModel(0.4))  # no bars stored
    registry.crown("DOGE_uptrend_model", "1", StandInModel(0.4))  # too few bars for complete features

    summary = predict_champions(
        settings,
        registry,
        objects,
        as_of=AS_OF,
        symbols=("BTC", "SOL", "DOGE", "ETH"),
    )

    by_model = {f"{m.symbol} {m.trend}": m for m in summary.models}
    assert by_model["BTC uptrend"].status == "failed" and by_model["BTC uptrend"].version == "3"
    assert by_model["BTC uptrend"].reason == (
        "ModelLoadError: BTC_uptrend_model v3 failed to load: OSError: artifact download failed"
    )
    assert by_model["SOL uptrend"].status == "failed" and "DataNotFoundError" in by_model["SOL uptrend"].reason
    assert by_model["DOGE uptrend"].status == "failed"
    assert "FeaturesUnavailableError" in by_model["DOGE uptrend"].reason
    assert by_model["ETH downtrend"].status == "skipped" and "no champion" in by_model["ETH downtrend"].reason
    assert by_model["BTC downtrend"].status == by_model["ETH uptrend"].status == "written"
    assert summary.to_dict()["failed"] == 3 and summary.to_dict()["written"] == 2


class FailingRegistry(FakeRegistry):
    """Raises what it is given for one registered name's champion lookup (MLflow unreachable for it)."""

    def __init__(self, failures: dict[str, Exception]) -> None:
        super().__init__()
        self.failures = failures

    def version_by_alias(self, name: str, alias: str) -> VersionInfo | None:
        if name in self.failures:
            raise self.failures[name]
        return super().version_by_alias(name, alias)


def _unreachable_for(objects: S3ObjectStore, monkeypatch: pytest.MonkeyPatch, key: str) -> None:
    """S3 cannot be reached for ``key`` (reads of every other key go through)."""
    from botocore.exceptions import EndpointConnectionError

    read = objects.get_object

    def get_object(wanted: str, version_id: str | None = None) -> Any:
        if wanted == key:
            raise EndpointConnectionError(endpoint_url=f"https://{BUCKET}.s3.amazonaws.com/{key}")
        return read(wanted, version_id)

    monkeypatch.setattr(objects, "get_object", get_object)


def test_a_transport_error_for_one_model_is_reported_and_the_others_are_predicted(
    objects: S3ObjectStore, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.exceptions import RestException

    registry = FailingRegistry(
        {"BTC_uptrend_model": RestException({"error_code": "TEMPORARILY_UNAVAILABLE", "message": "try later"})}
    )
    for name, version in [("BTC_uptrend_model", "3"), ("BTC_downtrend_model", "5"), ("ETH_uptrend_model", "2")]:
        registry.crown(name, version, StandInModel(0.6))
    _unreachable_for(objects, monkeypatch, ohlcv_key("ETH", "1d"))

    run = run_batch(settings, registry, objects, as_of=AS_OF, symbols=("BTC", "ETH"))

    by_model = {f"{m.symbol} {m.trend}": m for m in run.predictions.models}
    assert by_model["BTC downtrend"].status == "written" and _record(objects, "downtrend", LAST_BAR, "5")
    assert by_model["BTC uptrend"].status == "failed"
    assert by_model["BTC uptrend"].reason == "RestException: TEMPORARILY_UNAVAILABLE: try later"
    assert by_model["ETH uptrend"].status == "failed" and by_model["ETH uptrend"].version == "2"
    assert by_model["ETH uptrend"].reason.startswith("EndpointConnectionError: Could not connect")
    assert by_model["ETH downtrend"].status == "skipped"  # no champion
    assert run.failed_models == ["BTC uptrend", "ETH uptrend"]


# --- checked versions: what the predictor would serve ------------------------------------------------
class ConstantModel:
    """P(trend) = ``p`` for every row, as a fitted sklearn classifier answers."""

    classes_ = np.array([0, 1])
    feature_names_in_ = np.array(FEATURE_NAMES)

    def __init__(self, p: float) -> None:
        self.p = p

    def predict_proba(self, rows: pd.DataFrame) -> np.ndarray:
        return np.tile([1 - self.p, self.p], (len(rows), 1))


class CountingMemoryRegistry(MemoryRegistry):
    """The backtest's registry, counting model loads and load-back sample reads."""

    def __init__(self) -> None:
        super().__init__()
        self.loads: list[tuple[str, str]] = []
        self.sample_reads: list[str] = []

    def load_model(self, name: str, version: str) -> Any:
        self.loads.append((name, version))
        return super().load_model(name, version)

    def load_json_artifact(self, run_id: str, artifact_path: str) -> Any:
        if artifact_path == SAMPLE_ARTIFACT:
            self.sample_reads.append(run_id)
        return super().load_json_artifact(run_id, artifact_path)


def _memory_champion(registry: MemoryRegistry, name: str, model: Any, *, recorded_by: Any = None) -> VersionInfo:
    """Register ``model`` and make it ``name``'s champion; its run's load-back sample holds what
    ``recorded_by`` (default: the model itself) answered at training."""
    sample = pd.DataFrame(
        np.linspace(0, 1, 5 * len(FEATURE_NAMES)).reshape(5, -1),
        columns=list(FEATURE_NAMES),
        index=pd.date_range("2024-01-01", periods=5, freq="D", tz="UTC"),
    )
    with registry.start_run(experiment_id=registry.experiment_id(name), run_name="training", tags={}):
        uri = registry.log_model(model, "constant", sample)
        registry.log_load_back_sample(recorded_by or model, sample)
    info = registry.register(name, uri, encode_tags({"feature_names": list(FEATURE_NAMES)}))
    registry.move_champion(name, info.version)
    return info


def test_a_champion_failing_its_load_back_check_is_failed_logs_nothing_and_is_not_reloaded(
    objects: S3ObjectStore, settings: Settings
) -> None:
    """The version scores 0.7 where its training run recorded 0.9: the API would refuse it, so the log must
    not hold its prediction. The other model goes on; the refusal holds for the next day's run unloaded."""
    registry = CountingMemoryRegistry()
    _memory_champion(registry, "BTC_uptrend_model", ConstantModel(0.7), recorded_by=ConstantModel(0.9))
    _memory_champion(registry, "BTC_downtrend_model", ConstantModel(0.2))
    models = CheckedVersions.of(registry)

    days = [predict_champions(settings, registry, objects, as_of=AS_OF + n * DAY, models=models) for n in (0, 1)]

    for summary in days:
        by_trend = {m.trend: m for m in summary.models}
        assert (by_trend["uptrend"].status, by_trend["uptrend"].version) == ("failed", "1")
        assert by_trend["uptrend"].reason == (
            "ModelLoadError: BTC_uptrend_model v1 failed its load-back check: "
            "probabilities differ from training by up to 0.2"
        )
        assert by_trend["downtrend"].status == "written"
    logged = [key for key, _ in _versions(objects)]
    assert logged and all("model=BTC_downtrend" in key for key in logged)  # nothing for the refused version
    assert registry.loads.count(("BTC_uptrend_model", "1")) == 1  # refused once, remembered


def test_a_checked_version_is_loaded_and_checked_once_and_logs_what_the_api_serves(
    objects: S3ObjectStore, settings: Settings
) -> None:
    registry = CountingMemoryRegistry()
    uptrend = _memory_champion(registry, "BTC_uptrend_model", ConstantModel(0.7))
    _memory_champion(registry, "BTC_downtrend_model", ConstantModel(0.2))
    models = CheckedVersions.of(registry)

    runs = [predict_champions(settings, registry, objects, as_of=AS_OF + n * DAY, models=models) for n in (0, 1)]

    assert [[m.status for m in run.models] for run in runs] == [["written", "written"], ["written", "written"]]
    assert sorted(registry.loads) == [("BTC_downtrend_model", "1"), ("BTC_uptrend_model", "1")]  # day 2: hits
    assert len(registry.sample_reads) == 2  # one load-back check per version, not per prediction
    served = ModelCache(RegistrySource(registry), background=False).get("BTC", "uptrend")
    row = latest_features(OhlcvStore(objects), "BTC", "1d", as_of=AS_OF)
    assert served is not None and served.version == uptrend.version
    assert _record(objects, "uptrend", LAST_BAR, "1").prediction_prob == served.probability(row)


def test_checked_versions_keep_each_models_last_version_and_every_refusal() -> None:
    loads: list[str] = []

    def load(info: VersionInfo) -> CheckedModel:
        loads.append(info.version)
        if info.version == "3":
            raise OSError("artifact download failed")
        model = ConstantModel(0.5)
        return CheckedModel(model, lambda rows: np.full(len(rows), 0.5), FEATURE_NAMES)

    def version(number: str) -> VersionInfo:
        return VersionInfo("BTC_uptrend_model", number, f"run-{number}", {}, ())

    versions = CheckedVersions(load)
    first = versions.get(version("1"))
    assert versions.get(version("1")) is first
    versions.get(version("2"))  # replaces v1: a champion let go is not held
    for _ in range(2):
        with pytest.raises(ModelLoadError, match="BTC_uptrend_model v3 failed to load: OSError: artifact download"):
            versions.get(version("3"))
    assert versions.get(version("1")) is not first  # loaded again (a rollback)
    assert loads == ["1", "2", "3", "1"]
    assert versions.refusals("BTC_uptrend_model") == {
        "3": "BTC_uptrend_model v3 failed to load: OSError: artifact download failed"
    }
    assert versions.refusal("BTC_uptrend_model", "2") is None


# --- outcomes ------------------------------------------------------------------------------------------
def test_outcomes_resolve_once_due_with_the_training_label_of_the_bar(
    objects: S3ObjectStore, settings: Settings, registry: FakeRegistry
) -> None:
    days = [datetime(2024, 4, 1, 0, 15, tzinfo=UTC) + i * DAY for i in range(15)]
    for day in days:
        predict_champions(settings, registry, objects, as_of=day)
    bars = parse_ohlcv_csv((SAMPLE / "1d" / "BTC.csv").read_bytes())
    late = datetime(2024, 5, 1, tzinfo=UTC)

    summary = resolve_outcomes(settings, objects, as_of=late, since=days[0] - 3 * DAY)

    assert len(summary.resolved) == 30 and summary.unresolved == [] and summary.errors == {}
    close = closed_bars(bars, "1d", late)["close"]
    realized = []
    for trend in ("uptrend", "downtrend"):
        labels = trend_labels(close, 10, 0.05, trend)
        for record in read_records(objects, "BTC", trend, since=days[0] - 3 * DAY, until=late, interval="1d"):
            assert record.realized == bool(labels.loc[pd.Timestamp(record.bar)])
            assert record.realized_pct == pytest.approx(forward_sma_change(close, 10).loc[pd.Timestamp(record.bar)])
            assert record.resolved_at == late
            realized.append(record.realized)
    assert set(realized) == {True, False}, "a period with both outcomes, or the comparison proves little"


def test_a_record_is_left_alone_until_its_outcome_is_due(
    objects: S3ObjectStore, settings: Settings, registry: FakeRegistry
) -> None:
    predict_champions(settings, registry, objects, as_of=AS_OF)
    due = datetime(2024, 6, 11, tzinfo=UTC)

    early = resolve_outcomes(settings, objects, as_of=due - timedelta(seconds=1))
    assert (early.not_due, early.resolved) == (2, [])
    assert _record(objects, "uptrend", LAST_BAR, "3").realized is None

    on_time = resolve_outcomes(settings, objects, as_of=due)
    assert len(on_time.resolved) == 2 and _record(objects, "uptrend", LAST_BAR, "3").resolved_at == due


def test_a_resolved_outcome_survives_later_batch_and_resolver_runs(
    objects: S3ObjectStore, settings: Settings, registry: FakeRegistry
) -> None:
    predict_champions(settings, registry, objects, as_of=AS_OF)
    due = datetime(2024, 6, 11, tzinfo=UTC)
    resolve_outcomes(settings, objects, as_of=due)
    resolved = _record(objects, "uptrend", LAST_BAR, "3")
    assert resolved.realized is not None
    stored = _versions(objects)

    replay = run_batch(settings, registry, objects, as_of=AS_OF)  # the same day again
    later = resolve_outcomes(settings, objects, as_of=due + 2 * DAY)

    assert [m.status for m in replay.predictions.models] == ["existing", "existing"]
    assert (later.resolved, later.already_resolved) == ([], 2)
    assert _record(objects, "uptrend", LAST_BAR, "3") == resolved
    assert _versions(objects) == stored


def test_a_due_record_without_its_bars_stays_unresolved_with_the_reason(
    objects: S3ObjectStore, settings: Settings
) -> None:
    # SOL has no stored bars; BTC's bar 10 days after 02-15 is due at 02-26 but not stored (the data ends 02-20).
    orphan = _manual_record(symbol="SOL", model_name="SOL_uptrend_model", bar=datetime(2025, 2, 10, tzinfo=UTC))
    gap = _manual_record(bar=datetime(2025, 2, 15, tzinfo=UTC))
    write_record(objects, orphan)
    write_record(objects, gap)
    as_of = datetime(2025, 3, 1, tzinfo=UTC)

    summary = resolve_outcomes(settings, objects, as_of=as_of, symbols=("SOL", "BTC"))

    reasons = {u.key: u.reason for u in summary.unresolved}
    assert "DataNotFoundError" in reasons[prediction_key("SOL", "uptrend", orphan.bar, "1")]
    assert "not among the stored closed bars yet" in reasons[prediction_key("BTC", "uptrend", gap.bar, "1")]
    assert summary.resolved == [] and summary.errors == {}
    assert _record(objects, "uptrend", gap.bar, "1").realized is None


def test_a_record_changed_during_resolution_is_not_overwritten(
    objects: S3ObjectStore, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = _manual_record(bar=datetime(2024, 4, 10, tzinfo=UTC))  # due 04-21
    write_record(objects, record)
    real_read = batch_predict.read_record

    def stale_read(store: S3ObjectStore, key: str) -> tuple[PredictionRecord, str]:
        read, _ = real_read(store, key)
        return read, '"an-etag-from-before-another-writer"'

    monkeypatch.setattr(batch_predict, "read_record", stale_read)

    summary = resolve_outcomes(settings, objects, as_of=datetime(2024, 5, 1, tzinfo=UTC))

    assert summary.resolved == [] and "changed concurrently" in summary.unresolved[0].reason
    assert _record(objects, "uptrend", record.bar, "1") == record


def test_the_performance_trigger_reads_the_resolved_outcomes(
    objects: S3ObjectStore, settings: Settings, registry: FakeRegistry
) -> None:
    days = [datetime(2024, 4, 1, 0, 15, tzinfo=UTC) + i * DAY for i in range(5)]
    for day in days:
        run_batch(settings, registry, objects, as_of=day)
    as_of = days[-1] + 12 * DAY
    resolve_outcomes(settings, objects, as_of=as_of)

    result = _performance(settings, objects, "BTC", "downtrend", as_of, 10, "1d")
    records = read_records(objects, "BTC", "downtrend", since=days[0] - 2 * DAY, until=as_of, interval="1d")
    correct, total = live_accuracy_counts(records)

    assert total == 5 and result.extra == {"correct": correct, "total": total}
    assert result.status == "insufficient_data"  # 5 < the 100 the rule needs before it may fire


def test_the_default_resolve_window_covers_what_the_performance_trigger_reads(settings: Settings) -> None:
    as_of = datetime(2024, 6, 1, tzinfo=UTC)
    trigger_reads_from = as_of - timedelta(days=settings.perf_window_days) - settings.prediction_window * DAY
    assert resolve_window_start(settings, as_of) <= trigger_reads_from


# --- the Lambda handler --------------------------------------------------------------------------------
class Context:
    function_name = "retrain-batch-predict"
    memory_limit_in_mb = 2048
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:retrain-batch-predict"
    aws_request_id = "test-request"


def test_the_handler_runs_on_the_schedules_event_time_and_reports_metrics(
    objects: S3ObjectStore,
    registry: FakeRegistry,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _handler_environment(monkeypatch, symbols="BTC,ETH")
    import functions.batch_predict.app as app

    monkeypatch.setattr(app, "Registry", lambda uri: registry)
    event = json.loads((Path(__file__).resolve().parents[1] / "events" / "schedule.json").read_text())
    event["time"] = AS_OF.isoformat()

    first = app.handler(event, Context())
    first_metrics = emitted_metrics(capsys.readouterr().out)
    second = app.handler(event, Context())
    second_metrics = emitted_metrics(capsys.readouterr().out)

    assert first["as_of"] == AS_OF.isoformat() and first["failed_models"] == []
    assert first["predictions"]["written"] == 2 and first["predictions"]["skipped"] == 2  # ETH: no champion
    assert (second["predictions"]["written"], second["predictions"]["existing"]) == (0, 2)
    assert first_metrics["PredictionsWritten"] == 2 and first_metrics["ModelsFailed"] == 0
    assert (second_metrics["PredictionsWritten"], second_metrics["PredictionsExisting"]) == (0, 2)
    with pytest.raises(ValidationError, match="upper-case tickers"):
        app.handler({**event, "detail": {"symbols": ["btc"]}}, Context())


def test_the_handler_logs_each_failed_model_by_name_and_counts_it(
    objects: S3ObjectStore, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import io

    from mlflow.exceptions import RestException

    _handler_environment(monkeypatch, symbols="BTC")
    import functions.batch_predict.app as app

    registry = FailingRegistry(
        {"BTC_uptrend_model": RestException({"error_code": "INTERNAL_ERROR", "message": "down"})}
    )
    registry.crown("BTC_downtrend_model", "5", StandInModel(0.2))
    monkeypatch.setattr(app, "Registry", lambda uri: registry)
    logs = io.StringIO()
    monkeypatch.setattr(app.logger.registered_handler, "stream", logs)  # bound to the stdout of import time
    event = json.loads((Path(__file__).resolve().parents[1] / "events" / "schedule.json").read_text())
    event["time"] = AS_OF.isoformat()

    result = app.handler(event, Context())

    assert result["failed_models"] == ["BTC uptrend"] and result["predictions"]["written"] == 1
    records = [json.loads(line) for line in logs.getvalue().splitlines()]
    [failure] = [r for r in records if r["message"] == "batch prediction failed for a model"]
    assert failure["level"] == "ERROR" and failure["model"] == "BTC uptrend"
    assert failure["error"] == "RestException: INTERNAL_ERROR: down"
    assert emitted_metrics(capsys.readouterr().out)["ModelsFailed"] == 1


def test_importing_the_new_modules_has_no_side_effects(tmp_path: Path) -> None:
    code = GUARDS + "import common.serving.batch_predict, functions.batch_predict.app, retrain.batch"
    result = _run(code, tmp_path)
    assert result.returncode == 0, _report(result)


# --- the CLI command (retrain/batch.py) ----------------------------------------------------------------
def test_replay_days_runs_every_day_at_the_time_of_day_of_the_last() -> None:
    last = datetime(2024, 4, 3, 0, 15, tzinfo=UTC)
    assert replay_days(None, last) == [last]
    assert replay_days(datetime(2024, 4, 1, tzinfo=UTC), last) == [last - 2 * DAY, last - DAY, last]
    with pytest.raises(RetrainError, match="after --date"):
        replay_days(datetime(2024, 4, 4, tzinfo=UTC), last)


def test_the_command_replays_days_loading_each_champion_once(
    objects: S3ObjectStore,
    registry: FakeRegistry,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import argparse

    import common.registry.mlflow_registry

    for name, value in {
        "RETRAIN_DATA_BUCKET": BUCKET,
        "RETRAIN_SYMBOLS": "BTC",
        "MLFLOW_TRACKING_URI": "http://x:1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(common.registry.mlflow_registry, "Registry", lambda uri: registry)
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(), lambda text: datetime.fromisoformat(text).replace(tzinfo=UTC))
    args = parser.parse_args(["predict-batch", "--from", "2024-04-01", "--date", "2024-04-03", "--json"])

    assert args.run(args) == 0
    runs = _documents(capsys.readouterr().out)
    assert [r["as_of"] for r in runs] == [f"2024-04-0{d}T00:00:00+00:00" for d in (1, 2, 3)]
    assert [r["predictions"]["written"] for r in runs] == [2, 2, 2]
    assert sorted(registry.loads) == [("BTC_downtrend_model", "5"), ("BTC_uptrend_model", "3")]
    assert args.run(args) == 0  # the same replay again: nothing new
    again = _documents(capsys.readouterr().out)
    assert [r["predictions"]["existing"] for r in again] == [2, 2, 2]


# --- helpers -------------------------------------------------------------------------------------------
def _manual_record(**changes: Any) -> PredictionRecord:
    bar = changes.pop("bar", datetime(2024, 3, 1, tzinfo=UTC))
    values: dict[str, Any] = {
        "created_at": bar + DAY,
        "symbol": "BTC",
        "trend": "uptrend",
        "model_name": "BTC_uptrend_model",
        "model_version": "1",
        "bar": bar,
        "prediction_prob": 0.6,
        "prediction_input": dict.fromkeys(FEATURE_NAMES, 0.0),
        "target_pct": 0.05,
        "prediction_window_days": 10,
        "outcome_due": outcome_due(bar, "1d", 10),
        "interval": "1d",
    }
    return PredictionRecord(**{**values, **changes})


def _documents(text: str) -> list[dict[str, Any]]:
    """The JSON documents printed one after the other (one per replayed day)."""
    decoder, documents, position = json.JSONDecoder(), [], 0
    while position < len(text.rstrip()):
        document, position = decoder.raw_decode(text, position)
        documents.append(document)
        position = len(text) - len(text[position:].lstrip())
    return documents


def _handler_environment(monkeypatch: pytest.MonkeyPatch, *, symbols: str) -> None:
    """What Lambda gives the batch-prediction handler, pointed at the moto bucket; settings re-read."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "RETRAIN_DATA_BUCKET": BUCKET,
        "RETRAIN_SYMBOLS": symbols,
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:1",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "RetrainTest",
        "POWERTOOLS_SERVICE_NAME": "batch-predict",
    }.items():
        monkeypatch.setenv(name, value)
    from common.core.settings import get_settings

    get_settings.cache_clear()
