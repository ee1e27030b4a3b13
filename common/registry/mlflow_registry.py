"""The MLflow adapter: experiments, runs, logged models, registered versions and aliases.

The one place that imports mlflow. Models are logged with the sklearn flavor and cloudpickle (every
candidate, XGBoost and LightGBM included, is an sklearn estimator), with ``predict_proba`` as the pyfunc
method, an explicit signature and explicit pip requirements (inference would cost seconds per model).
A logged model is made of those libraries' classes only (:func:`common.training.evaluation.fit_classifier`), so the
requirements are all it needs: ``mlflow models serve --env-manager uv`` loads it without this repository.
The live version is the ``champion`` alias; the one it replaced keeps the ``previous`` alias (rollback).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from common.core.errors import RetrainError
from common.training.scorer import positive_probability

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

CHAMPION = "champion"
PREVIOUS = "previous"
EXECUTION_TAG = "retrain.execution_id"
RESULT_TAG = "retrain.result"
MODEL_ARTIFACT = "model"
# Rows and the probabilities the model gave them at training: a loaded version must reproduce them.
SAMPLE_ARTIFACT = "checks/sample_predictions.json"

# Distributions a logged model needs at load time, by classifier (pinned to what trained it).
# scipy: sklearn computes the linear models' sigmoid with it; pinned so a served probability is the trained one.
_BASE_REQUIREMENTS = ("scikit-learn", "scipy", "numpy", "pandas", "cloudpickle")
_EXTRA_REQUIREMENTS = {"xgboost": ("xgboost-cpu",), "lightgbm": ("lightgbm",)}


class RegistryError(RetrainError):
    """The registry refused an operation or holds something unexpected."""


def pip_requirements(classifier: str) -> list[str]:
    names = (*_BASE_REQUIREMENTS, *_EXTRA_REQUIREMENTS.get(classifier, ()))
    pins = []
    for name in names:
        try:
            pins.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            pins.append(name)
    return pins


@dataclass(frozen=True)
class VersionInfo:
    name: str
    version: str
    run_id: str
    tags: dict[str, str]
    aliases: tuple[str, ...]
    created_at: datetime | None = None


def _info(version: ModelVersion) -> VersionInfo:
    created = getattr(version, "creation_timestamp", None)
    return VersionInfo(
        name=version.name,
        version=str(version.version),
        run_id=version.run_id or "",
        tags=dict(version.tags or {}),
        aliases=tuple(getattr(version, "aliases", ()) or ()),
        created_at=datetime.fromtimestamp(created / 1000, tz=UTC) if created else None,
    )


class Registry:
    """MLflow: tracking (runs, params, metrics, artifacts, logged models) and the model registry.
    :class:`common.registry.memory_registry.MemoryRegistry` answers the same calls from memory (the backtest)."""

    records_plots = True  # equity curves, confusion matrices and SHAP are logged for people to browse

    def __init__(self, tracking_uri: str) -> None:
        self.tracking_uri = tracking_uri
        self._client: MlflowClient | None = None

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            import mlflow
            from mlflow import MlflowClient

            # Artifact downloads draw progress bars on stderr: noise in Lambda logs and CLI output.
            os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
            if not self.tracking_uri.startswith("arn:"):
                # sagemaker-mlflow's header plugin parses every tracking URI as an ARN and MLflow logs
                # its IndexError as a warning on each request (aws/sagemaker-mlflow#15): not ours to see.
                logging.getLogger("mlflow.tracking.request_header.registry").setLevel(logging.ERROR)

            mlflow.set_tracking_uri(self.tracking_uri)
            self._client = MlflowClient(tracking_uri=self.tracking_uri)
        return self._client

    # --- experiments and runs -------------------------------------------------------------------
    def experiment_id(self, name: str) -> str:
        experiment = self.client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        from mlflow.exceptions import MlflowException

        try:
            return self.client.create_experiment(name)
        except MlflowException:  # created concurrently by another model's run
            experiment = self.client.get_experiment_by_name(name)
            if experiment is None:
                raise
            return experiment.experiment_id

    def recorded_result(self, experiment_id: str, execution_id: str) -> tuple[str, str] | None:
        """(run id, result JSON) of the parent run an earlier attempt of this execution completed."""
        runs = self.client.search_runs(
            [experiment_id],
            filter_string=f"tags.`{EXECUTION_TAG}` = '{execution_id}' and attributes.status = 'FINISHED'",
            max_results=5,
        )
        for run in runs:
            if RESULT_TAG in run.data.tags and "mlflow.parentRunId" not in run.data.tags:
                return run.info.run_id, run.data.tags[RESULT_TAG]
        return None

    @contextlib.contextmanager
    def start_run(
        self, *, experiment_id: str, run_name: str, tags: dict[str, str], nested: bool = False
    ) -> Iterator[str]:
        """A run (nested in the active one with ``nested``) that the log_* calls below write into; yields its id."""
        import mlflow

        self.client  # noqa: B018 - sets the tracking URI for the fluent calls
        with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags, nested=nested) as run:
            yield run.info.run_id

    @staticmethod
    def log_params(params: dict[str, Any]) -> None:
        import mlflow

        mlflow.log_params(params)

    @staticmethod
    def log_metrics(metrics: dict[str, float], step: int | None = None) -> None:
        import mlflow

        mlflow.log_metrics(metrics, step=step)

    @staticmethod
    def set_run_tag(key: str, value: str) -> None:
        import mlflow

        mlflow.set_tag(key, value)

    def last_training(self, experiment_name: str, *, before: datetime, scan: int = 100) -> datetime | None:
        """The data-clock as-of time of the latest training attempt that completed (any outcome: a version
        promoted, a challenger rejected, or no candidate through the gate) strictly before ``before``.
        Strictly: re-checking a day that already trained gives the same answer as the first check."""
        experiment = self.client.get_experiment_by_name(experiment_name)
        if experiment is None:
            return None
        runs = self.client.search_runs(  # the runs that carry a result: trainings, not their candidates
            [experiment.experiment_id],
            filter_string=f"attributes.status = 'FINISHED' and tags.`{RESULT_TAG}` LIKE '%'",
            order_by=["attributes.start_time DESC"],
            max_results=scan,
        )
        latest: datetime | None = None
        for run in runs:
            tags = run.data.tags
            if RESULT_TAG not in tags or "mlflow.parentRunId" in tags or "as_of" not in tags:
                continue
            as_of = datetime.fromisoformat(tags["as_of"])
            if as_of < before and (latest is None or as_of > latest):
                latest = as_of
        return latest

    # --- registered versions --------------------------------------------------------------------
    def version_by_alias(self, name: str, alias: str) -> VersionInfo | None:
        from mlflow.exceptions import MlflowException

        try:
            return _info(self.client.get_model_version_by_alias(name, alias))
        except MlflowException as exc:
            if getattr(exc, "error_code", "") in {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"}:
                return None
            raise

    def version(self, name: str, version: str) -> VersionInfo:
        return _info(self.client.get_model_version(name, version))

    def version_for_execution(self, name: str, execution_id: str) -> VersionInfo | None:
        """The version an earlier attempt of this execution registered (re-runs never register twice)."""
        from mlflow.exceptions import MlflowException

        try:
            versions = self.client.search_model_versions(
                f"name = '{name}' and tag.`{EXECUTION_TAG}` = '{execution_id}'"
            )
        except MlflowException as exc:
            if getattr(exc, "error_code", "") == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise
        return _info(versions[0]) if versions else None

    def register(self, name: str, model_uri: str, tags: dict[str, str]) -> VersionInfo:
        """A new version of ``name`` from a logged model (MLflow 3 links it to the LoggedModel)."""
        import mlflow

        self.client  # noqa: B018 - sets the tracking URI for the fluent call
        version = mlflow.register_model(model_uri=model_uri, name=name, tags=tags)
        return self.version(name, str(version.version))

    def set_version_tags(self, name: str, version: str, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_model_version_tag(name, version, key, value)

    def delete_version_tag(self, name: str, version: str, key: str) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self.client.delete_model_version_tag(name, version, key)
        except MlflowException as exc:
            if getattr(exc, "error_code", "") != "RESOURCE_DOES_NOT_EXIST":
                raise

    def move_champion(self, name: str, version: str) -> str | None:
        """Point ``champion`` at ``version``; the replaced champion gets ``previous``. Returns it."""
        current = self.version_by_alias(name, CHAMPION)
        if current is not None and current.version == version:
            return None  # already the champion: nothing moves (idempotent re-run)
        if current is not None:
            self.client.set_registered_model_alias(name, PREVIOUS, current.version)
        self.client.set_registered_model_alias(name, CHAMPION, version)
        return current.version if current else None

    def load_model(self, name: str, version: str) -> Any:
        """The version's estimator itself (the sklearn flavor), not the pyfunc wrapper: callers score it
        directly, and the wrapper's per-call schema enforcement costs more than the trees."""
        import mlflow.sklearn

        return mlflow.sklearn.load_model(f"models:/{name}/{version}")

    # --- logging (inside an active run) ---------------------------------------------------------
    @classmethod
    def log_model(cls, model: Any, classifier: str, sample: pd.DataFrame) -> str:
        """Log a fitted model to the active run; returns its model URI. A model with a native form the
        predictor scores without unpickling (:func:`common.training.native_models.native_artifact`) also gets that,
        as a run artifact next to the load-back sample."""
        import mlflow
        from mlflow.models import infer_signature

        from common.training.native_models import NATIVE_MODEL_TAG, native_artifact

        signature = infer_signature(sample, model.predict_proba(sample))
        info = mlflow.sklearn.log_model(
            model,
            name=MODEL_ARTIFACT,
            serialization_format="cloudpickle",
            signature=signature,
            pip_requirements=pip_requirements(classifier),
            pyfunc_predict_fn="predict_proba",
        )
        native = native_artifact(model)
        if native is not None:
            reference, payload = native
            cls.log_bytes(payload, reference["path"])
            mlflow.set_tag(NATIVE_MODEL_TAG, json.dumps(reference, sort_keys=True))
        return info.model_uri

    @classmethod
    def log_load_back_sample(cls, model: Any, sample: pd.DataFrame) -> None:
        """Log rows and the probabilities ``model`` gives them now, for :func:`load_back_problem`."""
        cls.log_json(
            {
                "index": [t.isoformat() for t in sample.index],
                "columns": list(sample.columns),
                "rows": sample.to_numpy().tolist(),
                "proba": positive_probability(model, sample).tolist(),
            },
            SAMPLE_ARTIFACT,
        )

    @staticmethod
    def log_bytes(payload: bytes, artifact_path: str) -> None:
        import mlflow

        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / Path(artifact_path).name
            path.write_bytes(payload)
            parent = str(Path(artifact_path).parent)
            mlflow.log_artifact(str(path), artifact_path=None if parent == "." else parent)

    @classmethod
    def log_json(cls, document: Any, artifact_path: str) -> None:
        cls.log_bytes(json.dumps(document, indent=2, sort_keys=True, default=str).encode(), artifact_path)

    def download_artifacts(self, run_id: str, artifact_path: str, folder: Path) -> Path:
        """A run's artifact (file or folder) copied into ``folder``; returns its local path."""
        import mlflow

        self.client  # noqa: B018 - sets the tracking URI for the fluent call
        folder.mkdir(parents=True, exist_ok=True)
        return Path(
            mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact_path, dst_path=str(folder))
        )

    def load_json_artifact(self, run_id: str, artifact_path: str) -> Any:
        with tempfile.TemporaryDirectory() as folder:
            return json.loads(self.download_artifacts(run_id, artifact_path, Path(folder)).read_text())

    def run_tags(self, run_id: str) -> dict[str, str]:
        return dict(self.client.get_run(run_id).data.tags)

    def artifact_bytes(self, run_id: str, artifact_path: str) -> bytes | None:
        """A run's artifact file, or None when the run has no such file."""
        from mlflow.exceptions import MlflowException

        with tempfile.TemporaryDirectory() as folder:
            try:
                path = self.download_artifacts(run_id, artifact_path, Path(folder))
            except FileNotFoundError:
                return None
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                    raise
                return None
            return path.read_bytes() if path.is_file() else None


