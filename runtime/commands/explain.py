"""``netc explain SPEC IMAGE --layer L``: the pixels that drive a unit (three methods)."""

from __future__ import annotations

from netc.runtime.commands.common import add_spec_arguments, load_graph
from netc.runtime.commands.options import (
    add_output,
    add_seed,
    add_weights,
    bounded_int,
    check_outputs,
    positive_int,
)


def add_arguments(p):
    add_spec_arguments(p)
    p.add_argument("image", metavar="IMAGE",
                   help="an image file, or a scikit-image sample name (astronaut, coffee, ...)")
    p.add_argument("--layer", required=True, help="the layer whose unit is explained (conv5_3)")
    p.add_argument("--channel", type=bounded_int, default=None,
                   help="channel (or unit) k; default: the most active one")
    p.add_argument("--method", choices=["deconvnet", "guided", "saliency", "all"],
                   default="guided", help="the rule at each ReLU on the way back (default guided)")
    add_weights(p)
    add_seed(p)
    p.add_argument("--size", type=positive_int, default=256, help="pixels per panel (default 256)")
    add_output(p, "PNG picture", "OUT.png", default="explain.png")


def run(args) -> int:
    from netc.dsl.diagnostics import UserError
    from netc.runtime.images import Preprocess
    from netc.runtime.recipes.images import resolve
    from netc.runtime.views.attribution import attribute, explain_picture
    from netc.runtime.views.network import build_view_network, image_input, resolve_layer
    from netc.runtime.views.pictures import progress, save_png
    from netc.runtime.views.sources import Item, display_and_input

    if args.size < 16:
        raise UserError(f"--size must be at least 16; got {args.size}")
    check_outputs(args.output)
    graph = load_graph(args)
    spec = image_input(graph)
    node = resolve_layer(graph, args.layer)
    shape = graph[node].shape
    if args.channel is not None and not 0 <= args.channel < shape[0]:
        raise UserError(f"--channel {args.channel}: {args.layer} has {shape[0]} channels "
                        f"(0..{shape[0] - 1})")
    path = resolve(args.image)
    shown, x = display_and_input(Item(path.name, None, path=path).open(),
                                 Preprocess.from_spec(spec, crop=1.0))
    methods = ["deconvnet", "guided", "saliency"] if args.method == "all" else [args.method]
    with progress("explain", len(methods) + 1) as advance:
        net = build_view_network(graph, [node], args.weights, args.seed, gradients=True)
        advance()
        maps = []
        for m in methods:
            maps.append(attribute(net, x, node, m, args.channel))
            advance()
    a = maps[0]
    where = f" at {','.join(map(str, a.position))}" if a.position else ""
    heading = (f"{graph.name} · {args.layer} channel {a.channel} "
               f"(activation {a.value:.3g}{where}) · {path.name}")
    save_png(args.output, explain_picture(shown, maps, heading, args.size))
    print(f"wrote {args.output}: {', '.join(methods)} for {args.layer} channel {a.channel}")
    return 0
