"""Progress of a long command's steps on stderr (``netc compile vgg16`` draws and writes
528 MiB): a rich bar per step on a terminal, else one line per step with its time, so a log
shows where the seconds went. Quick commands show nothing: :class:`Steps` is only made
enabled when the work is big."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable


class Steps:
    """``with steps.step("drawing weights", unit="numbers") as update: ... update(done, total)``.

    Disabled, every call is free and prints nothing.
    """

    def __init__(self, enabled: bool, stream=None):
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()

    def step(self, description: str, bytes_: bool = False):
        return _Step(self, description, bytes_)


class _Step:
    def __init__(self, steps: Steps, description: str, bytes_: bool):
        self.steps, self.description, self.bytes = steps, description, bytes_
        self.bar = self.task = None

    def __enter__(self):
        if not self.steps.enabled:
            return _ignore
        self.start = time.perf_counter()
        if self.steps.tty:
            from rich.console import Console
            from rich.progress import (BarColumn, DownloadColumn, Progress, TaskProgressColumn,
                                       TextColumn, TimeElapsedColumn)

            columns = [TextColumn("{task.description}"), BarColumn(), TaskProgressColumn()]
            columns += [DownloadColumn(binary_units=True)] if self.bytes else []
            self.bar = Progress(*columns, TimeElapsedColumn(), transient=True,
                                console=Console(file=self.steps.stream))
            self.task = self.bar.add_task(self.description, total=None)
            self.bar.start()
        return self.update

    def update(self, done: int, total: int) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=done, total=total)

    def __exit__(self, *exc):
        if not self.steps.enabled:
            return False
        if self.bar is not None:
            self.bar.stop()
        if exc[0] is None:
            print(f"  {self.description}: {time.perf_counter() - self.start:.1f} s",
                  file=self.steps.stream, flush=True)
        return False


def _ignore(done: int, total: int) -> None:
    pass


def mean_sd(values: Iterable[float], digits: int = 3) -> str:
    """A measurement repeated over seeds or splits, as commands print it and the README quotes
    it: ``0.944 ± 0.016`` (the mean, and the sample standard deviation, ddof=1)."""
    v = [float(x) for x in values]
    mean = sum(v) / len(v)
    sd = (sum((x - mean) ** 2 for x in v) / (len(v) - 1)) ** 0.5 if len(v) > 1 else 0.0
    return f"{mean:.{digits}f} ± {sd:.{digits}f}"
