"""Rules of the project's own layout, checked on its source."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports (``import a.b`` and ``from a.b import c`` give ``a.b``)."""
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module)
    return modules


def test_the_tests_import_nothing_from_the_benchmarks() -> None:
    """What both use lives in tests/support.py, which the benchmarks may import."""
    offenders = {
        path.name: sorted(module for module in imported_modules(path) if module.split(".")[0] == "bench")
        for path in sorted((ROOT / "tests").glob("*.py"))
    }
    assert {name: modules for name, modules in offenders.items() if modules} == {}


def test_the_project_never_imports_its_tests() -> None:
    """baike and the replica stand alone: nothing of tests/ goes with a node."""
    for package in ("baike", "replica"):
        for path in sorted((ROOT / package).rglob("*.py")):
            assert not any(module.split(".")[0] == "tests" for module in imported_modules(path)), path
