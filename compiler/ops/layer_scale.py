"""``layer_scale(init=1e-6)``: a learned multiplier per channel, γ·x, starting at ``init``.

Touvron et al.'s LayerScale ("Going deeper with image transformers", 2021), which ConvNeXt
puts at the end of every block's body so that each residual branch starts close to zero.
The channel is axis 0 of a CxHxW map (torchvision's ConvNeXt keeps it as a (C, 1, 1) tensor)
and the last axis of an LxD token sequence or a flat vector (ViT-style, timm's ``LayerScale``).

The parameter's local name is ``gamma`` (``<node>.gamma``), timm's name for it, of shape (C,)
as every per-channel parameter of netc. torchvision owns it in the block instead
(``features.1.0.layer_scale``, shape (C, 1, 1)); the weights importer pairs that name and
shape with this one.
"""

from __future__ import annotations

import numpy as np

from netc.compiler.ops.domains import FLOAT32
from netc.compiler.ops.opdef import OpDef, register
from netc.compiler.ops.params import FLOAT, Param


def channel_view(shape) -> tuple[int, ...]:
    """The shape γ takes to broadcast against (N, *shape): (C, 1, 1) on a map, (D,) else."""
    if len(shape) == 3:
        return (shape[0], 1, 1)
    return (shape[-1],)


@register
class LayerScale(OpDef):
    name = "layer_scale"
    doc = ("a learned per-channel multiplier γ (gamma), starting at init: layer_scale(init=1e-6); "
           "the channel is C of a CxHxW map, the last axis of a sequence or vector")
    params = (Param("init", FLOAT, 1e-6, domain=FLOAT32, doc="γ's initial value"),)
    scales_with_weights = True  # γ·p gives p·(γ·x): stochastic depth's scale folds into it
    family = "norm"

    def infer_shape(self, a, ins):
        return ins[0]

    def param_count(self, a, ins, out):
        return channel_view(ins[0])[0]

    def init_weights(self, a, ins, out, rng):
        return {"gamma": np.full(channel_view(ins[0])[0], a.init, np.float32)}

    def seeded_moments(self, a, ins, out, w):
        mu, var = ins[0]
        gamma = w["gamma"].astype(np.float64)
        if len(out) == 3:  # γ is per tracked channel
            return mu * gamma, var * gamma ** 2
        return mu * gamma.mean(), var * (gamma ** 2).mean()  # γ along the last axis: averaged

    def to_torch(self, a, ins, out):
        import torch
        import torch.nn as nn

        view = (1, *channel_view(ins[0]))
        c = view[1]

        class LayerScale(nn.Module):
            """γ·x with γ of shape (C,), broadcast over the other axes."""

            def __init__(self):
                super().__init__()
                self.gamma = nn.Parameter(torch.full((c,), a.init))

            def forward(self, x):
                return x * self.gamma.view(view)

        return LayerScale()

    def to_onnx(self, tape, node, inputs, weights):
        n = node.name
        gamma = weights[f"{n}.gamma"].reshape(channel_view(node.shape))
        return tape.op("Mul", [inputs[0], tape.initializer(f"{n}.gamma", gamma)], name=n)
