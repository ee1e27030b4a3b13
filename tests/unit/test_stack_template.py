"""retrain.stack.template: the embedded stack's resources, resolved from template.yaml."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest

from common.core.errors import ConfigurationError
from common.core.settings import DEFAULT_SYMBOLS
from retrain.stack.template import LocalResources, load_template, local_resources

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = REPO_ROOT / "template.yaml"
PARAMETERS = {"Stage": "local", "MlflowTrackingUri": "http://127.0.0.1:5101"}
BUCKET = "retrain-local-123456789012-us-east-1"


@pytest.fixture(scope="module")
def resources() -> LocalResources:
    return local_resources(TEMPLATE, parameters=PARAMETERS)


def test_relative_template_path_from_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO_ROOT)
    assert local_resources(Path("template.yaml"), parameters=PARAMETERS).bucket == BUCKET


def test_bucket_name(resources: LocalResources) -> None:
    assert resources.bucket == BUCKET
    assert resources.region == "us-east-1"


def test_parameters_get_defaults(resources: LocalResources) -> None:
    assert resources.parameters["Stage"] == "local"
    assert resources.parameters["Interval"] == "1d"
    assert resources.parameters["MlflowTrackingUri"] == "http://127.0.0.1:5101"
    assert resources.parameters["LogRetentionDays"] == "30"


@pytest.mark.parametrize(
    ("logical_id", "module"),
    [("PrepareDatasetFunction", "functions.prepare_dataset.app"), ("NotifyFunction", "functions.notify.app")],
)
def test_functions_resolve_to_importable_handlers(resources: LocalResources, logical_id: str, module: str) -> None:
    spec = resources.function(logical_id)
    assert spec.module == module
    assert spec.attribute == "handler"
    assert (REPO_ROOT / spec.code_dir / "app.py").is_file()
    assert callable(getattr(importlib.import_module(spec.module), spec.attribute))
    assert spec.arn == f"arn:aws:lambda:us-east-1:123456789012:function:{spec.name}"


@pytest.mark.parametrize("logical_id", ["PrepareDatasetFunction", "NotifyFunction"])
def test_function_environment(resources: LocalResources, logical_id: str) -> None:
    env = resources.function(logical_id).environment
    assert env["RETRAIN_DATA_BUCKET"] == resources.bucket
    assert env["RETRAIN_SYMBOLS"] == ",".join(DEFAULT_SYMBOLS)
    assert env["RETRAIN_INTERVAL"] == "1d"
    assert env["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:5101"
    assert all(isinstance(value, str) for value in env.values())


def test_symbols_parameter_override_reaches_environment() -> None:
    resources = local_resources(TEMPLATE, parameters={**PARAMETERS, "Symbols": "BTC,ETH", "Interval": "1h"})
    env = resources.function("NotifyFunction").environment
    assert env["RETRAIN_SYMBOLS"] == "BTC,ETH"
    assert env["RETRAIN_INTERVAL"] == "1h"


def test_template_default_symbols_match_settings() -> None:
    assert load_template(TEMPLATE)["Parameters"]["Symbols"]["Default"].split(",") == list(DEFAULT_SYMBOLS)


def test_state_machine_definition_is_substituted(resources: LocalResources) -> None:
    machine = resources.state_machine("TrainingStateMachine")
    assert machine.name == "retrain-local-training"
    assert machine.arn == "arn:aws:states:us-east-1:123456789012:stateMachine:retrain-local-training"
    assert "${" not in machine.definition
    definition = json.loads(machine.definition)
    prepare = definition["States"]["RetrainEachModel"]["ItemProcessor"]["States"]["PrepareDataset"]
    notify = definition["States"]["NotifyOperator"]
    assert prepare["Parameters"]["FunctionName"] == resources.function("PrepareDatasetFunction").arn
    assert notify["Parameters"]["FunctionName"] == resources.function("NotifyFunction").arn


def test_the_day_nests_the_training_machine_and_a_schedule_per_interval_starts_it(resources: LocalResources) -> None:
    day, training = resources.state_machine("DayStateMachine"), resources.state_machine("TrainingStateMachine")
    states = json.loads(day.definition)["States"]
    assert states["Train"]["Parameters"]["StateMachineArn"] == training.arn
    assert states["Ingest"]["Parameters"]["FunctionName"] == resources.function("IngestFunction").arn
    schedules = {(s.name, s.expression, s.target_arn, json.loads(s.input)["interval"]) for s in resources.schedules}
    assert schedules == {
        ("retrain-local-day", "cron(5 0 * * ? *)", day.arn, "1d"),
        ("retrain-local-hour", "cron(5 * * * ? *)", day.arn, "1h"),
    }
    assert all(function.schedules == () for function in resources.functions)  # no cron offsets of their own


def test_backtest_state_machine_and_functions_resolve(resources: LocalResources) -> None:
    machine = resources.state_machine("BacktestStateMachine")
    assert machine.name == "retrain-local-backtest"
    definition = json.loads(machine.definition)
    task = definition["States"]["BacktestEachModel"]["ItemProcessor"]["States"]["BacktestModel"]
    assert task["Parameters"]["FunctionName"] == resources.function("BacktestModelFunction").arn
    assert definition["States"]["Summarize"]["Parameters"]["FunctionName"] == (
        resources.function("BacktestSummarizeFunction").arn
    )
    assert '"max_concurrency": 8}' in definition["States"]["ApplyDefaults"]["Parameters"]["merged.$"]
    for logical_id, attribute in (
        ("BacktestModelFunction", "run_model_handler"),
        ("BacktestSummarizeFunction", "summarize_handler"),
    ):
        spec = resources.function(logical_id)
        assert (spec.module, spec.attribute) == ("functions.backtest.app", attribute)
        assert callable(getattr(importlib.import_module(spec.module), spec.attribute))


def test_lookup_of_unknown_resource_raises_key_error(resources: LocalResources) -> None:
    with pytest.raises(KeyError):
        resources.function("NoSuchFunction")
    with pytest.raises(KeyError):
        resources.state_machine("NoSuchMachine")


# --- parameter errors on the real template ----------------------------------------------------------
@pytest.mark.parametrize(
    ("parameters", "match"),
    [
        ({"Stage": "local"}, "MlflowTrackingUri"),  # required, no default
        ({**PARAMETERS, "Interval": "5m"}, "Interval"),  # AllowedValues
        ({**PARAMETERS, "LogRetentionDays": "3"}, "LogRetentionDays"),  # AllowedValues (Number)
        ({**PARAMETERS, "Stage": "Local_Stage"}, "Stage"),  # AllowedPattern
        ({**PARAMETERS, "Stag": "local"}, "Stag"),  # unknown parameter name
    ],
)
def test_bad_parameters_raise_configuration_error(parameters: dict[str, str], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        local_resources(TEMPLATE, parameters=parameters)


# --- small templates ----------------------------------------------------------------------------
SMALL_TEMPLATE = """\
Parameters:
  Stage:
    Type: String
  Color:
    Type: String
    Default: red
    AllowedValues: [red, blue]
