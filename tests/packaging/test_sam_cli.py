"""The SAM CLI's own checks, run without Docker: `sam validate --lint`, and `sam build` of every zip resource
(the functions and the layer they run on), whose output is then held to Lambda's limits.

aws-sam-cli lives in its own venv (.tools/sam/, made by `make sam-cli`, a prerequisite of `make test`): it pins
its own boto3 and click. The image functions need Docker to build, so `sam build` runs on a copy of template.yaml
without them (written to a temporary directory, paths resolved against the repository with --base-dir); the
container images are checked in test_container_images.py.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from shared_objects import GLIBC_LIBRARIES, libraries_from_the_system, shared_objects
from wheel_tags import installed_wheel_tags, tag_runs_on

from retrain.stack.template import load_template
from tests.runtime import AMAZON_LINUX_2023_GLIBC_MINOR, LAMBDA_RUNTIME, PYTHON_MINOR

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = REPO_ROOT / "template.yaml"
SAM = REPO_ROOT / ".tools" / "sam" / "bin" / "sam"
SAM_REQUIREMENTS = Path(__file__).with_name("requirements-sam-cli.txt")

MIB = 1024 * 1024
# Lambda's quota for a zip function: the unzipped deployment package plus all its layers, 262,144,000 bytes.
LAMBDA_UNZIPPED_LIMIT = 250 * MIB
# Lambda's python3.13 runtime is Amazon Linux 2023: no shared object may need a newer glibc than its 2.34, nor a
# system library beyond glibc's and the C++/compression ones that runtime has (manylinux's allowed system libraries).
PYTHON_RUNTIME_LIBRARIES = GLIBC_LIBRARIES | {"libgcc_s.so.1", "libstdc++.so.6", "libz.so.1"}


def _pinned_sam_cli_version() -> str:
    match = re.search(r"^aws-sam-cli==(\S+)", SAM_REQUIREMENTS.read_text(), re.MULTILINE)
    assert match, f"{SAM_REQUIREMENTS.name} pins no aws-sam-cli"
    return match[1]


def _resources() -> dict[str, dict[str, Any]]:
    return load_template(TEMPLATE)["Resources"]


def _is_zip_function(resource: dict[str, Any]) -> bool:
    return resource["Type"] == "AWS::Serverless::Function" and resource["Properties"].get("PackageType") != "Image"


ZIP_FUNCTIONS = sorted(name for name, resource in _resources().items() if _is_zip_function(resource))
LAYERS = sorted(name for name, resource in _resources().items() if resource["Type"] == "AWS::Serverless::LayerVersion")
IMAGES = sorted(
    name
    for name, resource in _resources().items()
    if resource["Type"] == "AWS::Serverless::Function" and not _is_zip_function(resource)
)


def _function_layers(function: str) -> list[str]:
    """The template's own layers the function runs on (Globals' and its own, as SAM merges them)."""
    template = load_template(TEMPLATE)
    refs = [
        *template.get("Globals", {}).get("Function", {}).get("Layers", []),
        *template["Resources"][function]["Properties"].get("Layers", []),
    ]
    return [ref["Ref"] for ref in refs if isinstance(ref, dict) and ref.get("Ref") in LAYERS]


def _unzipped_size(directory: Path) -> int:
    """What Lambda counts: every file's bytes once unpacked (a zip stores a symlink's target's content)."""
    return sum(path.stat().st_size for path in directory.rglob("*") if path.is_file())


def _sam_environment() -> dict[str, str]:
    """sam without telemetry or the caller's AWS settings. sam build runs `python3.13 -m pip` from PATH (the
    runtime's name): the SAM venv's own python3.13 (which has pip, unlike this venv or a bare system Python) goes
    first, this venv not at all.
    """
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AWS_", "RETRAIN_", "MLFLOW_")) and name != "VIRTUAL_ENV"
    }
    this_venv = str(Path(sys.prefix) / "bin")
    inherited = [entry for entry in environment.get("PATH", "").split(os.pathsep) if entry and entry != this_venv]
    environment["PATH"] = os.pathsep.join([str(SAM.parent), *inherited])
    environment["SAM_CLI_TELEMETRY"] = "0"
    return environment


