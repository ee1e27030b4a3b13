"""template.yaml's security and reliability rules, checked on the template itself.

Each rule is a function from a template to the list of its violations. The real template must have none,
and a deliberately broken copy must have the expected one: a rule that cannot fail proves nothing.

SAM adds AWS-managed policies to the roles it generates, outside this file's view: AWSLambdaBasicExecutionRole
to each function's (its log streams) and, with tracing on, AWSXrayWriteOnlyAccess (X-Ray takes no resource ARN).
Everything else a role can do is written in the template and checked here.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from retrain.stack.template import load_template
from tests.runtime import LAMBDA_RUNTIME

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = REPO_ROOT / "template.yaml"

Template = dict[str, Any]
NO_VALUE = {"Ref": "AWS::NoValue"}

_LOG_DELIVERY = "CloudWatch Logs' vended-log delivery APIs (Step Functions execution logging) take no resource ARN"
_XRAY = "X-Ray has no resource-level permissions"
# The only actions an Allow statement may grant on Resource "*", each with the reason AWS offers nothing narrower.
WILDCARD_RESOURCE_ACTIONS: dict[str, str] = {
    "logs:CreateLogDelivery": _LOG_DELIVERY,
    "logs:GetLogDelivery": _LOG_DELIVERY,
    "logs:UpdateLogDelivery": _LOG_DELIVERY,
    "logs:DeleteLogDelivery": _LOG_DELIVERY,
    "logs:ListLogDeliveries": _LOG_DELIVERY,
    "logs:PutResourcePolicy": "Step Functions logging adds the log group's resource policy; the API takes no ARN",
    "logs:DescribeResourcePolicies": "a list call over the account's log resource policies",
    "logs:DescribeLogGroups": "Step Functions validates the destination log group with this account-level list call",
    "xray:PutTraceSegments": _XRAY,
    "xray:PutTelemetryRecords": _XRAY,
    "xray:GetSamplingRules": _XRAY,
    "xray:GetSamplingTargets": _XRAY,
}
# Allowed on "*" only together with the condition key that narrows them.
CONDITIONED_WILDCARD_ACTIONS: dict[str, str] = {
    "cloudwatch:PutMetricData": "cloudwatch:namespace",  # metrics take no ARN; the namespace is the scope
}
# SAM policy templates that are scoped by their parameter (one function), hence allowed as they are.
SCOPED_SAM_POLICY_TEMPLATES = {"LambdaInvokePolicy"}
# Required alarms: (what, namespace, metric, dimension, resource the dimension must name).
REQUIRED_ALARMS: list[tuple[str, list[tuple[str, str, str, str]]]] = [
    ("training run failed", [("AWS/States", "ExecutionsFailed", "StateMachineArn", "TrainingStateMachine")]),
    ("training run timed out", [("AWS/States", "ExecutionsTimedOut", "StateMachineArn", "TrainingStateMachine")]),
    ("day failed", [("AWS/States", "ExecutionsFailed", "StateMachineArn", "DayStateMachine")]),
    ("day timed out", [("AWS/States", "ExecutionsTimedOut", "StateMachineArn", "DayStateMachine")]),
    ("backtest run failed", [("AWS/States", "ExecutionsFailed", "StateMachineArn", "BacktestStateMachine")]),
    ("backtest run timed out", [("AWS/States", "ExecutionsTimedOut", "StateMachineArn", "BacktestStateMachine")]),
    (
        "prediction API errors",
        [
            ("AWS/ApiGateway", "5xx", "ApiId", "PredictorApi"),
            ("AWS/Lambda", "Errors", "FunctionName", "PredictorFunction"),
        ],
    ),
    (
        "prediction API latency",
        [
            ("AWS/ApiGateway", "Latency", "ApiId", "PredictorApi"),
            ("AWS/Lambda", "Duration", "FunctionName", "PredictorFunction"),
        ],
    ),
    ("trigger checker failed", [("AWS/Lambda", "Errors", "FunctionName", "TriggerCheckerFunction")]),
    ("dead letters waiting", [("AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", "DeadLetterQueue")]),
]
# Functions that must run one at a time, and why.
SINGLE_RUN_FUNCTIONS = {
    "TriggerCheckerFunction": "a concurrent duplicate check would race on the same day's decision records",
}
SECRET_VALUE_PATTERNS = [
    re.compile(r"\d{6,}:[A-Za-z0-9_-]{30,}"),  # Telegram bot token
    re.compile(r"(AKIA|ASIA)[0-9A-Z]{16}"),  # AWS access key id
    re.compile(r"[A-Za-z0-9+/_=-]{32,}"),  # a long opaque string: an API key, a password
]
SECRET_NAME = re.compile(r"token|password|passwd|api_?key|secret|credential", re.IGNORECASE)
DYNAMIC_SECRET_REFERENCE = re.compile(r"\{\{resolve:(secretsmanager|ssm-secure):")


# --- template walking ----------------------------------------------------------------------------------------
def _resources(template: Template, *types: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] in types:
            yield logical_id, resource


def _props(resource: dict[str, Any]) -> dict[str, Any]:
    return resource.get("Properties", {})


def _branches(value: Any) -> list[Any]:
    """Every value an Fn::If can take (both branches, recursively), without AWS::NoValue."""
    if isinstance(value, dict) and set(value) == {"Fn::If"}:
        _, when_true, when_false = value["Fn::If"]
        return _branches(when_true) + _branches(when_false)
    return [] if value == NO_VALUE else [value]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _refers_to(value: Any, logical_id: str) -> bool:
    """Ref, Fn::GetAtt or a ${...} of Fn::Sub naming the resource."""
    if isinstance(value, dict):
        if value.get("Ref") == logical_id:
            return True
        if "Fn::GetAtt" in value:
            target = value["Fn::GetAtt"]
            return (target[0] if isinstance(target, list) else target.split(".")[0]) == logical_id
        if "Fn::Sub" in value:
            text = value["Fn::Sub"] if isinstance(value["Fn::Sub"], str) else value["Fn::Sub"][0]
            return re.search(r"\$\{" + re.escape(logical_id) + r"(\.[^}]*)?\}", text) is not None
    return False


def _policy_items(template: Template, logical_id: str) -> list[Any]:
    return [
        item
        for raw in _as_list(_props(template["Resources"][logical_id]).get("Policies", []))
        for item in _branches(raw)
    ]


def _statements(document_or_item: Any) -> list[dict[str, Any]]:
    if not isinstance(document_or_item, dict) or "Statement" not in document_or_item:
        return []
    return [s for raw in _as_list(document_or_item["Statement"]) for s in _branches(raw)]


def _identity_statements(template: Template) -> Iterator[tuple[str, dict[str, Any]]]:
    """(owner, statement) for every statement an identity (role) can be granted by this template."""
    for logical_id, _ in _resources(template, "AWS::Serverless::Function", "AWS::Serverless::StateMachine"):
        for item in _policy_items(template, logical_id):
            for statement in _statements(item):
                yield logical_id, statement
    for logical_id, resource in _resources(template, "AWS::IAM::ManagedPolicy", "AWS::IAM::Policy"):
        for statement in _statements(_props(resource)["PolicyDocument"]):
            yield logical_id, statement
    for logical_id, resource in _resources(template, "AWS::IAM::Role"):
        for policy in _props(resource).get("Policies", []):
            for statement in _statements(policy["PolicyDocument"]):
                yield logical_id, statement


def _allows(statement: dict[str, Any]) -> bool:
    return statement.get("Effect") == "Allow"


def _function_environment(template: Template, logical_id: str) -> dict[str, Any]:
    global_env = template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    own = _props(template["Resources"][logical_id]).get("Environment", {}).get("Variables", {})
    return {**global_env, **own}


def _handler_source(template: Template, logical_id: str) -> str:
    resource = template["Resources"][logical_id]
    props = resource["Properties"]
    if props.get("PackageType") == "Image":
        module = resource["Metadata"]["LocalHandler"].rsplit(".", 1)[0]
        path = REPO_ROOT / (module.replace(".", "/") + ".py")
    else:
        path = REPO_ROOT / props["CodeUri"] / (props["Handler"].rsplit(".", 1)[0] + ".py")
    return path.read_text()


# --- rules ---------------------------------------------------------------------------------------------------
def role_violations(template: Template) -> list[str]:
    """Every function and state machine gets its own SAM-generated role from its own Policies."""
    found = []
    globals_function = template.get("Globals", {}).get("Function", {})
    for key in ("Role", "Policies"):
        if key in globals_function:
            found.append(f"Globals.Function.{key}: shared by every function")
    for logical_id, resource in _resources(template, "AWS::Serverless::Function", "AWS::Serverless::StateMachine"):
        props = _props(resource)
        if "Role" in props:
            found.append(f"{logical_id}: Role set (roles must be per function, generated from Policies)")
        if not props.get("Policies"):
            found.append(f"{logical_id}: no Policies")
        for item in _policy_items(template, logical_id):
            if isinstance(item, str):
                found.append(f"{logical_id}: managed policy {item}")
            elif isinstance(item, dict) and "Statement" in item:
                continue
            elif isinstance(item, dict) and set(item) == {"Ref"}:
                target = template["Resources"].get(item["Ref"], {})
                if target.get("Type") != "AWS::IAM::ManagedPolicy":
                    found.append(f"{logical_id}: policy {item['Ref']} is not one of this template's managed policies")
            elif isinstance(item, dict) and len(item) == 1 and next(iter(item)) in SCOPED_SAM_POLICY_TEMPLATES:
                continue
            else:
                found.append(f"{logical_id}: policy {item!r} is neither a statement nor a scoped policy template")
    return found


def action_violations(template: Template) -> list[str]:
    """No Allow grants every action, every action of a service, or everything but some (NotAction)."""
    found = []
    for owner, statement in _identity_statements(template):
        if not _allows(statement):
            continue
        if "NotAction" in statement:
            found.append(f"{owner}: Allow with NotAction")
        for action in _as_list(statement.get("Action", [])):
            if action == "*" or (isinstance(action, str) and action.endswith(":*")):
                found.append(f"{owner}: Action {action}")
    return found


def wildcard_resource_violations(template: Template) -> list[str]:
    """Resource "*" only for actions AWS cannot scope (WILDCARD_RESOURCE_ACTIONS, CONDITIONED_WILDCARD_ACTIONS)."""
    found = []
    for owner, statement in _identity_statements(template):
        if not _allows(statement):
            continue
        if "NotResource" in statement:
            found.append(f"{owner}: Allow with NotResource")
        if "*" not in _as_list(statement.get("Resource", [])):
            continue
        condition_keys = {key for block in statement.get("Condition", {}).values() for key in block}
        for action in _as_list(statement.get("Action", [])):
            if action in WILDCARD_RESOURCE_ACTIONS:
                continue
            if action in CONDITIONED_WILDCARD_ACTIONS and CONDITIONED_WILDCARD_ACTIONS[action] in condition_keys:
                continue
            found.append(f"{owner}: {action} on Resource *")
    return found


def bucket_violations(template: Template) -> list[str]:
    found = []
    policies = [_props(r) for _, r in _resources(template, "AWS::S3::BucketPolicy")]
    for logical_id, resource in _resources(template, "AWS::S3::Bucket"):
        props = _props(resource)
        if props.get("VersioningConfiguration", {}).get("Status") != "Enabled":
            found.append(f"{logical_id}: not versioned")
        rules = props.get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration", [])
        algorithms = {rule.get("ServerSideEncryptionByDefault", {}).get("SSEAlgorithm") for rule in rules}
        if not algorithms & {"AES256", "aws:kms", "aws:kms:dsse"}:
            found.append(f"{logical_id}: no default encryption")
        block = props.get("PublicAccessBlockConfiguration", {})
        for setting in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"):
            if block.get(setting) is not True:
                found.append(f"{logical_id}: {setting} is not true")
        if resource.get("DeletionPolicy") != "Retain":
            found.append(f"{logical_id}: DeletionPolicy is not Retain (the data outlives the stack)")
        statements = [
            s
            for policy in policies
            if _refers_to(policy["Bucket"], logical_id)
            for s in _statements(policy["PolicyDocument"])
        ]
        if not any(_denies_insecure_transport(s, "s3", logical_id) for s in statements):
            found.append(
                f"{logical_id}: no policy statement denying requests without TLS on the bucket and its objects"
            )
    return found


def _denies_insecure_transport(statement: dict[str, Any], service: str, logical_id: str) -> bool:
    """A Deny of every action of ``service`` to everyone, when the request did not come over TLS."""
    resources = _as_list(statement.get("Resource", []))
    if service == "s3":  # the bucket itself and every object in it
        covered = {"Fn::GetAtt": [logical_id, "Arn"]} in resources and {
            "Fn::Sub": f"${{{logical_id}.Arn}}/*"
        } in resources
    else:
        covered = any(_refers_to(r, logical_id) for r in resources)
    insecure = statement.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport")
    return (
        statement.get("Effect") == "Deny"
        and statement.get("Principal") == "*"
        and f"{service}:*" in _as_list(statement.get("Action"))
        and str(insecure).lower() == "false"
        and covered
    )


def api_violations(template: Template) -> list[str]:
    """Every API authenticates callers (IAM or JWT), is throttled and logs access; no public function URL."""
    found = []
    for logical_id, resource in _resources(template, "AWS::Serverless::HttpApi"):
        props = _props(resource)
        auth = props.get("Auth", {})
        default = auth.get("DefaultAuthorizer")
        iam = default == "AWS_IAM" and auth.get("EnableIamAuthorizer") is True
        jwt = default in auth.get("Authorizers", {}) and "JwtConfiguration" in auth["Authorizers"][default]
        if not (iam or jwt):
            found.append(f"{logical_id}: no IAM or JWT default authorizer")
        route = props.get("DefaultRouteSettings", {})
        for setting in ("ThrottlingBurstLimit", "ThrottlingRateLimit"):
            if setting not in route:
                found.append(f"{logical_id}: DefaultRouteSettings.{setting} missing")
        if "DestinationArn" not in props.get("AccessLogSettings", {}):
            found.append(f"{logical_id}: no access log")
    for logical_id, resource in _resources(template, "AWS::Serverless::Function"):
        props = _props(resource)
        if props.get("FunctionUrlConfig", {}).get("AuthType", "AWS_IAM") != "AWS_IAM":
            found.append(f"{logical_id}: function URL without IAM auth")
        for name, event in props.get("Events", {}).items():
            if (
                event["Type"] in {"HttpApi", "Api"}
                and event.get("Properties", {}).get("Auth", {}).get("Authorizer") == "NONE"
            ):
                found.append(f"{logical_id}.{name}: route opts out of the authorizer")
    if any(True for _ in _resources(template, "AWS::Serverless::Api", "AWS::ApiGateway::RestApi")):
        found.append("a REST API: this rule set covers HTTP APIs only; extend it first")
    return found


def log_group_violations(template: Template) -> list[str]:
    """Every function, the state machine and the API log to a log group of this template that has a retention."""
    found = []
    log_groups = dict(_resources(template, "AWS::Logs::LogGroup"))
    for logical_id, resource in log_groups.items():
        if "RetentionInDays" not in _props(resource):
            found.append(f"{logical_id}: no RetentionInDays (logs kept forever)")
    for logical_id, resource in _resources(template, "AWS::Serverless::Function"):
        custom = _props(resource).get("LoggingConfig", {}).get("LogGroup")
        default_name = {"Fn::Sub": f"/aws/lambda/${{{logical_id}}}"}
        if not any(
            (custom is not None and _refers_to(custom, group)) or _props(r).get("LogGroupName") == default_name
            for group, r in log_groups.items()
        ):
            found.append(f"{logical_id}: no log group in the template (Lambda would create one without retention)")
    for logical_id, resource in _resources(template, "AWS::Serverless::StateMachine"):
        destinations = _props(resource).get("Logging", {}).get("Destinations", [])
        arns = [d.get("CloudWatchLogsLogGroup", {}).get("LogGroupArn") for d in destinations]
        if not any(_refers_to(arn, group) for arn in arns for group in log_groups):
            found.append(f"{logical_id}: does not log to a log group of the template")
    for logical_id, resource in _resources(template, "AWS::Serverless::HttpApi"):
        arn = _props(resource).get("AccessLogSettings", {}).get("DestinationArn")
        if arn is not None and not any(_refers_to(arn, group) for group in log_groups):
            found.append(f"{logical_id}: access log goes to a log group outside the template")
    return found


def schedule_violations(template: Template) -> list[str]:
    """One schedule per interval starts the day state machine for the pool's models on it (the steps run one
    after the other, never on cron offsets of their own): the daily and the hourly one, each naming its interval;
    each retries, what it still cannot start lands in an encrypted, TLS-only queue, and its role can start the
    day and nothing else."""
    found = []
    queues = dict(_resources(template, "AWS::SQS::Queue"))
    schedules = dict(_resources(template, "AWS::Scheduler::Schedule"))
    intervals = sorted(
        str(json.loads(_props(r).get("Target", {}).get("Input", "{}")).get("interval")) for r in schedules.values()
    )
    if intervals != ["1d", "1h"]:
        found.append(f"schedules for intervals {intervals}, not one for each of 1d and 1h")
    roles = dict(_resources(template, "AWS::IAM::Role"))
    for logical_id, resource in schedules.items():
        target = _props(resource).get("Target", {})
        if not _refers_to(target.get("Arn"), "DayStateMachine"):
            found.append(f"{logical_id}: does not start the day state machine")
        if "RetryPolicy" not in target:
            found.append(f"{logical_id}: no RetryPolicy")
        if not any(_refers_to(target.get("DeadLetterConfig", {}).get("Arn"), q) for q in queues):
            found.append(f"{logical_id}: no dead-letter queue for the starts it could not make")
        owner = [r for r in roles if _refers_to(target.get("RoleArn"), r)]
        if not owner:
            found.append(f"{logical_id}: its role is not one of this template's")
        for role in owner:
            for policy in _props(roles[role]).get("Policies", []):
                for statement in _statements(policy["PolicyDocument"]):
                    actions, resources = _as_list(statement.get("Action")), _as_list(statement.get("Resource"))
                    start = actions == ["states:StartExecution"] and all(
                        _refers_to(r, "DayStateMachine") for r in resources
                    )
                    dead_letter = actions == ["sqs:SendMessage"] and all(
                        any(_refers_to(r, q) for q in queues) for r in resources
                    )
                    if _allows(statement) and not (start or dead_letter):
                        found.append(f"{role}: {actions} on {resources} (only starting the day, and its dead letters)")
    for logical_id, resource in _resources(template, "AWS::Serverless::Function"):
        props = _props(resource)
        scheduled = {n: e for n, e in props.get("Events", {}).items() if e["Type"] in {"Schedule", "ScheduleV2"}}
        for name in scheduled:
            found.append(
                f"{logical_id}.{name}: scheduled on its own (the day state machine runs it after the step before)"
            )
        for name, event in scheduled.items():
            event_props = event.get("Properties", {})
            if "RetryPolicy" not in event_props:
                found.append(f"{logical_id}.{name}: no RetryPolicy")
            dead_letters = event_props.get("DeadLetterConfig", {})
            if not (dead_letters.get("Type") == "SQS" or any(_refers_to(dead_letters.get("Arn"), q) for q in queues)):
                found.append(f"{logical_id}.{name}: no dead-letter queue for undeliverable events")
        if scheduled:
            on_failure = props.get("EventInvokeConfig", {}).get("DestinationConfig", {}).get("OnFailure", {})
            legacy = props.get("DeadLetterQueue", {}).get("TargetArn")
            if not any(_refers_to(on_failure.get("Destination"), q) or _refers_to(legacy, q) for q in queues):
                found.append(f"{logical_id}: failed invocations are not kept (no OnFailure destination or DLQ)")
    queue_policies = [_props(r) for _, r in _resources(template, "AWS::SQS::QueuePolicy")]
    for logical_id, resource in queues.items():
        props = _props(resource)
        if props.get("SqsManagedSseEnabled") is not True and "KmsMasterKeyId" not in props:
            found.append(f"{logical_id}: not encrypted at rest")
        statements = [
            s
            for policy in queue_policies
            if any(_refers_to(q, logical_id) for q in policy["Queues"])
            for s in _statements(policy["PolicyDocument"])
        ]
        if not any(_denies_insecure_transport(s, "sqs", logical_id) for s in statements):
            found.append(f"{logical_id}: no policy statement denying requests without TLS")
    return found


def concurrency_violations(template: Template) -> list[str]:
    found = [
        f"{logical_id}: ReservedConcurrentExecutions must be 1 ({reason})"
        for logical_id, reason in SINGLE_RUN_FUNCTIONS.items()
        if _props(template["Resources"][logical_id]).get("ReservedConcurrentExecutions") != 1
    ]
    # The API's throttle bounds the request rate; only a reservation bounds how many environments bill at once.
    if _props(template["Resources"]["PredictorFunction"]).get("ReservedConcurrentExecutions") != {
        "Ref": "PredictorMaxConcurrency"
    }:
        found.append("PredictorFunction: ReservedConcurrentExecutions is not the PredictorMaxConcurrency parameter")
    return found


def logging_violations(template: Template) -> list[str]:
    """Every function logs JSON with its levels set: the Python runtime's default level (WARNING) drops the
    INFO lines of the standard-library loggers (the predictor's hot swaps) unless the template sets one."""
    found = []
    config = template.get("Globals", {}).get("Function", {}).get("LoggingConfig", {})
    if config.get("LogFormat") != "JSON":
        found.append("Globals.Function.LoggingConfig: LogFormat is not JSON")
    if config.get("ApplicationLogLevel") not in {"INFO", "DEBUG", "TRACE"}:
        found.append("Globals.Function.LoggingConfig: ApplicationLogLevel drops INFO lines (or is not set)")
    if config.get("SystemLogLevel") not in {"DEBUG", "INFO", "WARN"}:
        found.append("Globals.Function.LoggingConfig: SystemLogLevel not set")
    for logical_id, resource in _resources(template, "AWS::Serverless::Function"):
        if "LoggingConfig" in _props(resource):
            found.append(f"{logical_id}: LoggingConfig of its own (the Globals' is the one)")
    return found


def stated_version_retention_days() -> int:
    """How long the docs (the data concepts page) say a superseded object version is kept."""
    page = " ".join((REPO_ROOT / "docs/concepts/data.md").read_text().split())
    found = re.search(r"superseded version of an object is kept (\d+) days", page)
    assert found, "docs/concepts/data.md no longer states how long superseded object versions are kept"
    return int(found.group(1))


def version_retention_violations(template: Template) -> list[str]:
    """Old versions of the data bucket expire, but not before the retention the docs state: dataset manifests pin
    the object version each model was trained on, and retraining on exactly it needs that version."""
    rules = _props(template["Resources"]["DataBucket"]).get("LifecycleConfiguration", {}).get("Rules", [])
    days = [
        rule["NoncurrentVersionExpiration"].get("NoncurrentDays")
        for rule in rules
        if rule.get("Status") == "Enabled" and "NoncurrentVersionExpiration" in rule
    ]
    if not days:
        return ["DataBucket: noncurrent versions never expire (each daily append keeps a full copy forever)"]
    found = []
    for rule in rules:
        if "NoncurrentVersionExpiration" in rule and (rule.get("Prefix") or rule.get("Filter")):
            found.append(f"DataBucket: rule {rule.get('Id')} is filtered; the retention is stated for every object")
        if rule.get("NoncurrentVersionExpiration", {}).get("NewerNoncurrentVersions"):
            found.append(f"DataBucket: rule {rule.get('Id')} keeps a number of versions, not the stated days")
    stated = stated_version_retention_days()
    if days != [stated]:
        found.append(f"DataBucket: noncurrent versions expire after {days} days; docs/concepts/data.md states {stated}")
    return found


def access_log_violations(template: Template) -> list[str]:
    """The data bucket's requests are logged (S3 server access logs) to a bucket that S3 may write them to."""
    logging = _props(template["Resources"]["DataBucket"]).get("LoggingConfiguration", {})
    target = logging.get("DestinationBucketName", {}).get("Ref")
    if target not in template["Resources"]:
        return ["DataBucket: no server access logging to a bucket of this template"]
    statements = [
        s
        for _, policy in _resources(template, "AWS::S3::BucketPolicy")
        if _refers_to(_props(policy)["Bucket"], target)
        for s in _statements(_props(policy)["PolicyDocument"])
    ]
    if not any(s.get("Principal") == {"Service": "logging.s3.amazonaws.com"} and _allows(s) for s in statements):
        return [f"{target}: its policy does not let S3's log delivery write the access logs"]
    return []


def alarm_violations(template: Template) -> list[str]:
    """The required alarms exist; every alarm notifies the SNS topic and says what missing data means."""
    found = []
    topics = [logical_id for logical_id, _ in _resources(template, "AWS::SNS::Topic")]
    alarms = dict(_resources(template, "AWS::CloudWatch::Alarm"))
    for logical_id, resource in alarms.items():
        props = _props(resource)
        if not any(_refers_to(action, t) for action in props.get("AlarmActions", []) for t in topics):
            found.append(f"{logical_id}: does not notify the alarm topic")
        if "TreatMissingData" not in props:
            found.append(f"{logical_id}: TreatMissingData not set")

    def matches(props: dict[str, Any], namespace: str, metric: str, dimension: str, target: str) -> bool:
        return (
            props.get("Namespace") == namespace
            and props.get("MetricName") == metric
            and any(d["Name"] == dimension and _refers_to(d["Value"], target) for d in props.get("Dimensions", []))
        )

    for what, options in REQUIRED_ALARMS:
        if not any(matches(_props(r), *option) for r in alarms.values() for option in options):
            found.append(f"no alarm for: {what}")
    subscriptions = [_props(r) for _, r in _resources(template, "AWS::SNS::Subscription")]
    if not any(s.get("Protocol") == "email" and s.get("Endpoint") == {"Ref": "AlarmEmail"} for s in subscriptions):
        found.append("no email subscription to the alarm topic from the AlarmEmail parameter")
    return found


def secret_violations(template: Template) -> list[str]:
    """Secrets live in Secrets Manager; the template, its parameters and the environment hold names only."""
    found = []
    for name, spec in template.get("Parameters", {}).items():
        default = str(spec.get("Default", ""))
        if any(pattern.search(default) for pattern in SECRET_VALUE_PATTERNS):
            found.append(f"parameter {name}: default looks like a secret")
        if SECRET_NAME.search(name) and not name.endswith(("Name", "Arn")):
            found.append(f"parameter {name}: a secret's value as a parameter (pass the secret's name)")
    uri_pattern = template["Parameters"]["MlflowTrackingUri"].get("AllowedPattern", ".*")
    if re.fullmatch(uri_pattern, "https://user:password@mlflow.example.com"):
        found.append("parameter MlflowTrackingUri: accepts a URL with credentials (they would sit in the environment)")
    for logical_id, _ in _resources(template, "AWS::SecretsManager::Secret", "AWS::SSM::Parameter"):
        found.append(f"{logical_id}: secrets are created outside the stack, their values never in a template")
    for logical_id, _ in _resources(template, "AWS::Serverless::Function"):
        for key, value in _function_environment(template, logical_id).items():
            if DYNAMIC_SECRET_REFERENCE.search(str(value)):
                found.append(f"{logical_id}: {key} resolves a secret into the plain-text environment")
            if SECRET_NAME.search(key) and not key.endswith("_SECRET_NAME"):
                found.append(f"{logical_id}: environment variable {key} looks like a secret value")
            if key.endswith("_SECRET_NAME") and not (isinstance(value, dict) and set(value) == {"Ref"}):
                found.append(f"{logical_id}: {key} is not a parameter reference")
    for owner, statement in _identity_statements(template):
        if not _allows(statement) or not any(
            str(a).startswith("secretsmanager:") for a in _as_list(statement["Action"])
        ):
            continue
        if set(_as_list(statement["Action"])) != {"secretsmanager:GetSecretValue"}:
            found.append(f"{owner}: Secrets Manager actions beyond GetSecretValue")
        for resource in _as_list(statement["Resource"]):
            text = resource.get("Fn::Sub") if isinstance(resource, dict) else None
            match = re.search(r":secret:\$\{(\w+)\}-\?{6}$", text) if isinstance(text, str) else None
            if match is None or match.group(1) not in template.get("Parameters", {}):
                found.append(
                    f"{owner}: GetSecretValue on {resource!r}, not on one named secret (secret:${{Name}}-??????)"
                )
    return found


def _grants_mlflow(value: Any) -> bool:
    return "sagemaker-mlflow:" in str(value) or _refers_to(value, "MlflowRegistryReadPolicy")


def mlflow_violations(template: Template) -> list[str]:
    """Functions that use the MLflow registry may reach a SageMaker tracking server, that one only, when it is one."""
    found = []
    for logical_id, resource in _resources(template, "AWS::IAM::ManagedPolicy"):
        if _grants_mlflow(_props(resource)["PolicyDocument"]) and resource.get("Condition") != "IsSageMakerMlflow":
            found.append(f"{logical_id}: MLflow policy not under the IsSageMakerMlflow condition")
    for logical_id, _ in _resources(template, "AWS::Serverless::Function"):
        uses_registry = "common.registry.mlflow_registry" in _handler_source(template, logical_id)
        raw_items = _as_list(_props(template["Resources"][logical_id]).get("Policies", []))
        conditional = [i["Fn::If"] for i in raw_items if isinstance(i, dict) and "Fn::If" in i]
        if uses_registry and not any(
            c[0] == "IsSageMakerMlflow" and _refers_to(c[1], "MlflowRegistryReadPolicy") for c in conditional
        ):
            found.append(f"{logical_id}: uses MLflow but has no (conditional) MLflow read policy")
        if not uses_registry and any(_grants_mlflow(item) for item in raw_items):
            found.append(f"{logical_id}: MLflow permissions without using MLflow")
        if any(_grants_mlflow(i) and not (isinstance(i, dict) and "Fn::If" in i) for i in raw_items) or any(
            _grants_mlflow(c) and c[0] != "IsSageMakerMlflow" for c in conditional
        ):
            found.append(f"{logical_id}: MLflow permissions not under the IsSageMakerMlflow condition")
    for owner, statement in _identity_statements(template):
        actions = [a for a in _as_list(statement.get("Action", [])) if str(a).startswith("sagemaker-mlflow:")]
        if actions and statement.get("Resource") != {"Ref": "MlflowTrackingUri"}:
            found.append(f"{owner}: sagemaker-mlflow actions on {statement.get('Resource')!r}, not the tracking server")
        for action in actions:
            if action.split(":")[1].startswith(
                ("Delete", "Rename", "Restore", "AccessUI", "TransitionModelVersionStage")
            ):
                found.append(f"{owner}: {action} (nothing in retrain deletes, renames or browses)")
    return found


def runtime_violations(template: Template) -> list[str]:
    """Lambda runs the Python the tests ran on (pyproject.toml's): every zip function on that runtime, each layer built
    for it and declared for it alone, each image tagged for it (its Dockerfile's base: tests/packaging)."""
    found = []
    default = template.get("Globals", {}).get("Function", {}).get("Runtime")
    for logical_id, resource in _resources(template, "AWS::Serverless::Function"):
        if _props(resource).get("PackageType") == "Image":
            tag = resource.get("Metadata", {}).get("DockerTag")
            if tag != LAMBDA_RUNTIME:
                found.append(f"{logical_id}: DockerTag {tag}, not {LAMBDA_RUNTIME}")
        elif (runtime := _props(resource).get("Runtime", default)) != LAMBDA_RUNTIME:
            found.append(f"{logical_id}: Runtime {runtime}, not {LAMBDA_RUNTIME}")
    for logical_id, resource in _resources(template, "AWS::Serverless::LayerVersion"):
        if (runtimes := _props(resource).get("CompatibleRuntimes")) != [LAMBDA_RUNTIME]:
            found.append(f"{logical_id}: CompatibleRuntimes {runtimes}, not [{LAMBDA_RUNTIME}]")
        if (build := resource.get("Metadata", {}).get("BuildMethod")) != LAMBDA_RUNTIME:
            found.append(f"{logical_id}: BuildMethod {build}, not {LAMBDA_RUNTIME}")
    return found


RULES: list[Callable[[Template], list[str]]] = [
    role_violations,
    action_violations,
    wildcard_resource_violations,
    bucket_violations,
    api_violations,
    log_group_violations,
    schedule_violations,
    concurrency_violations,
    logging_violations,
    version_retention_violations,
    access_log_violations,
    alarm_violations,
    secret_violations,
    mlflow_violations,
    runtime_violations,
]


@pytest.fixture(scope="module")
def template() -> Template:
    return load_template(TEMPLATE_PATH)


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.__name__)
def test_template_follows_rule(template: Template, rule: Callable[[Template], list[str]]) -> None:
    assert rule(template) == []


