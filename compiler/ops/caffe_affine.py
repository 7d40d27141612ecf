"""Caffe's affine layers that netc's ``fc`` and ``bn`` do not cover.

- ``power``: Caffe's Power layer, ``(shift + scale · x)^power`` element by element.
- ``scale``: Caffe's Scale (or Bias) layer on its own, a learned per-channel ``weight`` (γ)
  and optional ``bias`` (β): ``γ_c · x + β_c``. (A Scale right after a BatchNorm is netc's
  ``bn`` instead.)
- ``fc_axis``: Caffe's InnerProduct with ``axis`` ≥ 2: the axes from ``axis`` on are flattened
  and mapped to ``out`` features, the axes before it are kept (``axis: 2`` on 6x75x113 gives
  6x10, one fc applied to each channel's 75·113 values). ``axis`` counts the batch axis, as
  Caffe does. ``fc`` is ``axis: 1``.
"""

from __future__ import annotations

import math

import numpy as np

from netc.compiler.ops.base import ArgError, ShapeError, per_channel
from netc.compiler.ops.domains import FLOAT32, POSITIVE, between
from netc.compiler.ops.formulas import fan_in_uniform
from netc.compiler.ops.opdef import OpDef, keep_moments, register
from netc.compiler.ops.params import BOOL, FLOAT, INT, Param


@register
class Power(OpDef):
    name = "power"
    doc = "Caffe's Power layer: power(power=1, scale=1, shift=0) = (shift + scale·x)^power"
    params = (Param("power", FLOAT, 1.0, domain=FLOAT32),
              Param("scale", FLOAT, 1.0, domain=FLOAT32),
              Param("shift", FLOAT, 0.0, domain=FLOAT32))
    seeded_moments = keep_moments  # left out of the seeded statistics (Caffe imports)

    def infer_shape(self, a, ins):
        return ins[0]

    def to_torch(self, a, ins, out):
        import torch.nn as nn

        class Power(nn.Module):
            def forward(self, x):
                y = x * a.scale + a.shift if (a.scale, a.shift) != (1.0, 0.0) else x
                return y if a.power == 1.0 else y ** a.power

        return Power()

    def to_onnx(self, tape, node, inputs, weights):
        a, n = node.attrs, node.name
        y = inputs[0]
        last = "scale" if a.power == 1.0 and a.shift == 0.0 else None
        if a.scale != 1.0:
            y = tape.op("Mul", [y, tape.float_constant(f"{n}.scale", a.scale)],
                        name=n if last == "scale" else f"{n}/scale")
        if a.shift != 0.0:
            y = tape.op("Add", [y, tape.float_constant(f"{n}.shift", a.shift)],
                        name=n if a.power == 1.0 else f"{n}/shift")
        if a.power != 1.0:
            y = tape.op("Pow", [y, tape.float_constant(f"{n}.power", a.power)], name=n)
        if y == inputs[0]:
            y = tape.op("Identity", [y], name=n)
        return y


@register
class Scale(OpDef):
    name = "scale"
    doc = "learned per-channel scale and shift, Caffe's Scale layer alone: scale(bias=true)"
    params = (Param("bias", BOOL, True),)
    seeded_moments = keep_moments  # starts as the identity (γ = 1, β = 0)

    def infer_shape(self, a, ins):
        return ins[0]

    def param_count(self, a, ins, out):
        return ins[0][0] * (2 if a.bias else 1)

    def init_weights(self, a, ins, out, rng):
        c = ins[0][0]
        w = {"weight": np.ones(c, np.float32)}
        if a.bias:
            w["bias"] = np.zeros(c, np.float32)
        return w

    def to_torch(self, a, ins, out):
        import torch
        import torch.nn as nn

        c, view = ins[0][0], (1, *per_channel(ins[0]))

        class Scale(nn.Module):
            def __init__(self):
                super().__init__()
                self.weight = nn.Parameter(torch.ones(c))
                self.bias = nn.Parameter(torch.zeros(c)) if a.bias else None

            def forward(self, x):
                y = x * self.weight.view(view)
                return y + self.bias.view(view) if self.bias is not None else y

        return Scale()

    def to_onnx(self, tape, node, inputs, weights):
        n, view = node.name, per_channel(node.shape)  # broadcasts against (N, C, ...)
        w = tape.initializer(f"{n}.weight", weights[f"{n}.weight"].reshape(view))
        if not node.attrs.bias:
            return tape.op("Mul", [inputs[0], w], name=n)
        y = tape.op("Mul", [inputs[0], w], name=f"{n}/scale")
        b = tape.initializer(f"{n}.bias", weights[f"{n}.bias"].reshape(view))
        return tape.op("Add", [y, b], name=n)


@register
class FCAxis(OpDef):
    name = "fc_axis"
    doc = ("Caffe's InnerProduct along an axis: fc_axis(out, axis=2, bias=true) keeps the axes "
           "before axis (batch = 0) and maps the rest, flattened, to out features")
    params = (Param("out", INT, domain=POSITIVE),
              Param("axis", INT, 2, domain=between(1, 3, text="1, 2 or 3")),
              Param("bias", BOOL, True))
    family = "fc"
    seeded_moments = keep_moments  # left out of the seeded statistics (Caffe imports)

    def infer_shape(self, a, ins):
        if a.axis > len(ins[0]):
            raise ShapeError(f"fc_axis: axis {a.axis} is past the last axis of "
                             f"{'x'.join(map(str, ins[0]))} (axis 0 is the batch)")
        return tuple(ins[0][: a.axis - 1]) + (a.out,)

    def _fan_in(self, a, ins) -> int:
        return math.prod(ins[0][a.axis - 1:])

    def param_count(self, a, ins, out):
        return a.out * self._fan_in(a, ins) + (a.out if a.bias else 0)

    def macs(self, a, ins, out):
        return math.prod(out) * self._fan_in(a, ins)

    def init_weights(self, a, ins, out, rng):
        fan = self._fan_in(a, ins)
        w = {"weight": fan_in_uniform(rng, (a.out, fan), fan)}
        if a.bias:
            w["bias"] = fan_in_uniform(rng, a.out, fan)
        return w

    def to_torch(self, a, ins, out):
        import torch.nn as nn

        fan = self._fan_in(a, ins)

        class FCAxis(nn.Linear):
            def forward(self, x):
                return super().forward(x.flatten(a.axis))

        if a.axis < 1:
            raise ArgError("fc_axis: axis must be at least 1", "axis")
        return FCAxis(fan, a.out, a.bias)

    def to_onnx(self, tape, node, inputs, weights):
        a, n = node.attrs, node.name
        keep = node.shape[:-1]
        shape = tape.constant(f"{n}.shape", np.array([0, *keep, -1], np.int64))
        flat = tape.op("Reshape", [inputs[0], shape], name=f"{n}/flatten")
        wt = tape.initializer(f"{n}.weight", weights[f"{n}.weight"].T.copy())
        y = tape.op("MatMul", [flat, wt], name=n if not a.bias else f"{n}/matmul")
        if a.bias:
            y = tape.op("Add", [y, tape.initializer(f"{n}.bias", weights[f"{n}.bias"])], name=n)
        return y
