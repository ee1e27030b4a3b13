"""The shipped sample data: which files there are, their known defects as validation reports them, and
seeding the bucket from them, whole or up to a replay's start day."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from common.aws.storage import S3ObjectStore
from common.core.settings import DEFAULT_SYMBOLS
from common.data.bar_store import OhlcvStore
from common.data.ingestion import ingest_symbols
from common.data.market_feed import ReplayProvider
from common.data.validation import IssueKind
from retrain.stack.config import LocalStackConfig
from retrain.stack.sample_data import SAMPLE_DATA_END, available, seed
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


# Hourly files: three months from the Yahoo-derived snapshot, two years of Binance spot klines (sample_data/README.md).
YAHOO_HOURLY = ("BTC", "ETH", "SOL")
BINANCE_HOURLY = ("ADA", "BNB", "DOGE", "LINK", "LTC", "XRP")
BINANCE_FIRST, BINANCE_LAST = datetime(2023, 1, 1, tzinfo=UTC), datetime(2025, 2, 19, 23, tzinfo=UTC)


def test_the_shipped_files() -> None:
    shipped = available(LocalStackConfig().sample_data_dir)
    assert sorted(shipped) == sorted(DEFAULT_SYMBOLS)
    assert sorted(s for s, intervals in shipped.items() if "1h" in intervals) == sorted(YAHOO_HOURLY + BINANCE_HOURLY)
    assert all("1d" in intervals for intervals in shipped.values())


@pytest.mark.parametrize("symbol", BINANCE_HOURLY)
def test_each_binance_hourly_file_loads_with_its_defects_reported_not_refused(objects, symbol) -> None:
    """Through the replay provider, as `retrain ingest --provider replay` and the local stack read it: the
    exchange's maintenance hour on 2023-03-24 (the 12:00 bar with zero volume, no 13:00 bar) is reported as
    one zero-volume bar and one missing bar, both kept under the default gap policy."""
    until = SAMPLE_DATA_END  # 2025-02-20 00:00: the last hourly bar has just closed
    summary = ingest_symbols(
        OhlcvStore(objects), ReplayProvider(LocalStackConfig().sample_data_dir), [symbol], interval="1h", as_of=until
    )
    [ingested] = summary.symbols
    assert ingested.status == "created" and ingested.rejected_rows == 0 and not ingested.stale
    hours = int((BINANCE_LAST - BINANCE_FIRST).total_seconds() // 3600) + 1
    assert ingested.appended == hours - 1  # the whole file: every hour but the missing one
    assert (ingested.first_bar, ingested.last_bar) == (BINANCE_FIRST, BINANCE_LAST)
    report = ingested.append.incoming
    assert [(i.kind, i.count, i.examples) for i in report.issues] == [
        (IssueKind.ZERO_VOLUME, 1, ("2023-03-24 12:00",)),
        (IssueKind.GAP, 1, ("2023-03-24 13:00",)),
    ]
    assert report.summary().endswith("(zero_volume=1, gap=1)")
    assert "0 row(s) refused" in summary.render()