Resources:
  Bucket:
    Type: AWS::S3::Bucket
    Properties:
      BucketName: !Sub "data-${Stage}-${AWS::Region}"
  Worker:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/notify/
      Handler: app.handler
      Environment:
        Variables:
          BUCKET: !Ref Bucket
          BUCKET_ARN: !GetAtt Bucket.Arn
          COLOR: !Ref Color
          LONG_FORM: !Sub ["${Name}-x", {Name: !Ref Stage}]
  Machine:
    Type: AWS::Serverless::StateMachine
    Properties:
      DefinitionUri: machine.asl.json
      DefinitionSubstitutions:
        WorkerArn: !GetAtt Worker.Arn
"""
SMALL_DEFINITION = {
    "StartAt": "Work",
    "States": {"Work": {"Type": "Task", "Resource": "${WorkerArn}", "End": True}},
}


def _write(tmp_path: Path, template: str, definition: dict | str = SMALL_DEFINITION) -> Path:
    (tmp_path / "machine.asl.json").write_text(definition if isinstance(definition, str) else json.dumps(definition))
    path = tmp_path / "template.yaml"
    path.write_text(template)
    return path


def test_small_template_resolves(tmp_path: Path) -> None:
    resources = local_resources(_write(tmp_path, SMALL_TEMPLATE), parameters={"Stage": "t1"}, region="eu-west-1")
    assert resources.bucket == "data-t1-eu-west-1"
    worker = resources.function("Worker")
    assert worker.environment == {
        "BUCKET": "data-t1-eu-west-1",
        "BUCKET_ARN": "arn:aws:s3:::data-t1-eu-west-1",
        "COLOR": "red",
        "LONG_FORM": "t1-x",
    }
    assert worker.name == "retrain-local-Worker"
    definition = json.loads(resources.state_machine("Machine").definition)
    assert (
        definition["States"]["Work"]["Resource"]
        == worker.arn
        == ("arn:aws:lambda:eu-west-1:123456789012:function:retrain-local-Worker")
    )


def test_small_template_missing_required_parameter(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="Stage"):
        local_resources(_write(tmp_path, SMALL_TEMPLATE), parameters={})


def test_small_template_value_not_in_allowed_values(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="Color"):
        local_resources(_write(tmp_path, SMALL_TEMPLATE), parameters={"Stage": "t1", "Color": "green"})


def test_small_template_unknown_parameter(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="Colour"):
        local_resources(_write(tmp_path, SMALL_TEMPLATE), parameters={"Stage": "t1", "Colour": "red"})


def test_definition_placeholder_without_substitution(tmp_path: Path) -> None:
    definition = {"StartAt": "Work", "States": {"Work": {"Type": "Task", "Resource": "${OtherArn}", "End": True}}}
    with pytest.raises(ConfigurationError, match="OtherArn"):
        local_resources(_write(tmp_path, SMALL_TEMPLATE, definition), parameters={"Stage": "t1"})


def test_definition_that_is_not_json(tmp_path: Path) -> None:
    with pytest.raises(json.JSONDecodeError):
        local_resources(_write(tmp_path, SMALL_TEMPLATE, '{"StartAt": "${WorkerArn}",'), parameters={"Stage": "t1"})


def test_ref_to_unknown_name(tmp_path: Path) -> None:
    template = SMALL_TEMPLATE.replace("COLOR: !Ref Color", "COLOR: !Ref Colour")
    with pytest.raises(ConfigurationError, match="Colour"):
        local_resources(_write(tmp_path, template), parameters={"Stage": "t1"})


def test_unsupported_intrinsic_function(tmp_path: Path) -> None:
    template = SMALL_TEMPLATE.replace("COLOR: !Ref Color", "COLOR: !Select [0, [a, b]]")
    with pytest.raises(ConfigurationError, match="Fn::Select"):
        local_resources(_write(tmp_path, template), parameters={"Stage": "t1"})


def test_two_buckets_are_rejected(tmp_path: Path) -> None:
    template = SMALL_TEMPLATE + "  Other:\n    Type: AWS::S3::Bucket\n"
    with pytest.raises(ConfigurationError, match="exactly one S3 bucket"):
        local_resources(_write(tmp_path, template), parameters={"Stage": "t1"})


@pytest.mark.parametrize("content", ["Resources: [unclosed", "just a string", "Parameters: {}\n"])
def test_not_a_template(tmp_path: Path, content: str) -> None:
    path = tmp_path / "template.yaml"
    path.write_text(content)
    with pytest.raises(ConfigurationError):
        load_template(path)


def test_missing_template_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read"):
        load_template(tmp_path / "nope.yaml")


def test_short_tags_load_as_long_form(tmp_path: Path) -> None:
    template = load_template(_write(tmp_path, SMALL_TEMPLATE))
    env = template["Resources"]["Worker"]["Properties"]["Environment"]["Variables"]
    assert env["BUCKET"] == {"Ref": "Bucket"}
    assert env["BUCKET_ARN"] == {"Fn::GetAtt": ["Bucket", "Arn"]}
    assert env["LONG_FORM"] == {"Fn::Sub": ["${Name}-x", {"Name": {"Ref": "Stage"}}]}


def test_loader_stays_safe(tmp_path: Path) -> None:
    """Short CloudFormation tags are supported, arbitrary Python object tags are not constructed."""
    path = tmp_path / "template.yaml"
    marker = tmp_path / "pwned"
    path.write_text(f"Resources:\n  X: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(ConfigurationError):
        load_template(path)
    assert not marker.exists()


# --- regressions of defects found by these tests ---------------------------------------------------
def test_sub_escape_renders_literal(tmp_path: Path) -> None:
    template = SMALL_TEMPLATE.replace("COLOR: !Ref Color", 'COLOR: !Sub "${!Literal}-${Stage}"')
    resources = local_resources(_write(tmp_path, template), parameters={"Stage": "t1"})
    assert resources.function("Worker").environment["COLOR"] == "${Literal}-t1"


def test_returned_parameters_are_strings(resources: LocalResources) -> None:
    assert resources.parameters["Symbols"] == ",".join(DEFAULT_SYMBOLS)


def test_the_variables_the_template_fills_from_parameters() -> None:
    """What a user's environment may override locally, as a parameter override would on AWS."""
    from retrain.stack.template import parameter_variables

    assert parameter_variables(load_template(TEMPLATE)) == {
        "RETRAIN_SYMBOLS": "Symbols",
        "RETRAIN_INTERVAL": "Interval",
        "MLFLOW_TRACKING_URI": "MlflowTrackingUri",
        "RETRAIN_MARKET_DATA_SECRET_NAME": "MarketDataSecretName",
        "RETRAIN_PREDICTOR_MODEL_REFRESH_SECONDS": "PredictorModelRefreshSeconds",
        "RETRAIN_NOTIFY_CHANNELS": "NotifyChannels",
        "RETRAIN_TELEGRAM_SECRET_NAME": "TelegramSecretName",
    }


