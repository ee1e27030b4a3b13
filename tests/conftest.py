"""Shared test setup: every test starts from an environment without the caller's retrain/AWS config."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]

_ISOLATED_PREFIXES = ("RETRAIN_", "MLFLOW_", "AWS_")


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    """Tests never see a developer's RETRAIN_*/MLFLOW_*/AWS_* variables (nor their real AWS account).
    Integration tests keep those the session-scoped stack fixture set on purpose; unit tests see none."""
    keep = _stack_owned() if request.node.get_closest_marker("integration") else set()
    for name in list(os.environ):
        if name.startswith(_ISOLATED_PREFIXES) and name not in keep:
            monkeypatch.delenv(name)
    from common.settings import get_settings

    get_settings.cache_clear()


def _stack_owned() -> set[str]:
    return set(os.environ.get("_RETRAIN_TEST_STACK_VARS", "").split(","))
