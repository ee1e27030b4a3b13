"""``retrain predict-batch``: what the daily batch-prediction function does, from the command line.

Each day is one run of :func:`common.serving.batch_predict.run_batch` at that day's 00:00 UTC: every champion's
prediction for the last closed bar into the prediction log, then the outcomes that came due. ``--from``
replays every day up to ``--date`` (one model load per champion for the whole replay), which fills the log
the performance trigger reads. Re-running any day changes nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from common.core.errors import RetrainError

DAY = timedelta(days=1)


def add_parser(commands: Any, as_of_type: Callable[[str], datetime]) -> None:
    """Register ``predict-batch`` on the CLI's subcommands (``as_of_type`` parses a date argument)."""
    parser = commands.add_parser(
        "predict-batch", help="log every champion's prediction for the last closed bar; fill in due outcomes"
    )
    parser.add_argument("--date", type=as_of_type, help="run as of this day's 00:00 UTC, YYYY-MM-DD (default: now)")
    parser.add_argument("--from", dest="first", type=as_of_type, help="replay every day from this one up to --date")
    parser.add_argument("--symbols", help="comma-separated symbols (default: RETRAIN_SYMBOLS)")
    parser.add_argument("--json", action="store_true", help="print each day's result as JSON")
    parser.set_defaults(run=cmd_predict_batch)


def replay_days(first: datetime | None, last: datetime) -> list[datetime]:
    """The as-of times of a run: ``last`` alone, or every day from ``first`` at ``last``'s time of day."""
    if first is None:
        return [last]
    start = first.replace(hour=last.hour, minute=last.minute, second=last.second, microsecond=last.microsecond)
    if start > last:
        raise RetrainError(f"--from {first:%Y-%m-%d} is after --date {last:%Y-%m-%d}")
    return [start + i * DAY for i in range((last - start) // DAY + 1)]


def cmd_predict_batch(args: argparse.Namespace) -> int:
    from common.aws.storage import S3ObjectStore
    from common.core.settings import load_settings
    from common.registry.mlflow_registry import Registry
    from common.serving.batch_predict import run_batch
    from common.serving.checked_versions import CheckedVersions
    from retrain.stack.config import load_local_config
    from retrain.stack.session import connect

    symbols = tuple(s.strip().upper() for s in args.symbols.split(",") if s.strip()) if args.symbols else None

    def log(message: str) -> None:
        print(f"{datetime.now(UTC):%H:%M:%S} {message}", file=sys.stderr, flush=True)

    failed = False
    with connect(load_local_config(**({"symbols": symbols} if symbols else {})), progress=log) as connection:
        settings = load_settings()
        if connection.mlflow_uri is None:
            raise RetrainError("batch predictions read champions from MLflow: set MLFLOW_TRACKING_URI")
        registry, objects = Registry(connection.mlflow_uri), S3ObjectStore(connection.bucket)
        models = CheckedVersions.of(registry)  # each version loaded and checked once for the whole replay
        for as_of in replay_days(args.first, args.date or settings.now()):
            run = run_batch(settings, registry, objects, as_of=as_of, symbols=symbols, models=models)
            failed = failed or bool(run.failed_models)
            if args.json:
                print(json.dumps(run.to_dict(), indent=2, default=str))
            else:
                print(f"batch predictions as of {as_of:%Y-%m-%d %H:%M} UTC")
                print(run.render())
    return 1 if failed else 0
