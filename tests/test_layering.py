"""The imports point one way, and no two modules import each other (DESIGN.md, "Layering").

Every ``import`` statement counts, at any depth: a lazy import inside a function closes a circle
as surely as one at the top. An edge goes to the module a statement names (``from a.b import c``
goes to ``a.b.c`` when that is a module, else to ``a.b``).
"""

from __future__ import annotations

import ast
import sys
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# repository folder -> the import package it is installed as
FOLDERS = {"netc": "netc", "dsl": "netc.dsl", "compiler": "netc.compiler",
           "runtime": "netc.runtime", "model_specs": "netc.model_specs"}
# A package may import itself and the ones after it in this list, never the ones before.
ORDER = ["netc.runtime", "netc.compiler", "netc.dsl"]


@cache
def modules() -> dict[str, Path]:
    """Every module of the installed package, by its dotted name."""
    found = {}
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([package, *parts])] = path
    return found


@cache
def imports(module: str) -> frozenset[str]:
    """The netc modules ``module`` imports, by any statement at any depth."""
    path, known, out = modules()[module], modules(), set()
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                anchor = module.split(".")
                anchor = anchor[:len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([base] if base else []))
            for a in node.names:
                out.add(f"{base}.{a.name}" if f"{base}.{a.name}" in known else base)
    return frozenset(m for m in out if m in known and m != module)


def _owner(module: str, order: list[str]) -> int | None:
    for i, name in enumerate(order):
        if module == name or module.startswith(name + "."):
            return i
    return None


def test_the_tree_is_what_the_test_reads():
    assert "netc.compiler.ops" in modules() and "netc.runtime.cli" in modules()
    assert imports("netc.runtime.cli"), "the import reader found nothing: fix the test"


@pytest.mark.parametrize("package", ORDER[1:])
def test_imports_point_down_only(package):
    above = ORDER[:ORDER.index(package)]
    wrong = {m: sorted(i for i in imports(m) if _owner(i, above) is not None)
             for m in modules() if _owner(m, [package]) is not None}
    assert not {m: w for m, w in wrong.items() if w}


def import_circles() -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan, iteratively)."""
    index, low, stack, on, circles, counter = {}, {}, [], set(), [], [0]
    for root in modules():
        if root in index:
            continue
        work = [(root, iter(sorted(imports(root))))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on.add(root)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter[0]
                    counter[0] += 1
                    stack.append(nxt)
                    on.add(nxt)
                    work.append((nxt, iter(sorted(imports(nxt)))))
                    break
                if nxt in on:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = []
                    while True:
                        m = stack.pop()
                        on.discard(m)
                        group.append(m)
                        if m == node:
                            break
                    if len(group) > 1:
                        circles.append(sorted(group))
    return circles


def test_nothing_imports_the_public_api():
    """The modules of the netc/ folder (``netc``, ``netc.api``...) sit above everything."""
    api = {m for m, path in modules().items() if path.parent == ROOT / "netc"}
    wrong = {m: sorted(imports(m) & api) for m in modules() if m not in api and imports(m) & api}
    assert not wrong, wrong


def test_no_import_circles():
    assert import_circles() == []


def test_circle_finder_finds_a_circle(monkeypatch):
    fake = {"netc.a": frozenset({"netc.b"}), "netc.b": frozenset({"netc.a"}), "netc.c": frozenset()}
    monkeypatch.setattr(sys.modules[__name__], "modules", lambda: dict.fromkeys(fake))
    monkeypatch.setattr(sys.modules[__name__], "imports", lambda m: fake[m])
    assert import_circles() == [["netc.a", "netc.b"]]
