"""The ``retrain`` console command.

    retrain up       start the embedded local stack in the background (moto + MLflow, from template.yaml)
    retrain down     stop it, leaving no process or port behind
    retrain status   what runs where, and what the bucket, state machine and registry hold
    retrain demo     the whole loop replayed day by day on the sample data (its own embedded stack)
    retrain ingest   fetch the newest closed candles (or, --backfill, older ones too), validate, append
    retrain validate validation report of the stored OHLCV (gaps, bad rows, staleness)
    retrain features the 19-feature table of a symbol (printed, or written with --csv)
    retrain train    train, register and promote one model (SYMBOL TREND) or the pool (--all)
    retrain check    the daily trigger check: schedule, performance, drift; starts training if needed
    retrain predict-batch  log every champion's prediction for the last closed bar; fill in due outcomes
    retrain serve    the prediction API on loopback (uvicorn)
    retrain suspend  take a champion out of service (SYMBOL TREND --reason TEXT); retrain resume puts it back
    retrain drift    PSI drift of one feature table against another (CSV files, no stack needed)
    retrain backtest the loop's decisions replayed over years of history, policy against policy (no stack needed)

Commands that need AWS or MLflow use the configured endpoints when ``RETRAIN_DATA_BUCKET`` is set
(real AWS: also ``RETRAIN_STATE_MACHINE_ARN`` and ``MLFLOW_TRACKING_URI``), else the stack started by
``retrain up``, else an embedded stack started for that command and stopped after it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from common.core.errors import RetrainError
from common.core.settings import load_settings, pool_entry_text

EXIT_USAGE = 2


def _log(message: str, *, err: bool = False) -> None:
    print(f"{datetime.now(UTC):%H:%M:%S} {message}", file=sys.stderr if err else sys.stdout, flush=True)


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
        with connect(progress=lambda m: _log(m, err=True)) as connection:  # stdout: the report (--json) only
            report = collect_status(connection)
    print(json.dumps(report, indent=2, default=str) if args.json else render_status(report))
    return 0


# --- demo: the replay ------------------------------------------------------------------------------
DEMO_START = datetime(2024, 11, 20, tzinfo=UTC)
DEMO_DAYS = 30
DEMO_CLASSIFIERS = "lightgbm,ridge,random_forest"  # one boosted, one linear, one bagged: a fast, varied zoo


def cmd_demo(args: argparse.Namespace) -> int:
    import shutil

    from retrain.replay import render, render_outbox, render_plots, replay, replay_stack
    from retrain.stack import sample_data
    from retrain.stack.config import PROJECT_ROOT, LocalStackConfig

    last_day = sample_data.SAMPLE_DATA_END + timedelta(days=1)  # its ingestion appends the last sample bar

    sample_dir = LocalStackConfig().sample_data_dir
    if args.symbols.strip().lower() == "all":
        symbols = tuple(sorted(sample_data.available(sample_dir)))
    else:
        symbols = tuple(pool_entry_text(s) for s in args.symbols.split(",") if s.strip())
        sample_data.check_symbols(sample_dir, symbols)  # a clear error naming an entry without sample data
    load_settings(symbols=symbols)  # validates the symbols (and the environment) before anything starts
    classifiers = tuple(c.strip() for c in args.classifiers.split(",") if c.strip())
    if classifiers:
        load_settings(train_classifiers=classifiers)
    if args.days < 1:
        raise RetrainError(f"--days must be at least 1, got {args.days}")
    if args.start + timedelta(days=args.days) > last_day:
        raise RetrainError(
            f"--start {args.start:%Y-%m-%d} + --days {args.days} goes past the sample data "
            f"(its last bar is ingested on {last_day:%Y-%m-%d}); use fewer days or an earlier start"
        )
    state_dir = args.state_dir or PROJECT_ROOT / ".local" / "demo"
    if state_dir.exists():
        shutil.rmtree(state_dir)  # every demo replays on a fresh stack
    state_dir.mkdir(parents=True)
    log_path = state_dir / "demo.log"
    began = time.monotonic()

    def echo(message: str) -> None:
        print(f"{time.monotonic() - began:6.1f}s {message}", flush=True)

    zoo = ",".join(classifiers) or "the full zoo"
    echo(f"replaying {args.days} day(s) after {args.start:%Y-%m-%d} for {', '.join(symbols)} ({zoo})")
    if not args.verbose:
        echo(f"library logs (MLflow, the handlers' JSON) go to {log_path}")
    with (
        _quiet_libraries(log_path, verbose=args.verbose),
        replay_stack(
            symbols=symbols, start=args.start, state_dir=state_dir, classifiers=classifiers or None, echo=echo
        ) as info,
    ):
        plots = state_dir / "plots"
        summary = replay(info, symbols=symbols, start=args.start, days=args.days, echo=echo, plots_dir=plots)
        print()
        print(render(summary))
        print()
        print(render_outbox(summary))
        print()
        print(render_plots(summary))
        if args.summary_json:
            args.summary_json.write_text(json.dumps(summary.to_dict(), indent=2, default=str))
            print(f"\nsummary written to {args.summary_json}")
        print(f"\nMLflow UI: {info.mlflow_uri} (runs with equity curves, SHAP and confusion matrices)")
        if args.keep_open:
            print("the stack stays up for browsing; Ctrl-C stops it", flush=True)
            _wait_for_interrupt()
        else:
            print("  it stops with the demo; `retrain demo --keep-open` keeps it up for browsing")
    print(f"\ndemo took {time.monotonic() - began:.1f}s; state and logs in {state_dir}")
    return 0 if summary.failed_requests == 0 else 1


def _wait_for_interrupt() -> None:
    with contextlib.suppress(KeyboardInterrupt):
        while True:
            time.sleep(3600)


@contextlib.contextmanager
def _stop_like_ctrl_c() -> Iterator[None]:
    """SIGTERM (``kill``, a process manager, a container stop) unwinds like Ctrl-C, so whatever a command
    started for itself stops with it: a stack's stop() runs, no daemon or MLflow server is left behind.
    ``retrain serve``'s uvicorn takes SIGTERM while it serves, shuts down, and raises it again, which lands
    here."""
    import signal

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _quiet_libraries(log_path: Path, *, verbose: bool) -> Iterator[None]:
    """The demo's console shows its own progress; MLflow's and the handlers' chatter goes to a log file."""
    if verbose:
        yield
        return
    import logging

    from retrain.stack.process import patched_environment

    quiet = {
        "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "POWERTOOLS_METRICS_DISABLED": "true",  # EMF lines are for CloudWatch, not a console
    }
    with log_path.open("a") as log, patched_environment(quiet):
        import mlflow  # noqa: F401 - configures its logger on import; its handler is swapped just below

        handler = logging.StreamHandler(log)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        mlflow_logger = logging.getLogger("mlflow")
        saved = (mlflow_logger.handlers[:], mlflow_logger.propagate)
        mlflow_logger.handlers, mlflow_logger.propagate = [handler], False
        try:
            with contextlib.redirect_stderr(log):  # MLflow prints each registration to stderr
                yield
        finally:
            mlflow_logger.handlers, mlflow_logger.propagate = saved


