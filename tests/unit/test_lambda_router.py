"""The local stack's in-process Lambda router: what a long local run (the hourly replay: hundreds of
invocations in one process) must not accumulate."""

from __future__ import annotations

from pathlib import Path

import pytest
from aws_lambda_powertools import Metrics

from retrain.stack.lambda_router import LambdaRouter
from retrain.stack.template import FunctionSpec


def test_disabled_metrics_neither_pile_up_nor_reach_the_console(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    spec = FunctionSpec("Probe", "probe", "arn:local:probe", Path("tests/unit/metrics_probe"), "app.handler", {})
    router = LambdaRouter((spec,))
    for _ in range(150):  # powertools prints a metric's set at its 100th value, disabled or not
        assert router.invoke("probe", b"{}", {}) == b'{"ok": true}'
    assert "Invocations" not in capsys.readouterr().out
    assert not Metrics().provider.metric_set
