"""Find, read and elaborate a spec: a zoo name (``vgg16``), a path, or ``path.net:netname``.

Includes are resolved relative to the including file, then in the zoo; an include cycle is a
diagnostic at the ``include`` line. A ``.prototxt`` path is imported from Caffe on the fly.

Hostile paths are refused in one line each: only regular files are read (:mod:`netc.dsl.sources`:
no FIFO, device, directory or symlink loop), includes are followed without recursion (a chain
of 1,200 includes is fine), each file is parsed once per process, and elaboration runs on a
thread with a deep stack so ``--max-depth`` can be raised without reaching Python's limits.

An editor (``netc lsp``) passes an ``overlay`` (real path -> its unsaved text, read instead of
the file), parsed once per text: after an edit only the edited file is parsed again.
"""

from __future__ import annotations

import gc
import os
import re
import sys
import threading
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from netc.compiler import ops
from netc.compiler.frontend.context import (DEFAULT_MAX_DEPTH, DEFAULT_MAX_NODES,
                                            MAX_DEPTH_LIMIT, Trace)
from netc.compiler.frontend.elaborate import Elaborator
from netc.compiler.importers.caffe import import_prototxt
from netc.compiler.ir import Graph
from netc.dsl import ast
from netc.dsl.diagnostics import Diagnostic, DiagnosticError, Span
from netc.dsl.parser import parse, parse_incremental
from netc.dsl.sources import NotRegular, read_regular

_NET_RE = re.compile(r"^\s*net\s+([A-Za-z_][A-Za-z0-9_]*)", re.MULTILINE)


def zoo_dir() -> Path:
    """The folder of the zoo specs, in a checkout or an installed package."""
    return Path(str(resources.files("netc.model_specs")))


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
    nets: dict[str, ast.Net | ast.NetAlias]
    constants: dict[str, ast.LetStmt] = field(default_factory=dict)  # file-level ``let``
    # Every file read (real path) -> its parsed module, the root first: what an editor shows.
    modules: dict[Path, ast.Module] = field(default_factory=dict)


def _real(path: Path) -> Path:
    """An absolute path with symlinks resolved where they resolve (a loop stays as written)."""
    return Path(os.path.realpath(path))


# Parsed files by (real path, inode, size, times): `netc check FILE` reads a file once, not per net.
_PARSED: dict[tuple, ast.Module | DiagnosticError] = {}
# Overlay texts by real path -> (text, what it parsed to): the last text of each open file,
# for at most 256 files (an editor session that opens thousands must not grow without bound).
_PARSED_TEXT: dict[Path, tuple[str, ast.Module | DiagnosticError]] = {}


def _parse_text(file: Path, text: str) -> ast.Module:
    """Parse an editor's text for ``file`` (cached while the text is the same)."""
    cached = _PARSED_TEXT.get(file)
    if cached is None or cached[0] != text:
        try:
            result: ast.Module | DiagnosticError = parse_incremental(text, _display(file))
        except DiagnosticError as err:
            result = err
        if len(_PARSED_TEXT) >= 256 and file not in _PARSED_TEXT:
            _PARSED_TEXT.clear()
        cached = _PARSED_TEXT[file] = (text, result)
    if isinstance(cached[1], DiagnosticError):
        raise cached[1]
    return cached[1]


