"""Caffe's normalisations that netc's ``bn`` and ``lrn`` do not cover.

- ``mvn``: Caffe's MVN layer, ``(x − mean) / (std + eps)`` per sample and channel (or across
  channels). The eps goes on the standard deviation, as in Caffe's mvn_layer.cpp.
- ``lrn_within``: LRN with ``norm_region: WITHIN_CHANNEL``,
  ``x · (1 + alpha · avg_{n×n}(x²))^−beta``, the average over an n×n window zero-padded by
  (n−1)/2, always divided by n² (Caffe pools the squares with AVE pooling, whose divisor counts
  the padding).
- ``standardize``: Caffe's BatchNorm without a Scale after it, ``(x − mean) / √(var + eps)``
  per channel, with no learned scale or shift; ``stats=running`` uses the stored statistics
  (buffers ``running_mean``, ``running_var``), ``stats=batch`` the mini-batch's own (Caffe's
  ``use_global_stats: false``: the biased variance over N, H and W).
"""

from __future__ import annotations

import numpy as np

from netc.compiler.ops.base import ArgError, ShapeError, per_channel, spatial
from netc.compiler.ops.domains import FLOAT32, POSITIVE, POSITIVE_NUMBER
from netc.compiler.ops.opdef import OpDef, keep_moments, register
from netc.compiler.ops.params import BOOL, FLOAT, INT, Enum, Param


class _MVN:
    """Torch module for ``mvn`` (built lazily: netc check never imports torch)."""

    @staticmethod
    def make(a, shape):
        import torch
        import torch.nn as nn

        axes = tuple(range(1 if a.across_channels else 2, len(shape) + 1))

        class MVN(nn.Module):
            def forward(self, x):
                y = x - x.mean(dim=axes, keepdim=True)
                if a.normalize_variance:
                    std = torch.sqrt((y * y).mean(dim=axes, keepdim=True))
                    y = y / (std + a.eps)
                return y

        return MVN()


@register
class MVN(OpDef):
    name = "mvn"
    doc = ("Caffe's mean-variance normalisation: mvn(across_channels=false, "
           "normalize_variance=true, eps=1e-9); (x − mean)/(std + eps) per sample and channel")
    params = (Param("across_channels", BOOL, False),
              Param("normalize_variance", BOOL, True),
              Param("eps", FLOAT, 1e-9, domain=POSITIVE_NUMBER))
    family = "norm"
    seeded_moments = keep_moments  # left out of the seeded statistics (Caffe imports)

    def infer_shape(self, a, ins):
        if len(ins[0]) < 2 and not a.across_channels:
            raise ShapeError(f"mvn needs a CxHxW feature map; got a flat vector of {ins[0][0]} "
                             "(normalise it with across_channels=true)")
        return ins[0]

    def to_torch(self, a, ins, out):
        return _MVN.make(a, ins[0])

    def to_onnx(self, tape, node, inputs, weights):
        a, n = node.attrs, node.name
        axes = list(range(1 if a.across_channels else 2, len(node.shape) + 1))
        mean = tape.op("ReduceMean", [inputs[0]], name=f"{n}/mean", axes=axes, keepdims=1)
        y = tape.op("Sub", [inputs[0], mean], name=f"{n}/centre" if a.normalize_variance else n)
        if not a.normalize_variance:
            return y
        sq = tape.op("Mul", [y, y], name=f"{n}/square")
        var = tape.op("ReduceMean", [sq], name=f"{n}/var", axes=axes, keepdims=1)
        std = tape.op("Sqrt", [var], name=f"{n}/std")
        eps = tape.float_constant(f"{n}.eps", a.eps)
        den = tape.op("Add", [std, eps], name=f"{n}/std_eps")
        return tape.op("Div", [y, den], name=n)


