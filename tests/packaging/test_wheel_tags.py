"""The wheel-tag reader the layer and image checks rely on: it must tell a wheel for another Python or a newer glibc."""

from __future__ import annotations

from pathlib import Path

import pytest
from wheel_tags import installed_wheel_tags, tag_runs_on


@pytest.mark.parametrize(
    ("tag", "fits"),
    [
        ("cp313-cp313-manylinux_2_17_x86_64", True),
        ("cp313-cp313-manylinux2014_x86_64", True),
        ("cp313-cp313-manylinux_2_34_x86_64", True),
        ("py3-none-any", True),
        ("py2.py3-none-any", True),
        ("cp39-abi3-manylinux_2_28_x86_64", True),
        ("cp311-cp311-manylinux_2_17_x86_64", False),  # another Python's ABI
        ("cp314-abi3-manylinux_2_17_x86_64", False),  # abi3 from a newer Python
        ("cp313-cp313-manylinux_2_35_x86_64", False),  # a newer glibc than Amazon Linux 2023's
        ("cp313-cp313-manylinux_2_17_aarch64", False),
        ("cp313-cp313-musllinux_1_2_x86_64", False),
        ("cp313-cp313-win_amd64", False),
    ],
)
def test_tag_runs_on_cpython_3_13_with_glibc_2_34(tag: str, fits: bool) -> None:
    assert tag_runs_on(tag, python_minor=13, glibc_minor=34) is fits


def test_installed_wheel_tags_reads_every_tag_line(tmp_path: Path) -> None:
    dist_info = tmp_path / "numpy-2.2.6.dist-info"
    dist_info.mkdir()
    (dist_info / "WHEEL").write_text(
        "Wheel-Version: 1.0\nRoot-Is-Purelib: false\n"
        "Tag: cp313-cp313-manylinux_2_17_x86_64\nTag: cp313-cp313-manylinux2014_x86_64\n"
    )
    assert installed_wheel_tags(tmp_path) == {
        "numpy-2.2.6.dist-info": ["cp313-cp313-manylinux_2_17_x86_64", "cp313-cp313-manylinux2014_x86_64"]
    }
