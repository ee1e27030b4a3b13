"""Seeding the bucket from the shipped sample data, whole or up to a replay's start day."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from common.bar_store import OhlcvStore
from common.storage import S3ObjectStore
from retrain.stack.config import LocalStackConfig
from retrain.stack.sample_data import SAMPLE_DATA_END, seed
from tests.conftest import versioned_bucket

BUCKET = "seed-test"


@pytest.fixture
def objects() -> Iterator[S3ObjectStore]:
    with versioned_bucket(BUCKET) as s3:
        yield S3ObjectStore(BUCKET, client=s3)


def test_seeding_up_to_a_day_stores_only_bars_closed_by_then_and_skips_series_that_start_later(objects) -> None:
    until = datetime(2024, 11, 20, tzinfo=UTC)  # SOL's hourly file starts on 2024-11-23
    summary = seed(objects, LocalStackConfig().sample_data_dir, ("SOL",), until=until)

    assert summary.not_yet == ("SOL 1h",) and "1 starting later (SOL 1h)" in summary.summary()
    (daily,) = summary.results
    assert daily.interval == "1d"
    bars = OhlcvStore(objects).load("SOL", "1d", as_of=SAMPLE_DATA_END).bars
    assert bars.index.max() == datetime(2024, 11, 19, tzinfo=UTC)  # the 11-19 bar closed at 11-20 00:00


def test_seeding_again_adds_nothing(objects) -> None:
    sample = LocalStackConfig().sample_data_dir
    until = datetime(2024, 11, 20, tzinfo=UTC)
    seed(objects, sample, ("BTC",), until=until)
    again = seed(objects, sample, ("BTC",), until=until)
    assert len(again.results) == 2  # 1d and 1h
    assert [r.appended for r in again.results] == [0, 0] and all(r.bars_after > 0 for r in again.results)
