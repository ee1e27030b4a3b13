"""The drift reference (common.loop.drift_reference): decile bins that keep out-of-range values, ignore NaN,
collapse ties without empty bins, and survive a JSON round trip exactly (SPEC.md, triggers item 2)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common.data.features import FEATURE_NAMES, compute_features
from common.data.ohlcv import parse_ohlcv_csv
from common.loop.drift_reference import (
    FORMAT_VERSION,
    DriftReference,
    FeatureReference,
    bin_shares,
    build_reference,
    feature_reference,
)

DAILY = sorted((Path(__file__).resolve().parents[2] / "sample_data" / "ohlcv" / "1d").glob("*.csv"))


def _frame(**columns: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(columns)


def test_continuous_feature_gets_deciles_and_shares_sum_to_one() -> None:
    values = np.random.default_rng(0).normal(size=1000)
    ref = feature_reference(values)
    assert len(ref.edges) == 9 and len(ref.shares) == 10
    assert ref.shares == pytest.approx((0.1,) * 10)
    assert sum(ref.shares) == pytest.approx(1.0)
    assert list(ref.edges) == sorted(set(ref.edges))
    assert ref.count == 1000 and ref.missing_rate == 0.0


def test_own_data_gives_back_exactly_its_shares() -> None:
    rng = np.random.default_rng(1)
    frame = _frame(a=rng.normal(size=777), b=rng.exponential(size=777), c=rng.integers(0, 4, size=777).astype(float))
    reference = build_reference(frame)
    for name, ref in reference.features.items():
        assert tuple(bin_shares(frame[name].to_numpy(), ref.edges)) == ref.shares


def test_values_equal_to_an_edge_go_to_the_lower_bin() -> None:
    edges = (1.0, 2.0, 3.0)
    assert bin_shares(np.array([1.0]), edges).tolist() == [1.0, 0.0, 0.0, 0.0]
    assert bin_shares(np.array([1.0000001]), edges).tolist() == [0.0, 1.0, 0.0, 0.0]
    assert bin_shares(np.array([3.0]), edges).tolist() == [0.0, 0.0, 1.0, 0.0]
    assert bin_shares(np.array([3.5]), edges).tolist() == [0.0, 0.0, 0.0, 1.0]


def test_out_of_range_values_fall_in_the_outer_bins_not_dropped() -> None:
    ref = feature_reference(np.arange(100.0))
    live = np.array([-1e9, -5.0, 50.0, 1e9, 1e12])
    shares = bin_shares(live, ref.edges)
    assert shares.sum() == pytest.approx(1.0)
    assert shares[0] == pytest.approx(2 / 5) and shares[-1] == pytest.approx(2 / 5)


def test_nan_and_inf_only_count_in_missing_rate() -> None:
    values = np.r_[np.arange(90.0), np.full(8, np.nan), np.inf, -np.inf]
    ref = feature_reference(values)
    assert ref.missing_rate == pytest.approx(0.10) and ref.count == 90
    assert all(np.isfinite(ref.edges)) and sum(ref.shares) == pytest.approx(1.0)
    clean = feature_reference(np.arange(90.0))
    assert (ref.edges, ref.shares) == (clean.edges, clean.shares)  # as if the missing values were not there
    assert bin_shares(np.array([np.nan, np.inf, 5.0]), ref.edges).sum() == pytest.approx(1.0)


def test_duplicate_quantiles_collapse_without_empty_bins() -> None:
    rng = np.random.default_rng(2)
    values = np.r_[np.zeros(800), rng.uniform(0.1, 5.0, size=200)]  # 80 % zeros: deciles 1-8 are all 0
    ref = feature_reference(values)
    assert ref.edges[0] == 0.0 and len(ref.edges) == 2 and len(ref.shares) == 3
    assert ref.shares[0] == pytest.approx(0.8)
    assert min(ref.shares) > 0  # no empty bin in the reference
    # ties at the top: the maximum is not an edge, so (last edge, +inf) is not empty either
    top_heavy = feature_reference(np.r_[np.arange(20.0), np.full(80, 100.0)])
    assert 100.0 not in top_heavy.edges and min(top_heavy.shares) > 0
    assert top_heavy.shares[-1] == pytest.approx(0.8)


@pytest.mark.parametrize("seed", range(5))
def test_no_reference_bin_is_ever_empty(seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = rng.choice(rng.normal(size=7), size=int(rng.integers(1, 60)))  # few distinct values, many ties
    ref = feature_reference(values)
    assert min(ref.shares) > 0 and sum(ref.shares) == pytest.approx(1.0)


def test_constant_and_all_missing_features_do_not_crash() -> None:
    reference = build_reference(_frame(const=np.full(50, 3.25), empty=np.full(50, np.nan), ok=np.arange(50.0)))
    const, empty = reference.features["const"], reference.features["empty"]
    assert const.edges == () and const.shares == (1.0,) and const.count == 50
    assert empty.edges == () and empty.shares == (0.0,) and empty.count == 0 and empty.missing_rate == 1.0
    assert bin_shares(np.array([1.0, 9.0]), const.edges).tolist() == [1.0]
    assert bin_shares(np.array([np.nan]), (1.0,)).tolist() == [0.0, 0.0]


def test_json_round_trip_is_exact() -> None:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {"x": rng.normal(size=500) * 1e-7 + 1 / 3, "y": np.r_[np.zeros(400), rng.normal(size=100)], "z": np.nan},
        index=pd.date_range("2024-01-01", periods=500, freq="D", tz="UTC"),
    )
    reference = build_reference(frame, bins=7)
    text = json.dumps(reference.to_dict())
    again = DriftReference.from_dict(json.loads(text))
    assert again == reference
    assert DriftReference.from_json(reference.to_json()) == reference
    assert list(again.features) == ["x", "y", "z"]
    assert (again.version, again.bins, again.rows) == (FORMAT_VERSION, 7, 500)
    assert again.first_bar == "2024-01-01T00:00:00+00:00" and again.last_bar == "2025-05-14T00:00:00+00:00"


def test_explicit_bar_range_and_plain_index() -> None:
    reference = build_reference(_frame(a=np.arange(10.0)), first_bar="2020-01-01", last_bar=None)
    assert (reference.first_bar, reference.last_bar) == ("2020-01-01", None)
    assert build_reference(_frame(a=np.arange(10.0))).first_bar is None


def test_malformed_or_unknown_versions_are_refused() -> None:
    good = build_reference(_frame(a=np.arange(10.0))).to_dict()
    with pytest.raises(ValueError, match="version"):
        DriftReference.from_dict({**good, "version": 99})
    with pytest.raises(ValueError, match="shares"):
        FeatureReference.from_dict({"edges": [1.0], "shares": [1.0], "missing_rate": 0.0, "count": 1})
    with pytest.raises(ValueError, match="increasing"):
        FeatureReference.from_dict({"edges": [2.0, 1.0], "shares": [0.3, 0.3, 0.4], "missing_rate": 0.0, "count": 3})
    with pytest.raises(ValueError, match="bins"):
        build_reference(_frame(a=np.arange(10.0)), bins=1)
    with pytest.raises(ValueError, match="not numeric"):
        build_reference(_frame(a=np.array(["x", "y"])))


@pytest.mark.parametrize("path", DAILY, ids=lambda p: p.stem)
def test_every_daily_symbol_builds_a_reference_with_19_features(path: Path) -> None:
    features = compute_features(parse_ohlcv_csv(path.read_bytes(), source=str(path)))
    reference = DriftReference.from_json(build_reference(features).to_json())
    assert list(reference.features) == list(FEATURE_NAMES)
    assert reference.rows == len(features)
    assert reference.first_bar == features.index[0].isoformat()
    for ref in reference.features.values():
        assert ref.count > 0 and 0 < ref.missing_rate < 0.1  # the warm-up rows are missing
        assert 3 <= len(ref.shares) <= 10 and min(ref.shares) > 0
        assert sum(ref.shares) == pytest.approx(1.0)
