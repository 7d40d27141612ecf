"""The two blocks of a transformer encoder layer over a token sequence ``(L, D)``.

- ``attention(heads, dropout=0)``: multi-head self-attention, torch's
  ``nn.MultiheadAttention(D, heads, batch_first=True)`` attending to the sequence itself and
  returning its output only. Its tensors are torch's (and torchvision ViT's ``self_attention``):
  ``in_proj_weight`` (3D, D) and ``in_proj_bias`` (3D) for the query, key and value
  projections stacked, ``out_proj.weight`` (D, D) and ``out_proj.bias`` (D). ONNX has no
  attention op at opsets 13-18, so it is written out: the projections as MatMul + Add, the
  heads by Reshape and Transpose, softmax(Q·Kᵀ / √(D/heads))·V, the heads merged back.
- ``mlp(hidden, dropout=0)``: torchvision's ``MLPBlock``: Linear(D, hidden), GELU (exact),
  Dropout, Linear(hidden, D), Dropout; one op so its tensors sit at torchvision's indices,
  ``mlp.0.weight`` and ``mlp.3.weight`` (a chain of linear, gelu and dropout layers would
  name them by layer).

MACs count what the papers and torchvision count for ViT: every projection (4·L·D² for
attention, 2·L·D·hidden for the MLP) plus attention's two products Q·Kᵀ and A·V (2·L²·D);
softmax, the scaling and GELU are not counted, as activations are nowhere in netc. ViT-B/16
comes to 17.56 G, torchvision's "GFLOPS" figure for ``vit_b_16`` (which counts MACs).

Initial weights are torch's: attention's in-projection Xavier-uniform with zero biases and its
out-projection ``nn.Linear``'s U(±1/√D) (``MultiheadAttention._reset_parameters``); the MLP's
weights Xavier-uniform and its biases N(0, 1e-6²) (torchvision's ``MLPBlock``).
"""

from __future__ import annotations

import math
from functools import cache
from types import SimpleNamespace

import numpy as np

from netc.compiler.ops.base import ShapeError
from netc.compiler.ops.domains import DROP_PROBABILITY, POSITIVE
from netc.compiler.ops.formulas import fan_in_uniform, xavier_uniform
from netc.compiler.ops.linear import onnx_linear
from netc.compiler.ops.opdef import REGISTRY, OpDef, keep_moments, register
from netc.compiler.ops.params import FLOAT, INT, Param
from netc.compiler.ops.tokens import sequence


@cache
def torch_modules() -> SimpleNamespace:
    """The torch modules of this file's ops, made once (torch is imported only when lowering)."""
    import torch.nn as nn

    class SelfAttention(nn.MultiheadAttention):
        """``nn.MultiheadAttention`` attending to its one input; the output without weights."""

        def forward(self, x):
            return super().forward(x, x, x, need_weights=False)[0]

    def mlp(d: int, hidden: int, p: float) -> nn.Sequential:
        return nn.Sequential(nn.Linear(d, hidden), nn.GELU(), nn.Dropout(p),
                             nn.Linear(hidden, d), nn.Dropout(p))

    return SimpleNamespace(SelfAttention=SelfAttention, mlp=mlp)


