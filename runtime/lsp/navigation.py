"""Go to definition, document symbols and inlay hints (each line's output shape).

Definitions are found in the program the loader read (the document and its includes), so a
call jumps to a definition in an included file; an ``include "x.net"`` line jumps to the file.
"""

from __future__ import annotations

import re

from lsprotocol import types as lsp
from pygls import uris

from netc.compiler.frontend.loader import Program
from netc.compiler.frontend.values import Value
from netc.compiler.ops import fmt_shape
from netc.dsl import ast
from netc.runtime.lsp.analysis import Analysis, real
from netc.runtime.lsp.positions import (
    label_span,
    label_text,
    line_text,
    name_span,
    to_range,
    walk,
    word_at,
)

_INCLUDE = re.compile(r'^\s*include\s+"([^"\n]*)"')


def uri_of(display: str) -> str:
    """The ``file://`` URI of a file as a span names it."""
    return uris.from_fs_path(str(real(display))) or display


def definition(analysis: Analysis, program: Program | None, line0: int,
               char: int) -> lsp.Location | None:
    """Where the name under the cursor is declared: a definition, a net, a file-level ``let``;
    on an ``include`` line, the file it includes."""
    m = _INCLUDE.match(line_text(analysis.text, line0))
    if m and program is not None:
        for path in program.modules:
            if path.name == m.group(1).rsplit("/", 1)[-1] and path != analysis.path:
                return lsp.Location(uris.from_fs_path(str(path)), to_range(None))
    word = word_at(analysis.text, line0, char)
    if word is None or program is None:
        return None
    name = word[0]
    item = program.defs.get(name) or program.nets.get(name) or program.constants.get(name)
    if item is None:
        return None
    span = name_span(item, analysis.text_of(item.span.file))
    return lsp.Location(uri_of(item.span.file), to_range(span))


_KINDS = {ast.Net: lsp.SymbolKind.Class, ast.NetAlias: lsp.SymbolKind.Class,
          ast.Definition: lsp.SymbolKind.Function, ast.LetStmt: lsp.SymbolKind.Constant,
          ast.Recipe: lsp.SymbolKind.Module}


def symbols(module: ast.Module, text: str) -> list[lsp.DocumentSymbol]:
    """Nets, definitions, constants and recipes of the document, each with its labels."""
    out = []
    for item in module.items:
        kind = _KINDS.get(type(item))
        if kind is None:
            continue
        labels = []
        seen = set()
        for node in walk(item):
            if isinstance(node, ast.Labelled):
                label = label_text(node)
                if label and label not in seen:
                    seen.add(label)
                    at = to_range(label_span(node))
                    labels.append(lsp.DocumentSymbol(label, lsp.SymbolKind.Field, at, at))
        labels.sort(key=lambda s: (s.range.start.line, s.range.start.character))
        out.append(lsp.DocumentSymbol(item.name, kind, to_range(item.span),
                                      to_range(name_span(item, text)), children=labels))
    return out


def line_shapes(analysis: Analysis, net: ast.Net) -> dict[int, tuple[int, tuple[int, ...]]]:
    """Line (from 1) -> (column where the line's last block ends, its output shape), for the
    lines of ``net``; an ``input`` line shows its declared shape."""
    display, lo, hi = net.span.file, net.span.line, net.span.end_line or net.span.line
    best: dict[int, tuple[tuple[int, int], tuple[int, ...]]] = {}
    own = [r for r in analysis.nets if r.name == net.name] or analysis.nets[:1]
    for result in own:  # the net itself, with its defaults (not an alias of it)
        for span, applications in result.trace.applied.items():
            end, value = span.end_line, applications[0][2]
            if (span.file != display or end is None or not lo <= end <= hi
                    or not isinstance(value, Value)):
                continue
            key = (span.end_col or 0, -span.col if span.line == end else -1)
            if end not in best or key >= best[end][0]:
                best[end] = (key, value.shape)
    shapes = {line: (key[0], shape) for line, (key, shape) in best.items()}
    for stmt in net.body:
        if isinstance(stmt, ast.InputStmt) and all(isinstance(d, int) for d in stmt.shape):
            shapes.setdefault(stmt.span.line, (_line_end(analysis.text, stmt.span.line),
                                               tuple(stmt.shape)))
    return shapes


def _line_end(text: str, line: int) -> int:
    code = line_text(text, line - 1).split("#", 1)[0].rstrip()
    return len(code) + 1


def inlay_hints(analysis: Analysis, first: int, last: int) -> list[lsp.InlayHint]:
    """``→ 64x56x56`` after the last block of each line of each net, for lines ``first`` to
    ``last`` (from 0)."""
    module = analysis.module
    if module is None:
        return []
    hints = []
    for item in module.items:
        if not isinstance(item, ast.Net):
            continue
        if (item.span.end_line or item.span.line) - 1 < first or item.span.line - 1 > last:
            continue
        for line, (col, shape) in sorted(line_shapes(analysis, item).items()):
            if first <= line - 1 <= last:
                hints.append(lsp.InlayHint(lsp.Position(line - 1, max(col - 1, 0)),
                                           f"→ {fmt_shape(shape)}", kind=lsp.InlayHintKind.Type,
                                           padding_left=True))
    return hints