def _run_sam(*arguments: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SAM), *arguments], cwd=cwd, env=_sam_environment(), capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="session")
def sam_cli() -> Path:
    if not SAM.exists():
        reason = f"{SAM.relative_to(REPO_ROOT)} is not installed: run `make sam-cli` (`make test` does)"
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the SAM checks: {reason}")
        pytest.skip(reason)
    return SAM


@dataclass(frozen=True)
class ZipBuild:
    directory: Path  # sam build's --build-dir: one folder per built resource
    log: str


@pytest.fixture(scope="session")
def zip_build(sam_cli: Path, tmp_path_factory: pytest.TempPathFactory) -> ZipBuild:
    workdir = tmp_path_factory.mktemp("sam-build")
    template = load_template(TEMPLATE)
    template["Resources"] = {name: resource for name, resource in template["Resources"].items() if name not in IMAGES}
    (workdir / "template.json").write_text(json.dumps(template, indent=1))
    build_dir = workdir / "build"
    result = _run_sam(
        "build",
        "--template-file",
        str(workdir / "template.json"),
        "--base-dir",
        str(REPO_ROOT),
        "--build-dir",
        str(build_dir),
        cwd=workdir,
        timeout=540,
    )
    log = f"sam build exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert result.returncode == 0, log
    return ZipBuild(build_dir, log)


def test_template_lists_zip_functions_and_layers() -> None:
    """Guards the parametrisation below: an empty list would pass every size check vacuously."""
    assert ZIP_FUNCTIONS and LAYERS
    assert all(_function_layers(function) for function in ZIP_FUNCTIONS), "a zip function without the common layer"


