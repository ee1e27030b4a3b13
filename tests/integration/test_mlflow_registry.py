"""A real MLflow tracking server (SQLite backend) with its artifacts in moto's S3: log a model, register
it, move the champion alias, load it back by alias."""

from __future__ import annotations

import boto3
import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient
from mlflow.models import infer_signature
from sklearn.linear_model import LogisticRegression

from common.core.keys import MLFLOW_ARTIFACTS_PREFIX

pytestmark = pytest.mark.integration

MODEL_NAME = "BTC_uptrend_model"
PIP_REQUIREMENTS = ["scikit-learn", "numpy"]  # explicit: skips slow requirement inference


def _train(seed: int) -> tuple[LogisticRegression, np.ndarray]:
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(200, 4))
    labels = (features[:, 0] + rng.normal(scale=0.5, size=200) > 0).astype(int)
    return LogisticRegression(random_state=seed).fit(features, labels), features


def _log_version(client: MlflowClient, seed: int) -> str:
    model, features = _train(seed)
    with mlflow.start_run(run_name=f"seed-{seed}") as run:
        mlflow.log_param("seed", seed)
        mlflow.log_metric("train_accuracy", model.score(features, (features[:, 0] > 0).astype(int)))
        mlflow.sklearn.log_model(
            model,
            name="model",
            serialization_format="cloudpickle",
            signature=infer_signature(features, model.predict_proba(features)[:, 1]),
            pip_requirements=PIP_REQUIREMENTS,
        )
    version = mlflow.register_model(f"runs:/{run.info.run_id}/model", MODEL_NAME)
    return version.version


def test_log_register_alias_and_load_back_through_the_server(stack):
    mlflow.set_tracking_uri(stack.info.mlflow_uri)
    mlflow.set_experiment("BTC_uptrend")
    client = MlflowClient()

    first = _log_version(client, seed=1)
    client.set_registered_model_alias(MODEL_NAME, "champion", first)
    champion = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@champion")
    rows = np.random.default_rng(7).normal(size=(5, 4))
    assert champion.metadata.run_id == client.get_model_version(MODEL_NAME, first).run_id
    assert champion.predict(rows).shape == (5,)

    # Artifacts went through the server into the moto bucket, not to a local folder.
    keys = [
        item["Key"]
        for item in boto3.client("s3").list_objects_v2(Bucket=stack.info.bucket, Prefix=MLFLOW_ARTIFACTS_PREFIX)[
            "Contents"
        ]
    ]
    assert any(key.endswith("MLmodel") for key in keys), keys

    # A new version takes over the alias; the old one stays reachable for rollback.
    second = _log_version(client, seed=2)
    client.set_registered_model_alias(MODEL_NAME, "previous", first)
    client.set_registered_model_alias(MODEL_NAME, "champion", second)
    assert client.get_model_version_by_alias(MODEL_NAME, "champion").version == second
    assert client.get_model_version_by_alias(MODEL_NAME, "previous").version == first
    reloaded = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@champion")
    assert reloaded.metadata.run_id == client.get_model_version(MODEL_NAME, second).run_id
    rollback = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@previous")
    assert rollback.metadata.run_id == champion.metadata.run_id != reloaded.metadata.run_id


def test_last_training_is_the_latest_finished_attempt_strictly_before_the_as_of_time(stack):
    """The schedule trigger and the cooldown read a model's last retrain from its experiment's runs:
    finished parent runs that carry a result, on the data clock, never the day being checked or later."""
    from datetime import UTC, datetime

    from common.registry.mlflow_registry import EXECUTION_TAG, RESULT_TAG, Registry

    registry = Registry(stack.info.mlflow_uri)
    name = "LASTTRAIN_uptrend"
    assert registry.last_training(name, before=datetime(2025, 1, 1, tzinfo=UTC)) is None  # no experiment
    experiment = registry.experiment_id(name)

    def attempt(as_of: str, *, result: bool = True, status: str = "FINISHED", parent: str | None = None) -> str:
        tags = {EXECUTION_TAG: f"trigger-{as_of[:10]}", "as_of": as_of}
        if result:
            tags[RESULT_TAG] = "{}"
        if parent:
            tags["mlflow.parentRunId"] = parent
        run = registry.client.create_run(experiment, tags=tags)
        registry.client.set_terminated(run.info.run_id, status=status)
        return run.info.run_id

    first = attempt("2025-01-03T00:00:00+00:00")
    attempt("2025-01-09T00:00:00+00:00", result=False)  # crashed before its result: not an attempt
    attempt("2025-01-08T00:00:00+00:00", status="FAILED")
    attempt("2025-01-07T00:00:00+00:00", parent=first)  # a candidate's nested run
    attempt("2025-01-05T00:00:00+00:00")
    attempt("2025-01-10T00:00:00+00:00")  # replayed later, but judged on the data clock

    def last(day: int) -> datetime | None:
        return registry.last_training(name, before=datetime(2025, 1, day, tzinfo=UTC))

    assert last(3) is None  # strictly before: re-checking the day that trained decides the same
    assert last(4) == datetime(2025, 1, 3, tzinfo=UTC)
    assert last(9) == datetime(2025, 1, 5, tzinfo=UTC)
    assert last(11) == datetime(2025, 1, 10, tzinfo=UTC)
