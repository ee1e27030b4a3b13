"""The local stack passes the user's whole configuration to the functions it runs, as the template does on AWS:
every setting of common.core.settings.Settings, set in the environment before `retrain up`, is what a handler
inside the stack reads, except the few the stack owns (its bucket, state machine and MLflow server).

One `retrain up` for all settings; a function added to a copy of template.yaml (``settings_probe``) answers
with ``load_settings()`` as a handler sees it."""

from __future__ import annotations

import json
import types
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types
import boto3
import pytest
import yaml

from common.core.settings import Settings, environment_variables, load_settings
from retrain.stack.embedded import LOCAL_CREDENTIALS, STACK_OWNED_SETTINGS, StackInfo
from retrain.stack.template import load_template
from tests.conftest import PROJECT_ROOT
from tests.integration.conftest import clean_environment, run_cli

pytestmark = pytest.mark.integration

PROBE = "SettingsProbeFunction"
# Values no type-driven choice finds: those bound to other settings, the template's constraints, the sample data.
CHOSEN = {
    "symbols": "BTC,ETH",  # the stack seeds them: symbols with sample data
    "notify_channels": "outbox,telegram",  # the template's NotifyChannels allows this one (needs the secret below)
    "train_purge_bars": "12",  # at least the prediction window
    "market_data_url": "https://klines.example.com",
    "market_data_quote": "USDC",
    "as_of": "2024-06-01T12:00:00Z",
    # Stack-owned: the user's values must not reach the functions.
    "data_bucket": "someone-elses-bucket",
    "state_machine_arn": "arn:aws:states:us-east-1:123456789012:stateMachine:someone-elses",
    "mlflow_tracking_uri": "https://mlflow.example.com",
    # The stack's defaults (replay of the sample data), overridden by the user's choice.
    "market_data_provider": "binance",
}


def _bounds(info: Any) -> tuple[float, float]:
    low, high = float("-inf"), float("inf")
    for item in info.metadata:
        if isinstance(item, annotated_types.Ge):
            low = float(item.ge)
        elif isinstance(item, annotated_types.Gt):
            low = float(item.gt) + 1e-9
        elif isinstance(item, annotated_types.Le):
            high = float(item.le)
        elif isinstance(item, annotated_types.Lt):
            high = float(item.lt) - 1e-9
    return low, high


def _other_value(name: str, info: Any) -> str:
    """A valid value of the setting other than its default, from its type and constraints."""
    annotation, default = info.annotation, info.default
    if get_origin(annotation) in (Union, types.UnionType):  # X | None
        (annotation,) = [arg for arg in get_args(annotation) if arg is not type(None)]
    if annotation is bool:
        return str(not default).lower()
    if get_origin(annotation) is Literal:
        return next(str(value) for value in get_args(annotation) if value != default)
    if get_origin(annotation) is tuple and get_origin(get_args(annotation)[0]) is Literal:
        return ",".join(reversed(default[:2]))  # another choice, another order
    if annotation in (int, float):
        low, high = _bounds(info)
        base = default if default is not None else max(low, 0)
        step = 1 if annotation is int else 0.01
        value = base + step if base + step <= high else base - step
        assert low <= value <= high, name
        return str(value)
    if annotation is str and default is None:
        return f"user/{name.replace('_', '-')}"  # names of secrets and chats: the template's patterns allow it
    raise AssertionError(f"no value chosen for the new setting {name} ({info.annotation}): add it to CHOSEN")


def _user_environment(replay_dir: Path) -> dict[str, str]:
    """Every setting's variable(s) with a valid value that is not its default."""
    env: dict[str, str] = {}
    for name, info in Settings.model_fields.items():
        value = str(replay_dir) if name == "market_data_replay_dir" else CHOSEN.get(name) or _other_value(name, info)
        for variable in environment_variables(Settings, name):
            env[variable] = value
    # Two variables for the tracking URI (RETRAIN_ first): both the user's, and different.
    env["MLFLOW_TRACKING_URI"] = "https://another-mlflow.example.com"
    return env


def _probe_template(tmp_path: Path) -> Path:
    """template.yaml with one more function, the probe; state machine definitions read from the project."""
    template = load_template(PROJECT_ROOT / "template.yaml")
    for resource in template["Resources"].values():
        props = resource.get("Properties", {})
        if "DefinitionUri" in props:
            props["DefinitionUri"] = str(PROJECT_ROOT / props["DefinitionUri"])
    template["Resources"][PROBE] = {
        "Type": "AWS::Serverless::Function",
        "Properties": {
            "Runtime": "python3.13",
            "CodeUri": "tests/integration/settings_probe/",
            "Handler": "app.handler",
        },
    }
    path = tmp_path / "template.yaml"
    path.write_text(yaml.safe_dump(template, sort_keys=False))
    return path


