"""The prediction log: what each champion predicted for each closed bar, and what happened.

One S3 object per (model, bar, version) (``common.core.keys.prediction_key``), written only where none exists
(a conditional PUT), so batch predictions are idempotent however often they run: a re-run never changes
``created_at`` nor drops an outcome already filled in. The outcome resolver fills ``realized`` once the
label's horizon has passed, with a PUT conditional on the ETag it read (a concurrent update is never lost).
The performance trigger reads it. Fields follow the original system's stored predictions (input row, probability, target, window) plus the
version, the bar, the interval and the outcome.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field

from common.aws.storage import S3ObjectStore
from common.core.errors import ConcurrentWriteError
from common.core.keys import prediction_key, predictions_prefix
from common.core.settings import Interval, Trend, UtcDatetime

DECISION_THRESHOLD = 0.5


class PredictionRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    created_at: UtcDatetime
    symbol: str
    trend: Trend
    model_name: str
    model_version: str
    bar: UtcDatetime  # open time of the last closed bar the features were computed from
    prediction_prob: float = Field(ge=0, le=1)
    prediction_input: dict[str, float | None]
    target_pct: float
    prediction_window_days: int  # the original field name; in bars of the model's interval
    outcome_due: UtcDatetime  # when the label's horizon has passed
    interval: Interval | None = None  # of ``bar`` (None in records written before the field existed)
    realized: bool | None = None
    realized_pct: float | None = None  # the SMA10 change the realized label was judged on
    resolved_at: UtcDatetime | None = None

    @property
    def predicted(self) -> bool:
        return self.prediction_prob > DECISION_THRESHOLD

    @property
    def correct(self) -> bool | None:
        return None if self.realized is None else self.predicted == self.realized


def record_key(record: PredictionRecord) -> str:
    return prediction_key(record.symbol, record.trend, record.bar, record.model_version, record.interval or "1d")


def is_logged(store: S3ObjectStore, symbol: str, trend: str, bar: datetime, version: str, interval: str) -> bool:
    """Whether (model, bar, version) has a record. A listing, not a HEAD: with a prefix-scoped ListBucket
    grant a HEAD of a missing key may answer 403 rather than 404."""
    key = prediction_key(symbol, trend, bar, version, interval)
    return key in store.list_keys(key)


def write_record(store: S3ObjectStore, record: PredictionRecord) -> bool:
    """Store ``record`` unless its (model, bar, version) already has one: True when written, False when
    the stored one was kept as it is (it may hold an outcome, and its ``created_at`` is the first run's)."""
    try:
        store.put_json(record_key(record), record.model_dump(mode="json"), if_absent=True)
    except ConcurrentWriteError:
        return False
    return True


def read_record(store: S3ObjectStore, key: str) -> tuple[PredictionRecord, str]:
    """The record at ``key`` and the ETag a conditional update of it must match."""
    stored = store.get_object(key)
    return PredictionRecord.model_validate_json(stored.body), stored.etag


def replace_record(store: S3ObjectStore, key: str, record: PredictionRecord, *, etag: str) -> None:
    """Overwrite the record at ``key`` only if it is still the version read (ETag ``etag``); raises
    :class:`ConcurrentWriteError` when someone else changed it since."""
    store.put_json(key, record.model_dump(mode="json"), if_match=etag)


def record_keys(
    store: S3ObjectStore, symbol: str, trend: str, *, since: datetime, until: datetime, interval: str
) -> list[str]:
    """Keys of the records of bars in [since, until), oldest bar first; judged from the key (the bar is in it),
    so no record is read."""
    prefix = predictions_prefix(symbol, trend, interval)
    keys = []
    for key in store.list_keys(prefix):
        bar_text = key[len(prefix) :].split("/", 1)[0].removeprefix("bar=")
        try:
            bar = datetime.fromisoformat(bar_text).replace(tzinfo=since.tzinfo)
        except ValueError:
            continue  # not a record key
        if since <= bar < until:
            keys.append(key)
    return sorted(keys)


def read_records(
    store: S3ObjectStore, symbol: str, trend: str, *, since: datetime, until: datetime, interval: str
) -> list[PredictionRecord]:
    """Records of bars in [since, until); the bar is in the key, so only those objects are read."""
    keys = record_keys(store, symbol, trend, since=since, until=until, interval=interval)
    return [PredictionRecord.model_validate(store.get_json(key)) for key in keys]


def live_accuracy_counts(records: list[PredictionRecord]) -> tuple[int, int]:
    """(correct, resolved) over the records whose outcome is known."""
    resolved = [r for r in records if r.realized is not None]
    return sum(bool(r.correct) for r in resolved), len(resolved)


def window_start(as_of: datetime, window_days: int) -> datetime:
    return as_of - timedelta(days=window_days)
