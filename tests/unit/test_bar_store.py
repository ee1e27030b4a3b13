"""common.data.bar_store: validated appends and loads of OHLCV series in a versioned bucket (moto in-process).

Covers the module's guarantees: idempotent appends (no write at all when nothing is new), stored bars
never rewritten or dropped, the open bar never stored, boundary gaps handled by policy, a failed write
leaving the previous object intact, and a concurrent write detected and merged on top of.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from botocore.exceptions import EndpointConnectionError

from common.aws.storage import S3ObjectStore
from common.core.errors import ConcurrentWriteError, DataNotFoundError, DataValidationError
from common.core.keys import ohlcv_key
from common.data.bar_store import WRITE_ATTEMPTS, OhlcvStore, _check_nothing_lost
from common.data.ohlcv import parse_ohlcv_csv, to_ohlcv_csv
from common.data.validation import IssueKind, validate_bars
from tests.conftest import versioned_bucket

BUCKET = "retrain-test-bucket"
SAMPLE_OHLCV = Path(__file__).resolve().parents[2] / "sample_data" / "ohlcv"
SAMPLE_CSVS = sorted(SAMPLE_OHLCV.glob("*/*.csv"))
HEADER = b"datetime,open,high,low,close,volume\n"
DAY = timedelta(days=1)
SYMBOL = "BTC"
KEY = ohlcv_key(SYMBOL, "1d")


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _days(first: str, count: int, *, base: float = 100.0) -> pd.DataFrame:
    """``count`` valid daily bars from ``first``, with distinct non-round values (exercise exact floats)."""
    start = pd.Timestamp(first, tz="UTC")
    index = pd.DatetimeIndex([start + i * DAY for i in range(count)], name="datetime")
    rows = []
    for i in range(count):
        close = base + i * 1.1 + 0.3
        rows.append((base + i * 1.1, close + 0.7, base + i * 1.1 - 0.9, close, 1000.0 + i * 17.25))
    return pd.DataFrame(rows, index=index, columns=["open", "high", "low", "close", "volume"], dtype="float64")


def _after(bars: pd.DataFrame) -> datetime:
    """The as-of time at which the last of ``bars`` has just closed (daily)."""
    return (bars.index.max() + DAY).to_pydatetime()


# --- fixtures and client wrappers ---------------------------------------------------------------------------


@pytest.fixture
def s3_client(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with versioned_bucket(BUCKET) as client:
        yield client


@pytest.fixture
def store(s3_client: Any) -> OhlcvStore:
    return OhlcvStore(S3ObjectStore(BUCKET, s3_client))


class _ClientWrapper:
    """Delegates everything to a real boto3 client (including ``.exceptions``) except what a subclass overrides."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.put_calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _FailingPutClient(_ClientWrapper):
    def put_object(self, **kwargs: Any) -> Any:
        self.put_calls += 1
        raise EndpointConnectionError(endpoint_url=f"https://{BUCKET}.s3.amazonaws.com")


class _RacingPutClient(_ClientWrapper):
    """Before each of the first ``races`` PUTs, another writer changes the object (between our read and write)."""

    def __init__(self, inner: Any, race: Callable[[int], None], races: int = 1) -> None:
        super().__init__(inner)
        self._race = race
        self._races_left = races

    def put_object(self, **kwargs: Any) -> Any:
        self.put_calls += 1
        if self._races_left:
            self._races_left -= 1
            self._race(self.put_calls)
        return self._inner.put_object(**kwargs)


def _versions(client: Any, key: str = KEY) -> int:
    response = client.list_object_versions(Bucket=BUCKET, Prefix=key)
    return len([v for v in response.get("Versions", []) if v["Key"] == key])


def _stored_bytes(store: OhlcvStore, key: str = KEY) -> bytes:
    return store.objects.get_bytes(key)


def _seed(store: OhlcvStore, bars: pd.DataFrame, symbol: str = SYMBOL) -> None:
    result = store.append(symbol, "1d", bars, as_of=_after(bars))
    assert result.status == "created"