def test_user_values_become_parameter_overrides_and_stack_parameters_stay_the_stacks(tmp_path: Path) -> None:
    from retrain.stack.config import LocalStackConfig
    from retrain.stack.embedded import template_parameters

    config = LocalStackConfig(state_dir=tmp_path, symbols=("BTC",))
    environ = {
        "RETRAIN_INTERVAL": "1h",
        "RETRAIN_PREDICTOR_MODEL_REFRESH_SECONDS": "5",
        "RETRAIN_SYMBOLS": "ETH",  # the stack's symbols come from its configuration (a command may narrow them)
        "MLFLOW_TRACKING_URI": "https://elsewhere.example.com",  # the stack's own server
        "RETRAIN_GATE_RULE": "risk",  # no parameter: passes through the environment
    }
    parameters, sources = template_parameters(config, environ, "http://127.0.0.1:5101")
    assert parameters == {
        "Stage": "local",
        "MlflowTrackingUri": "http://127.0.0.1:5101",
        "Symbols": "BTC",
        "Interval": "1h",
        "PredictorModelRefreshSeconds": "5",
    }
    assert sources == {
        "Interval": "RETRAIN_INTERVAL",
        "PredictorModelRefreshSeconds": "RETRAIN_PREDICTOR_MODEL_REFRESH_SECONDS",
    }
    env = (
        local_resources(TEMPLATE, parameters=parameters, parameter_sources=sources)
        .function("PredictorFunction")
        .environment
    )
    assert env["RETRAIN_INTERVAL"] == "1h" and env["RETRAIN_PREDICTOR_MODEL_REFRESH_SECONDS"] == "5"


