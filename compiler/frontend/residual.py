"""Residual blocks: ``residual(body, shortcut=..., survival=...)``, and where the shortcut
comes from.

Rules:

1. ``residual(body, shortcut=s, survival=p)`` takes one body of layers; ``s`` is one of
   :data:`SHORTCUTS` or layers of its own (``shortcut=conv(256, 1, bias=false)``); ``p`` is in
   (0, 1] (stochastic depth's survival, written explicitly).
2. Applied to ``x``, the body gives ``y``; the block's node adds ``y`` and the shortcut.
3. Shortcut layers are always applied, in a scope named ``shortcut``, and must give ``y``'s
   shape (pre-activation ResNets project without a bn).
4. Otherwise, when ``x`` and ``y`` have one shape, the shortcut is ``x`` itself (except
   ``shortcut=conv``, ResNet's option C, which always projects).
5. ``identity`` with shapes that differ is an error naming both shapes.
6. ``pad`` and ``pad_avg`` (option A) subsample ``x`` by the stride that maps its height and
   width onto ``y``'s (or average-pool it) and pad the new channels with zeros.
7. ``project`` and ``conv`` (option B / C) apply a 1x1 conv with that stride, followed by a
   bn when the body has one, in the scope ``shortcut``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from netc.compiler import ops as opreg
from netc.compiler.frontend.builder import GraphBuilder
from netc.compiler.frontend.context import Context
from netc.compiler.frontend.values import POISON, Block, OpBlock, OpRef, ResidualBlock, Value
from netc.compiler.ops import Attrs, fmt_shape
from netc.dsl.diagnostics import Span

SHORTCUTS = ("identity", "pad", "pad_avg", "project", "conv")


def residual_block(ctx: Context, args: list, kwargs: dict, span: Span):
    """The block of a ``residual(...)`` call (rule 1), or ``POISON`` after a diagnostic."""
    body = args[0] if args else kwargs.pop("body", None)
    if len(args) > 1:
        return ctx.error(span, "residual takes one body; give options by name "
                               "(shortcut=..., survival=...)")
    if not isinstance(body, Block):
        return ctx.error(span, "residual needs a body of layers: residual(conv(...) -> bn)")
    shortcut = kwargs.pop("shortcut", "identity")
    if isinstance(shortcut, OpRef) or (isinstance(shortcut, OpBlock)
                                       and shortcut.op.name == "identity"):
        shortcut = shortcut.op.name  # shortcut=identity / shortcut=conv
    survival = kwargs.pop("survival", None)
    if kwargs:
        return ctx.error(span, f"residual has no parameter {next(iter(kwargs))!r}; "
                               "it takes (body, shortcut, survival)")
    if not isinstance(shortcut, Block) and shortcut not in SHORTCUTS:
        return ctx.error(span, f"residual: shortcut must be one of {', '.join(SHORTCUTS)}; "
                               f"got {shortcut!r} (or layers: shortcut=conv(256, 1))")
    if survival is not None and not (isinstance(survival, (int, float))
                                     and 0 < survival <= 1):
        return ctx.error(span, f"residual: survival must be in (0, 1]; got {survival!r}")
    if not isinstance(shortcut, Block):
        shortcut = str(shortcut)
    return ResidualBlock(body, shortcut, survival, span)


class Residuals:
    """Applies residual blocks; ``apply(block, x)`` applies their bodies and shortcut layers."""

    def __init__(self, ctx: Context, builder: GraphBuilder,
                 apply: Callable[[Any, Value], Value | Any]):
        self.ctx = ctx
        self.builder = builder
        self.apply_block = apply

    def apply(self, b: ResidualBlock, x: Value, label):
        """The residual node of ``b`` applied to ``x`` (rule 2)."""
        ctx = self.ctx
        ctx.path.append("residual")
        try:
            y = self.apply_block(b.body, x)
            if y is POISON:
                return POISON
            short = self.shortcut(b, x, y)
        finally:
            ctx.path.pop()
        if short is POISON:
            return POISON
        if short.shape != y.shape:  # a pad_avg shortcut floors where the body rounded up
            return ctx.error(b.span, f"residual: body gives {fmt_shape(y.shape)}, "
                                     f"shortcut={b.shortcut} gives {fmt_shape(short.shape)}")
        attrs = Attrs(survival=b.survival if b.survival is not None else 1.0,
                      explicit=b.survival is not None)
        return self.builder.add_node("residual", [y, short], attrs, b.span, label)

    def shortcut(self, b: ResidualBlock, x: Value, y: Value):
        """The value added to the body's output ``y`` (rules 3-7)."""
        if isinstance(b.shortcut, Block):
            return self.layer_shortcut(b, x, y)
        if x.shape == y.shape and b.shortcut != "conv":
            return x
        if b.shortcut == "identity":
            return self.ctx.error(
                b.span, f"residual: body gives {fmt_shape(y.shape)}, shortcut gives "
                        f"{fmt_shape(x.shape)}; declare shortcut=project or shortcut=pad")
        if len(x.shape) != 3 or len(y.shape) != 3:
            return self.ctx.error(
                b.span, f"residual: body gives {fmt_shape(y.shape)}, its input is "
                        f"{fmt_shape(x.shape)}; shortcut={b.shortcut} matches feature maps "
                        "(CxHxW) only: the body must keep a flat vector's size")
        (cx, hx, wx), (cy, hy, wy) = x.shape, y.shape
        stride = -(-hx // hy) if hy else 0
        if stride < 1 or -(-hx // stride) != hy or -(-wx // stride) != wy:
            return self.ctx.error(b.span, f"residual: cannot match shortcut {fmt_shape(x.shape)} "
                                          f"to body {fmt_shape(y.shape)} with one stride")
        if b.shortcut in ("pad", "pad_avg"):
            if cy < cx:
                return self.ctx.error(b.span, f"residual: shortcut={b.shortcut} cannot reduce "
                                              f"{cx} channels to {cy}; use shortcut=project")
            mode = "avg" if b.shortcut == "pad_avg" else "subsample"
            attrs = opreg.REGISTRY["shortcut_pad"].bind([cy, stride], {"mode": mode})
            return self.builder.add_node("shortcut_pad", [x], attrs, b.span, "shortcut")
        return self.projection(b, x, y, stride)

    def projection(self, b: ResidualBlock, x: Value, y: Value, stride: int):
        """Option B (``project``) or C (``conv``): a 1x1 conv, with a bn if the body has one."""
        builder = self.builder
        nodes = builder.ctx.graph.nodes
        with_bn = any(nodes[n].op == "bn" for n in builder.body_nodes(x, y))
        conv = opreg.REGISTRY["conv"].bind([y.shape[0], 1],
                                           {"stride": stride, "bias": not with_bn})

        def project():
            v = builder.add_node("conv", [x], conv, b.span, None)
            if with_bn and v is not POISON:
                v = builder.add_node("bn", [v], opreg.REGISTRY["bn"].bind([], {}), b.span, None)
            return v
        return builder.in_scope(builder.fresh("shortcut", numbered=False), project)

    def layer_shortcut(self, b: ResidualBlock, x: Value, y: Value):
        """``shortcut=conv(256, 1, stride=2, bias=false)``: the given layers, always applied,
        in the scope ``shortcut`` (rule 3)."""
        builder = self.builder
        short = builder.in_scope(builder.fresh("shortcut", numbered=False),
                                 lambda: self.apply_block(b.shortcut, x))
        if isinstance(short, Value) and short.shape != y.shape:
            return self.ctx.error(b.span, f"residual: body gives {fmt_shape(y.shape)}, shortcut "
                                          f"layers give {fmt_shape(short.shape)}")
        return short
