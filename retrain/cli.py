"""The ``retrain`` console command.

    retrain up       start the embedded local stack in the background (moto + MLflow, from template.yaml)
    retrain down     stop it, leaving no process or port behind
    retrain status   what runs where, and what the bucket, state machine and registry hold
    retrain demo     the retraining loop on the sample data (starts a stack on demand)

Commands that need AWS or MLflow use the configured endpoints when ``RETRAIN_DATA_BUCKET`` is set
(real AWS: also ``RETRAIN_STATE_MACHINE_ARN`` and ``MLFLOW_TRACKING_URI``), else the stack started by
``retrain up``, else an embedded stack started for that command and stopped after it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from typing import Any

from common.errors import RetrainError
from common.settings import load_settings

EXIT_USAGE = 2


def _log(message: str) -> None:
    print(f"{datetime.now(UTC):%H:%M:%S} {message}", flush=True)


# --- up / down / status ----------------------------------------------------------------------------
def cmd_up(args: argparse.Namespace) -> int:
    from retrain.stack.config import load_local_config
    from retrain.stack.control import running_stack, start_daemon

    config = load_local_config()
    info = running_stack(config)
    if info is not None:
        print(f"already running (pid {info.pid})")
    else:
        info = start_daemon(config, timeout=args.timeout, progress=_log)
    _print_endpoints(info)
    return 0


def _print_endpoints(info: Any) -> None:
    print(f"  AWS (moto):   {info.aws_endpoint}   bucket {info.bucket}")
    print(f"  MLflow:       {info.mlflow_uri}")
    for logical_id, arn in info.state_machines.items():
        print(f"  {logical_id}: {arn}")
    print("  use it from a shell:")
    for name, value in info.client_environment().items():
        print(f"    export {name}={value}")


def cmd_down(args: argparse.Namespace) -> int:
    from retrain.stack.config import load_local_config
    from retrain.stack.control import running_stack, stop_daemon

    info = running_stack(load_local_config())
    if info is None:
        print("the local stack is not running")
        return 0
    stop_daemon(info, timeout=args.timeout)
    _log(f"stopped (pid {info.pid}); no process or port left; state kept in {info.state_dir}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from retrain.stack.config import load_local_config
    from retrain.stack.session import configured, connect, running_stack
    from retrain.status import collect_status, render_status

    if not configured() and running_stack(load_local_config()) is None:
        report: dict[str, Any] = {
            "running": False,
            "message": "the local stack is not running (`retrain up` starts it) and no endpoints are configured (RETRAIN_DATA_BUCKET)",
        }
    else:
        with connect() as connection:
            report = collect_status(connection)
    print(json.dumps(report, indent=2, default=str) if args.json else render_status(report))
    return 0


# --- demo ------------------------------------------------------------------------------------------
def cmd_demo(args: argparse.Namespace) -> int:
    from retrain.demo import SAMPLE_DATA_END, render_outcomes, run_demo
    from retrain.stack.config import load_local_config
    from retrain.stack.session import connect

    symbols = tuple(s.strip().upper() for s in args.symbols.split(",") if s.strip())
    load_settings(symbols=symbols)  # validates the symbols before anything starts
    as_of = args.as_of or SAMPLE_DATA_END
    started = time.monotonic()
    # An embedded stack started for the demo only seeds the demo's symbols (faster, and an unknown
    # symbol is reported before anything starts).
    with connect(load_local_config(symbols=symbols), progress=_log) as connection:
        _log(f"using {connection.source}: bucket {connection.bucket}")
        result = run_demo(connection, symbols=symbols, as_of=as_of, echo=print)
        print()
        print(render_outcomes(result.outcomes))
        if result.notification_text:
            print("\nnotification:\n" + "\n".join("  " + line for line in result.notification_text.splitlines()))
        if connection.mlflow_uri:
            lasts = " (stops with this command; `retrain up` keeps it)" if connection.stops_after_command else ""
            print(f"\nMLflow UI: {connection.mlflow_uri}{lasts}")
    print(f"\nexecution {result.execution.status} in {result.execution.duration_s:.1f}s "
          f"({len(result.execution.steps)} steps); demo took {time.monotonic() - started:.1f}s")  # fmt: skip
    return 0 if result.execution.status == "SUCCEEDED" else 1


def _as_of(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD or ISO 8601)") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# --- entry point -------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="retrain", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = commands.add_parser("up", help="start the embedded local stack in the background")
    up.add_argument("--timeout", type=float, default=120, help="seconds to wait for readiness")
    up.set_defaults(run=cmd_up)

    down = commands.add_parser("down", help="stop the embedded local stack")
    down.add_argument("--timeout", type=float, default=60)
    down.set_defaults(run=cmd_down)

    status = commands.add_parser("status", help="show the stack and what it holds")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(run=cmd_status)

    demo = commands.add_parser("demo", help="run the retraining loop on the sample data")
    demo.add_argument("--symbols", default="BTC,ETH", help="comma-separated symbols (default: BTC,ETH)")
    demo.add_argument(
        "--as-of", type=_as_of, default=None, help="as-of date YYYY-MM-DD (default: end of the sample data)"
    )
    demo.set_defaults(run=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except RetrainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted: stopped cleanly", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
