"""The container-image functions, checked without Docker: template.yaml points at Dockerfiles that exist, each
Dockerfile's statements are the ones that work on Lambda (base image, COPY sources, locked dependencies, handler),
and the locked dependency set installs, from wheels only, for the image's platform and fits Lambda's image limit.

The dependency install runs the Dockerfile's own `uv export` and `uv pip install` commands (read from its RUN
statement), retargeted from the image's task root to a local folder for the image's platform; the uv cache that
`make test` filled makes it quick.
"""

from __future__ import annotations

import fnmatch
import importlib
import json
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from shared_objects import GLIBC_LIBRARIES, libraries_from_the_system, shared_objects

from retrain.stack.template import load_template
from tests.runtime import AMAZON_LINUX_2023_GLIBC_MINOR, LAMBDA_BASE_IMAGE, PYTHON_VERSION

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = REPO_ROOT / "template.yaml"
UV = REPO_ROOT / ".tools" / "bin" / "uv"

# Lambda's own image of the project's Python (Amazon Linux 2023): the zip functions' runtime, with its runtime
# interface client and entry point.
BASE_IMAGE = LAMBDA_BASE_IMAGE
IMAGE_GLIBC_MINOR = AMAZON_LINUX_2023_GLIBC_MINOR
IMAGE_PLATFORM = f"x86_64-manylinux_2_{IMAGE_GLIBC_MINOR}"  # template.yaml: Architectures x86_64
IMAGE_PYTHON = f"/var/lang/bin/python{PYTHON_VERSION}"  # where Lambda's python images keep their Python
# Lambda's quota: a container image of at most 10 GB uncompressed, all layers together. The base image and its
# Python are a few hundred MB; keep 1 GiB of the 10 GB for them.
LAMBDA_IMAGE_LIMIT = 10 * 1000**3
BASE_ALLOWANCE = 1024**3
MIB = 1024 * 1024
# Amazon Linux 2023 package -> the libraries it provides that wheels may link to without carrying them.
AL2023_PACKAGE_LIBRARIES = {
    "libgcc": {"libgcc_s.so.1"},
    "libgomp": {"libgomp.so.1"},
    "libstdc++": {"libstdc++.so.6"},
    "zlib": {"libz.so.1"},
}
# numba's optional threading layers (TBB, OpenMP): numba falls back to its own when their libraries are absent.
OPTIONAL_EXTENSIONS = ("tbbpool.", "omppool.")


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, RUN, COPY, ...
    arguments: str


def parse_dockerfile(path: Path) -> list[Instruction]:
    """Instructions with backslash continuations joined and comment lines dropped (enough for these files)."""
    instructions: list[Instruction] = []
    pending = ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, arguments = (pending + stripped).partition(" ")
        instructions.append(Instruction(keyword.upper(), " ".join(arguments.split())))
        pending = ""
    assert not pending, f"{path}: a continuation line ends the file"
    return instructions


def _exec_form(instruction: Instruction) -> list[str]:
    """CMD/ENTRYPOINT in JSON form: the only form that passes arguments without a shell."""
    value = json.loads(instruction.arguments)
    assert isinstance(value, list) and all(isinstance(item, str) for item in value), instruction
    return value


def _resources() -> dict[str, dict[str, Any]]:
    return load_template(TEMPLATE)["Resources"]


IMAGE_FUNCTIONS = sorted(
    name
    for name, resource in _resources().items()
    if resource["Type"] == "AWS::Serverless::Function" and resource["Properties"].get("PackageType") == "Image"
)


def _dockerfile_of(function: str) -> Path:
    metadata = _resources()[function]["Metadata"]
    return TEMPLATE.parent / metadata["DockerContext"] / metadata["Dockerfile"]


DOCKERFILES = sorted({*REPO_ROOT.glob("functions/*/Dockerfile")})


def _id(path: Path) -> str:
    return str(path.relative_to(REPO_ROOT))


def _single(instructions: list[Instruction], keyword: str) -> Instruction:
    found = [instruction for instruction in instructions if instruction.keyword == keyword]
    assert len(found) == 1, f"expected one {keyword}, found {len(found)}"
    return found[0]


def _handler_is_importable(handler: str) -> None:
    module, _, attribute = handler.rpartition(".")
    assert module, f"{handler!r} is not module.attribute"
    assert callable(getattr(importlib.import_module(module), attribute, None)), f"{handler}: no callable {attribute}"


def _dockerignore_patterns() -> list[str]:
    path = REPO_ROOT / ".dockerignore"
    lines = [line.strip() for line in path.read_text().splitlines()] if path.exists() else []
    return [line for line in lines if line and not line.startswith("#")]


