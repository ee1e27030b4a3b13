"""Lint of the Step Functions definitions in infra/*.asl.json against template.yaml.

Every Lambda Task retries Lambda's transient service errors and catches everything else (one model's
failure must never fail the run); placeholders and DefinitionSubstitutions match one to one; every
transition names a state of its own scope; every Task and every state machine has a timeout that fits
the functions' timeouts (and the ExecutionsTimedOut alarm therefore can fire).

The state machines' timeouts against their longest path (``longest_path_seconds``), for the default pool
(16 symbols x 2 trends = 32 models) at the template's default concurrency, every Task at its timeout and
every Retry used up (4 attempts, backoff 2 + 4 + 8 s):

- training: ceil(32 / 4) = 8 waves x (PrepareDataset 4 x 180 + TrainModel 4 x 960 + PromoteModel 4 x 360
  + 3 x 14 s of backoff = 6,042 s) + NotifyOperator (4 x 90 + 14 = 374 s) = 48,710 s (13.5 h) <= 86,400 s;
  the same pool one model at a time (max_concurrency 1) without retries takes 32 x 1,500 + 90 = 48,090 s.
- backtest: ceil(32 / 8) = 4 waves x BacktestModel (4 x 960 + 14 = 3,854 s) + Summarize (4 x 360 + 14 =
  1,454 s) = 16,870 s <= 21,600 s.
- day: Ingest (4 x 360 + 14 = 1,454 s) + Check (4 x 660 + 14 = 2,654 s) + Train (the nested training
  execution, 86,460 s: a little above the training machine's own 86,400 s, not retried) + BatchPredict
  (2,654 s) = 93,222 s <= 93,600 s.

The day (infra/day.asl.json) has rules of its own: its steps run in the issue's order (ingest, check, the
trainings, predictions), its trainings are the training state machine nested (not a copy of its steps), a
failed ingestion fails the day before any check, and the later steps see only what ingestion made ready.
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
ASL_FILES = sorted((REPO_ROOT / "infra").glob("*.asl.json"))
TRAINING_ASL = REPO_ROOT / "infra" / "training.asl.json"  # what the linter's own tests break
DAY_ASL = REPO_ROOT / "infra" / "day.asl.json"
LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
# Nested executions: the optimised integration that waits for the child and returns its output as JSON.
START_EXECUTION_SYNC = "arn:aws:states:::states:startExecution.sync:2"

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


def _template() -> dict[str, Any]:
    return yaml.load((REPO_ROOT / "template.yaml").read_text(), Loader=_TagLoader)


def _state_machines(template: dict[str, Any] | None = None) -> dict[Path, dict[str, Any]]:
    """Definition file -> the template's StateMachine properties that use it."""
    template = template or _template()
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
        if state["Resource"] != LAMBDA_INVOKE:
            continue
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
    """Tasks call Lambda through the optimised integration with a substituted function ARN, or run a state
    machine of the template, nested, with a substituted ARN."""
    _, machine = asl
    for name, state in _tasks(machine):
        assert state["Resource"] in {LAMBDA_INVOKE, START_EXECUTION_SYNC}, name
        target = state["Parameters"]["FunctionName" if state["Resource"] == LAMBDA_INVOKE else "StateMachineArn"]
        assert PLACEHOLDER.fullmatch(target), f"{name}: hard-coded target"


def test_nested_executions_are_not_retried(asl: tuple[Path, dict[str, Any]]) -> None:
    """A nested execution that failed ran its own steps (and their retries): running it again under the same
    name is refused by Step Functions, under another would train the models twice."""
    _, machine = asl
    for name, state in _tasks(machine):
        if state["Resource"] == START_EXECUTION_SYNC:
            assert not state.get("Retry"), f"{name}: retries a nested execution"


# --- timeouts ---------------------------------------------------------------------------------------
# A Task's timeout exceeds its function's by this much: Lambda's own timeout ends a hung invocation first (its
# error names the function and its log holds the last lines), with room for the invocation's overhead (a cold
# start, Step Functions' scheduling); and by no more, or a hung invocation would hold the state long after.
TASK_TIMEOUT_MARGIN_S = (30, 120)
LAMBDA_DEFAULT_TIMEOUT_S = 3
TRENDS_PER_SYMBOL = 2


