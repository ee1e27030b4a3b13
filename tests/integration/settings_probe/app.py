"""A function added to a copy of template.yaml by tests/integration/test_stack_configuration.py: it answers
with the settings a handler of the local stack reads, so the test sees them from inside the stack."""

from __future__ import annotations

from typing import Any

from common.core.settings import load_settings


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return load_settings().model_dump(mode="json")
