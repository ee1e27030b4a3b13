"""The README is a front page: short, its links resolve, its two commands are the ones CI and users run.
(Every setting, command and endpoint is documented by the reference pages generated from the code:
tests/unit/test_docs_site.py.)"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_ci_runs_the_readme_test_command():
    command = [
        line
        for line in (ROOT / ".ci/run").read_text().splitlines()
        if line and not line.startswith(("#", "set ", "cd "))
    ]
    assert command == ["make test"]
    assert "make test" in README and "make demo" in README


def test_the_readme_is_a_front_page():
    assert len(README.splitlines()) <= 200


def test_every_relative_link_of_the_readme_resolves():
    targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README)
    relative = [t for t in targets if not t.startswith(("http://", "https://", "mailto:"))]
    assert relative, "the README links into the docs"
    missing = [t for t in relative if not (ROOT / t).exists()]
    assert missing == []
