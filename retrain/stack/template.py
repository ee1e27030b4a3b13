"""Read template.yaml into the concrete resources the embedded stack creates on moto.

The local stack never declares resources of its own: bucket name, functions (code location, handler,
environment) and the state machine (definition file, substitutions) all come from the SAM template,
so tests and infrastructure cannot drift apart. Only the intrinsic functions the template uses are
resolved (Ref, Fn::Sub, Fn::GetAtt, Fn::Join); anything else is a clear error, not a guess.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from common.core.errors import ConfigurationError

LOCAL_ACCOUNT_ID = "123456789012"  # moto's default account


class _CfnLoader(yaml.SafeLoader):
    """YAML loader that turns CloudFormation short tags (!Ref, !Sub, ...) into their long form."""


def _construct_tag(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if tag_suffix == "Ref" else f"Fn::{tag_suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if name == "Fn::GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


def load_template(path: Path) -> dict[str, Any]:
    try:
        document = yaml.load(path.read_text(), Loader=_CfnLoader)
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"cannot read template {path}: {exc}") from None
    if not isinstance(document, dict) or "Resources" not in document:
        raise ConfigurationError(f"{path} is not a CloudFormation/SAM template (no Resources)")
    return document


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    name: str
    arn: str
    code_dir: Path
    handler: str  # "app.handler" as in the template
    environment: dict[str, str]
    schedules: tuple[str, ...] = ()

    @property
    def module(self) -> str:
        """Importable module of the handler: functions/<name>/app.py -> functions.<name>.app."""
        module_file = self.handler.rsplit(".", 1)[0]
        return ".".join([*self.code_dir.parts, module_file])

    @property
    def attribute(self) -> str:
        return self.handler.rsplit(".", 1)[1]


@dataclass(frozen=True)
class StateMachineSpec:
    logical_id: str
    name: str
    arn: str
    definition: str


@dataclass(frozen=True)
class ScheduleSpec:
    """An EventBridge Scheduler schedule: what it starts, when, with which input (its role is the stack's)."""

    logical_id: str
    name: str
    expression: str
    target_arn: str
    input: str


@dataclass(frozen=True)
class LocalResources:
    """Everything the local stack provisions, resolved from the template."""

    bucket: str
    functions: tuple[FunctionSpec, ...]
    state_machines: tuple[StateMachineSpec, ...]
    region: str
    stack_name: str
    parameters: dict[str, str] = field(default_factory=dict)
    schedules: tuple[ScheduleSpec, ...] = ()

    def function(self, logical_id: str) -> FunctionSpec:
        for spec in self.functions:
            if spec.logical_id == logical_id:
                return spec
        raise KeyError(logical_id)

    def state_machine(self, logical_id: str) -> StateMachineSpec:
        for spec in self.state_machines:
            if spec.logical_id == logical_id:
                return spec
        raise KeyError(logical_id)


class _Resolver:
    def __init__(self, template: dict[str, Any], parameters: dict[str, str], region: str, stack_name: str):
        self.template = template
        self.resources: dict[str, Any] = template["Resources"]
        self.parameters = parameters
        self.pseudo = {
            "AWS::AccountId": LOCAL_ACCOUNT_ID,
            "AWS::Region": region,
            "AWS::StackName": stack_name,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }
        self.region = region
        self.stack_name = stack_name

    # physical names and attributes of resources --------------------------------------------------
    def physical_name(self, logical_id: str) -> str:
        resource = self.resources[logical_id]
        kind, props = resource["Type"], resource.get("Properties", {})
        if kind == "AWS::S3::Bucket":
            return self.resolve(props["BucketName"]) if "BucketName" in props else logical_id.lower()
        if kind == "AWS::Serverless::Function":
            return self.resolve(props["FunctionName"]) if "FunctionName" in props else f"{self.stack_name}-{logical_id}"
        if kind == "AWS::Serverless::StateMachine":
            return self.resolve(props["Name"]) if "Name" in props else f"{self.stack_name}-{logical_id}"
        if kind == "AWS::Logs::LogGroup":
            return self.resolve(props["LogGroupName"])
        return f"{self.stack_name}-{logical_id}"

    def arn(self, logical_id: str) -> str:
        kind = self.resources[logical_id]["Type"]
        name = self.physical_name(logical_id)
        prefix = f"arn:aws:{{}}:{self.region}:{LOCAL_ACCOUNT_ID}"
        if kind == "AWS::S3::Bucket":
            return f"arn:aws:s3:::{name}"
        if kind == "AWS::Serverless::Function":
            return f"{prefix.format('lambda')}:function:{name}"
        if kind == "AWS::Serverless::StateMachine":
            return f"{prefix.format('states')}:stateMachine:{name}"
        if kind == "AWS::Logs::LogGroup":
            return f"{prefix.format('logs')}:log-group:{name}:*"
        if kind == "AWS::Serverless::LayerVersion":
            return f"{prefix.format('lambda')}:layer:{name}:1"
        raise ConfigurationError(f"the local stack cannot derive an ARN for {logical_id} ({kind})")

    def ref(self, name: str) -> str:
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name not in self.resources:
            raise ConfigurationError(f"template: Ref to unknown name {name!r}")
        kind = self.resources[name]["Type"]
        if kind in {"AWS::Serverless::StateMachine", "AWS::Serverless::LayerVersion"}:
            return self.arn(name)
        return self.physical_name(name)

    def get_att(self, logical_id: str, attribute: str) -> str:
        if attribute == "Arn":
            return self.arn(logical_id)
        if attribute == "Name":
            return self.physical_name(logical_id)
        raise ConfigurationError(f"template: Fn::GetAtt {logical_id}.{attribute} is not supported locally")

    # intrinsic functions --------------------------------------------------------------------------
    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                logical_id, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.get_att(logical_id, attribute)
            if key == "Fn::Sub":
                return self._sub(arg)
            if key == "Fn::Join":
                separator, items = arg
                resolved = self.resolve(items)
                return separator.join(resolved if isinstance(resolved, list) else [resolved])
            if key.startswith("Fn::"):
                raise ConfigurationError(f"template: {key} is not supported by the local stack")
        return {key: self.resolve(item) for key, item in value.items()}

    def _sub(self, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return str(variables[name])
            if "." in name and not name.startswith("AWS::"):
                logical_id, attribute = name.split(".", 1)
                return self.get_att(logical_id, attribute)
            value = self.ref(name)
            return ",".join(value) if isinstance(value, list) else str(value)

        # "${!Literal}" is CloudFormation's escape for a literal "${Literal}".
        return re.sub(r"\$\{!([^}]*)\}", r"${\1}", re.sub(r"\$\{([^!}][^}]*)\}", replace, text))


def parameter_variables(template: dict[str, Any]) -> dict[str, str]:
    """The functions' environment variables that take a template parameter's value as it is, ``{variable:
    parameter}`` (``RETRAIN_INTERVAL: !Ref Interval``, ``RETRAIN_SYMBOLS: !Join [",", !Ref Symbols]``): on
    AWS a parameter override sets them, so locally the user's value of the variable is that override."""
    parameters = template.get("Parameters", {})
    environments = [template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})]
    environments += [
        resource.get("Properties", {}).get("Environment", {}).get("Variables", {})
        for resource in template["Resources"].values()
        if resource.get("Type") == "AWS::Serverless::Function"
    ]
    found: dict[str, str] = {}
    for variables in environments:
        for variable, value in variables.items():
            if isinstance(value, dict) and set(value) == {"Fn::Join"}:
                separator, items = value["Fn::Join"]
                value = items if separator == "," else None  # a list parameter joined with its own separator
            if isinstance(value, dict) and set(value) == {"Ref"} and value["Ref"] in parameters:
                found[variable] = value["Ref"]
    return found