# --- the stored format ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", SAMPLE_CSVS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_sample_csv_round_trips_byte_for_byte(path: Path) -> None:
    payload = path.read_bytes()
    assert to_ohlcv_csv(parse_ohlcv_csv(payload)) == payload


# --- append -----------------------------------------------------------------------------------------------------


def test_append_to_empty_store_creates_the_object(store: OhlcvStore, s3_client: Any) -> None:
    bars = _days("2024-01-01", 5)
    assert store.last_bar(SYMBOL, "1d") is None
    result = store.append(SYMBOL, "1d", bars, as_of=_after(bars))
    assert result.status == "created"
    assert result.key == KEY
    assert (result.bars_before, result.bars_after, result.appended) == (0, 5, 5)
    assert result.first_appended == _utc("2024-01-01")
    assert result.last_appended == _utc("2024-01-05")
    assert (result.conflicts, result.boundary_gap) == (0, 0)
    assert result.version_id
    assert _versions(s3_client) == 1
    assert _stored_bytes(store) == to_ohlcv_csv(bars)
    pd.testing.assert_frame_equal(store.read(SYMBOL, "1d").bars, bars)
    assert store.read(SYMBOL, "1d").version_id == result.version_id
    assert store.last_bar(SYMBOL, "1d") == _utc("2024-01-05")
    document = json.loads(json.dumps(result.to_dict()))
    assert document["status"] == "created" and document["appended"] == 5


def test_same_append_again_is_unchanged_and_writes_no_version(store: OhlcvStore, s3_client: Any) -> None:
    bars = _days("2024-01-01", 5)
    first = store.append(SYMBOL, "1d", bars, as_of=_after(bars))
    before = _stored_bytes(store)
    again = store.append(SYMBOL, "1d", bars, as_of=_after(bars))
    assert again.status == "unchanged"
    assert (again.bars_before, again.bars_after, again.appended) == (5, 5, 0)
    assert again.first_appended is None and again.last_appended is None
    assert again.conflicts == 0
    assert again.version_id == first.version_id
    assert _versions(s3_client) == 1
    assert _stored_bytes(store) == before


def test_overlapping_append_adds_only_new_bars_and_keeps_stored_ones(store: OhlcvStore, s3_client: Any) -> None:
    stored = _days("2024-01-01", 5)
    _seed(store, stored)
    before = _stored_bytes(store)

    incoming = _days("2024-01-04", 5)  # 01-04..01-08: 01-04 and 01-05 overlap
    incoming.loc[:, :] = _days("2024-01-01", 8).loc[incoming.index].to_numpy()  # same values where stored
    incoming.loc[pd.Timestamp("2024-01-04", tz="UTC"), "close"] += 0.05  # ...except one: a conflict
    result = store.append(SYMBOL, "1d", incoming, as_of=_after(incoming))

    assert result.status == "appended"
    assert (result.bars_before, result.bars_after, result.appended) == (5, 8, 3)
    assert result.conflicts == 1
    assert result.first_appended == _utc("2024-01-06")
    assert result.last_appended == _utc("2024-01-08")
    assert _versions(s3_client) == 2
    after = _stored_bytes(store)
    assert after.startswith(before)  # every stored line kept byte-for-byte; the new ones follow
    merged = store.read(SYMBOL, "1d").bars
    pd.testing.assert_frame_equal(merged.loc[stored.index], stored)  # the stored 01-04 value won
    pd.testing.assert_frame_equal(merged.iloc[5:], incoming.iloc[2:], check_freq=False)


def test_backfill_of_older_bars_keeps_the_stored_lines(store: OhlcvStore) -> None:
    history = _days("2024-01-01", 8)
    _seed(store, history.iloc[4:])
    before_lines = _stored_bytes(store).splitlines()[1:]
    result = store.append(SYMBOL, "1d", history.iloc[:6], as_of=_after(history))
    assert result.status == "appended"
    assert (result.appended, result.boundary_gap, result.conflicts) == (4, 0, 0)
    after = _stored_bytes(store)
    assert after == to_ohlcv_csv(history)
    assert after.splitlines()[-4:] == before_lines


