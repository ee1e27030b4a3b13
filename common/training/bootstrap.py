"""Moving-block bootstrap over a day grid: intervals for statistics of overlapping outcomes.

A daily label looks h bars ahead, so the outcomes of neighbouring bars share most of their window and are
far from independent; resampling single days would understate every interval. Resampling blocks of at
least h consecutive days keeps that dependence inside each block (Kuensch 1989; Politis & Romano 1994 for
the circular variant used here, which gives every day the same chance to be drawn).

Every statistic is computed on the same resampled days for all the series it compares (several models,
two policies), so a difference keeps the correlation between them: the interval of "policy A minus policy
B" is the interval of the difference, not of two independent levels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

DEFAULT_REPLICATES = 1000
DEFAULT_LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """A point estimate and its bootstrap percentile interval."""

    estimate: float
    low: float
    high: float
    level: float
    replicates: int
    block_days: int

    @property
    def excludes_zero(self) -> bool:
        """Whether the interval lies entirely on one side of zero (a measurable difference)."""
        return bool(self.low > 0 or self.high < 0)

    def to_dict(self) -> dict[str, float | int]:
        return {
            "estimate": _round(self.estimate),
            "low": _round(self.low),
            "high": _round(self.high),
            "level": self.level,
            "replicates": self.replicates,
            "block_days": self.block_days,
        }

    def text(self, digits: int = 3) -> str:
        return f"{self.estimate:+.{digits}f} [{self.low:+.{digits}f}, {self.high:+.{digits}f}]"


def _round(value: float) -> float:
    return round(float(value), 6) if np.isfinite(value) else float("nan")


def block_indices(n_days: int, block_days: int, replicates: int, seed: int) -> np.ndarray:
    """(replicates, n_days) day positions: circular blocks of ``block_days`` consecutive days, concatenated
    and cut to ``n_days``. Deterministic for a seed."""
    if n_days < 1:
        raise ValueError("the day grid is empty")
    block = max(1, min(block_days, n_days))
    blocks = -(-n_days // block)
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, n_days, size=(replicates, blocks))
    offsets = np.arange(block)
    positions = (starts[:, :, None] + offsets[None, None, :]) % n_days
    return positions.reshape(replicates, blocks * block)[:, :n_days]


def block_bootstrap(
    statistic: Callable[[np.ndarray], float],
    n_days: int,
    *,
    block_days: int,
    replicates: int = DEFAULT_REPLICATES,
    level: float = DEFAULT_LEVEL,
    seed: int = 0,
) -> Interval:
    """``statistic(days)`` on the original grid (``days`` = 0..n-1) and on ``replicates`` block resamples of it;
    the percentile interval at ``level``. Replicates where the statistic is undefined (NaN: e.g. no
    positive outcome drawn) are left out of the interval."""
    original = float(statistic(np.arange(n_days)))
    draws = np.array([statistic(days) for days in block_indices(n_days, block_days, replicates, seed)], dtype="float64")
    finite = draws[np.isfinite(draws)]
    if finite.size == 0:
        return Interval(original, float("nan"), float("nan"), level, replicates, block_days)
    tail = (1 - level) / 2
    low, high = np.quantile(finite, [tail, 1 - tail])
    return Interval(original, float(low), float(high), level, replicates, block_days)