def _parse_file(file: Path, at: Span | None,
                overlay: Mapping[Path, str] | None = None) -> ast.Module:
    """Read and parse one file (cached); DiagnosticError, located at ``at`` for read errors."""
    if overlay and file in overlay:
        return _parse_text(file, overlay[file])
    try:
        st = file.stat()
        key = (file, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    except OSError:
        key = None
    cached = _PARSED.get(key) if key else None
    if cached is None:
        cached = _read_and_parse(file, at)
        if key is not None:
            if len(_PARSED) > 256:
                _PARSED.clear()
            _PARSED[key] = cached
    if isinstance(cached, DiagnosticError):
        raise cached
    return cached


def _read_and_parse(file: Path, at: Span | None) -> ast.Module | DiagnosticError:
    try:
        raw = read_regular(file)
    except NotRegular as err:
        return DiagnosticError(Diagnostic(at, str(err)))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        return DiagnosticError(Diagnostic(Span(_display(file), line, 1),
                                          "this is not a UTF-8 text file (binary data?)"))
    try:
        return parse(text, _display(file))
    except DiagnosticError as err:
        return err


class _ProgramReader:
    """Gathers the items of a file and its includes, depth first in file order.

    An explicit stack, not recursion: each frame is a file and the items still to read.
    """

    def __init__(self, overlay: Mapping[Path, str] | None = None):
        self.overlay = overlay
        self.modules: dict[Path, ast.Module] = {}
        self.defs: dict[str, ast.Definition] = {}
        self.nets: dict[str, ast.Net | ast.NetAlias] = {}
        self.constants: dict[str, ast.LetStmt] = {}
        self.diags: list[Diagnostic] = []
        self.done: set[Path] = set()
        self.frames: list[tuple[Path, Any]] = []  # (file, iterator over its items)
        self.open_files: set[Path] = set()

    def read(self, path: Path) -> None:
        self.enter(path, None)
        while self.frames:
            file, items = self.frames[-1]
            item = next(items, None)
            if item is None:
                self.frames.pop()
                self.open_files.discard(file)
            elif isinstance(item, ast.Include):
                self.include(file, item)
            elif isinstance(item, ast.Definition):
                _define(self.defs, item, self.diags)
            elif isinstance(item, ast.LetStmt):
                self.constant(item)
            elif isinstance(item, (ast.Net, ast.NetAlias)):
                self.net(item)

    def enter(self, file: Path, at: Span | None) -> None:
        """Start reading ``file`` (included at ``at``), unless it was read or is open."""
        file = _real(file)
        if file in self.open_files:
            chain = " -> ".join([f.name for f, _ in self.frames] + [file.name])
            self.diags.append(Diagnostic(at, f"include cycle: {chain}"))
            return
        if file in self.done:
            return
        self.done.add(file)
        try:
            module = _parse_file(file, at, self.overlay)
        except DiagnosticError as err:
            self.diags.extend(err.diagnostics)
            return
        self.modules[file] = module
        self.frames.append((file, iter(module.items)))
        self.open_files.add(file)

    def include(self, file: Path, item: ast.Include) -> None:
        """``include "x.net"``: relative to the including file, else from the zoo."""
        if not item.path:
            self.diags.append(Diagnostic(item.span, "include of an empty file name"))
            return
        target = file.parent / item.path
        if (not target.exists() and not (self.overlay and _real(target) in self.overlay)
                and (zoo_dir() / item.path).exists()):
            target = zoo_dir() / item.path
        self.enter(target, item.span)

    def constant(self, item: ast.LetStmt) -> None:
        if item.name in self.constants and self.constants[item.name].span.file == item.span.file:
            first = self.constants[item.name].span
            self.diags.append(Diagnostic(item.span, f"{item.name!r} is defined twice "
                                                    f"(first at line {first.line})"))
        self.constants[item.name] = item

    def net(self, item: ast.Net | ast.NetAlias) -> None:
        nets = self.nets
        if item.name in nets and nets[item.name].span.file != item.span.file:
            pass  # an included file's net of the same name is shadowed
        elif item.name in nets:
            self.diags.append(Diagnostic(item.span, f"net {item.name!r} is defined twice"))
        nets[item.name] = item
        if isinstance(item, ast.Net):
            _check_params(item.params, f"net {item.name}", self.diags)


def read_program(path: Path, overlay: Mapping[Path, str] | None = None) -> Program:
    """Parse ``path`` and its includes, depth first in file order. Raises DiagnosticError.

    ``overlay`` (real path -> text) holds an editor's unsaved texts, read instead of files.
    """
    reader = _ProgramReader(overlay)
    reader.read(path)
    if reader.diags:
        raise DiagnosticError(reader.diags)
    return Program(path, reader.defs, reader.nets, reader.constants, reader.modules)


def program_of_text(text: str, file: Path) -> Program:
    """The program of spec text held in memory (an imported Caffe net), shown as ``file``.

    Such text includes nothing; it is parsed as it is. Raises DiagnosticError.
    """
    module = parse(text, str(file))
    defs = {d.name: d for d in module.items if isinstance(d, ast.Definition)}
    nets = {n.name: n for n in module.items if isinstance(n, (ast.Net, ast.NetAlias))}
    constants = {c.name: c for c in module.items if isinstance(c, ast.LetStmt)}
    return Program(file, defs, nets, constants)


def load_text(text: str, file: str) -> Graph:
    """Parse and elaborate the first net of spec text held in memory, shown as ``file``.

    ``netc import caffe`` checks the spec it writes with this, so it never writes one that
    ``netc check`` would reject. Raises DiagnosticError.
    """
    program = program_of_text(text, Path(file))
    net = next(n for n in program.nets.values() if isinstance(n, ast.Net))
    return run_deep(lambda: Elaborator(program.defs, constants=program.constants)
                    .net(net, None, file))


def _check_params(params, owner: str, diags) -> bool:
    """A parameter list names each parameter once (``def f(a, a)`` is a mistake)."""
    seen: dict[str, ast.Param] = {}
    ok = True
    for p in params:
        if p.name in seen:
            diags.append(Diagnostic(p.span, f"{owner}: parameter {p.name!r} is declared twice "
                                            f"(first at column {seen[p.name].span.col})"))
            ok = False
        seen.setdefault(p.name, p)
    return ok


def _define(defs, item: ast.Definition, diags) -> None:
    if not _check_params(item.params, item.name, diags):
        return
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


def nets_of(spec: str, overlay: Mapping[Path, str] | None = None) -> list[str]:
    """The specs a SPEC names: itself, or ``FILE:NET`` for each net of a file that defines
    several (so ``netc check vgg.net`` checks the whole family)."""
    path, net_name = resolve_spec(spec, overlay)
    if net_name is not None or path.suffix != ".net":
        return [spec]
    program = read_program(path, overlay)
    own = [n.name for n in program.nets.values()
           if Path(n.span.file).resolve() == path.resolve()
           or n.span.file == _display(path.resolve())]
    return [f"{path}:{n}" for n in own] if len(own) > 1 else [spec]


def resolve_spec(spec: str, overlay: Mapping[Path, str] | None = None) -> tuple[Path, str | None]:
    """(file, net name or None) for a zoo name, a path, or ``path:net`` (or one in ``overlay``)."""
    if not spec.strip():
        raise DiagnosticError(Diagnostic(None, "the SPEC is empty: name a zoo net (vgg16), a "
                                               ".net file or a Caffe .prototxt"))
    path = Path(spec)
    if path.is_symlink() and not path.exists():
        raise DiagnosticError(Diagnostic(None, f"cannot read {spec}: a symlink that leads "
                                               "nowhere (dangling, or a loop)"))
    if path.exists() or (overlay and _real(path) in overlay):
        return path, None
    if ":" in spec:
        file, _, net = spec.rpartition(":")
        if Path(file).exists() or (overlay and _real(Path(file)) in overlay):
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
         max_nodes: int = DEFAULT_MAX_NODES, max_depth: int = DEFAULT_MAX_DEPTH,
         max_memory: int | None = None,
         input_shapes: dict[str | None, tuple[int, ...]] | None = None,
         overlay: Mapping[Path, str] | None = None, trace: Trace | None = None) -> Graph:
    """Parse and elaborate ``spec`` into a checked IR graph. Raises DiagnosticError.

    ``max_nodes`` and ``max_depth`` bound elaboration (:mod:`netc.compiler.frontend.elaborate`);
    ``max_memory`` (bytes), when given, refuses a net whose weights and activations for one
    sample would not fit (:func:`netc.compiler.analyses.budget.check_memory`), before any weight is
    drawn.
    ``input_shapes`` replace declared input shapes (``--input``): input name, or None for the
    first input, -> shape.
    ``overlay`` holds an editor's unsaved texts (:func:`read_program`); ``trace`` records what
    each block made and can cancel elaboration (:class:`~netc.compiler.frontend.context.Trace`,
    raising ``Cancelled``).
    """
    if not 1 <= max_depth <= MAX_DEPTH_LIMIT:
        raise DiagnosticError(Diagnostic(None, f"--max-depth must be in 1..{MAX_DEPTH_LIMIT:,}; "
                                               f"got {max_depth}"))
    with paused_gc():  # the front end's objects all live on: no collector passes
        path, net_name = resolve_spec(spec, overlay)
        if path.suffix == ".prototxt":  # imported from Caffe on the fly
            program = program_of_text(import_prototxt(path, input_shapes), path.with_suffix(".net"))
        else:
            program = read_program(path, overlay)
        own = [n for n in program.nets.values() if _real(Path(n.span.file)) == _real(path)
               or n.span.file == _display(_real(path))]
        if net_name is None:
            candidates = own or list(program.nets.values())
            if not candidates:
                raise DiagnosticError(Diagnostic(Span(_display(_real(path)), 1, 1),
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

        def elaborate() -> Graph:
            elaborator = Elaborator(program.defs, max_nodes=max_nodes, max_depth=max_depth,
                                    constants=program.constants, input_shapes=input_shapes)
            elaborator.ctx.trace = trace
            name = net.name
            target, set_by_alias = resolve_alias(net, program, elaborator)
            known = [p.name for p in target.params]
            for key in overrides or {}:
                if key not in known:
                    raise DiagnosticError(Diagnostic(None, f"net {name} has no parameter {key!r}; "
                                                           f"it takes ({', '.join(known)})"))
            graph = elaborator.net(target, {**set_by_alias, **(overrides or {})}, str(path))
            graph.name = name
            return graph

        graph = run_deep(elaborate, max_depth)
        if max_memory is not None:
            from netc.compiler.analyses.budget import check_memory

            check_memory(graph, max_memory)
        return graph


_GC_PAUSE = [threading.Lock(), 0, False]  # lock, blocks open, was gc enabled before them


@contextmanager
def paused_gc():
    """Python's cyclic collector paused while a spec is read and elaborated: the front end makes
    a few hundred thousand objects that live on (AST, graph), and the collector's passes over
    them cost ~40% of loading a 30,000-layer chain. Reference counting still frees what dies;
    the collector is back when the last (nested or concurrent) block closes."""
    lock = _GC_PAUSE[0]
    with lock:
        if _GC_PAUSE[1] == 0:
            _GC_PAUSE[2] = gc.isenabled()
            gc.disable()
        _GC_PAUSE[1] += 1
    try:
        yield
    finally:
        with lock:
            _GC_PAUSE[1] -= 1
            if _GC_PAUSE[1] == 0 and _GC_PAUSE[2]:
                gc.enable()


_STACK_BYTES = 256 * 2**20


def run_deep(fn, max_depth: int = DEFAULT_MAX_DEPTH):
    """``fn()`` on a thread with a 256 MiB stack and a recursion limit that fits ``max_depth``.

    The elaborator recurses once per definition call and nesting level (both bounded); the
    main thread's 8 MiB C stack and Python's default limit of 1,000 frames are too small for
    ``--max-depth 10000``. The thread's stack is virtual memory, touched only as deep as used.
    """
    result: dict[str, Any] = {}

    def target():
        try:
            result["value"] = fn()
        except BaseException as err:  # re-raised on the caller's thread
            result["error"] = err

    old_limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old_limit, 20_000 + 60 * max_depth))
    old_size = threading.stack_size()
    try:
        try:
            try:
                threading.stack_size(_STACK_BYTES)
            except (ValueError, RuntimeError):  # a platform without settable stacks
                pass
            worker = threading.Thread(target=target, name="netc-elaborate", daemon=True)
        finally:
            threading.stack_size(old_size)
        worker.start()
        worker.join()
    finally:
        sys.setrecursionlimit(old_limit)
    if "error" in result:
        raise result["error"]
    return result["value"]