def _ignored_by_docker(relative: str, patterns: list[str]) -> bool:
    """Docker's rule for these patterns: the last pattern matching the path, or one of its parent folders, wins."""
    parts = relative.split("/")
    candidates = ["/".join(parts[: index + 1]) for index in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        glob = pattern.removeprefix("!").strip("/")
        if any(fnmatch.fnmatchcase(candidate, glob) for candidate in candidates):
            ignored = not negated
    return ignored


def _copy_sources(instructions: list[Instruction]) -> list[str]:
    """Sources of the COPY statements that read the build context (not those copying from another image)."""
    sources: list[str] = []
    for instruction in instructions:
        if instruction.keyword != "COPY":
            continue
        words = instruction.arguments.split()
        if any(word.startswith("--from=") for word in words):
            continue
        operands = [word for word in words if not word.startswith("--")]
        sources.extend(operands[:-1])
    return sources


# template.yaml -> Dockerfiles


def test_template_has_image_functions() -> None:
    """Guards the parametrisation below: an empty list would pass every check vacuously."""
    assert IMAGE_FUNCTIONS
    assert DOCKERFILES


@pytest.mark.parametrize("function", IMAGE_FUNCTIONS)
def test_image_function_points_at_a_dockerfile_in_the_repository(function: str) -> None:
    resource = _resources()[function]
    metadata = resource["Metadata"]
    assert metadata["DockerContext"] == ".", "the Dockerfiles COPY common/ and functions/ from the repository root"
    assert _dockerfile_of(function).is_file(), f"{function}: {metadata['Dockerfile']} does not exist"
    assert _dockerfile_of(function) in DOCKERFILES
    assert metadata.get("DockerTag"), f"{function}: sam build needs a DockerTag"
    assert not {"Runtime", "Handler", "Layers", "CodeUri"} & set(resource["Properties"]), "zip-only properties"


@pytest.mark.parametrize("function", IMAGE_FUNCTIONS)
def test_image_function_command_names_a_handler_the_image_ships(function: str) -> None:
    command = _resources()[function]["Properties"]["ImageConfig"]["Command"]
    assert len(command) == 1, "one handler, passed to the runtime interface client"
    handler = command[0]
    _handler_is_importable(handler)
    top_package = handler.split(".")[0]
    copied = {source.rstrip("/") for source in _copy_sources(parse_dockerfile(_dockerfile_of(function)))}
    assert top_package in copied, f"{function}: {handler} lives in {top_package}/, which the image does not copy"


# The Dockerfiles' statements


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=_id)
def test_base_image_is_lambdas_python_image_of_the_projects_python(dockerfile: Path) -> None:
    instructions = parse_dockerfile(dockerfile)
    assert _single(instructions, "FROM").arguments == BASE_IMAGE
    runs = " ".join(instruction.arguments for instruction in instructions if instruction.keyword == "RUN")
    assert not re.search(r"dnf install[^&]* python3", runs), "the base's Python, not a second one"
    assert not re.search(r"\buv venv\b", runs), "the base's Python, not a venv: the runtime imports from the task root"
    assert _option(_install_steps(dockerfile).install, "--python") == IMAGE_PYTHON
    assert not [i for i in instructions if i.keyword == "ENTRYPOINT"], "the base's entry point runs its runtime client"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=_id)
def test_copy_sources_exist_and_reach_the_build_context(dockerfile: Path) -> None:
    sources = _copy_sources(parse_dockerfile(dockerfile))
    assert sources
    patterns = _dockerignore_patterns()
    for source in sources:
        path = REPO_ROOT / source
        assert path.exists(), f"COPY {source}: not in the repository"
        files = [path] if path.is_file() else [file for file in path.rglob("*.py") if "__pycache__" not in file.parts]
        assert files, f"COPY {source}: nothing to copy"
        for file in files:
            relative = file.relative_to(REPO_ROOT).as_posix()
            assert not _ignored_by_docker(relative, patterns), f"{relative} is excluded by .dockerignore"


def test_dockerignore_keeps_the_local_state_out_of_the_build_context() -> None:
    """The context is the repository root: without these exclusions every build sends .venv/ and .tools/."""
    patterns = _dockerignore_patterns()
    for local_state in (".venv/bin/python", ".tools/bin/uv", ".local/x", ".git/HEAD", "common/__pycache__/x.pyc"):
        assert _ignored_by_docker(local_state, patterns), local_state
    assert not _ignored_by_docker("common/settings.py", patterns)


