"""What the live page shows of a spec at one moment: graph, summary table, diagnostics.

A snapshot is built from the spec as it is on disk, with the same loader, budgets and
renderers as ``netc draw``, ``netc summary`` and ``netc check``, so the page and the commands
never disagree. A spec that fails to load gives a snapshot with its diagnostics (located,
``file:line:col``) and no graph; the server then keeps showing the last good graph, marked as
stale, until the spec loads again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from netc.dsl.diagnostics import Diagnostic, DiagnosticError, SourceCache, UserError, render


@dataclass(frozen=True)
class Problem:
    """One diagnostic as the page lists it: where (``file:line:col``, or empty), the message,
    and the text ``netc check`` prints for it (source line, caret, notes)."""

    where: str
    message: str
    text: str


@dataclass(frozen=True)
class Snapshot:
    """The page's content. ``ok`` with a graph; otherwise ``problems`` say why not."""

    version: int
    ok: bool
    title: str = ""
    graph: Any = field(default=None, compare=False, repr=False)  # the IR, drawn on request
    depth: int | None = None  # groups at this level and deeper start shut
    summary: str = ""
    nodes: int = 0
    problems: tuple[Problem, ...] = ()
    seconds: float = 0.0  # how long the build took
    built_at: float = field(default_factory=time.time)

    def svg(self, shut: set[str] | None = None) -> str:
        """``netc draw``'s SVG of the graph; the groups in ``shut`` start shut (None: those
        of ``depth``), so a page keeps what its user shut when it redraws."""
        from netc.compiler.analyses.draw_svg import to_svg

        return to_svg(self.graph, self.depth, shut)

    def to_json(self, last_good: Snapshot | None) -> dict:
        """What the long poll answers; the SVG itself is fetched by URL (``/graph.svg?v=N``)."""
        good = self if self.ok else last_good
        return {
            "version": self.version, "ok": self.ok, "seconds": round(self.seconds, 4),
            "problems": [p.__dict__ for p in self.problems],
            "graph_version": good.version if good else None,
            "title": good.title if good else "", "summary": good.summary if good else "",
            "nodes": good.nodes if good else 0,
        }


def _problems(diagnostics: list[Diagnostic]) -> tuple[Problem, ...]:
    # A fresh source cache: the shared one keeps the text of a file as it was first read, and
    # here the file changes between renders.
    sources = SourceCache()
    ordered = sorted(diagnostics, key=lambda d: (d.file or "", d.line or 0, d.column or 0))
    return tuple(Problem(str(d.span) if d.span else "", d.message, render([d], sources))
                 for d in ordered)


def build(args, version: int, depth: int | None) -> Snapshot:
    """Load the spec named by ``args`` (the spec commands' arguments) and render it."""
    from netc.compiler.analyses.summary import one_line, summarize
    from netc.runtime.commands.common import load_graph
    from netc.runtime.commands.summary import render as render_table

    start = time.perf_counter()
    try:
        graph = load_graph(args)
        summary = summarize(graph)
        table = render_table(summary, summary.rows, None)
    except DiagnosticError as err:
        return Snapshot(version, False, problems=_problems(err.diagnostics),
                        seconds=time.perf_counter() - start)
    except UserError as err:
        return Snapshot(version, False, problems=(Problem("", str(err), f"error: {err}"),),
                        seconds=time.perf_counter() - start)
    return Snapshot(version, True, title=one_line(summary), graph=graph, depth=depth,
                    summary=table, nodes=len(graph), seconds=time.perf_counter() - start)
