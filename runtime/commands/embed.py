"""``netc embed SPEC --images DIR --layer L``: t-SNE of a layer's codes, as an image grid."""

from __future__ import annotations

import json

from netc.runtime.commands.common import add_spec_arguments, load_graph
from netc.runtime.commands.options import (
    add_output,
    add_seed,
    add_weights,
    check_outputs,
    positive_float,
    positive_int,
)


def add_arguments(p):
    add_spec_arguments(p)
    p.add_argument("--images", required=True, metavar="DIR",
                   help="a folder of images, digits[:N] (scikit-learn) or samples (scikit-image)")
    p.add_argument("--layer", required=True, help="the layer whose codes are embedded (fc7)")
    p.add_argument("--perplexity", type=positive_float, default=None,
                   help="t-SNE perplexity (default min(30, (images - 1)/3))")
    add_weights(p)
    add_seed(p)
    p.add_argument("--seeds", type=positive_int, default=1, metavar="N",
                   help="with classes, repeat with N seeds (seed, seed + 1, ...: the t-SNE's, "
                        "and the random weights' without --weights) and print the 5-NN "
                        "accuracy's mean ± sd; the picture is the first seed's (default 1)")
    p.add_argument("--batch-size", type=positive_int, default=64, help="images per forward pass")
    p.add_argument("--tile", type=positive_int, default=32, help="pixels per image on the grid")
    p.add_argument("--json", metavar="OUT.json", help="also write the 2-D points as JSON")
    add_output(p, "PNG picture", "OUT.png", default="tsne.png")


def run(args) -> int:
    from netc.dsl.diagnostics import UserError
    from netc.runtime.files import atomic_path
    from netc.runtime.images import Preprocess
    from netc.runtime.views import tsne
    from netc.runtime.views.network import build_view_network, image_input, resolve_layer
    from netc.runtime.views.pictures import progress, save_png
    from netc.runtime.views.sources import open_source

    if args.tile < 4 or args.batch_size < 1:
        raise UserError("--tile must be at least 4 and --batch-size at least 1")
    check_outputs(args.output, args.json)
    graph = load_graph(args)
    spec = image_input(graph)
    node = resolve_layer(graph, args.layer)
    source = open_source(args.images)
    n = len(source.items)
    perplexity = args.perplexity if args.perplexity is not None else tsne.default_perplexity(n)
    tsne.check_perplexity(perplexity, n)
    prep = Preprocess.from_spec(spec, crop=1.0)
    runs, thumbs = [], []
    for seed in range(args.seed, args.seed + (args.seeds if source.classes else 1)):
        net = build_view_network(graph, [node], args.weights, seed)
        codes = _codes(net, node, source.items, prep, args, thumbs if not runs else None)
        with progress("t-SNE", 1) as advance:
            runs.append(tsne.embed(codes, perplexity, seed))
            advance()
    points = runs[0]
    rows, cols = tsne.grid_shape(n)
    cells = tsne.assign_to_grid(points, rows, cols)
    panels = [tsne.grid_picture(thumbs, cells, rows, cols, args.tile)]
    classes = source.classes
    labels = [i.label for i in source.items]
    score = spread = ""
    if classes:
        panels.append(tsne.scatter_picture(points, labels, classes, panels[0].height))
        acc = tsne.knn_accuracy(points, labels)
        score = f"; 5-NN accuracy of the 2-D points {acc:.3f}"
        if len(runs) > 1:
            from netc.runtime.progress import mean_sd

            accs = [tsne.knn_accuracy(r, labels) for r in runs]
            spread = (f" (over seeds {args.seed}-{args.seed + len(runs) - 1}: "
                      f"{mean_sd(accs)}, mean ± sd)")
    dims = "x".join(map(str, graph[node].shape))
    title = (f"{graph.name} · t-SNE of {args.layer} codes ({dims}) "
             f"of {n} images, perplexity {perplexity:g}{score}")
    save_png(args.output, tsne.side_by_side(panels, title))
    if args.json:
        doc = {"net": graph.name, "layer": args.layer, "perplexity": perplexity,
               "grid": [rows, cols], "points": [
                   {"name": it.name, "label": it.label, "x": float(p[0]), "y": float(p[1]),
                    "row": int(c) // cols, "col": int(c) % cols}
                   for it, p, c in zip(source.items, points, cells)]}
        with atomic_path(args.json) as tmp:
            tmp.write_text(json.dumps(doc, indent=1))
    print(f"wrote {args.output}: {n} images on a {rows}x{cols} grid{score}{spread}")
    return 0


def _codes(net, node: str, items, prep, args, thumbs: list | None):
    """The layer's codes of every image, one row each; the grid's thumbnails into ``thumbs``."""
    import numpy as np
    import torch

    from netc.runtime.views.pictures import fit_tile, progress
    from netc.runtime.views.sources import batches

    codes = []
    with progress("codes", len(items)) as advance, torch.no_grad():
        for batch, pictures, x in batches(items, prep, args.batch_size):
            out = net(torch.from_numpy(x), taps=[node])[node]
            codes.append(out.reshape(len(batch), -1).numpy())
            if thumbs is not None:
                thumbs += [np.asarray(fit_tile(p, args.tile)) for p in pictures]
            advance(len(batch))
    return np.concatenate(codes)