def _invoke_probe(info: StackInfo) -> dict[str, Any]:
    client = boto3.client(
        "lambda",
        endpoint_url=info.aws_endpoint,
        region_name=info.region,
        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
    response = client.invoke(FunctionName=info.functions[PROBE], Payload=b"{}")
    payload = json.loads(response["Payload"].read())
    assert "FunctionError" not in response, payload
    return payload


def test_every_setting_reaches_the_functions_of_retrain_up(tmp_path, monkeypatch):
    user = _user_environment(tmp_path / "my-replay")
    for variable, value in user.items():
        monkeypatch.setenv(variable, value)
    expected = load_settings()  # valid as a whole, and no setting left at its default (the stack's, for two)
    at_default = [n for n, info in Settings.model_fields.items() if getattr(expected, n) == info.default]
    assert at_default == ["market_data_provider"]  # binance: the settings' default, not the stack's (replay)

    state = tmp_path / "state"
    local = {
        "RETRAIN_LOCAL_STATE_DIR": str(state),
        "RETRAIN_LOCAL_MOTO_PORT": "0",
        "RETRAIN_LOCAL_MLFLOW_PORT": "0",
        "RETRAIN_LOCAL_WITH_MLFLOW": "false",  # the registry is not what this test is about
        "RETRAIN_LOCAL_TEMPLATE_PATH": str(_probe_template(tmp_path)),
    }
    env = clean_environment(**user, **local)
    up = run_cli("up", env=env)
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        # The user's stack-owned values are named as unused, not silently dropped.
        for variable in ("RETRAIN_DATA_BUCKET", "RETRAIN_STATE_MACHINE_ARN", "MLFLOW_TRACKING_URI"):
            assert f"{variable}={user[variable]} is not used by the local stack's functions" in up.stdout

        info = StackInfo.load(state / "stack.json")
        assert info is not None
        seen = _invoke_probe(info)
        wanted = expected.model_dump(mode="json")
        stack_owned = {
            "data_bucket": info.bucket,
            "state_machine_arn": info.state_machines["TrainingStateMachine"],
            "mlflow_tracking_uri": info.mlflow_uri,
        }
        assert set(stack_owned) == set(STACK_OWNED_SETTINGS)
        assert set(seen) == set(Settings.model_fields)
        ignored = {
            " or ".join(environment_variables(Settings, name)): {"handler": seen[name], "wanted": want}
            for name in Settings.model_fields
            if seen[name] != (want := stack_owned.get(name, wanted[name]))
        }
        assert ignored == {}

        # A later command run with other settings is told that the stack's functions keep theirs.
        later = {k: v for k, v in env.items() if k != "RETRAIN_DATA_BUCKET"}  # else it uses "configured" AWS
        status = run_cli("status", env={**later, "RETRAIN_INTERVAL": "1d"})
        assert status.returncode == 0, status.stdout + status.stderr
        assert "keeps the settings it was started with" in status.stderr, status.stderr
        assert "RETRAIN_INTERVAL: '1h' for the stack's functions, '1d' here" in status.stderr
        assert status.stderr.count(" here") == 1, status.stderr  # nothing else differs
        same = run_cli("status", env=later)
        assert same.returncode == 0 and "warning" not in same.stderr, same.stderr
    finally:
        down = run_cli("down", env=env)
        assert down.returncode == 0, down.stdout + down.stderr


def test_a_value_the_template_refuses_is_named_by_its_variable(tmp_path):
    """On AWS the parameter's constraints refuse it at deploy time; locally `retrain up` does, at once."""
    result = run_cli(
        "up",
        env=clean_environment(
            RETRAIN_NOTIFY_CHANNELS="telegram,outbox",  # valid for the settings, not one of NotifyChannels' values
            RETRAIN_TELEGRAM_SECRET_NAME="retrain/telegram",
            RETRAIN_LOCAL_STATE_DIR=str(tmp_path),
        ),
        timeout=120,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "RETRAIN_NOTIFY_CHANNELS (template parameter NotifyChannels)='telegram,outbox'" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "stack.json").exists()


def test_the_stack_defaults_to_replaying_the_sample_data(stack):
    """Unset, the market-data settings are the stack's: the sample data replayed, nothing fetched."""
    settings = load_settings()  # the handlers run in this process, with its environment
    assert settings.market_data_provider == "replay"
    assert Path(settings.market_data_replay_dir or "") == stack.config.sample_data_dir.resolve()