def resolve_alias(net, program: Program, elaborator: Elaborator):
    """Follow ``net vgg16 = vgg(2, 2, 3, 3, 3)`` to the net it names, with the parameters the
    aliases set (an alias of an alias adds its own; the outermost wins)."""
    settings: dict[str, Any] = {}
    seen: list[str] = []
    while isinstance(net, ast.NetAlias):
        if net.name in seen:
            chain = " -> ".join(seen + [net.name])
            raise DiagnosticError(Diagnostic(net.span, f"net alias cycle: {chain}"))
        seen.append(net.name)
        target = program.nets.get(net.target)
        if target is None:
            import difflib

            close = difflib.get_close_matches(net.target, list(program.nets), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise DiagnosticError(Diagnostic(net.span, f"no net {net.target!r} to define "
                                                       f"{net.name!r} from{hint}"))
        params = target.params if isinstance(target, ast.Net) else ()
        if isinstance(target, ast.Net) and len(net.args) > len(params):
            raise DiagnosticError(Diagnostic(
                net.span, f"net {target.name} takes {len(params)} parameters "
                          f"({', '.join(p.name for p in params)}); got {len(net.args)}"))
        if not isinstance(target, ast.Net) and net.args:
            raise DiagnosticError(Diagnostic(net.span, "name the parameters of an alias of an "
                                                       "alias (net b = a(x=1))"))
        names = {p.name for p in params}
        for kw in net.kwargs:
            if isinstance(target, ast.Net) and kw.name not in names:
                raise DiagnosticError(Diagnostic(
                    kw.span, f"net {target.name} has no parameter {kw.name!r}; it takes "
                             f"({', '.join(p.name for p in params)})"))
        given = {p.name: a for p, a in zip(params, net.args)}
        given.update({kw.name: kw.value for kw in net.kwargs})
        for key, expr in given.items():
            if key not in settings:  # the outer alias already set it
                settings[key] = elaborator.eval(expr, {})
        if elaborator.diags:
            raise DiagnosticError(elaborator.diags)
        net = target
    return net, settings
