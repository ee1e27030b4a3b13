"""Importing the code must not read or validate settings, nor create AWS clients: Lambda cold starts,
the CLI's --help and test collection all import modules long before any configuration exists."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT

# Every module of common/ (found, not listed: a new one is covered the day it is added), the handlers and the CLI.
COMMON_MODULES = tuple(
    ".".join(path.relative_to(PROJECT_ROOT).with_suffix("").parts).removesuffix(".__init__")
    for path in sorted((PROJECT_ROOT / "common").rglob("*.py"))
)
MODULES = (
    *COMMON_MODULES,
    "functions.prepare_dataset.app",
    "functions.ingest.app",
    "functions.train_model.app",
    "functions.promote_model.app",
    "functions.trigger_checker.app",
    "functions.notify.app",
    "retrain.cli",
    "retrain.market",
    "retrain.train",
    "retrain.stack.embedded",
    "retrain.stack.template",
)

# Installed before the imports under test: any settings object or (non X-Ray) AWS client built while
# importing exits the interpreter with a message naming the side effect.
GUARDS = textwrap.dedent(
    """
    import botocore.session
    import pydantic_settings

    _create_client = botocore.session.Session.create_client

    def guarded_create_client(self, service_name, *args, **kwargs):
        # Powertools' module-level Tracer() makes aws_xray_sdk build its sampling client for the local
        # X-Ray daemon (explicit endpoint, empty credentials): library behaviour, not ours.
        if service_name == "xray":
            return _create_client(self, service_name, *args, **kwargs)
        raise SystemExit(f"import-time side effect: AWS client created for {service_name}")

    def guarded_settings_init(self, *args, **kwargs):
        raise SystemExit("import-time side effect: settings object built")

    botocore.session.Session.create_client = guarded_create_client
    pydantic_settings.BaseSettings.__init__ = guarded_settings_init
    """
)


def _run(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RETRAIN_", "MLFLOW_", "AWS_", "BOTO"))}
    env.update(
        {
            # Invalid settings: any import-time load_settings()/get_settings() would raise.
            "RETRAIN_PREDICTION_WINDOW": "-1",
            "RETRAIN_SYMBOLS": "lowercase",
            "MLFLOW_TRACKING_URI": "ftp://x",
            # No AWS credentials or configuration anywhere.
            "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
            "HOME": str(tmp_path),
        }
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,  # not the repo root: imports resolve through the installed package
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _report(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"


def test_import_with_invalid_settings_and_no_credentials(tmp_path: Path) -> None:
    result = _run(f"import {', '.join(MODULES)}", tmp_path)
    assert result.returncode == 0, _report(result)


def test_import_builds_no_settings_and_no_aws_client(tmp_path: Path) -> None:
    code = GUARDS + textwrap.dedent(
        f"""
        import {", ".join(MODULES)}
        from common.core.settings import get_settings
        assert get_settings.cache_info().currsize == 0, "get_settings() was called at import"
        """
    )
    result = _run(code, tmp_path)
    assert result.returncode == 0, _report(result)


@pytest.mark.parametrize(
    ("offence", "message"),
    [
        ("import boto3; boto3.client('s3', region_name='us-east-1')", "AWS client created for s3"),
        ("from common.aws.storage import S3ObjectStore; S3ObjectStore('b').client", "AWS client created for s3"),
        ("from common.core.settings import get_settings; get_settings()", "settings object built"),
    ],
)
def test_guards_detect_a_side_effect(tmp_path: Path, offence: str, message: str) -> None:
    """The guarded import test only means something if its guards fire: prove it on deliberate offenders."""
    result = _run(GUARDS + offence, tmp_path)
    assert result.returncode != 0, _report(result)
    assert message in result.stderr