def test_open_bar_at_as_of_is_never_stored(store: OhlcvStore) -> None:
    bars = _days("2024-01-01", 5)
    as_of = _utc("2024-01-05 12:00")  # the 01-05 bar is still open
    result = store.append(SYMBOL, "1d", bars, as_of=as_of)
    assert result.status == "created"
    assert result.appended == 4
    assert result.incoming.count(IssueKind.OPEN_BAR) == 1
    assert store.last_bar(SYMBOL, "1d") == _utc("2024-01-04")

    # Once it has closed, the (final) 01-05 bar is appended.
    final = bars.iloc[4:].copy()
    final["close"] += 0.1
    later = store.append(SYMBOL, "1d", final, as_of=_utc("2024-01-06"))
    assert later.status == "appended" and later.appended == 1
    pd.testing.assert_frame_equal(store.read(SYMBOL, "1d").bars.iloc[4:], final)


def test_bars_after_as_of_are_never_stored(store: OhlcvStore, s3_client: Any) -> None:
    bars = _days("2024-01-10", 3)
    result = store.append(SYMBOL, "1d", bars, as_of=_utc("2024-01-01"))
    assert result.status == "unchanged"
    assert result.incoming.count(IssueKind.OPEN_BAR) == 3
    assert _versions(s3_client) == 0
    assert not store.objects.exists(KEY)


def test_all_invalid_incoming_stores_nothing(store: OhlcvStore, s3_client: Any) -> None:
    bad = _days("2024-01-01", 5)
    bad["low"] = 0.0  # non-positive price on every row
    on_empty = store.append(SYMBOL, "1d", bad, as_of=_after(bad))
    assert on_empty.status == "unchanged"
    assert on_empty.appended == 0
    assert on_empty.incoming.rejected_rows == 5
    assert on_empty.version_id == ""
    assert _versions(s3_client) == 0

    _seed(store, _days("2024-01-01", 3))
    before = _stored_bytes(store)
    bad_new = _days("2024-01-01", 6).iloc[3:].copy()
    bad_new["high"] = bad_new["low"] - 1.0  # high below low on every row
    on_existing = store.append(SYMBOL, "1d", bad_new, as_of=_after(bad_new))
    assert on_existing.status == "unchanged"
    assert on_existing.incoming.rejected_rows == 3
    assert _versions(s3_client) == 1
    assert _stored_bytes(store) == before


def test_invalid_rows_in_a_batch_are_skipped_and_the_rest_appended(store: OhlcvStore) -> None:
    _seed(store, _days("2024-01-01", 3))
    incoming = _days("2024-01-01", 6).iloc[3:].copy()  # 01-04..01-06
    incoming.iloc[2, incoming.columns.get_loc("volume")] = -1.0  # 01-06 refused
    result = store.append(SYMBOL, "1d", incoming, as_of=_after(incoming))
    assert result.appended == 2
    assert result.incoming.count(IssueKind.NEGATIVE_VOLUME) == 1
    assert store.last_bar(SYMBOL, "1d") == _utc("2024-01-05")


# --- boundary gaps ------------------------------------------------------------------------------------------

STORED = _days("2024-01-01", 5)  # 01-01..01-05
LATER = _days("2024-01-08", 2, base=120.0)  # 01-08, 01-09: 01-06 and 01-07 missing in between


def test_boundary_gap_report_appends_and_counts(store: OhlcvStore) -> None:
    _seed(store, STORED)
    result = store.append(SYMBOL, "1d", LATER, as_of=_after(LATER), gap_policy="report")
    assert result.status == "appended"
    assert result.boundary_gap == 2
    assert result.appended == 2
    assert result.to_dict()["boundary_gap"] == 2
    stored = store.read(SYMBOL, "1d").bars
    assert list(stored.index) == [*STORED.index, *LATER.index]
    loaded = store.load(SYMBOL, "1d", as_of=_after(LATER))
    assert loaded.report.count(IssueKind.GAP) == 2


