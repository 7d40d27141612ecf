"""How deeply a parsed file's expressions nest, checked without recursion.

Long *spines* are flat work and cost nothing here: a chain ``a -> b -> c`` (a left-nested
``Seq``), a sum or product of many terms (a left-nested ``BinOp``), ``not not x`` or ``- -x``
(nested ``UnaryOp``) and an ``if ... else if ...`` ladder (``IfExpr`` in ``orelse``). The
elaborator and the recipe reader walk each spine in a loop (:func:`unwind`), so a generated chain
of 100,000 layers is fine.

Everything else that holds an expression inside another (brackets, call arguments, join
branches, list items, labels, ``for`` bodies, a chain inside a chain's step) is *nesting*; past
:data:`MAX_NESTING` levels the file is refused with a located error, quickly and before the
elaborator (which recurses on nesting) could reach Python's recursion limit.

>>> from netc.dsl.parser import parse
>>> _ = parse("def f = " + "(" * 10 + "relu" + ")" * 10)   # ten brackets are fine
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import fields

from netc.dsl import ast
from netc.dsl.diagnostics import Diagnostic, DiagnosticError

MAX_NESTING = 200

_FIELDS: dict[type, tuple[str, ...]] = {}

# The field through which each kind of spine continues (``a -> b -> c`` is Seq(Seq(a, b), c)).
SPINE_LINKS: dict[type, str] = {
    ast.Seq: "first", ast.BinOp: "left", ast.UnaryOp: "operand", ast.IfExpr: "orelse",
}


def unwind(e: ast.Node, ops: Container[str] | None = None) -> tuple[ast.Node, list[ast.Node]]:
    """``e``'s spine walked in a loop: (the node the spine ends at, the spine's nodes innermost
    first, the order they apply in). ``ops`` keeps to nodes whose ``op`` is one of them.

    >>> from netc.dsl.parser import parse
    >>> leaf, links = unwind(parse("let k = 1 + 2 - 3").items[0].value)
    >>> leaf.value, [(b.op, b.right.value) for b in links]
    (1, [('+', 2), ('-', 3)])
    """
    kind, links = type(e), []
    link = SPINE_LINKS[kind]
    while type(e) is kind and (ops is None or e.op in ops):
        links.append(e)
        e = getattr(e, link)
    links.reverse()
    return e, links


def _children(node: ast.Node):
    """(field name, child node) for every AST node directly inside ``node``."""
    names = _FIELDS.get(type(node))
    if names is None:
        names = _FIELDS[type(node)] = tuple(f.name for f in fields(node) if f.name != "span")
    for name in names:
        value = getattr(node, name)
        if isinstance(value, ast.Node):
            yield name, value
        elif isinstance(value, tuple):
            for item in value:
                if isinstance(item, ast.Node):
                    yield name, item


def _continues_spine(parent: ast.Node, name: str, child: ast.Node) -> bool:
    """Whether ``child`` extends ``parent``'s spine (same depth) rather than nesting in it."""
    return SPINE_LINKS.get(type(parent)) == name and type(child) is type(parent)


def nesting_depth(root: ast.Node, limit: int = MAX_NESTING) -> tuple[int, ast.Node | None]:
    """(deepest nesting found, the first node past ``limit`` or None), by an explicit stack.

    Items and statements are at depth 0; the walk stops at the first node past ``limit``.
    """
    deepest = 0
    stack: list[tuple[ast.Node, int]] = [(root, 0)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > limit:
            return deepest, node
        for name, child in _children(node):
            stack.append((child, depth if _continues_spine(node, name, child) else depth + 1))
    return deepest, None


def check_nesting(module: ast.Module, limit: int = MAX_NESTING) -> None:
    """Raise a located :class:`DiagnosticError` if an expression nests past ``limit``."""
    errors = []
    for item in module.items:
        _, too_deep = nesting_depth(item, limit)
        if too_deep is not None:
            errors.append(Diagnostic(
                too_deep.span, f"expressions nest deeper than {limit} levels here (brackets, "
                               "calls, joins, labels); write the inner part as a definition"))
    if errors:
        raise DiagnosticError(errors)
