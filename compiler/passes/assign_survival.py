"""Stochastic depth's survival probabilities, assigned to the residual blocks of a net.

Huang et al.'s linear decay rule: with ``with stochastic_depth(p_L=..., mode=...)`` declared,
residual block l of L survives with p_l = 1 − (l/L)(1 − p_L). ``assign_survival(graph) ->
graph`` is pure. Rules:

1. Without the declaration (``graph.options.stochastic_depth`` is None), the input graph itself
   is returned.
2. Residual blocks are counted in graph order, from 1 to L; each gets ``survival=p_l``.
3. A block that wrote its own survival (``residual(..., survival=0.8)``: attribute
   ``explicit``) keeps it, so a net can write its own schedule (EfficientNet's).
4. The declaration's ``mode`` (``batch``: one draw per block and mini-batch; ``row``: one per
   sample) goes to every block, explicit ones included.
"""

from __future__ import annotations

from netc.compiler.ir import Graph


def assign_survival(graph: Graph) -> Graph:
    """``graph`` with every residual block's survival and mode set (see the module docstring)."""
    p_last = graph.options.stochastic_depth
    if p_last is None:
        return graph
    mode = graph.options.stochastic_depth_mode
    blocks = [n for n in graph if n.op == "residual"]
    nodes = dict(graph.nodes)
    for l, node in enumerate(blocks, start=1):
        if node.attrs.get("explicit"):
            nodes[node.name] = node.replace(attrs=node.attrs.replace(mode=mode))
        else:
            p = 1.0 - (l / len(blocks)) * (1.0 - p_last)
            nodes[node.name] = node.replace(attrs=node.attrs.replace(survival=p, mode=mode))
    return graph.copy(nodes=nodes)