def test_boundary_gap_fill_stores_flat_bars(store: OhlcvStore) -> None:
    _seed(store, STORED)
    result = store.append(SYMBOL, "1d", LATER, as_of=_after(LATER), gap_policy="fill")
    assert result.status == "appended"
    assert result.boundary_gap == 2
    assert result.appended == 4
    assert result.first_appended == _utc("2024-01-06")
    stored = store.read(SYMBOL, "1d").bars
    assert len(stored) == 9
    last_close = float(STORED["close"].iloc[-1])
    for day in ("2024-01-06", "2024-01-07"):
        bar = stored.loc[pd.Timestamp(day, tz="UTC")]
        assert bar[["open", "high", "low", "close"]].tolist() == [last_close] * 4
        assert bar["volume"] == 0.0
    pd.testing.assert_frame_equal(stored.loc[LATER.index], LATER)
    assert store.load(SYMBOL, "1d", as_of=_after(LATER)).report.count(IssueKind.GAP) == 0


def test_boundary_gap_reject_raises_and_leaves_the_object(store: OhlcvStore, s3_client: Any) -> None:
    _seed(store, STORED)
    before = _stored_bytes(store)
    with pytest.raises(DataValidationError, match=r"BTC 1d: appending from 2024-01-08 00:00 would leave 2 missing"):
        store.append(SYMBOL, "1d", LATER, as_of=_after(LATER), gap_policy="reject")
    assert _stored_bytes(store) == before
    assert _versions(s3_client) == 1


def test_contiguous_append_under_reject_is_accepted(store: OhlcvStore) -> None:
    history = _days("2024-01-01", 8)
    _seed(store, history.iloc[:5])
    result = store.append(SYMBOL, "1d", history.iloc[5:], as_of=_after(history), gap_policy="reject")
    assert result.status == "appended"
    assert (result.appended, result.boundary_gap) == (3, 0)


# --- failed and concurrent writes ---------------------------------------------------------------------------


def test_failed_write_leaves_the_previous_object_intact(store: OhlcvStore, s3_client: Any) -> None:
    _seed(store, STORED)
    before = _stored_bytes(store)
    failing = _FailingPutClient(s3_client)
    broken = OhlcvStore(S3ObjectStore(BUCKET, failing))
    more = _days("2024-01-01", 7).iloc[5:]
    with pytest.raises(EndpointConnectionError):
        broken.append(SYMBOL, "1d", more, as_of=_after(more))
    assert failing.put_calls == 1  # not retried as if it were a lost race
    assert _stored_bytes(store) == before
    assert _versions(s3_client) == 1
    # The next (working) append proceeds from the intact object.
    assert store.append(SYMBOL, "1d", more, as_of=_after(more)).appended == 2


def test_failed_first_write_creates_nothing(s3_client: Any) -> None:
    broken = OhlcvStore(S3ObjectStore(BUCKET, _FailingPutClient(s3_client)))
    with pytest.raises(EndpointConnectionError):
        broken.append(SYMBOL, "1d", STORED, as_of=_after(STORED))
    assert _versions(s3_client) == 0


def test_concurrent_write_is_detected_and_merged_on_top(store: OhlcvStore, s3_client: Any) -> None:
    history = _days("2024-01-01", 8)
    _seed(store, history.iloc[:5])  # 01-01..01-05

    def other_writer(_: int) -> None:  # appends 01-06 between our read and our write
        s3_client.put_object(Bucket=BUCKET, Key=KEY, Body=to_ohlcv_csv(history.iloc[:6]))

    racing = _RacingPutClient(s3_client, other_writer)
    ours = OhlcvStore(S3ObjectStore(BUCKET, racing))
    # We fetch 01-07 and 01-08; on our first read 01-06 is missing, so "fill" would bridge it flat.
    result = ours.append(SYMBOL, "1d", history.iloc[6:], as_of=_after(history), gap_policy="fill")

    assert racing.put_calls == 2  # the first conditional PUT lost the race, the retry won
    assert result.status == "appended"
    assert result.bars_before == 6  # merged on top of the other writer's result
    assert (result.appended, result.boundary_gap) == (2, 0)
    assert _versions(s3_client) == 3  # seed, other writer, ours: nothing overwritten
    stored = store.read(SYMBOL, "1d").bars
    # Both writers' bars are stored, and 01-06 is the other writer's real bar, not a flat fill.
    pd.testing.assert_frame_equal(stored, history, check_freq=False)


