"""Every op's ONNX face against its PyTorch face, plus hand-computed references.

The table ``CASES`` holds one small net per op form: the net is lowered both ways on the same
seeded weights, run by ONNX Runtime (CPU) and by the torch module in eval mode, and the outputs
must agree to ``atol = 1e-5·max|ref| + 1e-6`` (shared/reference/MEASURED.md). To add an op,
add a row with a body that uses it; an ``xfail`` row must say why.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F

from netc.compiler.frontend.loader import load
from netc.compiler.lower_onnx.model import lower
from netc.compiler.lower_torch.module import build_module
from netc.compiler.ops import REGISTRY, OpDef
from netc.compiler.ops.pool import adaptive_matrix
from netc.compiler.numerics.seeded_weights import init_weights

# name -> (input shape, chain after `image ->`)
CASES = {
    "conv": ("3x12x12", "conv(4, 3, stride=2, pad=1)"),
    "conv_dilated_grouped": ("3x12x12", "conv(6, 3, dilation=2, groups=3, pad=2)"),
    "conv_rect_no_bias": ("3x12x12", "conv(4, [3, 1], pad=[1, 0], bias=false)"),
    "fc": ("3x4x4", "flatten -> fc(5)"),
    "fc_no_bias_bn": ("3x4x4", "flatten -> fc(5, bias=false) -> bn"),
    "conv_bn": ("3x8x8", "conv(4, 3, pad=1, bias=false) -> bn -> relu"),
    "bn_alone": ("3x8x8", "relu -> bn"),
    "lrn": ("7x6x6", "lrn(5, alpha=0.01, beta=0.75, k=2)"),
    "maxpool": ("3x12x12", "maxpool(3, stride=2)"),
    "maxpool_ceil": ("3x12x12", "maxpool(3, stride=2, ceil=true)"),
    "maxpool_ceil_pad": ("3x11x11", "maxpool(3, stride=2, pad=1, ceil=true)"),
    "avgpool": ("3x12x12", "avgpool(2)"),
    "avgpool_ceil_pad": ("3x12x12", "avgpool(3, stride=2, pad=1, ceil=true)"),
    "avgpool_no_count_pad": ("3x11x11", "avgpool(3, stride=2, pad=1, count_pad=false)"),
    "gap": ("3x7x5", "gap -> flatten"),
    "adaptive_even": ("3x12x12", "adaptive_avgpool(4)"),
    "adaptive_uneven": ("3x12x10", "adaptive_avgpool([5, 3])"),
    "relu_sigmoid_tanh": ("3x4x4", "relu -> sigmoid -> tanh"),
    "gelu": ("3x4x4", "gelu"),
    "leaky_elu": ("3x4x4", "leaky_relu(0.2) -> elu(0.5)"),
    "identity_dropout": ("3x4x4", "identity -> dropout(0.3) -> relu"),
    "softmax_map": ("3x4x4", "softmax"),
    "log_softmax_flat": ("3x4x4", "flatten -> log_softmax"),
    "concat": ("3x6x6", "concat[conv(2, 1), conv(3, 1), maxpool(3, stride=1, pad=1)]"),
    "add2": ("3x6x6", "add[conv(3, 1), identity]"),
    "add3": ("3x6x6", "add[conv(3, 1), conv(3, 3, pad=1), identity]"),
    "mul3": ("3x6x6", "mul[conv(3, 1), conv(3, 1), identity]"),
    "max3": ("3x6x6", "max[conv(3, 1), conv(3, 1), identity]"),
    "mean_droppath": ("3x6x6", "mean(droppath=0.3)[conv(3, 1), conv(3, 1), identity]"),
    "residual_survival_folded": ("3x6x6",
                                 "residual(conv(3, 3, pad=1) -> bn, survival=0.7) -> relu"),
    "residual_survival_mul": ("3x6x6", "residual(conv(3, 3, pad=1) -> relu, survival=0.6)"),
    "shortcut_pad": ("3x11x11", "residual(conv(8, 3, stride=2, pad=1), shortcut=pad)"),
    "shortcut_pad_avg": ("3x12x12", "residual(conv(8, 3, stride=2, pad=1), shortcut=pad_avg)"),
    "shortcut_project": ("3x8x8", "residual(conv(8, 3, stride=2, pad=1) -> bn, "
                                  "shortcut=project)"),
    # fitted layers (compiler/ops/fitted.py), on their seeded (random orthonormal) weights
    "unitnorm": ("3x4x4", "unitnorm"),
    "unitnorm_no_center_flat": ("3x4x4", "flatten -> unitnorm(center=false)"),
    "pca_code_whiten": ("3x4x4", "flatten -> concat[pca(5), pca(4, whiten=true)]"),
    "pca_reconstruct_distance": ("2x3x3", "flatten -> concat[pca_reconstruct(4), "
                                          "pca_distance(4)]"),
    "fc_fit": ("3x4x4", "flatten -> fc(5, fit=ridge(0.1))"),
    # Caffe's layers (compiler/ops/caffe_*.py, view.py)
    "mvn": ("3x6x6", "mvn(eps=1e-5)"),
    "mvn_across_mean_only": ("3x6x6", "mvn(across_channels=true, normalize_variance=false)"),
    "lrn_within": ("3x7x7", "lrn_within(5, alpha=0.9, beta=0.75)"),
    "standardize_running": ("3x6x6", "conv(3, 1) -> standardize(eps=1e-3)"),
    "standardize_batch": ("3x6x6", "standardize(stats=batch)"),
    "power": ("3x4x4", "relu -> power(2, scale=3, shift=0.5) -> power(0.5)"),
    "scale": ("3x4x4", "scale -> flatten -> scale(bias=false)"),
    "fc_axis": ("3x4x5", "fc_axis(6, axis=2) -> flatten -> fc(4)"),
    "reshape": ("3x4x6", "reshape([2, -1, 4]) -> conv(2, 1) -> reshape([72])"),
    "caffe_pool_max": ("3x11x13", "caffe_pool([3, 5], stride=[2, 1], pad=[2, 1])"),
    "caffe_pool_ave": ("3x11x13", "caffe_pool([3, 5], stride=[2, 1], pad=[2, 1], mode=ave)"),
    "caffe_pool_pad0": ("3x7x7", "caffe_pool(2, stride=3, mode=ave)"),
}


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


def run_ort(model, x: np.ndarray) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})


def close(out, ref) -> bool:
    return bool(np.abs(out - ref).max() <= 1e-5 * np.abs(ref).max() + 1e-6)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("fold", [True, False], ids=["folded", "unfolded"])
def test_onnx_runtime_agrees_with_torch(tmp_path, case, fold):
    shape, body = CASES[case]
    graph = make_net(tmp_path, shape, body)
    weights = random_bn(graph, init_weights(graph, seed=4))
    x = np.random.default_rng(5).standard_normal((2, *graph.inputs["image"].shape))
    x = x.astype(np.float32)
    module = build_module(graph, weights).eval()
    with torch.no_grad():
        ref = module(torch.from_numpy(x)).numpy()
    (out,) = run_ort(lower(graph, weights, fold_bn=fold), x)
    assert out.shape == ref.shape
    err, top = np.abs(out - ref).max(), np.abs(ref).max()
    assert close(out, ref), f"max diff {err:.3g}, max|ref| {top:.3g}"


def test_every_registered_op_has_an_onnx_face_and_the_table_covers_it():
    missing = [name for name, op in REGISTRY.items() if type(op).to_onnx is OpDef.to_onnx]
    assert missing == []
    from tests.test_ops_reach import REACH_CASES

    used = " ".join(body for _, body in [*CASES.values(), *REACH_CASES.values()])
    untested = [name for name in REGISTRY
                if name not in used and name not in ("shortcut_pad", "residual")]
    assert untested == []


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
