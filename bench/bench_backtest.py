"""Benchmark: `retrain backtest`'s default run, and the same loop on the embedded stack for comparison.

Run ``.venv/bin/python bench/bench_backtest.py``.

- **The default local backtest** (BTC and ETH, both trends, 2022-01-01 .. 2025-02-05, LightGBM, policies never,
  every-30d and default, one worker per core): wall time against the 10-minute target, trainings computed
  against trainings the policies asked for (the share shared across policies), trainings per second and
  model-days per second.
- **The peer:** the same decisions run by ``retrain demo``'s replay on the embedded stack (moto executing the
  real state machine, a real MLflow server, the Lambdas through lambda:Invoke), a few days of one symbol:
  seconds per model-day there against the backtest's.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from retrain import backtest

TARGET_S = 600.0
REPORT_DIR = Path(__file__).resolve().parents[1] / ".local" / "bench" / "backtest"
PEER_SYMBOL = "BTC"
PEER_START = datetime(2024, 11, 20, tzinfo=UTC)
PEER_DAYS = 8


def default_backtest() -> dict[str, float]:
    plan = backtest.plan(
        symbols=backtest.DEFAULT_SYMBOLS,
        start=backtest.parse_day(backtest.DEFAULT_START),
        end=backtest.parse_day(backtest.DEFAULT_END),
        policies=backtest.DEFAULT_POLICIES,
        classifiers=backtest.DEFAULT_CLASSIFIERS,
        interval="1d",
        data_dir=Path(__file__).resolve().parents[1] / "sample_data" / "ohlcv",
    )
    jobs = min(os.cpu_count() or 1, len(plan.units))
    began = time.monotonic()
    models, timings = backtest.run(plan, jobs=jobs, echo=lambda _: None)
    wall = time.monotonic() - began
    summary = backtest.run_timings(timings, wall, jobs)
    # The report is kept for bench_monitoring.py, which monitors these served predictions.
    from common.backtest.report import report_files

    files = report_files(models, backtest.summarize_run(plan, models), plan.meta(), summary)
    backtest.write_report(REPORT_DIR, files)
    model_days = len(plan.units) * len(plan.policies) * (plan.end - plan.start).days
    return {
        "wall_s": wall,
        "jobs": jobs,
        "units": len(plan.units),
        "policies": len(plan.policies),
        "model_days": model_days,
        "asked": summary["trainings_asked"],
        "computed": summary["trainings_computed"],
        "shared": summary["shared_share"],
        "trainings_per_s": summary["trainings_computed"] / wall,
        "cpu_s": sum(t["cpu_s"] for t in timings),
    }


def peer_replay() -> dict[str, float]:
    """The live loop on the embedded stack, a few days of one symbol (both trends), the same zoo."""
    from retrain.replay import replay, replay_stack

    state = Path(tempfile.mkdtemp(prefix="bench-replay-"))
    try:
        with replay_stack(
            symbols=(PEER_SYMBOL,), start=PEER_START, state_dir=state, classifiers=("lightgbm",), echo=lambda _: None
        ) as info:
            began = time.monotonic()
            summary = replay(info, symbols=(PEER_SYMBOL,), start=PEER_START, days=PEER_DAYS, echo=lambda _: None)
            wall = time.monotonic() - began
    finally:
        shutil.rmtree(state, ignore_errors=True)
    return {"wall_s": wall, "model_days": 2 * PEER_DAYS, "trainings": summary.models_trained}


def main() -> None:
    ours = default_backtest()
    peer = peer_replay()
    ours_per_day = ours["wall_s"] / ours["model_days"]
    peer_per_day = peer["wall_s"] / peer["model_days"]
    verdict = "met" if ours["wall_s"] <= TARGET_S else "MISSED"
    print("## Backtest: the default run, and the same loop on the embedded stack\n")
    print(
        f"Default `retrain backtest`: {ours['units']} models x {ours['policies']} policies, 2022-01-01 .. 2025-02-05, "
        f"LightGBM, {ours['jobs']} worker processes. Target: <= {TARGET_S:.0f} s ({verdict}).\n"
    )
    print(
        "| run | wall | model-days | per model-day | trainings computed (asked) | shared across policies | trainings/s |"
    )
    print("|---|---|---|---|---|---|---|")
    print(
        f"| backtest (in memory, {ours['jobs']} processes) | {ours['wall_s']:.0f} s | {ours['model_days']:,} | "
        f"{ours_per_day * 1000:.0f} ms | {ours['computed']:,} ({ours['asked']:,}) | {ours['shared']:.0%} | "
        f"{ours['trainings_per_s']:.2f} |"
    )
    print(
        f"| replay on the embedded stack (moto + MLflow + Lambdas, 1 process) | {peer['wall_s']:.0f} s | "
        f"{peer['model_days']} | {peer_per_day:.2f} s | {peer['trainings']} | - | "
        f"{peer['trainings'] / peer['wall_s']:.2f} |"
    )
    print(
        f"\nThe backtest runs the same decisions {peer_per_day / ours_per_day:.0f}x faster per model-day (wall, "
        f"with {ours['jobs']} processes against one); CPU time of the backtest {ours['cpu_s']:.0f} s.\n"
    )


if __name__ == "__main__":
    main()