def test_dockerignore_matcher_follows_dockers_last_match_rule() -> None:
    patterns = ["*", "!common", "**/__pycache__"]
    assert _ignored_by_docker("README.md", patterns)
    assert not _ignored_by_docker("common/a.py", patterns)
    assert _ignored_by_docker("common/__pycache__/a.pyc", patterns)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=_id)
def test_caches_go_to_lambdas_only_writable_folder(dockerfile: Path) -> None:
    environment = " ".join(i.arguments for i in parse_dockerfile(dockerfile) if i.keyword == "ENV")
    for variable in ("NUMBA_CACHE_DIR", "MPLCONFIGDIR"):
        assert re.search(rf"\b{variable}=/tmp/", environment), f"{variable} must point into /tmp"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=_id)
def test_cmd_names_an_importable_handler(dockerfile: Path) -> None:
    (handler,) = _exec_form(_single(parse_dockerfile(dockerfile), "CMD"))
    _handler_is_importable(handler)


@dataclass(frozen=True)
class InstallSteps:
    export: list[str]  # `uv export ...` as the Dockerfile runs it
    install: list[str]  # `uv pip install ...` as the Dockerfile runs it


def _install_steps(dockerfile: Path) -> InstallSteps:
    """The one RUN statement that exports the lock and installs it, split into its `&&` commands."""
    runs = [i.arguments for i in parse_dockerfile(dockerfile) if i.keyword == "RUN" and "uv export" in i.arguments]
    assert len(runs) == 1, "one RUN exports the lock and installs it"
    commands = [shlex.split(command) for command in runs[0].split("&&")]
    (export,) = [command for command in commands if command[:2] == ["uv", "export"]]
    (install,) = [command for command in commands if command[:3] == ["uv", "pip", "install"]]
    return InstallSteps(export, install)


def _option(command: list[str], name: str) -> str:
    assert command.count(name) == 1, f"{name} once in {shlex.join(command)}"
    return command[command.index(name) + 1]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=_id)
def test_dependencies_are_installed_from_the_lock_file(dockerfile: Path) -> None:
    instructions = parse_dockerfile(dockerfile)
    steps = _install_steps(dockerfile)
    assert "--frozen" in steps.export, "exactly uv.lock's resolution, never a fresh one"
    assert {"--no-dev", "--no-emit-project"} <= set(steps.export)
    assert _option(steps.export, "--no-group") == "local"
    assert "--group" not in steps.export, "the base image brings the runtime interface client"
    assert _option(steps.install, "--target") == "${LAMBDA_TASK_ROOT}", "first on the runtime's sys.path"
    assert {"--require-hashes", "--no-deps"} <= set(steps.install)
    assert _option(steps.install, "--only-binary") == ":all:", "no source builds in the image"
    assert _option(steps.install, "--requirement") == _option(steps.export, "--output-file")
    assert "--compile-bytecode" in steps.install, "a read-only file system: no .pyc written at cold start"
    everything = " ".join(instruction.arguments for instruction in instructions)
    assert everything.count("pip install") == 1, "nothing installed beside the locked set"
    (uv_copy,) = [i.arguments for i in instructions if i.keyword == "COPY" and "astral-sh/uv:" in i.arguments]
    makefile_uv = re.search(r"^UV_VERSION := (\S+)$", (REPO_ROOT / "Makefile").read_text(), re.MULTILINE)
    assert makefile_uv and f"astral-sh/uv:{makefile_uv[1]} " in uv_copy, "the uv the Makefile pins"


def test_dockerfiles_install_the_same_dependency_set() -> None:
    """One install measured below stands for both images."""
    assert len({tuple(_install_steps(dockerfile).export) for dockerfile in DOCKERFILES}) == 1


# The locked dependency set, installed for the image's platform


@dataclass(frozen=True)
class ImageInstall:
    requirements: str  # the exported requirements file's text
    site_packages: Path


