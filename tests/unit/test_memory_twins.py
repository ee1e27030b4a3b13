"""The in-memory twins the backtest runs the live loop's code on: MemoryObjectStore keeps S3's contract
(versions, ETags, conditional writes, ordered prefix listings) and MemoryRegistry answers the registry and
tracking calls of common.registry.mlflow_registry.Registry (runs, results, versions, aliases, the last training)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from common.aws.storage import MemoryObjectStore
from common.core.errors import ConcurrentWriteError, DataNotFoundError
from common.registry.memory_registry import MemoryRegistry
from common.registry.mlflow_registry import (
    CHAMPION,
    EXECUTION_TAG,
    PREVIOUS,
    RESULT_TAG,
    RegistryError,
    load_back_problem,
)


def test_memory_store_writes_versions_and_etags_like_s3() -> None:
    store = MemoryObjectStore()
    first = store.put_bytes("a/1", b"x")
    second = store.put_bytes("a/1", b"y")
    assert first != second and (store.get_object("a/1").body, store.get_object("a/1").version_id) == (b"y", second)
    import hashlib

    assert store.get_object("a/1").etag == f'"{hashlib.md5(b"y").hexdigest()}"'
    with pytest.raises(DataNotFoundError):
        store.get_bytes("missing")
    assert store.exists("a/1") and not store.exists("a")


def test_memory_store_conditional_writes_refuse_a_changed_object() -> None:
    store = MemoryObjectStore()
    store.put_json("k", {"n": 1}, if_absent=True)
    with pytest.raises(ConcurrentWriteError):
        store.put_json("k", {"n": 2}, if_absent=True)
    etag = store.get_object("k").etag
    store.put_json("k", {"n": 2}, if_match=etag)
    with pytest.raises(ConcurrentWriteError):
        store.put_json("k", {"n": 3}, if_match=etag)  # stale ETag: someone wrote since
    with pytest.raises(ConcurrentWriteError):
        store.put_json("new", {"n": 1}, if_match=etag)  # If-Match on a missing object fails, as on S3
    assert store.get_json("k") == {"n": 2}


@pytest.mark.parametrize("backend", ["s3", "memory"])
def test_both_stores_read_an_earlier_version_by_its_id(backend: str) -> None:
    """The contract PrepareDataset's pin relies on, the same on S3 (a versioned bucket) and in memory."""
    import contextlib
    import hashlib

    from common.aws.storage import S3ObjectStore
    from tests.conftest import versioned_bucket

    with versioned_bucket("twins") if backend == "s3" else contextlib.nullcontext() as s3:
        store = S3ObjectStore("twins", client=s3) if backend == "s3" else MemoryObjectStore("twins")
        first = store.put_bytes("ohlcv/a.csv", b"first")
        second = store.put_bytes("ohlcv/a.csv", b"second")

        assert store.get_object("ohlcv/a.csv").body == b"second"
        pinned = store.get_object("ohlcv/a.csv", first)
        assert (pinned.body, pinned.version_id) == (b"first", first)
        assert store.get_object("ohlcv/a.csv", second).body == b"second"
        assert pinned.etag == f'"{hashlib.md5(b"first").hexdigest()}"'
        other = store.put_bytes("ohlcv/b.csv", b"other")
        for key, version in [("ohlcv/a.csv", other), ("ohlcv/missing.csv", first)]:
            with pytest.raises(DataNotFoundError, match="does not exist"):
                store.get_object(key, version)


def test_memory_store_lists_a_prefix_in_key_order() -> None:
    store = MemoryObjectStore()
    for key in ["p/b", "q/a", "p/a", "p", "pa/x"]:
        store.put_bytes(key, b"")
    assert list(store.list_keys("p/")) == ["p/a", "p/b"]
    assert list(store.list_keys("p")) == ["p", "p/a", "p/b", "pa/x"]
    assert list(store.list_keys("z")) == []


