"""``netc summary SPEC``: one row per node (name, op, shape, params, MACs, receptive field)."""

from __future__ import annotations

import json

from dsl.diagnostics import UserError
from runtime.commands.common import add_spec_arguments, load_graph


def add_arguments(p):
    add_spec_arguments(p)
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--depth", type=int, default=None,
                   help="fold the table to N levels of the name hierarchy")


def run(args) -> int:
    from compiler.summary import fold, human, human_bytes, one_line, summarize

    if args.depth is not None and args.depth < 1:
        raise UserError(f"--depth must be at least 1; got {args.depth}")
    graph = load_graph(args)
    summary = summarize(graph)
    if args.json:
        print(json.dumps(summary.to_json(), indent=1))
        return 0
    rows = fold(summary, args.depth) if args.depth else summary.rows
    cells = [(r.name, r.op, "x".join(map(str, r.shape)), f"{r.params:,}",
              human(r.macs) if r.macs else "0", str(r.rf) if r.rf else "-", r.extra)
             for r in rows]
    total = ("total", "", "", f"{summary.params:,}", human(summary.macs), "", "")
    footer = (f"activations for one sample: {human_bytes(summary.activation_bytes)} "
              f"(float32); parameters: {human_bytes(4 * summary.params)}")
    if len(cells) > 1000:
        # rich lays out ~1 ms per row: a 1,202-layer net would take seconds. Plain columns.
        print(one_line(summary))
        print(_plain_table([_HEADER] + cells + [total]))
        print(footer)
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=one_line(summary), title_justify="left", box=None, pad_edge=False)
    for col in _HEADER:
        table.add_column(col, justify="left" if col in ("name", "op", "notes") else "right",
                         no_wrap=True)
    for row in cells:
        table.add_row(*row)
    table.add_section()
    table.add_row(*total)
    # Names are what users copy into recipes and --outputs: never cut them. Make the console
    # as wide as the widest row (rich would otherwise shorten cells with "…").
    needed = sum(max(len(r[i]) for r in [_HEADER, *cells, total]) for i in range(7)) + 14
    console = Console(width=max(needed, len(table.title or ""), Console().width))
    console.print(table)
    console.print(footer)
    return 0


_HEADER = ("name", "op", "output", "params", "MACs", "RF", "notes")


def _plain_table(rows) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    left = {0, 1, 6}
    return "\n".join(
        "  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in
                  enumerate(zip(r, widths))).rstrip()
        for r in rows)
