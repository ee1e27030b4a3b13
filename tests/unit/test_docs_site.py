"""The docs site builds strictly, and its reference pages are the code's own word.

`mkdocs build --strict` fails on a broken link, a missing anchor or a page left out of the nav; the
reference pages are rendered from the settings class, the CLI parser, the OpenAPI document and the S3 key
functions at build time, so these tests check the renderers follow what they are given (a changed default
shows on the page) and cover everything there is (every setting, command, path, key, alarm).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import Field, create_model

from common.core import keys
from common.core.settings import Interval, Settings
from retrain.cli import build_parser
from retrain.reference_docs import api_page, cli_page, s3_layout_page, settings_page
from retrain.stack.config import LocalStackConfig
from retrain.stack.template import load_template

ROOT = Path(__file__).resolve().parents[2]


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    mkdocs = Path(sys.executable).with_name("mkdocs")
    result = subprocess.run(
        [str(mkdocs), "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    for page in ("reference/settings", "reference/cli", "reference/api", "reference/s3-layout", "benchmarks"):
        assert (tmp_path / "site" / page / "index.html").is_file(), page
    assert (tmp_path / "site" / "reference" / "openapi.json").is_file()
    # the benchmarks page includes bench/RESULTS.md itself: its first table's title is there
    first_section = next(
        line for line in (ROOT / "bench/RESULTS.md").read_text().splitlines() if line.startswith("## ")
    )
    html = (tmp_path / "site" / "benchmarks" / "index.html").read_text()
    assert first_section[3:].split("(")[0].strip() in html


def _row(page: str, variable: str) -> str:
    return next(line for line in page.splitlines() if line.startswith(f"| `{variable}`"))


def test_a_changed_default_changes_the_settings_page() -> None:
    changed = create_model(
        "ChangedSettings",
        __base__=Settings,
        interval=(Interval, Field("1h", description="Bar interval, changed in a copy.")),
        prediction_window=(int, Field(24, ge=2, le=48, description="Label horizon h, changed.")),
    )
    before, after = settings_page(Settings, LocalStackConfig), settings_page(changed, LocalStackConfig)
    assert "| `1d` |" in _row(before, "RETRAIN_INTERVAL")
    assert "| `1h` |" in _row(after, "RETRAIN_INTERVAL")
    assert "changed in a copy" in _row(after, "RETRAIN_INTERVAL")
    assert "| `24` | >= 2; <= 48 |" in _row(after, "RETRAIN_PREDICTION_WINDOW")


def test_every_setting_is_on_the_settings_page() -> None:
    page = settings_page(Settings, LocalStackConfig)
    for model in (Settings, LocalStackConfig):
        prefix = model.model_config.get("env_prefix", "")
        for name, field in model.model_fields.items():
            alias = field.validation_alias
            variable = alias if isinstance(alias, str) else f"{prefix}{name}".upper()
            assert f"`{variable.upper()}`" in page, variable
            if field.description:
                assert " ".join(field.description.split()).replace("|", "\\|") in page, name


def test_every_command_and_option_is_on_the_cli_page() -> None:
    parser = build_parser()
    page = cli_page(parser)
    commands = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices
    assert commands
    for name, subparser in commands.items():
        assert f"## `retrain {name}`" in page
        for action in subparser._actions:
            for option in action.option_strings:
                assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", page), f"retrain {name} {option}"


def test_every_api_operation_is_on_the_api_page() -> None:
    from common.serving.api import create_app

    openapi = create_app().openapi()
    page = api_page(openapi)
    for path, operations in openapi["paths"].items():
        for method in operations:
            assert f"## `{method.upper()} {path}`" in page
    for original in ("/models", "/prediction"):
        assert original in openapi["paths"]


def test_every_key_function_is_on_the_s3_layout_page() -> None:
    page = s3_layout_page(keys)
    functions = [n for n, f in vars(keys).items() if callable(f) and getattr(f, "__module__", "") == keys.__name__]
    assert functions
    for name in functions:
        if not name.startswith("_"):
            assert f"| `{name}` |" in page
    assert "`ohlcv/interval=1d/symbol=BTC/bars.csv`" in page


def test_every_alarm_has_a_runbook_section_and_every_section_an_alarm() -> None:
    template = load_template(ROOT / "template.yaml")
    alarms = {name for name, r in template["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    runbook = (ROOT / "docs/operations/alarms.md").read_text()
    sections = set(re.findall(r"^## `(\w+)`$", runbook, flags=re.MULTILINE))
    assert alarms, "the template declares alarms"
    assert alarms - sections == set(), "alarms without a runbook section"
    assert sections - alarms == set(), "runbook sections for alarms the template does not have"


@pytest.mark.parametrize("name", ["LICENSE", "CONTRIBUTING.md", "mkdocs.yml"])
def test_repository_root_files(name: str) -> None:
    assert (ROOT / name).is_file()


def test_the_license_file_matches_pyproject() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'license = { text = "Apache-2.0" }' in pyproject
    assert "Apache License\n                           Version 2.0" in (ROOT / "LICENSE").read_text()
