"""``netc probe SPEC --data digits --layers conv1,pool2,fc1``: linear read-outs on frozen codes.

For each named layer, a ridge read-out (least squares onto the one-hot labels) is fitted on the
layer's code of the training images and scored on the held-out ones (Alain & Bengio 2016,
"Understanding intermediate layers using linear classifier probes"). With ``--weights`` the net
is a trained one; without, netc's seeded random weights (random features).
"""

from __future__ import annotations

from netc.runtime.commands.common import add_spec_arguments, load_graph
from netc.runtime.commands.options import (
    add_seed,
    add_threads,
    add_weights,
    positive_float,
    positive_int,
)


def add_arguments(p):
    add_spec_arguments(p)
    p.add_argument("--data", default="digits", metavar="SOURCE",
                   help="digits, folder:PATH (class sub-folders) or cifar10:PATH (default digits)")
    p.add_argument("--layers", required=True, metavar="NAMES",
                   help="comma-separated layer names (the input's name probes the pixels)")
    add_weights(p)
    add_seed(p)
    p.add_argument("--ridge", type=positive_float, default=None, metavar="λ",
                   help="fixed ridge λ (default: chosen per layer on a fifth of the training "
                        "split)")
    p.add_argument("--features", type=positive_int, default=None, metavar="N",
                   help="compare layers at one width: map wider codes to N values by a fixed "
                        "random projection first (default: the full codes)")
    add_threads(p, "torch's")


def run(args) -> int:
    import torch
    from netc.dsl.diagnostics import UserError
    from netc.runtime.fit import probe
    from netc.runtime.views.network import resolve_layer

    layers = [n.strip() for n in args.layers.split(",") if n.strip()]
    if not layers:
        raise UserError("--layers: give at least one layer name")
    if args.ridge is not None and not args.ridge > 0:
        raise UserError(f"--ridge must be positive; got {args.ridge}")
    if args.features is not None and args.features < 1:
        raise UserError(f"--features must be at least 1; got {args.features}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    graph = load_graph(args)
    for name in layers:  # an unknown name is one line naming --layers and the near names
        if graph.resolve(name) is None:
            resolve_layer(graph, name, "--layers")
    weights = None
    if args.weights:
        from netc.runtime.weights import load_weights

        weights = load_weights(graph, args.weights)
    results = probe(graph, weights, args.data, layers, args.ridge, args.features, log=print,
                    seed=args.seed)
    width = max(len(r.layer) for r in results)
    print(f"{'layer':<{width}}  features  ridge λ     train  held-out")
    for r in results:
        print(f"{r.layer:<{width}}  {r.features:>8,}  {r.ridge:<9.3g}  "
              f"{100 * r.train_accuracy:5.1f}%  {100 * r.accuracy:5.1f}%")
    return 0
