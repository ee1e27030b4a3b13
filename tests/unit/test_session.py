"""Which endpoints a command uses: configured ones win and start nothing."""

from __future__ import annotations

import pytest

from common.errors import ConfigurationError
from retrain.stack import session
from retrain.stack.config import LocalStackConfig


def test_configured_endpoints_are_used_as_is(monkeypatch, tmp_path):
    monkeypatch.setenv("RETRAIN_DATA_BUCKET", "my-real-bucket")
    monkeypatch.setenv("RETRAIN_STATE_MACHINE_ARN", "arn:aws:states:eu-west-1:111122223333:stateMachine:retrain")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://mlflow.example.com")
    monkeypatch.setattr(session, "start_daemon", lambda *a, **k: pytest.fail("must not start a local stack"))
    with session.connect(LocalStackConfig(state_dir=tmp_path)) as connection:
        assert connection.source == "configured"
        assert connection.bucket == "my-real-bucket"
        assert connection.state_machine_arn.endswith(":retrain")
        assert connection.mlflow_uri == "https://mlflow.example.com"
        assert connection.stack is None


def test_invalid_configured_endpoints_fail_before_anything_starts(monkeypatch, tmp_path):
    monkeypatch.setenv("RETRAIN_DATA_BUCKET", "Not_A_Bucket")
    monkeypatch.setattr(session, "start_daemon", lambda *a, **k: pytest.fail("must not start a local stack"))
    with (
        pytest.raises(ConfigurationError, match="RETRAIN_DATA_BUCKET"),
        session.connect(LocalStackConfig(state_dir=tmp_path)),
    ):
        pass
