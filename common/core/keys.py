"""The S3 key layout, in one place. Everything the system stores lives in the data bucket:

====================================================================  ==========================================================
key                                                                   what
====================================================================  ==========================================================
``ohlcv/interval={interval}/symbol={SYMBOL}/bars.csv``                OHLCV bars, ``datetime,open,high,low,close,volume``
``runs/{run_id}/{model}/dataset.json``                                dataset manifest written by a training run
``notifications/{YYYY-MM-DD}/{run_id}.json``                          notification outbox (one message per run)
``runs/{run_id}/notify/{channel}/chunk-{NNN}.json``                   marker: chunk NNN (from 001) of the run's message was sent
``predictions/model={model}/bar={YYYY-MM-DDTHH:MM}/v{version}.json``  one prediction record per bar, model and version
``decisions/date={YYYY-MM-DD}/{model}.json``                          a daily model's decision record (one per model per day)
``decisions/date={YYYY-MM-DD}/hour={HH}/{model}.json``                an hourly model's decision record (one per model per hour)
``decisions/date={YYYY-MM-DD}/[hour={HH}/]{model}_psi.png``           its PSI bar chart
``backtests/{run_id}/units/{model}.json``                             one model's backtest result and timings (a Map iteration)
``backtests/{run_id}/report/{name}``                                  the backtest's report (report.md, backtest.json, plots)
``mlflow/``                                                           MLflow artifacts (local stack's tracking server)
====================================================================  ==========================================================

``{model}`` names one model (:func:`common.core.settings.model_stem`): ``BTC_uptrend`` for a daily model, as it always
was, ``XRP_1h_uptrend`` for an hourly one. The ``interval=``/``symbol=`` partitions keep the layout queryable by
Athena/Glue as is.
"""

from __future__ import annotations

from datetime import datetime

from common.core.settings import model_stem

OHLCV_PREFIX = "ohlcv/"
RUNS_PREFIX = "runs/"
NOTIFICATIONS_PREFIX = "notifications/"
MLFLOW_ARTIFACTS_PREFIX = "mlflow/"
PREDICTIONS_PREFIX = "predictions/"
DECISIONS_PREFIX = "decisions/"
BACKTESTS_PREFIX = "backtests/"


def ohlcv_key(symbol: str, interval: str) -> str:
    return f"{OHLCV_PREFIX}interval={interval}/symbol={symbol}/bars.csv"


def dataset_manifest_key(run_id: str, symbol: str, trend: str, interval: str = "1d") -> str:
    return f"{RUNS_PREFIX}{run_id}/{model_stem(symbol, trend, interval)}/dataset.json"


def notification_key(run_id: str, created_at: datetime) -> str:
    return f"{NOTIFICATIONS_PREFIX}{created_at:%Y-%m-%d}/{run_id}.json"


def sent_chunks_prefix(run_id: str, channel: str) -> str:
    """Markers of the chunks of a run's message that ``channel`` delivered (one object per chunk)."""
    return f"{RUNS_PREFIX}{run_id}/notify/{channel}/"


def sent_chunk_key(run_id: str, channel: str, number: int) -> str:
    return f"{sent_chunks_prefix(run_id, channel)}chunk-{number:03d}.json"


def predictions_prefix(symbol: str, trend: str, interval: str = "1d") -> str:
    return f"{PREDICTIONS_PREFIX}model={model_stem(symbol, trend, interval)}/"


def prediction_key(symbol: str, trend: str, bar: datetime, version: str, interval: str = "1d") -> str:
    """One object per (bar, model, version): writing the same prediction twice is the same PUT."""
    return f"{predictions_prefix(symbol, trend, interval)}bar={bar:%Y-%m-%dT%H:%M}/v{version}.json"


def decision_key(symbol: str, trend: str, when: datetime, suffix: str = ".json", interval: str = "1d") -> str:
    """A daily model's decision of the day; an hourly model is checked every hour: its decision of the hour."""
    hour = "" if interval == "1d" else f"hour={when:%H}/"
    return f"{DECISIONS_PREFIX}date={when:%Y-%m-%d}/{hour}{model_stem(symbol, trend, interval)}{suffix}"


def backtest_prefix(run_id: str) -> str:
    """Everything one backtest run (one execution of the backtest state machine) writes."""
    return f"{BACKTESTS_PREFIX}{run_id}/"


def backtest_unit_key(run_id: str, symbol: str, trend: str, interval: str = "1d") -> str:
    return f"{backtest_prefix(run_id)}units/{model_stem(symbol, trend, interval)}.json"


def backtest_report_key(run_id: str, name: str) -> str:
    """One file of the run's report, by its name (``report.md``, ``backtest.json``, ``pareto.png``, ...)."""
    return f"{backtest_prefix(run_id)}report/{name}"
