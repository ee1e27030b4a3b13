"""The Lambda layer's pinned requirements match uv.lock (what the tests ran against is what ships)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
LAYER_REQUIREMENTS = REPO_ROOT / "layers" / "common" / "requirements.txt"
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==(?P<version>[^\s;#]+)")


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_lines() -> list[str]:
    lines = [line.split("#", 1)[0].strip() for line in LAYER_REQUIREMENTS.read_text().splitlines()]
    return [line for line in lines if line]


def _locked_versions() -> dict[str, set[str]]:
    """Name -> versions in uv.lock (a package can be locked at several versions for different markers)."""
    lock = tomllib.loads((REPO_ROOT / "uv.lock").read_text())
    versions: dict[str, set[str]] = {}
    for package in lock["package"]:
        if "version" in package:
            versions.setdefault(_normalise(package["name"]), set()).add(package["version"])
    return versions


def test_every_layer_requirement_is_pinned() -> None:
    lines = _requirement_lines()
    assert lines, "empty layer requirements"
    unpinned = [line for line in lines if not PIN.match(line)]
    assert unpinned == [], "layer requirements must be exact name==version pins"


@pytest.mark.parametrize("line", _requirement_lines())
def test_layer_pin_matches_uv_lock(line: str) -> None:
    match = PIN.match(line)
    assert match, line
    locked = _locked_versions()
    name = _normalise(match["name"])
    assert name in locked, f"{match['name']} is not in uv.lock"
    assert locked[name] == {match["version"]}, f"{line}: uv.lock has {sorted(locked[name])}"


def test_layer_pins_are_direct_dependencies() -> None:
    """The layer ships nothing pyproject.toml does not declare (direct dependencies are pinned there too)."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    declared = {}
    for requirement in project["project"]["dependencies"]:
        match = PIN.match(requirement)
        assert match, requirement
        declared[_normalise(match["name"])] = match["version"]
    for line in _requirement_lines():
        match = PIN.match(line)
        assert match
        assert declared.get(_normalise(match["name"])) == match["version"], line


def test_pin_parser_handles_extras_and_normalisation() -> None:
    match = PIN.match("aws-lambda-powertools[tracer]==3.37.0")
    assert match and match["name"] == "aws-lambda-powertools" and match["version"] == "3.37.0"
    assert _normalise("Pydantic_Settings") == "pydantic-settings"
    assert PIN.match("numpy>=2") is None
