"""The live state of a served spec: snapshots of what the page shows, and the watcher that
rebuilds them when the spec's files change.

A snapshot is built from the spec as it is on disk, with the same loader, budgets and
renderers as ``netc draw``, ``netc summary`` and ``netc check``, so the page and the commands
never disagree. A spec that fails to load gives a snapshot with its diagnostics (located,
``file:line:col``) and no graph; the page then keeps showing the last good graph, marked as
stale, until the spec loads again.

Polling, not inotify: a few ``stat`` calls every tenth of a second cost nothing, work on every
platform and file system, and see every way an editor saves (in place, or a new file renamed
over the old one). The files watched are the spec and everything it includes, found again
after each change, since an edit may add or drop an ``include``.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netc.compiler.frontend.loader import zoo_dir
from netc.dsl import ast
from netc.dsl.diagnostics import Diagnostic, DiagnosticError, SourceCache, UserError, render
from netc.dsl.parser import parse
from netc.dsl.sources import NotRegular, read_regular


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


POLL_SECONDS = 0.1


def watched_files(root: Path) -> tuple[list[Path], bool]:
    """``root`` and the files it includes, transitively, and whether all of them could be read
    and parsed (a file that cannot is watched, but its includes are not known).

    Includes resolve as the loader resolves them: relative to the including file, else in
    the zoo. An explicit stack, so a long chain of includes needs no recursion.
    """
    seen: dict[Path, None] = {}
    complete, stack = True, [root]
    while stack:
        file = Path(os.path.realpath(stack.pop()))
        if file in seen:
            continue
        seen[file] = None
        if file.suffix == ".prototxt":  # a Caffe file includes nothing
            continue
        try:
            module = parse(read_regular(file).decode("utf-8"), str(file))
        except (NotRegular, UnicodeDecodeError, DiagnosticError):
            complete = False
            continue
        for item in reversed(module.items):
            if isinstance(item, ast.Include) and item.path:
                target = file.parent / item.path
                if not target.exists() and (zoo_dir() / item.path).exists():
                    target = zoo_dir() / item.path
                stack.append(target)
    return list(seen), complete


def fingerprint(files: list[Path]) -> tuple:
    """What changes when any of ``files`` is saved, replaced, created or deleted."""
    out = []
    for f in files:
        try:
            st = f.stat()
            out.append((f, st.st_mtime_ns, st.st_size, st.st_ino))
        except OSError:
            out.append((f, None))
    return tuple(out)


class Live:
    """The current snapshot of one spec, rebuilt by a polling thread when its files change.

    ``wait_newer(v)`` blocks until a snapshot newer than version ``v`` exists (a page's long
    poll); ``last_good`` is the newest snapshot that had a graph.
    """

    def __init__(self, args, root: Path, depth: int | None, interval: float = POLL_SECONDS):
        self.args, self.root, self.depth, self.interval = args, root, depth, interval
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._files: list[Path] = []
        self._fingerprint: tuple = ()
        self.current: Snapshot | None = None
        self.last_good: Snapshot | None = None
        self._thread = threading.Thread(target=self._poll, name="netc-serve-watch", daemon=True)

    def start(self) -> Snapshot:
        """Build the first snapshot, start watching, and return it."""
        self.rebuild()
        self._thread.start()
        return self.current

    def stop(self) -> None:
        """Stop watching and release every waiting page."""
        self._stop.set()
        with self._changed:
            self._changed.notify_all()

    def rebuild(self) -> None:
        """Build a new snapshot from the files as they are now, and wake the waiting pages."""
        files, complete = watched_files(self.root)
        if not complete:  # keep watching what the last full read found
            files = list(dict.fromkeys([*files, *self._files]))
        # Taken before the build: a save during the build is seen by the next poll.
        stamp = fingerprint(files)
        version = self.current.version + 1 if self.current else 1
        try:
            snap = build(self.args, version, self.depth)
        except Exception as err:  # a bug in netc must not stop the page from updating
            message = f"internal error while building the page: {type(err).__name__}: {err}"
            print(f"netc serve: {message}", file=sys.stderr)
            snap = Snapshot(version, False, problems=(Problem("", message, message),))
        with self._changed:
            self._files, self._fingerprint = files, stamp
            self.current = snap
            if snap.ok:
                self.last_good = snap
            self._changed.notify_all()

    def wait_newer(self, version: int, timeout: float) -> tuple[Snapshot, Snapshot | None]:
        """(current, last good) once the current snapshot is newer than ``version``, or after
        ``timeout`` seconds, or when stopping."""
        with self._changed:
            self._changed.wait_for(lambda: self.current.version > version or self._stop.is_set(),
                                   timeout)
            return self.current, self.last_good

    def _poll(self) -> None:
        while not self._stop.wait(self.interval):
            if fingerprint(self._files) != self._fingerprint:
                self.rebuild()