def _parameter_values(
    template: dict[str, Any], overrides: dict[str, str], sources: dict[str, str] | None = None
) -> dict[str, str]:
    values: dict[str, str] = {}
    for name, spec in template.get("Parameters", {}).items():
        # A value taken from the user's environment is named by its variable, as the user wrote it.
        where = (
            f"{sources[name]} (template parameter {name})"
            if sources and name in sources
            else f"template parameter {name}"
        )
        if name in overrides:
            value = overrides[name]
        elif "Default" in spec:
            value = spec["Default"]
        else:
            raise ConfigurationError(f"template parameter {name} has no default: the local stack must set it")
        allowed = spec.get("AllowedValues")
        if allowed and str(value) not in [str(a) for a in allowed]:
            raise ConfigurationError(f"{where}={value!r} is not one of {[str(a) for a in allowed]}")
        pattern = spec.get("AllowedPattern")
        if pattern and not re.fullmatch(pattern, str(value)):
            hint = spec.get("ConstraintDescription")
            raise ConfigurationError(f"{where}={value!r} does not match {pattern}" + (f" ({hint})" if hint else ""))
        if spec.get("Type") == "Number":
            _check_number(where, value, spec)
        values[name] = ",".join(value) if isinstance(value, list) else str(value)
    unknown = set(overrides) - set(values)
    if unknown:
        raise ConfigurationError(f"unknown template parameters: {sorted(unknown)}")
    return values


