"""The ops of decoders, mobile nets and ShuffleNet beyond the per-op table
(tests/test_onnx_ops.py, which runs every op's torch and ONNX faces against each other): deconv,
upsample, crop, asymmetric and TensorFlow-same padding, broadcasting joins, channel slices and
shuffle, the newer activations.

- shape rules against their formulas and against what torch computes, on random shapes with
  odd sizes, strides, dilations and output pads;
- values against references written here from the definitions (a scatter loop for the
  transposed convolution, TensorFlow's padding rule, Caffe's bilinear filler, the activation
  formulas), not against netc's own lowerings;
- the ops inside ONNX model-local functions;
- parameter and multiply-accumulate counts against hand arithmetic.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from netc.compiler.lower_onnx.model import lower
from netc.compiler.lower_torch.module import build_module
from netc.compiler.analyses.summary import summarize
from netc.compiler.numerics.seeded_weights import init_weights
from netc.compiler.ops import REGISTRY
from netc.compiler.ops.formulas import bilinear_kernel
from netc.compiler.ops.resize import nearest_indices
from tests.test_onnx_ops import close, make_net, random_slopes, run_ort, scaled_input

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_the_ops_lower_inside_onnx_functions(tmp_path):
    """Ops that read their input's size (same padding, fit, crop, upsample, slices) also lower
    inside a model-local function (``--functions``), where values have local names; a Resize
    in a function nested in another keeps the batch axis of the calls' outputs."""
    path = tmp_path / "u.net"
    path.write_text("""
def down_up(c) = concat(fit=crop)[identity,
    maxpool(2, stride=2, pad=same) -> conv(c, 3, stride=2, pad=same) -> prelu
    -> deconv(c, 2, stride=2) -> up]
def up = upsample(2, mode=bilinear)
def unit(c) = concat[chunk(2, 0), chunk(2, 1) -> conv(c // 2, 1)] -> channel_shuffle(2)
net u { input image: 4x13x13
  image -> down_up(4) -> unit(8) -> crop[slice(0, 4), conv(4, 3)] }
""")
    from netc.compiler.frontend.loader import load

    graph = load(str(path))
    weights = random_slopes(graph, init_weights(graph, seed=1))
    x = scaled_input(graph, batch=3)
    with torch.no_grad():
        ref = build_module(graph, weights).eval()(torch.from_numpy(x)).numpy()
    model = lower(graph, weights, functions=True)
    assert {f.name for f in model.functions} >= {"down_up", "unit", "up"}
    (out,) = run_ort(model, x)
    assert close(out, ref)


# -- shape rules: formula and torch, on random shapes ----------------------------------------

RNG_CASES = 40


def _rng(seed):
    return np.random.default_rng(seed)


def test_deconv_shape_is_the_formula_and_torchs():
    op = REGISTRY["deconv"]
    rng = _rng(0)
    for _ in range(RNG_CASES):
        h, w = (int(v) for v in rng.integers(1, 12, 2))
        k, s, d = (int(v) for v in rng.integers(1, 5, 3))
        p = int(rng.integers(0, k))
        o = int(rng.integers(0, max(s, d)))
        a = op.bind([2, k], {"stride": s, "pad": p, "dilation": d, "output_pad": o})
        want = (h - 1) * s - 2 * p + d * (k - 1) + o + 1
        if want <= 0:
            continue
        shape = op.infer_shape(a, [(3, h, w)])
        y = F.conv_transpose2d(torch.zeros(1, 3, h, w), torch.zeros(3, 2, k, k), stride=s,
                               padding=p, output_padding=o, dilation=d)
        assert shape == (2, want, (w - 1) * s - 2 * p + d * (k - 1) + o + 1)
        assert shape == tuple(y.shape[1:])


