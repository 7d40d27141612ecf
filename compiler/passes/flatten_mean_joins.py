"""Flatten FractalNet's nested mean joins into one join per depth.

FractalNet's expansion rule f_{C+1} = [f_C ∘ f_C] ⊕ conv nests binary joins; the paper's join
takes the mean of every column meeting at that depth, so ``mean(mean(a, b), c)`` must become
``mean(a, b, c)``. ``flatten_mean_joins(graph) -> graph`` is pure. Rules:

1. A ``mean`` input of a ``mean`` node is merged into it when the inner join is read by nothing
   else, is not a graph output, and has the same ``droppath`` attribute: its inputs take its
   place, in order, each keeping its ``columns`` number.
2. Joins are visited in graph order, so a chain of nested joins collapses into the outermost.
3. A merged inner join is removed, and so are scope aliases that named it.
4. Every other node keeps its name, inputs and attributes; with nothing to merge, the input
   graph itself is returned.
"""

from __future__ import annotations

from netc.compiler.ir import Graph


def flatten_mean_joins(graph: Graph) -> Graph:
    """``graph`` with nested mean joins merged (see the module docstring for the rules)."""
    users = graph.consumers()
    nodes = dict(graph.nodes)
    removed: set[str] = set()
    for name in graph.nodes:
        node = nodes[name]
        if node.op != "mean":
            continue
        inputs, columns, merged = [], [], False
        for inp, col in zip(node.inputs, node.attrs["columns"]):
            src = nodes[inp]  # already flattened itself (rule 2)
            if (src.op == "mean" and users[inp] == [name] and inp not in graph.outputs
                    and src.attrs.get("droppath") == node.attrs.get("droppath")):
                inputs.extend(src.inputs)
                columns.extend(src.attrs["columns"])
                removed.add(inp)
                merged = True
            else:
                inputs.append(inp)
                columns.append(col)
        if merged:
            nodes[name] = node.replace(inputs=tuple(inputs),
                                       attrs=node.attrs.replace(columns=tuple(columns)))
    if not removed:
        return graph
    return graph.copy(nodes={k: v for k, v in nodes.items() if k not in removed},
                      aliases={a: t for a, t in graph.aliases.items() if t not in removed})
