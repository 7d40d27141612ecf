"""The per-op table: every registered op, its PyTorch face against its ONNX face.

``OPS`` has one row per op, keyed by the op's name: the small nets (input shape, chain after
``image ->``) that exercise it, each of which must contain the op. Every net is lowered both
ways on the same seeded weights (with batch-norm statistics and PReLU slopes drawn at random,
so that they matter), run by the torch module in eval mode and by ONNX Runtime (CPU) at every
ONNX opset netc writes, 13 to 18 (``netc compile --opset``; with batch norm folded into the conv
before it and, where there is one, not folded), and the outputs must agree to
``atol = 1e-5·max|ref| + 1e-6`` (shared/reference/MEASURED.md). ``tests/test_registry.py`` fails
on a registered op without a row.

Every opset's model is built and passes the checks of :func:`lower` (the full checker, shape
inference against the IR). ONNX Runtime runs it unless it is the same program as a model already
run for that net: the same nodes and initializers byte for byte, and every node's op resolved to
the same operator version (its schema's ``since_version`` at that opset). Such a model computes
what the earlier one computed in any runtime, so running it again tests nothing; the opsets that
change an op's form or version (ReduceMean's axes at 18, Resize's at 18, BatchNormalization at
14 and 15, HardSwish at 14, LeakyRelu and PRelu at 16, ...) are run. This keeps the table at about two sessions per net
instead of six.

Adding an op is its source file in ``compiler/ops/`` and its row here.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F

from netc.compiler.frontend.loader import load
from netc.compiler.lower_onnx.model import lower
from netc.compiler.lower_onnx.tape import MIN_OPSET, OPSET
from netc.compiler.lower_torch.module import build_module
from netc.compiler.numerics.seeded_weights import init_weights
from netc.compiler.ops.pool import adaptive_matrix

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# op -> the nets that exercise it: (input shape, chain after `image ->`)
OPS: dict[str, list[tuple[str, str]]] = {
    # activations and other pointwise ops (compiler/ops/activation.py)
    "relu": [("3x4x4", "relu")],
    "sigmoid": [("3x4x4", "sigmoid")],
    "tanh": [("3x4x4", "tanh")],
    "leaky_relu": [("3x4x4", "leaky_relu(0.2)")],
    "elu": [("3x4x4", "elu(0.5)")],
    "gelu": [("3x4x4", "gelu"), ("3x4x4", "gelu(approximate=tanh) -> gelu(approximate=none)")],
    "relu6": [("8x5x7", "relu6")],
    "silu": [("8x5x7", "silu")],
    "swish": [("8x5x7", "swish")],
    "hardswish": [("8x5x7", "hardswish")],
    "hardsigmoid": [("8x5x7", "hardsigmoid")],
    "hardtanh": [("8x5x7", "hardtanh"), ("8x5x7", "conv(4, 1) -> hardtanh(-2, 3.5) -> bn")],
    "mish": [("8x5x7", "mish")],
    "softplus": [("8x5x7", "softplus -> softplus(2.5)")],
    "prelu": [("8x5x7", "conv(4, 1) -> prelu"), ("8x5x7", "prelu(shared=true)"),
              ("8x5x7", "flatten -> fc(6) -> prelu(init=-0.3)"),
              ("3x4x6", "reshape([12, 6]) -> prelu(init=-0.5)")],
    "identity": [("3x4x4", "identity -> relu")],
    "dropout": [("3x4x4", "dropout(0.3) -> relu")],
    "softmax": [("3x4x4", "softmax")],
    "log_softmax": [("3x4x4", "flatten -> log_softmax")],
    # weight layers (conv.py, deconv.py, caffe_affine.py)
    "conv": [("3x12x12", "conv(4, 3, stride=2, pad=1)"),
             ("3x12x12", "conv(6, 3, dilation=2, groups=3, pad=2)"),
             ("3x12x12", "conv(4, [3, 1], pad=[1, 0], bias=false)"),
             ("3x11x10", "conv(4, 4, stride=2, pad=same)"),
             ("3x11x10", "conv(4, 2, pad=same, dilation=3) -> bn"),
             ("3x9x9", "conv(4, 3, stride=2, pad=[0, 1, 1, 0], groups=1)")],
    "fc": [("3x4x4", "flatten -> fc(5)"), ("3x4x4", "flatten -> fc(5, bias=false) -> bn"),
           ("3x4x4", "flatten -> fc(5, fit=ridge(0.1))")],
    "deconv": [("3x7x9", "deconv(4, 3, stride=2, pad=1, output_pad=1)"),
               ("3x7x9", "deconv(4, [3, 2], stride=[2, 3], pad=[1, 0, 2, 1], dilation=2)"),
               ("4x5x5", "deconv(6, 4, stride=2, pad=same, groups=2, bias=false) -> bn"),
               ("4x5x5", "deconv(6, 2, stride=3, pad=same, groups=2)"),
               ("3x6x6", "deconv(3, 4, stride=2, pad=1, groups=3, init=bilinear)")],
    "linear": [("3x4x4", "flatten -> linear(5)"),
               ("3x4x6", "reshape([12, 6]) -> linear(5) -> relu -> linear(3, bias=false) -> bn"),
               ("3x4x6", "linear(7) -> linear(2)"), ("3x4x4", "flatten -> linear(5) -> bn")],
    "fc_axis": [("3x4x5", "fc_axis(6, axis=2) -> flatten -> fc(4)")],
    "scale": [("3x4x4", "scale -> flatten -> scale(bias=false)")],
    "power": [("3x4x4", "relu -> power(2, scale=3, shift=0.5) -> power(0.5)")],
    # normalisation (norm.py, caffe_norm.py, fitted.py)
    "bn": [("3x8x8", "conv(4, 3, pad=1, bias=false) -> bn -> relu"), ("3x8x8", "relu -> bn")],
    "layernorm": [("8x5x7", "layernorm"), ("8x5x7", "layernorm(over=last, eps=1e-3)"),
                  ("3x4x6", "reshape([12, 6]) -> layernorm(affine=false)"),
                  ("8x5x7", "flatten -> layernorm(eps=1e-6)"),
                  ("8x5x7", "layernorm(affine=false, eps=0.1)")],
    "lrn": [("7x6x6", "lrn(5, alpha=0.01, beta=0.75, k=2)")],
    "lrn_within": [("3x7x7", "lrn_within(5, alpha=0.9, beta=0.75)")],
    "mvn": [("3x6x6", "mvn(eps=1e-5)"),
            ("3x6x6", "mvn(across_channels=true, normalize_variance=false)")],
    "standardize": [("3x6x6", "conv(3, 1) -> standardize(eps=1e-3)"),
                    ("3x6x6", "standardize(stats=batch)")],
    "unitnorm": [("3x4x4", "unitnorm"), ("3x4x4", "flatten -> unitnorm(center=false)")],
    "normalize": [("8x5x7", "normalize(across_spatial=false, channel_shared=false, init=20.0)"),
                  ("8x5x7", "normalize -> conv(4, 1)"),
                  ("8x5x7", "gap -> flatten -> normalize(channel_shared=false, eps=0.5)")],
    # pooling (pool.py, caffe_pool.py)
    "maxpool": [("3x12x12", "maxpool(3, stride=2)"), ("3x12x12", "maxpool(3, stride=2, ceil=true)"),
                ("3x11x11", "maxpool(3, stride=2, pad=1, ceil=true)"),
                ("3x11x10", "maxpool(2, stride=2, pad=same)"),
                ("3x9x8", "maxpool(3, stride=2, pad=[1, 0, 2, 1])")],
    "avgpool": [("3x12x12", "avgpool(2)"), ("3x12x12", "avgpool(3, stride=2, pad=1, ceil=true)"),
                ("3x11x11", "avgpool(3, stride=2, pad=1, count_pad=false)"),
                ("3x11x10", "avgpool(3, stride=2, pad=same, count_pad=false)"),
                ("3x11x10", "avgpool(2, stride=1, pad=[1, 0, 0, 1])")],
    "gap": [("3x7x5", "gap -> flatten")],
    "adaptive_avgpool": [("3x12x12", "adaptive_avgpool(4)"), ("3x12x10", "adaptive_avgpool([5, 3])")],
    "caffe_pool": [("3x11x13", "caffe_pool([3, 5], stride=[2, 1], pad=[2, 1])"),
                   ("3x11x13", "caffe_pool([3, 5], stride=[2, 1], pad=[2, 1], mode=ave)"),
                   ("3x7x7", "caffe_pool(2, stride=3, mode=ave)")],
    # joins and residuals (join.py)
    "concat": [("3x6x6", "concat[conv(2, 1), conv(3, 1), maxpool(3, stride=1, pad=1)]"),
               ("3x12x12", "concat(fit=crop)[identity, conv(2, 4), conv(2, 3)]"),
               ("3x12x11", "concat(fit=pad)[identity, conv(2, 4), conv(2, 3)]")],
    "add": [("3x6x6", "add[conv(3, 1), identity]"),
            ("3x6x6", "add[conv(3, 1), conv(3, 3, pad=1), identity]"),
            ("8x5x7", "add[identity, conv(1, 1), gap, gap -> flatten]")],
    "mul": [("3x6x6", "mul[conv(3, 1), conv(3, 1), identity]"),
            ("8x5x7", "mul[identity, gap -> conv(2, 1) -> relu -> conv(8, 1) -> sigmoid]"),
            ("8x5x7", "mul[identity, gap -> flatten -> fc(2) -> relu -> fc(8) -> sigmoid]")],
    "max": [("3x6x6", "max[conv(3, 1), conv(3, 1), identity]"), ("8x5x7", "max[conv(1, 1), gap]")],
    "mean": [("3x6x6", "mean(droppath=0.3)[conv(3, 1), conv(3, 1), identity]")],
    "axpy": [("8x5x7", "axpy[gap -> conv(8, 1) -> sigmoid, conv(8, 1), identity]"),
             ("8x5x7", "axpy[gap -> flatten -> fc(8) -> sigmoid, identity, conv(8, 1)]")],
    "residual": [("3x6x6", "residual(conv(3, 3, pad=1) -> bn, survival=0.7) -> relu"),
                 ("3x6x6", "residual(conv(3, 3, pad=1) -> relu, survival=0.6)"),
                 ("3x8x8", "residual(conv(8, 3, stride=2, pad=1) -> bn, shortcut=project)")],
    "shortcut_pad": [("3x11x11", "residual(conv(8, 3, stride=2, pad=1), shortcut=pad)"),
                     ("3x12x12", "residual(conv(8, 3, stride=2, pad=1), shortcut=pad_avg)")],
    # resizing (resize.py)
    "upsample": [("3x7x9", "upsample(2)"), ("3x11x30", "upsample(size=[69, 18])"),
                 ("3x7x9", "upsample(2.5)"), ("3x7x9", "upsample([2, 3], mode=bilinear)"),
                 ("3x7x9", "upsample(size=[13, 5], mode=bilinear)"),
                 ("3x7x9", "upsample(size=[1, 1], mode=bilinear)"),
                 ("3x7x9", "upsample(size=[13, 17], mode=bilinear, align_corners=true)"),
                 ("3x6x5", "upsample(2, mode=bilinear) -> relu -> upsample(3) -> conv(2, 1)")],
    "resize": [("3x11x13", "add[conv(4, 1), resize[maxpool(2) -> conv(4, 1), identity]]"),
               ("3x12x12", "add[conv(4, 1), resize(mode=bilinear)[maxpool(2) -> conv(4, 1), "
                           "identity]]"),
               ("3x7x9", "resize(mode=bilinear, align_corners=true)[identity, "
                         "upsample(size=[10, 4])]")],
    "crop": [("3x12x12", "crop[identity, conv(2, 3)]"),
             ("3x12x12", "crop(offset=[1, 2])[identity, conv(2, 5)]"),
             ("3x12x12", "crop(offset=1, axis=1)[identity, conv(1, 5)]")],
    # channels and layout (channels.py, reshape.py)
    "slice": [("8x5x7", "slice(2, -1)"), ("8x5x7", "slice(-3) -> slice(1, 4, axis=3)")],
    "chunk": [("8x5x7", "chunk(5, 4, axis=2)"),
              ("8x5x7", "concat[chunk(2, 0), chunk(2, 1) -> conv(4, 1) -> relu] "
                        "-> channel_shuffle(2)")],
    "channel_shuffle": [("6x5x7", "channel_shuffle(3)")],
    "flatten": [("3x7x5", "flatten")],
    "permute": [("8x5x7", "permute([1, 2, 0]) -> linear(4) -> permute([2, 0, 1]) -> conv(3, 1)"),
                ("3x4x6", "reshape([12, 6]) -> permute([1, 0]) -> linear(3)")],
    "transpose": [("8x5x7", "transpose(1, 2) -> conv(2, 3)"),
                  ("3x4x6", "reshape([12, 6]) -> transpose(0, 1) -> layernorm")],
    "layer_scale": [("8x5x7", "layer_scale"), ("3x4x6", "reshape([12, 6]) -> layer_scale(0.5)"),
                    ("8x5x7", "residual(conv(8, 3, pad=1) -> layer_scale(0.1), survival=0.7)"),
                    ("8x5x7", "permute([1, 2, 0]) -> layer_scale")],
    "reshape": [("3x4x6", "reshape([2, -1, 4]) -> conv(2, 1) -> reshape([72])")],
    # token sequences and transformer blocks (tokens.py, attention.py)
    "tokens": [("6x3x5", "tokens"), ("3x8x8", "conv(6, 4, stride=4) -> tokens -> flatten")],
    "class_token": [("6x3x5", "tokens -> class_token(init=normal, std=0.5)")],
    "pos_embedding": [("6x3x5", "tokens -> pos_embedding(std=0.5)"),
                      ("6x3x5", "tokens -> class_token(init=normal) -> pos_embedding")],
    "take_token": [("6x3x5", "tokens -> take_token(4)"),
                   ("6x3x5", "tokens -> class_token(init=normal) -> take_token -> fc(3)")],
    "attention": [("8x3x4", "tokens -> attention(2)"),
                  ("12x2x3", "tokens -> attention(4, dropout=0.1) -> attention(1)"),
                  ("8x3x4", "tokens -> residual(attention(8)) -> mlp(16)"),
                  ("8x3x4", "tokens -> residual(layernorm -> attention(2) -> dropout(0.1), "
                            "survival=0.8)")],
    "mlp": [("8x3x4", "tokens -> mlp(32)"),
            ("8x3x4", "tokens -> class_token -> mlp(5, dropout=0.2) -> take_token")],
    # fitted layers, on their seeded (random orthonormal) weights (fitted.py)
    "pca": [("3x4x4", "flatten -> concat[pca(5), pca(4, whiten=true)]")],
    "pca_reconstruct": [("2x3x3", "flatten -> pca_reconstruct(4)")],
    "pca_distance": [("2x3x3", "flatten -> concat[pca_reconstruct(4), pca_distance(4)]")],
}
CASES = [(op, i) for op, rows in OPS.items() for i in range(len(rows))]


def make_net(tmp_path, shape: str, body: str, name: str = "t"):
    path = tmp_path / f"{name}.net"
    path.write_text(f"net {name} {{\n  input image: {shape}\n  image -> {body}\n}}\n")
    return load(str(path))


def random_bn(graph, weights, seed=1):
    """Non-trivial batch-norm statistics, so folding and the bn formula are really tested."""
    rng = np.random.default_rng(seed)
    out = dict(weights)
    for node in graph:
        if node.op == "bn":
            c = node.shape[0]
            out[f"{node.name}.running_mean"] = rng.normal(0, 0.3, c).astype(np.float32)
            out[f"{node.name}.running_var"] = rng.uniform(0.3, 2.0, c).astype(np.float32)
            out[f"{node.name}.weight"] = rng.uniform(0.5, 1.5, c).astype(np.float32)
            out[f"{node.name}.bias"] = rng.normal(0, 0.3, c).astype(np.float32)
    return out


# Ops whose initial weights are constants (a slope of 0.25, γ = 1, β = 0): random instead.
CONSTANT_INIT = ("prelu", "layernorm", "layer_scale")


def random_slopes(graph, weights, seed=2):
    """Different PReLU slopes, layer-norm γ and β and layer scales per channel, so a value
    applied to the wrong channel (or axis) shows."""
    rng = np.random.default_rng(seed)
    out = dict(weights)
    for node in graph:
        if node.op in CONSTANT_INIT:
            for key in [k for k in weights if k.startswith(f"{node.name}.")]:
                out[key] = rng.uniform(-0.5, 0.5, weights[key].shape).astype(np.float32)
    return out


def scaled_input(graph, seed=5, batch=2):
    # Values up to ±8: the knees of relu6, hardswish and hardsigmoid (±3, 6) and softplus'
    # large-x branch are all exercised.
    x = np.random.default_rng(seed).standard_normal((batch, *graph.inputs["image"].shape))
    return (4 * x).astype(np.float32)


def run_ort(model, x: np.ndarray) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})


def close(out, ref) -> bool:
    return bool(np.abs(out - ref).max() <= 1e-5 * np.abs(ref).max() + 1e-6)


@pytest.mark.parametrize("op, row", CASES, ids=[f"{op}-{i}" for op, i in CASES])
def test_onnx_runtime_agrees_with_torch(tmp_path, op, row):
    shape, body = OPS[op][row]
    graph = make_net(tmp_path, shape, body)
    assert any(n.op == op for n in graph), f"the row of {op} does not use it: {body}"
    weights = random_slopes(graph, random_bn(graph, init_weights(graph, seed=4)))
    x = scaled_input(graph)
    module = build_module(graph, weights).eval()
    with torch.no_grad():
        ref = module(torch.from_numpy(x)).numpy()
    assert ref.shape == (2, *graph[graph.outputs[0]].shape)
    folds = (True, False) if any(n.op == "bn" for n in graph) else (True,)
    for fold in folds:
        run = set()
        for opset in OPSETS:
            model = lower(graph, weights, fold_bn=fold, opset=opset)
            assert model.opset_import[0].version == opset
            if program(model) in run:  # the same program as at an opset already run
                continue
            run.add(program(model))
            (out,) = run_ort(model, x)
            assert out.shape == ref.shape, f"opset {opset}, fold_bn={fold}"
            err, top = np.abs(out - ref).max(), np.abs(ref).max()
            assert close(out, ref), (f"opset {opset}, fold_bn={fold}: max diff {err:.3g}, "
                                     f"max|ref| {top:.3g}")


OPSETS = range(MIN_OPSET, OPSET + 1)


def program(model: onnx.ModelProto) -> tuple:
    """What a runtime executes: the graph's bytes and each node's operator version (the
    module docstring says why equal keys need not both run)."""
    opset = model.opset_import[0].version
    versions = tuple(onnx.defs.get_schema(n.op_type, opset, n.domain).since_version
                     for n in model.graph.node)
    return model.graph.SerializeToString(deterministic=True), versions


def test_every_opset_runs_where_an_op_changes(tmp_path):
    """The skipping above is not everything: opsets where an op's version changes do run."""
    graph = make_net(tmp_path, "3x7x9", "upsample(2, mode=bilinear) -> relu -> hardswish")
    keys = {opset: program(lower(graph, opset=opset)) for opset in OPSETS}
    changed = [v for v in OPSETS if v == MIN_OPSET or keys[v] != keys[v - 1]]
    # Relu-14 and HardSwish at 14, Shape-15 (the sizes Resize takes before 18), Resize's axes
    # at 18; nothing these ops write changes at 16 or 17
    assert changed == [13, 14, 15, 18]


