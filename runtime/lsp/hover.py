"""Hover: what a block computes, what a definition is, what an op takes.

- On a layer or a call: its output shape, the parameters and MACs of the nodes it made and
  the receptive field of its output, counted as ``netc summary`` counts them (the op's own
  ``param_count``, ``macs`` and :func:`~netc.compiler.analyses.summary.receptive_fields`).
- On a definition's name (where it is declared or called): its signature and the comment
  above it.
- On an op's name: its signature and parameters with their kinds and domains, read from the
  registry (:mod:`netc.compiler.ops`).
"""

from __future__ import annotations

from lsprotocol import types as lsp

from netc.compiler.analyses.summary import human
from netc.compiler.frontend.values import Value
from netc.compiler.ops import REGISTRY, fmt_shape
from netc.dsl import ast
from netc.runtime.lsp.analysis import Analysis, NetResult
from netc.runtime.lsp.positions import contains, extent, name_span, word_at


def innermost_block(analysis: Analysis, line: int, col: int):
    """(span, [(net result, application), ...]) of the smallest applied block written around
    (``line``, ``col``) in the document, every net's applications of it in order; or None."""
    module = analysis.module
    if module is None:
        return None
    display = module.span.file
    best = None
    for net in analysis.nets:
        for span in net.trace.applied:
            if span.file == display and contains(span, line, col):
                if best is None or extent(span) < extent(best):
                    best = span
    if best is None:
        return None
    return best, [(net, made) for net in analysis.nets for made in net.trace.applied.get(best, ())]


def counts(net: NetResult, made) -> tuple[Value, int, int, int, int | None] | None:
    """(value, nodes made, parameters, MACs, receptive field) of one application, counted as
    ``netc summary`` counts them; None where it gave no tensor."""
    first, end, value = made
    if not isinstance(value, Value):
        return None
    nodes = net.made(first, end)
    built = net.trace.graph
    params = macs = 0
    for node in nodes:
        if node.op == "input":
            continue
        ins = [built.nodes[i].shape for i in node.inputs]
        if not node.shares:  # a shared layer's weights are counted once, at its owner
            params += node.opdef.param_count(node.attrs, ins, node.shape)
        macs += node.opdef.macs(node.attrs, ins, node.shape)
    return value, len(nodes), params, macs, net.field_of(value.node)


MAX_ROWS = 12  # applications shown in a hover; a block applied 1,000 times is summed up


def block_text(applications) -> str | None:
    """Markdown for what a block made each time it was applied: one row per net, output shape
    and counts, with how many applications gave the same row."""
    rows: dict[tuple, list] = {}
    for net, made in applications:
        got = counts(net, made)
        if got is None:
            continue
        value, n, params, macs, rf = got
        key = (net.name, value.shape, params, macs)
        rows.setdefault(key, [value.node, n, 0, rf])[2] += 1
    if not rows:
        return None
    out = ["| net | node | output | params | MACs | RF |", "|---|---|---|---|---|---|"]
    for (net_name, shape, params, macs), (node, _, times, rf) in list(rows.items())[:MAX_ROWS]:
        more = f" (×{times})" if times > 1 else ""
        out.append(f"| {net_name} | {node}{more} | `{fmt_shape(shape)}` | {params:,} | "
                   f"{human(macs)} | {rf if rf is not None else '-'} |")
    if len(rows) > MAX_ROWS:
        out.append(f"\n… and {len(rows) - MAX_ROWS:,} more")
    (_, shape, params, macs), (node, n, _, rf) = next(iter(rows.items()))
    head = (f"**{node}** → `{fmt_shape(shape)}` · parameters {params:,} · MACs {macs:,}"
            + (f" · receptive field {rf}" if rf is not None else "")
            + f" · {n:,} node{'s' if n != 1 else ''}")
    return "\n".join([head, "", *out])


