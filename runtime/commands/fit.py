"""``netc fit SPEC --data ... -o W.safetensors``: solve the spec's fitted layers from data.

The fitted layers (``pca``, ``pca_reconstruct``, ``pca_distance``, ``fc(..., fit=...)``) are
solved in closed form, in graph order, from one streaming pass of the data per level (see
:mod:`netc.runtime.fit`); every other weight comes from ``--weights`` (else netc's seeded
initialiser, ``--seed``). The output holds all the net's weights, written atomically, and is
read by ``netc compile --weights``, ``netc probe --weights`` and the eigenfaces commands.
"""

from __future__ import annotations

from netc.runtime.commands.common import add_spec_arguments, load_graph
from netc.runtime.commands.options import (
    add_output,
    add_seed,
    add_weights,
    check_outputs,
    positive_int,
)


def add_arguments(p):
    add_spec_arguments(p)
    p.add_argument("--data", required=True, metavar="SOURCE",
                   help="digits (the training split), lfw (skimage's lfw_subset faces 0-99), "
                        "lfw:A-B (rows A to B; 100-199 are non-faces), folder:PATH (images; "
                        "class sub-folders give labels) or cifar10:PATH")
    add_output(p, "weights (.safetensors, every weight of the net)", "W.safetensors",
               required=True)
    add_weights(p, "netc's seeded random weights; fitted layers in the file are refitted")
    add_seed(p)
    p.add_argument("--batch-size", type=positive_int, default=256,
                   help="images per pass (default 256)")


def base_weights(graph, path, seed):
    """netc's seeded weights overlaid with ``path``'s; every non-fitted weight must be there
    (the fitted ones are solved next, so the file may lack them)."""
    from netc.compiler.numerics.seeded_weights import init_weights
    from netc.compiler.ops.fitted import is_fitted
    from netc.runtime.weights import load_weights

    weights = init_weights(graph, seed)
    if path is not None:
        fitted = {n.name for n in graph if n.op != "input" and is_fitted(n)}
        weights.update(load_weights(graph, path, optional=fitted))
    return weights


def run(args) -> int:
    import time

    from netc.dsl.diagnostics import UserError
    from netc.runtime.fit import fit_graph, fit_signature, load_images
    from netc.runtime.weights import write_safetensors

    if not args.output.endswith(".safetensors"):
        raise UserError(f"{args.output}: netc fit writes a .safetensors file")
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1; got {args.batch_size}")
    start = time.perf_counter()
    check_outputs(args.output)
    graph = load_graph(args)
    weights = base_weights(graph, args.weights, args.seed)
    images = load_images(args.data, next(iter(graph.inputs.values())).shape)
    print(f"{images.name}: {len(images.x):,} images")
    fitted = fit_graph(graph, weights, images, args.batch_size, log=print)
    write_safetensors(args.output, fitted, {"netc_net": graph.name,
                                            "netc_fit": fit_signature(graph)})
    print(f"wrote {args.output} ({time.perf_counter() - start:.2f} s)")
    return 0
