"""The pool's CloudWatch dashboard (template.yaml, ``PoolDashboard``) shows what the code emits.

A graph of a metric nobody publishes stays empty without an error anywhere: every metric the dashboard shows
in the stack's own namespace must be named in the handlers' code (functions/, common/), with every dimension
it is graphed by, and every AWS metric must be one the service publishes, on a resource of this template.
"""

from __future__ import annotations

import ast
import copy
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from retrain.stack.template import load_template

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = REPO_ROOT / "template.yaml"
CODE = [REPO_ROOT / "functions", REPO_ROOT / "common"]

# The AWS metrics a graph may show, by namespace, and the template resource type each dimension names.
AWS_METRICS = {
    "AWS/ApiGateway": ({"Latency", "IntegrationLatency", "4xx", "5xx", "Count"}, {"ApiId": "AWS::Serverless::HttpApi"}),
    "AWS/Lambda": (
        {"Duration", "Errors", "Throttles", "Invocations", "ConcurrentExecutions"},
        {"FunctionName": "AWS::Serverless::Function"},
    ),
}
# What the pool's dashboard is for (issue 18): each must be on it.
REQUIRED = {
    ("own", "TriggersFired"),
    ("own", "ModelsTrained"),
    ("own", "ModelsPromoted"),
    ("own", "ModelsSuspended"),
    ("own", "ModelSwaps"),
    ("own", "LiveAccuracy"),
    ("own", "MaxPSI"),
    ("AWS/ApiGateway", "Latency"),
    ("AWS/ApiGateway", "5xx"),
    ("AWS/Lambda", "Errors"),
}
PLACEHOLDER = re.compile(r"\$\{([^}]+)\}")
SEARCH = re.compile(r"SEARCH\('\{([^}]*)\}\s+MetricName=\"(\w+)\"((?:\s+\w+=\"[^\"]*\")*)'")


@dataclass(frozen=True)
class Graphed:
    namespace: str
    name: str
    dimensions: dict[str, str]  # dimension -> value (a SEARCH names dimensions without values: "*")


def code_strings() -> set[str]:
    """Every string literal in the handlers and the domain code (metric and dimension names are literals)."""
    found: set[str] = set()
    for folder in CODE:
        for path in folder.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    found.add(node.value)
    return found


