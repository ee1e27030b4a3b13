"""Lint of the Step Functions definitions in infra/*.asl.json against template.yaml.

Every Lambda Task retries Lambda's transient service errors and catches everything else (one model's
failure must never fail the run); placeholders and DefinitionSubstitutions match one to one; every
transition names a state of its own scope.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
ASL_FILES = sorted((REPO_ROOT / "infra").glob("*.asl.json"))
TRAINING_ASL = REPO_ROOT / "infra" / "training.asl.json"  # what the linter's own tests break

LAMBDA_TRANSIENT_ERRORS = {
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
}
PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")


class _TagLoader(yaml.SafeLoader):
    """Enough of CloudFormation's short tags to read the template (values are not resolved here)."""


_TagLoader.add_multi_constructor(
    "!",
    lambda loader, suffix, node: {
        suffix: loader.construct_scalar(node)
        if isinstance(node, yaml.ScalarNode)
        else loader.construct_sequence(node, deep=True)
        if isinstance(node, yaml.SequenceNode)
        else loader.construct_mapping(node, deep=True)
    },
)


def _state_machines() -> dict[Path, dict[str, Any]]:
    """Definition file -> the template's StateMachine properties that use it."""
    template = yaml.load((REPO_ROOT / "template.yaml").read_text(), Loader=_TagLoader)
    machines = {}
    for resource in template["Resources"].values():
        if resource["Type"] in {"AWS::Serverless::StateMachine", "AWS::StepFunctions::StateMachine"}:
            props = resource["Properties"]
            machines[(REPO_ROOT / props["DefinitionUri"]).resolve()] = props
    return machines


