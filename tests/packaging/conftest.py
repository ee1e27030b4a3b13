"""Packaging checks: what they measured (package and image sizes) is printed at the end of the run."""

from __future__ import annotations

import pytest

_MEASURED = pytest.StashKey[dict[str, str]]()


@pytest.fixture(scope="session")
def packaging_report(request: pytest.FixtureRequest) -> dict[str, str]:
    """Name -> measured figure; tests fill it, the terminal summary prints it (CI logs keep the sizes)."""
    return request.config.stash.setdefault(_MEASURED, {})


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    measured = config.stash.get(_MEASURED, {})
    if not measured:
        return
    terminalreporter.section("Lambda packaging (measured)")
    width = max(len(name) for name in measured)
    for name, figure in measured.items():
        terminalreporter.write_line(f"{name:<{width}}  {figure}")