def test_every_wildcard_resource_action_has_a_reason() -> None:
    assert all(reason.strip() for reason in WILDCARD_RESOURCE_ACTIONS.values())


# --- the rules catch what they are for -----------------------------------------------------------------------
def _resource(template: Template, logical_id: str) -> dict[str, Any]:
    return template["Resources"][logical_id]["Properties"]


def _add_statement(template: Template, logical_id: str, statement: dict[str, Any]) -> None:
    _resource(template, logical_id)["Policies"].append({"Statement": [statement]})


def _share_a_role(t: Template) -> None:
    _resource(t, "PredictorFunction")["Role"] = {"Fn::GetAtt": ["IngestFunctionRole", "Arn"]}


def _full_access(t: Template) -> None:
    _resource(t, "TrainingStateMachine")["Policies"].append("CloudWatchLogsFullAccess")


def _bucket_wide_read_template(t: Template) -> None:
    _resource(t, "PrepareDatasetFunction")["Policies"].append({"S3ReadPolicy": {"BucketName": {"Ref": "DataBucket"}}})


def _service_wildcard_action(t: Template) -> None:
    _add_statement(
        t, "IngestFunction", {"Effect": "Allow", "Action": "s3:*", "Resource": {"Fn::GetAtt": ["DataBucket", "Arn"]}}
    )


