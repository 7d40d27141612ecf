"""Normalisation: batch norm and Caffe/AlexNet local response normalisation."""

from __future__ import annotations

import numpy as np

from netc.compiler.ops.base import spatial
from netc.compiler.ops.domains import (
    FLOAT32,
    NON_NEGATIVE_NUMBER,
    POSITIVE,
    POSITIVE_NUMBER,
    PROBABILITY,
)
from netc.compiler.ops.opdef import OpDef, keep_moments, register
from netc.compiler.ops.params import FLOAT, INT, Param


@register
class BatchNorm(OpDef):
    name = "bn"
    doc = "batch normalisation over channels (or features of a flat vector): bn(eps=1e-5)"
    params = (Param("eps", FLOAT, 1e-5, domain=POSITIVE_NUMBER),
              Param("momentum", FLOAT, 0.1, domain=PROBABILITY))
    scales_with_weights = True
    running_statistics = True
    family = "norm"

    def infer_shape(self, a, ins):
        return ins[0]

    def param_count(self, a, ins, out):
        return 2 * ins[0][0]  # scale and shift; running statistics are buffers, not parameters

    def buffer_count(self, a, ins, out):
        return 2 * ins[0][0]  # running mean and variance

    def init_weights(self, a, ins, out, rng):
        # γ = 1, β = 0 as torch's. The running statistics drawn here are placeholders: the
        # seeded initialiser replaces them by the moments of the bn's input on standard-normal
        # images (netc.compiler.analyses.seeded_stats) and zeroes γ where the bn ends a residual
        # body.
        c = ins[0][0]
        return {
            "weight": np.ones(c, np.float32),
            "bias": np.zeros(c, np.float32),
            "running_mean": np.zeros(c, np.float32),
            "running_var": np.ones(c, np.float32),
        }

    def seeded_moments(self, a, ins, out, w):
        # The running statistics become the input's moments; then the output's mean is β and
        # its variance γ²·σ²/(σ² + ε).
        mu, var = ins[0]
        w["running_mean"] = mu.astype(np.float32)
        w["running_var"] = var.astype(np.float32)
        gamma = w["weight"].astype(np.float64)
        return w["bias"].astype(np.float64), gamma ** 2 * var / (var + a.eps)

    def to_torch(self, a, ins, out):
        import torch.nn as nn

        cls = nn.BatchNorm2d if len(ins[0]) == 3 else nn.BatchNorm1d
        return cls(ins[0][0], eps=a.eps, momentum=a.momentum)

    def to_onnx(self, tape, node, inputs, weights):
        # Inference form: running statistics. Usually folded into the conv before it
        # (netc.compiler.passes.fold_bn); this is the form for a bn that has no conv to fold into.
        names = ["weight", "bias", "running_mean", "running_var"]
        ins = [tape.initializer(f"{node.name}.{k}", weights[f"{node.name}.{k}"]) for k in names]
        return tape.op("BatchNormalization", [inputs[0], *ins], name=node.name,
                       epsilon=node.attrs.eps)


@register
class LRN(OpDef):
    name = "lrn"
    doc = ("local response normalisation across channels, Caffe's formula: "
           "b = a / (k + alpha/size * sum a^2)^beta; lrn(size=5, alpha=1e-4, beta=0.75, k=1)")
    params = (
        Param("size", INT, 5, domain=POSITIVE),
        Param("alpha", FLOAT, 1e-4, domain=NON_NEGATIVE_NUMBER),
        Param("beta", FLOAT, 0.75, domain=FLOAT32),
        Param("k", FLOAT, 1.0, domain=POSITIVE_NUMBER),  # k = 0 divides zero by zero
    )
    family = "norm"
    seeded_moments = keep_moments  # k = 1 and a small alpha: close to the identity

    def infer_shape(self, a, ins):
        spatial(ins[0], "lrn")
        return ins[0]

    def to_torch(self, a, ins, out):
        import torch.nn as nn

        return nn.LocalResponseNorm(a.size, a.alpha, a.beta, a.k)

    def to_onnx(self, tape, node, inputs, weights):
        a = node.attrs  # ONNX LRN is Caffe's formula (alpha divided by size), bias = k
        return tape.op("LRN", inputs, name=node.name, size=a.size, alpha=a.alpha, beta=a.beta,
                       bias=a.k)
