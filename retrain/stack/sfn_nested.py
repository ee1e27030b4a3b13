"""Make moto's Step Functions interpreter run a nested execution (``states:startExecution.sync:2``) as AWS does.

moto 5's service integration for Step Functions passes the state's parameters to boto3 as the ASL spells them
(``StateMachineArn``, ``Name``, ``Input``), which boto3's serializer does not know (``stateMachineArn``...),
and hands back boto3's camel-cased responses where AWS gives the ASL ``ExecutionArn``, ``Output``... The day
state machine (infra/day.asl.json) nests the training state machine this way, so the embedded stack installs
this for as long as it runs: the request keys in boto3's casing, the responses in the ASL's.
"""

from __future__ import annotations

from typing import Any

_BOTO_KEYS = {"StateMachineArn": "stateMachineArn", "Name": "name", "Input": "input", "TraceHeader": "traceHeader"}
_originals: dict[str, Any] = {}


def asl_cased(response: dict[str, Any]) -> dict[str, Any]:
    """``{"executionArn": ...}`` -> ``{"ExecutionArn": ...}``: top-level keys as the ASL reads them."""
    return {key[:1].upper() + key[1:]: value for key, value in response.items()}


def install() -> None:
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sfn import (
        StateTaskServiceSfn,
    )

    if _originals:
        return
    _originals.update(
        normalise_parameters=StateTaskServiceSfn._normalise_parameters,
        normalise_response=StateTaskServiceSfn._normalise_response,
        eval_service_task=StateTaskServiceSfn._eval_service_task,
    )

    def normalise_parameters(self: Any, parameters: dict, boto_service_name=None, service_action_name=None) -> None:
        _originals["normalise_parameters"](self, parameters, boto_service_name, service_action_name)
        if service_action_name is None:  # the state's own request, not the resolver's describe call
            for asl_key, boto_key in _BOTO_KEYS.items():
                if asl_key in parameters:
                    parameters[boto_key] = parameters.pop(asl_key)

    def normalise_response(self: Any, response: Any, boto_service_name=None, service_action_name=None) -> None:
        _originals["normalise_response"](self, response, boto_service_name, service_action_name)
        if isinstance(response, dict):
            cased = asl_cased(response)
            response.clear()
            response.update(cased)

    def eval_service_task(self: Any, env: Any, *args: Any, **kwargs: Any) -> None:
        _originals["eval_service_task"](self, env, *args, **kwargs)
        if env.stack and isinstance(env.stack[-1], dict):
            env.stack[-1] = asl_cased(env.stack[-1])

    StateTaskServiceSfn._normalise_parameters = normalise_parameters  # type: ignore[method-assign]
    StateTaskServiceSfn._normalise_response = normalise_response  # type: ignore[method-assign]
    StateTaskServiceSfn._eval_service_task = eval_service_task  # type: ignore[method-assign]


def uninstall() -> None:
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sfn import (
        StateTaskServiceSfn,
    )

    if _originals:
        StateTaskServiceSfn._normalise_parameters = _originals["normalise_parameters"]  # type: ignore[method-assign]
        StateTaskServiceSfn._normalise_response = _originals["normalise_response"]  # type: ignore[method-assign]
        StateTaskServiceSfn._eval_service_task = _originals["eval_service_task"]  # type: ignore[method-assign]
    _originals.clear()
