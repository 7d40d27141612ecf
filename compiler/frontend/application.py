"""Application: a block applied to the value flowing through a chain adds nodes to the graph.

Rules:

1. A chain starts from a named value (``image -> ...``); applying one to another value, or a
   block with nothing to start from, is an error.
2. A layer (:class:`OpBlock`) adds one node, named by its label or numbered
   (:mod:`netc.compiler.frontend.builder`).
3. A definition call evaluates its defaults (:mod:`netc.compiler.frontend.calls`), opens a
   scope named by its label or ``<def><k>`` (an ``inline def`` without a label opens none),
   evaluates its body there and applies it; each call is one level of depth and one frame of
   the expansion path, and its scope is recorded in ``graph.calls``.
4. A labelled layer, join, residual or call takes the label as its name; a labelled group
   (``(a -> b) as name``) opens a scope ``name``.
5. Chains, ``b * n``, ``for i in a..b`` and ``for t, c in rows`` apply their parts in turn, in
   loops; every turn counts one step, even one that makes nothing.
6. A join applies each branch to the same input (a branch that starts from a named value
   starts there) and adds the join node. A mean join records each input's FractalNet column:
   its last branch is its shallowest column; joins inside branch i sit (n - 1 - i) deeper.
7. Residual blocks are applied by :mod:`netc.compiler.frontend.residual`; shared blocks
   (``share tower = ...``) by :mod:`netc.compiler.frontend.sharing`.
"""

from __future__ import annotations

from typing import Any

from netc.compiler.frontend.builder import GraphBuilder
from netc.compiler.frontend.context import Context
from netc.compiler.frontend.expressions import Evaluator
from netc.compiler.frontend.residual import Residuals
from netc.compiler.frontend.sharing import Sharing
from netc.compiler.frontend.values import (
    POISON,
    Block,
    DefBlock,
    ForBlock,
    ForEachBlock,
    JoinBlock,
    LabelledBlock,
    OpBlock,
    Poison,
    ResidualBlock,
    SeqBlock,
    SharedBlock,
    TimesBlock,
    Value,
    ValueRef,
    starts_with_value,
)


