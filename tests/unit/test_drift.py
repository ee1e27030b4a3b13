"""PSI drift (common.loop.drift): the naive PSI's failure modes (SPEC.md, triggers item 2) do not exist here,
unmeasurable features are never "drift", the vectorised PSI equals a plain one, and both rules decide at
their documented thresholds."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from common.core.errors import RetrainError
from common.core.settings import load_settings
from common.loop.drift import (
    DriftReport,
    DriftSchemaError,
    FixedRule,
    NullModel,
    as_chart_input,
    check_drift,
    decide,
    null_model,
    psi,
)
from common.loop.drift_reference import (
    PSI_SMOOTHING,
    DriftReference,
    FeatureReference,
    bin_shares,
    build_reference,
)
from common.training.plots import psi_bars_png


def _normal(n: int, columns: tuple[str, ...] = ("a", "b", "c"), seed: int = 0, loc: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({name: rng.normal(loc, 1.0, size=n) for name in columns})


def slow_psi(ref: FeatureReference, values: np.ndarray, smoothing: float = PSI_SMOOTHING) -> float:
    """One feature's PSI, written plainly value by value and bin by bin: the oracle for the vectorised psi."""
    values = np.asarray(values, dtype="float64")
    finite = [v for v in values if math.isfinite(v)]
    bins = len(ref.edges) + 1
    counts = [0] * bins
    for v in finite:
        i = 0
        while i < len(ref.edges) and v > ref.edges[i]:
            i += 1
        counts[i] += 1
    total = 0.0
    for i in range(bins):
        q = (counts[i] + smoothing) / (len(finite) + smoothing * bins)
        p = (ref.shares[i] * ref.count + smoothing) / (ref.count + smoothing * bins)
        total += (q - p) * math.log(q / p)
    return total


@pytest.fixture(scope="module")
def reference() -> DriftReference:
    return build_reference(_normal(2000, seed=1))


def test_same_distribution_is_no_drift_and_a_large_shift_is_drift(reference: DriftReference) -> None:
    calm = psi(reference, _normal(200, seed=2))
    assert calm.decision == "no_drift" and not calm.drift_detected and calm.drifted_features == ()
    moved = psi(reference, _normal(200, seed=3).assign(b=lambda f: f["b"] + 1.0))
    assert moved.decision == "drift" and moved.drift_detected and moved.drifted_features == ("b",)
    assert moved.feature("b").status == "drift" and moved.feature("a").status == "ok"
    assert moved.feature("b").p_value < 0.05 / 3


def test_empty_window_is_insufficient_data_never_drift(reference: DriftReference) -> None:
    for frame in (_normal(0), pd.DataFrame()):
        report = psi(reference, frame)
        assert report.decision == "insufficient_data" and not report.drift_detected and report.n_rows == 0
        assert {f.status for f in report.features} == {"insufficient_data"}
        assert report.max_psi is None and all(v is None for v in report.psi.values())
        assert decide(report, "fixed").decision == "insufficient_data"
    assert psi(reference, _normal(0)).trigger_result().status == "insufficient_data"


def test_too_few_rows_is_insufficient_data(reference: DriftReference) -> None:
    report = psi(reference, _normal(19, seed=4) + 5.0, min_rows=20)  # far off, but 19 rows prove nothing
    assert report.decision == "insufficient_data" and not report.drift_detected
    assert report.feature("a").note == "19 finite values in the window (< 20)"
    assert psi(reference, _normal(20, seed=4) + 5.0, min_rows=20).decision == "drift"


def test_all_nan_current_feature_is_insufficient_and_its_missing_rate_is_flagged(reference: DriftReference) -> None:
    current = _normal(300, seed=5).assign(c=np.nan)
    report = psi(reference, current)
    c = report.feature("c")
    assert c.status == "insufficient_data" and c.psi is None and not c.drifted
    assert c.current_missing_rate == 1.0 and c.reference_missing_rate == 0.0 and c.missing_jump
    assert report.missing_rate_alerts == ("c",)
    assert report.decision == "no_drift"  # judged on the measurable features; the missing rate is its own signal
    assert report.to_dict()["missing_rate_alerts"] == ["c"]


