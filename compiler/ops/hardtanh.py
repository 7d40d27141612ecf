"""``hardtanh(min=-1, max=1)``: x clipped to [min, max] (torch's ``nn.Hardtanh``; ONNX Clip).

The op shows what adding one takes: this file and its row in ``tests/test_onnx_ops.py``.
Its two bounds are float32 numbers (their domain) and must be in order (``normalise``: the
spec's located error); its seeded statistics follow from its numpy form, as any activation's.
"""

from __future__ import annotations

import numpy as np

from netc.compiler.ops.activation import Activation
from netc.compiler.ops.domains import FLOAT32
from netc.compiler.ops.base import ArgError
from netc.compiler.ops.opdef import register
from netc.compiler.ops.params import FLOAT, Param


@register
class HardTanh(Activation):
    name = "hardtanh"
    doc = "hardtanh(min=-1, max=1): x clipped to [min, max] (torch's Hardtanh)"
    params = (Param("min", FLOAT, -1.0, domain=FLOAT32, doc="the lower bound"),
              Param("max", FLOAT, 1.0, domain=FLOAT32, doc="the upper bound, above min"))

    def normalise(self, a):
        if not a.min < a.max:
            raise ArgError(f"hardtanh: min must be less than max; got min={a.min:g}, "
                           f"max={a.max:g}", "max")
        return a

    def numpy(self, a, x):
        return np.clip(x, a.min, a.max)

    def to_torch(self, a, ins, out):
        import torch.nn as nn

        return nn.Hardtanh(a.min, a.max)

    def to_onnx(self, tape, node, inputs, weights):
        a = node.attrs
        return tape.op("Clip", inputs, name=node.name, min=a.min, max=a.max)