def dashboard_body(template: dict[str, Any]) -> dict[str, Any]:
    """The dashboard's JSON, each ${Name} kept as the text "${Name}" (the names are checked separately)."""
    sub = template["Resources"]["PoolDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    return json.loads(sub if isinstance(sub, str) else sub[0])


def graphed(body: dict[str, Any]) -> Iterator[Graphed]:
    for widget in body["widgets"]:
        for entry in widget.get("properties", {}).get("metrics", []):
            items = [item for item in entry if not isinstance(item, dict)]
            expressions = [item["expression"] for item in entry if isinstance(item, dict) and "expression" in item]
            if items:
                namespace, name, *pairs = items
                yield Graphed(namespace, name, dict(zip(pairs[::2], pairs[1::2], strict=True)))
            for expression in expressions:
                match = SEARCH.search(expression)
                assert match, f"a dashboard expression this test cannot read: {expression}"
                namespace, *dimension_names = (part.strip() for part in match.group(1).split(","))
                values = dict(re.findall(r"(\w+)=\"([^\"]*)\"", match.group(3)))
                yield Graphed(namespace, match.group(2), {d: values.get(d, "*") for d in dimension_names})


def dashboard_violations(template: dict[str, Any], emitted: set[str]) -> list[str]:
    found = []
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    own_namespace, service = env["POWERTOOLS_METRICS_NAMESPACE"], env["POWERTOOLS_SERVICE_NAME"]["Fn::Sub"]
    body = dashboard_body(template)
    names = set(template.get("Parameters", {})) | set(template["Resources"]) | {"AWS::Region", "AWS::AccountId"}
    for placeholder in PLACEHOLDER.findall(json.dumps(body)):
        if placeholder not in names:
            found.append(f"${{{placeholder}}}: not a parameter or resource of the template")
    shown = set()
    for metric in graphed(body):
        where = f"{metric.namespace}/{metric.name}"
        if metric.namespace == own_namespace:
            shown.add(("own", metric.name))
            if metric.name not in emitted:
                found.append(f"{where}: no code emits this metric")
            if metric.dimensions.get("service") != service:
                found.append(f"{where}: not on the service dimension the handlers publish ({service})")
            for dimension in set(metric.dimensions) - {"service"}:
                if dimension not in emitted:
                    found.append(f"{where}: no code adds the dimension {dimension!r}")
        elif metric.namespace in AWS_METRICS:
            shown.add((metric.namespace, metric.name))
            published, dimension_types = AWS_METRICS[metric.namespace]
            if metric.name not in published:
                found.append(f"{where}: not a metric {metric.namespace} publishes")
            for dimension, value in metric.dimensions.items():
                resource = PLACEHOLDER.fullmatch(value)
                kind = dimension_types.get(dimension)
                target = template["Resources"].get(resource.group(1), {}) if resource else {}
                if kind is None or target.get("Type") != kind:
                    found.append(f"{where}: dimension {dimension}={value} is not a {kind or 'known'} of the template")
        else:
            found.append(f"{where}: a namespace nothing here publishes to")
    found += [f"the dashboard does not show {name} ({where})" for where, name in sorted(REQUIRED - shown)]
    return found


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(TEMPLATE_PATH)


@pytest.fixture(scope="module")
def emitted() -> set[str]:
    return code_strings()


def test_every_graph_of_the_dashboard_shows_an_emitted_metric(template: dict[str, Any], emitted: set[str]) -> None:
    assert dashboard_violations(template, emitted) == []
    assert len(list(graphed(dashboard_body(template)))) >= len(REQUIRED)


def _edit_body(template: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    broken = copy.deepcopy(template)
    properties = broken["Resources"]["PoolDashboard"]["Properties"]
    body = properties["DashboardBody"]["Fn::Sub"]
    assert old in body
    properties["DashboardBody"]["Fn::Sub"] = body.replace(old, new)
    return broken


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('"ModelSwaps"', '"ModelsSwapped"', "Retrain/ModelsSwapped: no code emits this metric"),
        ('MetricName=\\"MaxPSI\\"', 'MetricName=\\"MaxPsi\\"', "Retrain/MaxPsi: no code emits"),
        ("{Retrain,model,service}", "{Retrain,pair,service}", "no code adds the dimension 'pair'"),
        ('"trigger", "drift"', '"trigger_kind", "drift"', "no code adds the dimension 'trigger_kind'"),
        ('"retrain-${Stage}", {"label": "swapped in"}', '"retrain", {"label": "swapped in"}', "not on the service"),
        ('"${PredictorApi}", {"label": "API 5xx"}', '"${PredictorLogGroup}", {"label": "API 5xx"}', "ApiId="),
        ('"AWS/Lambda", "Errors"', '"AWS/Lambda", "Failures"', "AWS/Lambda/Failures: not a metric"),
        ('"${PredictorFunction}", {"label": "throttled"}', '"${Predictor}", {"label": "throttled"}', "${Predictor}"),
    ],
)
def test_a_dashboard_out_of_step_with_the_code_is_caught(
    template: dict[str, Any], emitted: set[str], old: str, new: str, expected: str
) -> None:
    violations = dashboard_violations(_edit_body(template, old, new), emitted)
    assert any(expected in violation for violation in violations), violations


def test_a_metric_the_code_stops_emitting_is_caught(template: dict[str, Any], emitted: set[str]) -> None:
    assert any("TriggersFired" in v for v in dashboard_violations(template, emitted - {"TriggersFired"}))


def test_a_required_graph_removed_is_caught(template: dict[str, Any], emitted: set[str]) -> None:
    broken = _edit_body(template, '"ModelsSuspended"', '"ModelsRejected"')
    assert "the dashboard does not show ModelsSuspended (own)" in dashboard_violations(broken, emitted)