def test_constant_and_all_missing_reference_features_are_not_applicable() -> None:
    rng = np.random.default_rng(6)
    training = pd.DataFrame({"x": rng.normal(size=500), "const": 7.0, "gone": np.nan})
    reference = build_reference(training)
    current = pd.DataFrame({"x": rng.normal(size=100), "const": rng.normal(size=100), "gone": rng.normal(size=100)})
    for rule in ("adaptive", "fixed"):
        report = psi(reference, current, rule=rule)
        for name in ("const", "gone"):
            feature = report.feature(name)
            assert feature.status == "not_applicable" and feature.psi is None and feature.threshold is None
            assert not feature.drifted
        assert report.decision == "no_drift"
        json.dumps(report.to_dict(), allow_nan=False)
    only_unmeasurable = build_reference(training[["const", "gone"]])
    assert psi(only_unmeasurable, current[["const", "gone"]]).decision == "insufficient_data"


def test_constant_current_feature_is_measured(reference: DriftReference) -> None:
    report = psi(reference, _normal(200, seed=7).assign(a=0.01))  # all in one middle decile
    assert report.feature("a").status == "drift" and report.feature("a").psi > 1.0


def test_out_of_range_values_land_in_the_top_bin_and_are_not_dropped(reference: DriftReference) -> None:
    top = max(reference.features["a"].edges)
    current = _normal(100, seed=8).assign(a=np.linspace(1e6, 1e9, 100))  # all far above the training maximum
    report = psi(reference, current)
    a = report.feature("a")
    assert a.n_current == 100 and a.current_missing_rate == 0.0
    counts = np.zeros(10)
    counts[-1] = 100
    q = (counts + 0.5) / (100 + 0.5 * 10)
    p = (np.asarray(reference.features["a"].shares) * 2000 + 0.5) / (2000 + 0.5 * 10)
    assert a.psi == pytest.approx(float(np.sum((q - p) * np.log(q / p))))  # every value counted, in the top bin
    assert a.psi > 1.5 and a.psi == pytest.approx(a.attainable) and a.drifted
    below = psi(reference, _normal(100, seed=8).assign(a=-1e12)).feature("a")
    assert below.psi == pytest.approx(a.psi, rel=0.05) and below.drifted  # symmetric for the bottom bin
    assert top < 1e6


def test_nan_and_inf_in_the_reference_do_not_poison_the_edges() -> None:
    rng = np.random.default_rng(9)
    training = pd.DataFrame({"x": rng.normal(size=1000), "y": rng.normal(size=1000)})
    training.loc[::7, "x"] = np.nan
    training.loc[3, "x"] = np.inf
    reference = build_reference(training)
    assert all(math.isfinite(e) for e in reference.features["x"].edges) and len(reference.features["x"].edges) == 9
    calm = psi(reference, pd.DataFrame({"x": rng.normal(size=300), "y": rng.normal(size=300)}))
    assert calm.decision == "no_drift" and math.isfinite(calm.feature("x").psi)
    moved = psi(reference, pd.DataFrame({"x": rng.normal(2.0, size=300), "y": rng.normal(size=300)}))
    assert moved.drifted_features == ("x",)  # drift is still visible (a NaN edge would hide it)
    assert calm.feature("x").reference_missing_rate == pytest.approx(144 / 1000)


def test_nan_and_inf_in_the_current_window_are_missing_not_binned(reference: DriftReference) -> None:
    current = _normal(100, seed=10)
    current.loc[:9, "a"] = np.nan
    current.loc[10:14, "a"] = np.inf
    current.loc[15:19, "a"] = -np.inf
    a = psi(reference, current).feature("a")
    assert a.n_current == 80 and a.current_missing_rate == pytest.approx(0.2) and a.missing_jump  # 0 -> 20 %
    assert a.psi == pytest.approx(slow_psi(reference.features["a"], current["a"].to_numpy()))
    assert a.psi == pytest.approx(slow_psi(reference.features["a"], current["a"].to_numpy()[20:]))