def test_same_padding_is_tensorflows_rule():
    from netc.compiler.ops import Symbol

    rng = _rng(1)
    for _ in range(RNG_CASES):
        h, w = (int(v) for v in rng.integers(1, 30, 2))
        k, s, d = (int(v) for v in rng.integers(1, 6, 3))
        for name, args, extra in (("conv", [2, k], {"dilation": d}), ("maxpool", [k], {}),
                                  ("avgpool", [k], {})):
            a = REGISTRY[name].bind(args, {"stride": s, "pad": Symbol("same"), **extra})
            shape = REGISTRY[name].infer_shape(a, [(3, h, w)])
            assert shape[1:] == (math.ceil(h / s), math.ceil(w / s)), (name, h, w, k, s, d)


def test_asymmetric_pad_shape_matches_torch_after_f_pad():
    rng = _rng(2)
    for _ in range(RNG_CASES):
        h, w = (int(v) for v in rng.integers(4, 20, 2))
        k, s = (int(v) for v in rng.integers(1, 4, 2))
        pads = [int(v) for v in rng.integers(0, k, 4)]
        a = REGISTRY["conv"].bind([2, k], {"stride": s, "pad": pads})
        y = F.conv2d(F.pad(torch.zeros(1, 3, h, w), (pads[1], pads[3], pads[0], pads[2])),
                     torch.zeros(2, 3, k, k), stride=s)
        assert REGISTRY["conv"].infer_shape(a, [(3, h, w)]) == tuple(y.shape[1:])


def test_upsample_shape_is_floor_of_scale_and_torchs():
    op = REGISTRY["upsample"]
    rng = _rng(3)
    for _ in range(RNG_CASES):
        h, w = (int(v) for v in rng.integers(1, 20, 2))
        sh, sw = (float(v) for v in rng.choice([0.5, 1.5, 2, 2.5, 3, 4], 2))
        a = op.bind([[sh, sw]], {})
        y = F.interpolate(torch.zeros(1, 1, h, w), scale_factor=(sh, sw), mode="nearest")
        if min(math.floor(h * sh), math.floor(w * sw)) == 0:
            continue
        assert op.infer_shape(a, [(1, h, w)]) == (1, math.floor(h * sh), math.floor(w * sw))
        assert op.infer_shape(a, [(1, h, w)]) == tuple(y.shape[1:])


