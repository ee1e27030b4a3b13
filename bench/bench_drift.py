"""Benchmark: PSI of 1,000,000 x 50 current rows against a cached drift reference (issue 5, target >= 10x
faster than Evidently's PSI on the same data).

Run ``.venv/bin/python bench/bench_drift.py [rows]``. Rows of the table, all on the same data in one run:

- ``common.loop.drift.psi``: the whole check (binning, counts, PSI, null model, decision) against a reference
  built once from 100,000 training rows and loaded back from JSON, as the trigger checker does; once with
  the marginal PSI only (the same computation as the peers) and once with the residual PSI as well
  (the default: one more 50 x 50 matrix product over the rows and 50 more columns to bin).
- naive loop: a faithful pure-numpy re-implementation of the original per-feature PSI (np.quantile deciles
  of the raw reference, np.histogram of reference and current, shares floored at 1e-4), which also has to
  re-bin the raw reference on every check. It silently drops NaN and out-of-range values (SPEC.md's
  failure modes) and is timed anyway because it is the usual baseline.
- Evidently, when installed (the ``bench`` dependency group only; ``make bench`` adds it, otherwise the
  row says how): its documented API, a Report of one ``ValueDrift(method="psi")`` per column on Datasets
  (what a user runs), and ``evidently.legacy...stattests.psi._psi``, the function that API calls per
  feature (the lower bound of Evidently's time).
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from common.loop.drift import psi
from common.loop.drift_reference import DriftReference, build_reference

ROWS = 1_000_000
FEATURES = 50
REFERENCE_ROWS = 100_000
REPEATS = 5
EVIDENTLY_VERSION = "0.7.23"  # latest on PyPI when this bench was written


def synthetic(rows: int, *, seed: int, shift: float = 0.0) -> pd.DataFrame:
    """50 features of mixed shapes: normal, heavy-tailed, skewed, discrete with ties, persistent AR(1)."""
    rng = np.random.default_rng(seed)
    columns: dict[str, np.ndarray] = {}
    for i in range(FEATURES):
        kind = i % 5
        if kind == 0:
            values = rng.normal(shift, 1.0, size=rows)
        elif kind == 1:
            values = rng.standard_t(3, size=rows) + shift
        elif kind == 2:
            values = rng.lognormal(shift, 1.0, size=rows)
        elif kind == 3:
            values = rng.integers(0, 8, size=rows).astype("float64") + round(shift)
        else:
            noise = rng.normal(size=rows)
            values = pd.Series(noise).ewm(alpha=0.1).mean().to_numpy() + shift
        columns[f"f{i:02d}"] = values
    return pd.DataFrame(columns)


def naive_psi(reference: pd.DataFrame, current: pd.DataFrame, bins: int = 10) -> dict[str, float]:
    """The original per-feature loop: decile edges of the raw reference, np.histogram, 1e-4 floor."""
    out = {}
    for name in reference.columns:
        ref = reference[name].to_numpy()
        cur = current[name].to_numpy()
        edges = np.quantile(ref, np.linspace(0, 1, bins + 1))
        edges = np.unique(edges)
        expected = np.histogram(ref, edges)[0] / len(ref)
        actual = np.histogram(cur, edges)[0] / len(cur)
        expected = np.where(expected == 0, 1e-4, expected)
        actual = np.where(actual == 0, 1e-4, actual)
        out[name] = float(np.sum((actual - expected) * np.log(actual / expected)))
    return out


Runner = Callable[[pd.DataFrame, pd.DataFrame], dict[str, float]]


def evidently_runners() -> dict[str, Runner]:
    """Evidently's PSI, if installed (the ``bench`` group): its documented API (a Report of one
    ``ValueDrift(method="psi")`` per column on Datasets, what a user runs) and the function behind it
    (``_psi`` of the legacy stattests, one call per feature: Evidently's lower bound)."""
    try:
        import warnings

        from evidently import DataDefinition, Dataset, Report  # type: ignore[import-not-found]
        from evidently.legacy.calculations.stattests.psi import _psi  # type: ignore[import-not-found]
        from evidently.legacy.core import ColumnType  # type: ignore[import-not-found]
        from evidently.metrics import ValueDrift  # type: ignore[import-not-found]
    except ImportError:
        return {}

    def report(reference: pd.DataFrame, current: pd.DataFrame) -> dict[str, float]:
        definition = DataDefinition(numerical_columns=list(reference.columns))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            snapshot = Report([ValueDrift(column=name, method="psi") for name in reference.columns]).run(
                Dataset.from_pandas(current, data_definition=definition),
                Dataset.from_pandas(reference, data_definition=definition),
            )
        return {m["config"]["column"]: float(m["value"]) for m in snapshot.dict()["metrics"]}

    def inner(reference: pd.DataFrame, current: pd.DataFrame) -> dict[str, float]:
        return {
            name: float(_psi(reference[name], current[name], ColumnType.Numerical, 0.1, 10)[0])
            for name in reference.columns
        }

    return {"Evidently Report, ValueDrift(method='psi') per column": report, "Evidently _psi per feature": inner}


def timed(fn: Callable[[], Any], repeats: int = REPEATS) -> tuple[float, Any]:
    """Median wall seconds over ``repeats`` calls, and the last result."""
    seconds, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), result


