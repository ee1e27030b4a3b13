"""checkov, the security scanner, on template.yaml: no failed check, and every check the template suppresses
(``Metadata: checkov: skip``) carries its reason.

checkov lives in its own venv (.tools/checkov/, made by `make checkov`, a prerequisite of `make test`): it pins
its own boto3. One run scans the template and broken copies of it, each missing one of the fixes checkov asked
for, so the scan is shown to catch what it is trusted with.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from retrain.stack.template import load_template

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = REPO_ROOT / "template.yaml"
CHECKOV = REPO_ROOT / ".tools" / "checkov" / "bin" / "checkov"

Template = dict[str, Any]


def _props(template: Template, logical_id: str) -> dict[str, Any]:
    return template["Resources"][logical_id]["Properties"]


def _no_access_log(t: Template) -> None:
    del _props(t, "DataBucket")["LoggingConfiguration"]


def _plain_alarm_topic(t: Template) -> None:
    del _props(t, "AlarmTopic")["KmsMasterKeyId"]


def _predictor_unbounded(t: Template) -> None:
    del _props(t, "PredictorFunction")["ReservedConcurrentExecutions"]


def _unexplained_skip(t: Template) -> None:
    t["Resources"]["IngestLogGroup"]["Metadata"]["checkov"]["skip"][0]["comment"] = ""


# name -> (breakage, the check_id it must fail or skip without reason, the resource)
BREAKAGES: dict[str, tuple[Callable[[Template], None], str, str]] = {
    "no_access_log": (_no_access_log, "CKV_AWS_18", "AWS::S3::Bucket.DataBucket"),
    "plain_alarm_topic": (_plain_alarm_topic, "CKV_AWS_26", "AWS::SNS::Topic.AlarmTopic"),
    "predictor_unbounded": (_predictor_unbounded, "CKV_AWS_115", "AWS::Serverless::Function.PredictorFunction"),
    "unexplained_skip": (_unexplained_skip, "CKV_AWS_158", "AWS::Logs::LogGroup.IngestLogGroup"),
}


def problems(report: dict[str, Any]) -> list[str]:
    """Failed checks, and suppressed ones without a reason, as ``check_id resource`` lines."""
    results = report["results"]
    found = [f"{c['check_id']} {c['resource']}: failed" for c in results.get("failed_checks", [])]
    found += [
        f"{c['check_id']} {c['resource']}: suppressed without a reason"
        for c in results.get("skipped_checks", [])
        if not str(c["check_result"].get("suppress_comment") or "").strip()
    ]
    found += [f"{error}: not parsed" for error in results.get("parsing_errors", [])]
    return found


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """checkov's JSON report per scanned file: ``template`` and each breakage by name."""
    if not CHECKOV.exists():
        reason = f"{CHECKOV.relative_to(REPO_ROOT)} is not installed: run `make checkov` (`make test` does)"
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the security scan: {reason}")
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("checkov")
    files = {"template": TEMPLATE}
    for name, (breakage, _, _) in BREAKAGES.items():
        broken = load_template(TEMPLATE)
        breakage(broken)
        files[name] = folder / f"{name}.yaml"
        files[name].write_text(yaml.safe_dump(broken, sort_keys=False))
    arguments = [str(CHECKOV), "--framework", "cloudformation", "--skip-download", "--output", "json"]
    for path in files.values():
        arguments += ["--file", str(path)]
    # --skip-download: no call to Prisma Cloud for guidelines (offline CI); exit code 1 means failed checks.
    run = subprocess.run(arguments, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode in (0, 1), run.stderr[-3000:]
    output = json.loads(run.stdout)
    documents = output if isinstance(output, list) else [output]
    # One report per framework; the results of all files are in it, each check naming its file.
    by_file: dict[str, dict[str, Any]] = {name: {"results": {}} for name in files}
    names = {path.name: name for name, path in files.items()}
    for document in documents:
        for kind, checks in document["results"].items():
            for check in checks:
                file_name = Path(check["file_path"] if isinstance(check, dict) else check).name
                by_file[names[file_name]]["results"].setdefault(kind, []).append(check)
    return by_file


def test_checkov_finds_nothing_unexplained_in_the_template(reports: dict[str, dict[str, Any]]) -> None:
    assert problems(reports["template"]) == []
    assert reports["template"]["results"].get("passed_checks"), "checkov scanned nothing"


@pytest.mark.parametrize("name", BREAKAGES)
def test_checkov_catches_a_broken_template(reports: dict[str, dict[str, Any]], name: str) -> None:
    _, check_id, resource = BREAKAGES[name]
    assert any(line.startswith(f"{check_id} {resource}:") for line in problems(reports[name])), problems(reports[name])
