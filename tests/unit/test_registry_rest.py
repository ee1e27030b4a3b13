"""common.registry.mlflow_rest: where the predictor's REST reads of the registry are used (and where the MLflow
client stays), how a model version and artifact paths are read, S3 artifact roots, and errors. Against the
real MLflow server: tests/integration/test_predictor_cold_path.py."""

from __future__ import annotations

import json

import pytest

from common.registry.mlflow_registry import Registry, RegistryError
from common.registry.mlflow_rest import RestRegistryReader, serving_registry
from tests.conftest import versioned_bucket


@pytest.mark.parametrize(
    ("uri", "env", "rest"),
    [
        ("http://127.0.0.1:5000", {}, True),
        ("https://mlflow.example.com/prefix", {"MLFLOW_TRACKING_TOKEN": "t"}, True),
        ("https://mlflow.example.com", {"MLFLOW_TRACKING_USERNAME": "u", "MLFLOW_TRACKING_PASSWORD": "p"}, True),
        ("arn:aws:sagemaker:us-east-1:123456789012:mlflow-tracking-server/x", {}, False),  # SigV4 via the plugin
        ("https://mlflow.example.com", {"MLFLOW_TRACKING_INSECURE_TLS": "true"}, False),
        ("https://mlflow.example.com", {"MLFLOW_TRACKING_AWS_SIGV4": "true"}, False),
        ("https://mlflow.example.com", {"MLFLOW_TRACKING_AUTH": "custom"}, False),
        ("sqlite:///mlflow.db", {}, False),
    ],
)
def test_the_rest_reader_is_used_only_where_it_covers_the_connection(monkeypatch, uri, env, rest) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    chosen = serving_registry(uri)
    assert isinstance(chosen, RestRegistryReader if rest else Registry)


def test_authentication_headers_are_mlflows_token_or_basic(monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "user")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "secret")
    assert RestRegistryReader("http://h")._headers["Authorization"] == "Basic dXNlcjpzZWNyZXQ="
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "tok")
    assert RestRegistryReader("http://h")._headers["Authorization"] == "Bearer tok"


class Answers:
    """Stands in for the HTTP calls: path (with query) -> (status, body); records what was asked."""

    def __init__(self, answers: dict[str, tuple[int, object]]) -> None:
        self.answers, self.asked = answers, []

    def __call__(self, path: str, query: dict[str, str] | None = None) -> tuple[int, bytes]:
        key = path + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")
        self.asked.append(key)
        status, body = self.answers.get(key, (404, {"error_code": "RESOURCE_DOES_NOT_EXIST"}))
        return status, body if isinstance(body, bytes) else json.dumps(body).encode()


VERSION = {
    "name": "BTC_uptrend_model",
    "version": "3",
    "creation_timestamp": 1700000000000,
    "run_id": "r1",
    "tags": [{"key": "classifier", "value": '"lightgbm"'}, {"key": "retrain.suspended", "value": "why"}],
    "aliases": ["champion"],
}
RUN = {
    "run": {
        "info": {"artifact_uri": "mlflow-artifacts:/1/r1/artifacts"},
        "data": {"tags": [{"key": "k", "value": "v"}]},
    }
}


def test_versions_runs_and_proxied_artifacts_are_read_as_mlflow_answers_them(monkeypatch) -> None:
    reader = RestRegistryReader("http://h")
    answers = Answers(
        {
            "/api/2.0/mlflow/registered-models/alias?name=BTC_uptrend_model&alias=champion": (
                200,
                {"model_version": VERSION},
            ),
            "/api/2.0/mlflow/runs/get?run_id=r1": (200, RUN),
            "/api/2.0/mlflow-artifacts/artifacts/1/r1/artifacts/checks/sample.json": (200, {"rows": []}),
            "/api/2.0/mlflow-artifacts/artifacts/1/r1/artifacts/broken.txt": (500, {"message": "boom"}),
        }
    )
    monkeypatch.setattr(reader, "_get", answers)
    info = reader.version_by_alias("BTC_uptrend_model", "champion")
    assert info is not None and (info.name, info.version, info.run_id, info.aliases) == (
        "BTC_uptrend_model",
        "3",
        "r1",
        ("champion",),
    )
    assert info.tags == {"classifier": '"lightgbm"', "retrain.suspended": "why"}  # suspension read on the cold path
    assert info.created_at is not None and info.created_at.year == 2023
    assert reader.version_by_alias("BTC_uptrend_model", "previous") is None
    assert reader.run_tags("r1") == {"k": "v"}
    assert reader.load_json_artifact("r1", "checks/sample.json") == {"rows": []}
    assert reader.artifact_bytes("r1", "missing.txt") is None
    with pytest.raises(RegistryError, match="boom"):
        reader.artifact_bytes("r1", "broken.txt")
    assert answers.asked.count("/api/2.0/mlflow/runs/get?run_id=r1") == 1  # a run is asked for once


def test_an_s3_artifact_root_is_read_from_s3(monkeypatch) -> None:
    with versioned_bucket("mlflow-artifacts") as s3:
        s3.put_object(Bucket="mlflow-artifacts", Key="mlflow/1/r1/artifacts/serving/model.txt", Body=b"trees")
        reader = RestRegistryReader("http://h")
        monkeypatch.setattr(reader, "_run", lambda run_id: ("s3://mlflow-artifacts/mlflow/1/r1/artifacts", {}))
        assert reader.artifact_bytes("r1", "serving/model.txt") == b"trees"
        assert reader.artifact_bytes("r1", "serving/none.txt") is None
