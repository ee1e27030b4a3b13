"""Route moto's Lambda invocations to the project's own handlers, in-process.

moto's Docker-free Lambda backend (``LambdaSimpleBackend``) echoes payloads. The embedded stack swaps
its ``invoke`` for one that imports ``functions/<name>/app.py`` as the template names it and calls the
handler with the JSON event and a Lambda-like context, so the state machine in ``infra/`` runs against
the real handler code. A raised exception becomes a Lambda function error whose ``errorType`` is the
exception class name, exactly what a ``Catch``/``Retry`` in the ASL matches on AWS.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from retrain.stack.template import FunctionSpec

Handler = Callable[[Any, Any], Any]


@dataclass
class LocalLambdaContext:
    """The attributes of AWS's LambdaContext that handlers and powertools read."""

    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int = 1024
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = ""
    log_stream_name: str = "local"
    timeout_ms: int = 900_000
    _started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self.timeout_ms - int((time.monotonic() - self._started) * 1000))


@dataclass
class _Route:
    spec: FunctionSpec
    handler: Handler
    # One invocation at a time per function, like one warm execution environment: handlers keep
    # module-level state (powertools metrics, caches) that Lambda never shares between concurrent calls.
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class InvocationRecord:
    function: str
    request_id: str
    duration_ms: float
    error_type: str | None


class LambdaRouter:
    def __init__(self, functions: tuple[FunctionSpec, ...]) -> None:
        self._routes: dict[str, _Route] = {}
        for spec in functions:
            module = importlib.import_module(spec.module)
            route = _Route(spec, getattr(module, spec.attribute))
            self._routes[spec.name] = route
            self._routes[spec.arn] = route
        self.invocations: list[InvocationRecord] = []

    def invoke(self, function_name: str, payload: bytes | str | None, response_headers: dict[str, Any]) -> bytes:
        route = self._routes.get(function_name) or self._routes.get(function_name.split(":")[-1])
        if route is None:
            response_headers["x-amz-function-error"] = "Unhandled"
            return _error_payload("ResourceNotFoundException", f"no local handler for function {function_name}")
        event = json.loads(payload) if payload else {}
        context = LocalLambdaContext(route.spec.name, route.spec.arn)
        started = time.perf_counter()
        error_type = None
        with route.lock, _event_loop_for_this_thread():
            try:
                result = route.handler(event, context)
                body = json.dumps(result, default=str).encode()
            except Exception as exc:
                error_type = type(exc).__name__
                response_headers["x-amz-function-error"] = "Unhandled"
                body = _error_payload(error_type, str(exc), traceback.format_exception(exc))
        self.invocations.append(
            InvocationRecord(
                route.spec.name, context.aws_request_id, (time.perf_counter() - started) * 1000, error_type
            )
        )
        return body


@contextlib.contextmanager
def _event_loop_for_this_thread() -> Iterator[None]:
    """Lambda's runtime calls a handler on its main thread, which has an asyncio event loop (Mangum, the
    predictor's adapter, runs the app on it). moto calls us on one of its request threads, which has none:
    give the invocation one, and close it afterwards (those threads come and go)."""
    try:
        asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            yield
        finally:
            asyncio.set_event_loop(None)
            loop.close()
        return
    yield


def _error_payload(error_type: str, message: str, stack: list[str] | None = None) -> bytes:
    return json.dumps({"errorType": error_type, "errorMessage": message, "stackTrace": stack or []}).encode()


_active: LambdaRouter | None = None
_original_invoke: Any = None


def install(router: LambdaRouter) -> None:
    """Make moto's simple Lambda backend call ``router`` (for this process)."""
    global _active, _original_invoke
    from moto.awslambda_simple.models import LambdaSimpleBackend

    if _original_invoke is None:
        _original_invoke = LambdaSimpleBackend.invoke

    def routed_invoke(self: Any, function_name: str, qualifier: Any, body: Any, headers: Any, response_headers: Any):
        if _active is None:
            return _original_invoke(self, function_name, qualifier, body, headers, response_headers)
        return _active.invoke(function_name, body, response_headers)

    LambdaSimpleBackend.invoke = routed_invoke  # type: ignore[method-assign]
    _active = router


def uninstall() -> None:
    global _active, _original_invoke
    from moto.awslambda_simple.models import LambdaSimpleBackend

    if _original_invoke is not None:
        LambdaSimpleBackend.invoke = _original_invoke  # type: ignore[method-assign]
    _active, _original_invoke = None, None