class Applier:
    """Applies blocks to values (rules in the module docstring)."""

    def __init__(self, ctx: Context, builder: GraphBuilder, evaluator: Evaluator):
        self.ctx = ctx
        self.builder = builder
        self.evaluator = evaluator
        self.residuals = Residuals(ctx, builder, self.apply)
        self.sharing = Sharing(ctx, builder, self.apply)
        self.column_offset = 0  # FractalNet columns of the joins being applied (rule 6)
        # Which method applies which kind of block.
        self._rules = {
            OpBlock: self.layer, LabelledBlock: self.labelled, DefBlock: self.definition,
            SeqBlock: self.chain, TimesBlock: self.times, ForBlock: self.range_loop,
            ForEachBlock: self.for_each, JoinBlock: self.join,
            ResidualBlock: self.residuals.apply, SharedBlock: self.sharing.apply,
        }

    def apply(self, block: Any, x: Value | Poison | None, label: str | None = None):
        """Apply ``block`` to the value ``x`` (None at the start of a statement)."""
        if block is POISON:
            return POISON
        if isinstance(block, ValueRef):
            if x is not None:
                return self.ctx.error(block.span, f"{block.name!r} is a value; a chain can start "
                                                  "from a value but cannot flow into one")
            return block.value
        if x is None and not starts_with_value(block):
            return self.ctx.error(block.span, "this chain has no input: start it from a value, "
                                              "as in image -> ...")
        if x is POISON:
            return POISON
        self.ctx.step(block.span)
        trace = self.ctx.trace
        if trace is None:
            return self._rules[type(block)](block, x, label)
        first = len(self.ctx.graph.nodes)  # an editor asks what each block made (context.Trace)
        value = self._rules[type(block)](block, x, label)
        trace.record(block.span, self.ctx.graph, first, value)
        return value

    def layer(self, b: OpBlock, x: Value, label):
        """One layer: one node (rule 2)."""
        return self.builder.add_node(b.op.name, [x], b.attrs, b.span, label)

    def labelled(self, b: LabelledBlock, x: Value, label):
        """``x as name`` (rule 4)."""
        inner = b.inner
        if isinstance(inner, (OpBlock, JoinBlock, ResidualBlock, DefBlock, LabelledBlock,
                              SharedBlock)):
            return self.apply(inner, x, b.label)
        # A labelled group opens a scope of that name.
        builder = self.builder
        return builder.in_scope(builder.fresh(b.label, numbered=False),
                                lambda: self.apply(inner, x))

    def definition(self, b: DefBlock, x: Value, label):
        """A definition call applied to ``x`` (rule 3)."""
        ctx, builder, evaluator = self.ctx, self.builder, self.evaluator
        bound = evaluator.calls.bind_defaults(b, x)
        if bound is None:
            return POISON
        env, described = bound
        ctx.enter(b.span, described)
        inline = b.defn.inline and not label
        if not inline:
            local = builder.fresh(label, numbered=False) if label else \
                builder.fresh(b.defn.name, True)
            # Which scopes are definition calls, for the ONNX lowering's --functions.
            ctx.graph.calls[builder.full(local)] = described
        ctx.path.append(described)
        try:
            def body():
                value = evaluator.eval(b.defn.body, env)
                if value is POISON:
                    return POISON
                if not isinstance(value, Block):
                    return evaluator.not_a_block(value, b.defn.body)
                return self.apply(value, x)
            return body() if inline else builder.in_scope(local, body)
        finally:
            ctx.leave()
            ctx.path.pop()

    def chain(self, b: SeqBlock, x: Value | None, label):
        """``a -> b -> c``: each part applied to the output of the one before."""
        steps = []  # SeqBlock(SeqBlock(a, b), c): a loop down the chain, then along it
        while isinstance(b, SeqBlock):
            steps.append(b.then)
            b = b.first
        x = self.apply(b, x)
        for then in reversed(steps):
            x = self.apply(then, x)
        return x

    def times(self, b: TimesBlock, x: Value, label):
        """``b * n``: ``b`` applied n times in a row."""
        for _ in range(b.times):
            if x is POISON:
                return POISON
            self.ctx.step(b.span)  # an empty body (relu * 0) * 10**9 still costs each turn
            x = self.apply(b.body, x)
        return x

    def range_loop(self, b: ForBlock, x: Value, label):
        """``body for i in lo..hi``: ``body`` with i = lo, ..., hi in turn."""
        envs = ({**b.env, b.var: i} for i in range(b.lo, b.hi + 1))
        return self.each(b.body, b.span, envs, x)

    def for_each(self, b: ForEachBlock, x: Value, label):
        """``body for t, c in rows``: ``body`` with each row's items bound in turn."""
        envs = ({**b.env, **(dict(zip(b.vars, item)) if len(b.vars) > 1
                             else {b.vars[0]: item})} for item in b.items)
        return self.each(b.body, b.span, envs, x)

    def each(self, body, span, envs, x: Value):
        """``body`` evaluated in each of ``envs`` in turn, each block applied to the last
        output: the loop behind ``for i in a..b`` and ``for t, c in rows``."""
        evaluator = self.evaluator
        for env in envs:
            if x is POISON:
                return POISON
            self.ctx.step(span)
            value = evaluator.eval(body, env)
            if value is POISON:
                return POISON
            if not isinstance(value, Block):
                return evaluator.not_a_block(value, body)
            x = self.apply(value, x)
        return x

    def join(self, b: JoinBlock, x: Value, label):
        """Each branch applied to ``x``, then the join node (rule 6)."""
        self.ctx.path.append(b.op.name)
        outs = []
        columns = []
        n = len(b.branches)
        try:
            for i, branch in enumerate(b.branches):
                saved = self.column_offset
                if b.op.name == "mean":
                    # The FractalNet column of branch i: the last branch is this join's
                    # shallowest column; joins inside branch i sit (n - 1 - i) columns deeper.
                    columns.append(saved + n - i)
                    self.column_offset = saved + (n - 1 - i)
                try:
                    src = None if starts_with_value(branch) else x
                    outs.append(self.apply(branch, src))
                finally:
                    self.column_offset = saved
        finally:
            self.ctx.path.pop()
        if any(o is POISON for o in outs):
            return POISON
        attrs = b.attrs.replace(columns=tuple(columns)) if b.op.name == "mean" else b.attrs
        return self.builder.add_node(b.op.name, outs, attrs, b.span, label)
