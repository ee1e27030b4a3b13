"""What a training run knows about its data before it trains: the validated closed bars up to the as-of
time, what validation found, their range, the label balance, and a reference to the exact stored object."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
from pydantic import BaseModel, ConfigDict

from common.errors import DataNotFoundError
from common.settings import GapPolicy
from common.targets import trend_labels
from common.validation import IssueKind, validate_bars


class DatasetManifest(BaseModel):
    model_config = ConfigDict(frozen=True)

    symbol: str
    trend: str
    interval: str
    as_of: datetime
    source_key: str
    source_version: str
    bars: int
    bars_not_closed_at_as_of: int
    rejected_rows: int  # refused by validation (bad prices, duplicates, ...)
    missing_bars: int  # gaps, handled by gap_policy
    gap_policy: GapPolicy
    stale: bool
    first_bar: datetime
    last_closed_bar: datetime
    labelled_bars: int
    positive_labels: int
    positive_rate: float
    prediction_window: int
    target_pct: float


def describe_dataset(
    bars: pd.DataFrame,
    *,
    symbol: str,
    trend: str,
    interval: str,
    as_of: datetime,
    prediction_window: int,
    target_pct: float,
    source_key: str,
    source_version: str = "",
    gap_policy: GapPolicy = "report",
    stale_after_bars: int = 2,
) -> DatasetManifest:
    validated = validate_bars(
        bars, symbol=symbol, interval=interval, as_of=as_of, gap_policy=gap_policy, stale_after_bars=stale_after_bars
    )
    closed, report = validated.bars, validated.report
    if closed.empty:
        raise DataNotFoundError(
            f"{symbol} {interval}: no valid closed bar at or before {as_of.isoformat()} ({report.summary()})"
        )
    labels = trend_labels(closed["close"], prediction_window, target_pct, trend).dropna()
    positives = int(labels.sum())
    return DatasetManifest(
        symbol=symbol,
        trend=trend,
        interval=interval,
        as_of=as_of,
        source_key=source_key,
        source_version=source_version,
        bars=len(closed),
        bars_not_closed_at_as_of=report.count(IssueKind.OPEN_BAR),
        rejected_rows=report.rejected_rows,
        missing_bars=report.count(IssueKind.GAP),
        gap_policy=gap_policy,
        stale=report.stale,
        first_bar=closed.index[0].to_pydatetime(),
        last_closed_bar=closed.index[-1].to_pydatetime(),
        labelled_bars=len(labels),
        positive_labels=positives,
        positive_rate=round(positives / len(labels), 6) if len(labels) else 0.0,
        prediction_window=prediction_window,
        target_pct=target_pct,
    )
