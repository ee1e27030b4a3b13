"""The training state machine end to end on the local stack: the real ASL in moto's interpreter, the real
handlers, a real MLflow server with artifacts in moto S3. A reduced zoo keeps it fast (conftest)."""

from __future__ import annotations

import json

import boto3
import mlflow
import pytest
from mlflow import MlflowClient

from common.core.keys import dataset_manifest_key
from common.registry.mlflow_registry import CHAMPION, PREVIOUS
from common.registry.promotion import decode_tags
from retrain.executions import run_execution
from tests.integration.conftest import clean_environment, run_cli

pytestmark = pytest.mark.integration

NAME = "XRP_uptrend_model"  # no other test trains it: the first run is the first champion
PERMISSIVE_GATE = {
    "RETRAIN_GATE_MIN_POSITIVE_ACCURACY": "0",
    "RETRAIN_GATE_MIN_NEGATIVE_ACCURACY": "0",
    "RETRAIN_GATE_MIN_OVERALL_SCORE": "0",
}


@pytest.fixture
def permissive_gate(monkeypatch: pytest.MonkeyPatch) -> None:
    """The handlers run in this process: a gate every candidate passes makes promotion deterministic."""
    from common.core.settings import get_settings

    for name, value in PERMISSIVE_GATE.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()


def _execute(stack, name: str, models: list[dict], as_of: str) -> dict:
    sfn = boto3.client("stepfunctions")
    arn = stack.info.state_machines["TrainingStateMachine"]
    result = run_execution(sfn, arn, name, {"models": models, "as_of": as_of}, timeout_s=300)
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    return result.output


def _client(stack) -> MlflowClient:
    mlflow.set_tracking_uri(stack.info.mlflow_uri)
    return MlflowClient(stack.info.mlflow_uri)


def _outbox_text(stack, output: dict) -> str:
    uri = output["notification"]["delivered_to"][0]
    key = uri.split(stack.info.bucket + "/", 1)[1]
    return json.loads(boto3.client("s3").get_object(Bucket=stack.info.bucket, Key=key)["Body"].read())["text"]


@pytest.fixture(scope="module")
def first_run(stack):
    """`retrain train XRP uptrend --end 2024-12-31` as a user runs it, with a gate every candidate passes."""
    import os

    from common.core.settings import get_settings

    env = clean_environment(**stack.info.client_environment(), RETRAIN_SYMBOLS="BTC,ETH,XRP")
    before = _champion(stack)  # None: no other test trains XRP uptrend
    saved = {k: os.environ.get(k) for k in PERMISSIVE_GATE}
    os.environ.update(PERMISSIVE_GATE)
    get_settings.cache_clear()
    try:
        done = run_cli("train", "XRP", "uptrend", "--end", "2024-12-31", "--name", "it-train-1", "--json", env=env)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        get_settings.cache_clear()
    assert done.returncode == 0, done.stderr + done.stdout
    return {**json.loads(done.stdout), "champion_before": before}


def _champion(stack) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return _client(stack).get_model_version_by_alias(NAME, CHAMPION).version
    except MlflowException:
        return None


def test_first_training_registers_and_promotes_a_champion(stack, first_run):
    (outcome,) = first_run["results"]
    assert first_run["champion_before"] is None
    assert outcome["status"] == "promoted", outcome
    assert outcome["version"] == outcome["champion_version"] and outcome["previous_version"] is None
    assert outcome["classifier"] in {"lightgbm", "ridge"}
    client = _client(stack)
    champion = client.get_model_version_by_alias(NAME, CHAMPION)
    assert champion.version == outcome["version"]
    tags = decode_tags(champion.tags)
    assert tags["symbol"] == "XRP" and tags["trend"] == "uptrend" and tags["prediction_window"] == 10
    assert isinstance(tags["metrics"]["overall_score"], float) and len(tags["feature_names"]) == 19
    assert set(tags["feature_importance"]) == set(tags["feature_names"])
    assert tags["data_range"]["last"].startswith("2024-12")  # labels need 10 more bars: last labelled bar < end
    assert f"XRP uptrend: new champion v{outcome['version']}" in _outbox_text(stack, first_run)


def test_mlflow_holds_a_parent_run_with_a_nested_run_per_classifier(stack, first_run):
    client = _client(stack)
    experiment = client.get_experiment_by_name("XRP_uptrend")
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.`retrain.execution_id` = 'it-train-1'")
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and sorted(r.data.tags["classifier"] for r in children) == ["lightgbm", "ridge"]
    assert "baseline_overall_score" in parents[0].data.metrics
    for child in children:
        assert {"overall_score", "accuracy", "sharpe", "brier", "max_drawdown"} <= set(child.data.metrics)
        history = client.get_metric_history(child.info.run_id, "overall_score")
        assert len(history) >= 6  # one per fold (5) plus the aggregate
        artifacts = {a.path for a in client.list_artifacts(child.info.run_id, "plots")}
        assert {"plots/equity_curve.png", "plots/confusion_matrix.png"} <= artifacts
    champion = client.get_model_version_by_alias(NAME, CHAMPION)
    selected = client.list_artifacts(champion.run_id)
    paths = {a.path for a in selected}
    assert {"shap", "drift", "checks", "plots"} <= paths
    reference = mlflow.artifacts.load_dict(f"runs:/{champion.run_id}/drift/reference.json")
    assert len(reference["features"]) == 19


