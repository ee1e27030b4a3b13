"""The README documents what exists: every setting, the two commands CI and users run."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.settings import Settings, environment_names
from retrain.stack.config import LocalStackConfig

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


@pytest.mark.parametrize(
    ("model", "field"),
    [(Settings, name) for name in Settings.model_fields]
    + [(LocalStackConfig, n) for n in LocalStackConfig.model_fields],
)
def test_every_setting_is_documented(model, field):
    for variable in environment_names(model, field).split(" or "):
        assert f"`{variable}`" in README, f"{variable} is missing from the README's configuration tables"


def test_ci_runs_the_readme_test_command():
    command = [
        line
        for line in (ROOT / ".ci/run").read_text().splitlines()
        if line and not line.startswith(("#", "set ", "cd "))
    ]
    assert command == ["make test"]
    assert "make test" in README and "make demo" in README


def test_the_readme_shows_the_last_benchmark_report():
    """`make bench` writes bench/RESULTS.md and the same report into the README: they never disagree."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_report", ROOT / "bench" / "report.py")
    assert spec is not None and spec.loader is not None
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)
    results = (ROOT / "bench" / "RESULTS.md").read_text()
    assert report.readme_section(results) in README
    assert report.splice(README, results) == README
    with pytest.raises(ValueError, match="markers"):
        report.splice("no markers here", results)
