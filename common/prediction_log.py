"""The prediction log: what each champion predicted for each closed bar, and what happened.

One S3 object per (model, bar, version) (``common.keys.prediction_key``): writing the same prediction
again is the same PUT, so batch predictions are idempotent however often they run. The outcome
resolver fills ``realized`` once the label's horizon has passed. The performance trigger reads it.
Fields follow the original system's stored predictions (SPEC) plus the version, the bar and the outcome.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field

from common.keys import prediction_key, predictions_prefix
from common.settings import Trend, UtcDatetime
from common.storage import S3ObjectStore

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
    realized: bool | None = None
    resolved_at: UtcDatetime | None = None

    @property
    def predicted(self) -> bool:
        return self.prediction_prob > DECISION_THRESHOLD

    @property
    def correct(self) -> bool | None:
        return None if self.realized is None else self.predicted == self.realized


def write_record(store: S3ObjectStore, record: PredictionRecord) -> str:
    key = prediction_key(record.symbol, record.trend, record.bar, record.model_version)
    store.put_json(key, record.model_dump(mode="json"))
    return key


def read_records(
    store: S3ObjectStore, symbol: str, trend: str, *, since: datetime, until: datetime
) -> list[PredictionRecord]:
    """Records of bars in [since, until); the bar is in the key, so only those objects are read."""
    prefix = predictions_prefix(symbol, trend)
    records = []
    for key in store.list_keys(prefix):
        bar_text = key[len(prefix) :].split("/", 1)[0].removeprefix("bar=")
        try:
            bar = datetime.fromisoformat(bar_text).replace(tzinfo=since.tzinfo)
        except ValueError:
            continue  # not a record key
        if since <= bar < until:
            records.append(PredictionRecord.model_validate(store.get_json(key)))
    return records


def live_accuracy_counts(records: list[PredictionRecord]) -> tuple[int, int]:
    """(correct, resolved) over the records whose outcome is known."""
    resolved = [r for r in records if r.realized is not None]
    return sum(bool(r.correct) for r in resolved), len(resolved)


def window_start(as_of: datetime, window_days: int) -> datetime:
    return as_of - timedelta(days=window_days)