def test_concurrent_creation_is_detected_and_merged_on_top(store: OhlcvStore, s3_client: Any) -> None:
    history = _days("2024-01-01", 5)

    def other_writer(_: int) -> None:  # creates the series with 01-01..01-03 first
        s3_client.put_object(Bucket=BUCKET, Key=KEY, Body=to_ohlcv_csv(history.iloc[:3]))

    racing = _RacingPutClient(s3_client, other_writer)
    ours = OhlcvStore(S3ObjectStore(BUCKET, racing))
    result = ours.append(SYMBOL, "1d", history.iloc[2:], as_of=_after(history))
    assert racing.put_calls == 2
    assert result.status == "appended"
    assert (result.bars_before, result.appended, result.conflicts) == (3, 2, 0)
    assert _versions(s3_client) == 2
    pd.testing.assert_frame_equal(store.read(SYMBOL, "1d").bars, history, check_freq=False)


def test_writer_that_keeps_losing_gives_up_without_overwriting(store: OhlcvStore, s3_client: Any) -> None:
    history = _days("2024-01-01", 12)
    _seed(store, history.iloc[:5])

    def other_writer(call: int) -> None:  # a new bar from the other writer before every one of our PUTs
        s3_client.put_object(Bucket=BUCKET, Key=KEY, Body=to_ohlcv_csv(history.iloc[: 5 + call]))

    racing = _RacingPutClient(s3_client, other_writer, races=WRITE_ATTEMPTS)
    ours = OhlcvStore(S3ObjectStore(BUCKET, racing))
    with pytest.raises(ConcurrentWriteError, match=f"{WRITE_ATTEMPTS} append attempts"):
        ours.append(SYMBOL, "1d", history.iloc[10:], as_of=_after(history))
    assert racing.put_calls == WRITE_ATTEMPTS
    assert _versions(s3_client) == 1 + WRITE_ATTEMPTS  # only the other writer's versions
    assert _stored_bytes(store) == to_ohlcv_csv(history.iloc[: 5 + WRITE_ATTEMPTS])


def test_append_on_a_stale_base_retries_on_the_current_object(store: OhlcvStore, s3_client: Any) -> None:
    history = _days("2024-01-01", 8)
    _seed(store, history.iloc[:5])
    base = store.read(SYMBOL, "1d")  # our read...
    store.append(SYMBOL, "1d", history.iloc[5:6], as_of=_after(history))  # ...then another writer adds 01-06
    result = store.append(SYMBOL, "1d", history.iloc[6:], as_of=_after(history), gap_policy="fill", base=base)
    assert result.status == "appended"
    assert (result.bars_before, result.appended, result.boundary_gap) == (6, 2, 0)
    assert _versions(s3_client) == 3
    pd.testing.assert_frame_equal(store.read(SYMBOL, "1d").bars, history, check_freq=False)


def test_append_to_an_object_without_trailing_newline(store: OhlcvStore) -> None:
    history = _days("2024-01-01", 4)
    store.objects.put_bytes(KEY, to_ohlcv_csv(history.iloc[:2]).rstrip(b"\n"))
    result = store.append(SYMBOL, "1d", history.iloc[2:], as_of=_after(history))
    assert (result.status, result.appended) == ("appended", 2)
    assert _stored_bytes(store) == to_ohlcv_csv(history)


# --- the guard ----------------------------------------------------------------------------------------------


def test_check_nothing_lost_accepts_a_merge_that_only_adds() -> None:
    existing = _days("2024-01-01", 5)
    merged = pd.concat([existing, _days("2024-01-06", 2, base=200.0)])
    _check_nothing_lost(existing, merged, KEY)
    _check_nothing_lost(existing, existing.copy(), KEY)


