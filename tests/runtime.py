"""The project's one Python, read from pyproject.toml's requires-python: what the tests run on, hence what Lambda
must run (the zip functions' runtime, the layer's, the images' base)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

_PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
# Amazon Linux 2023, under Lambda's python3.12 and newer runtimes and images, has glibc 2.34.
AMAZON_LINUX_2023_GLIBC_MINOR = 34


def project_python_minor(pyproject: Path = _PYPROJECT) -> int:
    """13 for requires-python ">=3.13,<3.14"; a range admitting several Pythons is refused."""
    requires = tomllib.loads(pyproject.read_text())["project"]["requires-python"]
    match = re.fullmatch(r">=3\.(\d+),<3\.(\d+)", requires.replace(" ", ""))
    assert match and int(match[2]) == int(match[1]) + 1, f"requires-python {requires!r}: not exactly one Python 3.N"
    return int(match[1])


PYTHON_MINOR = project_python_minor()
PYTHON_VERSION = f"3.{PYTHON_MINOR}"  # 3.13
LAMBDA_RUNTIME = f"python{PYTHON_VERSION}"  # python3.13, the runtime identifier
LAMBDA_BASE_IMAGE = f"public.ecr.aws/lambda/python:{PYTHON_VERSION}"
