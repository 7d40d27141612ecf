"""``netc summary SPEC``: one row per node (name, op, shape, params, MACs, receptive field)."""

from __future__ import annotations

import json

from runtime.commands.common import add_spec_arguments, load_graph


def add_arguments(p):
    add_spec_arguments(p)
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--depth", type=int, default=None,
                   help="fold the table to N levels of the name hierarchy")


def run(args) -> int:
    from compiler.summary import fold, human, human_bytes, one_line, summarize

    graph = load_graph(args)
    summary = summarize(graph)
    if args.json:
        print(json.dumps(summary.to_json(), indent=1))
        return 0
    from rich.console import Console
    from rich.table import Table

    rows = fold(summary, args.depth) if args.depth else summary.rows
    table = Table(title=one_line(summary), title_justify="left", box=None, pad_edge=False)
    for col, justify in (("name", "left"), ("op", "left"), ("output", "right"),
                         ("params", "right"), ("MACs", "right"), ("RF", "right"),
                         ("", "left")):
        table.add_column(col, justify=justify, no_wrap=True)
    for r in rows:
        table.add_row(r.name, r.op, "x".join(map(str, r.shape)), f"{r.params:,}",
                      human(r.macs) if r.macs else "0", str(r.rf) if r.rf else "-", r.extra)
    table.add_section()
    table.add_row("total", "", "", f"{summary.params:,}", human(summary.macs), "", "")
    console = Console(width=max(100, Console().width))
    console.print(table)
    console.print(f"activations for one sample: {human_bytes(summary.activation_bytes)} "
                  f"(float32); parameters: {human_bytes(4 * summary.params)}")
    return 0
