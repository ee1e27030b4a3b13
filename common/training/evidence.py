"""Live evidence about a served model: tests that allow for overlapping outcomes.

A daily label looks h bars ahead, so the outcomes of neighbouring predictions share most of their window:
100 consecutive outcomes carry far fewer than 100 independent observations. Every mean here is tested with
a heteroskedasticity- and autocorrelation-consistent (HAC) standard error, Newey-West with h - 1 lags (the
Diebold-Mariano test's convention for h-step-ahead forecasts), so the test's size holds with overlap.

- :func:`hac_mean_test`: is the mean of a per-prediction difference credibly above 0?
- :func:`champion_evidence`: a champion's resolved outcomes since it went live against (1) the Brier score
  its training estimated (promised), (2) the naive baseline (the training positive rate as a constant
  forecast), and its strategy's returns against not trading; with the evidence in plain words.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.stats import norm

from common.core.numbers import finite_or_none
from common.training.evaluation import strategy_returns


@dataclass(frozen=True)
class MeanTest:
    """A one-sided test of "the mean is above 0" with a HAC standard error."""

    n: int
    mean: float
    se: float
    z: float
    p_value: float  # of H0 "mean <= 0"

    def to_dict(self) -> dict[str, float]:
        return {k: (round(v, 6) if isinstance(v, float) and math.isfinite(v) else v) for k, v in asdict(self).items()}


def newey_west_se(values: np.ndarray, lags: int) -> float:
    """Standard error of the mean with Bartlett-weighted autocovariances up to ``lags`` (Newey-West 1987)."""
    x = np.asarray(values, dtype="float64")
    n = x.size
    if n < 2:
        return math.nan
    centred = x - x.mean()
    variance = float(centred @ centred) / n
    for lag in range(1, min(lags, n - 1) + 1):
        weight = 1.0 - lag / (lags + 1.0)
        variance += 2.0 * weight * float(centred[lag:] @ centred[:-lag]) / n
    return math.sqrt(max(variance, 0.0) / n)


def hac_mean_test(values: np.ndarray, lags: int) -> MeanTest:
    """One-sided test that the mean of ``values`` is above 0 (normal approximation, HAC standard error)."""
    x = np.asarray(values, dtype="float64")
    n = int(x.size)
    if n == 0:
        return MeanTest(0, math.nan, math.nan, math.nan, math.nan)
    mean = float(x.mean())
    se = newey_west_se(x, lags)
    if not math.isfinite(se):
        return MeanTest(n, mean, se, math.nan, math.nan)
    z = mean / se if se > 0.0 else math.copysign(math.inf, mean) if mean else 0.0
    return MeanTest(n, mean, se, z, float(norm.sf(z)))


@dataclass(frozen=True)
class ChampionEvidence:
    """What a champion's resolved outcomes since it went live say (module docstring)."""

    version: str
    resolved: int
    correct: int
    live_accuracy: float
    live_brier: float
    promised_brier: float | None
    promised_accuracy: float | None
    baseline_brier: float
    worse_than_promised: MeanTest  # mean of (live Brier - promised Brier) per outcome
    worse_than_baseline: MeanTest  # mean of (model's Brier - baseline's Brier) per outcome
    losing: MeanTest  # mean of (- strategy return) per served bar: positive when following it loses money
    alpha: float
    min_outcomes: int

    @property
    def enough(self) -> bool:
        return self.resolved >= self.min_outcomes

    @property
    def below_promise(self) -> bool:
        return self.enough and _rejects(self.worse_than_promised, self.alpha)

    @property
    def worse_than_not_trading(self) -> bool:
        """Worse than the naive baseline, or following it credibly loses money: grounds to stop serving."""
        return self.enough and (_rejects(self.worse_than_baseline, self.alpha) or _rejects(self.losing, self.alpha))

    def text(self) -> str:
        promised = f"promised accuracy {self.promised_accuracy:.2f}" if self.promised_accuracy is not None else ""
        parts = [
            f"v{self.version}: {self.resolved} resolved outcomes, {self.correct} correct"
            + (f" ({self.live_accuracy:.2f}; {promised})" if self.resolved else "")
        ]
        if not self.enough:
            parts.append(f"fewer than {self.min_outcomes}: too few to judge")
            return "; ".join(parts)
        if self.promised_brier is not None:
            parts.append(
                f"Brier {self.live_brier:.3f} against {self.promised_brier:.3f} promised "
                f"(p = {self.worse_than_promised.p_value:.3g})"
            )
        parts.append(
            f"against the naive baseline {self.baseline_brier:.3f} (p = {self.worse_than_baseline.p_value:.3g})"
        )
        parts.append(f"strategy {-self.losing.mean * 1e4:+.1f} bp per bar (p of losing = {self.losing.p_value:.3g})")
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "resolved": self.resolved,
            "correct": self.correct,
            "live_accuracy": _r(self.live_accuracy),
            "live_brier": _r(self.live_brier),
            "promised_brier": _r(self.promised_brier),
            "promised_accuracy": _r(self.promised_accuracy),
            "baseline_brier": _r(self.baseline_brier),
            "worse_than_promised": self.worse_than_promised.to_dict(),
            "worse_than_baseline": self.worse_than_baseline.to_dict(),
            "losing": self.losing.to_dict(),
            "below_promise": self.below_promise,
            "worse_than_not_trading": self.worse_than_not_trading,
            "text": self.text(),
        }


def _rejects(test: MeanTest, alpha: float) -> bool:
    return math.isfinite(test.p_value) and test.p_value < alpha


def _r(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), 6)


def champion_evidence(
    *,
    version: str,
    probabilities: np.ndarray,
    outcomes: np.ndarray,
    next_returns: np.ndarray,
    trend: str,
    promised: dict[str, Any],
    base_rate: float,
    horizon: int,
    cost_per_trade: float,
    alpha: float,
    min_outcomes: int,
) -> ChampionEvidence:
    """The evidence of a champion's resolved predictions (in bar order), with ``promised`` its training
    metrics (Brier, accuracy) and ``base_rate`` the training positive rate (the naive baseline's forecast)."""
    p = np.asarray(probabilities, dtype="float64")
    y = np.asarray(outcomes, dtype="float64")
    lags = max(horizon - 1, 0)
    brier = (p - y) ** 2
    baseline = (base_rate - y) ** 2
    promised_brier = finite_or_none(promised.get("brier"))
    returns = (
        strategy_returns(
            p, next_returns=np.asarray(next_returns, dtype="float64"), trend=trend, cost_per_trade=cost_per_trade
        ).to_numpy()
        if p.size
        else np.zeros(0)
    )
    return ChampionEvidence(
        version=version,
        resolved=int(y.size),
        correct=int(((p > 0.5) == (y == 1.0)).sum()),
        live_accuracy=float(((p > 0.5) == (y == 1.0)).mean()) if y.size else math.nan,
        live_brier=float(brier.mean()) if y.size else math.nan,
        promised_brier=promised_brier,
        promised_accuracy=finite_or_none(promised.get("accuracy")),
        baseline_brier=float(baseline.mean()) if y.size else math.nan,
        worse_than_promised=hac_mean_test(brier - promised_brier, lags)
        if promised_brier is not None
        else MeanTest(int(y.size), math.nan, math.nan, math.nan, math.nan),
        worse_than_baseline=hac_mean_test(brier - baseline, lags),
        losing=hac_mean_test(-returns, lags),
        alpha=alpha,
        min_outcomes=min_outcomes,
    )
