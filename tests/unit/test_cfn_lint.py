"""template.yaml passes cfn-lint (offline; the same check `sam validate --lint` runs)."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

from tests.runtime import LAMBDA_RUNTIME, PYTHON_MINOR

REPO_ROOT = Path(__file__).resolve().parents[2]

# cfnlint has no __main__ module (`python -m cfnlint` fails); call the console script's entry point with
# this interpreter so the venv's cfn-lint is used whatever PATH says.
CFN_LINT = [sys.executable, "-c", "import sys; from cfnlint.runner import main; sys.exit(main())"]


def test_template_passes_cfn_lint() -> None:
    result = subprocess.run([*CFN_LINT, "template.yaml"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"cfn-lint exit {result.returncode}\n{result.stdout}\n{result.stderr}"


def test_cfn_lint_does_report_a_broken_template(tmp_path: Path) -> None:
    """Proves the invocation really lints (a wrong entry point would 'pass' everything)."""
    broken = tmp_path / "template.yaml"
    broken.write_text(
        "AWSTemplateFormatVersion: '2010-09-09'\n"
        "Resources:\n"
        "  Bucket:\n"
        "    Type: AWS::S3::Bucket\n"
        "    Properties:\n"
        "      NoSuchProperty: 1\n"
    )
    result = subprocess.run([*CFN_LINT, str(broken)], capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "NoSuchProperty" in result.stdout + result.stderr


def test_the_runtime_is_on_amazon_linux_2023_and_outlives_python_3_11() -> None:
    """Lambda's python3.11 and older run on Amazon Linux 2 (glibc 2.26) and python3.11 is deprecated on 2027-06-30;
    python3.12 and newer run on Amazon Linux 2023, whose glibc 2.34 the packaging checks hold the wheels to. The
    dates are cfn-lint's lifecycle data, the same its deprecation rules (E2531, W2531) read."""
    lifecycle = files("cfnlint.data.AdditionalSpecs").joinpath("LmbdRuntimeLifecycle.json").read_text()
    deprecated = {runtime: dates["deprecated"] for runtime, dates in json.loads(lifecycle).items()}
    assert PYTHON_MINOR >= 12, f"{LAMBDA_RUNTIME} runs on Amazon Linux 2"
    assert deprecated[LAMBDA_RUNTIME] > deprecated["python3.11"], f"{LAMBDA_RUNTIME}: {deprecated[LAMBDA_RUNTIME]}"