def test_sam_cli_is_the_pinned_release(sam_cli: Path) -> None:
    result = _run_sam("--version", cwd=REPO_ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["SAM", "CLI,", "version", _pinned_sam_cli_version()]


def test_template_passes_sam_validate_lint(sam_cli: Path) -> None:
    result = _run_sam("validate", "--lint", "--region", "us-east-1", "--template-file", str(TEMPLATE), cwd=REPO_ROOT)
    assert result.returncode == 0, f"sam validate --lint exit {result.returncode}\n{result.stdout}\n{result.stderr}"


def test_sam_validate_lint_reports_a_broken_template(sam_cli: Path, tmp_path: Path) -> None:
    """Proves the validation really runs (a no-op invocation would pass every template)."""
    broken = tmp_path / "template.yaml"
    broken.write_text(
        "AWSTemplateFormatVersion: '2010-09-09'\n"
        "Transform: AWS::Serverless-2016-10-31\n"
        "Resources:\n"
        "  Bucket:\n"
        "    Type: AWS::S3::Bucket\n"
        "    Properties:\n"
        "      NoSuchProperty: 1\n"
    )
    result = _run_sam("validate", "--lint", "--region", "us-east-1", "--template-file", str(broken), cwd=tmp_path)
    assert result.returncode != 0
    assert "NoSuchProperty" in result.stdout + result.stderr


def test_sam_build_builds_every_zip_resource(zip_build: ZipBuild) -> None:
    built = {path.name for path in zip_build.directory.iterdir() if path.is_dir()}
    assert set(ZIP_FUNCTIONS) | set(LAYERS) <= built, zip_build.log
    for layer in LAYERS:
        assert (zip_build.directory / layer / "python").is_dir(), f"{layer}: Lambda puts /opt/python on sys.path"


@pytest.mark.parametrize("function", ZIP_FUNCTIONS)
def test_function_and_its_layers_fit_lambdas_unzipped_limit(
    zip_build: ZipBuild, function: str, packaging_report: dict[str, str]
) -> None:
    sizes = {name: _unzipped_size(zip_build.directory / name) for name in [function, *_function_layers(function)]}
    total = sum(sizes.values())
    for name, size in sizes.items():
        packaging_report[f"{name} (sam build, unzipped)"] = f"{size:>12,} bytes ({size / MIB:.2f} MiB)"
    packaging_report[f"{function} + its layers"] = (
        f"{total:>12,} bytes ({total / MIB:.2f} MiB of Lambda's {LAMBDA_UNZIPPED_LIMIT // MIB} MiB)"
    )
    assert total < LAMBDA_UNZIPPED_LIMIT, f"{function}: {sizes} add up to {total / MIB:.1f} MiB"


@pytest.mark.parametrize("layer", LAYERS)
def test_layer_leaves_boto3_to_the_runtime(zip_build: ZipBuild, layer: str) -> None:
    """Lambda's python3.13 runtime ships boto3; a copy in the layer would only spend the 250 MiB."""
    shipped = {path.name for path in (zip_build.directory / layer / "python").iterdir()}
    assert not shipped & {"boto3", "s3transfer"}


@pytest.mark.parametrize("layer", LAYERS)
def test_layer_binaries_run_on_amazon_linux_2023(zip_build: ZipBuild, layer: str) -> None:
    """sam build chose wheels for glibc 2.34 at most; the shared objects' glibc versions and libraries prove it."""
    objects = shared_objects(zip_build.directory / layer)
    assert objects, f"{layer}: no shared objects found (numpy ships some): wrong directory?"
    too_new = {
        str(item.path.relative_to(zip_build.directory)): f"2.{item.newest_glibc_minor}"
        for item in objects
        if item.newest_glibc_minor > AMAZON_LINUX_2023_GLIBC_MINOR
    }
    assert too_new == {}, f"these need a newer glibc than Amazon Linux 2023's 2.{AMAZON_LINUX_2023_GLIBC_MINOR}"
    missing = set(libraries_from_the_system(objects)) - PYTHON_RUNTIME_LIBRARIES
    assert missing == set(), f"{layer}: libraries Lambda's {LAMBDA_RUNTIME} runtime does not have"


@pytest.mark.parametrize("layer", LAYERS)
def test_layer_wheels_are_for_the_runtimes_python_and_glibc(zip_build: ZipBuild, layer: str) -> None:
    """Every wheel sam build put in the layer was built for the project's CPython (or pure Python) and a manylinux
    the runtime's glibc runs: a layer built for another Python imports its extensions nowhere."""
    tags = installed_wheel_tags(zip_build.directory / layer / "python")
    (numpy,) = [wheel_tags for name, wheel_tags in tags.items() if name.startswith("numpy-")]
    assert any(f"cp3{PYTHON_MINOR}-cp3{PYTHON_MINOR}-manylinux" in tag for tag in numpy), numpy  # a binary wheel
    wrong = {
        name: wheel_tags
        for name, wheel_tags in tags.items()
        if not any(tag_runs_on(tag, PYTHON_MINOR, AMAZON_LINUX_2023_GLIBC_MINOR) for tag in wheel_tags)
    }
    assert wrong == {}, f"{layer}: wheels not for CPython 3.{PYTHON_MINOR} on glibc 2.{AMAZON_LINUX_2023_GLIBC_MINOR}"


@pytest.fixture(scope="session")
def runtime_boto3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Stands in for the boto3 Lambda's runtime provides: this venv's boto3 and s3transfer, and nothing else."""
    import boto3
    import s3transfer

    directory = tmp_path_factory.mktemp("lambda-runtime")
    for package in (boto3, s3transfer):
        package_dir = Path(package.__file__).parent
        (directory / package_dir.name).symlink_to(package_dir, target_is_directory=True)
    return directory


@pytest.mark.parametrize("function", ZIP_FUNCTIONS)
def test_built_function_imports_its_handler_from_its_package_and_layers(
    zip_build: ZipBuild, runtime_boto3: Path, function: str
) -> None:
    """The handler imports with nothing but what Lambda would give it: the built function directory, its layers'
    python/ and the runtime's boto3 (-I -S: no site-packages of this venv)."""
    module, attribute = _resources()[function]["Properties"]["Handler"].rsplit(".", 1)
    search_path = [
        str(zip_build.directory / function),
        *(str(zip_build.directory / layer / "python") for layer in _function_layers(function)),
        str(runtime_boto3),
    ]
    probe = (
        "import importlib, sys\n"
        f"sys.path[:0] = {search_path!r}\n"
        f"handler = getattr(importlib.import_module({module!r}), {attribute!r})\n"
        "assert callable(handler), handler\n"
        "leaked = [m for m in sys.modules if m.split('.')[0] in {'retrain', 'moto', 'pytest'}]\n"
        "assert not leaked, leaked\n"
    )
    environment = {"PATH": os.environ.get("PATH", ""), "AWS_DEFAULT_REGION": "us-east-1"}
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", probe], env=environment, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"{function}: handler does not import from its package\n{result.stderr}"