def test_duplicate_edges_from_many_ties_give_finite_psi() -> None:
    rng = np.random.default_rng(11)
    # 80 % zeros, shuffled: in time order (all zeros, then the rest) the profile would rightly call the
    # series one long regime change and accept almost any window.
    training = pd.DataFrame({"z": rng.permutation(np.r_[np.zeros(1600), rng.uniform(0.1, 5.0, size=400)])})
    reference = build_reference(training)
    assert len(reference.features["z"].edges) == 2  # deciles 1-8 collapse onto 0
    same = pd.DataFrame({"z": np.r_[np.zeros(160), rng.uniform(0.1, 5.0, size=40)]})
    all_zero = pd.DataFrame({"z": np.zeros(200)})
    none_zero = pd.DataFrame({"z": rng.uniform(0.1, 5.0, size=200)})
    assert psi(reference, same).decision == "no_drift"
    zero_report = psi(reference, all_zero)  # two of three bins empty in the window: smoothed, not infinite
    assert math.isfinite(zero_report.feature("z").psi) and zero_report.feature("z").bins == 3
    assert psi(reference, none_zero).decision == "drift"


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        (("a", "b"), r"missing \['c'\]"),
        (("a", "b", "c", "d"), r"unexpected \['d'\]"),
        (("a", "b", "x"), r"missing \['c'\]; unexpected \['x'\]"),
    ],
)
def test_mismatched_columns_raise_a_schema_error(
    reference: DriftReference, columns: tuple[str, ...], message: str
) -> None:
    with pytest.raises(DriftSchemaError, match=message):
        psi(reference, _normal(50, columns=columns))


def test_duplicated_or_non_numeric_columns_raise_a_schema_error(reference: DriftReference) -> None:
    frame = _normal(50)
    duplicated = pd.concat([frame, frame[["a"]]], axis=1)
    with pytest.raises(DriftSchemaError, match=r"duplicated \['a'\]"):
        psi(reference, duplicated)
    with pytest.raises(DriftSchemaError, match="'b' is not numeric"):
        psi(reference, frame.assign(b="x"))
    assert issubclass(DriftSchemaError, RetrainError)
    shuffled = frame[["c", "a", "b"]]  # column order does not matter, names do
    assert psi(reference, shuffled).psi == psi(reference, frame).psi


def test_json_output_has_per_feature_psi_and_a_top_level_boolean(reference: DriftReference) -> None:
    report = psi(reference, _normal(120, seed=12).assign(a=lambda f: f["a"] + 2))
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["drift_detected"] is True and data["decision"] == "drift" and data["rule"] == "adaptive"
    assert set(data["psi"]) == {"a", "b", "c"} and all(isinstance(v, float) for v in data["psi"].values())
    assert set(data["thresholds"]) == {"a", "b", "c"} and data["drifted_features"] == ["a"]
    assert data["alpha"] == 0.05 and data["n_rows"] == 120 and data["reference_rows"] == 2000
    feature = data["features"]["a"]
    for key in ("psi", "threshold", "drifted", "status", "bins", "n_current", "current_missing_rate"):
        assert key in feature
    assert feature["reference_missing_rate"] == 0.0 and feature["null"]["source"] == "profile"
    fixed = json.loads(json.dumps(decide(report, "fixed").to_dict(), allow_nan=False))
    assert fixed["alpha"] is None and fixed["fixed_rule"] == {
        "feature_threshold": 0.2,
        "max_threshold": 0.25,
        "max_drifted_features": 3,
    }


@pytest.mark.parametrize("seed", range(4))
def test_vectorised_psi_equals_a_plain_implementation(seed: int) -> None:
    rng = np.random.default_rng(seed)
    training = pd.DataFrame(
        {
            "normal": rng.normal(size=800),
            "skewed": rng.exponential(size=800),
            "discrete": rng.integers(0, 5, size=800).astype(float),
            "ties": np.r_[np.zeros(600), rng.normal(size=200)],
        }
    )
    training.iloc[::13, 0] = np.nan
    reference = build_reference(training, bins=(3, 7, 10, 60)[seed])  # 60: the searchsorted path
    current = pd.DataFrame(
        {
            "normal": rng.normal(0.3, 2.0, size=257),
            "skewed": rng.exponential(3.0, size=257),
            "discrete": rng.integers(-2, 8, size=257).astype(float),
            "ties": rng.choice([0.0, 0.0, 1e9, -1e9, np.nan, np.inf], size=257),
        }
    )
    report = psi(reference, current, min_rows=1)
    for name, ref in reference.features.items():
        assert report.feature(name).psi == pytest.approx(slow_psi(ref, current[name].to_numpy()), rel=1e-12)
        # and through the reference's own binning function
        values = current[name].to_numpy()
        finite = values[np.isfinite(values)]
        counts = bin_shares(finite, ref.edges) * len(finite)
        q = (counts + 0.5) / (len(finite) + 0.5 * len(counts))
        p = (np.asarray(ref.shares) * ref.count + 0.5) / (ref.count + 0.5 * len(counts))
        assert report.feature(name).psi == pytest.approx(float(np.sum((q - p) * np.log(q / p))), rel=1e-12)


