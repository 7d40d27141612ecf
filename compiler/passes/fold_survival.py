"""Fold stochastic depth's inference scale into the last layer of each residual body.

At inference a residual block computes shortcut + p_l · body (Huang et al.). When the body ends
in a linear layer, p_l can be multiplied into that layer's weights instead of into the data,
which saves one ONNX node per block. ``fold_survival(graph, weights) -> (graph, weights)`` is
pure. Rules:

1. A ``residual`` node with survival p ≠ 1 whose body input (its first input) is a node whose
   op ``scales_with_weights`` (``conv``, ``fc``, ``bn``), that nothing else reads and that is
   not an output or in ``keep``: that node's ``weight`` and ``bias`` (a layer scale's ``gamma``)
   are multiplied by p (a conv without bias has none to scale), and the residual's survival
   becomes 1.
2. Any other residual keeps its survival; the ONNX lowering then writes a Mul.
3. Per-sample stochastic depth (``mode=row``) has no inference scale: it is left alone.

Run it after :func:`netc.compiler.passes.fold_bn.fold_bn`, so a body ending conv -> bn scales the
merged conv.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from netc.compiler.ir import Graph


def fold_survival(graph: Graph, weights: Mapping[str, np.ndarray],
                  keep: Iterable[str] = ()) -> tuple[Graph, dict[str, np.ndarray]]:
    """``graph`` with survival scales folded into body weights where rule 1 allows."""
    keep = set(keep) | set(graph.outputs)
    users = graph.consumers()
    new_weights = dict(weights)
    nodes = dict(graph.nodes)
    changed = False
    for node in graph:
        p = node.attrs.get("survival", 1.0) if node.op == "residual" else 1.0
        if p == 1.0 or node.attrs.get("mode", "batch") != "batch":  # rule 3
            continue
        body = graph.nodes[node.inputs[0]]
        if body.op == "input" or not body.opdef.scales_with_weights \
                or users[body.name] != [node.name] or body.name in keep:
            continue
        for key in ("weight", "bias", "gamma"):  # the learned arrays that scale the output
            full = f"{body.name}.{key}"
            if full in new_weights:
                new_weights[full] = (new_weights[full].astype(np.float64) * p).astype(np.float32)
        nodes[node.name] = node.replace(attrs=node.attrs.replace(survival=1.0))
        changed = True
    return (graph.copy(nodes=nodes) if changed else graph), new_weights
