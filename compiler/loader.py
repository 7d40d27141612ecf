"""Find, read and elaborate a spec: a zoo name (``vgg16``), a path, or ``path.net:netname``.

Includes are resolved relative to the including file, then in the zoo; an include cycle is a
diagnostic at the ``include`` line. A ``.prototxt`` path is imported from Caffe on the fly.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from compiler.elaborate import DEFAULT_MAX_NODES, Elaborator
from compiler.ir import Graph
from dsl import ast
from dsl.diagnostics import Diagnostic, DiagnosticError, Span
from dsl.parser import parse

_NET_RE = re.compile(r"^\s*net\s+([A-Za-z_][A-Za-z0-9_]*)", re.MULTILINE)


def zoo_dir() -> Path:
    """The folder of the zoo specs, in a checkout or an installed package."""
    return Path(str(resources.files("model_specs")))


def zoo_index() -> dict[str, Path]:
    """Net name -> file, found by a cheap scan of ``model_specs/*.net`` (no parsing)."""
    index: dict[str, Path] = {}
    for path in sorted(zoo_dir().glob("*.net")):
        for name in _NET_RE.findall(path.read_text(encoding="utf-8")):
            index.setdefault(name, path)
    return index


@dataclass
class Program:
    """The parsed files of one spec: definitions and nets visible from the root file."""

    root: Path
    defs: dict[str, ast.Definition]
    nets: dict[str, ast.Net]


def read_program(path: Path) -> Program:
    """Parse ``path`` and its includes. Raises DiagnosticError."""
    defs: dict[str, ast.Definition] = {}
    nets: dict[str, ast.Net] = {}
    diags: list[Diagnostic] = []
    done: set[Path] = set()

    def visit(file: Path, stack: tuple[Path, ...], at: Span | None):
        file = file.resolve()
        if file in stack:
            chain = " -> ".join(p.name for p in stack + (file,))
            diags.append(Diagnostic(at, f"include cycle: {chain}"))
            return
        if file in done:
            return
        done.add(file)
        try:
            raw = file.read_bytes()
        except OSError as e:
            diags.append(Diagnostic(at, f"cannot read {file}: {e.strerror or e}"))
            return
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            line = raw[: e.start].count(b"\n") + 1
            diags.append(Diagnostic(Span(_display(file), line, 1),
                                    "this is not a UTF-8 text file (binary data?)"))
            return
        try:
            module = parse(text, _display(file))
        except DiagnosticError as err:
            diags.extend(err.diagnostics)
            return
        for item in module.items:
            if isinstance(item, ast.Include):
                target = file.parent / item.path
                if not target.exists() and (zoo_dir() / item.path).exists():
                    target = zoo_dir() / item.path
                visit(target, stack + (file,), item.span)
            elif isinstance(item, ast.Definition):
                _define(defs, item, diags)
            elif isinstance(item, ast.Net):
                if item.name in nets and nets[item.name].span.file != item.span.file:
                    pass  # an included file's net of the same name is shadowed
                elif item.name in nets:
                    diags.append(Diagnostic(item.span, f"net {item.name!r} is defined twice"))
                nets[item.name] = item

    visit(path, (), None)
    if diags:
        raise DiagnosticError(diags)
    return Program(path, defs, nets)


def _define(defs, item: ast.Definition, diags) -> None:
    from compiler import ops

    if item.name in ops.REGISTRY or item.name in ("residual",):
        diags.append(Diagnostic(item.span, f"{item.name!r} is a built-in layer; "
                                           "choose another name for the definition"))
    elif item.name in defs and defs[item.name].span.file == item.span.file:
        first = defs[item.name].span
        diags.append(Diagnostic(item.span, f"definition {item.name!r} is defined twice "
                                           f"(first at line {first.line})"))
    else:
        defs[item.name] = item


def _display(path: Path) -> str:
    """Paths in diagnostics: relative to the working directory where possible."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def resolve_spec(spec: str) -> tuple[Path, str | None]:
    """(file, net name or None) for a zoo name, a path, or ``path:net``."""
    path = Path(spec)
    if path.exists():
        return path, None
    if ":" in spec:
        file, _, net = spec.rpartition(":")
        if Path(file).exists():
            return Path(file), net
    index = zoo_index()
    if spec in index:
        return index[spec], spec
    import difflib

    close = difflib.get_close_matches(spec, list(index), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else \
        "; `netc zoo` lists the built-in nets"
    raise DiagnosticError(Diagnostic(None, f"no such file or zoo net: {spec!r}{hint}"))


def load(spec: str, overrides: dict[str, Any] | None = None,
         max_nodes: int = DEFAULT_MAX_NODES) -> Graph:
    """Parse and elaborate ``spec`` into a checked IR graph. Raises DiagnosticError."""
    path, net_name = resolve_spec(spec)
    if path.suffix == ".prototxt":
        from compiler.caffe import import_prototxt  # the Caffe importer

        text = import_prototxt(path)
        spec_path = path.with_suffix(".net")
        from dsl.diagnostics import SOURCES

        module = parse(text, str(spec_path))
        SOURCES.texts[str(spec_path)] = text
        defs = {d.name: d for d in module.items if isinstance(d, ast.Definition)}
        nets = {n.name: n for n in module.items if isinstance(n, ast.Net)}
        program = Program(spec_path, defs, nets)
    else:
        program = read_program(path)
    own = [n for n in program.nets.values() if Path(n.span.file).resolve() == path.resolve()
           or n.span.file == _display(path.resolve())]
    if net_name is None:
        candidates = own or list(program.nets.values())
        if not candidates:
            raise DiagnosticError(Diagnostic(Span(_display(path.resolve()), 1, 1),
                                             "this file defines no net"))
        if len(candidates) > 1:
            names = ", ".join(n.name for n in candidates)
            raise DiagnosticError(Diagnostic(
                None, f"{path} defines several nets ({names}); name one as {path}:NAME"))
        net = candidates[0]
    elif net_name in program.nets:
        net = program.nets[net_name]
    else:
        raise DiagnosticError(Diagnostic(None, f"{path} has no net {net_name!r}; it defines "
                                               f"{', '.join(program.nets) or 'none'}"))
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, 20_000))
    try:
        return Elaborator(program.defs, max_nodes=max_nodes).net(net, overrides, str(path))
    finally:
        sys.setrecursionlimit(old)
