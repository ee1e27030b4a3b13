"""Benchmark: live monitoring on real served predictions, false alarms against detection delay.

Run ``.venv/bin/python bench/bench_monitoring.py [backtest.json]`` (default: the report ``make bench``'s
backtest benchmark just wrote, ``.local/bench/backtest/backtest.json``).

Every served version's stretch of resolved predictions (real probabilities, real overlapping outcomes) from a
backtest is monitored day by day, as the daily check would, by:

- **evidence** (``RETRAIN_PERF_RULE=evidence``, :func:`common.training.evidence.champion_evidence`): all resolved
  outcomes since the version went live against the Brier it promised, HAC (Newey-West, h-1 lags) test at
  ``RETRAIN_PERF_EVIDENCE_ALPHA`` (0.001, 0.01, 0.05);
- **window** (the seed's rule, :func:`common.loop.triggers.performance_trigger`): live accuracy over the last 14
  days below 0.52 (binomial test), at least 100 predictions; and the same with the minimum lowered to 10,
  to show what the windowed rule would do if it could fire on a daily model.

**False alarms**: the promise is what the version actually delivered over its whole stretch (it performs as
promised, on average); alarms are counted with the 3-day cooldown the loop applies, per model-year.
**Detection delay**: from day 30 of a stretch of at least 120 days, each outcome is flipped with probability
q (0.2, 0.35, 0.5); the delay is the number of days to the first alarm after that (outcomes resolve h + 1
days after their bar, so no rule can see it sooner).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from common.loop.triggers import performance_trigger
from common.training.evidence import champion_evidence

H = 10
COOLDOWN = 3
PLANT_AT = 30
MIN_STRETCH = 120
FLIPS = (0.2, 0.35, 0.5)

Monitor = Callable[[np.ndarray, np.ndarray, float, dict[str, float]], bool]  # (p, y, base rate, promise) -> alarm


def evidence(alpha: float) -> Monitor:
    def monitor(p: np.ndarray, y: np.ndarray, base_rate: float, promised: dict[str, float]) -> bool:
        found = champion_evidence(
            version="v", probabilities=p, outcomes=y, next_returns=np.zeros(len(p)), trend="uptrend",
            promised=promised, base_rate=base_rate, horizon=H, cost_per_trade=0.0, alpha=alpha, min_outcomes=30,
        )  # fmt: skip
        return found.below_promise

    return monitor


def window(minimum: int) -> Monitor:
    def monitor(p: np.ndarray, y: np.ndarray, base_rate: float, promised: dict[str, float]) -> bool:
        recent_p, recent_y = p[-14:], y[-14:]
        correct = int(((recent_p > 0.5) == (recent_y == 1)).sum())
        result = performance_trigger(
            correct, len(recent_y), threshold=0.52, min_predictions=minimum, alpha=0.05, window_days=14
        )
        return result.fired

    return monitor


MONITORS: dict[str, Monitor] = {
    "evidence, alpha 0.001 (since live)": evidence(0.001),
    "evidence, alpha 0.01 (since live; the default)": evidence(0.01),
    "evidence, alpha 0.05 (since live)": evidence(0.05),
    "window, seed (14 d, >= 100)": window(100),
    "window, min 10 (14 d)": window(10),
}


def stretches(document: dict) -> list[tuple[np.ndarray, np.ndarray]]:
    """(probabilities, outcomes) of each served version's resolved predictions, in bar order, every policy."""
    found = []
    for model in document["models"]:
        for run in model["policies"].values():
            by_version: dict[str, list[tuple[float, float]]] = {}
            for row in run["served"]:
                if row["realized"] is not None:
                    by_version.setdefault(row["version"], []).append((row["probability"], float(row["realized"])))
            for rows in by_version.values():
                if len(rows) >= 40:
                    found.append((np.array([r[0] for r in rows]), np.array([r[1] for r in rows])))
    return found


def alarms(
    monitor: Monitor, p: np.ndarray, y: np.ndarray, base_rate: float, promised: dict, start: int = 0
) -> list[int]:
    """Days (index into the stretch) on which the monitor fires, the cooldown applied; on day d the outcomes of
    the bars up to d - h - 1 are resolved."""
    fired: list[int] = []
    for day in range(start, len(p)):
        known = day - H - 1
        if known < 1 or (fired and day - fired[-1] < COOLDOWN):
            continue
        if monitor(p[:known], y[:known], base_rate, promised):
            fired.append(day)
    return fired


def promise(p: np.ndarray, y: np.ndarray) -> dict[str, float]:
    return {"brier": float(np.mean((p - y) ** 2)), "accuracy": float(np.mean((p > 0.5) == (y == 1)))}


def main(path: Path | None = None) -> None:
    default = Path(__file__).resolve().parents[1] / ".local" / "bench" / "backtest" / "backtest.json"
    path = path or default
    document = json.loads(path.read_text())
    found = stretches(document)
    rng = np.random.default_rng(0)
    years = sum(len(p) for p, _ in found) / 365.0
    long = [(p, y) for p, y in found if len(p) >= MIN_STRETCH]
    print("## Live monitoring: false alarms and detection delay on real served predictions\n")
    print(
        f"{len(found)} served stretches ({years:.1f} model-years) from `{path}`; {len(long)} of at least "
        f"{MIN_STRETCH} days for the planted degradations (from day {PLANT_AT}).\n"
    )
    header = "| monitor | false alarms per model-year |" + "".join(
        f" flips {q:.0%}: detected / median delay |" for q in FLIPS
    )
    print(header)
    print("|---|---|" + "---|" * len(FLIPS))
    for name, monitor in MONITORS.items():
        false = sum(len(alarms(monitor, p, y, float(y.mean()), promise(p, y))) for p, y in found)
        cells = [f"{false / years:.2f}"]
        for q in FLIPS:
            delays = []
            for p, y in long:
                flipped = y.copy()
                flip = rng.random(len(y)) < q
                flip[:PLANT_AT] = False
                flipped[flip] = 1 - flipped[flip]
                # The promise is what the version delivered before the degradation.
                fired = alarms(monitor, p, flipped, float(y.mean()), promise(p[:PLANT_AT], y[:PLANT_AT]), PLANT_AT)
                delays.append(fired[0] - PLANT_AT if fired else None)
            seen = [d for d in delays if d is not None]
            median = f"{np.median(seen):.0f} d" if seen else "-"
            cells.append(f"{len(seen)}/{len(delays)} / {median}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else None)
