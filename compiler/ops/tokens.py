"""Token sequences: a feature map read as tokens, the learned tensors a vision transformer
declares, and one token taken out.

A token sequence is the per-sample shape ``(L, D)``: L tokens of width D (the batch axis is
left out, as in every netc shape). The ops, in the order a ViT uses them:

- ``tokens``: ``CxHxW -> (H*W)xC``, each position a token, row-major (torchvision's ViT:
  ``x.reshape(n, c, h*w).permute(0, 2, 1)``). The patch embedding is ``conv(D, P, stride=P)
  -> tokens``: the conv already has every face, and its ``weight``/``bias`` are torchvision's
  ``conv_proj.weight``/``conv_proj.bias`` as they are, so no ``patchify`` op is needed;
- ``class_token(init=zeros)``: a learned token prepended, ``(L, D) -> (L+1, D)``; its tensor
  ``weight`` is ``(1, 1, D)``, torchvision's ``class_token`` (zeros there);
- ``pos_embedding(init=normal, std=0.02)``: a learned ``(1, L, D)`` tensor ``weight`` added,
  torchvision's ``encoder.pos_embedding`` (normal, std 0.02, there); L is the input's;
- ``take_token(index=0)``: ``(L, D) -> (D,)``, token ``index`` (torchvision's ``x[:, 0]``).

Seeded statistics of a sequence are kept per token (axis 0, the axis the seeded-statistics
driver counts as channels, and the one a ``BatchNorm1d`` over ``(N, L, D)`` would normalise).
"""

from __future__ import annotations

from functools import cache
from types import SimpleNamespace

import numpy as np

from netc.compiler.ops.base import ShapeError, fmt_shape
from netc.compiler.ops.domains import NON_NEGATIVE, POSITIVE_FLOAT32
from netc.compiler.ops.opdef import OpDef, register
from netc.compiler.ops.params import FLOAT, INT, Enum, Param
from netc.dsl.diagnostics import UserError


def sequence(shape, op: str) -> tuple[int, int]:
    """(L, D) of a token sequence, or a ShapeError saying how to make one."""
    if len(shape) == 2:
        return shape  # type: ignore[return-value]
    what = "a CxHxW feature map" if len(shape) == 3 else "a flat vector"
    hint = ": add tokens before it (CxHxW -> (H*W)xC)" if len(shape) == 3 else ""
    raise ShapeError(f"{op} needs a token sequence LxD; got {what} {fmt_shape(shape)}{hint}")


def learned_init(rng: np.random.Generator, a, shape) -> np.ndarray:
    """A learned tensor's initial values: zeros, or normal with standard deviation ``std``."""
    if a.init == "zeros":
        return np.zeros(shape, np.float32)
    return (rng.standard_normal(shape) * a.std).astype(np.float32)


def init_params(default: str) -> tuple[Param, Param]:
    """``init`` (zeros or normal, ``default`` first) and ``std``: a learned tensor's initialiser."""
    return (Param("init", Enum("zeros", "normal"), default,
                  doc="the initial values: zeros, or normal with standard deviation std"),
            Param("std", FLOAT, 0.02, domain=POSITIVE_FLOAT32,
                  doc="init=normal's standard deviation"))


@cache
def torch_modules() -> SimpleNamespace:
    """The torch modules of this file's ops, made once (torch is imported only when lowering)."""
    import torch
    import torch.nn as nn

    class Tokens(nn.Module):
        def forward(self, x):
            return x.flatten(2).transpose(1, 2)

    class ClassToken(nn.Module):
        def __init__(self, d: int):
            super().__init__()
            self.weight = nn.Parameter(torch.zeros(1, 1, d))

        def forward(self, x):
            return torch.cat([self.weight.expand(x.shape[0], -1, -1), x], dim=1)

    class PosEmbedding(nn.Module):
        def __init__(self, length: int, d: int):
            super().__init__()
            self.weight = nn.Parameter(torch.zeros(1, length, d))

        def forward(self, x):
            if x.shape[1] != self.weight.shape[1]:  # an image of another size than the spec's
                raise UserError(
                    f"pos_embedding: its table holds {self.weight.shape[1]} tokens, made for the "
                    f"net's input size; this input gives {x.shape[1]}: a net with a position "
                    "embedding takes the input size it was made for (--input makes a net, and "
                    "a table, for another)")
            return x + self.weight

    class TakeToken(nn.Module):
        def __init__(self, index: int):
            super().__init__()
            self.index = index

        def forward(self, x):
            return x[:, self.index]

    return SimpleNamespace(Tokens=Tokens, ClassToken=ClassToken, PosEmbedding=PosEmbedding,
                           TakeToken=TakeToken)


