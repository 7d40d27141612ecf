"""``netc top-activations SPEC --images DIR --layer L``: the images each unit likes best."""

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
    p.add_argument("--images", required=True, metavar="DIR",
                   help="a folder of images, digits[:N] (scikit-learn) or samples (scikit-image)")
    p.add_argument("--layer", required=True, help="the layer whose units are shown")
    p.add_argument("--units", default="0-15", help="units (channels), e.g. 0-15 or 0,4,9-11")
    p.add_argument("--k", type=bounded_int, default=9, help="images per unit (default 9)")
    p.add_argument("--whole", action="store_true",
                   help="show whole images instead of receptive-field crops")
    add_weights(p)
    add_seed(p)
    p.add_argument("--batch-size", type=positive_int, default=32, help="images per forward pass")
    p.add_argument("--size", type=positive_int, default=64, help="pixels per tile (default 64)")
    add_output(p, "PNG picture", "OUT.png", default="top_activations.png")


def run(args) -> int:
    import torch
    from netc.compiler.analyses.receptive import fields
    from netc.dsl.diagnostics import UserError
    from netc.runtime.images import Preprocess
    from netc.runtime.views.network import (
        build_view_network,
        image_input,
        parse_units,
        resolve_layer,
    )
    from netc.runtime.views.pictures import progress, save_png
    from netc.runtime.views.sources import batches, open_source
    from netc.runtime.views.top import TopK, top_picture

    for flag, value, least in (("--k", args.k, 1), ("--batch-size", args.batch_size, 1),
                               ("--size", args.size, 8)):
        if value < least:
            raise UserError(f"{flag} must be at least {least}; got {value}")
    check_outputs(args.output)
    graph = load_graph(args)
    spec = image_input(graph)
    node = resolve_layer(graph, args.layer)
    units = parse_units(args.units, graph[node].shape[0])
    source = open_source(args.images)
    f = None if args.whole else fields(graph)[node]
    top = TopK(units, args.k, f)
    net = build_view_network(graph, [node], args.weights, args.seed)
    prep = Preprocess.from_spec(spec, crop=1.0)
    with progress("top activations", len(source.items)) as advance, torch.no_grad():
        for items, pictures, x in batches(source.items, prep, args.batch_size):
            acts = net(torch.from_numpy(x), taps=[node])[node].numpy()
            top.add([i.name for i in items], pictures, acts, [i.label for i in items])
            advance(len(items))
    what = "whole images" if f is None else f"{f.size[0]}x{f.size[1]} receptive-field crops"
    title = (f"{graph.name} · {args.layer}: top {args.k} of {top.seen} images per unit "
             f"({what})")
    save_png(args.output, top_picture(top, title, args.size))
    print(f"wrote {args.output}: {len(units)} units x {args.k} of {top.seen} images")
    return 0
