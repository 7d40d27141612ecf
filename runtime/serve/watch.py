"""Watch a spec's files and keep the live page's snapshot current.

Polling, not inotify: a few ``stat`` calls every tenth of a second cost nothing, work on every
platform and file system, and see every way an editor saves (in place, or a new file renamed
over the old one). The files watched are the spec and everything it includes, found again
after each change, since an edit may add or drop an ``include``.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

from netc.compiler.frontend.loader import zoo_dir
from netc.dsl import ast
from netc.dsl.diagnostics import DiagnosticError
from netc.dsl.parser import parse
from netc.dsl.sources import NotRegular, read_regular
from netc.runtime.serve.snapshot import Problem, Snapshot, build

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