def test_rerunning_the_same_execution_registers_nothing_and_moves_no_alias(stack, first_run, permissive_gate):
    client = _client(stack)
    before = sorted(v.version for v in client.search_model_versions(f"name = '{NAME}'"))
    champion = client.get_model_version_by_alias(NAME, CHAMPION).version
    output = _execute(stack, "it-train-1", [{"symbol": "XRP", "trend": "uptrend"}], "2024-12-31T00:00:00Z")
    assert output["results"] == first_run["results"]  # re-attached to the finished execution

    # A retried task of the same execution (what Step Functions' Retry does) reuses the recorded result.
    awslambda = boto3.client("lambda")
    event = {"run_id": "it-train-1", "model": {"symbol": "XRP", "trend": "uptrend"}, "as_of": "2024-12-31T00:00:00Z"}
    # What the retried TrainModel is handed again: PrepareDataset's manifest, and the execution's as_of.
    key = dataset_manifest_key("it-train-1", "XRP", "uptrend")
    dataset = json.loads(boto3.client("s3").get_object(Bucket=stack.info.bucket, Key=key)["Body"].read())
    retried = {**event, "as_of": dataset["as_of"], "dataset": dataset}
    trained = _invoke(awslambda, stack.info.functions["TrainModelFunction"], retried)
    assert trained["version"] == first_run["results"][0]["version"]
    promoted = _invoke(awslambda, stack.info.functions["PromoteModelFunction"], {**event, "trained": trained})
    assert promoted["status"] == "promoted" and promoted["comparison"] == "same_version"
    assert sorted(v.version for v in client.search_model_versions(f"name = '{NAME}'")) == before
    assert client.get_model_version_by_alias(NAME, CHAMPION).version == champion


def _invoke(awslambda, function_name: str, payload: dict) -> dict:
    response = awslambda.invoke(FunctionName=function_name, Payload=json.dumps(payload))
    body = json.loads(response["Payload"].read())
    assert "FunctionError" not in response, body
    return body


def test_a_later_challenger_is_compared_with_the_champion_and_aliases_stay_consistent(
    stack, first_run, permissive_gate
):
    output = _execute(stack, "it-train-2", [{"symbol": "XRP", "trend": "uptrend"}], "2025-02-20T00:00:00Z")
    (outcome,) = output["results"]
    client = _client(stack)
    first_version = first_run["results"][0]["version"]
    assert outcome["version"] != first_version
    champion = client.get_model_version_by_alias(NAME, CHAMPION).version
    if outcome["status"] == "promoted":
        assert champion == outcome["version"]
        assert client.get_model_version_by_alias(NAME, PREVIOUS).version == first_version
        assert f"v{first_version} -> v{outcome['version']}" in _outbox_text(stack, output)
    else:
        assert outcome["status"] == "rejected" and champion == first_version
        assert "rejected" in _outbox_text(stack, output)
    assert outcome["comparison"] in {"same_bars", "recorded_score"}
    decision = json.loads(client.get_model_version(NAME, outcome["version"]).tags["retrain.promotion"])
    assert decision["promote"] == (outcome["status"] == "promoted")


def test_a_strict_gate_registers_nothing_and_keeps_the_champion(stack, first_run, monkeypatch):
    monkeypatch.setenv("RETRAIN_GATE_MIN_OVERALL_SCORE", "0.99")
    client = _client(stack)
    champion = client.get_model_version_by_alias(NAME, CHAMPION).version
    versions = len(client.search_model_versions(f"name = '{NAME}'"))
    output = _execute(stack, "it-train-strict", [{"symbol": "XRP", "trend": "uptrend"}], "2025-01-15T00:00:00Z")
    (outcome,) = output["results"]
    assert outcome["status"] == "rejected" and outcome["version"] is None
    assert "overall_score" in outcome["why"] and "0.99" in outcome["why"]
    assert len(client.search_model_versions(f"name = '{NAME}'")) == versions
    assert client.get_model_version_by_alias(NAME, CHAMPION).version == champion
    assert "no challenger registered" in _outbox_text(stack, output)


def test_one_models_failure_never_fails_the_others(stack, permissive_gate):
    output = _execute(
        stack,
        "it-train-isolation",
        [{"symbol": "XRP", "trend": "downtrend", "reason": "drift"}, {"symbol": "SOL", "trend": "uptrend"}],
        "2024-12-31T00:00:00Z",
    )
    by_symbol = {r["symbol"]: r for r in output["results"]}
    assert by_symbol["XRP"]["status"] == "promoted"
    assert by_symbol["SOL"]["status"] == "failed" and by_symbol["SOL"]["failed_step"] == "PrepareDataset"
    assert by_symbol["SOL"]["error"] == "DataNotFoundError"
    text = _outbox_text(stack, output)
    assert "SOL uptrend: training failed in PrepareDataset: DataNotFoundError" in text
    assert "[trigger: drift]" in text
