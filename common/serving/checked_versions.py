"""A registered version made ready to score, and refused unless it scores as it did in training; and the
cache of such versions that the predictor and the batch predictions share.

:func:`load_checked_version` loads a version (its booster's native file when its run logged one, else its
pickle), compiles the scorer that will score it (:func:`common.training.scorer.compile_scorer`) and runs the
load-back check on that very scorer (:func:`common.registry.mlflow_registry.load_back_problem`: the
probabilities its training run recorded, to 1e-9). A version that fails any of it raises
:class:`ModelLoadError`.

:class:`CheckedVersions` keeps the outcome by (registered name, version): the checked model, or why it was
refused. The predictor's hot swap (:mod:`common.serving.model_cache`) and the batch predictions
(:mod:`common.serving.batch_predict`) both score through it, so a prediction the log records is one the
API would serve, and a version the API refuses is refused by both, loaded once.

Nothing here imports MLflow or scikit-learn: a native model needs neither (the predictor's cold start).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from common.core.errors import RetrainError
from common.data.features import FEATURE_NAMES
from common.registry.mlflow_registry import SAMPLE_ARTIFACT, VersionInfo, load_back_problem
from common.registry.promotion import decode_tags
from common.training.native_models import load_native, native_reference
from common.training.scorer import Scorer, compile_scorer


class ModelLoadError(RetrainError):
    """A registered version could not be loaded, or failed its load-back check."""


@dataclass(frozen=True)
class CheckedModel:
    """A loaded version and the scorer that passed the load-back check (the one that will score)."""

    model: Any
    score: Scorer
    feature_names: tuple[str, ...]  # the order ``score`` takes its columns in


def load_checked_version(registry: Any, info: VersionInfo) -> CheckedModel:
    """``info``'s model and its compiled scorer, once that scorer reproduced the probabilities the training
    run recorded; raises :class:`ModelLoadError` otherwise.

    ``registry`` is MLflow's (:class:`common.registry.mlflow_registry.Registry`), its REST reader
    (:class:`common.registry.mlflow_rest.RestRegistryReader`) or the backtest's
    (:class:`common.registry.memory_registry.MemoryRegistry`): it answers ``run_tags``, ``artifact_bytes``,
    ``load_json_artifact`` and ``load_model``. A version whose run logged a native model file (named by its
    run tag :data:`common.training.native_models.NATIVE_MODEL_TAG`) is loaded from that file, without
    unpickling (nor importing) the booster's sklearn wrapper; any other from its pickle. The load-back
    sample is fetched while the model loads."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="load-back-sample") as pool:
        sample = pool.submit(registry.load_json_artifact, info.run_id, SAMPLE_ARTIFACT)
        try:
            native = native_reference(registry.run_tags(info.run_id))
            if native is not None:
                payload = registry.artifact_bytes(info.run_id, native["path"])
                if payload is None:
                    raise FileNotFoundError(f"run {info.run_id} has no {native['path']}, which its tags name")
                model = load_native(native, payload)
            else:
                model = registry.load_model(info.name, info.version)
            names = feature_names_of(model, info)
            score = compile_scorer(model, names)
        except Exception as exc:
            raise ModelLoadError(f"{info.name} v{info.version} failed to load: {type(exc).__name__}: {exc}") from exc
        try:
            recorded = sample.result()
        except Exception as exc:  # without the recorded probabilities there is nothing to check against
            raise ModelLoadError(
                f"{info.name} v{info.version} failed its load-back check: "
                f"no recorded sample ({type(exc).__name__}: {exc})"
            ) from exc

    def check(rows: pd.DataFrame) -> np.ndarray:
        return score(rows[list(names)].to_numpy(dtype="float64"))

    problem = load_back_problem(registry, model, info.run_id, score=check, sample=recorded)
    if problem is not None:
        raise ModelLoadError(f"{info.name} v{info.version} failed its load-back check: {problem}")
    return CheckedModel(model, score, names)


def feature_names_of(model: Any, info: VersionInfo) -> tuple[str, ...]:
    """The columns a version scores, in order: its ``feature_names`` tag, else what it was fitted on."""
    names = decode_tags(info.tags).get("feature_names") or getattr(model, "feature_names_in_", None)
    return tuple(str(n) for n in names) if names is not None and len(names) else FEATURE_NAMES


class CheckedVersions:
    """Versions by (registered name, version), each loaded and checked through ``load`` the first time it is
    asked for: the checked model, or the refusal (:class:`ModelLoadError`) raised again without loading.

    Only the last checked version of each registered name is kept: a replaced champion is let go (a
    predictor that runs for months does not hold every version it ever served; a rollback loads the old
    one again). Refusals are kept for good, a sentence each. Safe to share between threads; the lock is
    not held while a version loads, so two threads asking for the same new version at once may both load
    it (the predictor asks for one model's versions one at a time)."""

    def __init__(self, load: Callable[[VersionInfo], CheckedModel]) -> None:
        self._load = load
        self._checked: dict[tuple[str, str], CheckedModel] = {}
        self._refused: dict[tuple[str, str], str] = {}  # why, as the ModelLoadError said it
        self._lock = threading.Lock()

    @classmethod
    def of(cls, registry: Any) -> CheckedVersions:
        """``registry``'s versions, loaded by :func:`load_checked_version`."""
        return cls(functools.partial(load_checked_version, registry))

    def get(self, info: VersionInfo) -> CheckedModel:
        """The checked model of ``info``'s version; raises :class:`ModelLoadError` when it must not score
        (whatever ``load`` raised the first time, given as a ModelLoadError from then on too)."""
        key = (info.name, info.version)
        with self._lock:
            checked, refused = self._checked.get(key), self._refused.get(key)
        if checked is not None:
            return checked
        if refused is not None:
            raise ModelLoadError(refused)
        try:
            checked = self._load(info)
        except Exception as exc:  # anything an artifact can raise: the version is refused
            if isinstance(exc, ModelLoadError):
                why = str(exc)
            else:
                why = f"{info.name} v{info.version} failed to load: {type(exc).__name__}: {exc}"
            with self._lock:
                self._refused[key] = why
            raise ModelLoadError(why) from exc
        with self._lock:
            for replaced in [k for k in self._checked if k[0] == info.name]:
                del self._checked[replaced]
            self._checked[key] = checked
        return checked

    def refusal(self, name: str, version: str) -> str | None:
        """Why the version was refused, or None (checked, or never asked for)."""
        with self._lock:
            return self._refused.get((name, version))

    def refusals(self, name: str) -> dict[str, str]:
        """Version -> why, for the refused versions of registered model ``name``."""
        with self._lock:
            return {version: why for (refused, version), why in self._refused.items() if refused == name}
