"""The registry and tracking calls of the live loop, kept in memory: what the backtest runs them against.

:class:`common.registry.mlflow_registry.Registry` talks to an MLflow server; this class answers the same calls
(experiments, runs with tags, params, metrics and artifacts, logged models, registered versions, the
``champion``/``previous`` aliases, the last training before a time) from dicts. The trigger check, the
training and promotion steps and the batch predictions run unchanged on either: the backtest replays
years of the loop's own decisions without a server, and without a second implementation of any of them.

Models are kept as the objects that were fitted (no serialisation), so a version scores exactly what its
training run recorded. Nothing here imports MLflow.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import pandas as pd

from common.aws.storage import encode_json
from common.registry.mlflow_registry import (
    CHAMPION,
    EXECUTION_TAG,
    PREVIOUS,
    RESULT_TAG,
    SAMPLE_ARTIFACT,
    RegistryError,
    VersionInfo,
)
from common.training.scorer import positive_probability

MODEL_URI_PREFIX = "memory:/"


@dataclass
class MemoryRun:
    run_id: str
    experiment_id: str
    name: str
    tags: dict[str, str]
    parent_id: str | None
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    artifacts: dict[str, bytes] = field(default_factory=dict)
    finished: bool = False


class MemoryRegistry:
    """An in-memory :class:`common.registry.mlflow_registry.Registry` (module docstring). Not thread-safe: one per worker."""

    tracking_uri = "memory:"
    records_plots = False  # plots and SHAP are for people browsing MLflow; a backtest has none to show

    def __init__(self) -> None:
        self._experiments: dict[str, str] = {}
        self._runs: dict[str, MemoryRun] = {}
        self._run_order: list[str] = []
        self._active: list[str] = []
        self._models: dict[str, Any] = {}  # model URI -> fitted object
        self._versions: dict[str, list[VersionInfo]] = {}
        self._version_models: dict[tuple[str, str], Any] = {}
        self._aliases: dict[str, dict[str, str]] = {}

    # --- experiments and runs -------------------------------------------------------------------
    def experiment_id(self, name: str) -> str:
        return self._experiments.setdefault(name, str(len(self._experiments) + 1))

    def recorded_result(self, experiment_id: str, execution_id: str) -> tuple[str, str] | None:
        """(run id, result JSON) of an earlier attempt of this execution that finished."""
        for run_id in self._run_order:
            run = self._runs[run_id]
            if (
                run.experiment_id == experiment_id
                and run.parent_id is None
                and run.finished
                and run.tags.get(EXECUTION_TAG) == execution_id
                and RESULT_TAG in run.tags
            ):
                return run.run_id, run.tags[RESULT_TAG]
        return None

    def last_training(self, experiment_name: str, *, before: datetime, scan: int = 100) -> datetime | None:
        """As :meth:`common.registry.mlflow_registry.Registry.last_training`: the latest finished training's as-of time
        strictly before ``before`` (``scan`` is the live registry's page size; memory reads them all)."""
        experiment = self._experiments.get(experiment_name)
        latest: datetime | None = None
        for run in self._runs.values():
            if run.experiment_id != experiment or run.parent_id is not None or not run.finished:
                continue
            if RESULT_TAG not in run.tags or "as_of" not in run.tags:
                continue
            as_of = datetime.fromisoformat(run.tags["as_of"])
            if as_of < before and (latest is None or as_of > latest):
                latest = as_of
        return latest

    @contextlib.contextmanager
    def start_run(
        self, *, experiment_id: str, run_name: str, tags: dict[str, str], nested: bool = False
    ) -> Iterator[str]:
        parent = self._active[-1] if nested and self._active else None
        run = MemoryRun(f"run-{len(self._runs) + 1}", experiment_id, run_name, dict(tags), parent)
        self._runs[run.run_id] = run
        self._run_order.append(run.run_id)
        self._active.append(run.run_id)
        try:
            yield run.run_id
        finally:
            self._active.pop()
        run.finished = True  # as MLflow: a run left by an exception is not FINISHED

    def _run(self) -> MemoryRun:
        if not self._active:
            raise RegistryError("no active run")
        return self._runs[self._active[-1]]

    def log_params(self, params: dict[str, Any]) -> None:
        self._run().params.update(params)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        if step is None:  # per-step (fold) metrics are history in MLflow; only the aggregates are kept here
            self._run().metrics.update(metrics)

    def set_run_tag(self, key: str, value: str) -> None:
        self._run().tags[key] = value

    def log_bytes(self, payload: bytes, artifact_path: str) -> None:
        self._run().artifacts[artifact_path] = payload

    def log_json(self, document: Any, artifact_path: str) -> None:
        self.log_bytes(encode_json(document), artifact_path)

    def log_model(self, model: Any, classifier: str, sample: pd.DataFrame) -> str:
        uri = f"{MODEL_URI_PREFIX}{self._run().run_id}/model"
        self._models[uri] = model
        return uri

    def log_load_back_sample(self, model: Any, sample: pd.DataFrame) -> None:
        self.log_json(
            {
                "index": [t.isoformat() for t in sample.index],
                "columns": list(sample.columns),
                "rows": sample.to_numpy().tolist(),
                "proba": positive_probability(model, sample).tolist(),
            },
            SAMPLE_ARTIFACT,
        )

    def load_json_artifact(self, run_id: str, artifact_path: str) -> Any:
        run = self._runs.get(run_id)
        if run is None or artifact_path not in run.artifacts:
            raise RegistryError(f"run {run_id} has no artifact {artifact_path}")
        return json.loads(run.artifacts[artifact_path])

    def run_tags(self, run_id: str) -> dict[str, str]:
        run = self._runs.get(run_id)
        if run is None:
            raise RegistryError(f"no run {run_id}")
        return dict(run.tags)

    def artifact_bytes(self, run_id: str, artifact_path: str) -> bytes | None:
        run = self._runs.get(run_id)
        return run.artifacts.get(artifact_path) if run is not None else None

    # --- registered versions --------------------------------------------------------------------
    def register(self, name: str, model_uri: str, tags: dict[str, str]) -> VersionInfo:
        model = self._models.get(model_uri)
        if model is None:
            raise RegistryError(f"no logged model at {model_uri}")
        versions = self._versions.setdefault(name, [])
        run_id = model_uri.removeprefix(MODEL_URI_PREFIX).split("/", 1)[0]
        info = VersionInfo(name, str(len(versions) + 1), run_id, dict(tags), ())
        versions.append(info)
        self._version_models[(name, info.version)] = model
        return info

    def version(self, name: str, version: str) -> VersionInfo:
        for info in self._versions.get(name, []):
            if info.version == version:
                aliases = tuple(a for a, v in self._aliases.get(name, {}).items() if v == version)
                return replace(info, aliases=aliases)
        raise RegistryError(f"{name} has no version {version}")

    def versions(self, name: str) -> list[VersionInfo]:
        return [self.version(name, info.version) for info in self._versions.get(name, [])]

    def version_by_alias(self, name: str, alias: str) -> VersionInfo | None:
        version = self._aliases.get(name, {}).get(alias)
        return None if version is None else self.version(name, version)

    def version_for_execution(self, name: str, execution_id: str) -> VersionInfo | None:
        for info in self._versions.get(name, []):
            if info.tags.get(EXECUTION_TAG) == execution_id:
                return self.version(name, info.version)
        return None

    def set_version_tags(self, name: str, version: str, tags: dict[str, str]) -> None:
        versions = self._versions.get(name, [])
        for index, info in enumerate(versions):
            if info.version == version:
                versions[index] = replace(info, tags={**info.tags, **tags})
                return
        raise RegistryError(f"{name} has no version {version}")

    def delete_version_tag(self, name: str, version: str, key: str) -> None:
        versions = self._versions.get(name, [])
        for index, info in enumerate(versions):
            if info.version == version:
                versions[index] = replace(info, tags={k: v for k, v in info.tags.items() if k != key})
                return
        raise RegistryError(f"{name} has no version {version}")

    def move_champion(self, name: str, version: str) -> str | None:
        aliases = self._aliases.setdefault(name, {})
        current = aliases.get(CHAMPION)
        if current == version:
            return None
        if current is not None:
            aliases[PREVIOUS] = current
        aliases[CHAMPION] = version
        return current

    def load_model(self, name: str, version: str) -> Any:
        try:
            return self._version_models[(name, version)]
        except KeyError:
            raise RegistryError(f"{name} has no version {version}") from None