def spelled(value) -> str:
    """A default as a spec writes it: ``true``, ``none``, ``[1, 2]``."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(spelled(v) for v in value) + "]"
    return str(value)


def op_text(name: str) -> str:
    """Markdown for an op: its signature, its documentation and a table of its parameters."""
    op = REGISTRY[name]
    out = [f"```\n{op.signature()}\n```"]
    if op.doc:
        out.append(op.doc)
    if op.params:
        out += ["", "| parameter | kind | default | accepts |", "|---|---|---|---|"]
        for p in op.params:
            default = "required" if p.required else f"`{spelled(p.default)}`"
            accepts = [p.accepts.text] if p.accepts else []
            if p.choices:
                accepts.append("or " + ", ".join(p.choices))
            doc = f" ({p.doc})" if p.doc else ""
            out.append(f"| `{p.name}` | {p.kind.name} | {default} | {' '.join(accepts)}{doc} |")
    return "\n".join(out)


def definition_text(analysis: Analysis, defn: ast.Definition) -> str:
    """Markdown for a definition: its header as written and the comment lines above it."""
    text = analysis.text_of(defn.span.file) or ""
    lines = text.splitlines()
    start = defn.span.line - 1
    header = lines[start][defn.span.col - 1:] if start < len(lines) else f"def {defn.name}"
    header = header[:_header_end(header)].strip()
    comment = []
    k = start - 1
    while k >= 0 and lines[k].lstrip().startswith("#"):
        comment.insert(0, lines[k].lstrip()[1:].strip())
        k -= 1
    where = f"{defn.span.file}:{defn.span.line}"
    return "\n".join([f"```\n{header}\n```", *comment, "", f"_{where}_"])


def _header_end(header: str) -> int:
    """Where ``def f(a, b=g(1)) = ...`` ends its parameter list (past the matching bracket)."""
    depth = 0
    for i, ch in enumerate(header):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        elif ch == "=" and depth == 0:
            return i
    return len(header)


# What binding a block with each keyword means (README, "Conventions"): shown on the word.
KEYWORD_TEXT = {
    "let": ("`let name = block` names a description: each use of `name` makes new layers, "
            "with weights of their own (two uses: two sets of weights)."),
    "share": ("`share name = block` names one set of layers: every use of `name` applies the "
              "same weights (a siamese tower); the summary counts them once."),
}


def hover(analysis: Analysis, defs: dict[str, ast.Definition], line0: int,
          char: int) -> lsp.Hover | None:
    """The hover at (``line0``, ``char``), from 0; ``defs`` are the definitions in view (the
    last good program's where the text does not parse now)."""
    parts = []
    word = word_at(analysis.text, line0, char)
    found = innermost_block(analysis, line0 + 1, char + 1)
    if found is not None:
        shown = block_text(found[1])
        if shown:
            parts.append(shown)
    if word is not None:
        name = word[0]
        if name in defs and _names_definition(analysis, defs[name], name, line0, word[1]):
            parts.append(definition_text(analysis, defs[name]))
        elif name in REGISTRY and name not in defs:
            parts.append(op_text(name))
        elif name in KEYWORD_TEXT:
            parts.append(KEYWORD_TEXT[name])
    if not parts:
        return None
    return lsp.Hover(lsp.MarkupContent(lsp.MarkupKind.Markdown, "\n\n---\n\n".join(parts)))


def _names_definition(analysis: Analysis, defn: ast.Definition, name: str, line0: int,
                      start: int) -> bool:
    """Whether the word at (line0, start) is the definition's name: where it is declared, or
    anywhere it is used (not after ``.``, not as ``name=`` of a keyword argument)."""
    text = analysis.text.splitlines()
    line = text[line0] if line0 < len(text) else ""
    after = line[start + len(name):].lstrip()
    if after.startswith("=") and not after.startswith("=="):
        declared = name_span(defn, analysis.text_of(defn.span.file))
        return declared.line == line0 + 1 and declared.col == start + 1
    return True
