"""The handlers' one powertools setup (common/aws/observability.py)."""

from __future__ import annotations

import importlib
import json
from typing import Any

import pytest
from aws_lambda_powertools import Metrics
from aws_lambda_powertools.utilities.parser import ValidationError
from pydantic import BaseModel

from common.aws.observability import lambda_handler
from retrain.stack.lambda_router import LocalLambdaContext
from tests.emf import emitted_metrics


def _context() -> Any:
    return LocalLambdaContext("Probe", "arn:aws:lambda:us-east-1:1:function:Probe")


def test_disabled_metrics_are_dropped_after_each_invocation(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Powertools neither prints nor clears disabled metrics; at a metric's 100th value it prints them anyway.
    A warm Lambda (or the local stack's one process) would pile them up and then fill the log."""
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    probe = importlib.import_module("tests.unit.metrics_probe.app")
    for _ in range(150):
        assert probe.handler({}, _context()) == {"ok": True}
    assert "Invocations" not in capsys.readouterr().out
    assert not Metrics().provider.metric_set


def test_enabled_metrics_are_published_by_the_invocation_under_the_namespace_configured_then(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The shared Metrics object was made by whichever function imported it first: the namespace is the
    invoked function's environment's, read at the invocation."""
    probe = importlib.import_module("tests.unit.metrics_probe.app")
    for namespace in ("RetrainFirst", "RetrainSecond"):
        monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", namespace)
        probe.handler({}, _context())
        out = capsys.readouterr().out
        assert emitted_metrics(out)["Invocations"] == 1
        [line] = [json.loads(line) for line in out.splitlines() if '"_aws"' in line and "Invocations" in line]
        assert line["_aws"]["CloudWatchMetrics"][0]["Namespace"] == namespace
    assert not Metrics().provider.metric_set


class Ping(BaseModel):
    symbol: str


def test_an_event_model_parses_the_event_and_a_malformed_one_names_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")

    @lambda_handler(Ping)
    def handler(event: Ping, context: Any) -> str:
        return event.symbol

    assert handler({"symbol": "BTC"}, _context()) == "BTC"
    with pytest.raises(ValidationError, match="symbol"):
        handler({"sym": "BTC"}, _context())
