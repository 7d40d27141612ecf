"""``reshape``: the same values in a new per-sample shape (Caffe's Reshape layer).

The shape excludes the batch axis, as every netc shape does; one dimension may be -1 (inferred
from the others). The importer resolves Caffe's 0 ("copy this axis") itself, so the op holds
concrete numbers. Values keep their C-order (channel-major) sequence, as in Caffe and torch.
"""

from __future__ import annotations

import math

import numpy as np

from netc.compiler.ops import ArgError, OpDef, Param, ShapeError, register
from netc.compiler.ops.domains import MAX_SIZE, between


@register
class Reshape(OpDef):
    name = "reshape"
    doc = "the same values in a new per-sample shape: reshape([c, h, w]) (one dim may be -1)"
    params = (Param("shape", "ints", domain=between(-1, MAX_SIZE, text="a size, or -1"),
                    doc="the new shape without the batch axis"),)

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
                raise ShapeError(f"reshape: {'x'.join(map(str, ins[0]))} ({total} values) "
                                 f"does not divide into {list(a.shape)}")
            return tuple(total // known if d == -1 else d for d in a.shape)
        if known != total:
            raise ShapeError(f"reshape: {'x'.join(map(str, ins[0]))} holds {total} values, "
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
