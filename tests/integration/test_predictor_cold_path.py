"""The predictor's cold path (issue 18, "a predictor that starts fast"), against the real MLflow server and S3.

A LightGBM champion's first prediction in a fresh Lambda process imports neither scikit-learn, SciPy, MLflow
nor the lightgbm package (the native model file through LightGBM's C library, the registry over MLflow's REST
API), and answers what the model's ``predict_proba`` answers; a suspended champion is still refused there.
A version logged without a native file (before the change) still loads through its pickle. The REST reader
answers the registry's reads as the MLflow client does.

AVAX is this file's own symbol: no other test stores or trains it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime

import lightgbm
import mlflow
import numpy as np
import pytest

from common.aws.storage import S3ObjectStore
from common.data.bar_store import OhlcvStore
from common.data.features import FEATURE_NAMES, labelled_features
from common.data.ohlcv import parse_ohlcv_csv
from common.registry.mlflow_registry import CHAMPION, SAMPLE_ARTIFACT, Registry
from common.registry.mlflow_rest import RestRegistryReader, serving_registry
from common.registry.promotion import SUSPENDED_TAG, encode_tags
from common.serving.feature_rows import latest_features
from common.serving.model_cache import RegistrySource
from common.training.native_models import LIGHTGBM_ARTIFACT, NATIVE_MODEL_TAG, LightGBMModel, XGBoostModel
from tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.integration

SYMBOL, TREND = "AVAX", "uptrend"
NAME = f"{SYMBOL}_{TREND}_model"
AS_OF = datetime(2025, 2, 21, tzinfo=UTC)
HEAVY = ("sklearn", "scipy", "mlflow", "lightgbm")

# What Lambda does: import the handler module (init), answer one event (the first invoke); then what was imported.
COLD_START = """
import json, sys
from functions.predictor.app import handler

class Context:
    function_name, memory_limit_in_mb, aws_request_id = "PredictorFunction", 1024, "cold-path-test"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:PredictorFunction"

answers = [handler(json.loads(event), Context()) for event in sys.argv[1:]]
print(json.dumps({"answers": answers, "modules": sorted({m.split(".")[0] for m in sys.modules})}))
"""


def _model_and_sample():
    bars = parse_ohlcv_csv((PROJECT_ROOT / "sample_data" / "ohlcv" / "1d" / f"{SYMBOL}.csv").read_bytes())
    data = labelled_features(bars.loc[bars.index < AS_OF], horizon=10, up_pct=0.05, down_pct=0.05).dropna()
    X, y = data[list(FEATURE_NAMES)], data[f"{TREND}_label"].astype(int)
    return lightgbm.LGBMClassifier(n_estimators=40, num_leaves=7, random_state=4, verbose=-1).fit(X, y), X.tail(20)


def _register(registry: Registry, model, sample, *, native: bool, classifier: str = "lightgbm") -> str:
    with mlflow.start_run(experiment_id=registry.experiment_id(NAME), run_name=f"cold-path-native-{native}"):
        if native:
            uri = Registry.log_model(model, classifier, sample)
        else:  # as log_model logged every version before the native file existed
            uri = mlflow.sklearn.log_model(model, name="model", serialization_format="cloudpickle").model_uri
        Registry.log_load_back_sample(model, sample)
    tags = {"feature_names": list(FEATURE_NAMES), "symbol": SYMBOL, "trend": TREND, "classifier": classifier}
    return registry.register(NAME, uri, encode_tags(tags)).version


@pytest.fixture(scope="module")
def champion(stack):
    """AVAX's bars stored, a LightGBM version logged the old way (pickle only) and the champion logged now."""
    bars = parse_ohlcv_csv((PROJECT_ROOT / "sample_data" / "ohlcv" / "1d" / f"{SYMBOL}.csv").read_bytes())
    OhlcvStore(S3ObjectStore(stack.info.bucket)).append(SYMBOL, "1d", bars, as_of=AS_OF)
    registry = Registry(stack.info.mlflow_uri)
    model, sample = _model_and_sample()
    legacy = _register(registry, model, sample, native=False)
    version = _register(registry, model, sample, native=True)
    registry.move_champion(NAME, version)
    return registry, model, version, legacy


def _event(path: str, query: dict[str, str]) -> str:
    event = json.loads((PROJECT_ROOT / "tests" / "events" / "http_api_prediction.json").read_text())
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["rawQueryString"] = "&".join(f"{k}={v}" for k, v in query.items())
    event["queryStringParameters"] = query
    return json.dumps(event)