def _any_action(t: Template) -> None:
    policy = _resource(t, "MlflowRegistryReadPolicy")["PolicyDocument"]
    policy["Statement"].append({"Effect": "Allow", "Action": "*", "Resource": {"Ref": "MlflowTrackingUri"}})


def _unscoped_s3(t: Template) -> None:
    _add_statement(t, "NotifyFunction", {"Effect": "Allow", "Action": "s3:PutObject", "Resource": "*"})


def _unconditioned_put_metric_data(t: Template) -> None:
    _add_statement(t, "NotifyFunction", {"Effect": "Allow", "Action": "cloudwatch:PutMetricData", "Resource": "*"})


def _versioning_suspended(t: Template) -> None:
    _resource(t, "DataBucket")["VersioningConfiguration"]["Status"] = "Suspended"


def _public_policy_allowed(t: Template) -> None:
    _resource(t, "DataBucket")["PublicAccessBlockConfiguration"]["BlockPublicPolicy"] = False


def _tls_not_required(t: Template) -> None:
    statements = _resource(t, "DataBucketPolicy")["PolicyDocument"]["Statement"]
    statements[:] = [s for s in statements if s.get("Sid") != "DenyInsecureTransport"]


def _api_without_auth(t: Template) -> None:
    del _resource(t, "PredictorApi")["Auth"]