@register
class LRNWithin(OpDef):
    name = "lrn_within"
    doc = ("Caffe's LRN with norm_region WITHIN_CHANNEL: lrn_within(size=5, alpha=1, beta=0.75); "
           "x · (1 + alpha · mean of x² over a size×size window)^−beta")
    params = (Param("size", INT, 5, domain=POSITIVE),
              Param("alpha", FLOAT, 1.0, domain=FLOAT32),
              Param("beta", FLOAT, 0.75, domain=FLOAT32))
    family = "norm"
    seeded_moments = keep_moments  # left out of the seeded statistics (Caffe imports)

    def normalise(self, a):
        if a.size % 2 == 0:
            raise ArgError(f"lrn_within: size must be odd (Caffe's rule); got {a.size}", "size")
        return a

    def infer_shape(self, a, ins):
        spatial(ins[0], "lrn_within")
        return ins[0]

    def to_torch(self, a, ins, out):
        import torch.nn as nn
        import torch.nn.functional as F

        class LRNWithinChannel(nn.Module):
            def forward(self, x):
                # count_include_pad: the divisor is always size², as Caffe's AVE pooling here
                pooled = F.avg_pool2d(x * x, a.size, 1, (a.size - 1) // 2,
                                      count_include_pad=True)
                return x * (1 + a.alpha * pooled) ** -a.beta

        return LRNWithinChannel()

    def to_onnx(self, tape, node, inputs, weights):
        a, n = node.attrs, node.name
        p = (a.size - 1) // 2
        sq = tape.op("Mul", [inputs[0], inputs[0]], name=f"{n}/square")
        pooled = tape.op("AveragePool", [sq], name=f"{n}/pool", kernel_shape=[a.size, a.size],
                         strides=[1, 1], pads=[p, p, p, p], count_include_pad=1)
        scaled = tape.op("Mul", [pooled, tape.float_constant(f"{n}.alpha", a.alpha)],
                         name=f"{n}/alpha")
        base = tape.op("Add", [scaled, tape.float_constant(f"{n}.one", 1.0)], name=f"{n}/base")
        power = tape.op("Pow", [base, tape.float_constant(f"{n}.beta", -a.beta)],
                        name=f"{n}/pow")
        return tape.op("Mul", [inputs[0], power], name=n)


@register
class Standardize(OpDef):
    name = "standardize"
    doc = ("per-channel (x − mean)/√(var + eps) with no scale or shift (Caffe's BatchNorm "
           "without Scale): standardize(eps=1e-5, stats=running|batch)")
    params = (Param("eps", FLOAT, 1e-5, domain=POSITIVE_NUMBER),
              Param("stats", Enum("running", "batch"), "running"))
    family = "norm"
    # Left out of the seeded statistics: its running statistics stay 0 and 1 (Caffe imports
    # bring their own).
    seeded_moments = keep_moments

    def infer_shape(self, a, ins):
        return ins[0]

    def init_weights(self, a, ins, out, rng):
        if a.stats == "batch":
            return {}
        c = ins[0][0]
        return {"running_mean": np.zeros(c, np.float32), "running_var": np.ones(c, np.float32)}

    def to_torch(self, a, ins, out):
        import torch
        import torch.nn as nn

        c, rank = ins[0][0], len(ins[0])
        view = (1, *per_channel(ins[0]))

        class Standardize(nn.Module):
            def __init__(self):
                super().__init__()
                if a.stats == "running":
                    self.register_buffer("running_mean", torch.zeros(c))
                    self.register_buffer("running_var", torch.ones(c))

            def forward(self, x):
                if a.stats == "running":
                    mean, var = self.running_mean.view(view), self.running_var.view(view)
                else:
                    dims = (0,) + tuple(range(2, rank + 1))
                    mean = x.mean(dim=dims, keepdim=True)
                    var = ((x - mean) ** 2).mean(dim=dims, keepdim=True)
                return (x - mean) / torch.sqrt(var + a.eps)

        return Standardize()

    def to_onnx(self, tape, node, inputs, weights):
        a, n = node.attrs, node.name
        view = (1, *per_channel(node.shape))
        if a.stats == "running":
            mean = tape.initializer(f"{n}.running_mean",
                                    weights[f"{n}.running_mean"].reshape(view))
            var = tape.initializer(f"{n}.running_var", weights[f"{n}.running_var"].reshape(view))
            y = tape.op("Sub", [inputs[0], mean], name=f"{n}/centre")
        else:
            axes = [0] + list(range(2, len(node.shape) + 1))
            mean = tape.op("ReduceMean", [inputs[0]], name=f"{n}/mean", axes=axes, keepdims=1)
            y = tape.op("Sub", [inputs[0], mean], name=f"{n}/centre")
            sq = tape.op("Mul", [y, y], name=f"{n}/square")
            var = tape.op("ReduceMean", [sq], name=f"{n}/var", axes=axes, keepdims=1)
        eps = tape.op("Add", [var, tape.float_constant(f"{n}.eps", a.eps)], name=f"{n}/var_eps")
        std = tape.op("Sqrt", [eps], name=f"{n}/std")
        return tape.op("Div", [y, std], name=n)
