"""``linear(out, bias=true)``: torch's ``nn.Linear`` on the last axis of any per-sample shape.

``(F,) -> (out,)``, a token sequence ``(L, D) -> (L, out)``, a channels-last map
``(H, W, C) -> (H, W, out)`` (ConvNeXt's pointwise layers after ``permute([1, 2, 0])``). The
weight is ``(out, in)`` and the bias ``(out,)``, torch's layout, so a ``nn.Linear``'s state dict
loads as it is. ``fc`` stays the flat-vector layer (with its ``flatten``/``gap`` hint): it folds
batch norm and can be fitted, while ``linear`` maps whatever axes come before the last one
position by position.

ONNX: ``Gemm`` (``transB=1``) on a flat vector; otherwise ``MatMul`` by the transposed weight
(stored as ``<node>.weight`` of shape (in, out), as ``fc_axis`` stores its own) and ``Add`` of
the bias: ``MatMul`` broadcasts over the leading axes, ``Gemm`` takes only matrices.
"""

from __future__ import annotations

import math

import numpy as np

from netc.compiler.numerics.moments import of_weighted_sum
from netc.compiler.ops.domains import POSITIVE
from netc.compiler.ops.formulas import fan_in_uniform
from netc.compiler.ops.opdef import OpDef, register
from netc.compiler.ops.params import BOOL, INT, Param


@register
class Linear(OpDef):
    name = "linear"
    doc = ("torch's nn.Linear on the last axis of any shape: linear(out, bias=true); "
           "(F) -> (out), LxD -> Lxout, HxWxC -> HxWxout")
    params = (Param("out", INT, domain=POSITIVE, doc="the size of the new last axis"),
              Param("bias", BOOL, True))
    # A bn normalises axis 0 (channels of a map, tokens of a sequence), which is linear's output
    # axis only on a flat vector; fold_bn scales the weight's rows per bn channel, so folding
    # would be wrong on every other rank. On a flat vector fc is the layer that folds.
    folds_bn = False
    scales_with_weights = True  # y = W·x + b: W·p and b·p give p·y at every rank
    family = "fc"

    def infer_shape(self, a, ins):
        # Any rank is accepted: the last axis is the one mapped, whatever it holds.
        return (*ins[0][:-1], a.out)

    def param_count(self, a, ins, out):
        return ins[0][-1] * a.out + (a.out if a.bias else 0)

    def macs(self, a, ins, out):
        # in·out at each position (every index of the axes before the last)
        return math.prod(ins[0][:-1]) * ins[0][-1] * a.out

    def init_weights(self, a, ins, out, rng):
        # torch's nn.Linear: U(−1/√in, 1/√in) for the weight and the bias alike
        n = ins[0][-1]
        w = {"weight": fan_in_uniform(rng, (a.out, n), n)}
        if a.bias:
            w["bias"] = fan_in_uniform(rng, a.out, n)
        return w

    def seeded_moments(self, a, ins, out, w):
        mu, var = ins[0]
        if len(out) == 1:  # a flat vector: the weighted sum, exactly as fc's
            return of_weighted_sum(w["weight"], w.get("bias"), 1, mu, var)
        # Axis 0 (the tracked "channel") is kept; every value along the last axis of a
        # position shares its moments, so output feature k has mean μ·Σ_j w_kj + b_k and
        # variance σ²·Σ_j w_kj². The per-channel moments are their average over k.
        weight = w["weight"].astype(np.float64)
        rows, squares = weight.sum(1), (weight * weight).sum(1)
        bias = 0.0 if w.get("bias") is None else float(w["bias"].astype(np.float64).mean())
        return mu * rows.mean() + bias, var * squares.mean()

    def to_torch(self, a, ins, out):
        import torch.nn as nn

        return nn.Linear(ins[0][-1], a.out, a.bias)

    def to_onnx(self, tape, node, inputs, weights):
        n, a = node.name, node.attrs
        weight = weights[f"{n}.weight"]
        if len(tape.shape(inputs[0])) == 1:  # (N, F): one Gemm, as fc writes
            ins = [inputs[0], tape.initializer(f"{n}.weight", weight)]
            if a.bias:
                ins.append(tape.initializer(f"{n}.bias", weights[f"{n}.bias"]))
            return tape.op("Gemm", ins, name=n, transB=1)
        return onnx_linear(tape, n, inputs[0], weights, f"{n}.")


def onnx_linear(tape, name: str, x: str, weights, prefix: str) -> str:
    """x·Wᵀ + b over the last axis, as torch's exporter writes ``nn.Linear``: MatMul with the
    weight stored transposed under its state-dict name (as the ``linear`` op stores it), then
    Add. No bias, or an all-zero one (torch's initial attention biases), writes no Add, which a
    simplifier would remove (as PCA's zero mean writes no Sub). Shared by ``linear`` and the
    token ops' projections (``attention``, ``mlp``)."""
    wt = tape.initializer(f"{prefix}weight", np.ascontiguousarray(weights[f"{prefix}weight"].T))
    bias = weights.get(f"{prefix}bias")
    if bias is None or not np.any(bias):
        return tape.op("MatMul", [x, wt], name=name)
    y = tape.op("MatMul", [x, wt], name=f"{name}/matmul")
    return tape.op("Add", [y, tape.initializer(f"{prefix}bias", bias)], name=name)

