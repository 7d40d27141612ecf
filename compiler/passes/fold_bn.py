"""Fold inference-mode batch norm into the convolution (or fully connected layer) before it.

``fold_bn(graph, weights) -> (graph, weights)`` is pure: it returns a new graph and a new
weights dict and leaves its arguments as they were. Rules:

1. A ``bn`` node is folded when its input is a node whose op declares ``folds_bn`` (``conv``,
   ``fc``) that nothing else reads, and neither node is a graph output nor named in ``keep``
   (their values must stay visible). Ops that declare ``vanishes_at_eval`` (``dropout``,
   ``identity``) may stand between them, each read by nothing but the next: FractalNet's unit
   is conv -> dropout -> bn -> relu.
2. With s = γ / √(σ² + ε): the weight becomes W·s (per output channel) and the bias
   (b − μ)·s + β, where b is 0 for a layer without bias. s and the bias are computed in
   float64; W·s is one float32 multiplication.
3. The merged node keeps the conv's name, gains ``bias=true``, and takes the bn's place:
   nodes that read the bn read it (or the last vanishing op between them, which now passes on
   the normalised value); a scope alias that named the bn names it. The bn node and its four
   arrays are gone.
4. Anything else (a bn after a pool, a join or the input) is left alone.

    >>> from netc.compiler.frontend.loader import load
    >>> from netc.compiler.numerics.seeded_weights import init_weights
    >>> g = load("resnet18")
    >>> folded, w = fold_bn(g, init_weights(g))
    >>> sum(n.op == "bn" for n in g), sum(n.op == "bn" for n in folded)
    (20, 0)
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

import numpy as np

from netc.compiler.ir import Graph, Node


def fold_bn(graph: Graph, weights: Mapping[str, np.ndarray],
            keep: Iterable[str] = ()) -> tuple[Graph, dict[str, np.ndarray]]:
    """``graph`` with every foldable bn merged into its conv or fc (rules in the docstring)."""
    keep = set(keep) | set(graph.outputs)
    users = graph.consumers()
    new_weights = dict(weights)
    merged: dict[str, str] = {}  # bn name -> the conv/fc it became part of
    nodes: dict[str, Node] = {}
    for node in graph:
        node = node.replace(inputs=tuple(merged.get(i, i) for i in node.inputs))
        source = _foldable(graph, node, users, keep) if node.op == "bn" else None
        if source is not None:
            layer = nodes[source]
            _fold_arrays(layer.name, node.name, node.attrs.eps, new_weights)
            nodes[layer.name] = layer.replace(attrs=layer.attrs.replace(bias=True))
            merged[node.name] = node.inputs[0]  # the layer, or the vanishing op after it
            continue
        nodes[node.name] = node
    if not merged:
        return graph, new_weights
    aliases = {a: merged.get(t, t) for a, t in graph.aliases.items()}
    aliases.update(merged)  # the bn's name still finds the value it computed
    return graph.copy(nodes=nodes, aliases=aliases), new_weights


def source_at_eval(graph: Graph, node: Node, users: Mapping[str, list[str]],
                   keep: Collection[str] = ()) -> tuple[str, Node]:
    """(reader, source): the node that computes ``node``'s first input at inference, looking
    through ops that vanish there (dropout, identity), each read by nothing but the next and not
    in ``keep``; ``reader`` is the node that reads ``source`` (``node`` itself, or the last
    vanishing op). ``users`` is ``graph.consumers()``."""
    reader, src = node.name, graph.nodes[node.inputs[0]]
    while src.op != "input" and src.opdef.vanishes_at_eval and users[src.name] == [reader] \
            and src.name not in keep:
        reader, src = src.name, graph.nodes[src.inputs[0]]
    return reader, src


def _foldable(graph: Graph, bn: Node, users, keep: set[str]) -> str | None:
    """The conv or fc that ``bn`` folds into (rule 1), or None."""
    if bn.name in keep:
        return None
    # The identity at inference: bn(drop(conv x)) = drop(bn(conv x)).
    reader, src = source_at_eval(graph, bn, users, keep)
    if src.op != "input" and src.opdef.folds_bn and users[src.name] == [reader] \
            and src.name not in keep:
        return src.name
    return None


def _fold_arrays(layer: str, bn: str, eps: float, weights: dict[str, np.ndarray]) -> None:
    gamma, beta, mean, var = (weights.pop(f"{bn}.{k}").astype(np.float64)
                              for k in ("weight", "bias", "running_mean", "running_var"))
    scale = gamma / np.sqrt(var + eps)
    w = weights[f"{layer}.weight"]
    b = weights.get(f"{layer}.bias")
    b = np.zeros(len(scale)) if b is None else b.astype(np.float64)
    # W·s in float32: 3x faster than float64 and within a few ulps of it.
    shaped = scale.astype(np.float32).reshape(-1, *([1] * (w.ndim - 1)))
    weights[f"{layer}.weight"] = np.multiply(w, shaped, dtype=np.float32)
    weights[f"{layer}.bias"] = ((b - mean) * scale + beta).astype(np.float32)