# --- data: ingest / validate / features --------------------------------------------------------------
def _data_connection(args: argparse.Namespace) -> Any:
    """The store to read: configured, the running stack, or a moto-only stack for this command."""
    from retrain.stack.config import load_local_config
    from retrain.stack.sample_data import available
    from retrain.stack.session import connect

    symbols = getattr(args, "symbols", None)
    overrides: dict[str, Any] = {"with_mlflow": False}  # data commands never need the registry
    # A stack started for this command seeds the sample data of the symbols that have some; the others
    # come from elsewhere (a vendor, the user's replay folder) or are already stored, as with `retrain up`.
    seeded = tuple(s for s in symbols or () if s in available(load_local_config().sample_data_dir))
    if seeded:
        overrides["symbols"] = seeded
    return connect(load_local_config(**overrides), progress=lambda message: _log(message, err=True))


def _symbols(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    return tuple(s.strip().upper() for s in text.split(",") if s.strip())


def cmd_ingest(args: argparse.Namespace) -> int:
    from common.core.errors import ConfigurationError
    from common.core.settings import SYMBOL_RULE, is_symbol
    from common.data.ingestion import run_ingestion
    from retrain.market import describe_symbol

    overrides: dict[str, Any] = {}
    if args.provider:
        overrides["market_data_provider"] = args.provider
    if args.replay_dir:
        if not args.replay_dir.is_dir():
            raise ConfigurationError(
                f"--replay-dir {args.replay_dir}: not a folder (it holds {{interval}}/{{SYMBOL}}.csv)"
            )
        overrides["market_data_replay_dir"] = str(args.replay_dir.resolve())
    elif args.provider == "replay":
        from retrain.stack.config import load_local_config

        overrides["market_data_replay_dir"] = str(load_local_config().sample_data_dir)
    if args.since and not args.backfill:
        raise RetrainError("--since goes with --backfill (a plain ingest fetches after the newest stored bar)")
    args.symbols = _symbols(args.symbols)
    misnamed = [s for s in args.symbols or () if not is_symbol(s)]
    if misnamed:  # before anything starts; a replay file is named after its symbol (1d/ETC.csv)
        raise ConfigurationError(f"--symbols {','.join(misnamed)}: {SYMBOL_RULE}")
    with _data_connection(args):
        settings = load_settings(**overrides)
        as_of = args.as_of or settings.now()
        summary = run_ingestion(
            settings,
            symbols=args.symbols,
            interval=args.interval or settings.interval,
            as_of=as_of,
            progress=lambda item: _log(describe_symbol(item), err=True),
            backfill=args.backfill,
            since=args.since,
        )
    print(json.dumps(summary.to_dict(), indent=2) if args.json else summary.render())
    return 1 if summary.failed else 0


def cmd_validate(args: argparse.Namespace) -> int:
    from retrain.market import render_reports, validate_all

    args.symbols = _symbols(args.symbols)
    with _data_connection(args):
        settings = load_settings()
        symbols = args.symbols or settings.symbols
        as_of = args.as_of or settings.now()
        interval = args.interval or settings.interval
        checks = validate_all(settings, symbols, interval, as_of)
    if args.json:
        print(json.dumps([check.to_dict() for check in checks], indent=2))
    else:
        print(f"as of {as_of:%Y-%m-%d %H:%M} UTC, gap policy {settings.gap_policy}")
        print(render_reports(checks, interval))
    return 1 if any(check.error for check in checks) else 0


def cmd_features(args: argparse.Namespace) -> int:
    from retrain.market import end_of_day, feature_table_for, write_csv

    symbol = args.symbol.upper()
    args.symbols = (symbol,)
    with _data_connection(args):
        settings = load_settings()
        as_of = end_of_day(args.end) if args.end else settings.now()
        result = feature_table_for(settings, symbol, args.interval or settings.interval, as_of)
    _log(f"{result.report.summary()} from {result.source}", err=True)
    table = result.table
    if args.csv:
        write_csv(table, args.csv)
        _log(f"wrote {len(table)} rows x {table.shape[1]} columns to {args.csv}", err=True)
        return 0
    shown = table if args.tail == 0 else table.tail(args.tail)
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if len(shown) < len(table):
        print(f"(last {len(shown)} of {len(table)} rows; --tail 0 prints all, --csv PATH writes them)")
    return 0


# --- train -------------------------------------------------------------------------------------------
def cmd_train(args: argparse.Namespace) -> int:
    from common.core.settings import TRENDS
    from retrain.market import end_of_day
    from retrain.stack.config import load_local_config
    from retrain.stack.session import connect
    from retrain.train import notification_text, outcomes, render_summary, start_training

    if args.all == bool(args.symbol):
        raise RetrainError("give SYMBOL TREND (e.g. `retrain train BTC uptrend`) or --all, not both")
    if args.symbol:
        if args.trend not in TRENDS:
            raise RetrainError(f"TREND must be one of {', '.join(TRENDS)}, got {args.trend!r}")
        symbols: tuple[str, ...] = (args.symbol.upper(),)
        trends = (args.trend,)
    else:
        symbols = load_settings().symbols
        trends = TRENDS
    load_settings(symbols=symbols)  # validates the symbols before anything starts
    models = [{"symbol": s, "trend": t, "reason": "manual"} for s in symbols for t in trends]
    with connect(load_local_config(symbols=symbols), progress=lambda m: _log(m, err=True)) as connection:
        settings = load_settings()
        as_of = end_of_day(args.end) if args.end else settings.now()
        echo = (lambda m: _log(m, err=True)) if args.json else _log
        result = start_training(
            connection, models, as_of=as_of, name=args.name, echo=echo, verbose_steps=args.steps and not args.json
        )
        items = outcomes(result)
        if args.json:
            print(
                json.dumps(
                    {"execution": result.arn, "status": result.status, **(result.output or {})}, indent=2, default=str
                )
            )
        else:
            print()
            print(render_summary(items))
            delivered = ((result.output or {}).get("notification") or {}).get("delivered_to") or []
            text = notification_text(result.output)
            if text:
                print(f"\nnotification (-> {', '.join(delivered) or 'nowhere'}):")
                print("\n".join("  " + line for line in text.splitlines()))
            if connection.mlflow_uri:
                print(f"MLflow UI: {connection.mlflow_uri}")
            print(f"execution {result.status} in {result.duration_s:.1f}s")
    failed = result.status != "SUCCEEDED" or any(item.status == "failed" for item in items)
    return 1 if failed else 0


# --- check -------------------------------------------------------------------------------------------
def cmd_check(args: argparse.Namespace) -> int:
    from common.aws.storage import S3ObjectStore
    from common.aws.workflow import TrainingWorkflow
    from common.loop.check import run_check
    from common.registry.mlflow_registry import Registry
    from retrain.stack.config import load_local_config
    from retrain.stack.session import connect

    symbols = _symbols(args.symbols)
    with connect(
        load_local_config(**({"symbols": symbols} if symbols else {})), progress=lambda m: _log(m, err=True)
    ) as connection:
        settings = load_settings()
        as_of = args.date or settings.now()
        if connection.mlflow_uri is None:
            raise RetrainError("the check reads champions from MLflow: set MLFLOW_TRACKING_URI")
        workflow = None
        if not args.dry_run and connection.state_machine_arn:
            workflow = TrainingWorkflow(connection.state_machine_arn)
        started = time.monotonic()
        summary = run_check(
            settings,
            Registry(connection.mlflow_uri),
            S3ObjectStore(connection.bucket),
            as_of=as_of,
            start_execution=workflow.start if workflow else None,
            symbols=symbols,
            progress=(lambda m: _log(m, err=True)),
        )
        elapsed = time.monotonic() - started
    if args.json:
        print(json.dumps(summary.to_dict(), indent=2, default=str))
    else:
        print(f"check as of {as_of:%Y-%m-%d %H:%M} UTC ({elapsed:.1f}s)")
        print(summary.render())
        if args.dry_run and summary.to_retrain:
            print("(--dry-run: no training started)")
    return 1 if summary.errors else 0


# --- drift -------------------------------------------------------------------------------------------
def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from common.serving.api import Service, create_app
    from retrain.stack.config import load_local_config
    from retrain.stack.session import connect

    with connect(load_local_config(), progress=lambda m: _log(m, err=True)) as connection:
        if connection.mlflow_uri is None:
            raise RetrainError("the predictor reads champions from MLflow: set MLFLOW_TRACKING_URI")
        overrides: dict[str, Any] = {"data_bucket": connection.bucket, "mlflow_tracking_uri": connection.mlflow_uri}
        if args.date:
            overrides["as_of"] = args.date
        service = Service.from_settings(load_settings(**overrides), background=True)
        app = create_app(lambda: service)
        _log(f"serving the prediction API on http://{args.host}:{args.port} (OpenAPI docs at /docs); Ctrl-C stops")
        try:
            # Server.run, not uvicorn.run: uvicorn.run swallows the KeyboardInterrupt that a Ctrl-C or SIGTERM
            # becomes once the server has shut down, and this command must unwind to stop its own stack.
            uvicorn.Server(
                uvicorn.Config(app, host=args.host, port=args.port, log_level="warning", access_log=False)
            ).run()
        finally:
            service.models.close()
    return 0


def cmd_suspend(args: argparse.Namespace) -> int:
    """``retrain suspend`` / ``retrain resume``: the operator's hand on a champion's service."""
    from common.core.settings import TRENDS, registered_model_name
    from common.loop.live_record import resume, suspend
    from common.registry.mlflow_registry import CHAMPION, Registry
    from retrain.stack.config import load_local_config
    from retrain.stack.session import connect

    if args.trend not in TRENDS:
        raise RetrainError(f"TREND must be one of {', '.join(TRENDS)}, got {args.trend!r}")
    symbol = args.symbol.upper()
    name = registered_model_name(symbol, args.trend)
    with connect(load_local_config(), progress=lambda m: _log(m, err=True)) as connection:
        if connection.mlflow_uri is None:
            raise RetrainError("suspension is recorded in the MLflow registry: set MLFLOW_TRACKING_URI")
        registry = Registry(connection.mlflow_uri)
        if args.command == "resume":
            champion = resume(registry, name)
            print(f"{name} v{champion.version} resumed: the API serves it again (within the predictor's refresh)")
            return 0
        champion = registry.version_by_alias(name, CHAMPION)
        if champion is None:
            raise RetrainError(f"{name} has no champion to suspend")
        since = load_settings().now()
        suspension = suspend(registry, name, champion.version, why=args.reason, since=since, by="operator")
        print(f"{name} v{champion.version} {suspension.text()}; `retrain resume {symbol} {args.trend}` undoes it")
    return 0


def cmd_backtest(args: argparse.Namespace) -> int:
    from common.backtest.report import report_files
    from retrain import backtest

    began = time.monotonic()

    def echo(message: str) -> None:
        print(f"{time.monotonic() - began:7.1f}s {message}", file=sys.stderr if args.json else sys.stdout, flush=True)

    plan = backtest.plan(
        symbols=args.symbols,
        start=backtest.parse_day(args.start),
        end=backtest.parse_day(args.end),
        policies=args.policies,
        classifiers=args.classifiers,
        interval=args.interval,
        data_dir=args.data_dir or _sample_dir(),
        baseline=args.baseline,
    )
    jobs = max(1, min(args.jobs or (os.cpu_count() or 1), len(plan.units)))
    echo(
        f"backtest {plan.start:%Y-%m-%d} .. {plan.end:%Y-%m-%d}: {len(plan.units)} model(s) x "
        f"{len(plan.policies)} policies ({', '.join(p.name for p in plan.policies)}), "
        f"{', '.join(plan.settings.train_classifiers)}, {jobs} job(s)"
    )
    checkpoints = backtest.UnitCheckpoints(args.report / backtest.UNITS_FOLDER, backtest.code_fingerprint())
    models, timings = backtest.run(plan, jobs=jobs, echo=echo, checkpoints=checkpoints, resume=args.resume)
    wall = time.monotonic() - began
    echo(f"replayed in {wall:.1f}s; summarising ({args.bootstrap} bootstrap replicates)")
    summary = backtest.summarize_run(plan, models, replicates=args.bootstrap)
    meta = plan.meta()
    times = backtest.run_timings(timings, wall, jobs)
    backtest.write_report(args.report, report_files(models, summary, meta, times))
    if args.json:
        print(json.dumps({"meta": meta, "summary": summary, "timings": times}, indent=1, sort_keys=True))
    else:
        print()
        print(backtest.render_console(summary, meta))
        print()
        print(
            f"{times['trainings_computed']} trainings computed for {times['trainings_asked']} asked "
            f"({times['shared_share']:.0%} shared across policies), {times['trainings_per_second']} per second"
        )
        print(f"report: {args.report / 'report.md'} (tables, JSON, pareto.png, equity.png, estimate_vs_live.png)")
    return 0


def _sample_dir() -> Path:
    from retrain.stack.config import LocalStackConfig

    return Path(LocalStackConfig().sample_data_dir)


def _print_drift_row(name: str, feature: Any, missing: str) -> None:
    psi = f"{feature.psi:.4f}" if feature.psi is not None else "-"
    threshold = f"{feature.threshold:.4f}" if feature.threshold is not None else "-"
    print(f"{name:<32}{psi:>9}{threshold:>11}  {missing:<17}{feature.status}{' (blind)' if feature.blind else ''}")


def cmd_drift(args: argparse.Namespace) -> int:
    from retrain.market import drift_between

    report = drift_between(args.reference, args.current, load_settings(), png=args.png)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, default=str))
        return 0
    print(
        f"rule {report.rule}, alpha {report.alpha}, {report.n_rows} current rows vs {report.reference_rows} reference rows"
    )
    print(f"{'feature':<32}{'psi':>9}{'threshold':>11}  {'missing ref/cur':<17}status")
    for feature in report.features:
        _print_drift_row(
            feature.name, feature, f"{feature.reference_missing_rate:.2f}/{feature.current_missing_rate:.2f}"
        )
    if report.residuals:
        print(f"\n{'residual (feature given the others)':<32}{'psi':>9}{'threshold':>11}  {'':<17}status")
        for residual in report.residuals:
            _print_drift_row(residual.name, residual, "")
    print(f"decision: {report.decision}{' - ' + report.reason if report.reason else ''}")
    if args.png:
        print(f"PSI chart: {args.png}")
    return 0


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

    demo = commands.add_parser(
        "demo",
        help="replay the sample history day by day through the whole loop: ingestion, predictions, triggers, "
        "retrains, promotions, hot swaps",
    )
    demo.add_argument(
        "--symbols",
        default="BTC,ETH",
        help="comma-separated pool entries: SYMBOL (daily) or SYMBOL:1h (hourly), e.g. BTC,ETH,XRP:1h,DOGE:1h for "
        "a mixed pool; or `all` for every daily symbol (default: BTC,ETH)",
    )
    demo.add_argument(
        "--start", type=_as_of, default=DEMO_START, help=f"train as of this day (default {DEMO_START:%Y-%m-%d})"
    )
    demo.add_argument("--days", type=int, default=DEMO_DAYS, help=f"days replayed after --start (default {DEMO_DAYS})")
    demo.add_argument(
        "--classifiers",
        default=DEMO_CLASSIFIERS,
        help=f"comma-separated zoo subset, empty for the full 9-model zoo (default {DEMO_CLASSIFIERS})",
    )
    demo.add_argument("--summary-json", type=Path, default=None, help="write the summary as JSON to this file")
    demo.add_argument("--state-dir", type=Path, default=None, help="the demo stack's folder (default .local/demo)")
    demo.add_argument("--keep-open", action="store_true", help="keep the stack (MLflow UI) up after the summary")
    demo.add_argument("--verbose", action="store_true", help="library logs on the console instead of demo.log")
    demo.set_defaults(run=cmd_demo)

    as_of_help = "as-of time YYYY-MM-DD[THH:MM] UTC (default: RETRAIN_AS_OF or now)"
    ingest = commands.add_parser(
        "ingest",
        help="fetch, validate and append the newest closed candles (--backfill: older ones too)",
        description="Fetch the closed candles the store does not hold yet, validate them and append them. "
        "Every refused row is listed with its time and reason, after the counts per reason.",
    )
    ingest.add_argument("--symbols", help="comma-separated symbols (default: RETRAIN_SYMBOLS)")
    ingest.add_argument("--interval", choices=["1d", "1h"], help="default: RETRAIN_INTERVAL")
    ingest.add_argument("--as-of", type=_as_of, default=None, help=as_of_help)
    ingest.add_argument(
        "--provider", choices=["binance", "replay"], help="default: RETRAIN_MARKET_DATA_PROVIDER (binance)"
    )
    ingest.add_argument(
        "--replay-dir",
        type=Path,
        help="replay: {interval}/{SYMBOL}.csv folder (default: sample data); a new series takes the whole file",
    )
    ingest.add_argument(
        "--backfill",
        action="store_true",
        help="fetch the whole history (from --since, default: all the provider has) and add every bar the store "
        "lacks, older ones included; stored bars are compared, never rewritten (a differing one is refused and "
        "listed); re-running changes nothing",
    )
    ingest.add_argument(
        "--since", type=_as_of, default=None, help="with --backfill: the oldest bar to fetch, YYYY-MM-DD"
    )
    ingest.add_argument("--json", action="store_true", help="print the summary as JSON")
    ingest.set_defaults(run=cmd_ingest)

    validate = commands.add_parser("validate", help="validation report of the stored OHLCV")
    validate.add_argument("--symbols", help="comma-separated symbols (default: RETRAIN_SYMBOLS)")
    validate.add_argument("--interval", choices=["1d", "1h"], help="default: RETRAIN_INTERVAL")
    validate.add_argument("--as-of", type=_as_of, default=None, help=as_of_help)
    validate.add_argument("--json", action="store_true")
    validate.set_defaults(run=cmd_validate)

    features = commands.add_parser("features", help="the 19-feature table of one symbol")
    features.add_argument("symbol", help="e.g. BTC")
    features.add_argument("--interval", choices=["1d", "1h"], help="default: RETRAIN_INTERVAL")
    features.add_argument("--end", type=_as_of, help="last day to include, YYYY-MM-DD (default: every closed bar)")
    features.add_argument("--csv", type=Path, help="write the whole table to this CSV file instead of printing")
    features.add_argument("--tail", type=int, default=20, help="rows to print (0: all; default 20)")
    features.set_defaults(run=cmd_features)

    train = commands.add_parser("train", help="train, register and promote a model (or the pool with --all)")
    train.add_argument("symbol", nargs="?", help="e.g. BTC")
    train.add_argument("trend", nargs="?", help="uptrend or downtrend")
    train.add_argument("--all", action="store_true", help="every configured symbol x both trends")
    train.add_argument("--end", type=_as_of, help="train on bars up to this day, YYYY-MM-DD (default: as of now)")
    train.add_argument("--name", help="execution name (re-using one re-attaches to it: nothing is trained twice)")
    train.add_argument("--steps", action="store_true", help="print every state-machine step")
    train.add_argument("--json", action="store_true", help="print the execution output as JSON")
    train.set_defaults(run=cmd_train)

    check = commands.add_parser("check", help="run the daily trigger check (and start training if needed)")
    check.add_argument("--date", type=_as_of, help="check as of this day's 00:00 UTC, YYYY-MM-DD (default: now)")
    check.add_argument("--symbols", help="comma-separated symbols (default: RETRAIN_SYMBOLS)")
    check.add_argument("--dry-run", action="store_true", help="decide and record, but start no training")
    check.add_argument("--json", action="store_true", help="print the decisions as JSON")
    check.set_defaults(run=cmd_check)

    drift = commands.add_parser("drift", help="PSI drift of a current feature table against a reference table")
    drift.add_argument(
        "--reference",
        type=Path,
        required=True,
        help="CSV with the 19 feature columns (e.g. from `retrain features --csv`)",
    )
    drift.add_argument("--current", type=Path, required=True, help="CSV with the same columns")
    drift.add_argument("--png", type=Path, help="also write the PSI bar chart here")
    drift.add_argument("--json", action="store_true", help="per-feature `psi` and a top-level `drift_detected`")
    drift.set_defaults(run=cmd_drift)

    for verb, text in (
        ("suspend", "take a champion out of service: the API answers 404 with the reason until it is resumed"),
        ("resume", "put a suspended champion back in service"),
    ):
        operator = commands.add_parser(verb, help=text, description=text)
        operator.add_argument("symbol", metavar="SYMBOL")
        operator.add_argument("trend", metavar="TREND", help="uptrend or downtrend")
        if verb == "suspend":
            operator.add_argument("--reason", required=True, help="why, in words (shown to API clients)")
        operator.set_defaults(run=cmd_suspend)

    from retrain import backtest as bt

    backtest = commands.add_parser(
        "backtest",
        help="replay years of history through the loop's own decisions, policy against policy",
        description="Day by day over a period, for each (symbol, trend) and each policy, the live loop's own "
        "trigger check, training, gate, promotion and batch predictions, on the bars each decision could have "
        "seen; then what the served predictions were worth, every difference from the default policy with a "
        "block-bootstrap interval. Policies: default, never, every-Nd, schedule, performance, drift, each "
        "optionally +always (promote every challenger that passes the gate).",
    )
    backtest.add_argument(
        "--symbols", default=bt.DEFAULT_SYMBOLS, help=f"comma-separated (default {bt.DEFAULT_SYMBOLS})"
    )
    backtest.add_argument(
        "--start", default=bt.DEFAULT_START, help=f"initial training day (default {bt.DEFAULT_START})"
    )
    backtest.add_argument("--end", default=bt.DEFAULT_END, help=f"last replayed day (default {bt.DEFAULT_END})")
    backtest.add_argument(
        "--policies",
        default=bt.DEFAULT_POLICIES,
        help=f"comma-separated (default {bt.DEFAULT_POLICIES}; default is always added)",
    )
    backtest.add_argument(
        "--classifiers",
        default=bt.DEFAULT_CLASSIFIERS,
        help=f"the zoo (default {bt.DEFAULT_CLASSIFIERS}; '' for RETRAIN_TRAIN_CLASSIFIERS)",
    )
    backtest.add_argument(
        "--baseline", default="default", help="the policy every difference is reported against (default: default)"
    )
    backtest.add_argument("--interval", choices=["1d", "1h"], default="1d", help="bar interval (default 1d)")
    backtest.add_argument("--jobs", type=int, default=0, help="worker processes (default: one per core)")
    backtest.add_argument(
        "--report", type=Path, default=Path(".local/backtest"), help="report folder (default .local/backtest)"
    )
    backtest.add_argument("--data-dir", type=Path, help="folder of {interval}/{SYMBOL}.csv (default: the sample data)")
    backtest.add_argument(
        "--bootstrap", type=int, default=bt.DEFAULT_REPLICATES, help="bootstrap replicates (default 1000)"
    )
    backtest.add_argument(
        "--resume",
        action="store_true",
        help="reuse the units an earlier run of the same arguments, settings, data and code finished in --report "
        "(each unit is saved in its units/ folder as it finishes)",
    )
    backtest.add_argument("--json", action="store_true", help="print the summary as JSON (progress goes to stderr)")
    backtest.set_defaults(run=cmd_backtest)

    from retrain.batch import add_parser as add_predict_batch_parser

    add_predict_batch_parser(commands, _as_of)

    serve = commands.add_parser("serve", help="serve the prediction API on the local stack (uvicorn)")
    serve.add_argument("--port", type=int, default=8080, help="port on 127.0.0.1 (default 8080)")
    serve.add_argument("--host", default="127.0.0.1", help="interface to bind (default loopback only)")
    serve.add_argument("--date", type=_as_of, help="serve as of this day's 00:00 UTC (replays; default: now)")
    serve.set_defaults(run=cmd_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with _stop_like_ctrl_c():
            return args.run(args)
    except RetrainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted: stopped cleanly", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
