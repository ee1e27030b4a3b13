"""Look-ahead harness: a feature at bar t must not change when the bars after t are removed.

A feature that peeks at the future (``shift(-1)``, centred windows, normalisation with whole-series
statistics) looks excellent in a backtest and fails live, where the future is not there yet. The check
recomputes the features on ``bars.iloc[:cut]`` for several cuts and compares every row of the truncated
result with the full-history result at the same bars.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

DEFAULT_CUT_COUNT = 6


@dataclass(frozen=True)
class LookaheadViolation:
    """A feature whose value at ``timestamp`` differs between the truncated and the full history."""

    feature: str
    timestamp: pd.Timestamp
    value_truncated: float
    value_full: float
    cut: int  # number of bars the truncated history kept


def default_cut_points(n_bars: int, *, warmup: int = 0, count: int = DEFAULT_CUT_COUNT) -> list[int]:
    """``count`` cuts spread evenly from just after the warm-up to one bar before the end.

    The first cut keeps ``warmup + 1`` bars, so the first defined row is also the last one of that
    history (where an off-by-one look-ahead shows); cuts never equal ``n_bars`` (nothing would be cut).
    """
    first, last = min(warmup + 1, n_bars - 1), n_bars - 1
    if last < 1:
        return []
    return sorted(set(np.linspace(first, last, count).round().astype(int).tolist()))


def find_lookahead(
    compute: Callable[[pd.DataFrame], pd.DataFrame],
    bars: pd.DataFrame,
    cut_points: Sequence[int] | None = None,
    *,
    rtol: float = 1e-9,
    atol: float = 1e-12,
    warmup: int = 0,
) -> list[LookaheadViolation]:
    """Every (feature, bar) whose value on a truncated history differs from the full-history value.

    ``compute`` maps bars to a frame of features with the same index. NaN equals NaN; a NaN on one side
    and a number on the other is a violation (e.g. ``shift(-1)`` leaves the last truncated row NaN).
    ``warmup`` only places the default cut points. An empty list means no look-ahead was seen at these
    cuts, not a proof: choose cuts that cover the regimes of interest.
    """
    cuts = default_cut_points(len(bars), warmup=warmup) if cut_points is None else list(cut_points)
    full = compute(bars)
    _check_shape(full, bars, "full history")
    columns = list(full.columns)
    full_values = full.to_numpy(dtype="float64")
    violations: list[LookaheadViolation] = []
    for cut in cuts:
        if not 0 < cut <= len(bars):
            raise ValueError(f"cut point {cut} outside 1..{len(bars)}")
        truncated = compute(bars.iloc[:cut])
        _check_shape(truncated, bars.iloc[:cut], f"cut at {cut}")
        if list(truncated.columns) != columns:
            raise ValueError(f"cut at {cut}: columns {list(truncated.columns)} differ from {columns}")
        head = truncated.to_numpy(dtype="float64")
        reference = full_values[:cut]
        same = np.isclose(head, reference, rtol=rtol, atol=atol, equal_nan=True)
        for row, col in np.argwhere(~same):
            violations.append(
                LookaheadViolation(
                    feature=columns[col],
                    timestamp=bars.index[row],
                    value_truncated=float(head[row, col]),
                    value_full=float(reference[row, col]),
                    cut=cut,
                )
            )
    return violations


def violating_features(violations: Sequence[LookaheadViolation]) -> set[str]:
    """Names of the features with at least one violation."""
    return {v.feature for v in violations}


def _check_shape(result: pd.DataFrame, bars: pd.DataFrame, what: str) -> None:
    if not result.index.equals(bars.index):
        raise ValueError(f"{what}: compute() must return one row per input bar with the same index")
