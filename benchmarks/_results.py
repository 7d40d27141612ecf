"""Write (and print) one benchmark's section of benchmarks/RESULTS.md, leaving the other
sections alone; and the rotating turns the benchmarks time their sides with."""

from __future__ import annotations

import platform
import re
import time
from pathlib import Path

from netc.runtime.files import atomic_write_bytes

RESULTS = Path(__file__).with_name("RESULTS.md")


def machine() -> str:
    import os

    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def write_section(name: str, text: str) -> None:
    """Replace the text between ``<!-- name:start -->`` and ``<!-- name:end -->`` (or append)."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{text.strip()}\n{end}"
    old = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.DOTALL)
    if pattern.search(old):
        new = pattern.sub(lambda _: block, old)
    else:
        new = old.rstrip() + "\n\n" + block + "\n"
    atomic_write_bytes(RESULTS, new.encode("utf-8"))  # other sections are never half-written


def publish(name: str, text: str, write: bool) -> None:
    """Print a benchmark's section and, when ``write``, put it in RESULTS.md as ``name``."""
    print(text)
    if write:
        write_section(name, text)


def q(values, p: float) -> float:
    """The ``p`` quantile of ``values`` (0.1: p10), the nearest of the sorted values."""
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(p * (len(values) - 1))))]


def rotating(fns: dict, rounds: int, warmup: int) -> dict[str, list[float]]:
    """Seconds per call of each callable: ``warmup`` calls each, then ``rounds`` rounds in
    which every callable runs once, the order rotating each round (round r starts with the
    r-th), so a change in the machine's load falls on all sides alike."""
    keys = list(fns)
    for _ in range(warmup):
        for k in keys:
            fns[k]()
    times: dict[str, list[float]] = {k: [] for k in keys}
    for r in range(rounds):
        for j in range(len(keys)):
            k = keys[(r + j) % len(keys)]
            start = time.perf_counter()
            fns[k]()
            times[k].append(time.perf_counter() - start)
    return times