class Half:
    """A fitted 'model' whose P(trend) is the first column: enough for the load-back sample."""

    classes_ = np.array([0, 1])

    def predict_proba(self, rows: pd.DataFrame) -> np.ndarray:
        p = np.clip(np.asarray(rows, dtype=float)[:, 0], 0, 1)
        return np.column_stack([1 - p, p])


def _train(registry: MemoryRegistry, as_of: datetime, execution: str, *, fail: bool = False) -> str:
    experiment = registry.experiment_id("BTC_uptrend")
    with registry.start_run(
        experiment_id=experiment, run_name=execution, tags={EXECUTION_TAG: execution, "as_of": as_of.isoformat()}
    ) as run_id:
        with registry.start_run(experiment_id=experiment, run_name="child", tags={}, nested=True):
            uri = registry.log_model(Half(), "half", pd.DataFrame({"a": [0.1]}))
            registry.log_load_back_sample(
                Half(), pd.DataFrame({"a": [0.2, 0.7]}, index=pd.to_datetime(["2024-01-01", "2024-01-02"], utc=True))
            )
        if fail:
            raise RuntimeError("the training failed")
        registry.set_run_tag(RESULT_TAG, '{"status": "rejected"}')
    return uri if not fail else run_id


def test_memory_registry_runs_results_and_the_last_training() -> None:
    registry = MemoryRegistry()
    t1, t2 = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 8, tzinfo=UTC)
    _train(registry, t1, "e1")
    _train(registry, t2, "e2")
    with pytest.raises(RuntimeError):
        _train(registry, datetime(2024, 1, 9, tzinfo=UTC), "e3", fail=True)
    experiment = registry.experiment_id("BTC_uptrend")
    assert registry.recorded_result(experiment, "e1") is not None
    assert registry.recorded_result(experiment, "e3") is None, "a failed run carries no result"
    # Strictly before, finished runs only (as the MLflow registry answers).
    assert registry.last_training("BTC_uptrend", before=datetime(2024, 1, 20, tzinfo=UTC)) == t2
    assert registry.last_training("BTC_uptrend", before=t2) == t1
    assert registry.last_training("BTC_uptrend", before=t1) is None
    assert registry.last_training("ETH_uptrend", before=t2) is None


def test_memory_registry_versions_aliases_and_load_back() -> None:
    registry = MemoryRegistry()
    uri = _train(registry, datetime(2024, 1, 1, tzinfo=UTC), "e1")
    v1 = registry.register("BTC_uptrend_model", uri, {EXECUTION_TAG: "e1"})
    v2 = registry.register("BTC_uptrend_model", uri, {EXECUTION_TAG: "e2"})
    assert (v1.version, v2.version) == ("1", "2")
    assert registry.version_by_alias("BTC_uptrend_model", CHAMPION) is None
    assert registry.move_champion("BTC_uptrend_model", "1") is None
    assert registry.move_champion("BTC_uptrend_model", "2") == "1"
    assert registry.move_champion("BTC_uptrend_model", "2") is None, "already the champion: nothing moves"
    assert registry.version_by_alias("BTC_uptrend_model", CHAMPION).version == "2"
    assert registry.version_by_alias("BTC_uptrend_model", PREVIOUS).aliases == (PREVIOUS,)
    assert registry.version_for_execution("BTC_uptrend_model", "e2").version == "2"
    registry.set_version_tags("BTC_uptrend_model", "2", {"retrain.promotion": "{}"})
    assert registry.version("BTC_uptrend_model", "2").tags["retrain.promotion"] == "{}"
    model = registry.load_model("BTC_uptrend_model", "1")
    assert load_back_problem(registry, model, v1.run_id) is None  # the live check, on the memory twin
    with pytest.raises(RegistryError):
        registry.load_model("BTC_uptrend_model", "9")
    with pytest.raises(RegistryError):
        registry.load_json_artifact(v1.run_id, "nothing.json")
