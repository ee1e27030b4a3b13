"""The predictor's reads of the MLflow registry over MLflow's REST API, without importing ``mlflow`` (issue 18).

Importing the MLflow client costs a cold start more than everything else the first prediction needs (it
imports its GenAI, tracing and model-flavour packages whatever is asked). What the predictor reads on its
cold path are three documented REST calls of the tracking server: the version behind an alias
(``GET /api/2.0/mlflow/registered-models/alias``), the run that logged it (``GET /api/2.0/mlflow/runs/get``,
for its artifact root and its tags) and files of that run (the server's artifact proxy for ``mlflow-artifacts:`` roots,
``GET /api/2.0/mlflow-artifacts/artifacts/...``; S3 itself for ``s3://`` roots). :class:`RestRegistryReader`
makes those calls with urllib3 (boto3's HTTP library, so nothing new to import) and answers them as
:class:`common.registry.mlflow_registry.Registry` does; everything else it hands to that MLflow client, created on first
use: loading a pickled model (a version without a native model file), an artifact root of another scheme.

:func:`serving_registry` picks it only where it covers the connection exactly: an ``http(s)`` tracking URI
with no authentication, or MLflow's token or basic authentication (``MLFLOW_TRACKING_TOKEN``,
``MLFLOW_TRACKING_USERNAME``/``PASSWORD``). A SageMaker MLflow ARN (SigV4 through the sagemaker-mlflow plugin)
or any other MLflow client setting (TLS options, ``MLFLOW_TRACKING_AUTH``, SigV4) keeps the MLflow client.
"""

from __future__ import annotations

import base64
import json
import os
import posixpath
import threading
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode, urlparse

from common.core.errors import DataNotFoundError
from common.registry.mlflow_registry import Registry, RegistryError, VersionInfo