def _with_psi(report: DriftReport, values: dict[str, float]) -> DriftReport:
    return replace(report, features=tuple(replace(f, psi=values.get(f.name, 0.0)) for f in report.features))


def test_fixed_rule_exact_thresholds() -> None:
    names = tuple(f"f{i}" for i in range(6))
    reference = build_reference(_normal(1000, columns=names))
    base = psi(reference, _normal(100, columns=names, seed=2), rule="fixed")

    def fixed(values: dict[str, float]) -> DriftReport:
        return decide(_with_psi(base, values), "fixed")

    at = fixed({"f0": 0.2})
    assert not at.feature("f0").drifted and at.decision == "no_drift"  # PSI > 0.2, not >=
    above = fixed({"f0": 0.2000001})
    assert above.feature("f0").drifted and above.decision == "no_drift"  # one drifted feature, max <= 0.25
    assert fixed({"f0": 0.25}).decision == "no_drift"
    assert fixed({"f0": 0.2500001}).decision == "drift"  # max PSI > 0.25
    three = {"f0": 0.21, "f1": 0.22, "f2": 0.23}
    assert fixed(three).decision == "no_drift" and len(fixed(three).drifted_features) == 3
    assert fixed({**three, "f3": 0.24}).decision == "drift"  # more than 3 drifted
    assert set(fixed(three).thresholds.values()) == {0.2}
    custom = decide(_with_psi(base, three), "fixed", fixed=FixedRule(0.2, 0.25, 2))
    assert custom.decision == "drift"


def test_adaptive_without_profile_is_the_chi_square_formula() -> None:
    reference = build_reference(_normal(1000), null_profile=False, residuals=False)
    assert all(not ref.null_windows for ref in reference.features.values())
    report = psi(reference, _normal(90, seed=3), alpha=0.05)
    for feature in report.features:
        expected = stats.chi2.ppf(1 - 0.05 / 3, 9) * (1 / 1000 + 1 / 90)
        assert feature.threshold == pytest.approx(expected, rel=1e-9)
        assert feature.null.source == "iid" and "i.i.d." in feature.note


def test_adaptive_threshold_shrinks_with_the_window_and_grows_with_autocorrelation() -> None:
    rng = np.random.default_rng(13)
    n = 3000
    ar = np.zeros(n)
    for t in range(1, n):
        ar[t] = 0.95 * ar[t - 1] + rng.normal()
    reference = build_reference(pd.DataFrame({"iid": rng.normal(size=n), "ar": ar}))
    iid_ref, ar_ref = reference.features["iid"], reference.features["ar"]
    assert null_model(iid_ref, 90).mean == pytest.approx(9 * (1 / n + 1 / 90), rel=0.25)  # the i.i.d. value
    assert null_model(ar_ref, 90).mean > 5 * null_model(iid_ref, 90).mean  # persistence widens the null
    assert null_model(ar_ref, 90).dof < null_model(iid_ref, 90).dof
    thresholds = [null_model(iid_ref, m).threshold(0.05) for m in (30, 90, 365, 2000, 5000)]
    assert thresholds == sorted(thresholds, reverse=True) and all(t > 0 for t in thresholds)
    assert null_model(iid_ref, 3).mean > null_model(iid_ref, 5).mean  # below the shortest profiled window
    # A persistent reference does not call its own stretches drift.
    assert psi(reference, pd.DataFrame({"iid": rng.normal(size=90), "ar": ar[1000:1090]})).decision == "no_drift"


def test_null_model_tail() -> None:
    known = NullModel(mean=0.1, dof=9.0, windows=math.inf, source="iid")
    assert known.threshold(0.01) == pytest.approx(0.1 * stats.chi2.ppf(0.99, 9) / 9)
    assert known.p_value(known.threshold(0.01)) == pytest.approx(0.01)
    estimated = NullModel(mean=0.1, dof=3.0, windows=5.0, source="profile")
    assert estimated.threshold(0.01) == pytest.approx(0.1 * stats.f.ppf(0.99, 3, 15))
    assert estimated.threshold(0.01) > NullModel(0.1, 3.0, math.inf, "iid").threshold(0.01)


def test_blind_features_are_reported_not_dropped() -> None:
    rng = np.random.default_rng(14)
    trend = np.cumsum(rng.normal(size=2000)) + np.linspace(0, 400, 2000)  # price-like: one long regime shift
    reference = build_reference(pd.DataFrame({"price_like": trend, "iid": rng.normal(size=2000)}))
    report = psi(reference, pd.DataFrame({"price_like": trend[:30], "iid": rng.normal(size=30)}))
    feature = report.feature("price_like")
    assert feature.psi is not None and feature.threshold >= feature.attainable and feature.blind
    assert report.blind_features == ("price_like",) and report.to_dict()["blind_features"] == ["price_like"]


