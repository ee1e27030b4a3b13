"""The container-image functions, checked without Docker: template.yaml points at Dockerfiles that exist, each
Dockerfile's statements are the ones that work on Lambda (base image, COPY sources, locked dependencies, handler),
and each image's locked dependency set installs, from wheels only, for the image's platform and fits Lambda's
image limit. Two images: functions/image/Dockerfile (the trainer steps, trigger checker, batch predictions,
backtest) and the predictor's lean one, functions/predictor/Dockerfile (what scoring needs), whose set alone is
shown to import and answer.

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
import sys
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
    assert not _ignored_by_docker("common/core/settings.py", patterns)


def test_dockerignore_matcher_follows_dockers_last_match_rule() -> None:
    patterns = ["*", "!common", "**/__pycache__"]
    assert _ignored_by_docker("README.md", patterns)
    assert not _ignored_by_docker("common/a.py", patterns)
    assert _ignored_by_docker("common/__pycache__/a.pyc", patterns)


# A package that writes a cache at run time -> the variable that must move it to /tmp, Lambda's only writable folder.
CACHE_VARIABLES = {"numba": "NUMBA_CACHE_DIR", "matplotlib": "MPLCONFIGDIR"}


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=_id)
def test_caches_go_to_lambdas_only_writable_folder(dockerfile: Path, tmp_path: Path) -> None:
    environment = " ".join(i.arguments for i in parse_dockerfile(dockerfile) if i.keyword == "ENV")
    names = _exported_names(_exported(dockerfile, tmp_path).read_text())
    for package, variable in CACHE_VARIABLES.items():
        if package in names:
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


def _only_groups(export: list[str]) -> list[str]:
    return [export[index + 1] for index, word in enumerate(export) if word == "--only-group"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=_id)
def test_dependencies_are_installed_from_the_lock_file(dockerfile: Path) -> None:
    instructions = parse_dockerfile(dockerfile)
    steps = _install_steps(dockerfile)
    assert "--frozen" in steps.export, "exactly uv.lock's resolution, never a fresh one"
    assert "--no-emit-project" in steps.export
    if _only_groups(steps.export):  # a lean image: its group alone
        assert sorted(_only_groups(steps.export)) == ["predictor"]
    else:  # the runtime dependencies only: no default group (neither the local stack, the dev tools nor the docs)
        assert "--no-default-groups" in steps.export
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


def test_the_predictor_has_its_own_lean_image_and_the_others_share_one() -> None:
    predictor = REPO_ROOT / "functions" / "predictor" / "Dockerfile"
    uses = {function: _dockerfile_of(function) for function in IMAGE_FUNCTIONS}
    assert uses.pop("PredictorFunction") == predictor
    assert set(uses.values()) == {REPO_ROOT / "functions" / "image" / "Dockerfile"}
    assert _only_groups(_install_steps(predictor).export) == ["predictor"]


# What the predictor's image leaves out: the trainer's explanations and plots, numba's compiler, MLflow's server.
NOT_FOR_SCORING = {"shap", "numba", "llvmlite", "matplotlib", "mlflow", "flask", "sqlalchemy", "alembic", "pyarrow"}
FOR_SCORING = {
    "lightgbm",
    "xgboost-cpu",
    "scikit-learn",
    "ta-lib",
    "mlflow-skinny",
    "fastapi",
    "mangum",
}


def test_the_predictors_set_is_what_scoring_needs(tmp_path: Path) -> None:
    names = _exported_names(_exported(REPO_ROOT / "functions" / "predictor" / "Dockerfile", tmp_path).read_text())
    assert names >= FOR_SCORING
    assert not names & NOT_FOR_SCORING, "the trainer's dependencies in the predictor's image"
    everything = _exported_names(_exported(REPO_ROOT / "functions" / "image" / "Dockerfile", tmp_path).read_text())
    assert NOT_FOR_SCORING - {"pyarrow"} <= everything, "the shared image still carries the trainer's set"


# The locked dependency set, installed for the image's platform


@dataclass(frozen=True)
class ImageInstall:
    requirements: str  # the exported requirements file's text
    site_packages: Path


def _exported(dockerfile: Path, workdir: Path) -> Path:
    """The requirements file the Dockerfile's `uv export` writes, written under ``workdir``."""
    steps = _install_steps(dockerfile)
    project = workdir / f"lock-{dockerfile.parent.name}"
    project.mkdir(exist_ok=True)
    for name in ("pyproject.toml", "uv.lock"):  # all the image's export sees (COPY pyproject.toml uv.lock)
        shutil.copy(REPO_ROOT / name, project / name)
    requirements = workdir / f"requirements-{dockerfile.parent.name}.txt"
    export = _retarget(steps.export, {"--project": str(project), "--output-file": str(requirements)})
    result = subprocess.run([str(UV), *export[1:]], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{shlex.join(export)}\n{result.stderr}"
    return requirements


def _exported_and_installed(dockerfile: Path, workdir: Path) -> ImageInstall:
    steps = _install_steps(dockerfile)
    requirements = _exported(dockerfile, workdir)
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


_INSTALLS: dict[Path, ImageInstall] = {}


@pytest.fixture(params=DOCKERFILES, ids=_id)
def image_install(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> ImageInstall:
    """Each Dockerfile's dependency set installed once per session (parametrised: every check runs on each)."""
    if not UV.exists():
        pytest.fail(f"{UV.relative_to(REPO_ROOT)} missing: `make setup` installs it")
    dockerfile: Path = request.param
    if dockerfile not in _INSTALLS:
        _INSTALLS[dockerfile] = _exported_and_installed(dockerfile, tmp_path_factory.mktemp(dockerfile.parent.name))
    return _INSTALLS[dockerfile]


def _exported_names(requirements: str) -> set[str]:
    return {match[1].lower() for match in re.finditer(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==", requirements, re.MULTILINE)}


def test_image_dependencies_are_the_runtime_set(image_install: ImageInstall) -> None:
    names = _exported_names(image_install.requirements)
    assert {"lightgbm", "xgboost-cpu", "fastapi", "mangum"} <= names
    assert names & {"mlflow", "mlflow-skinny"}
    assert "awslambdaric" not in names, "the base image's runtime interface client is the one that runs"
    assert not names & {"moto", "pytest", "ruff", "cfn-lint", "hypothesis", "evidently"}, "dev/local/bench groups"
    assert "retrain" not in names, "the project itself is copied as source, not installed"


def test_image_dependencies_fit_lambdas_image_limit(
    image_install: ImageInstall, packaging_report: dict[str, str]
) -> None:
    size = sum(path.stat().st_size for path in image_install.site_packages.rglob("*") if path.is_file())
    dockerfile = next(d for d, install in _INSTALLS.items() if install is image_install)
    functions = ", ".join(f for f in IMAGE_FUNCTIONS if _dockerfile_of(f) == dockerfile)
    packaging_report[f"{_id(dockerfile)} dependencies ({IMAGE_PLATFORM}; {functions})"] = (
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


def test_image_installs_the_system_libraries_the_wheels_link_to(image_install: ImageInstall) -> None:
    """The base is a minimal Amazon Linux 2023: every library a wheel needs and does not carry is dnf-installed."""
    dockerfile = next(d for d, install in _INSTALLS.items() if install is image_install)
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


def test_the_predictors_lean_set_alone_imports_the_handler_and_answers(
    image_install: ImageInstall, tmp_path: Path
) -> None:
    """The predictor's handler, and what loading any zoo model needs, from its image's packages alone (no project
    venv on the path: python -S), answering /health as Lambda calls it. Run for the predictor's image only."""
    dockerfile = next(d for d, install in _INSTALLS.items() if install is image_install)
    if _only_groups(_install_steps(dockerfile).export) != ["predictor"]:
        pytest.skip("the shared image carries the project's whole runtime set")
    script = (
        "import json, sys\n"
        "import lightgbm, xgboost, sklearn.ensemble, mlflow.sklearn, cloudpickle, talib\n"
        "from functions.predictor.app import handler\n"
        "from retrain.stack.lambda_router import LocalLambdaContext\n"
        "event = json.loads(open(sys.argv[1]).read())\n"
        "response = handler(event, LocalLambdaContext('PredictorFunction', 'arn:local'))\n"
        "print(response['statusCode'], json.loads(response['body'])['status'])\n"
    )
    event = json.loads((REPO_ROOT / "tests" / "events" / "http_api_health.json").read_text())
    (tmp_path / "event.json").write_text(json.dumps(event))
    # The stdlib of this interpreter (the image's is the same minor version), the image's packages, the sources.
    environment = {
        "PYTHONPATH": f"{image_install.site_packages}:{REPO_ROOT}",
        "PATH": "/usr/bin:/bin",
        "AWS_LAMBDA_FUNCTION_NAME": "PredictorFunction",
        "AWS_DEFAULT_REGION": "us-east-1",
        "RETRAIN_DATA_BUCKET": "unused",
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:1",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
    result = subprocess.run(
        [sys.executable, "-S", "-c", script, str(tmp_path / "event.json")],
        env=environment,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["200", "ok"], result.stdout