def _function_timeouts(template: dict[str, Any]) -> dict[str, int]:
    default = template.get("Globals", {}).get("Function", {}).get("Timeout", LAMBDA_DEFAULT_TIMEOUT_S)
    return {
        logical_id: int(resource["Properties"].get("Timeout", default))
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }


def _task_function(state: dict[str, Any], props: dict[str, Any]) -> str:
    """Logical id of the function a Task invokes: its ${...Arn} placeholder, substituted by !GetAtt X.Arn."""
    placeholder = PLACEHOLDER.fullmatch(state["Parameters"]["FunctionName"]).group(1)  # type: ignore[union-attr]
    return props["DefinitionSubstitutions"][placeholder]["GetAtt"].split(".")[0]


def _task_state_machine(state: dict[str, Any], props: dict[str, Any]) -> str:
    """Logical id of the state machine a nested-execution Task starts: its placeholder, substituted by !Ref X."""
    placeholder = PLACEHOLDER.fullmatch(state["Parameters"]["StateMachineArn"]).group(1)  # type: ignore[union-attr]
    return props["DefinitionSubstitutions"][placeholder]["Ref"]


def _machine_timeouts(template: dict[str, Any]) -> dict[str, int]:
    return {
        logical_id: int(_load(REPO_ROOT / resource["Properties"]["DefinitionUri"]).get("TimeoutSeconds", 0))
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::StateMachine"
    }


def _default_concurrency(props: dict[str, Any], template: dict[str, Any]) -> int:
    """The Map's concurrency when the input sets none: the template parameter the definition substitutes
    (1 for a definition without a Map)."""
    references = [v for k, v in props["DefinitionSubstitutions"].items() if k.endswith("MaxConcurrency")]
    return int(template["Parameters"][references[0]["Ref"]]["Default"]) if references else 1


def _pool_size(template: dict[str, Any]) -> int:
    return TRENDS_PER_SYMBOL * len(template["Parameters"]["Symbols"]["Default"].split(","))


def _state_seconds(state: dict[str, Any], items: int, concurrency: int) -> float:
    """Worst case of one state: a Task at its timeout on every attempt its retriers allow, plus their backoff;
    a Map in ceil(items / concurrency) waves of its longest iteration."""
    if state["Type"] == "Task":
        attempts, backoff = 1, 0.0
        for retrier in state.get("Retry", []):
            tries = retrier.get("MaxAttempts", 3)
            attempts += tries
            for k in range(tries):
                delay = retrier.get("IntervalSeconds", 1) * retrier.get("BackoffRate", 2.0) ** k
                backoff += min(delay, retrier.get("MaxDelaySeconds", delay))
        return attempts * state.get("TimeoutSeconds", math.inf) + backoff
    if state["Type"] == "Map":
        concurrency = state.get("MaxConcurrency") or concurrency
        inner = state.get("ItemProcessor") or state["Iterator"]
        return math.ceil(items / concurrency) * longest_path_seconds(inner, items, concurrency)
    if state["Type"] == "Wait":
        return state.get("Seconds", math.inf)
    return 0.0  # Pass, Choice, Succeed, Fail


def longest_path_seconds(scope: dict[str, Any], items: int, concurrency: int) -> float:
    """Worst-case duration from the scope's StartAt to its end, over every path (the definitions have no loops)."""
    memo: dict[str, float] = {}

    def from_state(name: str) -> float:
        if name not in memo:
            state = scope["States"][name]
            after = max((from_state(target) for target in _transitions(state)), default=0.0)
            memo[name] = _state_seconds(state, items, concurrency) + after
        return memo[name]

    return from_state(scope["StartAt"])


def timeout_violations(machine: dict[str, Any], props: dict[str, Any], template: dict[str, Any]) -> list[str]:
    """Every Task times out a little after its function does; the state machine times out, not before its
    longest path for the default pool has had its time."""
    found = []
    functions = _function_timeouts(template)
    # A nested execution's Task times out a little after the child machine does, as a Lambda Task after its function.
    functions.update(_machine_timeouts(template))
    low, high = TASK_TIMEOUT_MARGIN_S
    for name, state in _tasks(machine):
        nested = state["Resource"] == START_EXECUTION_SYNC
        function = _task_state_machine(state, props) if nested else _task_function(state, props)
        timeout = state.get("TimeoutSeconds")
        if timeout is None:
            found.append(f"{name}: no TimeoutSeconds (a hung invocation holds the execution for a year)")
        elif not functions[function] + low <= timeout <= functions[function] + high:
            found.append(
                f"{name}: TimeoutSeconds {timeout}, not {low}-{high} s above {function}'s Timeout {functions[function]}"
            )
    if "TimeoutSeconds" not in machine:
        found.append("no top-level TimeoutSeconds: a hung execution never counts as ExecutionsTimedOut")
    else:
        bound = longest_path_seconds(machine, _pool_size(template), _default_concurrency(props, template))
        if machine["TimeoutSeconds"] < bound:
            found.append(f"TimeoutSeconds {machine['TimeoutSeconds']} < the longest path's {bound:.0f} s")
    return found


