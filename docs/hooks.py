"""mkdocs hook: add the reference pages rendered from the code (retrain/reference_docs.py) to the site."""

from __future__ import annotations

import sys
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

REPOSITORY = Path(__file__).resolve().parent.parent


def on_files(files: Files, config: MkDocsConfig) -> Files:
    if str(REPOSITORY) not in sys.path:  # mkdocs loads hooks by path; the project's packages sit at the root
        sys.path.insert(0, str(REPOSITORY))
    from retrain.reference_docs import reference_pages

    for path, content in reference_pages().items():
        files.append(File.generated(config, path, content=content))
    return files
