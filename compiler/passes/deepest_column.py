"""FractalNet's "deepest column alone": a fractal network reduced to its deepest column.

Larsson et al. evaluate a trained FractalNet through one column only (the "deepest column
alone" row of their CIFAR table): each join passes its deepest input straight through, and the
network becomes a plain chain of B·2^(C−1) conv units with the pools and the classifier.

Rules, applied to a copy of the graph (the input graph is not changed):

1. A ``mean`` node with a ``columns`` attribute (set by the elaborator; 1 = the shallowest
   column) is replaced by its input with the largest column; every use of the join — node
   inputs, graph outputs, scope aliases — now names that input.
2. ``mean`` nodes without ``columns`` (a plain mean join written by hand) are kept.
3. Nodes no output needs any more (the shallower columns) are removed; aliases to removed
   nodes are dropped.
4. Every kept node keeps its name, attributes and shape, so the weights of the full network load
   into the extracted one by name, and ``netc summary`` rows read the same.
5. The net-wide drop-path declarations are removed (no join is left to drop from).
"""

from __future__ import annotations

from netc.compiler.ir import Graph


def has_columns(graph: Graph) -> bool:
    """Whether ``graph`` has any FractalNet join (a ``mean`` node with ``columns``)."""
    return any(n.op == "mean" and n.attrs.get("columns") for n in graph)


def deepest_column(graph: Graph) -> Graph:
    """The graph of ``graph``'s deepest column (see the module docstring for the rules)."""
    # Rule 1: where each join goes. Joins appear after their inputs, so a join's deepest input
    # has already been redirected when the join itself is met.
    redirect: dict[str, str] = {}
    for node in graph:
        if node.op == "mean" and node.attrs.get("columns"):
            cols = node.attrs["columns"]
            deepest = node.inputs[max(range(len(cols)), key=lambda i: cols[i])]
            redirect[node.name] = redirect.get(deepest, deepest)

    def target(name: str) -> str:
        return redirect.get(name, name)

    kept = {}
    for node in graph:
        if node.name in redirect:
            continue
        if any(i in redirect for i in node.inputs):
            node = node.replace(inputs=tuple(target(i) for i in node.inputs))
        kept[node.name] = node
    out = graph.copy(nodes=kept, outputs=[target(o) for o in graph.outputs],
                     aliases={a: target(t) for a, t in graph.aliases.items()})
    # Rule 3: keep only what the outputs need.
    needed = {n.name for n in out.slice(out.outputs)}
    out.nodes = {k: v for k, v in out.nodes.items() if k in needed}
    out.aliases = {a: t for a, t in out.aliases.items() if t in needed}
    # Rule 5.
    out.options = out.options.replace(droppath_local=None, droppath_global=None)
    return out
