"""What a training run knows about its data before it trains: the validated closed bars up to the as-of
time, what validation found, their range, the label balance, and a reference to the exact stored object.

PrepareDataset writes the manifest (:func:`prepare_dataset`); TrainModel trains on exactly the bars it pins
(:func:`pinned_bars`), whatever was appended or overwritten in between.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import pandas as pd
from pydantic import BaseModel, ConfigDict

from common.core.errors import DataNotFoundError, DatasetMismatchError
from common.core.keys import dataset_manifest_key, ohlcv_key
from common.core.settings import GapPolicy
from common.data.bar_store import LoadedBars, OhlcvStore
from common.data.targets import trend_labels
from common.data.validation import IssueKind, ValidatedBars, validate_bars

if TYPE_CHECKING:
    from common.aws.storage import ObjectStore
    from common.core.settings import Settings, Trend


class DatasetManifest(BaseModel):
    model_config = ConfigDict(frozen=True)

    symbol: str
    trend: str
    interval: str
    as_of: datetime
    source_key: str
    source_version: str  # "" where the bucket keeps no versions
    source_etag: str = ""  # the bytes read ("" in manifests written before it was recorded)
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
    source_etag: str = "",
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
        source_etag=source_etag,
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


def prepare_dataset(
    settings: Settings,
    objects: ObjectStore,
    *,
    run_id: str,
    symbol: str,
    trend: Trend,
    interval: str,
    as_of: datetime,
) -> tuple[str, DatasetManifest]:
    """PrepareDataset: describe the stored series as it is now and write the manifest that pins it (object
    version and ETag, bar range) for the run's later steps. Returns the manifest's key and the manifest."""
    settings = settings.for_interval(interval)  # type: ignore[arg-type]
    stored = OhlcvStore(objects).read(symbol, interval)  # type: ignore[arg-type]
    manifest = describe_dataset(
        stored.bars,
        symbol=symbol,
        trend=trend,
        interval=interval,
        as_of=as_of,
        prediction_window=settings.prediction_window,
        target_pct=settings.target_pct(trend),
        source_key=stored.key,
        source_version=stored.version_id,
        source_etag=stored.etag,
        gap_policy=settings.gap_policy,
        stale_after_bars=settings.stale_after_bars,
    )
    key = dataset_manifest_key(run_id, symbol, trend, interval)
    objects.put_json(key, manifest.model_dump(mode="json"))
    return key, manifest


def pinned_bars(store: OhlcvStore, manifest: DatasetManifest, *, stale_after_bars: int = 2) -> LoadedBars:
    """The bars ``manifest`` describes, whatever the series holds now: its object version (in a bucket without
    versions, the newest object, provided it is still the same bytes), validated as PrepareDataset validated
    it (as of its as-of time, under its gap policy) and cut to its bar range.

    :class:`DatasetMismatchError` when that cannot be had: the version is gone, the bytes changed, or the
    bars are not the ones the manifest counted (validation itself changed in between)."""
    key = ohlcv_key(manifest.symbol, manifest.interval)
    where = f"s3://{store.objects.bucket}/{key}"
    if manifest.source_key != key:
        raise DatasetMismatchError(f"the manifest pins {manifest.source_key}, but the series is stored at {key}")
    try:
        loaded = store.load(
            manifest.symbol,
            manifest.interval,
            as_of=manifest.as_of,
            gap_policy=manifest.gap_policy,
            stale_after_bars=stale_after_bars,
            version_id=manifest.source_version or None,
        )
    except DataNotFoundError as exc:
        raise DatasetMismatchError(f"the dataset this run prepared is gone: {exc}") from None
    if manifest.source_etag and loaded.etag != manifest.source_etag:
        pinned = f"version {manifest.source_version}" if manifest.source_version else "object"
        raise DatasetMismatchError(
            f"{where}: the pinned {pinned} has ETag {loaded.etag}, the manifest recorded {manifest.source_etag}"
        )
    bars = loaded.bars.loc[manifest.first_bar : manifest.last_closed_bar]
    if len(bars) != manifest.bars or bars.index[0] != manifest.first_bar or bars.index[-1] != manifest.last_closed_bar:
        found = f"{len(bars)} bars" + (f" from {bars.index[0]} to {bars.index[-1]}" if len(bars) else "")
        raise DatasetMismatchError(
            f"{where}: {found} at {manifest.as_of.isoformat()}, the manifest pinned {manifest.bars} from "
            f"{manifest.first_bar.isoformat()} to {manifest.last_closed_bar.isoformat()}"
        )
    if len(bars) == len(loaded.bars):
        return loaded
    # Only with neither a version nor an ETag to pin (an unversioned bucket and an older manifest): bars
    # back-filled before the range since PrepareDataset ran are left out.
    return LoadedBars(loaded.key, loaded.version_id, ValidatedBars(bars, loaded.report), loaded.etag)