def _scopes(machine: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every {StartAt, States} scope: the top level, Map item processors and Parallel branches."""
    yield path or "<root>", machine
    for name, state in machine["States"].items():
        for key in ("ItemProcessor", "Iterator"):
            if key in state:
                yield from _scopes(state[key], f"{path}{name}.{key}/")
        for i, branch in enumerate(state.get("Branches", [])):
            yield from _scopes(branch, f"{path}{name}.Branches[{i}]/")


def _tasks(machine: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{scope}{name}", state)
        for scope, states in _scopes(machine)
        for name, state in states["States"].items()
        if state["Type"] == "Task"
    ]


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


@pytest.fixture(params=ASL_FILES, ids=lambda p: p.name)
def asl(request: pytest.FixtureRequest) -> tuple[Path, dict[str, Any]]:
    return request.param, _load(request.param)


def test_definitions_exist_and_are_all_deployed() -> None:
    assert ASL_FILES, "no infra/*.asl.json"
    machines = _state_machines()
    assert {p.resolve() for p in ASL_FILES} == set(machines), "an ASL file is unused or a DefinitionUri is missing"


def test_every_task_retries_lambda_service_errors(asl: tuple[Path, dict[str, Any]]) -> None:
    _, machine = asl
    tasks = _tasks(machine)
    assert tasks, "a definition without tasks: is the walker broken?"
    for name, state in tasks:
        retried: set[str] = set()
        for retrier in state.get("Retry", []):
            assert retrier.get("MaxAttempts", 3) >= 1, f"{name}: a retrier with MaxAttempts 0 retries nothing"
            retried.update(retrier["ErrorEquals"])
        if retried & {"States.ALL", "States.TaskFailed"}:
            continue
        missing = LAMBDA_TRANSIENT_ERRORS - retried
        assert not missing, f"{name}: no Retry for {sorted(missing)}"


def test_every_task_catches_all_errors(asl: tuple[Path, dict[str, Any]]) -> None:
    _, machine = asl
    for name, state in _tasks(machine):
        catchers = state.get("Catch", [])
        assert catchers, f"{name}: no Catch"
        assert catchers[-1]["ErrorEquals"] == ["States.ALL"], f"{name}: last Catch must be exactly States.ALL"
        for catcher in catchers[:-1]:
            assert "States.ALL" not in catcher["ErrorEquals"], f"{name}: States.ALL must be alone and last"


def _transitions(state: dict[str, Any]) -> Iterator[str]:
    if "Next" in state:
        yield state["Next"]
    if "Default" in state:
        yield state["Default"]
    for choice in state.get("Choices", []):
        yield choice["Next"]
    for catcher in state.get("Catch", []):
        yield catcher["Next"]


def test_every_transition_names_a_state_of_its_scope(asl: tuple[Path, dict[str, Any]]) -> None:
    _, machine = asl
    for scope, states in _scopes(machine):
        names = set(states["States"])
        assert states["StartAt"] in names, f"{scope}: StartAt {states['StartAt']!r} is not a state"
        for name, state in states["States"].items():
            for target in _transitions(state):
                assert target in names, f"{scope}{name}: Next {target!r} is not a state of this scope"
            terminal = state["Type"] in {"Succeed", "Fail", "Choice"} or state.get("End") is True
            assert terminal != ("Next" in state), f"{scope}{name}: needs exactly one of Next and End"


def test_every_state_is_reachable(asl: tuple[Path, dict[str, Any]]) -> None:
    _, machine = asl
    for scope, states in _scopes(machine):
        seen, todo = set(), [states["StartAt"]]
        while todo:
            name = todo.pop()
            if name not in seen:
                seen.add(name)
                todo.extend(_transitions(states["States"][name]))
        assert seen == set(states["States"]), f"{scope}: unreachable {sorted(set(states['States']) - seen)}"


def test_placeholders_match_definition_substitutions() -> None:
    for path, props in _state_machines().items():
        placeholders = set(PLACEHOLDER.findall(path.read_text()))
        substitutions = set(props.get("DefinitionSubstitutions", {}))
        assert placeholders - substitutions == set(), f"{path.name}: placeholders without a substitution"
        assert substitutions - placeholders == set(), f"{path.name}: substitutions the definition never uses"


def test_substituted_resources_are_lambda_invocations(asl: tuple[Path, dict[str, Any]]) -> None:
    """Tasks call Lambda through the optimised integration with a substituted function ARN."""
    _, machine = asl
    for name, state in _tasks(machine):
        assert state["Resource"] == "arn:aws:states:::lambda:invoke", name
        assert PLACEHOLDER.fullmatch(state["Parameters"]["FunctionName"]), f"{name}: hard-coded FunctionName"


# --- the linter itself catches defects --------------------------------------------------------------
def _broken(mutate) -> dict[str, Any]:
    machine = _load(TRAINING_ASL)
    mutate(machine)
    return machine


def _inner(machine: dict[str, Any]) -> dict[str, Any]:
    return machine["States"]["RetrainEachModel"]["ItemProcessor"]["States"]


@pytest.mark.parametrize(
    ("check", "mutate"),
    [
        (test_every_task_retries_lambda_service_errors, lambda m: _inner(m)["PrepareDataset"].pop("Retry")),
        (
            test_every_task_retries_lambda_service_errors,
            lambda m: _inner(m)["PrepareDataset"]["Retry"][0]["ErrorEquals"].remove("Lambda.ServiceException"),
        ),
        (test_every_task_catches_all_errors, lambda m: _inner(m)["PrepareDataset"].pop("Catch")),
        (
            test_every_task_catches_all_errors,
            lambda m: m["States"]["NotifyOperator"]["Catch"][0].update(ErrorEquals=["States.TaskFailed"]),
        ),
        (test_every_transition_names_a_state_of_its_scope, lambda m: _inner(m)["PrepareDataset"].update(Next="Nope")),
        # A Map's inner state cannot jump to an outer state.
        (
            test_every_transition_names_a_state_of_its_scope,
            lambda m: _inner(m)["PrepareDataset"]["Catch"][0].update(Next="RunSummary"),
        ),
        (test_every_state_is_reachable, lambda m: m["States"].update(Orphan={"Type": "Pass", "End": True})),
    ],
    ids=[
        "no-retry",
        "retry-misses-service-exception",
        "no-catch",
        "catch-not-all",
        "bad-next",
        "cross-scope",
        "orphan",
    ],
)
def test_lint_rejects_broken_definition(check, mutate) -> None:
    with pytest.raises(AssertionError):
        check((TRAINING_ASL, _broken(mutate)))
