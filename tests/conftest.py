"""Shared test setup: every test starts from an environment without the caller's retrain/AWS config."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]

_ISOLATED_PREFIXES = ("RETRAIN_", "MLFLOW_", "AWS_")


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    """Tests never see a developer's RETRAIN_*/MLFLOW_*/AWS_* variables (nor their real AWS account).
    Integration tests keep those the session-scoped stack fixture set on purpose; unit tests see none."""
    keep = _stack_owned() if request.node.get_closest_marker("integration") else set()
    for name in list(os.environ):
        if name.startswith(_ISOLATED_PREFIXES) and name not in keep:
            monkeypatch.delenv(name)
    from common.core.settings import get_settings

    get_settings.cache_clear()


def _stack_owned() -> set[str]:
    return set(os.environ.get("_RETRAIN_TEST_STACK_VARS", "").split(","))


@contextlib.contextmanager
def versioned_bucket(bucket: str) -> Iterator[Any]:
    """An in-process moto S3 with one versioned bucket (as the template creates it); yields the client."""
    import boto3
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=bucket)
        client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        yield client


def closed_bars(bars: Any, interval: str, as_of: Any) -> Any:
    """The bars closed at ``as_of`` (the product's rule, ``common.data.ohlcv.closed_mask``): the tests' oracle
    for what a step may see."""
    from common.data.ohlcv import closed_mask

    return bars.loc[closed_mask(bars.index, interval, as_of)]
