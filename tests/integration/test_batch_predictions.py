"""Batch predictions on the local stack: the function invoked through moto's Lambda API with EventBridge
scheduled events, a champion in the real MLflow server, bars in the bucket. Repeated runs keep exactly one
record per (model, bar, version); once the horizon has passed, outcomes are filled in and the trigger
checker counts them.

LTC is this file's own symbol (no other test stores its bars or trains it); its uptrend champion is a
small logistic regression registered here (seconds, not a training run), its downtrend has none.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from common.aws.storage import S3ObjectStore
from common.core.keys import predictions_prefix
from common.core.settings import load_settings
from common.data.bar_store import OhlcvStore
from common.data.features import FEATURE_NAMES, labelled_features
from common.data.ohlcv import closed_mask, parse_ohlcv_csv
from common.data.prediction_log import live_accuracy_counts, read_records
from common.data.targets import trend_labels
from common.loop.check import run_check
from common.registry.mlflow_registry import Registry
from common.registry.promotion import encode_tags
from tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.integration

SYMBOL, TREND = "LTC", "uptrend"
NAME = f"{SYMBOL}_{TREND}_model"
TRAINED_UNTIL = datetime(2024, 12, 31, tzinfo=UTC)
FIRST_RUN = datetime(2025, 1, 20, 0, 15, tzinfo=UTC)  # predicts the 2025-01-19 bar
DAY = timedelta(days=1)
SAMPLE = PROJECT_ROOT / "sample_data" / "ohlcv" / "1d" / f"{SYMBOL}.csv"


@pytest.fixture(scope="module")
def champion(stack) -> str:
    """LTC's bars in the bucket and a champion for LTC uptrend trained on labels up to TRAINED_UNTIL."""
    import mlflow
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    bars = parse_ohlcv_csv(SAMPLE.read_bytes())
    OhlcvStore(S3ObjectStore(stack.info.bucket)).append(SYMBOL, "1d", bars, as_of=datetime(2025, 2, 21, tzinfo=UTC))
    data = labelled_features(
        bars.loc[closed_mask(bars.index, "1d", TRAINED_UNTIL)], horizon=10, up_pct=0.05, down_pct=0.05
    ).dropna()
    X, y = data[list(FEATURE_NAMES)], data[f"{TREND}_label"].astype(int)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
    registry = Registry(stack.info.mlflow_uri)
    with mlflow.start_run(experiment_id=registry.experiment_id(f"{SYMBOL}_{TREND}"), run_name="batch-predict-test"):
        uri = Registry.log_model(model, "logistic", X.tail(20))
        Registry.log_load_back_sample(model, X.tail(20))  # batch predictions score only checked versions
    tags = {
        "symbol": SYMBOL,
        "trend": TREND,
        "interval": "1d",
        "prediction_window": 10,
        "target_pct": 0.05,
        "feature_names": list(FEATURE_NAMES),
        "data_range": {"first": X.index[0].isoformat(), "last": X.index[-1].isoformat()},
    }
    version = registry.register(NAME, uri, encode_tags(tags)).version
    registry.move_champion(NAME, version)
    return version


def _invoke(stack, at: datetime) -> dict:
    event = json.loads((PROJECT_ROOT / "tests" / "events" / "schedule.json").read_text())
    event["time"] = at.isoformat().replace("+00:00", "Z")
    event["detail"] = {"symbols": [SYMBOL]}
    response = boto3.client("lambda").invoke(
        FunctionName=stack.info.functions["BatchPredictFunction"], Payload=json.dumps(event)
    )
    body = json.loads(response["Payload"].read())
    assert "FunctionError" not in response, body
    return body


def _record_objects(stack) -> list[tuple[str, str]]:
    """(key, version id) of every stored object version under LTC uptrend's records."""
    listing = boto3.client("s3").list_object_versions(
        Bucket=stack.info.bucket, Prefix=predictions_prefix(SYMBOL, TREND)
    )
    return sorted((v["Key"], v["VersionId"]) for v in listing.get("Versions", []))


def test_repeated_runs_keep_one_record_per_model_bar_and_version(stack, champion):
    first = _invoke(stack, FIRST_RUN)
    stored = _record_objects(stack)
    second = _invoke(stack, FIRST_RUN)

    by_trend = {m["trend"]: m for m in first["predictions"]["models"]}
    assert by_trend["uptrend"]["status"] == "written" and by_trend["uptrend"]["version"] == champion
    assert by_trend["uptrend"]["bar"] == "2025-01-19T00:00:00+00:00"
    assert by_trend["downtrend"]["status"] == "skipped"  # LTC downtrend has no champion
    assert [m["status"] for m in second["predictions"]["models"]] == ["existing", "skipped"]
    assert first["failed_models"] == second["failed_models"] == []
    key = f"{predictions_prefix(SYMBOL, TREND)}bar=2025-01-19T00:00/v{champion}.json"
    assert [k for k, _ in stored] == [key]
    assert _record_objects(stack) == stored  # the second run wrote no object and no new version

    [record] = read_records(
        S3ObjectStore(stack.info.bucket), SYMBOL, TREND, since=FIRST_RUN - 2 * DAY, until=FIRST_RUN, interval="1d"
    )
    assert record.created_at == FIRST_RUN and record.model_version == champion
    assert record.outcome_due == datetime(2025, 1, 30, tzinfo=UTC) and record.realized is None


def test_outcomes_are_resolved_past_the_horizon_and_the_trigger_checker_counts_them(stack, champion):
    for day in range(1, 4):  # three more daily runs: bars 01-20 .. 01-22
        assert _invoke(stack, FIRST_RUN + day * DAY)["predictions"]["written"] == 1
    later = datetime(2025, 2, 3, 0, 15, tzinfo=UTC)  # every bar up to 01-22 is due (01-22 + 11 days)

    result = _invoke(stack, later)
    again = _invoke(stack, later)

    assert result["outcomes"]["resolved"] == 4 and result["outcomes"]["unresolved"] == []
    assert again["outcomes"]["resolved"] == 0 and again["outcomes"]["already_resolved"] == 4
    objects = S3ObjectStore(stack.info.bucket)
    records = read_records(objects, SYMBOL, TREND, since=FIRST_RUN - 2 * DAY, until=FIRST_RUN + 3 * DAY, interval="1d")
    bars = parse_ohlcv_csv(SAMPLE.read_bytes())
    close = bars.loc[closed_mask(bars.index, "1d", later), "close"]
    labels = trend_labels(close, 10, 0.05, TREND)
    assert [r.realized for r in records] == [bool(labels.loc[r.bar]) for r in records]
    assert {r.resolved_at for r in records} == {later}

    correct, total = live_accuracy_counts(records)
    settings = load_settings()
    check = run_check(
        settings, Registry(settings.tracking_uri), objects, as_of=later, start_execution=None, symbols=(SYMBOL,)
    )
    [decision] = [d for d in check.decisions if d.trend == TREND]
    [performance] = [t for t in decision.triggers if t.trigger == "performance"]
    assert total == 4 and performance.extra == {"correct": correct, "total": total}
    assert performance.status == "insufficient_data"  # 4 resolved predictions, the rule needs 100