@register
class Attention(OpDef):
    name = "attention"
    doc = ("multi-head self-attention over a token sequence LxD (torch's nn.MultiheadAttention, "
           "batch_first, the output only): attention(heads, dropout=0)")
    params = (Param("heads", INT, domain=POSITIVE, doc="attention heads; they divide D"),
              Param("dropout", FLOAT, 0.0, domain=DROP_PROBABILITY,
                    doc="dropout on the attention weights, in training"))
    family = "fc"
    seeded_moments = keep_moments  # softmax-weighted averages of projections: an approximation

    def infer_shape(self, a, ins):
        length, d = sequence(ins[0], "attention")
        if d % a.heads:
            raise ShapeError(f"attention: the token width {d} is not divisible by "
                             f"heads={a.heads}")
        return (length, d)

    def param_count(self, a, ins, out):
        d = out[1]
        return 4 * d * d + 4 * d

    def macs(self, a, ins, out):
        length, d = out
        return 4 * length * d * d + 2 * length * length * d

    def workspace(self, a, ins, out):
        """Values held while it runs besides its output: the query, key and value (3·L·D) and
        each head's L x L scores and their softmax (2·heads·L²; ONNX Runtime's MatMul and
        Softmax write both, as torch's attention on the CPU does). Quadratic in L: a
        100,000-token sequence needs 80 GB per head, refused by --max-memory, not by the OS."""
        length, d = out
        return 3 * length * d + 2 * a.heads * length * length

    def init_weights(self, a, ins, out, rng):
        d = out[1]
        return {"in_proj_weight": xavier_uniform(rng, (3 * d, d), d, 3 * d),
                "in_proj_bias": np.zeros(3 * d, np.float32),
                "out_proj.weight": fan_in_uniform(rng, (d, d), d),
                "out_proj.bias": np.zeros(d, np.float32)}

    def to_torch(self, a, ins, out):
        return torch_modules().SelfAttention(out[1], a.heads, dropout=a.dropout,
                                             batch_first=True)

    def to_onnx(self, tape, node, inputs, weights):
        n, (length, d), heads = node.name, node.shape, node.attrs.heads
        # the query, key and value projections stacked: one (3D, D) linear, in_proj_weight/bias
        qkv = onnx_linear(tape, f"{n}/in_proj", inputs[0], weights, f"{n}.in_proj_")
        # (N, L, 3D) -> query, key, value, each (N, heads, L, D/heads); the key transposed
        q, k, v = tape.node("Split", [qkv], [f"{n}/{key}" for key in "qkv"], name=f"{n}/split",
                            axis=2, split=[d, d, d])
        per_head = tape.constant(f"{n}.head_shape",
                                 np.array([0, length, heads, d // heads], np.int64))
        q, k, v = (tape.op("Reshape", [t, per_head], name=f"{t}_heads") for t in (q, k, v))
        q = tape.op("Transpose", [q], name=f"{n}/q_t", perm=[0, 2, 1, 3])
        kt = tape.op("Transpose", [k], name=f"{n}/k_t", perm=[0, 2, 3, 1])
        v = tape.op("Transpose", [v], name=f"{n}/v_t", perm=[0, 2, 1, 3])
        q = tape.op("Mul", [q, tape.float_constant(f"{n}.scale", 1 / math.sqrt(d // heads))],
                    name=f"{n}/q_scaled")
        scores = tape.op("MatMul", [q, kt], name=f"{n}/scores")
        att = tape.op("Softmax", [scores], name=f"{n}/softmax", axis=-1)
        heads_out = tape.op("MatMul", [att, v], name=f"{n}/values")
        merged = tape.op("Transpose", [heads_out], name=f"{n}/merge_t", perm=[0, 2, 1, 3])
        merged = tape.op("Reshape", [merged, tape.constant(f"{n}.merged_shape",
                                                           np.array([0, length, d], np.int64))],
                         name=f"{n}/merge")
        return onnx_linear(tape, n, merged, weights, f"{n}.out_proj.")


@register
class MLP(OpDef):
    name = "mlp"
    doc = ("a transformer's MLP block over the last axis: Linear(D, hidden), GELU, Dropout, "
           "Linear(hidden, D), Dropout (torchvision's MLPBlock): mlp(hidden, dropout=0)")
    params = (Param("hidden", INT, domain=POSITIVE, doc="the hidden width (4·D in ViT)"),
              Param("dropout", FLOAT, 0.0, domain=DROP_PROBABILITY,
                    doc="dropout after the GELU and after the second linear, in training"))
    family = "fc"
    seeded_moments = keep_moments  # two linears around a GELU: kept as an approximation

    def infer_shape(self, a, ins):
        return sequence(ins[0], "mlp")

    def param_count(self, a, ins, out):
        d = out[1]
        return 2 * d * a.hidden + a.hidden + d

    def macs(self, a, ins, out):
        length, d = out
        return 2 * length * d * a.hidden

    def workspace(self, a, ins, out):
        """The hidden layer, before and after its GELU: 2·L·hidden values while it runs."""
        return 2 * out[0] * a.hidden

    def init_weights(self, a, ins, out, rng):
        d, h = out[1], a.hidden
        return {"0.weight": xavier_uniform(rng, (h, d), d, h),
                "0.bias": (rng.standard_normal(h) * 1e-6).astype(np.float32),
                "3.weight": xavier_uniform(rng, (d, h), h, d),
                "3.bias": (rng.standard_normal(d) * 1e-6).astype(np.float32)}

    def to_torch(self, a, ins, out):
        return torch_modules().mlp(out[1], a.hidden, a.dropout)

    def to_onnx(self, tape, node, inputs, weights):
        n = node.name
        hidden = onnx_linear(tape, f"{n}/fc1", inputs[0], weights, f"{n}.0.")
        # The gelu op's own ONNX form (exact GELU, written out below opset 20)
        gelu = REGISTRY["gelu"]
        act = gelu.to_onnx(tape, SimpleNamespace(name=f"{n}/gelu", attrs=gelu.bind([], {})),
                           [hidden], {})
        return onnx_linear(tape, n, act, weights, f"{n}.3.")