def _api_unthrottled(t: Template) -> None:
    del _resource(t, "PredictorApi")["DefaultRouteSettings"]["ThrottlingRateLimit"]


def _route_without_auth(t: Template) -> None:
    _resource(t, "PredictorFunction")["Events"]["Api"]["Properties"]["Auth"] = {"Authorizer": "NONE"}


def _function_without_log_group(t: Template) -> None:
    del t["Resources"]["PredictorLogGroup"]


def _logs_kept_forever(t: Template) -> None:
    del _resource(t, "TrainingStateMachineLogGroup")["RetentionInDays"]


def _schedule_without_dead_letters(t: Template) -> None:
    del _resource(t, "DayStartSchedule")["Target"]["DeadLetterConfig"]


def _schedule_without_retries(t: Template) -> None:
    del _resource(t, "DayStartSchedule")["Target"]["RetryPolicy"]


def _cron_offset(t: Template) -> None:
    _resource(t, "BatchPredictFunction")["Events"] = {
        "Daily": {"Type": "Schedule", "Properties": {"Schedule": "cron(15 0 * * ? *)"}}
    }


def _no_hourly_schedule(t: Template) -> None:
    del t["Resources"]["HourStartSchedule"]


def _schedule_starts_training(t: Template) -> None:
    _resource(t, "DayStartSchedule")["Target"]["Arn"] = {"Ref": "TrainingStateMachine"}


