"""``netc draw SPEC -o net.svg``: the network graph, straight from the IR (no Graphviz)."""

from __future__ import annotations

from pathlib import Path

from netc.runtime.commands.common import add_spec_arguments, load_graph
from netc.runtime.commands.options import add_depth, add_output, check_depth, positive_float


def add_arguments(p):
    add_spec_arguments(p)
    add_output(p, "picture (.svg or .png)", "OUT.svg", default_text="NET.svg or NET.png")
    p.add_argument("--format", choices=["svg", "png"], default=None,
                   help="svg (collapsible groups in a browser) or png; default from -o's suffix")
    add_depth(p, "start with the groups at level N and deeper collapsed")
    p.add_argument("--scale", type=positive_float, default=1.5, help="png: pixels per SVG unit")


def run(args) -> int:
    from netc.dsl.diagnostics import UserError
    from netc.runtime.files import atomic_path

    check_depth(args.depth)
    if not 0.25 <= args.scale <= 8:
        raise UserError(f"--scale must be between 0.25 and 8; got {args.scale}")
    fmt = args.format
    if fmt is None:
        suffix = Path(args.output).suffix.lower() if args.output else ".svg"
        if suffix not in (".svg", ".png"):
            raise UserError(f"-o {args.output}: say --format svg or png (or use .svg / .png)")
        fmt = suffix[1:]
    graph = load_graph(args)
    out = args.output or f"{graph.name}.{fmt}"
    if fmt == "svg":
        from netc.compiler.analyses.draw_svg import to_svg

        text = to_svg(graph, args.depth)
        with atomic_path(out) as tmp:
            tmp.write_text(text, encoding="utf-8")
    else:
        from netc.runtime.views.graph_png import to_png
        from netc.runtime.views.pictures import save_png

        save_png(out, to_png(graph, args.depth, args.scale))
    print(f"wrote {out}: {graph.name}, {len(graph)} nodes, {len(graph.calls)} calls")
    return 0
