"""``caffe_pool``: Caffe's pooling exactly, where netc's ``maxpool``/``avgpool`` cannot say it.

PyTorch's pools (and so netc's) refuse a pad larger than half the kernel, and their ceil
rounding drops a last window that starts past the input even when pad is 0, where Caffe keeps
it. Caffe's rules (pooling_layer.cpp), which this op follows:

1. Output size: ``ceil((H + 2P − K) / S) + 1`` (``floor`` with ``ceil=false``), one less when
   ``P > 0`` and the last window would start at or past ``H + P``
   (:func:`~netc.compiler.ops.formulas.caffe_pool_size`, which the Caffe importer calls too).
2. MAX takes the maximum over the window clipped to the image (padding never wins).
3. AVE sums over the window clipped to the image and divides by the window clipped to the
   *padded* extent, ``min(start + K, H + P) − start``, measured before clipping to the image.

Both lowerings pad explicitly (−inf for MAX, 0 for AVE) so that every window lies inside, pool
without padding, and for AVE multiply by K²/divisor, a constant map computed from rule 3.
"""

from __future__ import annotations

import numpy as np

from netc.compiler.ops.base import ArgError, ShapeError, spatial
from netc.compiler.ops.domains import NON_NEGATIVE, POSITIVE
from netc.compiler.ops.formulas import caffe_pool_size
from netc.compiler.ops.opdef import OpDef, keep_moments, register
from netc.compiler.ops.params import BOOL, PAIR, Enum, Param


def _geometry(a, h, w):
    """(output size, right/bottom padding needed) on each axis."""
    outs, extra = [], []
    for n, k, s, p in zip((h, w), a.kernel, a.stride, a.pad):
        o = caffe_pool_size(n, k, s, p, a.ceil)
        outs.append(o)
        extra.append(max(0, (o - 1) * s + k - n - p))
    return outs, extra


def divisor_scale(a, h: int, w: int) -> np.ndarray:
    """K²/divisor for every output position (rule 3), shaped (1, OH, OW)."""
    (oh, ow), _ = _geometry(a, h, w)
    counts = []
    for o, n, k, s, p in zip((oh, ow), (h, w), a.kernel, a.stride, a.pad):
        start = np.arange(o) * s - p
        counts.append(np.minimum(start + k, n + p) - start)
    div = counts[0][:, None] * counts[1][None, :]
    return (a.kernel[0] * a.kernel[1] / div)[None].astype(np.float32)


@register
class CaffePool(OpDef):
    name = "caffe_pool"
    doc = ("pooling with Caffe's exact rules (any pad, Caffe's ceil and AVE divisor): "
           "caffe_pool(kernel, stride=1, pad=0, mode=max|ave, ceil=true)")
    params = (Param("kernel", PAIR, domain=POSITIVE),
              Param("stride", PAIR, 1, domain=POSITIVE),
              Param("pad", PAIR, 0, domain=NON_NEGATIVE),
              Param("mode", Enum("max", "ave"), "max"),
              Param("ceil", BOOL, True))
    family = "pool"
    seeded_moments = keep_moments  # left out of the seeded statistics (Caffe imports)

    def normalise(self, a):
        if any(p >= k for p, k in zip(a.pad, a.kernel)):
            raise ArgError(f"caffe_pool: pad {list(a.pad)} must be smaller than the kernel "
                           f"{list(a.kernel)} (Caffe's check)", "pad")
        return a

    def infer_shape(self, a, ins):
        c, h, w = spatial(ins[0], "caffe_pool")
        (oh, ow), _ = _geometry(a, h, w)
        if oh <= 0 or ow <= 0:
            raise ShapeError(f"caffe_pool: output {oh}x{ow} on input {c}x{h}x{w}: the window "
                             "is larger than the padded input")
        return (c, oh, ow)

    def geometry(self, a, ins):
        return a.kernel, a.stride, (1, 1)

    def to_torch(self, a, ins, out):
        import torch
        import torch.nn as nn
        import torch.nn.functional as F

        _, h, w = ins[0]
        _, (eh, ew) = _geometry(a, h, w)
        pads = (a.pad[1], ew, a.pad[0], eh)  # left, right, top, bottom
        scale = torch.from_numpy(divisor_scale(a, h, w)) if a.mode == "ave" else None

        class CaffePool(nn.Module):
            def __init__(self):
                super().__init__()
                if scale is not None:
                    self.register_buffer("scale", scale, persistent=False)

            def forward(self, x):
                if a.mode == "max":
                    return F.max_pool2d(F.pad(x, pads, value=float("-inf")), a.kernel, a.stride)
                y = F.avg_pool2d(F.pad(x, pads, value=0.0), a.kernel, a.stride)
                return y * self.scale

        return CaffePool()

    def to_onnx(self, tape, node, inputs, weights):
        a, n = node.attrs, node.name
        _, h, w = tape.shape(inputs[0])
        _, (eh, ew) = _geometry(a, h, w)
        pads = tape.constant(f"{n}.pads", np.array([0, 0, a.pad[0], a.pad[1], 0, 0, eh, ew],
                                                   np.int64))
        fill = tape.float_constant(f"{n}.fill", -np.inf if a.mode == "max" else 0.0)
        padded = tape.op("Pad", [inputs[0], pads, fill], name=f"{n}/pad", mode="constant")
        window = dict(kernel_shape=list(a.kernel), strides=list(a.stride))
        if a.mode == "max":
            return tape.op("MaxPool", [padded], name=n, **window)
        pooled = tape.op("AveragePool", [padded], name=f"{n}/pool", **window)
        return tape.op("Mul", [pooled, tape.float_constant(f"{n}.divisor", divisor_scale(a, h, w))],
                       name=n)