def test_an_onnx_op_newer_than_the_opset_is_written_in_older_ops(tmp_path):
    """HardSwish is opset 14: below it, the hardswish op writes x · HardSigmoid(x) itself."""
    graph = make_net(tmp_path, "8x5x7", "hardswish")
    types = {opset: [n.op_type for n in lower(graph, opset=opset).graph.node]
             for opset in (13, 14)}
    assert types == {13: ["HardSigmoid", "Mul"], 14: ["HardSwish"]}


# -- hand-computed references ------------------------------------------------------------------

def test_shortcut_pad_is_a_strided_slice_then_zero_channels(tmp_path):
    graph = make_net(tmp_path, "3x11x11", "residual(conv(8, 3, stride=2, pad=1), shortcut=pad)",
                     "pad")
    pad = next(n for n in graph if n.op == "shortcut_pad")
    x = np.random.default_rng(0).standard_normal((1, 3, 11, 11)).astype(np.float32)
    (short,) = run_ort(lower(graph, outputs=[pad.name]), x)[1:]
    want = np.zeros((1, 8, 6, 6), np.float32)
    want[:, :3] = x[:, :, ::2, ::2]
    np.testing.assert_array_equal(short, want)


def test_adaptive_pool_matrix_matches_torch_windows():
    x = torch.randn(1, 2, 13, 10, dtype=torch.float64)
    want = F.adaptive_avg_pool2d(x, (5, 3)).numpy()
    got = adaptive_matrix(13, 5) @ x.numpy() @ adaptive_matrix(10, 3).T
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_lrn_is_caffes_formula(tmp_path):
    graph = make_net(tmp_path, "7x3x3", "lrn(5, alpha=0.1, beta=0.75, k=2)", "lrn")
    x = np.random.default_rng(1).standard_normal((1, 7, 3, 3)).astype(np.float32)
    (out,) = run_ort(lower(graph), x)
    sq = np.pad(x.astype(np.float64) ** 2, ((0, 0), (2, 2), (0, 0), (0, 0)))
    window = sum(sq[:, i:i + 7] for i in range(5))
    want = x / (2 + 0.1 / 5 * window) ** 0.75
    np.testing.assert_allclose(out, want, rtol=1e-5)


def test_caffe_ceil_pool_keeps_the_last_partial_window(tmp_path):
    # GoogLeNet's pool1: 3x3/2 on 112 gives 56 in Caffe (ceil), 55 with floor.
    graph = make_net(tmp_path, "1x112x112", "maxpool(3, stride=2, ceil=true)", "ceil")
    model = lower(graph)
    assert model.graph.output[0].type.tensor_type.shape.dim[2].dim_value == 56
    attrs = {a.name: a for a in model.graph.node[0].attribute}
    assert attrs["ceil_mode"].i == 1
    x = np.random.default_rng(2).standard_normal((1, 1, 112, 112)).astype(np.float32)
    (out,) = run_ort(model, x)
    assert out[0, 0, -1, -1] == x[0, 0, 110:, 110:].max()  # the window cut by the edge
