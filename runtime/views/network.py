"""The part of a network a view needs, built in eval mode with the user's weights or random ones.

Only the backward slice of the requested layers is built (a ``conv3`` view of VGG-16 never
initialises its 100 M fc weights), and only those layers' tensors are read from ``--weights``.
"""

from __future__ import annotations

import sys

from netc.compiler.ir import Graph
from netc.dsl.diagnostics import UserError


def resolve_layer(graph: Graph, name: str, flag: str = "--layer") -> str:
    """The node ``name`` means (see :meth:`Graph.resolve`); a one-line error naming candidates."""
    node = graph.resolve(name)
    if node is None:
        near = graph.candidates(name)
        hint = (f"; it could be {', '.join(near[:6])}" if near else
                "; `netc summary` lists the layer names")
        raise UserError(f"{flag} {name}: {graph.name} has no layer named {name!r}{hint}")
    if graph[node].op == "input":
        raise UserError(f"{flag} {name}: that is the net's input, not a layer")
    return node


def prefix_graph(graph: Graph, targets: list[str]) -> Graph:
    """``graph`` cut to the nodes ``targets`` need, with ``targets`` as its outputs."""
    nodes = {n.name: n for n in graph.slice(targets)}
    inputs = {k: v for k, v in graph.inputs.items() if k in nodes}
    aliases = {k: v for k, v in graph.aliases.items() if v in nodes}
    return graph.copy(nodes=nodes, inputs=inputs, outputs=list(targets), aliases=aliases)


def build_view_network(graph: Graph, targets: list[str], weights: str | None, seed: int = 0,
                       gradients: bool = False):
    """An eval-mode :class:`NetModule` computing ``targets``; its parameters need no grad.
    ``weights`` is a path read by :func:`netc.runtime.weights.load_weights`; None: netc's
    seeded random weights for ``seed``, with :func:`random_weights_warning` (``gradients``:
    the view is a map sent back to the image)."""
    from netc.compiler.lower_torch.module import build_module
    from netc.runtime.weights import load_weights

    part = prefix_graph(graph, targets)
    if weights:
        # The whole file is checked against the whole net; only the part's tensors are kept.
        net = build_module(part, load_weights(graph, weights, layers=[n.name for n in part]),
                           seed=seed)
    else:
        print(random_weights_warning(part, gradients), file=sys.stderr)
        net = build_module(part, seed=seed)
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def random_weights_warning(part: Graph, gradients: bool = False) -> str:
    """What a view of netc's seeded weights shows. In a residual net the batch norm that ends
    each residual body starts with γ = 0 (zero-init residual, as torchvision's
    ``zero_init_residual``), so every body outputs a constant: the features are the shortcuts'
    alone, and a gradient map reaches the image only along the shortcuts (the stem and the
    strided 1x1 projections), which sample one pixel per output position: resnet50_v1_5's fc
    map of a 224x224 image is a 7x7 grid of dots. The warning says so where it applies."""
    from netc.compiler.numerics.seeded_weights import residual_body_ends

    text = (f"warning: no --weights given: {part.name} has random weights (netc's seeded "
            "initialiser), so the picture shows what random features do; pass --weights FILE "
            "(from `netc train` or `netc weights import`)")
    ends = residual_body_ends(part)
    if not ends:
        return text
    text += (f"\nwarning: with netc's seeded weights the batch norm that ends each of "
             f"{part.name}'s {len(ends)} residual bodies has gamma = 0 (zero-init residual), so "
             "every residual body outputs a constant and each block computes its shortcut "
             "alone")
    if gradients:
        text += ("; the body passes back no gradient, so only the shortcuts carry gradient to "
                 "the image, and this map shows the shortcut path (the stem and the strided "
                 "1x1 projections), not what the unit responds to: one dot for each position "
                 "the unit reads (a grid of dots, 7x7 for resnet50_v1_5's fc at 224x224; one "
                 "dot for a unit of a feature map)")
    return text


def image_input(graph: Graph):
    """The net's one image input (C×H×W); a one-line error for other nets."""
    if len(graph.inputs) != 1:
        raise UserError(f"{graph.name} has {len(graph.inputs)} inputs; these views need a net "
                        "with one image input")
    spec = next(iter(graph.inputs.values()))
    if len(spec.shape) != 3:
        raise UserError(f"{graph.name}'s input {spec.name} is not an image: its shape is "
                        f"{'x'.join(map(str, spec.shape))}")
    return spec


def parse_units(text: str, count: int, flag: str = "--units") -> list[int]:
    """``0-15``, ``3``, ``0,4,9-11`` as unit numbers, each checked against ``count``."""
    units: list[int] = []
    for part in text.split(","):
        lo, sep, hi = part.strip().partition("-")
        try:
            a = int(lo)
            b = int(hi) if sep else a
        except ValueError:
            raise UserError(f"{flag} {text!r}: expected numbers and ranges like 0-15 or "
                            "0,4,9-11") from None
        if a > b:
            raise UserError(f"{flag} {text!r}: the range {a}-{b} is empty")
        # The first unit out of range, found without listing the range.
        bad = a if not 0 <= a < count else count if b >= count else None
        if bad is not None:  # checked before the range is listed: 0-1000000000000 is no list
            raise UserError(f"{flag} {text}: unit {bad} is out of range; the layer has {count} "
                            f"channels (0..{count - 1})")
        units.extend(range(a, b + 1))
    return list(dict.fromkeys(units))
