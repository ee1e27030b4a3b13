"""template.yaml passes cfn-lint (offline; the same check `sam validate --lint` runs)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