def main(rows: int = ROWS) -> None:
    training = synthetic(REFERENCE_ROWS, seed=1)
    build_s, built = timed(lambda: build_reference(training), repeats=1)
    reference = DriftReference.from_json(built.to_json())  # cached: loaded from the stored artifact
    current = synthetic(rows, seed=2, shift=0.05)
    current.iloc[::97, 3] = np.nan  # missing values
    current.iloc[::89, 7] = 1e12  # far out of the training range

    marginal_reference = replace(reference, residuals=None)
    ours_s, _ = timed(lambda: psi(marginal_reference, current))
    full_s, report = timed(lambda: psi(reference, current))
    naive_s, naive = timed(lambda: naive_psi(training, current))
    evidently = evidently_runners()
    results = [
        ("common.loop.drift.psi, marginal PSI (vectorised, cached reference)", ours_s),
        (
            f"common.loop.drift.psi, marginal + residual PSI ({len(reference.residuals.basis)} residuals, default)",
            full_s,
        ),
        ("naive per-feature np.histogram loop", naive_s),
    ]
    for name, runner in evidently.items():
        evidently_s, _ = timed(lambda runner=runner: runner(training, current), repeats=1)
        results.append((name, evidently_s))

    print(f"## PSI on {rows:,} x {FEATURES} current rows (median of {REPEATS} runs)\n")
    print(f"Reference: {REFERENCE_ROWS:,} training rows, built once in {build_s:.2f} s (incl. the null profile).\n")
    print("| implementation | seconds | million values / s | vs ours (marginal) |\n|---|---|---|---|")
    for name, seconds in results:
        print(f"| {name} | {seconds:.3f} | {rows * FEATURES / seconds / 1e6:.0f} | {seconds / ours_s:.1f}x |")
    if not evidently:
        print(
            f"| Evidently PSI | - | - | evidently not installed (`make bench` adds the bench group: evidently=={EVIDENTLY_VERSION}) |"
        )
    out_of_range, missing = report.feature("f07"), report.feature("f03").current_missing_rate
    print(
        f"\nSame data, what each one sees: ours counts f07's {rows // 89 + 1:,} values at 1e12 in the top bin "
        f"(PSI {out_of_range.psi:.3f}) and reports f03's missing rate {missing:.2%}; "
        f"the naive loop drops both (f07 PSI {naive['f07']:.3f}). Decision: {report.decision} "
        f"({len(report.drifted_features)} of {FEATURES} features)."
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else ROWS)