def test_every_task_and_state_machine_has_a_timeout_that_fits_the_functions() -> None:
    template = _template()
    for path, props in _state_machines(template).items():
        assert timeout_violations(_load(path), props, template) == [], path.name


def test_every_state_machine_timeout_has_an_alarm_watching_it() -> None:
    """The template's ExecutionsTimedOut alarms watch exactly the state machines that can time out."""
    template = _template()
    watched = {
        alarm["Properties"]["Dimensions"][0]["Value"]["Ref"]
        for alarm in template["Resources"].values()
        if alarm["Type"] == "AWS::CloudWatch::Alarm"
        and alarm["Properties"]["Namespace"] == "AWS/States"
        and alarm["Properties"]["MetricName"] == "ExecutionsTimedOut"
    }
    machines = {
        logical_id: _load(REPO_ROOT / resource["Properties"]["DefinitionUri"])
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::StateMachine"
    }
    assert watched == {logical_id for logical_id, machine in machines.items() if "TimeoutSeconds" in machine}
    assert watched == set(machines)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda m, t: _inner(m)["TrainModel"].pop("TimeoutSeconds"), "TrainModel: no TimeoutSeconds"),
        # As long as the function's own timeout: the Task's would race it.
        (lambda m, t: _inner(m)["TrainModel"].update(TimeoutSeconds=900), "TrainModel: TimeoutSeconds 900"),
        (lambda m, t: m["States"]["NotifyOperator"].update(TimeoutSeconds=3600), "NotifyOperator: TimeoutSeconds"),
        # The template raises a function's timeout past what the definition allows its Task.
        (
            lambda m, t: t["Resources"]["PromoteModelFunction"]["Properties"].update(Timeout=600),
            "PromoteModel: TimeoutSeconds 360, not 30-120 s above PromoteModelFunction's Timeout 600",
        ),
        (lambda m, t: m.pop("TimeoutSeconds"), "no top-level TimeoutSeconds"),
        (lambda m, t: m.update(TimeoutSeconds=6 * 3600), "TimeoutSeconds 21600 < the longest path's 48710 s"),
        # A bigger pool at the same concurrency needs more time than the machine has.
        (
            lambda m, t: t["Parameters"]["Symbols"].update(Default=",".join(f"S{i}" for i in range(40))),
            "< the longest path's",
        ),
    ],
    ids=["task-none", "task-equal", "task-far-above", "function-raised", "machine-none", "machine-short", "pool-grown"],
)
def test_timeout_rule_rejects_broken_definitions(mutate, expected: str) -> None:
    template, machine = _template(), _load(TRAINING_ASL)
    mutate(machine, template)
    props = _state_machines(copy.deepcopy(template))[TRAINING_ASL.resolve()]
    found = timeout_violations(machine, props, template)
    assert any(expected in violation for violation in found), found


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


# --- the day ------------------------------------------------------------------------------------------------
DAY_ORDER = ["IngestFunction", "TriggerCheckerFunction", "TrainingStateMachine", "BatchPredictFunction"]


def _day_props(template: dict[str, Any]) -> dict[str, Any]:
    return _state_machines(template)[DAY_ASL.resolve()]


def _target(state: dict[str, Any], props: dict[str, Any]) -> str:
    if state["Resource"] == START_EXECUTION_SYNC:
        return _task_state_machine(state, props)
    return _task_function(state, props)


def _leads_to_fail(states: dict[str, Any], name: str) -> bool:
    """The state is a Fail, or Pass states lead to one."""
    while states[name]["Type"] == "Pass" and "Next" in states[name]:
        name = states[name]["Next"]
    return states[name]["Type"] == "Fail"


