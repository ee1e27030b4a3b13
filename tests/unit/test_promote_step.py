"""promote_model's guards with a fake registry: a version that does not load back identically is never
made champion; the first champion, idempotent re-runs and the recorded-score fallback."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from common.aws.storage import MemoryObjectStore
from common.core.settings import load_settings
from common.data.bar_store import OhlcvStore
from common.loop.events import TrainResult
from common.loop.training_steps import promote_model
from common.registry.mlflow_registry import CHAMPION, PREVIOUS, SAMPLE_ARTIFACT, VersionInfo
from common.registry.promotion import encode_tags

AS_OF = datetime(2025, 2, 20, tzinfo=UTC)
SAMPLE = {"index": ["2025-02-18T00:00:00+00:00", "2025-02-19T00:00:00+00:00"], "columns": ["a", "b"],
          "rows": [[1.0, 2.0], [3.0, 4.0]], "proba": [0.25, 0.75]}  # fmt: skip


class Model:
    def __init__(self, proba: list[float]) -> None:
        self.proba = proba

    def predict(self, rows: Any) -> np.ndarray:
        p = np.asarray(self.proba)
        return np.column_stack([1 - p, p])


@dataclass
class FakeRegistry:
    versions: dict[str, VersionInfo] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    models: dict[str, Model] = field(default_factory=dict)
    tags_set: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def version_by_alias(self, name: str, alias: str) -> VersionInfo | None:
        version = self.aliases.get(alias)
        return self.versions[version] if version else None

    def version(self, name: str, version: str) -> VersionInfo:
        return self.versions[version]

    def load_model(self, name: str, version: str) -> Model:
        return self.models[version]

    def load_json_artifact(self, run_id: str, path: str) -> Any:
        assert path == SAMPLE_ARTIFACT
        return SAMPLE

    def set_version_tags(self, name: str, version: str, tags: dict[str, str]) -> None:
        self.tags_set.append((version, tags))

    def move_champion(self, name: str, version: str) -> str | None:
        current = self.aliases.get(CHAMPION)
        if current == version:
            return None
        if current:
            self.aliases[PREVIOUS] = current
        self.aliases[CHAMPION] = version
        return current


def _version(version: str, score: float) -> VersionInfo:
    tags = encode_tags({"metrics": {"overall_score": score}})
    return VersionInfo("BTC_uptrend_model", version, f"run-{version}", tags, ())


def _trained(version: str | None, score: float = 0.62) -> TrainResult:
    return TrainResult(symbol="BTC", trend="uptrend", registered_model="BTC_uptrend_model",
                       status="registered" if version else "rejected", version=version,
                       metrics={"overall_score": score}, why="gate says no" if version is None else "")  # fmt: skip


def _promote(registry: FakeRegistry, trained: TrainResult, **settings: object):
    # An empty store: no prediction log, so no live record either way (the evidence tests write one).
    store = OhlcvStore(MemoryObjectStore())
    configured = load_settings().model_copy(update=settings)
    return promote_model(configured, registry, store=store, trained=trained, as_of=AS_OF)  # type: ignore[arg-type]


def test_first_version_that_loads_back_identically_becomes_champion() -> None:
    registry = FakeRegistry(versions={"1": _version("1", 0.62)}, models={"1": Model([0.25, 0.75])})
    result = _promote(registry, _trained("1"))
    assert (result.status, result.champion_version, result.previous_version) == ("promoted", "1", None)
    assert registry.aliases == {CHAMPION: "1"}


@pytest.mark.parametrize("proba", [[0.25, 0.70], [0.25, 1.5], [float("nan"), 0.75]])
def test_a_version_that_does_not_reproduce_its_training_scores_is_never_served(proba: list[float]) -> None:
    registry = FakeRegistry(
        versions={"1": _version("1", 0.6), "2": _version("2", 0.9)},
        aliases={CHAMPION: "1"},
        models={"2": Model(proba)},
    )
    result = _promote(registry, _trained("2", 0.9))
    assert result.status == "rejected" and "load-back check" in result.why
    assert registry.aliases == {CHAMPION: "1"}
    assert registry.tags_set and "retrain.load_check" in registry.tags_set[0][1]


def test_a_model_that_cannot_score_is_rejected_not_raised() -> None:
    class Broken:
        def predict(self, rows: Any) -> Any:
            raise RuntimeError("pickled with another sklearn")

    registry = FakeRegistry(versions={"2": _version("2", 0.9)}, models={"2": Broken()})  # type: ignore[dict-item]
    result = _promote(registry, _trained("2", 0.9))
    assert result.status == "rejected" and "RuntimeError" in result.why and CHAMPION not in registry.aliases


def test_nothing_registered_reports_the_gate_and_keeps_the_champion() -> None:
    registry = FakeRegistry(versions={"1": _version("1", 0.6)}, aliases={CHAMPION: "1"})
    result = _promote(registry, _trained(None))
    assert (result.status, result.why, result.champion_version) == ("rejected", "gate says no", "1")


def test_a_champion_without_a_data_range_is_compared_on_recorded_scores() -> None:
    registry = FakeRegistry(
        versions={"1": _version("1", 0.70), "2": _version("2", 0.62)},
        aliases={CHAMPION: "1"},
        models={"2": Model([0.25, 0.75])},
    )
    result = _promote(registry, _trained("2", 0.62), promotion_rule="not_worse")  # the original rule's fallback
    assert result.status == "rejected" and result.comparison == "recorded_score"
    assert registry.aliases == {CHAMPION: "1"}
    better = _promote(registry, _trained("2", 0.75), promotion_rule="not_worse")
    assert better.status == "promoted" and registry.aliases == {CHAMPION: "2", PREVIOUS: "1"}
    again = _promote(registry, _trained("2", 0.75))  # a retried task: nothing moves
    assert again.status == "promoted" and again.comparison == "same_version"
    assert registry.aliases == {CHAMPION: "2", PREVIOUS: "1"}
