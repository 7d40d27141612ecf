"""Shared blocks: ``share tower = ...`` applied more than once uses one set of weights.

Rules:

1. A shared block is applied as a labelled block named by its label or by its own name: its
   first use makes ``tower`` (a layer, or a scope of layers), later ones ``tower_1``, ... or
   the label they are given (``right -> tower as right_tower``).
2. Its first use makes the layers that own the weights. Every later use makes its own nodes
   (its own names, shapes and MACs: a summary row each) and pairs them in order with the
   first use's layers that hold weights or buffers; each node it pairs *shares* its partner
   (:attr:`netc.compiler.ir.Node.shares`), so the weights exist once.
3. The pairs must be the same layer with the same weights: a later use whose input gives a
   layer other weights (a conv shared across 1- and 3-channel inputs, an fc across two
   spatial sizes) or other layers is an error at that use, naming both inputs. The same
   weights on inputs of other heights and widths (a conv tower) are fine.
4. A node that already shares (a shared block inside a shared block) pairs with its owner, so
   every sharing node names the first layer of all.
5. Buffers are shared too: a batch norm in a shared block is one ``nn.BatchNorm2d`` called at
   every use. In training each use normalises by its own batch's statistics, and the one set
   of running statistics takes a momentum step per use, in the order of the uses (torch's
   behaviour for one module called twice); at inference every use reads the same running
   statistics (``tests/test_hostile_reach.py`` computes it by hand).
"""

from __future__ import annotations

from collections.abc import Callable

from netc.compiler.frontend.builder import GraphBuilder
from netc.compiler.frontend.context import Context
from netc.compiler.frontend.values import POISON, LabelledBlock, Poison, SharedBlock, Value
from netc.compiler.ops import fmt_shape


class Sharing:
    """Applies shared blocks (rules in the module docstring); ``apply`` is the applier's."""

    def __init__(self, ctx: Context, builder: GraphBuilder, apply: Callable):
        self.ctx = ctx
        self.builder = builder
        self.apply_block = apply

    def apply(self, b: SharedBlock, x: Value, label: str | None) -> Value | Poison:
        """``x -> tower``: the block's layers, sharing the first use's weights (rules 1-4)."""
        mark = self.builder.count()
        out = self.apply_block(LabelledBlock(b.inner, label or b.name, b.span), x)
        if out is POISON:
            return POISON
        graph = self.ctx.graph
        weighted = [n for n in self.builder.made_since(mark) if graph.state_size(graph[n])]
        record = b.record
        if record.owners is None:  # the first use owns the weights (rule 2)
            record.owners = [graph[n].shares or n for n in weighted]
            record.input_shape, record.first = x.shape, b.span
            return out
        problem = self._mismatch(b, x, weighted)
        if problem is not None:
            return self.ctx.error(b.span, problem)
        for name, owner in zip(weighted, record.owners):
            self.builder.share(name, owner)
        return out

    def _mismatch(self, b: SharedBlock, x: Value, weighted: list[str]) -> str | None:
        """Why this use cannot share the first use's weights (rule 3), or None."""
        graph, record = self.ctx.graph, b.record
        here = f"input {fmt_shape(x.shape)}"
        first = f"input {fmt_shape(record.input_shape)}"
        where = ""
        if record.first is not None and record.first.line:
            where = f" (line {record.first.line})"
        if len(weighted) != len(record.owners):
            return (f"shared block {b.name!r} makes {len(weighted)} layers with weights for "
                    f"{here} but {len(record.owners)} at its first use{where}, for {first}; "
                    "a shared block must make the same layers at every use")
        for name, owner in zip(weighted, record.owners):
            node, mine = graph[name], graph[owner]
            size, theirs = graph.state_size(node), graph.state_size(mine)
            if node.op != mine.op or node.attrs != mine.attrs or size != theirs:
                in_here = fmt_shape(graph[node.inputs[0]].shape) if node.inputs else "?"
                in_first = fmt_shape(graph[mine.inputs[0]].shape) if mine.inputs else "?"
                return (f"shared block {b.name!r}: its layer {owner} holds {theirs:,} weights "
                        f"for {first} (its own input {in_first}) at its first use{where}, but "
                        f"would need {size:,} for {here} (its input {in_here}); a shared "
                        "block's weights must fit every input it is applied to")
        return None
