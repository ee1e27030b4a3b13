"""Which endpoints a command uses: configured ones win and start nothing."""

from __future__ import annotations

import pytest

from common.core.errors import ConfigurationError
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


def _running_stack(configuration: dict[str, str] | None):
    from retrain.stack.embedded import StackInfo

    return StackInfo(
        pid=4242, host="127.0.0.1", moto_port=5100, mlflow_port=5101, region="us-east-1", bucket="retrain-local-b",
        state_machines={}, functions={}, started_at="2025-02-20T00:00:00+00:00", state_dir="/tmp/x",
        configuration=configuration,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("started_with", "here", "warned"),
    [
        ({"RETRAIN_INTERVAL": "1h"}, {"RETRAIN_INTERVAL": "1h"}, []),
        ({"RETRAIN_INTERVAL": "1h"}, {}, ["RETRAIN_INTERVAL: '1h' for the stack's functions, unset here"]),
        ({}, {"RETRAIN_GATE_RULE": "risk"}, ["RETRAIN_GATE_RULE: unset for the stack's functions, 'risk' here"]),
        # The stack's own settings, and its symbols (which commands narrow), are never a difference.
        ({}, {"RETRAIN_DATA_BUCKET": "b-u-c", "MLFLOW_TRACKING_URI": "http://x", "RETRAIN_SYMBOLS": "BTC"}, []),
        (None, {"RETRAIN_INTERVAL": "1h"}, []),  # a stack.json from before the configuration was recorded
    ],
)
def test_a_command_with_other_settings_than_the_running_stack_is_warned(
    monkeypatch, tmp_path, started_with, here, warned
):
    for name, value in here.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(session, "running_stack", lambda config: _running_stack(started_with))
    messages: list[str] = []
    config = LocalStackConfig(state_dir=tmp_path)
    if "RETRAIN_DATA_BUCKET" in here:  # configured endpoints: no stack involved, so check the comparison itself
        from retrain.stack.embedded import configuration_differences, user_configuration

        assert configuration_differences(started_with, user_configuration(dict(here))) == []
        return
    with session.connect(config, progress=messages.append) as connection:
        assert connection.source == "local stack (pid 4242)"
    warnings = [m for m in messages if m.startswith("warning:")]
    assert [line.strip() for w in warnings for line in w.splitlines()[1:]] == warned
