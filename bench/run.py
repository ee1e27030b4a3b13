"""Every benchmark in one run, written as one markdown report (machine, date, our figures next to the
peers' measured in the same run). ``make bench`` runs it and writes ``bench/RESULTS.md``, which the docs
site's benchmarks page includes as it is."""

from __future__ import annotations

import contextlib
import io
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import bench_append  # noqa: E402
import bench_backtest  # noqa: E402
import bench_drift  # noqa: E402
import bench_features  # noqa: E402
import bench_monitoring  # noqa: E402
import bench_predictor  # noqa: E402
import bench_training  # noqa: E402

BENCHMARKS = (
    ("features", bench_features.main),
    ("append", bench_append.main),
    ("training", bench_training.main),
    ("drift", bench_drift.main),
    ("predictor", bench_predictor.main),
    ("backtest", bench_backtest.main),
    ("monitoring", bench_monitoring.main),  # on the served predictions of the backtest just run
)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else BENCH_DIR / "RESULTS.md"
    sections = [f"# Benchmarks\n\n{datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}.\n"]
    for name, bench in BENCHMARKS:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            bench()
        sections.append(buffer.getvalue())
    report = "\n".join(sections)
    out.write_text(report)
    print(report)
    print(f"written to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