def _exported_and_installed(dockerfile: Path, workdir: Path) -> ImageInstall:
    steps = _install_steps(dockerfile)
    project = workdir / "lock"
    project.mkdir()
    for name in ("pyproject.toml", "uv.lock"):  # all the image's export sees (COPY pyproject.toml uv.lock)
        shutil.copy(REPO_ROOT / name, project / name)
    requirements = workdir / "requirements.txt"
    export = _retarget(steps.export, {"--project": str(project), "--output-file": str(requirements)})
    result = subprocess.run([str(UV), *export[1:]], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{shlex.join(export)}\n{result.stderr}"
    site_packages = workdir / "site-packages"
    install = [
        *_retarget(
            steps.install, {"--python": None, "--target": str(site_packages), "--requirement": str(requirements)}
        ),
        "--python-platform",
        IMAGE_PLATFORM,
        "--python-version",
        PYTHON_VERSION,
    ]
    # The image keeps no cache (here the warm uv cache saves the downloads) and compiles bytecode (measured once:
    # +190 MB, 35 s CPU here on Python 3.13; not worth the wait in every test run, the size limit leaves a wide margin).
    install.remove("--no-cache")
    install.remove("--compile-bytecode")
    result = subprocess.run([str(UV), *install[1:]], capture_output=True, text=True, timeout=540)
    assert result.returncode == 0, f"the locked set does not install for {IMAGE_PLATFORM} from wheels\n{result.stderr}"
    return ImageInstall(requirements.read_text(), site_packages)


def _retarget(command: list[str], options: dict[str, str | None]) -> list[str]:
    """The command with each named option's value replaced (None: the option dropped)."""
    retargeted = list(command)
    for name, value in options.items():
        index = retargeted.index(name)
        if value is None:
            del retargeted[index : index + 2]
        else:
            retargeted[index + 1] = value
    return retargeted


@pytest.fixture(scope="session")
def image_install(tmp_path_factory: pytest.TempPathFactory) -> ImageInstall:
    if not UV.exists():
        pytest.fail(f"{UV.relative_to(REPO_ROOT)} missing: `make setup` installs it")
    return _exported_and_installed(DOCKERFILES[0], tmp_path_factory.mktemp("image"))


def _exported_names(requirements: str) -> set[str]:
    return {match[1].lower() for match in re.finditer(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==", requirements, re.MULTILINE)}


def test_image_dependencies_are_the_runtime_set(image_install: ImageInstall) -> None:
    names = _exported_names(image_install.requirements)
    assert {"mlflow", "lightgbm", "xgboost-cpu", "fastapi", "mangum"} <= names
    assert "awslambdaric" not in names, "the base image's runtime interface client is the one that runs"
    assert not names & {"moto", "pytest", "ruff", "cfn-lint", "hypothesis", "evidently"}, "dev/local/bench groups"
    assert "retrain" not in names, "the project itself is copied as source, not installed"


def test_image_dependencies_fit_lambdas_image_limit(
    image_install: ImageInstall, packaging_report: dict[str, str]
) -> None:
    size = sum(path.stat().st_size for path in image_install.site_packages.rglob("*") if path.is_file())
    for dockerfile in DOCKERFILES:
        packaging_report[f"{_id(dockerfile)} dependencies ({IMAGE_PLATFORM})"] = (
            f"{size:>12,} bytes ({size / MIB:.2f} MiB) + the base image and its Python {PYTHON_VERSION}"
        )
    assert size + BASE_ALLOWANCE < LAMBDA_IMAGE_LIMIT


def test_image_binaries_run_on_amazon_linux_2023(image_install: ImageInstall) -> None:
    objects = shared_objects(image_install.site_packages)
    assert objects, "no shared objects: wrong directory?"
    too_new = {
        str(item.path.relative_to(image_install.site_packages)): f"2.{item.newest_glibc_minor}"
        for item in objects
        if item.newest_glibc_minor > IMAGE_GLIBC_MINOR
    }
    assert too_new == {}, f"these need a newer glibc than Amazon Linux 2023's 2.{IMAGE_GLIBC_MINOR}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=_id)
def test_image_installs_the_system_libraries_the_wheels_link_to(image_install: ImageInstall, dockerfile: Path) -> None:
    """The base is a minimal Amazon Linux 2023: every library a wheel needs and does not carry is dnf-installed."""
    runs = [i.arguments.split() for i in parse_dockerfile(dockerfile) if i.keyword == "RUN" and "dnf" in i.arguments]
    (words,) = runs
    start = words.index("install") + 1
    packages = set(words[start : words.index("&&", start)]) - {"-y"}
    available = GLIBC_LIBRARIES.union(*(AL2023_PACKAGE_LIBRARIES.get(package, set()) for package in packages))
    objects = [
        item
        for item in shared_objects(image_install.site_packages)
        if not item.path.name.startswith(OPTIONAL_EXTENSIONS)
    ]
    missing = {
        library: sorted(str(path.relative_to(image_install.site_packages)) for path in needing)[:3]
        for library, needing in libraries_from_the_system(objects).items()
        if library not in available
    }
    assert missing == {}, f"{_id(dockerfile)}: dnf-install the packages providing these (AL2023_PACKAGE_LIBRARIES)"