def _check_number(where: str, value: Any, spec: dict[str, Any]) -> None:
    """CloudFormation's checks of a Number parameter: a number, within MinValue..MaxValue."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{where}={value!r} is not a number") from None
    if "MinValue" in spec and number < float(spec["MinValue"]):
        raise ConfigurationError(f"{where}={value!r} is below its MinValue {spec['MinValue']}")
    if "MaxValue" in spec and number > float(spec["MaxValue"]):
        raise ConfigurationError(f"{where}={value!r} is above its MaxValue {spec['MaxValue']}")


def local_resources(
    template_path: Path,
    *,
    parameters: dict[str, str],
    region: str = "us-east-1",
    stack_name: str = "retrain-local",
    parameter_sources: dict[str, str] | None = None,
) -> LocalResources:
    """Resolve the template into the resources of one local deployment. ``parameter_sources`` names the
    environment variable each overridden parameter was read from, for the message refusing its value."""
    template = load_template(template_path)
    root = template_path.parent
    values = _parameter_values(template, parameters, parameter_sources)
    resolver = _Resolver(template, dict(values), region, stack_name)
    # CommaDelimitedList parameters resolve to lists inside Fn::Join.
    for name, spec in template.get("Parameters", {}).items():
        if spec.get("Type") == "CommaDelimitedList":
            resolver.parameters[name] = values[name].split(",")  # type: ignore[assignment]

    globals_env = template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    buckets, functions, machines, scheduler_schedules = [], [], [], []
    access_log_buckets = {
        resource["Properties"]["LoggingConfiguration"]["DestinationBucketName"].get("Ref")
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::S3::Bucket" and "LoggingConfiguration" in resource.get("Properties", {})
    }
    for logical_id, resource in template["Resources"].items():
        kind, props = resource["Type"], resource.get("Properties", {})
        if kind == "AWS::S3::Bucket":
            if logical_id not in access_log_buckets:  # S3's server access logs: nothing runs on them locally
                buckets.append(resolver.physical_name(logical_id))
        elif kind == "AWS::Serverless::Function":
            if props.get("PackageType") == "Image":
                code_dir = Path(resource.get("Metadata", {}).get("DockerContext", "."))
                handler = resource.get("Metadata", {}).get("LocalHandler", "app.handler")
            else:
                code_dir, handler = Path(props["CodeUri"]), props["Handler"]
            variables = {**globals_env, **props.get("Environment", {}).get("Variables", {})}
            schedules = tuple(
                resolver.resolve(event["Properties"]["Schedule"])
                for event in props.get("Events", {}).values()
                if event.get("Type") in {"Schedule", "ScheduleV2"}
            )
            functions.append(
                FunctionSpec(
                    logical_id=logical_id,
                    name=resolver.physical_name(logical_id),
                    arn=resolver.arn(logical_id),
                    code_dir=code_dir,
                    handler=handler,
                    environment={k: str(v) for k, v in resolver.resolve(variables).items()},
                    schedules=schedules,
                )
            )
        elif kind == "AWS::Serverless::StateMachine":
            definition = (root / props["DefinitionUri"]).read_text()
            substitutions = resolver.resolve(props.get("DefinitionSubstitutions", {}))
            for key, value in substitutions.items():
                definition = definition.replace("${" + key + "}", str(value))
            leftover = re.findall(r"\$\{(\w+)\}", definition)
            if leftover:
                raise ConfigurationError(f"{props['DefinitionUri']}: no substitution for {sorted(set(leftover))}")
            json.loads(definition)  # a broken definition should fail here, not inside moto
            machines.append(
                StateMachineSpec(logical_id, resolver.physical_name(logical_id), resolver.arn(logical_id), definition)
            )
        elif kind == "AWS::Scheduler::Schedule":
            target = props["Target"]
            scheduler_schedules.append(
                ScheduleSpec(
                    logical_id,
                    resolver.resolve(props.get("Name", logical_id)),
                    resolver.resolve(props["ScheduleExpression"]),
                    resolver.resolve(target["Arn"]),
                    str(resolver.resolve(target.get("Input", "{}"))),
                )
            )
    if len(buckets) != 1:
        raise ConfigurationError(f"the template must declare exactly one S3 bucket, found {buckets}")
    return LocalResources(
        bucket=buckets[0],
        functions=tuple(functions),
        state_machines=tuple(machines),
        region=region,
        stack_name=stack_name,
        parameters=values,
        schedules=tuple(scheduler_schedules),
    )
