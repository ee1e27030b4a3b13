"""Which Python and platform each installed wheel was built for, read from its .dist-info/WHEEL file, and whether one
of its tags runs on a given CPython and glibc (x86_64).
"""

from __future__ import annotations

import re
from pathlib import Path

_CPYTHON = re.compile(r"cp3(\d+)")
_MANYLINUX = re.compile(r"manylinux_2_(\d+)_x86_64")
# The legacy manylinux names and the glibc minor they stand for (PEP 600).
_LEGACY_MANYLINUX = {"manylinux1_x86_64": 5, "manylinux2010_x86_64": 12, "manylinux2014_x86_64": 17}


def installed_wheel_tags(folder: Path) -> dict[str, list[str]]:
    """dist-info folder -> the tags its WHEEL file lists, one per `Tag:` line (cp313-cp313-manylinux2014_x86_64)."""
    tags: dict[str, list[str]] = {}
    for wheel in sorted(folder.glob("*.dist-info/WHEEL")):
        lines = wheel.read_text().splitlines()
        tags[wheel.parent.name] = [line.split(":", 1)[1].strip() for line in lines if line.startswith("Tag:")]
    return tags


def _platform_glibc_minor(platform: str) -> int | None:
    """The glibc minor a manylinux x86_64 platform tag needs; None for any other platform."""
    match = _MANYLINUX.fullmatch(platform)
    return int(match[1]) if match else _LEGACY_MANYLINUX.get(platform)


def tag_runs_on(tag: str, python_minor: int, glibc_minor: int) -> bool:
    """CPython 3.python_minor on x86_64 Linux with that glibc: its own ABI, an older abi3 or pure Python; platform
    `any` or a manylinux no newer than the glibc. Compressed tag sets (py2.py3) count when one member fits."""
    interpreters, abi, platforms = tag.split("-")

    def interpreter_fits(interpreter: str) -> bool:
        if interpreter == "py3":
            return True
        match = _CPYTHON.fullmatch(interpreter)
        minor = int(match[1]) if match else None
        return minor == python_minor or (abi == "abi3" and minor is not None and minor <= python_minor)

    def platform_fits(platform: str) -> bool:
        needed = _platform_glibc_minor(platform)
        return platform == "any" or (needed is not None and needed <= glibc_minor)

    return (
        any(interpreter_fits(interpreter) for interpreter in interpreters.split("."))
        and abi in {"none", "abi3", f"cp3{python_minor}"}
        and any(platform_fits(platform) for platform in platforms.split("."))
    )