def day_violations(machine: dict[str, Any], template: dict[str, Any]) -> list[str]:
    found = []
    props, states = _day_props(template), machine["States"]
    # The path a day without failures takes: Next, and each Choice's Default.
    path, name = [], machine["StartAt"]
    while name is not None and len(path) <= len(states):
        path.append(name)
        name = states[name].get("Next") or states[name].get("Default")
    order = [_target(states[n], props) for n in path if states[n]["Type"] == "Task"]
    if order != DAY_ORDER:
        found.append(f"steps run as {order}, not {DAY_ORDER}")
    training = _state_machines(template)[TRAINING_ASL.resolve()]
    training_functions = {_task_function(state, training) for _, state in _tasks(_load(TRAINING_ASL))}
    for name, state in _tasks(machine):
        if state["Resource"] == LAMBDA_INVOKE and _task_function(state, props) in training_functions:
            found.append(f"{name}: a training step copied into the day (nest the training state machine)")
    by_target = {_target(state, props): (name, state) for name, state in _tasks(machine)}
    ingest_name, ingest = by_target.get("IngestFunction", ("Ingest", {}))
    catch_all = [c["Next"] for c in ingest.get("Catch", []) if c["ErrorEquals"] == ["States.ALL"]]
    if not catch_all or not _leads_to_fail(states, catch_all[0]):
        found.append(f"{ingest_name}: a failed ingestion does not fail the day")
    ingested = ingest.get("ResultPath")
    for target in ("TriggerCheckerFunction", "BatchPredictFunction"):
        name, state = by_target.get(target, (target, {}))
        symbols = state.get("Parameters", {}).get("Payload", {}).get("symbols.$")
        if ingested is None or symbols != f"{ingested}.ready":
            found.append(f"{name}: symbols {symbols!r}, not those ingestion made ready ({ingested}.ready)")
    for name, state in _tasks(machine):
        payload = state["Parameters"].get("Payload")
        if payload is not None and (payload.get("as_of.$"), payload.get("day.$")) != ("$.as_of", "$$.Execution.Name"):
            found.append(f"{name}: not the day's one as_of and name")
    incomplete = [
        rule["Next"]
        for state in states.values()
        if state["Type"] == "Choice"
        for rule in state["Choices"]
        if rule.get("Variable") == f"{ingested}.complete" and rule.get("BooleanEquals") is False
    ]
    if not incomplete or not all(_leads_to_fail(states, n) for n in incomplete):
        found.append("a day with symbols not ingested can succeed")
    return found


def test_the_day_runs_ingest_check_train_predict_on_what_ingestion_stored() -> None:
    assert day_violations(_load(DAY_ASL), _template()) == []


def _day_step(machine: dict[str, Any], name: str) -> dict[str, Any]:
    return machine["States"][name]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        # The cron offsets in one machine: predictions before the trainings.
        (
            lambda m: (
                _day_step(m, "AnyToRetrain").update(Default="BatchPredict"),
                _day_step(m, "BatchPredict").update(Next="Train"),
                _day_step(m, "Train").update(Next="DayOutcome"),
            ),
            "steps run as",
        ),
        # The training steps copied instead of nested.
        (
            lambda m: _day_step(m, "Train").update(
                Resource=LAMBDA_INVOKE, Parameters={"FunctionName": "${TrainModelFunctionArn}"}
            ),
            "a training step copied into the day",
        ),
        (lambda m: _day_step(m, "Ingest")["Catch"][0].update(Next="Check"), "a failed ingestion does not fail the day"),
        (
            lambda m: _day_step(m, "Check")["Parameters"]["Payload"].update({"symbols.$": "$.symbols"}),
            "not those ingestion made ready",
        ),
        (
            lambda m: _day_step(m, "BatchPredict")["Parameters"]["Payload"].update({"as_of.$": "$$.State.EnteredTime"}),
            "BatchPredict: not the day's one as_of",
        ),
        (lambda m: _day_step(m, "DayOutcome")["Choices"].pop(0), "a day with symbols not ingested can succeed"),
    ],
    ids=["predict-before-train", "training-copied", "ingest-failure-ignored", "check-all", "own-clock", "no-partial"],
)
def test_day_rule_rejects_broken_days(mutate, expected: str) -> None:
    template, machine = _template(), _load(DAY_ASL)
    # What a copy of a training step would need (unused by the other breakages).
    _day_props(template)["DefinitionSubstitutions"]["TrainModelFunctionArn"] = {"GetAtt": "TrainModelFunction.Arn"}
    mutate(machine)
    found = day_violations(machine, template)
    assert any(expected in violation for violation in found), found