@pytest.mark.parametrize(
    ("parameter", "variable", "value", "message"),
    [
        ("Interval", "RETRAIN_INTERVAL", "5m", "is not one of ['1d', '1h']"),
        ("NotifyChannels", "RETRAIN_NOTIFY_CHANNELS", "telegram", "is not one of ['outbox', 'outbox,telegram']"),
        ("TelegramSecretName", "RETRAIN_TELEGRAM_SECRET_NAME", "a secret", "does not match"),
        ("PredictorModelRefreshSeconds", "RETRAIN_PREDICTOR_MODEL_REFRESH_SECONDS", "0", "below its MinValue 1"),
        ("PredictorModelRefreshSeconds", "RETRAIN_PREDICTOR_MODEL_REFRESH_SECONDS", "soon", "is not a number"),
    ],
)
def test_a_value_the_parameter_refuses_names_the_variable(parameter, variable, value, message) -> None:
    with pytest.raises(ConfigurationError) as refused:
        local_resources(TEMPLATE, parameters={**PARAMETERS, parameter: value}, parameter_sources={parameter: variable})
    assert str(refused.value).startswith(f"{variable} (template parameter {parameter})={value!r} ")
    assert message in str(refused.value)


def test_number_parameters_are_checked_against_their_range() -> None:
    with pytest.raises(ConfigurationError, match=r"template parameter MapMaxConcurrency='41' is above its MaxValue 40"):
        local_resources(TEMPLATE, parameters={**PARAMETERS, "MapMaxConcurrency": "41"})
