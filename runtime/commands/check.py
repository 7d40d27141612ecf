"""``netc check SPEC``: parse and shape-check; one OK line with totals, or the diagnostics."""

from __future__ import annotations

from runtime.commands.common import add_spec_arguments, load_graph


def add_arguments(p):
    add_spec_arguments(p)


def run(args) -> int:
    from compiler.summary import one_line, summarize

    graph = load_graph(args)
    print(f"OK {one_line(summarize(graph))}, {len(graph)} nodes")
    return 0