def _schedule_role_too_wide(t: Template) -> None:
    statements = _resource(t, "DayStartScheduleRole")["Policies"][0]["PolicyDocument"]["Statement"]
    statements.append(
        {"Effect": "Allow", "Action": "states:StartExecution", "Resource": {"Ref": "TrainingStateMachine"}}
    )


def _no_day_alarm(t: Template) -> None:
    del t["Resources"]["DayExecutionsFailedAlarm"]


def _queue_unencrypted(t: Template) -> None:
    _resource(t, "DeadLetterQueue")["SqsManagedSseEnabled"] = False


def _concurrent_trigger_checks(t: Template) -> None:
    del _resource(t, "TriggerCheckerFunction")["ReservedConcurrentExecutions"]


def _no_trigger_checker_alarm(t: Template) -> None:
    del t["Resources"]["TriggerCheckerErrorsAlarm"]


def _no_backtest_alarm(t: Template) -> None:
    del t["Resources"]["BacktestExecutionsFailedAlarm"]


def _silent_alarm(t: Template) -> None:
    del _resource(t, "DeadLetterQueueMessagesAlarm")["AlarmActions"]


def _token_default(t: Template) -> None:
    t["Parameters"]["TelegramSecretName"]["Default"] = "123456789:AAHfiqksKZ8WmR2zSjiQ7_v4TMAKdiHm9T0"