def test_check_nothing_lost_refuses_a_dropped_bar() -> None:
    existing = _days("2024-01-01", 5)
    merged = pd.concat([existing.drop(existing.index[2]), _days("2024-01-06", 2)])
    with pytest.raises(RuntimeError, match=f"refusing to write {KEY}"):
        _check_nothing_lost(existing, merged, KEY)


def test_check_nothing_lost_refuses_a_changed_bar() -> None:
    existing = _days("2024-01-01", 5)
    merged = existing.copy()
    merged.iloc[1, merged.columns.get_loc("close")] += 1e-9
    with pytest.raises(RuntimeError, match="lose or change stored bars"):
        _check_nothing_lost(existing, merged, KEY)


def test_check_nothing_lost_refuses_a_duplicated_bar() -> None:
    existing = _days("2024-01-01", 5)
    merged = pd.concat([existing, existing.iloc[-1:]])
    with pytest.raises(RuntimeError):
        _check_nothing_lost(existing, merged, KEY)


# --- load ---------------------------------------------------------------------------------------------------

SAMPLE_AS_OF = {"1d": _utc("2025-02-21"), "1h": _utc("2025-02-20")}


def _put_sample(store: OhlcvStore, interval: str, symbol: str) -> tuple[bytes, str]:
    payload = (SAMPLE_OHLCV / interval / f"{symbol}.csv").read_bytes()
    version_id = store.objects.put_bytes(ohlcv_key(symbol, interval), payload, content_type="text/csv")
    return payload, version_id


@pytest.mark.parametrize(("interval", "symbol"), [("1d", "BTC"), ("1d", "AAVE"), ("1d", "AVAX"), ("1h", "ETH")])
def test_load_sample_series_returns_validated_bars_and_version(store: OhlcvStore, interval: str, symbol: str) -> None:
    payload, version_id = _put_sample(store, interval, symbol)
    as_of = SAMPLE_AS_OF[interval]
    loaded = store.load(symbol, interval, as_of=as_of)
    assert loaded.key == ohlcv_key(symbol, interval)
    assert loaded.version_id == version_id != ""
    expected = validate_bars(parse_ohlcv_csv(payload), symbol=symbol, interval=interval, as_of=as_of)
    pd.testing.assert_frame_equal(loaded.bars, expected.bars)
    assert loaded.report == expected.report
    assert loaded.bars.index.is_monotonic_increasing and loaded.bars.index.is_unique
    assert not loaded.report.stale


def test_load_passes_policy_and_staleness_through(store: OhlcvStore) -> None:
    _put_sample(store, "1d", "AVAX")
    filled = store.load("AVAX", "1d", as_of=SAMPLE_AS_OF["1d"], gap_policy="fill")
    assert filled.report.rows_out == filled.report.rows_in + 69
    with pytest.raises(DataValidationError, match="AVAX 1d: 69 missing"):
        store.load("AVAX", "1d", as_of=SAMPLE_AS_OF["1d"], gap_policy="reject")
    late = store.load("AVAX", "1d", as_of=_utc("2025-02-25"), stale_after_bars=3)
    assert late.report.stale
    assert not store.load("AVAX", "1d", as_of=_utc("2025-02-25"), stale_after_bars=5).report.stale


def test_load_at_an_earlier_as_of_replays_history(store: OhlcvStore) -> None:
    _put_sample(store, "1d", "BTC")
    loaded = store.load("BTC", "1d", as_of=_utc("2024-06-01 12:00"))
    assert loaded.report.last_closed_bar == _utc("2024-05-31")
    assert loaded.bars.index.max() == pd.Timestamp("2024-05-31", tz="UTC")


def test_load_unknown_symbol_raises_not_found(store: OhlcvStore) -> None:
    _seed(store, STORED)  # BTC exists, NOPE does not
    with pytest.raises(DataNotFoundError) as caught:
        store.load("NOPE", "1d", as_of=SAMPLE_AS_OF["1d"])
    message = str(caught.value)
    assert "NOPE" in message and "1d" in message and BUCKET in message
    assert store.last_bar("NOPE", "1d") is None


