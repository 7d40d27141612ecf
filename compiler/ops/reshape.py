"""Ops that change the layout of a tensor but not its values."""

from __future__ import annotations

import math

from netc.compiler.ops import OpDef, register


@register
class Flatten(OpDef):
    name = "flatten"
    doc = "CxHxW -> (C*H*W): channel-major, as PyTorch and Caffe flatten"

    def infer_shape(self, a, ins):
        return (math.prod(ins[0]),)

    def to_torch(self, a, ins, out):
        import torch.nn as nn

        return nn.Flatten(1)

    def to_onnx(self, tape, node, inputs, weights):
        return tape.op("Flatten", inputs, name=node.name, axis=1)
