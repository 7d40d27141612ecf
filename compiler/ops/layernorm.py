"""``layernorm(over=channels, eps=1e-5, affine=true)``: layer normalisation, per position.

Each position's values along one axis are normalised to mean 0 and variance 1 (the biased
variance, as torch), then scaled by a learned ``weight`` (γ) and shifted by ``bias`` (β), both
of the normalised axis's size and initialised to 1 and 0 (torch's ``nn.LayerNorm``).

- ``over=channels`` (the default): the channels, whatever the layout netc names them in: C at
  each position of a CxHxW map (ConvNeXt's ``LayerNorm2d``, which torchvision computes as
  ``F.layer_norm`` between two permutes), D of each token of an LxD sequence, the features of a
  flat vector. It is the default because it is what "layer norm" means on each of those.
- ``over=last``: the last axis of any shape (``nn.LayerNorm(D)`` as written), e.g. C of the
  HxWxC map that ``permute([1, 2, 0])`` makes. On a sequence or a vector it equals channels.

ONNX: over the last axis, ``LayerNormalization`` where the target opset has it (17 on), else
its expansion (ReduceMean, Sub, Mul, ReduceMean, Add, Sqrt, Div, Mul, Add; ReduceMean's
``axes`` is an attribute there and an input from 18, which the tape handles). Over the
channels of a map (axis 1 of NCHW) it is that expansion at every opset: LayerNormalization
normalises the axes from ``axis`` to the end, so it would need a Transpose to NHWC and back,
and that round trip is the slower form where ConvNeXt spends its time. Measured in ORT (CPU,
one thread, batch 8, opset 17; ``python benchmarks/layernorm_channels.py``, three runs of 200
rotating rounds, and once on a quiet machine), the reductions over axis 1 take 0.77x to 0.93x
the round trip's time on ConvNeXt-T's 96x56x56 and 192x28x28 maps (its stem and downsamples),
about the same (0.95x to 1.04x) on 384x14x14; the round trip wins only on small maps (1.5x to
1.8x faster on 768x7x7, 4x on the head's 768x1x1, where either takes well under a millisecond).
"""

from __future__ import annotations

import numpy as np

from netc.compiler.ops.base import ShapeError, fmt_shape
from netc.compiler.ops.domains import POSITIVE_NUMBER
from netc.compiler.ops.opdef import OpDef, register
from netc.compiler.ops.params import BOOL, FLOAT, Enum, Param


def channels_first(a, shape) -> bool:
    """Whether the normalised axis is axis 0 of a CxHxW map (``over=channels`` on rank 3);
    otherwise it is the last axis."""
    return a.over == "channels" and len(shape) == 3


@register
class LayerNorm(OpDef):
    name = "layernorm"
    doc = ("layer normalisation at each position: layernorm(over=channels, eps=1e-5, "
           "affine=true); over=channels: C of a CxHxW map (LayerNorm2d), D of an LxD sequence; "
           "over=last: the last axis of any shape (nn.LayerNorm)")
    params = (
        Param("over", Enum("channels", "last"), "channels",
              doc="channels (C of a map, D of a sequence) or last (the last axis)"),
        Param("eps", FLOAT, 1e-5, domain=POSITIVE_NUMBER),
        Param("affine", BOOL, True, doc="a learned weight (γ) and bias (β)"),
    )
    family = "norm"

    def infer_shape(self, a, ins):
        if self._size(a, ins[0]) < 2:
            hint = (": over=channels normalises C of a CxHxW map" if len(ins[0]) == 3 and
                    a.over == "last" else "")
            raise ShapeError(f"layernorm(over={a.over}) on {fmt_shape(ins[0])} normalises an "
                             f"axis of 1 value, which gives its bias whatever the input{hint}")
        return ins[0]

    @staticmethod
    def _axis(a, shape) -> int:
        return 0 if channels_first(a, shape) else len(shape) - 1

    def _size(self, a, shape) -> int:
        return shape[self._axis(a, shape)]

    def param_count(self, a, ins, out):
        return 2 * self._size(a, ins[0]) if a.affine else 0

    def init_weights(self, a, ins, out, rng):
        if not a.affine:
            return {}
        d = self._size(a, ins[0])
        return {"weight": np.ones(d, np.float32), "bias": np.zeros(d, np.float32)}

    def seeded_moments(self, a, ins, out, w):
        # The normalised values have mean 0 and variance 1 (ε aside): the output's are β and γ²
        # per normalised feature. Where that axis is not axis 0 (the tracked channel), every
        # channel holds all features: their average.
        d = self._size(a, ins[0])
        gamma = w["weight"].astype(np.float64) if a.affine else np.ones(d)
        beta = w["bias"].astype(np.float64) if a.affine else np.zeros(d)
        if self._axis(a, ins[0]) == 0:
            return beta, gamma ** 2
        c = out[0]
        return np.full(c, beta.mean()), np.full(c, (gamma ** 2).mean())

    def to_torch(self, a, ins, out):
        import torch.nn as nn
        import torch.nn.functional as F

        d = self._size(a, ins[0])
        if not channels_first(a, ins[0]):
            return nn.LayerNorm(d, eps=a.eps, elementwise_affine=a.affine)

        class LayerNorm2d(nn.LayerNorm):
            """torchvision's ConvNeXt LayerNorm2d: over C of (N, C, H, W), through NHWC."""

            def forward(self, x):
                x = x.permute(0, 2, 3, 1)
                x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
                return x.permute(0, 3, 1, 2)

        return LayerNorm2d(d, eps=a.eps, elementwise_affine=a.affine)

    def to_onnx(self, tape, node, inputs, weights):
        # Channels of a map: reductions over axis 1 at every opset (the module docstring says
        # why not the Transpose round trip around LayerNormalization).
        first = channels_first(node.attrs, tape.shape(inputs[0]))
        if tape.has("LayerNormalization") and not first:
            return layer_normalization(tape, node, inputs[0], weights, first)
        return expanded(tape, node, inputs[0], weights, first)