def test_report_feeds_the_psi_chart(reference: DriftReference) -> None:
    report = psi(reference, _normal(150, seed=15).assign(a=lambda f: f["a"] + 1))
    values, limits = as_chart_input(report)
    residuals = {f"{name} (residual)" for name in report.residual_psi}
    assert residuals and set(values) == set(limits) == {"a", "b", "c"} | residuals
    assert psi_bars_png(values, threshold=limits, title="drift").startswith(b"\x89PNG")
    # The trigger checker feeds it from the decision record (to_dict, through JSON): the same bars.
    assert as_chart_input(json.loads(json.dumps(report.to_dict()))) == (values, limits)
    fixed_values, _ = as_chart_input(decide(report, "fixed"))
    assert set(fixed_values) == {"a", "b", "c"}  # the original rule does not judge residuals


def test_trigger_result_and_settings(reference: DriftReference) -> None:
    moved = _normal(120, seed=16).assign(c=lambda f: f["c"] - 2)
    result = psi(reference, moved).trigger_result()
    assert result.trigger == "drift" and result.status == "fired" and result.fired
    assert result.extra["drifted_features"] == ["c"] and result.value > result.threshold
    assert psi(reference, _normal(120, seed=17)).trigger_result().status == "ok"
    fixed = check_drift(reference, _normal(40, seed=18), load_settings(drift_rule="fixed", psi_max_threshold=9.0))
    assert fixed.rule == "fixed" and fixed.fixed.max_threshold == 9.0
    assert check_drift(reference, _normal(40, seed=18), load_settings()).rule == "adaptive"


def test_decide_validates_its_arguments(reference: DriftReference) -> None:
    report = psi(reference, _normal(50))
    with pytest.raises(ValueError, match="rule"):
        decide(report, "bogus")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="alpha"):
        decide(report, alpha=0.0)
    with pytest.raises(ValueError, match="smoothing"):
        psi(reference, _normal(50), smoothing=0.0)


def test_reference_profile_round_trips_and_older_references_still_load() -> None:
    reference = build_reference(_normal(500, seed=19))
    feature = reference.features["a"]
    assert feature.null_windows[0] == 5 and feature.null_windows[-1] <= 250
    assert len(feature.null_windows) == len(feature.null_psi_mean) == len(feature.null_psi_var)
    assert DriftReference.from_json(reference.to_json()) == reference
    old = reference.to_dict()
    for entry in old["features"].values():
        entry.pop("null_profile")
    legacy = DriftReference.from_dict(old)
    assert all(ref.null_windows == () for ref in legacy.features.values())
    assert psi(legacy, _normal(90, seed=20)).feature("a").null.source == "iid"
    broken = reference.to_dict()["features"]["a"]
    with pytest.raises(ValueError, match="null profile"):
        FeatureReference.from_dict({**broken, "null_profile": {"windows": [5, 7], "psi_mean": [0.1], "psi_var": [0]}})
    with pytest.raises(ValueError, match="null profile"):
        FeatureReference.from_dict(
            {**broken, "null_profile": {"windows": [7, 5], "psi_mean": [1, 1], "psi_var": [0, 0]}}
        )


def test_many_rows_are_counted_without_a_python_loop(reference: DriftReference) -> None:
    current = _normal(200_000, seed=21)
    report = psi(reference, current)
    assert report.n_rows == 200_000 and report.feature("a").n_current == 200_000
    assert report.decision == "no_drift"


def _market_like(n: int, seed: int = 0) -> pd.DataFrame:
    """Five persistent features driven by one common random-walk factor (like trend indicators moving
    together with the market), plus an exact linear combination of two of them (like MACD_Hist)."""
    rng = np.random.default_rng(seed)
    factor = np.cumsum(rng.normal(size=n)) / 10
    frame = pd.DataFrame({f"f{i}": factor * (1 + i / 4) + rng.normal(0, 0.3, size=n) for i in range(5)})
    frame["diff"] = frame["f0"] - frame["f1"]
    return frame