def test_crop_slice_and_chunk_shapes_match_torch_indexing():
    rng = _rng(4)
    for _ in range(RNG_CASES):
        c, h, w = (int(v) for v in rng.integers(2, 12, 3))
        x = torch.zeros(1, c, h, w)
        th, tw = int(rng.integers(1, h + 1)), int(rng.integers(1, w + 1))
        crop = REGISTRY["crop"]
        assert crop.infer_shape(crop.bind([], {}), [(c, h, w), (5, th, tw)]) == (c, th, tw)
        assert crop.offsets(crop.bind([], {}), [(c, h, w), (5, th, tw)]) == (
            (h - th) // 2, (w - tw) // 2)
        start, end = sorted(int(v) for v in rng.choice(np.arange(-c, c + 1), 2, replace=False))
        if len(range(c)[start:end]):  # netc refuses an empty range; Python's is empty
            a = REGISTRY["slice"].bind([start, end], {})
            assert REGISTRY["slice"].infer_shape(a, [(c, h, w)])[0] == x[:, start:end].shape[1]
        parts = int(rng.choice([p for p in range(1, c + 1) if c % p == 0]))
        for i in range(parts):
            a = REGISTRY["chunk"].bind([parts, i], {})
            assert REGISTRY["chunk"].bounds(a, (c, h, w)) == (i * c // parts,
                                                               (i + 1) * c // parts)


# -- values against references from the definitions ------------------------------------------

def scatter_deconv(x, w, b, stride, pads, output_pad, dilation, groups):
    """A transposed convolution as its definition: each input value scatters its kernel."""
    n, cin, h, wd = x.shape
    _, per_group, kh, kw = w.shape
    (sh, sw), (dh, dw), (oh, ow) = stride, dilation, output_pad
    full = np.zeros((n, per_group * groups, (h - 1) * sh + dh * (kh - 1) + 1 + oh,
                     (wd - 1) * sw + dw * (kw - 1) + 1 + ow))
    cin_g = cin // groups
    for c in range(cin):
        g = c // cin_g
        for co in range(per_group):
            for i in range(kh):
                for j in range(kw):
                    full[:, g * per_group + co, i * dh:i * dh + (h - 1) * sh + 1:sh,
                         j * dw:j * dw + (wd - 1) * sw + 1:sw] += x[:, c] * w[c, co, i, j]
    full += b[None, :, None, None]
    t, left, bottom, right = pads
    return full[:, :, t:full.shape[2] - bottom, left:full.shape[3] - right]


@pytest.mark.parametrize("body, stride, pads, output_pad, dilation, groups", [
    ("deconv(4, 3, stride=2, pad=1, output_pad=1)", (2, 2), (1, 1, 1, 1), (1, 1), (1, 1), 1),
    ("deconv(6, [3, 2], stride=[3, 2], pad=[2, 0, 1, 1], dilation=[1, 2], groups=3)",
     (3, 2), (2, 0, 1, 1), (0, 0), (1, 2), 3),
    ("deconv(6, 2, stride=3, pad=same, groups=3)", (3, 3), (0, 0, 0, 0), (1, 1), (1, 1), 3),
    ("deconv(3, 5, stride=2, pad=same)", (2, 2), (1, 1, 2, 2), (0, 0), (1, 1), 1),
])
def test_deconv_is_a_scatter_of_its_kernel(tmp_path, body, stride, pads, output_pad, dilation,
                                           groups):
    graph = make_net(tmp_path, "3x5x4" if groups == 1 else "6x5x4", body)
    weights = init_weights(graph, seed=3)
    name = graph.outputs[0]
    weights[f"{name}.bias"] = np.linspace(-1, 1, graph[name].shape[0]).astype(np.float32)
    x = scaled_input(graph)
    want = scatter_deconv(x.astype(np.float64), weights[f"{name}.weight"],
                          weights[f"{name}.bias"], stride, pads, output_pad, dilation, groups)
    (out,) = run_ort(lower(graph, weights), x)
    assert out.shape == want.shape
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
    if "same" in body:  # TensorFlow's conv2d_transpose SAME: the output is W·S
        assert out.shape[2:] == (5 * stride[0], 4 * stride[1])


def test_conv_same_is_tensorflows_padding(tmp_path):
    graph = make_net(tmp_path, "3x10x9", "conv(4, 4, stride=3, pad=same)")
    weights = init_weights(graph, seed=0)
    x = scaled_input(graph)
    # TF: out = ceil(W/S); pad (out-1)*S + F - W split with the extra at the bottom/right.
    ph = (math.ceil(10 / 3) - 1) * 3 + 4 - 10  # 3: top 1, bottom 2
    pw = (math.ceil(9 / 3) - 1) * 3 + 4 - 9  # 1: left 0, right 1
    padded = F.pad(torch.from_numpy(x), (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
    want = F.conv2d(padded, torch.from_numpy(weights["conv1.weight"]),
                    torch.from_numpy(weights["conv1.bias"]), stride=3).numpy()
    model = lower(graph, weights)
    pads = {a.name: list(a.ints) for a in model.graph.node[0].attribute}["pads"]
    assert pads == [1, 0, 2, 1]
    (out,) = run_ort(model, x)
    assert close(out, want)


@pytest.mark.filterwarnings("ignore:Using padding='same'")  # torch pads a copy: expected
@pytest.mark.parametrize("kernel, dilation", [(2, 1), (4, 1), ((2, 3), 2), (3, 3)])
def test_stride_1_same_is_torchs_padding_same(tmp_path, kernel, dilation):
    """torch's ``padding="same"`` (stride 1) also puts the odd pixel at the bottom/right."""
    k = list(kernel) if isinstance(kernel, tuple) else kernel
    graph = make_net(tmp_path, "3x9x8", f"conv(4, {k}, pad=same, dilation={dilation})")
    weights = init_weights(graph, seed=0)
    x = scaled_input(graph)
    want = F.conv2d(torch.from_numpy(x), torch.from_numpy(weights["conv1.weight"]),
                    torch.from_numpy(weights["conv1.bias"]), padding="same",
                    dilation=dilation).numpy()
    (out,) = run_ort(lower(graph, weights), x)
    assert out.shape == want.shape
    assert close(out, want)


def test_bilinear_filler_is_caffes():
    # Caffe's BilinearFiller for a 4x4 kernel (FCN's 2x upsampling): f = 2, c = 0.75.
    axis = np.array([0.25, 0.75, 0.75, 0.25])
    np.testing.assert_allclose(bilinear_kernel(4, 4), np.outer(axis, axis), rtol=1e-7)
    # 5x5, for 3x upsampling (f = 3, c = 2/3): 1/3, 2/3, 1, 2/3, 1/3 along each axis.
    np.testing.assert_allclose(bilinear_kernel(5, 5)[2], [1 / 3, 2 / 3, 1, 2 / 3, 1 / 3],
                               rtol=1e-6)


def test_bilinear_deconv_interpolates_a_ramp(tmp_path):
    graph = make_net(tmp_path, "1x6x6", "deconv(1, 4, stride=2, pad=1, init=bilinear, "
                                        "bias=false)")
    ramp = np.tile(np.arange(6, dtype=np.float32), (6, 1))[None, None]
    (out,) = run_ort(lower(graph), ramp)
    # Away from the border, 2x bilinear upsampling of 0, 1, 2, ... is (x - 0.5)/2 sampled.
    np.testing.assert_allclose(out[0, 0, 3, 1:-1], (np.arange(1, 11) - 0.5) / 2, rtol=1e-6)


def test_nearest_indices_are_torchs_on_any_ratio():
    rng = _rng(5)
    for _ in range(300):
        n, out = int(rng.integers(1, 200)), int(rng.integers(1, 500))
        x = torch.arange(n, dtype=torch.float32).reshape(1, 1, n, 1)
        want = F.interpolate(x, size=(out, 1), mode="nearest").reshape(-1).long().numpy()
        np.testing.assert_array_equal(nearest_indices(n, out), want)


def test_nearest_upsample_repeats_pixels(tmp_path):
    graph = make_net(tmp_path, "2x3x4", "upsample(3)")
    x = scaled_input(graph)
    (out,) = run_ort(lower(graph), x)
    np.testing.assert_array_equal(out, x.repeat(3, axis=2).repeat(3, axis=3))


def test_interp_with_aligned_corners_keeps_a_ramp_linear(tmp_path):
    # Caffe's Interp with zoom_factor z: H + (H - 1)(z - 1) = 7 + 6*2 = 19 for z = 3.
    graph = make_net(tmp_path, "1x7x5", "upsample(size=[19, 13], mode=bilinear, "
                                        "align_corners=true)")
    i, j = np.meshgrid(np.arange(7), np.arange(5), indexing="ij")
    x = (2.0 * i + 3.0 * j).astype(np.float32)[None, None]
    (out,) = run_ort(lower(graph), x)
    y, xx = np.meshgrid(np.arange(19) * 6 / 18, np.arange(13) * 4 / 12, indexing="ij")
    np.testing.assert_allclose(out[0, 0], 2 * y + 3 * xx, rtol=1e-5, atol=1e-5)


def test_channel_shuffle_interleaves_the_groups(tmp_path):
    graph = make_net(tmp_path, "6x1x1", "channel_shuffle(2)")
    x = np.arange(6, dtype=np.float32).reshape(1, 6, 1, 1)
    (out,) = run_ort(lower(graph), x)
    assert out.reshape(-1).tolist() == [0, 3, 1, 4, 2, 5]


ACTIVATIONS = {
    "relu6": lambda x: np.clip(x, 0, 6),
    "silu": lambda x: x / (1 + np.exp(-x)),
    "swish": lambda x: x / (1 + np.exp(-x)),
    "hardswish": lambda x: x * np.clip(x + 3, 0, 6) / 6,
    "hardsigmoid": lambda x: np.clip(x / 6 + 0.5, 0, 1),
    "mish": lambda x: x * np.tanh(np.log1p(np.exp(x))),
    "softplus": lambda x: np.log1p(np.exp(x)),
    "softplus(0.5)": lambda x: np.log1p(np.exp(0.5 * x)) / 0.5,
    "prelu": lambda x: np.where(x > 0, x, 0.25 * x),
}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_is_its_formula(tmp_path, name):
    graph = make_net(tmp_path, "1x1x41", name)
    x = np.linspace(-10, 10, 41, dtype=np.float32).reshape(1, 1, 1, 41)
    (out,) = run_ort(lower(graph), x)
    want = ACTIVATIONS[name](x.astype(np.float64))
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)


def test_prelu_slope_is_per_channel(tmp_path):
    graph = make_net(tmp_path, "3x2x2", "prelu")
    weights = {"prelu1.weight": np.array([0.1, -0.2, 0.3], np.float32)}
    x = -np.ones((1, 3, 2, 2), np.float32)
    (out,) = run_ort(lower(graph, weights), x)
    assert out[0, :, 0, 0].tolist() == pytest.approx([-0.1, 0.2, -0.3])


def test_broadcast_mul_is_a_weight_per_channel(tmp_path):
    graph = make_net(tmp_path, "4x3x3", "mul[identity, gap -> flatten]")
    x = scaled_input(graph)
    (out,) = run_ort(lower(graph), x)
    np.testing.assert_allclose(out, x * x.mean(axis=(2, 3))[:, :, None, None], rtol=1e-5)


# -- counts ----------------------------------------------------------------------------------

@pytest.mark.parametrize("body, params, macs", [
    # C_in·(C_out/g)·kh·kw + bias; MACs: every input value meets (C_out/g)·kh·kw weights.
    ("deconv(8, 3, stride=2)", 4 * 8 * 9 + 8, 4 * 6 * 5 * 8 * 9),
    ("deconv(8, [2, 4], stride=2, groups=2, bias=false)", 4 * 4 * 8, 4 * 6 * 5 * 4 * 8),
    ("prelu", 4, 0),
    ("prelu(shared=true)", 1, 0),
    ("conv(6, 4, stride=2, pad=same)", 6 * 4 * 16 + 6, 6 * 3 * 3 * 4 * 16),
    ("upsample(2, mode=bilinear) -> channel_shuffle(2) -> chunk(2, 1) -> relu6 -> mish", 0, 0),
])
def test_counts_are_hand_arithmetic(tmp_path, body, params, macs):
    graph = make_net(tmp_path, "4x6x5", body)
    summary = summarize(graph)
    assert (summary.params, summary.macs) == (params, macs)
    module = build_module(graph)
    assert sum(p.numel() for p in module.parameters()) == params


def test_readme_example_of_the_newer_ops(tmp_path):
    from tests.test_readme import blocks

    spec = tmp_path / "tour.net"
    spec.write_text(blocks("### Decoders, attention and mobile nets")[0])
    from netc.compiler.frontend.loader import load

    s = summarize(load(str(spec)))
    # conv 448, inner conv 4,640, deconv 32·16·4 + 16 = 2,064, se 264 + 288, shuffle unit
    # 256 + 144 + 256 + 3 bn·32, last conv 66.
    assert s.outputs == {"score": (2, 64, 64)}
    assert s.params == 448 + 4640 + 2064 + 264 + 288 + 256 + 144 + 256 + 96 + 66


def test_a_broadcast_gate_widens_the_field_but_keeps_the_jump(tmp_path):
    from netc.compiler.analyses.summary import receptive_fields

    graph = make_net(tmp_path, "3x16x16", "conv(4, 3) -> mul[identity, gap] -> conv(4, 3)")
    fields = receptive_fields(graph)
    # conv1: 3 (jump 1); gap over 14x14: 3 + 13 = 16 (jump 14); the product has the gate's
    # field 16 and the identity's jump 1, so the last conv sees 16 + 2·1.
    assert fields["mul1"] == (16, 1) and fields["conv2"] == (18, 1)
