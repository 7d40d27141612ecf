"""Two layers of Caffe forks that netc's other ops do not cover: SENet's Axpy and SSD's Normalize.

- ``axpy[a, x, y]``: the SENet authors' Axpy layer, ``a · x + y`` with ``a`` one value per
  sample and channel (Cx1x1, or a flat C) and ``x``, ``y`` of one shape (CxHxW): the
  squeeze-and-excitation rescaling and the residual sum in one layer (hujie-frank/SENet,
  ``axpy_layer.cpp``). Its bottoms come in that order.
- ``normalize(across_spatial=true, channel_shared=true, eps=1e-10, init=1)``: SSD's L2
  normalisation (weiliu89/caffe, ``normalize_layer.cpp``) with a learned scale. Per position
  (``across_spatial=false``, SSD's conv4_3) every pixel's vector of C channels is divided by
  ``sqrt(eps + Σ_c x²)``; across the whole map (``across_spatial=true``) the sample is divided by
  ``sqrt(Σ_{c,h,w} x² + eps)``: eps inside the square root, as both forms of the Caffe layer add
  it. The result is multiplied by one learned scale per channel (``weight``, C values) or one
  for all (``channel_shared=true``: one value); ``init`` is its initial value (the prototxt's
  ``scale_filler``, 20 in SSD). The defaults are Caffe's ``NormalizeParameter``'s.

The module is named to sort after ``join``: the registry's order is its modules' alphabetical
order, and the first join heads are the ones an error message lists.
"""

from __future__ import annotations

import numpy as np

from netc.compiler.ops.base import ShapeError, fmt_shape, kind_of, per_channel
from netc.compiler.ops.domains import FLOAT32, NON_NEGATIVE_NUMBER
from netc.compiler.ops.opdef import OpDef, register
from netc.compiler.ops.params import BOOL, FLOAT, Param


@register
class Axpy(OpDef):
    name = "axpy"
    doc = ("SENet's Axpy layer: axpy[a, x, y] = a·x + y, a one weight per channel (Cx1x1 or a "
           "flat C; squeeze-and-excitation's gate) and x, y of one shape")
    min_inputs = 3
    max_inputs = 3
    join_head = True
    family = "join"

    def infer_shape(self, a, ins):
        if len(ins) != 3:
            raise ShapeError(f"axpy takes 3 branches (a, x, y); got {len(ins)}")
        scale, x, y = ins
        if x != y:
            raise ShapeError(f"axpy: x gives {fmt_shape(x)}, y gives {fmt_shape(y)}; a·x + y "
                             "needs x and y of one shape")
        if tuple(scale) not in ((x[0],), (x[0], 1, 1)):
            raise ShapeError(f"axpy: a gives {fmt_shape(scale)}; it must hold one value per "
                             f"channel of x ({x[0]}x1x1 or a flat {x[0]})")
        return x

    def seeded_moments(self, a, ins, out, w):
        # a, x and y independent: E[ax + y] = μa·μx + μy, Var = E[a²]E[x²] − (μa·μx)² + σy².
        (ma, va), (mx, vx), (my, vy) = ins
        mean = ma * mx + my
        var = (va + ma * ma) * (vx + mx * mx) - (ma * mx) ** 2 + vy
        return mean, np.maximum(var, 0.0)

    def to_torch(self, a, ins, out):
        import torch.nn as nn

        class Axpy(nn.Module):
            def forward(self, scale, x, y):
                if scale.dim() < x.dim():  # a flat C against a feature map: C x 1 x 1
                    scale = scale.reshape(scale.shape + (1,) * (x.dim() - scale.dim()))
                return scale * x + y

        return Axpy()

    def to_onnx(self, tape, node, inputs, weights):
        n = node.name
        scale, x, y = inputs
        extra = len(node.shape) - len(tape.shape(scale))
        if extra:
            axes = tape.constant(f"{n}/map.axes", np.arange(2, 2 + extra, dtype=np.int64))
            scale = tape.op("Unsqueeze", [scale, axes], name=f"{n}/map")
        scaled = tape.op("Mul", [scale, x], name=f"{n}/scale")
        return tape.op("Add", [scaled, y], name=n)


@register
class Normalize(OpDef):
    name = "normalize"
    doc = ("SSD's L2 normalisation with a learned scale: normalize(across_spatial=true, "
           "channel_shared=true, eps=1e-10, init=1); x / sqrt(Σx² + eps) · weight, the sum over "
           "channels at each position (across_spatial=false) or over the whole sample")
    params = (Param("across_spatial", BOOL, True, doc="one norm for the whole sample"),
              Param("channel_shared", BOOL, True, doc="one scale for every channel"),
              Param("eps", FLOAT, 1e-10, domain=NON_NEGATIVE_NUMBER,
                    doc="added to the sum of squares under the square root"),
              Param("init", FLOAT, 1.0, domain=FLOAT32, doc="the scale's initial value"))
    family = "norm"

    def infer_shape(self, a, ins):
        if len(ins[0]) not in (1, 3):
            raise ShapeError(f"normalize needs a CxHxW map or a flat vector; got "
                             f"{kind_of(ins[0])}")
        return ins[0]

    def _scale_shape(self, a, shape) -> tuple[int]:
        return (1,) if a.channel_shared else (shape[0],)

    def param_count(self, a, ins, out):
        return self._scale_shape(a, ins[0])[0]

    def init_weights(self, a, ins, out, rng):
        return {"weight": np.full(self._scale_shape(a, ins[0]), a.init, np.float32)}

    def seeded_moments(self, a, ins, out, w):
        # The norm is nearly constant over many channels: √(Σ_c E[x_c²]) per position (times
        # √(H·W) across the map), so each channel is scaled by weight / norm.
        mean, var = ins[0]
        energy = float(np.sum(var + mean * mean))
        if a.across_spatial and len(out) == 3:
            energy *= out[1] * out[2]
        gain = np.broadcast_to(w["weight"], mean.shape) / np.sqrt(energy + a.eps)
        return mean * gain, var * gain * gain

    def to_torch(self, a, ins, out):
        import torch
        import torch.nn as nn

        shape, view = self._scale_shape(a, ins[0]), (1, *per_channel(ins[0]))

        class Normalize(nn.Module):
            def __init__(self):
                super().__init__()
                self.weight = nn.Parameter(torch.full(shape, a.init))

            def forward(self, x):
                dims = tuple(range(1, x.dim())) if a.across_spatial else (1,)
                norm = torch.sqrt((x * x).sum(dim=dims, keepdim=True) + a.eps)
                scale = self.weight if a.channel_shared else self.weight.view(view)
                return x / norm * scale

        return Normalize()

    def to_onnx(self, tape, node, inputs, weights):
        a, n = node.attrs, node.name
        rank = len(node.shape) + 1  # with the batch axis
        axes = list(range(1, rank)) if a.across_spatial else [1]
        # ReduceSumSquare's axes: an attribute to opset 17, an input from 18 (the tape moves it)
        sq = tape.op("ReduceSumSquare", [inputs[0]], name=f"{n}/sumsq", axes=axes, keepdims=1)
        eps = tape.op("Add", [sq, tape.float_constant(f"{n}.eps", a.eps)], name=f"{n}/eps")
        norm = tape.op("Sqrt", [eps], name=f"{n}/norm")
        y = tape.op("Div", [inputs[0], norm], name=f"{n}/unit")
        scale = weights[f"{n}.weight"]
        if not a.channel_shared:
            scale = scale.reshape(per_channel(node.shape))
        return tape.op("Mul", [y, tape.initializer(f"{n}.weight", scale)], name=n)