# MLflow client settings this reader does not implement: with any of them set, the MLflow client reads.
_CLIENT_ONLY_SETTINGS = (
    "MLFLOW_TRACKING_INSECURE_TLS",
    "MLFLOW_TRACKING_SERVER_CERT_PATH",
    "MLFLOW_TRACKING_CLIENT_CERT_PATH",
    "MLFLOW_TRACKING_AWS_SIGV4",
    "MLFLOW_TRACKING_AUTH",
)
_NOT_FOUND = {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"}  # as Registry.version_by_alias: no version


def serving_registry(tracking_uri: str) -> Any:
    """What the predictor reads the registry through: :class:`RestRegistryReader` where it covers the
    connection (module docstring), else :class:`common.registry.mlflow_registry.Registry`."""
    if RestRegistryReader.covers(tracking_uri):
        return RestRegistryReader(tracking_uri)
    return Registry(tracking_uri)


class RestRegistryReader:
    """Read-only registry calls over MLflow's REST API (module docstring); the rest through ``Registry``."""

    def __init__(self, tracking_uri: str, *, timeout: float | None = None) -> None:
        self.tracking_uri = tracking_uri.rstrip("/")
        self._timeout = timeout or float(os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT") or 120)
        self._headers = {"User-Agent": "retrain-predictor", **_auth_headers()}
        self._http: Any = None
        self._client: Registry | None = None
        self._s3: dict[str, Any] = {}
        self._runs: dict[str, tuple[str, dict[str, str]]] = {}  # run id -> (artifact root, tags)
        self._lock = threading.Lock()

    @staticmethod
    def covers(tracking_uri: str) -> bool:
        return urlparse(tracking_uri).scheme in {"http", "https"} and not any(
            os.environ.get(name) for name in _CLIENT_ONLY_SETTINGS
        )

    @property
    def client(self) -> Registry:
        """The MLflow client, for what this reader hands on (imports ``mlflow`` on first use)."""
        with self._lock:
            if self._client is None:
                self._client = Registry(self.tracking_uri)
            return self._client

    # --- the calls the predictor makes -------------------------------------------------------------
    def version_by_alias(self, name: str, alias: str) -> VersionInfo | None:
        status, body = self._get("/api/2.0/mlflow/registered-models/alias", {"name": name, "alias": alias})
        if status != 200:
            if _error_code(body) in _NOT_FOUND:
                return None
            raise RegistryError(f"alias {alias} of {name}: HTTP {status}: {_message(body)}")
        return _version_info(json.loads(body)["model_version"])

    def load_model(self, name: str, version: str) -> Any:
        return self.client.load_model(name, version)

    def artifact_bytes(self, run_id: str, artifact_path: str) -> bytes | None:
        """A run's artifact file, or None when the store says there is no such file (S3, or a proxy answering
        404; MLflow's proxy over S3 answers a missing file with a 500, which raises)."""
        root = self._artifact_root(run_id)
        scheme = urlparse(root).scheme
        if scheme == "mlflow-artifacts" and urlparse(root).netloc in {"", urlparse(self.tracking_uri).netloc}:
            status, body = self._get(_proxied_path(root, artifact_path))
            if status == 404:
                return None
            if status != 200:
                raise RegistryError(f"artifact {artifact_path} of run {run_id}: HTTP {status}: {_message(body)}")
            return body
        if scheme == "s3":
            bucket, _, prefix = root.removeprefix("s3://").partition("/")
            try:
                return self._s3_store(bucket).get_object(posixpath.join(prefix, artifact_path)).body
            except DataNotFoundError:
                return None
        return self.client.artifact_bytes(run_id, artifact_path)

    def load_json_artifact(self, run_id: str, artifact_path: str) -> Any:
        payload = self.artifact_bytes(run_id, artifact_path)
        if payload is None:
            raise RegistryError(f"run {run_id} has no artifact {artifact_path}")
        return json.loads(payload)

    # --- internals --------------------------------------------------------------------------------
    def run_tags(self, run_id: str) -> dict[str, str]:
        return dict(self._run(run_id)[1])

    def _artifact_root(self, run_id: str) -> str:
        return self._run(run_id)[0]

    def _run(self, run_id: str) -> tuple[str, dict[str, str]]:
        """(artifact root, tags) of a run: one call, kept (a version's run is finished, its root fixed)."""
        run = self._runs.get(run_id)
        if run is None:
            status, body = self._get("/api/2.0/mlflow/runs/get", {"run_id": run_id})
            if status != 200:
                raise RegistryError(f"run {run_id}: HTTP {status}: {_message(body)}")
            found = json.loads(body)["run"]
            tags = {tag["key"]: tag.get("value", "") for tag in found.get("data", {}).get("tags") or ()}
            run = self._runs.setdefault(run_id, (found["info"]["artifact_uri"], tags))
        return run

    def _get(self, path: str, query: dict[str, str] | None = None) -> tuple[int, bytes]:
        if self._http is None:
            with self._lock:
                if self._http is None:
                    import urllib3

                    retries = urllib3.Retry(total=3, backoff_factor=0.5, status_forcelist=(429, 500, 502, 503, 504))
                    self._http = urllib3.PoolManager(num_pools=2, maxsize=4, retries=retries)
        url = self.tracking_uri + path + (f"?{urlencode(query)}" if query else "")
        response = self._http.request("GET", url, headers=self._headers, timeout=self._timeout)
        return response.status, response.data

    def _s3_store(self, bucket: str) -> Any:
        with self._lock:
            store = self._s3.get(bucket)
            if store is None:
                import boto3

                from common.aws.storage import S3ObjectStore

                # MLflow's own S3 artifact client honours this endpoint (a local stack, an S3-compatible store)
                endpoint = os.environ.get("MLFLOW_S3_ENDPOINT_URL") or None
                store = self._s3[bucket] = S3ObjectStore(bucket, boto3.client("s3", endpoint_url=endpoint))
            return store


def _auth_headers() -> dict[str, str]:
    """MLflow's token or basic authentication, read from the variables its client reads."""
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    if token:
        return {"Authorization": f"Bearer {token}"}
    user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if user and password:
        return {"Authorization": "Basic " + base64.standard_b64encode(f"{user}:{password}".encode()).decode()}
    return {}


def _proxied_path(root: str, artifact_path: str) -> str:
    """The tracking server's artifact-proxy path of a file under an ``mlflow-artifacts:`` root (as MLflow's
    ``MlflowArtifactsRepository.resolve_uri``, for a root on the tracking server itself)."""
    path = posixpath.join(urlparse(root).path.strip("/"), artifact_path.lstrip("/"))
    return "/api/2.0/mlflow-artifacts/artifacts/" + quote(path)


def _version_info(version: dict[str, Any]) -> VersionInfo:
    created = version.get("creation_timestamp")
    return VersionInfo(
        name=version["name"],
        version=str(version["version"]),
        run_id=version.get("run_id") or "",
        tags={tag["key"]: tag.get("value", "") for tag in version.get("tags") or ()},
        aliases=tuple(version.get("aliases") or ()),
        created_at=datetime.fromtimestamp(int(created) / 1000, tz=UTC) if created else None,
    )


def _error_code(body: bytes) -> str:
    try:
        return str(json.loads(body).get("error_code", ""))
    except (ValueError, AttributeError):
        return ""


def _message(body: bytes) -> str:
    try:
        return str(json.loads(body).get("message", ""))[:300]
    except (ValueError, AttributeError):
        return body[:300].decode(errors="replace")