@register
class Tokens(OpDef):
    name = "tokens"
    doc = ("a feature map as a token sequence: CxHxW -> (H*W)xC, one token per position, "
           "row-major (torchvision's ViT); conv(D, P, stride=P) -> tokens is the patch embedding")

    def infer_shape(self, a, ins):
        if len(ins[0]) != 3:
            raise ShapeError(f"tokens needs a CxHxW feature map; got {fmt_shape(ins[0])}")
        c, h, w = ins[0]
        return (h * w, c)

    def seeded_moments(self, a, ins, out, w):
        # Every token holds one value of each channel: the mixture of the channels' moments.
        mu, var = ins[0]
        m = mu.mean()
        return np.full(out[0], m), np.full(out[0], (var + mu * mu).mean() - m * m)

    def to_torch(self, a, ins, out):
        return torch_modules().Tokens()

    def to_onnx(self, tape, node, inputs, weights):
        n, (length, c) = node.name, node.shape
        # 0 copies the batch axis, so shape inference keeps it symbolic
        shape = tape.constant(f"{n}.shape", np.array([0, c, length], np.int64))
        flat = tape.op("Reshape", [inputs[0], shape], name=f"{n}/flat")
        return tape.op("Transpose", [flat], name=n, perm=[0, 2, 1])


@register
class ClassToken(OpDef):
    name = "class_token"
    doc = ("a learned token prepended to the sequence: (L, D) -> (L+1, D); its tensor weight is "
           "(1, 1, D), torchvision's class_token: class_token(init=zeros, std=0.02)")
    params = init_params("zeros")

    def infer_shape(self, a, ins):
        length, d = sequence(ins[0], "class_token")
        return (length + 1, d)

    def param_count(self, a, ins, out):
        return out[1]

    def init_weights(self, a, ins, out, rng):
        return {"weight": learned_init(rng, a, (1, 1, out[1]))}

    def seeded_moments(self, a, ins, out, w):
        # The new token is constant over images; its D values are its "positions".
        token = w["weight"].astype(np.float64)
        mu, var = ins[0]
        return np.concatenate([[token.mean()], mu]), np.concatenate([[token.var()], var])

    def to_torch(self, a, ins, out):
        return torch_modules().ClassToken(out[1])

    def to_onnx(self, tape, node, inputs, weights):
        # The token is expanded to the batch: Expand to [N, 1, D], N read off the input's shape.
        n, x = node.name, inputs[0]
        token = tape.initializer(f"{n}.weight", weights[f"{n}.weight"])
        shape = tape.op("Shape", [x], name=f"{n}/shape")
        batch = tape.op("Slice", [shape, tape.constant(f"{n}.start", np.array([0], np.int64)),
                                  tape.constant(f"{n}.end", np.array([1], np.int64))],
                        name=f"{n}/batch")
        rest = tape.constant(f"{n}.rest", np.array([1, node.shape[1]], np.int64))
        size = tape.op("Concat", [batch, rest], name=f"{n}/size", axis=0)
        tape.declare(f"{n}/expand", (1, node.shape[1]))
        tokens = tape.op("Expand", [token, size], name=f"{n}/expand")
        return tape.op("Concat", [tokens, x], name=n, axis=1)


@register
class PosEmbedding(OpDef):
    name = "pos_embedding"
    doc = ("a learned position embedding added to the sequence: (L, D) -> (L, D); its tensor "
           "weight is (1, L, D), torchvision's encoder.pos_embedding: "
           "pos_embedding(init=normal, std=0.02)")
    params = init_params("normal")

    def infer_shape(self, a, ins):
        return sequence(ins[0], "pos_embedding")

    def param_count(self, a, ins, out):
        return out[0] * out[1]

    def init_weights(self, a, ins, out, rng):
        return {"weight": learned_init(rng, a, (1, *out))}

    def seeded_moments(self, a, ins, out, w):
        # x + p, p fixed per (token, position): its spread over D adds to each token's variance
        p = w["weight"][0].astype(np.float64)
        mu, var = ins[0]
        return mu + p.mean(axis=1), var + p.var(axis=1)

    def to_torch(self, a, ins, out):
        return torch_modules().PosEmbedding(*out)

    def to_onnx(self, tape, node, inputs, weights):
        n = node.name
        table = tape.initializer(f"{n}.weight", weights[f"{n}.weight"])
        return tape.op("Add", [inputs[0], table], name=n)


@register
class TakeToken(OpDef):
    name = "take_token"
    doc = ("one token of a sequence, as a flat vector: (L, D) -> (D,); take_token(0) is the "
           "class token (torchvision's x[:, 0])")
    params = (Param("index", INT, 0, domain=NON_NEGATIVE, doc="which token, from 0"),)

    def infer_shape(self, a, ins):
        length, d = sequence(ins[0], "take_token")
        if a.index >= length:
            raise ShapeError(f"take_token: index {a.index} is past the last of {length} tokens "
                             f"({fmt_shape(ins[0])}); tokens count from 0")
        return (d,)

    def seeded_moments(self, a, ins, out, w):
        mu, var = ins[0]
        return np.full(out[0], mu[a.index]), np.full(out[0], var[a.index])

    def to_torch(self, a, ins, out):
        return torch_modules().TakeToken(a.index)

    def to_onnx(self, tape, node, inputs, weights):
        # Gather keeps the index's axis ([i]: a constant is at least 1-D), Flatten drops it
        n = node.name
        index = tape.constant(f"{n}.index", np.array([node.attrs.index], np.int64))
        token = tape.op("Gather", [inputs[0], index], name=f"{n}/gather", axis=1)
        return tape.op("Flatten", [token], name=n, axis=1)
