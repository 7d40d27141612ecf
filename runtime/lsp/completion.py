"""Completion: op names with their signatures, definitions, labels, constants, keywords, and
inside a call's brackets the keyword arguments of the op or definition called.

It reads the text before the cursor, not the parse: a half-typed line does not parse, and it
is what completion is for. Names come from the registry and from the last program that parsed.
"""

from __future__ import annotations

import re

from lsprotocol import types as lsp

from netc.compiler.frontend.loader import Program
from netc.compiler.ops import REGISTRY
from netc.dsl import ast
from netc.runtime.lsp.positions import label_text, walk

# The words of the language (dsl/netc.lark), offered where a name may start.
KEYWORDS = ("net", "def", "inline", "include", "input", "output", "training", "let", "share",
            "with", "recipe", "if", "then", "else", "for", "in", "as", "and", "or", "not")
MAX_ITEMS = 500  # a generated file can hold 100,000 labels: the list says it is incomplete
_CALLEE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*$")
_PREFIX = re.compile(r"[A-Za-z_][A-Za-z0-9_]*$")
_LOOK_BACK = 4000  # characters searched for the open bracket of the call the cursor is in


def callee(before: str) -> str | None:
    """The name called by the innermost unclosed ``name(`` in ``before`` (text before the
    cursor), or None."""
    depth = 0
    for i in range(len(before) - 1, max(-1, len(before) - _LOOK_BACK - 1), -1):
        ch = before[i]
        if ch in ")]}":
            depth += 1
        elif ch in "([{":
            if depth == 0:
                if ch != "(":
                    return None
                m = _CALLEE.search(before[:i])
                return m.group(1) if m else None
            depth -= 1
    return None


def _def_signature(d: ast.Definition) -> str:
    return f"{d.name}({', '.join(p.name for p in d.params)})"


def keyword_items(name: str, program: Program | None) -> list[lsp.CompletionItem]:
    """``pad=``, ``stride=``, ...: the parameters of the op or definition ``name``."""
    items = []
    if name in REGISTRY:
        for p in REGISTRY[name].params:
            default = "required" if p.required else f"default {p.default}"
            accepts = p.accepts.text if p.accepts else p.kind.name
            items.append(lsp.CompletionItem(f"{p.name}=", kind=lsp.CompletionItemKind.Property,
                                            detail=f"{p.kind.name}, {default}",
                                            documentation=p.doc or accepts,
                                            insert_text=f"{p.name}="))
    elif program is not None and name in program.defs:
        for p in program.defs[name].params:
            items.append(lsp.CompletionItem(f"{p.name}=", kind=lsp.CompletionItemKind.Property,
                                            detail=f"parameter of {name}",
                                            insert_text=f"{p.name}="))
    return items


def name_items(program: Program | None, module: ast.Module | None) -> list[lsp.CompletionItem]:
    """Ops, definitions, constants, nets, labels of the document and keywords."""
    kinds = lsp.CompletionItemKind
    items = [lsp.CompletionItem(name, kind=kinds.Function, detail=op.signature(),
                                documentation=op.doc or None)
             for name, op in REGISTRY.items()]
    if program is not None:
        items += [lsp.CompletionItem(name, kind=kinds.Function, detail=f"def {_def_signature(d)}")
                  for name, d in program.defs.items()]
        items += [lsp.CompletionItem(name, kind=kinds.Constant, detail="let")
                  for name in program.constants]
        items += [lsp.CompletionItem(name, kind=kinds.Class, detail="net")
                  for name in program.nets]
    if module is not None:
        seen = set()
        for node in walk(module):
            label = label_text(node) if isinstance(node, ast.Labelled) else None
            if label and label not in seen:
                seen.add(label)
                items.append(lsp.CompletionItem(label, kind=kinds.Reference, detail="label"))
    items += [lsp.CompletionItem(k, kind=kinds.Keyword) for k in KEYWORDS]
    return items


def complete(text: str, line0: int, char: int, program: Program | None,
             module: ast.Module | None) -> lsp.CompletionList:
    """The completions at (``line0``, ``char``), from 0, for the word typed so far."""
    lines = text.splitlines()
    current = lines[line0][:char] if line0 < len(lines) else ""
    before = "\n".join(lines[max(0, line0 - 50):line0] + [current])
    m = _PREFIX.search(current)
    prefix = m.group() if m else ""
    items = []
    called = callee(before[:len(before) - len(prefix)])
    if called is not None:
        items += keyword_items(called, program)
    items += name_items(program, module)
    chosen = [i for i in items if i.label.startswith(prefix)]
    return lsp.CompletionList(is_incomplete=len(chosen) > MAX_ITEMS, items=chosen[:MAX_ITEMS])
