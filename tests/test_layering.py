"""The imports point one way: runtime/ -> compiler/ -> dsl/ (DESIGN.md, "Layering")."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# A package may import itself and the ones after it in this list, never the ones before.
ORDER = ["runtime", "compiler", "dsl"]


def imported_packages(path: Path) -> set[str]:
    """Top-level names of every module ``path`` imports, at any depth (lazy imports too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", ORDER[1:])
def test_imports_point_down_only(package):
    above = set(ORDER[:ORDER.index(package)])
    wrong = {str(p.relative_to(ROOT)): sorted(imported_packages(p) & above)
             for p in sorted((ROOT / package).rglob("*.py"))
             if imported_packages(p) & above}
    assert not wrong, wrong