def load_back_problem(
    registry: Any,  # Registry, or what answers load_json_artifact as it does
    model: Any,
    run_id: str,
    score: Callable[[pd.DataFrame], np.ndarray] | None = None,
    sample: dict[str, Any] | None = None,
) -> str | None:
    """None when ``model`` (a version loaded from the registry) reproduces the probabilities its training run
    recorded for a sample of rows; otherwise what is wrong. Promotion and the predictor's hot swap both
    refuse a version that fails it. ``score`` is how the caller will score (default
    :func:`positive_probability`): the predictor checks its compiled fast path, not just the model.
    ``sample``: the run's :data:`SAMPLE_ARTIFACT`, when the caller fetched it already."""
    if sample is None:
        sample = registry.load_json_artifact(run_id, SAMPLE_ARTIFACT)
    rows = pd.DataFrame(sample["rows"], columns=sample["columns"], index=pd.to_datetime(sample["index"]))
    try:
        got = score(rows) if score is not None else positive_probability(model, rows)
    except Exception as exc:  # a broken artifact must be reported, not crash the caller
        return f"scoring failed: {type(exc).__name__}: {exc}"
    expected = np.asarray(sample["proba"], dtype="float64")
    if got.shape != expected.shape or not np.all(np.isfinite(got)) or got.min() < 0 or got.max() > 1:
        return f"invalid probabilities {got[:3].tolist()}..."
    if not np.allclose(got, expected, rtol=0, atol=1e-9):
        return f"probabilities differ from training by up to {np.max(np.abs(got - expected)):.3g}"
    return None
