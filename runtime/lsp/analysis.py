"""One check of an open file, as ``netc check`` makes it, and what an editor asks of it later.

:func:`analyze` runs the loader exactly as ``netc check FILE`` does (every net of the file,
the same budgets: ``--max-nodes``, ``--max-depth`` and ``--max-memory``'s defaults), with the
editor's unsaved texts as an overlay, and keeps per net the graph and the
:class:`~netc.compiler.frontend.context.Trace` of what each written block made. Counts for
hovers (parameters, MACs, receptive fields) are computed from it only when asked.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from netc.compiler.analyses.summary import receptive_fields
from netc.compiler.frontend.context import Trace
from netc.compiler.frontend.loader import Program, load, nets_of, paused_gc, read_program
from netc.compiler.ir import Graph, Node
from netc.dsl import ast
from netc.dsl.diagnostics import Diagnostic, DiagnosticError
from netc.dsl.sources import NotRegular, read_regular
from netc.runtime.commands.common import physical_memory


def real(path: str | Path) -> Path:
    """The absolute path with symlinks resolved: the key of the loader's overlay."""
    return Path(os.path.realpath(path))


@dataclass
class NetResult:
    """One net of the file: its graph (None when it failed) and the trace of its blocks."""

    spec: str
    graph: Graph | None
    trace: Trace
    _order: list[str] | None = None
    _fields: dict | None = None

    @property
    def name(self) -> str:
        """The net's name: ``resnet50`` of ``resnet.net:resnet50``, else the graph's."""
        if ":" in Path(self.spec).name:
            return self.spec.rsplit(":", 1)[1]
        return self.graph.name if self.graph is not None else Path(self.spec).stem

    def made(self, first: int, end: int) -> list[Node]:
        """The nodes a block made: ``order[first:end]`` of the graph as built."""
        built = self.trace.graph
        if built is None:
            return []
        if self._order is None:
            self._order = list(built.nodes)
        return [built.nodes[name] for name in self._order[first:end]]

    def field_of(self, name: str) -> int | None:
        """The receptive field (height) of a node, as ``netc summary`` counts it."""
        if self.trace.graph is None:
            return None
        if self._fields is None:
            self._fields = receptive_fields(self.trace.graph)
        f = self._fields.get(name)
        return f[0] if f else None


@dataclass
class Analysis:
    """The result of checking one open file at one version."""

    path: Path  # real path of the document
    version: int | None
    text: str
    program: Program | None  # None when the file or an include does not parse
    diagnostics: list[Diagnostic]
    nets: list[NetResult] = field(default_factory=list)
    overlay: Mapping[Path, str] = field(default_factory=dict)

    @property
    def module(self) -> ast.Module | None:
        """The parsed document, or None where it has a syntax error."""
        return self.program.modules.get(self.path) if self.program else None

    @property
    def files(self) -> list[Path]:
        """The document and every file it includes (real paths), the document first."""
        files = list(self.program.modules) if self.program else []
        return files if self.path in files else [self.path, *files]

    def by_file(self) -> dict[Path, list[Diagnostic]]:
        """Diagnostics grouped by the file they are about (those about no place: the root)."""
        out: dict[Path, list[Diagnostic]] = {f: [] for f in self.files}
        for d in self.diagnostics:
            where = real(d.span.file) if d.span and not d.span.file.startswith("<") else None
            out.setdefault(where or self.path, []).append(d)
        return out

    def text_of(self, display: str) -> str | None:
        """The text of a file a span names: the editor's, else the file's."""
        path = real(display)
        if path in self.overlay:
            return self.overlay[path]
        try:
            return read_regular(path).decode("utf-8", errors="replace")
        except (NotRegular, OSError):
            return None


def analyze(path: Path, overlay: Mapping[Path, str], version: int | None = None,
            cancelled: Callable[[], bool] | None = None,
            budgets: Mapping | None = None) -> Analysis:
    """Check ``path`` as ``netc check`` does, reading ``overlay`` texts instead of files.

    ``budgets`` are :func:`~netc.compiler.frontend.loader.load`'s ``max_nodes``, ``max_depth``
    and ``max_memory`` (default: ``netc check``'s).

    Raises :class:`~netc.compiler.frontend.context.Cancelled` when ``cancelled()`` turns true
    during elaboration.
    """
    with paused_gc():
        return _analyze(real(path), overlay, version, cancelled, budgets)


def _analyze(path: Path, overlay, version, cancelled, budgets) -> Analysis:
    text = overlay.get(path, "")
    try:
        program = read_program(path, overlay)
    except DiagnosticError:
        program = None  # nets_of raises the same diagnostics just below
    try:
        specs = nets_of(str(path), overlay)
    except DiagnosticError as err:
        return Analysis(path, version, text, program, list(err.diagnostics), [], overlay)
    errors: list[Diagnostic] = []
    seen: set[Diagnostic] = set()
    nets = []
    for spec in specs:
        trace = Trace(cancelled)
        try:
            graph = load(spec, **{"max_memory": physical_memory(), **(budgets or {})},
                         input_shapes={}, overlay=overlay, trace=trace)
        except DiagnosticError as err:
            new = [d for d in err.diagnostics if d not in seen]  # a family shares its mistakes
            seen.update(new)
            errors.extend(new)
            graph = None
        nets.append(NetResult(spec, graph, trace))
    return Analysis(path, version, text, program, errors, nets, overlay)