def _token_parameter(t: Template) -> None:
    t["Parameters"]["TelegramBotToken"] = {"Type": "String", "NoEcho": True}


def _credentials_in_tracking_uri(t: Template) -> None:
    del t["Parameters"]["MlflowTrackingUri"]["AllowedPattern"]


def _secret_in_environment(t: Template) -> None:
    _resource(t, "NotifyFunction")["Environment"]["Variables"]["RETRAIN_TELEGRAM_TOKEN"] = (
        "{{resolve:secretsmanager:telegram:SecretString:token}}"
    )


def _any_secret_readable(t: Template) -> None:
    _add_statement(
        t,
        "NotifyFunction",
        {
            "Effect": "Allow",
            "Action": "secretsmanager:GetSecretValue",
            "Resource": {"Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:*"},
        },
    )


def _mlflow_on_every_server(t: Template) -> None:
    _resource(t, "MlflowRegistryReadPolicy")["PolicyDocument"]["Statement"][0]["Resource"] = {
        "Fn::Sub": "arn:${AWS::Partition}:sagemaker:${AWS::Region}:${AWS::AccountId}:mlflow-tracking-server/*"
    }


def _mlflow_user_without_access(t: Template) -> None:
    policies = _resource(t, "BatchPredictFunction")["Policies"]
    policies[:] = [p for p in policies if not (isinstance(p, dict) and p.get("Fn::If", [""])[0] == "IsSageMakerMlflow")]


