"""common.data.datasets.describe_dataset on the real BTC sample data, replayed at an as-of time in 2024."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from common.core.errors import DataNotFoundError
from common.data.datasets import describe_dataset
from common.data.targets import trend_labels

SAMPLE_DATA = Path(__file__).resolve().parents[2] / "sample_data"
AS_OF = datetime(2024, 6, 1, 12, tzinfo=UTC)  # the 2024-06-01 daily bar is still open


@pytest.fixture(scope="module")
def btc_daily() -> pd.DataFrame:
    from common.data.ohlcv import parse_ohlcv_csv

    return parse_ohlcv_csv((SAMPLE_DATA / "ohlcv" / "1d" / "BTC.csv").read_bytes(), source="BTC.csv")


def _describe(bars: pd.DataFrame, trend: str = "uptrend", horizon: int = 10, as_of: datetime = AS_OF, **kw):
    return describe_dataset(
        bars,
        symbol=kw.pop("symbol", "BTC"),
        trend=trend,
        interval=kw.pop("interval", "1d"),
        as_of=as_of,
        prediction_window=horizon,
        target_pct=0.05,
        source_key="ohlcv/interval=1d/symbol=BTC/bars.csv",
        source_version="v1",
        **kw,
    )


@pytest.mark.parametrize("trend", ["uptrend", "downtrend"])
@pytest.mark.parametrize("horizon", [1, 10, 30])
def test_manifest_counts(btc_daily: pd.DataFrame, trend: str, horizon: int) -> None:
    manifest = _describe(btc_daily, trend, horizon)
    # Closed at 2024-06-01T12:00Z: bars opened on or before 2024-05-31.
    expected_closed = int((btc_daily.index <= pd.Timestamp("2024-05-31", tz="UTC")).sum())
    assert manifest.bars == expected_closed
    assert manifest.bars_not_closed_at_as_of == len(btc_daily) - expected_closed
    assert manifest.bars_not_closed_at_as_of > 0
    assert manifest.first_bar == datetime(2014, 9, 17, tzinfo=UTC)
    assert manifest.last_closed_bar == datetime(2024, 5, 31, tzinfo=UTC)
    # No label for the last h closed bars (future outcome) nor for the 9 SMA10 warm-up bars.
    assert manifest.labelled_bars == manifest.bars - horizon - 9
    assert 0 <= manifest.positive_labels <= manifest.labelled_bars
    assert 0.0 <= manifest.positive_rate <= 1.0
    assert manifest.positive_rate == pytest.approx(manifest.positive_labels / manifest.labelled_bars, abs=1e-6)
    assert manifest.prediction_window == horizon
    assert manifest.trend == trend
    assert manifest.source_version == "v1"


def test_positive_labels_use_only_closed_bars(btc_daily: pd.DataFrame) -> None:
    manifest = _describe(btc_daily, "uptrend", 10)
    closed = btc_daily.loc[: pd.Timestamp("2024-05-31", tz="UTC")]
    expected = int(trend_labels(closed["close"], 10, 0.05, "uptrend").sum())
    assert manifest.positive_labels == expected
    # BTC in 2014-2024 had both kinds of ten-day moves: a degenerate count would hide a bug.
    assert 0 < manifest.positive_labels < manifest.labelled_bars


def test_later_bars_do_not_change_the_manifest(btc_daily: pd.DataFrame) -> None:
    """Everything after the as-of time is invisible: cutting it off gives the same manifest."""
    full = _describe(btc_daily)
    cut = _describe(btc_daily.loc[: pd.Timestamp("2024-06-01", tz="UTC")])
    assert full.model_dump(exclude={"bars_not_closed_at_as_of"}) == cut.model_dump(exclude={"bars_not_closed_at_as_of"})
    assert cut.bars_not_closed_at_as_of == 1


def test_manifest_serialises_to_json(btc_daily: pd.DataFrame) -> None:
    document = _describe(btc_daily).model_dump(mode="json")
    assert document["last_closed_bar"].startswith("2024-05-31T00:00:00")
    assert document["symbol"] == "BTC"


@pytest.mark.parametrize(
    "as_of",
    [datetime(2014, 9, 1, tzinfo=UTC), datetime(2014, 9, 17, 23, 59, tzinfo=UTC)],
    ids=["before-first-bar", "first-bar-still-open"],
)
def test_no_closed_bar_raises_data_not_found(btc_daily: pd.DataFrame, as_of: datetime) -> None:
    with pytest.raises(DataNotFoundError, match="BTC"):
        _describe(btc_daily, as_of=as_of)


def test_first_bar_closed_gives_one_bar_and_no_labels(btc_daily: pd.DataFrame) -> None:
    manifest = _describe(btc_daily, as_of=datetime(2014, 9, 18, tzinfo=UTC))
    assert manifest.bars == 1
    assert manifest.labelled_bars == 0
    assert manifest.positive_rate == 0.0


def _sample(symbol: str) -> pd.DataFrame:
    from common.data.ohlcv import parse_ohlcv_csv

    return parse_ohlcv_csv((SAMPLE_DATA / "ohlcv" / "1d" / f"{symbol}.csv").read_bytes(), source=symbol)


def test_the_manifest_reports_what_validation_refused_and_never_counts_it() -> None:
    aave = _sample("AAVE")  # first bar has zero open/low
    manifest = _describe(aave, as_of=datetime(2025, 2, 21, tzinfo=UTC))
    assert manifest.rejected_rows == 1
    assert manifest.bars == len(aave) - 1
    assert manifest.first_bar == datetime(2020, 10, 3, tzinfo=UTC)


@pytest.mark.parametrize(("policy", "bars_delta"), [("report", 0), ("fill", 69)])
def test_gaps_follow_the_configured_policy(policy: str, bars_delta: int) -> None:
    avax = _sample("AVAX")  # one 69-day gap
    manifest = _describe(avax, as_of=datetime(2025, 2, 21, tzinfo=UTC), gap_policy=policy)
    assert (manifest.missing_bars, manifest.gap_policy) == (69, policy)
    assert manifest.bars == len(avax) + bars_delta


def test_gap_policy_reject_refuses_the_series() -> None:
    from common.core.errors import DataValidationError

    with pytest.raises(DataValidationError, match="AVAX 1d: 69 missing bar"):
        _describe(_sample("AVAX"), symbol="AVAX", as_of=datetime(2025, 2, 21, tzinfo=UTC), gap_policy="reject")


def test_a_replay_far_past_the_data_is_stale() -> None:
    assert _describe(_sample("BTC"), as_of=datetime(2025, 3, 1, tzinfo=UTC)).stale
    assert not _describe(_sample("BTC"), as_of=datetime(2025, 2, 21, tzinfo=UTC)).stale


# --- TrainModel trains on what PrepareDataset pinned -------------------------------------------------------------
def _overwrite_with_other_history(objects, key: str, bars: pd.DataFrame) -> None:
    """Someone rewrites the series between the two steps: a shorter history with other prices."""
    from common.data.ohlcv import to_ohlcv_csv

    other = bars.tail(800).copy()
    other[["open", "high", "low", "close"]] *= 2
    objects.put_bytes(key, to_ohlcv_csv(other))


def _prepared(objects, btc_daily: pd.DataFrame):
    from common.core.settings import load_settings
    from common.data.bar_store import OhlcvStore
    from common.data.datasets import prepare_dataset

    OhlcvStore(objects).append("BTC", "1d", btc_daily, as_of=datetime(2030, 1, 1, tzinfo=UTC))
    settings = load_settings(symbols=("BTC",), train_classifiers=("ridge",))
    key, manifest = prepare_dataset(
        settings, objects, run_id="run-1", symbol="BTC", trend="uptrend", interval="1d", as_of=AS_OF
    )
    assert objects.get_json(key) == manifest.model_dump(mode="json")
    return settings, manifest


def test_training_uses_the_pinned_bars_when_the_object_is_overwritten_after_prepare_dataset(
    btc_daily: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    import common.training.evaluation
    from common.aws.storage import MemoryObjectStore
    from common.data.bar_store import OhlcvStore
    from common.data.ohlcv import closed_mask
    from common.loop.training_steps import train_model
    from common.registry.memory_registry import MemoryRegistry

    objects = MemoryObjectStore()
    settings, manifest = _prepared(objects, btc_daily)
    _overwrite_with_other_history(objects, manifest.source_key, btc_daily)
    trained_on: list[pd.DataFrame] = []
    training_data = common.training.evaluation.training_data

    def spy(bars: pd.DataFrame, **kwargs: object) -> object:
        trained_on.append(bars)
        return training_data(bars, **kwargs)

    monkeypatch.setattr(common.training.evaluation, "training_data", spy)
    registry = MemoryRegistry()

    result = train_model(
        settings,
        registry,
        OhlcvStore(objects),
        execution_id="run-1",
        symbol="BTC",
        trend="uptrend",
        reason="test",
        as_of=manifest.as_of,
        dataset=manifest,
    )

    (bars,) = trained_on
    pd.testing.assert_frame_equal(bars, btc_daily.loc[closed_mask(btc_daily.index, "1d", AS_OF)], check_freq=False)
    assert (bars.index[0], bars.index[-1], len(bars)) == (manifest.first_bar, manifest.last_closed_bar, manifest.bars)
    assert result.data_last_bar == "2024-05-21T00:00:00+00:00"  # the last labelled bar: 10 before the last closed one
    parent = registry._runs[result.mlflow_run_id]
    assert parent.tags["source"].endswith(f"{manifest.source_key}?versionId={manifest.source_version}")


def test_pinned_bars_read_the_pinned_s3_version_and_refuse_what_no_longer_matches(btc_daily: pd.DataFrame) -> None:
    from common.aws.storage import S3ObjectStore
    from common.core.errors import DatasetMismatchError
    from common.data.bar_store import OhlcvStore
    from common.data.datasets import pinned_bars
    from common.data.ohlcv import closed_mask
    from tests.conftest import versioned_bucket

    with versioned_bucket("retrain-datasets-test") as s3:
        objects = S3ObjectStore("retrain-datasets-test", client=s3)
        _, manifest = _prepared(objects, btc_daily)
        _overwrite_with_other_history(objects, manifest.source_key, btc_daily)
        store = OhlcvStore(objects)

        loaded = pinned_bars(store, manifest)

        assert loaded.version_id == manifest.source_version
        pd.testing.assert_frame_equal(
            loaded.bars, btc_daily.loc[closed_mask(btc_daily.index, "1d", AS_OF)], check_freq=False
        )
        # The pinned version is gone (deleted by hand): a clear error, never the newest object instead.
        s3.delete_object(Bucket="retrain-datasets-test", Key=manifest.source_key, VersionId=manifest.source_version)
        with pytest.raises(DatasetMismatchError, match="the dataset this run prepared is gone"):
            pinned_bars(store, manifest)
        # Without versions, the newest object must still be the bytes the manifest recorded.
        with pytest.raises(DatasetMismatchError, match="the manifest recorded"):
            pinned_bars(store, manifest.model_copy(update={"source_version": ""}))


def test_training_refuses_a_manifest_of_another_model_or_as_of_time(btc_daily: pd.DataFrame) -> None:
    from common.aws.storage import MemoryObjectStore
    from common.core.errors import DatasetMismatchError
    from common.data.bar_store import OhlcvStore
    from common.loop.training_steps import train_model
    from common.registry.memory_registry import MemoryRegistry

    objects = MemoryObjectStore()
    settings, manifest = _prepared(objects, btc_daily)
    for symbol, trend, as_of in [
        ("ETH", "uptrend", AS_OF),
        ("BTC", "downtrend", AS_OF),
        ("BTC", "uptrend", datetime(2024, 6, 2, tzinfo=UTC)),
    ]:
        with pytest.raises(
            DatasetMismatchError, match=r"was handed the manifest of BTC uptrend 1d as of 2024-06-01T12"
        ):
            train_model(
                settings,
                MemoryRegistry(),
                OhlcvStore(objects),
                execution_id="run-1",
                symbol=symbol,
                trend=trend,
                reason="test",
                as_of=as_of,
                dataset=manifest,
            )