def _affine(tape, node, weights, view) -> tuple[str, str] | None:
    """γ and β as initializers of shape ``view`` (they broadcast against the input)."""
    if not node.attrs.affine:
        return None
    n = node.name
    return (tape.initializer(f"{n}.weight", weights[f"{n}.weight"].reshape(view)),
            tape.initializer(f"{n}.bias", weights[f"{n}.bias"].reshape(view)))


def layer_normalization(tape, node, x: str, weights, first: bool) -> str:
    """Opset 17 on: one LayerNormalization over the last axis; ``first`` (channels of NCHW)
    puts it between two Transposes, the form ``benchmarks/layernorm_channels.py`` measures
    against :func:`expanded` (the lowering writes that one for channels)."""
    n, d = node.name, node.shape[0] if first else node.shape[-1]
    affine = _affine(tape, node, weights, (d,))
    if affine is None:  # LayerNormalization needs a scale: ones, and no bias
        affine = (tape.float_constant(f"{n}.ones", np.ones(d)),)
    if first:
        x = tape.op("Transpose", [x], name=f"{n}/to_nhwc", perm=[0, 2, 3, 1])
    out = f"{n}/nhwc" if first else n
    y = tape.op("LayerNormalization", [x, *affine], name=out, axis=-1, epsilon=node.attrs.eps)
    if first:
        y = tape.op("Transpose", [y], name=n, perm=[0, 3, 1, 2])
    return y


def expanded(tape, node, x: str, weights, first: bool) -> str:
    """(x − mean)/√(var + ε)·γ + β with the reductions over the normalised axis (1 of NCHW for
    channels of a map, else the last): below opset 17, and over a map's channels at every
    opset. A γ of ones or a β of zeros (a fresh net's) writes no Mul or Add: it computes
    nothing, and a simplifier would remove it (netc's files need none)."""
    n = node.name
    axis = 1 if first else len(node.shape)
    view = (node.shape[0], 1, 1) if first else (node.shape[-1],)
    steps = []  # (ONNX op, initializer) applied after normalising
    if node.attrs.affine:
        for op, key, neutral in (("Mul", "weight", 1.0), ("Add", "bias", 0.0)):
            array = weights[f"{n}.{key}"]
            if not np.all(array == neutral):
                steps.append((op, tape.initializer(f"{n}.{key}", array.reshape(view))))
    mean = tape.op("ReduceMean", [x], name=f"{n}/mean", axes=[axis], keepdims=1)
    centred = tape.op("Sub", [x, mean], name=f"{n}/centre")
    square = tape.op("Mul", [centred, centred], name=f"{n}/square")
    var = tape.op("ReduceMean", [square], name=f"{n}/var", axes=[axis], keepdims=1)
    var = tape.op("Add", [var, tape.float_constant(f"{n}.eps", node.attrs.eps)], name=f"{n}/eps")
    std = tape.op("Sqrt", [var], name=f"{n}/std")
    y = tape.op("Div", [centred, std], name=f"{n}/normalise" if steps else n)
    for i, (op, array) in enumerate(steps):
        y = tape.op(op, [y, array], name=n if i == len(steps) - 1 else f"{n}/{op.lower()}")
    return y
