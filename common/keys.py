"""The S3 key layout, in one place. Everything the system stores lives in the data bucket:

=====================================================  ===============================================
key                                                    what
=====================================================  ===============================================
``ohlcv/interval={interval}/symbol={SYMBOL}/bars.csv``  OHLCV bars, ``datetime,open,high,low,close,volume``
``runs/{run_id}/{SYMBOL}_{trend}/dataset.json``          dataset manifest written by a training run
``notifications/{YYYY-MM-DD}/{run_id}.json``            notification outbox (one message per run)
``runs/{run_id}/notify/{channel}/chunk-{NNN}.json``       marker: chunk NNN (from 001) of the run's message was sent
``predictions/model={SYMBOL}_{trend}/bar={YYYY-MM-DDTHH:MM}/v{version}.json``  one prediction record per bar, model and version
``decisions/date={YYYY-MM-DD}/{SYMBOL}_{trend}.json``      the trigger checker's decision record (one per model per day)
``decisions/date={YYYY-MM-DD}/{SYMBOL}_{trend}_psi.png``   its PSI bar chart
``backtests/{run_id}/units/{SYMBOL}_{trend}.json``          one model's backtest result and timings (a Map iteration)
``backtests/{run_id}/report/{name}``                      the backtest's report (report.md, backtest.json, plots)
``mlflow/``                                            MLflow artifacts (local stack's tracking server)
=====================================================  ===============================================

The ``interval=``/``symbol=`` partitions keep the layout queryable by Athena/Glue as is.
"""

from __future__ import annotations

from datetime import datetime

OHLCV_PREFIX = "ohlcv/"
RUNS_PREFIX = "runs/"
NOTIFICATIONS_PREFIX = "notifications/"
MLFLOW_ARTIFACTS_PREFIX = "mlflow/"
PREDICTIONS_PREFIX = "predictions/"
DECISIONS_PREFIX = "decisions/"
BACKTESTS_PREFIX = "backtests/"


def ohlcv_key(symbol: str, interval: str) -> str:
    return f"{OHLCV_PREFIX}interval={interval}/symbol={symbol}/bars.csv"


def dataset_manifest_key(run_id: str, symbol: str, trend: str) -> str:
    return f"{RUNS_PREFIX}{run_id}/{symbol}_{trend}/dataset.json"


def notification_key(run_id: str, created_at: datetime) -> str:
    return f"{NOTIFICATIONS_PREFIX}{created_at:%Y-%m-%d}/{run_id}.json"


def sent_chunks_prefix(run_id: str, channel: str) -> str:
    """Markers of the chunks of a run's message that ``channel`` delivered (one object per chunk)."""
    return f"{RUNS_PREFIX}{run_id}/notify/{channel}/"


def sent_chunk_key(run_id: str, channel: str, number: int) -> str:
    return f"{sent_chunks_prefix(run_id, channel)}chunk-{number:03d}.json"


def predictions_prefix(symbol: str, trend: str) -> str:
    return f"{PREDICTIONS_PREFIX}model={symbol}_{trend}/"


def prediction_key(symbol: str, trend: str, bar: datetime, version: str) -> str:
    """One object per (bar, model, version): writing the same prediction twice is the same PUT."""
    return f"{predictions_prefix(symbol, trend)}bar={bar:%Y-%m-%dT%H:%M}/v{version}.json"


def decision_key(symbol: str, trend: str, day: datetime, suffix: str = ".json") -> str:
    return f"{DECISIONS_PREFIX}date={day:%Y-%m-%d}/{symbol}_{trend}{suffix}"


def backtest_prefix(run_id: str) -> str:
    """Everything one backtest run (one execution of the backtest state machine) writes."""
    return f"{BACKTESTS_PREFIX}{run_id}/"


def backtest_unit_key(run_id: str, symbol: str, trend: str) -> str:
    return f"{backtest_prefix(run_id)}units/{symbol}_{trend}.json"


def backtest_report_key(run_id: str, name: str) -> str:
    """One file of the run's report, by its name (``report.md``, ``backtest.json``, ``pareto.png``, ...)."""
    return f"{backtest_prefix(run_id)}report/{name}"
