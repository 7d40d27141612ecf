"""Places: netc spans (lines and columns from 1) and LSP ranges (from 0), and what is written at
a place in a file: the word, the AST nodes around it, the name of a definition or net.

Columns count characters; an editor counting UTF-16 units sees the same numbers on the ASCII
text specs are written in.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import fields

from lsprotocol import types as lsp

from netc.dsl import ast
from netc.dsl.diagnostics import Span

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def to_range(span: Span | None) -> lsp.Range:
    """The LSP range of a span; a span without an end covers one character."""
    if span is None:
        return lsp.Range(lsp.Position(0, 0), lsp.Position(0, 0))
    start = lsp.Position(max(span.line - 1, 0), max(span.col - 1, 0))
    if span.end_line is None or span.end_col is None:
        return lsp.Range(start, lsp.Position(start.line, start.character + 1))
    return lsp.Range(start, lsp.Position(max(span.end_line - 1, 0), max(span.end_col - 1, 0)))


def contains(span: Span, line: int, col: int) -> bool:
    """Whether (``line``, ``col``), both from 1, lies in ``span`` (its end included, so the
    cursor just after a word is on it)."""
    if span.end_line is None or span.end_col is None:
        return span.line == line and span.col <= col <= span.col + 1
    if not span.line <= line <= span.end_line:
        return False
    if line == span.line and col < span.col:
        return False
    return not (line == span.end_line and col > span.end_col)


def extent(span: Span) -> tuple[int, int]:
    """A size to find the innermost of the spans around a place: (lines, columns)."""
    return ((span.end_line or span.line) - span.line, (span.end_col or span.col) - span.col)


def line_text(text: str, line0: int) -> str:
    """Line ``line0`` (from 0) of ``text``, or '' past its end."""
    lines = text.splitlines()
    return lines[line0] if 0 <= line0 < len(lines) else ""


def word_at(text: str, line0: int, char: int) -> tuple[str, int, int] | None:
    """(word, start, end) of the name under or just before the cursor, columns from 0."""
    for m in _WORD.finditer(line_text(text, line0)):
        if m.start() <= char <= m.end():
            return m.group(), m.start(), m.end()
    return None


def children(node: ast.Node) -> Iterator[ast.Node]:
    """The AST nodes directly inside ``node`` (label parts included)."""
    for f in fields(node):
        if f.name == "span":
            continue
        value = getattr(node, f.name)
        if isinstance(value, ast.Node):
            yield value
        elif isinstance(value, tuple):
            yield from (v for v in value if isinstance(v, ast.Node))


def walk(node: ast.Node) -> Iterator[ast.Node]:
    """Every AST node under ``node``, itself first, without recursion (chains are deep)."""
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(children(n))


_KEYWORD = {ast.Definition: "def", ast.Net: "net", ast.NetAlias: "net", ast.LetStmt: "let",
            ast.Recipe: "recipe"}


def name_span(item: ast.Node, text: str | None) -> Span:
    """The span of the name a definition, net or ``let`` declares (``def basic``: ``basic``),
    found after its keyword; the item's start when the text is not at hand."""
    name = getattr(item, "name", "")
    keyword = _KEYWORD.get(type(item))
    if text is not None and keyword and name:
        lines = text.splitlines()
        pattern = re.compile(rf"\b{keyword}\s+({re.escape(name)})\b")
        for line in range(item.span.line, min(item.span.line + 3, len(lines) + 1)):
            start = item.span.col - 1 if line == item.span.line else 0
            m = pattern.search(lines[line - 1], start)
            if m:
                return Span(item.span.file, line, m.start(1) + 1, line, m.end(1) + 1)
    return Span(item.span.file, item.span.line, item.span.col, item.span.line,
                item.span.col + len(name))


def label_text(node: ast.Labelled) -> str | None:
    """The label of ``x as name`` when it is plain text (not ``conv{s}_{i}``)."""
    if all(isinstance(p, str) for p in node.parts):
        return "".join(node.parts)
    return None


def label_span(node: ast.Labelled) -> Span:
    """Where the label is written: the end of ``x as name``."""
    span, label = node.span, label_text(node)
    if label is None or span.end_col is None or span.end_line is None:
        return span
    return Span(span.file, span.end_line, span.end_col - len(label), span.end_line,
                span.end_col)