def test_load_unknown_symbol_names_the_key(store: OhlcvStore) -> None:
    key = ohlcv_key("NOPE", "1d")
    with pytest.raises(DataNotFoundError, match=re.escape(key)):
        store.load("NOPE", "1d", as_of=SAMPLE_AS_OF["1d"])


def test_load_when_every_bar_is_invalid_raises_not_found(store: OhlcvStore) -> None:
    payload = HEADER + b"2024-01-01,0,2,0.5,1.5,10\n2024-01-02,1,2,0.5,1.5,-3\n"
    store.objects.put_bytes(KEY, payload)
    with pytest.raises(DataNotFoundError, match="BTC 1d: no valid closed bar at or before 2024-01-03 00:00") as caught:
        store.load(SYMBOL, "1d", as_of=_utc("2024-01-03"))
    message = str(caught.value)
    assert KEY in message
    assert "non_positive_price=1" in message and "negative_volume=1" in message  # the report says why


def test_load_before_the_first_bar_closes_raises_not_found(store: OhlcvStore) -> None:
    _seed(store, STORED)
    with pytest.raises(DataNotFoundError, match="no valid closed bar at or before 2024-01-01 12:00"):
        store.load(SYMBOL, "1d", as_of=_utc("2024-01-01 12:00"))


# --- the sample data through the store ---------------------------------------------------------------------


@pytest.mark.parametrize(("interval", "symbol"), [("1d", "BTC"), ("1h", "ETH")])
def test_appending_a_sample_file_stores_it_byte_for_byte(
    store: OhlcvStore, s3_client: Any, interval: str, symbol: str
) -> None:
    payload = (SAMPLE_OHLCV / interval / f"{symbol}.csv").read_bytes()
    bars = parse_ohlcv_csv(payload)
    key = ohlcv_key(symbol, interval)
    created = store.append(symbol, interval, bars, as_of=SAMPLE_AS_OF[interval])
    assert created.status == "created"
    assert created.appended == len(bars)
    assert _stored_bytes(store, key) == payload
    again = store.append(symbol, interval, bars, as_of=SAMPLE_AS_OF[interval])
    assert again.status == "unchanged"
    assert _versions(s3_client, key) == 1


def test_hourly_series_starting_at_midnight_keeps_its_stored_lines(store: OhlcvStore) -> None:
    key = ohlcv_key(SYMBOL, "1h")
    first = parse_ohlcv_csv(HEADER + b"2024-01-01 00:00:00,1.5,2.5,1.25,2.0,10\n")
    store.append(SYMBOL, "1h", first, as_of=_utc("2024-01-01 01:00"))
    before = _stored_bytes(store, key)
    second = parse_ohlcv_csv(HEADER + b"2024-01-01 01:00:00,2.0,2.5,1.75,2.25,11\n")
    assert store.append(SYMBOL, "1h", second, as_of=_utc("2024-01-01 02:00")).appended == 1
    assert before == HEADER + b"2024-01-01 00:00:00,1.5,2.5,1.25,2.0,10\n"  # hourly format from the start
    assert _stored_bytes(store, key).startswith(before)


def test_a_backfill_mixed_with_bars_after_a_gap_still_reports_the_new_gap(store: OhlcvStore) -> None:
    """Stored Jan 3-5, fetched Jan 1, 2 and 8: the older bars fill in, Jan 6-7 are the new hole."""
    _seed(store, _days("2024-01-03", 3))
    fetched = pd.concat([_days("2024-01-01", 2, base=90.0), _days("2024-01-08", 1, base=130.0)])
    result = store.append(SYMBOL, "1d", fetched, as_of=_utc("2024-01-09"), gap_policy="report")
    assert (result.appended, result.boundary_gap) == (3, 2)
    with pytest.raises(DataValidationError, match="3 missing bar"):  # Jan 9-11
        store.append(SYMBOL, "1d", _days("2024-01-12", 1), as_of=_utc("2024-01-13"), gap_policy="reject")
