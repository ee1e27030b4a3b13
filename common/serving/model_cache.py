"""The predictor's model cache: champions per (symbol, trend), hot-swapped with zero downtime.

How a new champion replaces the old one without a failed or slow request:

- The ``champion`` alias is re-resolved at most every ``refresh_seconds`` per model. A request never waits
  for that: a stale entry keeps serving while one background refresh runs (``background=True``, the
  uvicorn server); on Lambda (one request at a time per environment) the refresh runs inline.
- A new version is loaded, its scorer compiled and checked (:mod:`common.serving.checked_versions`: that scorer
  must reproduce the probabilities the training run recorded) before it replaces the old one. The replacement
  is one reference assignment under a lock: a request holds the :class:`ServedModel` it started with, so
  in-flight requests finish on it, and later requests get the new one.
- A version that fails to load, to score or the check is never served: its refusal is remembered (by the
  :class:`common.serving.checked_versions.CheckedVersions` the batch predictions use too, so it is not
  retried on every refresh), logged and counted, and the previous model keeps serving.
- Each swap and refused load is also handed to ``on_event`` as a :class:`CacheEvent` (the Lambda adapter
  publishes them as metrics; this module stays free of AWS).

Nothing here imports MLflow: the registry is behind :class:`ModelSource`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

from common.core.settings import Trend, registered_model_name
from common.registry.mlflow_registry import VersionInfo
from common.registry.promotion import Suspension, decode_tags, suspension_of
from common.serving.checked_versions import CheckedModel, CheckedVersions, load_checked_version
from common.serving.feature_rows import FeatureRow
from common.training.scorer import Scorer

logger = logging.getLogger(__name__)


class ModelSource(Protocol):
    """Where champions come from (the MLflow registry in production, a fake in unit tests)."""

    def champion(self, name: str) -> VersionInfo | None: ...

    def load(self, info: VersionInfo) -> CheckedModel:
        """The version's model and its checked scorer; raises
        :class:`common.serving.checked_versions.ModelLoadError` when it must not be served."""
        ...


@dataclass(frozen=True)
class ServedModel:
    """One loaded, checked version. Immutable: a request that holds it scores with it to the end."""

    symbol: str
    trend: Trend
    name: str
    version: str
    model: Any
    score: Scorer  # rows in feature_names order -> P(trend); checked against training before serving
    feature_names: tuple[str, ...]
    tags: dict[str, Any]  # decoded version tags (metrics, target_pct, ...)
    loaded_at: float
    suspension: Suspension | None = None  # taken out of service: the API answers 404 for the pair
    interval: str = "1d"  # of the bars it scores

    def probability(self, row: FeatureRow) -> float:
        """P(trend) for a served feature row: the ``/prediction`` hot path, no DataFrame work."""
        return float(self.score(row.array_for(self.feature_names))[0])


@dataclass
class _Entry:
    served: ServedModel | None = None
    checked_at: float = -float("inf")
    refreshing: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass(frozen=True)
class CacheEvent:
    """A swap (a new version now serving) or a refused load (a version that will never serve)."""

    kind: Literal["swap", "rejected"]
    model: str  # registered model name, e.g. BTC_uptrend_model
    version: str
    previous: str | None  # the version served before (a swap) or still serving (a refusal); None: nothing
    why: str | None = None  # a refusal's reason


@dataclass(frozen=True)
class CacheStats:
    swaps: int
    rejected_loads: int
    refreshes: int


class ModelCache:
    """Champions per (symbol, trend, interval) with hot swap (module docstring)."""

    def __init__(
        self,
        source: ModelSource,
        *,
        refresh_seconds: float = 30.0,
        background: bool = True,
        clock: Callable[[], float] = time.monotonic,
        on_event: Callable[[CacheEvent], None] | None = None,
    ) -> None:
        self._source = source
        self._versions = CheckedVersions(source.load)  # checked once per version; refusals remembered
        self._on_event = on_event
        self._refresh_seconds = refresh_seconds
        self._clock = clock
        self._entries: dict[tuple[str, str, str], _Entry] = {}
        self._entries_lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="model-refresh") if background else None
        self._swaps = self._rejected = self._refreshes = 0
        self._stats_lock = threading.Lock()

    def get(self, symbol: str, trend: Trend, interval: str = "1d") -> ServedModel | None:
        """The model to serve now, or None when this model has no servable champion. Only the very first
        request of a model waits for a load; later ones get the current model at once."""
        entry = self._entry(symbol, trend, interval)
        if entry.served is None:
            with entry.lock:  # one loader; concurrent first requests wait for it instead of loading too
                if entry.served is None and self._due(entry):
                    self._refresh(symbol, trend, interval, entry)
            return entry.served
        if self._due(entry):
            self._schedule(symbol, trend, interval, entry)
        return entry.served

    def loaded_model(self, symbol: str, trend: Trend, interval: str = "1d") -> ServedModel | None:
        """What :meth:`get` returns when the model is already loaded (it never blocks then); None when it
        still needs its first, blocking load."""
        entry = self._entries.get((symbol, trend, interval))
        if entry is None or entry.served is None:
            return None
        return self.get(symbol, trend, interval)

    def refresh(self, symbol: str, trend: Trend, interval: str = "1d") -> ServedModel | None:
        """Re-resolve the champion now (tests, warm-up); returns what is served afterwards."""
        entry = self._entry(symbol, trend, interval)
        with entry.lock:
            self._refresh(symbol, trend, interval, entry)
        return entry.served

    def loaded(self) -> dict[tuple[str, str, str], ServedModel]:
        """Loaded models by (symbol, trend, interval)."""
        return {key: entry.served for key, entry in list(self._entries.items()) if entry.served is not None}

    def rejected(self) -> dict[tuple[str, str, str], dict[str, str]]:
        """Refused versions (version -> why) by (symbol, trend, interval)."""
        refused = {key: self._versions.refusals(registered_model_name(*key)) for key in list(self._entries)}
        return {key: versions for key, versions in refused.items() if versions}

    def stats(self) -> CacheStats:
        with self._stats_lock:
            return CacheStats(self._swaps, self._rejected, self._refreshes)

    def close(self) -> None:
        """Stop background refreshes (later ones run inline)."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

    # --- internals ------------------------------------------------------------------------------
    def _entry(self, symbol: str, trend: str, interval: str) -> _Entry:
        key = (symbol, trend, interval)
        entry = self._entries.get(key)
        if entry is None:
            with self._entries_lock:
                entry = self._entries.setdefault(key, _Entry())
        return entry

    def _due(self, entry: _Entry) -> bool:
        return self._clock() - entry.checked_at >= self._refresh_seconds

    def _schedule(self, symbol: str, trend: Trend, interval: str, entry: _Entry) -> None:
        if self._executor is None:
            with entry.lock:
                if self._due(entry):
                    self._refresh(symbol, trend, interval, entry)
            return
        with entry.lock:
            if entry.refreshing or not self._due(entry):
                return
            entry.refreshing = True
        self._executor.submit(self._background_refresh, symbol, trend, interval, entry)

    def _background_refresh(self, symbol: str, trend: Trend, interval: str, entry: _Entry) -> None:
        try:
            with entry.lock:
                self._refresh(symbol, trend, interval, entry)
        finally:
            entry.refreshing = False

    def _refresh(self, symbol: str, trend: Trend, interval: str, entry: _Entry) -> None:
        """Resolve the alias and swap in a new, checked version; never raises (the old model keeps serving)."""
        name = registered_model_name(symbol, trend, interval)
        with self._stats_lock:
            self._refreshes += 1
        try:
            info = self._source.champion(name)
        except Exception as exc:  # registry unreachable: keep serving what we have, try again later
            logger.warning("champion of %s not resolved: %s: %s", name, type(exc).__name__, exc)
            entry.checked_at = self._clock()
            return
        entry.checked_at = self._clock()
        current = entry.served
        if info is None:
            if current is not None:
                logger.warning("%s has no champion alias any more; v%s keeps serving", name, current.version)
            return
        if current is not None and current.version == info.version:
            suspension = suspension_of(info.tags)
            if suspension != current.suspension:  # suspended or resumed: same model, new answer
                entry.served = replace(current, suspension=suspension)
                logger.warning("%s v%s %s", name, info.version, suspension.text() if suspension else "resumed")
            return
        if self._versions.refusal(info.name, info.version) is not None:  # refused once: never retried
            return
        try:
            checked = self._versions.get(info)
        except Exception as exc:  # a ModelLoadError, whatever the load raised: never served
            why = f"{type(exc).__name__}: {exc}"
            with self._stats_lock:
                self._rejected += 1
            kept = f"v{current.version} keeps serving" if current is not None else "nothing to serve"
            logger.error("%s v%s rejected (%s); %s", name, info.version, why, kept)
            self._notify(CacheEvent("rejected", name, info.version, current.version if current else None, why))
            return
        tags = decode_tags(info.tags)
        entry.served = ServedModel(
            symbol,
            trend,
            name,
            info.version,
            checked.model,
            checked.score,
            checked.feature_names,
            tags,
            self._clock(),
            suspension_of(info.tags),
            interval,
        )
        with self._stats_lock:
            self._swaps += 1
        previous = f"v{current.version}" if current is not None else "nothing"
        logger.info("%s: v%s now serving (replaced %s)", name, info.version, previous)
        self._notify(CacheEvent("swap", name, info.version, current.version if current else None))

    def _notify(self, event: CacheEvent) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(event)
        except Exception:  # an observer (metrics) must never stop a swap or fail a request
            logger.exception("cache event observer failed on %s", event)


class RegistrySource:
    """:class:`ModelSource` over the MLflow registry (or its REST reader): the champion alias, and a version
    loaded and checked by :func:`common.serving.checked_versions.load_checked_version`."""

    def __init__(self, registry: Any) -> None:
        self._registry = registry

    def champion(self, name: str) -> VersionInfo | None:
        from common.registry.mlflow_registry import CHAMPION

        return self._registry.version_by_alias(name, CHAMPION)

    def load(self, info: VersionInfo) -> CheckedModel:
        return load_checked_version(self._registry, info)
