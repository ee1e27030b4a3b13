"""The benchmark report inside the README: ``bench/run.py`` writes ``bench/RESULTS.md`` and copies it
between two markers in README.md, one heading level down, so the README always shows the last run."""

from __future__ import annotations

import re

START = "<!-- bench/RESULTS.md starts here: written by `make bench`, do not edit by hand -->"
END = "<!-- bench/RESULTS.md ends here -->"


def readme_section(report: str) -> str:
    """The report as it appears in the README: its title dropped, every other heading one level down."""
    lines = report.strip().splitlines()
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    body = "\n".join(re.sub(r"^(#+) ", r"\1# ", line) for line in lines).strip()
    return f"{START}\n\n{body}\n\n{END}"


def splice(readme: str, report: str) -> str:
    """README text with the section between the markers replaced by ``report``."""
    start, end = readme.find(START), readme.find(END)
    if start < 0 or end < start:
        raise ValueError("README.md has no bench/RESULTS.md markers: add them where the report belongs")
    return readme[:start] + readme_section(report) + readme[end + len(END) :]
