"""Axis order: ``permute(dims)`` and ``transpose(a, b)`` over the per-sample axes.

Axes are counted without the batch axis, as every netc shape: ``permute([1, 2, 0])`` turns a
CxHxW map into HxWxC (torchvision's ``Permute([0, 2, 3, 1])`` in ConvNeXt's block) and
``permute([2, 0, 1])`` turns it back; ``transpose(0, 1)`` swaps two axes (an LxD sequence to
DxL). The values are those of the input; only their order changes.

ONNX: one ``Transpose`` whose ``perm`` keeps the batch axis first.

For receptive fields a permutation is a 1x1 window at stride 1: each output value is one input
value, so the field of every position carries through it (the analyses would otherwise take a
CxHxW -> HxWxC permutation, whose every axis changes, for a reshape that scatters positions).
"""

from __future__ import annotations

import numpy as np

from netc.compiler.ops.base import ArgError, ShapeError, fmt_shape
from netc.compiler.ops.domains import between
from netc.compiler.ops.opdef import OpDef, register
from netc.compiler.ops.params import INT, INTS, Param

AXIS = between(0, 2, text="a per-sample axis: 0, 1 or 2")
_POINT = ((1, 1), (1, 1), (1, 1))  # the receptive-field geometry of a value-to-value map


def permuted_moments(dims, ins, out):
    """The channel moments after reordering axes by ``dims``: kept where axis 0 stays first;
    otherwise each new axis-0 slice holds every old channel, so all get their mixture's
    moments (mean of the means; mean of the variances plus the variance of the means)."""
    mu, var = ins[0]
    if dims[0] == 0:
        return mu, var
    c = out[0]
    return np.full(c, mu.mean()), np.full(c, var.mean() + mu.var())


class _Reorder(OpDef):
    """An op that reorders the per-sample axes by ``self.dims(a, rank)``."""

    def dims(self, a, rank: int) -> tuple[int, ...]:
        raise NotImplementedError

    def infer_shape(self, a, ins):
        dims = self.dims(a, len(ins[0]))
        return tuple(ins[0][d] for d in dims)

    def geometry(self, a, ins):
        return _POINT if len(ins[0]) == 3 else None

    def seeded_moments(self, a, ins, out, w):
        return permuted_moments(self.dims(a, len(out)), ins, out)

    def to_torch(self, a, ins, out):
        import torch.nn as nn

        perm = (0, *(d + 1 for d in self.dims(a, len(ins[0]))))

        class Permute(nn.Module):
            """torchvision's ``ops.misc.Permute``: ``x.permute(perm)``, batch axis first."""

            def forward(self, x):
                return x.permute(perm)

            def extra_repr(self) -> str:
                return f"perm={perm}"

        return Permute()

    def to_onnx(self, tape, node, inputs, weights):
        dims = self.dims(node.attrs, len(node.shape))
        return tape.op("Transpose", inputs, name=node.name, perm=[0, *(d + 1 for d in dims)])


@register
class Permute(_Reorder):
    name = "permute"
    doc = ("the per-sample axes in a new order (the batch axis stays first): permute(dims); "
           "permute([1, 2, 0]): CxHxW -> HxWxC")
    params = (Param("dims", INTS, domain=AXIS,
                    doc="the input axis each output axis takes, a permutation of 0..rank-1"),)

    def normalise(self, a):
        dims = tuple(a.dims)
        if sorted(dims) != list(range(len(dims))):
            raise ArgError(f"permute: dims must list each axis 0..{len(dims) - 1} once; "
                           f"got {list(dims)}", "dims")
        return a.replace(dims=dims)

    def dims(self, a, rank):
        return a.dims

    def infer_shape(self, a, ins):
        if len(a.dims) != len(ins[0]):
            raise ShapeError(f"permute: {list(a.dims)} orders {len(a.dims)} axes; the input "
                             f"{fmt_shape(ins[0])} has {len(ins[0])} (the batch axis is not "
                             f"counted)")
        return super().infer_shape(a, ins)


@register
class Transpose(_Reorder):
    name = "transpose"
    doc = "two per-sample axes swapped (the batch axis is not counted): transpose(a, b)"
    params = (Param("a", INT, domain=AXIS), Param("b", INT, domain=AXIS))

    def normalise(self, a):
        if a.a == a.b:
            raise ArgError(f"transpose: the two axes must differ; got {a.a} twice", "b")
        return a

    def dims(self, a, rank):
        dims = list(range(rank))
        dims[a.a], dims[a.b] = dims[a.b], dims[a.a]
        return tuple(dims)

    def infer_shape(self, a, ins):
        rank = len(ins[0])
        if max(a.a, a.b) >= rank:
            raise ShapeError(f"transpose({a.a}, {a.b}): the input {fmt_shape(ins[0])} has axes "
                             f"0..{rank - 1} (the batch axis is not counted)")
        return super().infer_shape(a, ins)