def _mlflow_unconditional(t: Template) -> None:
    _resource(t, "PromoteModelFunction")["Policies"].append({"Ref": "MlflowRegistryReadPolicy"})


def _mlflow_deletes(t: Template) -> None:
    _resource(t, "MlflowRegistryReadPolicy")["PolicyDocument"]["Statement"][0]["Action"].append(
        "sagemaker-mlflow:DeleteRegisteredModel"
    )


def _predictor_unbounded(t: Template) -> None:
    del _resource(t, "PredictorFunction")["ReservedConcurrentExecutions"]


def _text_logs(t: Template) -> None:
    t["Globals"]["Function"]["LoggingConfig"]["LogFormat"] = "Text"


def _no_log_level(t: Template) -> None:
    del t["Globals"]["Function"]["LoggingConfig"]["ApplicationLogLevel"]


def _function_log_override(t: Template) -> None:
    _resource(t, "PredictorFunction")["LoggingConfig"] = {"LogFormat": "Text"}


def _versions_kept_forever(t: Template) -> None:
    rules = _resource(t, "DataBucket")["LifecycleConfiguration"]["Rules"]
    rules[:] = [r for r in rules if "NoncurrentVersionExpiration" not in r]


def _versions_expire_early(t: Template) -> None:
    for rule in _resource(t, "DataBucket")["LifecycleConfiguration"]["Rules"]:
        if "NoncurrentVersionExpiration" in rule:
            rule["NoncurrentVersionExpiration"]["NoncurrentDays"] = 30


def _no_access_log(t: Template) -> None:
    del _resource(t, "DataBucket")["LoggingConfiguration"]


