"""Make moto's Step Functions interpreter give ``$$.Execution.StartTime`` as AWS does: ISO 8601 text.

AWS's context object holds the start as a string (``"2019-03-26T20:14:13.192Z"``). moto 5 hands its
interpreter the ``datetime`` itself: a Lambda payload still serialises it, but a state that keeps it in the
execution's data (the training state machine defaults ``as_of`` to it) leaves a ``datetime`` in the output,
which moto's DescribeExecution cannot encode. The embedded stack installs this for as long as it runs.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

_original: Any = None


def aws_start_time(start: datetime | str) -> str:
    """``2024-06-01T00:10:00.123Z``: UTC, milliseconds, as Step Functions writes it."""
    if isinstance(start, str):
        return start
    moment = start.replace(tzinfo=UTC) if start.tzinfo is None else start.astimezone(UTC)  # moto's naive times are UTC
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def install() -> None:
    global _original
    from moto.stepfunctions.parser.asl.eval.evaluation_details import ExecutionDetails
    from moto.stepfunctions.parser.backend.execution import Execution

    if _original is not None:
        return
    _original = Execution.get_start_execution_details

    def start_execution_details(self: Any) -> ExecutionDetails:
        details = _original(self)
        return ExecutionDetails(
            arn=details.arn,
            name=details.name,
            role_arn=details.role_arn,
            inpt=details.inpt,
            start_time=aws_start_time(details.start_time),
        )

    Execution.get_start_execution_details = start_execution_details  # type: ignore[method-assign]


def uninstall() -> None:
    global _original
    from moto.stepfunctions.parser.backend.execution import Execution

    if _original is not None:
        Execution.get_start_execution_details = _original  # type: ignore[method-assign]
    _original = None