def _cold_start(stack, *events: str) -> dict:
    env = {
        **os.environ,
        **stack.info.client_environment(),
        "RETRAIN_SYMBOLS": SYMBOL,
        "RETRAIN_AS_OF": AS_OF.isoformat(),
        "AWS_LAMBDA_FUNCTION_NAME": "PredictorFunction",
        "PYTHONPATH": str(PROJECT_ROOT),
    }
    done = subprocess.run(
        [sys.executable, "-c", COLD_START, *events],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_lightgbm_champions_first_prediction_imports_no_sklearn_scipy_mlflow_nor_lightgbm(stack, champion) -> None:
    _, model, version, _ = champion
    result = _cold_start(stack, _event("/prediction", {"symbol": SYMBOL, "trend_type": TREND}))
    answer = result["answers"][0]
    assert answer["statusCode"] == 200, answer
    body = json.loads(answer["body"])
    assert body["model_version"] == version
    # sklearn, scipy, mlflow and the lightgbm package are installed here (the project's whole set): not imported
    assert not set(HEAVY) & set(result["modules"]), set(HEAVY) & set(result["modules"])
    store = OhlcvStore(S3ObjectStore(stack.info.bucket))
    row = latest_features(store, SYMBOL, "1d", as_of=AS_OF)
    expected = float(model.predict_proba(row.values)[0, 1])
    assert abs(body["prediction_probabilities"] - expected) <= 1e-12
    assert body["as_of"].startswith(row.bar.date().isoformat())


def test_a_suspended_champion_is_refused_on_the_cold_path_and_described_as_suspended(stack, champion) -> None:
    registry, _, version, _ = champion
    suspension = json.dumps({"since": "2025-02-20T00:00:00+00:00", "why": "cold-path test", "by": "operator"})
    registry.set_version_tags(NAME, version, {SUSPENDED_TAG: suspension})
    try:
        result = _cold_start(
            stack,
            _event("/prediction", {"symbol": SYMBOL, "trend_type": TREND}),
            _event(f"/models/{SYMBOL}/{TREND}", {}),
        )
    finally:
        registry.delete_version_tag(NAME, version, SUSPENDED_TAG)
    refused, described = result["answers"]
    assert refused["statusCode"] == 404 and "cold-path test" in json.loads(refused["body"])["detail"]
    summary = json.loads(described["body"])
    assert described["statusCode"] == 200 and summary["status"] == "suspended"
    assert summary["model_version"] == version and "cold-path test" in summary["suspended_reason"]


def test_the_native_file_and_the_pickle_load_to_the_same_checked_probabilities(stack, champion) -> None:
    registry, _, version, legacy = champion
    source = RegistrySource(serving_registry(stack.info.mlflow_uri))
    native = source.load(registry.version(NAME, version))
    pickled = source.load(registry.version(NAME, legacy))  # no native file: the pickle, as before
    assert isinstance(native.model, LightGBMModel)
    assert isinstance(pickled.model, lightgbm.LGBMClassifier)
    sample = registry.load_json_artifact(registry.version(NAME, version).run_id, SAMPLE_ARTIFACT)
    rows = np.asarray(sample["rows"], dtype="float64")
    expected = np.asarray(sample["proba"])
    for checked in (native, pickled):
        np.testing.assert_allclose(checked.score(rows), expected, rtol=0, atol=1e-12)
        np.testing.assert_allclose(checked.score(rows[:1]), expected[:1], rtol=0, atol=1e-12)


def test_an_xgboost_version_loads_from_its_native_json_to_the_checked_probabilities(stack, champion) -> None:
    import xgboost

    registry = champion[0]
    _, sample = _model_and_sample()
    bars = parse_ohlcv_csv((PROJECT_ROOT / "sample_data" / "ohlcv" / "1d" / f"{SYMBOL}.csv").read_bytes())
    data = labelled_features(bars.loc[bars.index < AS_OF], horizon=10, up_pct=0.05, down_pct=0.05).dropna()
    model = xgboost.XGBClassifier(n_estimators=30, max_depth=3, n_jobs=1, random_state=4)
    model.fit(data[list(FEATURE_NAMES)], data[f"{TREND}_label"].astype(int))
    version = _register(registry, model, sample, native=True, classifier="xgboost")
    checked = RegistrySource(serving_registry(stack.info.mlflow_uri)).load(registry.version(NAME, version))
    assert isinstance(checked.model, XGBoostModel)
    np.testing.assert_array_equal(checked.score(sample.to_numpy()), model.predict_proba(sample)[:, 1])


def test_the_rest_reader_answers_the_registry_reads_as_the_mlflow_client(stack, champion) -> None:
    registry, _, version, legacy = champion
    reader = serving_registry(stack.info.mlflow_uri)
    assert isinstance(reader, RestRegistryReader)
    assert reader.version_by_alias(NAME, CHAMPION) == registry.version_by_alias(NAME, CHAMPION)
    assert reader.version_by_alias(NAME, "no-such-alias") is None is registry.version_by_alias(NAME, "no-such-alias")
    assert reader.version_by_alias("NOPE_uptrend_model", CHAMPION) is None
    for v in (version, legacy):
        run_id = registry.version(NAME, v).run_id
        assert reader.run_tags(run_id) == registry.run_tags(run_id)
        assert reader.load_json_artifact(run_id, SAMPLE_ARTIFACT) == registry.load_json_artifact(
            run_id, SAMPLE_ARTIFACT
        )
    run_id = registry.version(NAME, version).run_id
    assert json.loads(reader.run_tags(run_id)[NATIVE_MODEL_TAG]) == {"format": "lightgbm", "path": LIGHTGBM_ARTIFACT}
    assert NATIVE_MODEL_TAG not in reader.run_tags(registry.version(NAME, legacy).run_id)  # logged before: none
    assert reader.artifact_bytes(run_id, LIGHTGBM_ARTIFACT) == registry.artifact_bytes(run_id, LIGHTGBM_ARTIFACT)
