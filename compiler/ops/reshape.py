"""Ops that change the layout of a tensor but not its values: ``flatten`` and ``reshape``.

``reshape`` is Caffe's Reshape layer: the shape excludes the batch axis, as every netc shape
does; one dimension may be -1 (inferred from the others). The importer resolves Caffe's 0
("copy this axis") itself, so the op holds concrete numbers. Values keep their C-order
(channel-major) sequence, as in Caffe and torch.
"""

from __future__ import annotations

import math

import numpy as np

from netc.compiler.ops.base import ArgError, ShapeError, fmt_shape
from netc.compiler.ops.domains import MAX_SIZE, between
from netc.compiler.ops.opdef import OpDef, keep_moments, register
from netc.compiler.ops.params import INTS, Param


@register
class Flatten(OpDef):
    name = "flatten"
    doc = "CxHxW -> (C*H*W): channel-major, as PyTorch and Caffe flatten"

    def infer_shape(self, a, ins):
        return (math.prod(ins[0]),)

    def seeded_moments(self, a, ins, out, w):
        # Each channel's moments, repeated over its positions (once for a flat input).
        mu, var = ins[0]
        return np.repeat(mu, out[0] // len(mu)), np.repeat(var, out[0] // len(var))

    def to_torch(self, a, ins, out):
        import torch.nn as nn

        return nn.Flatten(1)

    def to_onnx(self, tape, node, inputs, weights):
        return tape.op("Flatten", inputs, name=node.name, axis=1)


@register
class Reshape(OpDef):
    name = "reshape"
    doc = "the same values in a new per-sample shape: reshape([c, h, w]) (one dim may be -1)"
    params = (Param("shape", INTS, domain=between(-1, MAX_SIZE, text="a size, or -1"),
                    doc="the new shape without the batch axis"),)
    seeded_moments = keep_moments  # channels rearranged: their average (the driver's rule)

    def normalise(self, a):
        dims = tuple(a.shape)
        if not dims or len(dims) > 3 or any(d == 0 or d < -1 for d in dims) or \
                dims.count(-1) > 1:
            raise ArgError(f"reshape: the shape has 1 to 3 dimensions, each positive or one "
                           f"-1; got {list(dims)}", "shape")
        return a.replace(shape=dims)

    def infer_shape(self, a, ins):
        total = math.prod(ins[0])
        known = math.prod(d for d in a.shape if d != -1)
        if -1 in a.shape:
            if total % known:
                raise ShapeError(f"reshape: {fmt_shape(ins[0])} ({total} values) "
                                 f"does not divide into {list(a.shape)}")
            return tuple(total // known if d == -1 else d for d in a.shape)
        if known != total:
            raise ShapeError(f"reshape: {fmt_shape(ins[0])} holds {total} values, "
                             f"the shape {list(a.shape)} {known}")
        return tuple(a.shape)

    def to_torch(self, a, ins, out):
        import torch.nn as nn

        class Reshape(nn.Module):
            def forward(self, x):
                return x.reshape(x.shape[0], *out)

        return Reshape()

    def to_onnx(self, tape, node, inputs, weights):
        # 0 copies the batch axis, so ONNX shape inference keeps its symbolic name
        shape = tape.constant(f"{node.name}.shape", np.array([0, *node.shape], np.int64))
        return tape.op("Reshape", [inputs[0], shape], name=node.name)
