"""The layout of ``common/`` shows the architecture: a few domain packages, each importing only the ones
below it. A newcomer answers "where does X happen" from the folder names, and a change that makes a lower
domain reach up (say, the data layer calling the registry) fails here instead of growing a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import PROJECT_ROOT

COMMON = PROJECT_ROOT / "common"
# Bottom to top: a package may import itself and the packages before it, never one after it.
LAYERS = ("core", "aws", "data", "training", "registry", "notify", "loop", "serving", "backtest")


def _imported_modules(path: Path) -> set[str]:
    """Every ``common.*`` module a file imports, at module level or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("common."))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("common"):
            assert node.level == 0, f"{path}: relative import"
            found.add(node.module if node.module != "common" else f"common.{node.names[0].name}")
    return found


def test_common_holds_only_domain_packages() -> None:
    entries = sorted(p.name for p in COMMON.iterdir() if p.name != "__pycache__")
    assert entries == sorted([*LAYERS, "__init__.py"]), "common/ holds the domain packages and nothing else"
    for package in LAYERS:
        init = COMMON / package / "__init__.py"
        assert ast.get_docstring(ast.parse(init.read_text())), f"{init}: say what the domain holds"


def test_package_inits_import_nothing_at_module_level() -> None:
    """Importing ``common.serving.model_cache`` runs every ``__init__`` above it: they stay free of imports,
    so the predictor's lean cold start imports what it uses and nothing else."""
    for package in LAYERS:
        tree = ast.parse((COMMON / package / "__init__.py").read_text())
        heavy = [
            ast.unparse(node)
            for node in tree.body
            if isinstance(node, ast.Import | ast.ImportFrom)
            and not (isinstance(node, ast.ImportFrom) and node.module in {"typing", "__future__"})
        ]
        assert not heavy, f"common/{package}/__init__.py imports at module level: {heavy}"


def test_no_domain_imports_a_domain_above_it() -> None:
    rank = {package: index for index, package in enumerate(LAYERS)}
    upward = []
    for path in sorted(COMMON.rglob("*.py")):
        package = path.relative_to(COMMON).parts[0]
        if package not in rank:
            continue
        for module in _imported_modules(path):
            target = module.split(".")[1]
            if rank.get(target, -1) > rank[package]:
                upward.append(f"{path.relative_to(PROJECT_ROOT)} imports {module}")
    assert not upward, "a lower domain reaches up (move the code, or pass what it needs in):\n" + "\n".join(upward)


def test_every_import_names_a_module_that_exists() -> None:
    """The move left no reference to a flat ``common.<module>`` behind, in code or in tests."""
    missing = []
    for root in ("common", "functions", "retrain", "tests", "bench", "docs"):
        for path in sorted((PROJECT_ROOT / root).rglob("*.py")):
            for module in _imported_modules(path):
                parts = module.split(".")
                as_module = PROJECT_ROOT.joinpath(*parts).with_suffix(".py")
                as_package = PROJECT_ROOT.joinpath(*parts) / "__init__.py"
                if not (as_module.exists() or as_package.exists()):
                    missing.append(f"{path.relative_to(PROJECT_ROOT)}: {module}")
    assert not missing, "\n".join(missing)