def test_residual_model_leaves_exact_linear_combinations_out_of_the_basis() -> None:
    reference = build_reference(_market_like(3000))
    model = reference.residuals
    assert model is not None
    assert len(model.basis) == 5  # one of f0, f1, diff is redundant: its residual would be rounding noise
    assert set(model.features) == set(model.basis)
    assert DriftReference.from_json(reference.to_json()) == reference


def test_a_feature_breaking_away_from_the_others_is_caught_by_its_residual() -> None:
    history = _market_like(4000, seed=1)
    reference = build_reference(history.iloc[:3000])
    window = history.iloc[3200:3290].copy()
    quiet = psi(reference, window)
    assert not quiet.drifted_residuals
    window["f2"] += 0.5 * history["f2"].iloc[:3000].std()  # half a standard deviation, one feature
    report = psi(reference, window)
    assert "f2" not in report.drifted_features  # its marginal PSI is within the factor's own wandering
    assert "f2" in report.drifted_residuals
    assert report.drift_detected and "broke away" in report.reason
    assert report.trigger_result().status == "fired"
    assert report.trigger_result().extra["drifted_residuals"] == list(report.drifted_residuals)
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["drift_detected"] is True and set(data["residual_psi"]) == set(reference.residuals.basis)


def test_fixed_rule_does_not_judge_residuals() -> None:
    history = _market_like(4000, seed=1)
    reference = build_reference(history.iloc[:3000])
    window = history.iloc[3200:3290].copy()
    window["f2"] += 0.5 * history["f2"].iloc[:3000].std()
    report = psi(reference, window, rule="fixed")
    assert report.residuals and all(f.threshold is None and not f.drifted for f in report.residuals)
    assert not report.drifted_residuals


def test_residuals_of_rows_with_a_missing_value_are_missing() -> None:
    history = _market_like(4000, seed=2)
    reference = build_reference(history.iloc[:3000])
    window = history.iloc[3000:3090].copy()
    window.iloc[:80, window.columns.get_loc("f3")] = np.nan  # 10 rows left with every basis value
    report = psi(reference, window)
    assert all(f.status == "insufficient_data" and f.n_current == 10 for f in report.residuals)
    assert not any(f.missing_jump for f in report.residuals)  # the missing signal stays on the feature itself
    assert report.feature("f3").missing_jump


def test_no_residual_model_without_enough_complete_rows_or_features() -> None:
    assert build_reference(_market_like(100)).residuals is None  # 5 folds x 10 rows x 6 features needed
    assert build_reference(_normal(3000, columns=("a", "b"))).residuals is None
    assert build_reference(_market_like(3000), residuals=False).residuals is None
    empty = psi(build_reference(_market_like(3000)), _market_like(0))
    assert empty.decision == "insufficient_data" and all(not f.measured for f in empty.residuals)


def test_malformed_residual_models_are_refused() -> None:
    data = build_reference(_market_like(3000)).to_dict()
    broken = json.loads(json.dumps(data))
    broken["residuals"]["weights"] = broken["residuals"]["weights"][:-1]
    with pytest.raises(ValueError, match="one mean, scale and weight row"):
        DriftReference.from_dict(broken)
    broken = json.loads(json.dumps(data))
    broken["residuals"]["basis"][0] = "nope"
    with pytest.raises(ValueError, match="residual"):
        DriftReference.from_dict(broken)
    broken = json.loads(json.dumps(data))
    broken["residuals"]["scale"][0] = 0.0
    with pytest.raises(ValueError, match="scales must be > 0"):
        DriftReference.from_dict(broken)


def test_residuals_are_the_least_squares_residuals_of_each_feature_on_the_others() -> None:
    history = _market_like(3000, seed=3)
    model = build_reference(history).residuals
    assert model is not None
    values = history[list(model.basis)].to_numpy()
    z = (values - values.mean(axis=0)) / values.std(axis=0)
    residuals = model.residuals(history)
    assert residuals.shape == (len(model.basis), len(history))
    for j in range(len(model.basis)):
        others = np.c_[np.delete(z, j, axis=1), np.ones(len(z))]
        coef, *_ = np.linalg.lstsq(others, z[:, j], rcond=None)
        np.testing.assert_allclose(residuals[j], z[:, j] - others @ coef, atol=1e-6)
    window = history.iloc[:50].copy()
    window.iloc[3, 0], window.iloc[7, 2] = np.nan, np.inf
    partial = model.residuals(window)
    assert np.isnan(partial[:, [3, 7]]).all() and np.isfinite(np.delete(partial, [3, 7], axis=1)).all()
