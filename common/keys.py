"""The S3 key layout, in one place. Everything the system stores lives in the data bucket:

=====================================================  ===============================================
key                                                    what
=====================================================  ===============================================
``ohlcv/interval={interval}/symbol={SYMBOL}/bars.csv``  OHLCV bars, ``datetime,open,high,low,close,volume``
``runs/{run_id}/{SYMBOL}_{trend}/dataset.json``          dataset manifest written by a training run
``notifications/{YYYY-MM-DD}/{run_id}.json``            notification outbox (one message per run)
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


def ohlcv_key(symbol: str, interval: str) -> str:
    return f"{OHLCV_PREFIX}interval={interval}/symbol={symbol}/bars.csv"


def dataset_manifest_key(run_id: str, symbol: str, trend: str) -> str:
    return f"{RUNS_PREFIX}{run_id}/{symbol}_{trend}/dataset.json"


def notification_key(run_id: str, created_at: datetime) -> str:
    return f"{NOTIFICATIONS_PREFIX}{created_at:%Y-%m-%d}/{run_id}.json"