def _log_delivery_refused(t: Template) -> None:
    statements = _resource(t, "AccessLogBucketPolicy")["PolicyDocument"]["Statement"]
    statements[:] = [s for s in statements if s.get("Sid") != "S3ServerAccessLogs"]


def _function_on_an_older_python(t: Template) -> None:
    _resource(t, "IngestFunction")["Runtime"] = "python3.11"


def _layer_for_two_pythons(t: Template) -> None:
    _resource(t, "CommonLayer")["CompatibleRuntimes"] = ["python3.11", LAMBDA_RUNTIME]


def _layer_built_for_an_older_python(t: Template) -> None:
    t["Resources"]["CommonLayer"]["Metadata"]["BuildMethod"] = "python3.11"


def _image_tagged_for_an_older_python(t: Template) -> None:
    t["Resources"]["PredictorFunction"]["Metadata"]["DockerTag"] = "python3.11"


BREAKAGES: list[tuple[Callable[[Template], list[str]], Callable[[Template], None], str]] = [
    (role_violations, _share_a_role, "PredictorFunction: Role set"),
    (role_violations, _full_access, "managed policy CloudWatchLogsFullAccess"),
    (role_violations, _bucket_wide_read_template, "S3ReadPolicy"),
    (action_violations, _service_wildcard_action, "IngestFunction: Action s3:*"),
    (action_violations, _any_action, "MlflowRegistryReadPolicy: Action *"),
    (wildcard_resource_violations, _unscoped_s3, "NotifyFunction: s3:PutObject on Resource *"),
    (wildcard_resource_violations, _unconditioned_put_metric_data, "cloudwatch:PutMetricData on Resource *"),
    (bucket_violations, _versioning_suspended, "DataBucket: not versioned"),
    (bucket_violations, _public_policy_allowed, "BlockPublicPolicy"),
    (bucket_violations, _tls_not_required, "without TLS"),
    (api_violations, _api_without_auth, "no IAM or JWT default authorizer"),
    (api_violations, _api_unthrottled, "ThrottlingRateLimit missing"),
    (api_violations, _route_without_auth, "opts out of the authorizer"),
    (log_group_violations, _function_without_log_group, "PredictorFunction: no log group"),
    (log_group_violations, _logs_kept_forever, "TrainingStateMachineLogGroup: no RetentionInDays"),
    (schedule_violations, _schedule_without_dead_letters, "DayStartSchedule: no dead-letter queue"),
    (schedule_violations, _schedule_without_retries, "DayStartSchedule: no RetryPolicy"),
    (schedule_violations, _cron_offset, "BatchPredictFunction.Daily: scheduled on its own"),
    (schedule_violations, _schedule_starts_training, "does not start the day state machine"),
    (schedule_violations, _no_hourly_schedule, "schedules for intervals ['1d'], not one for each of 1d and 1h"),
    (schedule_violations, _schedule_role_too_wide, "DayStartScheduleRole: ['states:StartExecution'] on"),
    (schedule_violations, _queue_unencrypted, "DeadLetterQueue: not encrypted"),
    (concurrency_violations, _concurrent_trigger_checks, "TriggerCheckerFunction"),
    (concurrency_violations, _predictor_unbounded, "PredictorFunction: ReservedConcurrentExecutions"),
    (logging_violations, _text_logs, "LogFormat is not JSON"),
    (logging_violations, _no_log_level, "ApplicationLogLevel"),
    (logging_violations, _function_log_override, "PredictorFunction: LoggingConfig of its own"),
    (version_retention_violations, _versions_kept_forever, "noncurrent versions never expire"),
    (version_retention_violations, _versions_expire_early, "expire after [30] days"),
    (access_log_violations, _no_access_log, "DataBucket: no server access logging"),
    (access_log_violations, _log_delivery_refused, "AccessLogBucket: its policy does not let"),
    (alarm_violations, _no_trigger_checker_alarm, "no alarm for: trigger checker failed"),
    (alarm_violations, _no_backtest_alarm, "no alarm for: backtest run failed"),
    (alarm_violations, _no_day_alarm, "no alarm for: day failed"),
    (alarm_violations, _silent_alarm, "DeadLetterQueueMessagesAlarm: does not notify"),
    (secret_violations, _token_default, "TelegramSecretName: default looks like a secret"),
    (secret_violations, _token_parameter, "TelegramBotToken"),
    (secret_violations, _secret_in_environment, "RETRAIN_TELEGRAM_TOKEN"),
    (secret_violations, _credentials_in_tracking_uri, "MlflowTrackingUri: accepts a URL with credentials"),
    (secret_violations, _any_secret_readable, "not on one named secret"),
    (mlflow_violations, _mlflow_on_every_server, "not the tracking server"),
    (mlflow_violations, _mlflow_user_without_access, "BatchPredictFunction: uses MLflow"),
    (mlflow_violations, _mlflow_deletes, "DeleteRegisteredModel"),
    (mlflow_violations, _mlflow_unconditional, "PromoteModelFunction: MLflow permissions not under"),
    (runtime_violations, _function_on_an_older_python, "IngestFunction: Runtime python3.11"),
    (runtime_violations, _layer_for_two_pythons, "CommonLayer: CompatibleRuntimes"),
    (runtime_violations, _layer_built_for_an_older_python, "CommonLayer: BuildMethod python3.11"),
    (runtime_violations, _image_tagged_for_an_older_python, "PredictorFunction: DockerTag python3.11"),
]


@pytest.mark.parametrize(
    ("rule", "breakage", "expected"), BREAKAGES, ids=[breakage.__name__.lstrip("_") for _, breakage, _ in BREAKAGES]
)
def test_rule_catches_a_broken_template(
    template: Template,
    rule: Callable[[Template], list[str]],
    breakage: Callable[[Template], None],
    expected: str,
) -> None:
    broken = copy.deepcopy(template)
    breakage(broken)
    violations = rule(broken)
    assert any(expected in violation for violation in violations), violations


def test_every_rule_has_a_breakage() -> None:
    assert {rule for rule, _, _ in BREAKAGES} == set(RULES)
