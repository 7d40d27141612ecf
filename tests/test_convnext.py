"""ConvNeXt-T as written (model_specs/convnext.net) against torchvision's convnext_tiny.

torchvision cannot be installed here; what it builds is known from its state dict
(shared/reference/torchvision/convnext_tiny.state_dict.json: every key and shape, 28,589,128
parameters with ``weights=None``), its model table (4.46 GFLOPS, fvcore's multiply-accumulates)
and its source (``CNBlock.forward``, rewritten below in torch.nn.functional as the reference of
one block). The torch module and the ONNX file must agree at opsets 13 (layer norm expanded)
and 18 (LayerNormalization) to 1e-5·max|ref| on a 64x64 input, which takes every stage.
"""

from __future__ import annotations

import json
from collections import Counter
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from netc.compiler.analyses.summary import summarize
from netc.compiler.frontend.loader import load
from netc.compiler.lower_onnx.model import lower
from netc.compiler.lower_torch.module import build_module
from netc.compiler.numerics.seeded_weights import init_weights
from tests.test_onnx_ops import run_ort

pytestmark = pytest.mark.usefixtures("one_torch_thread")

REFERENCE = Path("/work/shared/reference/torchvision/convnext_tiny.state_dict.json")
DEPTHS, DIMS = (3, 3, 9, 3), (96, 192, 384, 768)


@lru_cache(maxsize=None)
def convnext(size: int = 224, sd_mode: str = "row"):
    return load("convnext_tiny", {"size": size, "sd_mode": sd_mode})


def lively_weights(graph, seed=0):
    """Seeded weights with layer scales and layer-norm γ, β far from their initial 1e-6, 1 and
    0, so that every block's body counts in the output (at 1e-6 it would vanish in the sum)."""
    weights = init_weights(graph, seed)
    rng = np.random.default_rng(seed + 1)
    for node in graph:
        if node.op == "layer_scale":
            key = f"{node.name}.gamma"
            weights[key] = rng.uniform(0.2, 0.6, weights[key].shape).astype(np.float32)
        elif node.op == "layernorm":
            for key, centre in ((f"{node.name}.weight", 1.0), (f"{node.name}.bias", 0.0)):
                noise = rng.normal(0, 0.2, weights[key].shape)
                weights[key] = (centre + noise).astype(np.float32)
    return weights


def test_parameters_and_macs_are_torchvisions():
    s = summarize(convnext())
    assert s.params == 28_589_128
    # torchvision's table: 4.46 GFLOPS (fvcore counts one multiply-accumulate as a FLOP);
    # netc counts conv and linear MACs: 4,455,531,264.
    assert s.macs == 4_455_531_264 and round(s.macs / 1e9, 2) == 4.46


@pytest.mark.skipif(not REFERENCE.exists(), reason="the shared torchvision reference is absent")
def test_every_tensor_of_torchvisions_state_dict_has_its_counterpart():
    """The same tensors, shape for shape: torchvision's layer_scale is (C, 1, 1) where netc's
    per-channel gamma is (C,); every other shape is the same."""
    reference = json.loads(REFERENCE.read_text())
    assert reference["parameters"] == 28_589_128

    def key(shape):
        return tuple(shape[:1]) if len(shape) == 3 and shape[1:] == [1, 1] else tuple(shape)

    theirs = Counter(key(shape) for _, shape, _ in reference["state_dict"])
    ours = Counter(tuple(a.shape) for a in init_weights(convnext()).values())
    assert ours == theirs


def test_blocks_follow_table_9_and_torchvisions_stochastic_depth():
    graph = convnext()
    blocks = [n for n in graph if n.op == "residual"]
    assert len(blocks) == sum(DEPTHS)
    widths = [n.shape[0] for n in blocks]
    assert widths == [d for d, n in zip(DIMS, DEPTHS) for _ in range(n)]
    # torchvision: block k of 18 (from 0) drops with 0.1·k/17, per sample
    for k, node in enumerate(blocks):
        assert node.attrs.survival == pytest.approx(1 - 0.1 * k / 17, abs=1e-12)
        assert node.attrs.get("mode") == "row"
    ops = Counter(n.op for n in graph)
    assert ops["layernorm"] == sum(DEPTHS) + 1 + 3 + 1  # blocks, stem, downsamples, head
    assert ops["layer_scale"] == ops["gelu"] == sum(DEPTHS)


def reference_block(x, w, prefix):
    """torchvision's CNBlock.forward, in torch.nn.functional, on netc's weights."""
    c = x.shape[1]
    y = F.conv2d(x, w[f"{prefix}.dwconv.weight"], w[f"{prefix}.dwconv.bias"], padding=3,
                 groups=c)
    y = y.permute(0, 2, 3, 1)
    y = F.layer_norm(y, (c,), w[f"{prefix}.layernorm1.weight"], w[f"{prefix}.layernorm1.bias"],
                     eps=1e-6)
    y = F.gelu(F.linear(y, w[f"{prefix}.linear1.weight"], w[f"{prefix}.linear1.bias"]))
    y = F.linear(y, w[f"{prefix}.linear2.weight"], w[f"{prefix}.linear2.bias"])
    y = y.permute(0, 3, 1, 2) * w[f"{prefix}.layer_scale1.gamma"].view(1, c, 1, 1)
    return x + y


def test_a_block_computes_torchvisions_cnblock():
    graph = convnext(64)
    weights = lively_weights(graph)
    module = build_module(graph, weights).eval()
    w = {k: torch.from_numpy(v) for k, v in weights.items()}
    x = torch.randn(2, 3, 64, 64)
    block = "stage2.cnblock2"
    before, after = "stage2.cnblock1.residual1", f"{block}.residual1"
    with torch.no_grad():
        feats = module(x, taps=[before, after])
        want = reference_block(feats[before], w, block)
    torch.testing.assert_close(feats[after], want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("opset", [13, 18])
def test_onnx_runtime_agrees_with_the_torch_module(opset):
    graph = convnext(64)
    weights = lively_weights(graph)
    x = np.random.default_rng(3).standard_normal((2, 3, 64, 64)).astype(np.float32)
    with torch.no_grad():
        ref = build_module(graph, weights).eval()(torch.from_numpy(x)).numpy()
    assert np.isfinite(ref).all() and np.abs(ref).max() > 0
    (out,) = run_ort(lower(graph, weights, opset=opset), x)
    err, top = float(np.abs(out - ref).max()), float(np.abs(ref).max())
    assert err <= 1e-5 * top, f"opset {opset}: max diff {err:.3g}, max|ref| {top:.3g}"


def test_onnx_node_count():
    """The workaround before these ops (layer norm from reshape, avgpool, power and scale) had
    509 nodes. Now, per block: Conv, Transpose, the layer norm, MatMul, Add, GELU's five
    (Mul, Erf, Add, Mul, Mul), MatMul, Add, Transpose, Mul (layer scale), Add (residual); a
    layer norm over the last axis is one LayerNormalization at opset 17 on and nine nodes below
    it, one over the channels of a map nine nodes at every opset (compiler/ops/layernorm.py
    says why). A fresh net's γ = 1 and β = 0 write no Mul and Add in those nine."""
    graph = convnext(64)
    trained, fresh = lively_weights(graph), init_weights(graph, 0)
    counts = {(opset, kind): Counter(n.op_type for n in lower(graph, w, opset=opset).graph.node)
              for opset in (13, 18) for kind, w in (("trained", trained), ("fresh", fresh))}
    blocks, maps = sum(DEPTHS), 1 + 3 + 1  # layer norms over a map's channels
    head = 1 + 1 + 1  # GlobalAveragePool, Flatten, Gemm
    conv = 1 + 3  # the stem's and the downsamples'
    at18 = blocks * (14 + 1) + maps * 9 + conv + head
    at13 = blocks * (14 + 9) + maps * 9 + conv + head
    assert sum(counts[18, "trained"].values()) == at18 == 322
    assert sum(counts[13, "trained"].values()) == at13 == 466
    assert sum(counts[18, "fresh"].values()) == at18 - 2 * maps == 312
    assert sum(counts[13, "fresh"].values()) == at13 - 2 * (maps + blocks) == 420
    assert counts[18, "trained"]["LayerNormalization"] == blocks
    assert "LayerNormalization" not in counts[13, "trained"]


def test_stochastic_depth_per_sample_drops_whole_examples_in_training():
    """mode=row: each example keeps a body or not; the output of a block is x + body/p or x."""
    graph = convnext(32)
    module = build_module(graph, lively_weights(graph)).train()
    last = "stage4.cnblock3"
    body, out, before = f"{last}.layer_scale1", f"{last}.residual1", "stage4.cnblock2.residual1"
    torch.manual_seed(0)
    with torch.no_grad():
        feats = module(torch.randn(400, 3, 32, 32), taps=[before, body, out])
    x, y = feats[before], feats[out]
    kept = torch.isclose(y, x + feats[body] / 0.9, atol=1e-4).flatten(1).all(1)
    dropped = torch.isclose(y, x, atol=1e-6).flatten(1).all(1)
    assert bool((kept ^ dropped).all())
    assert 0.8 < float(kept.float().mean()) < 0.97  # p = 0.9 over 400 examples


def test_stochastic_depth_per_batch_does_not_compute_a_dropped_body():
    """sd_mode=batch: one draw per block per step, and a closed body is not run at all."""
    graph = convnext(32, "batch")
    module = build_module(graph, seed=0).train()
    assert len(module._gates.residuals) == sum(DEPTHS) - 1  # the first block always survives
    u = torch.zeros(module._gates.count, dtype=torch.float64)  # 0 < p: every body kept ...
    u[len(module._gates.residuals) - 1] = 0.95  # ... but the last (p = 0.9)
    module._gates.uniforms = lambda: u
    ran = []
    hooks = [module.get_submodule(n.name).register_forward_hook(
        lambda m, i, o, name=n.name: ran.append(name))
        for n in graph if n.name.endswith(".dwconv")]
    module(torch.randn(2, 3, 32, 32))
    for h in hooks:
        h.remove()
    assert len(ran) == sum(DEPTHS) - 1 and "stage4.cnblock3.dwconv" not in ran


def test_receptive_field_carries_through_the_channels_last_part_of_a_block():
    s = summarize(convnext())
    rf = {r.name: r.rf for r in s.rows}
    block = "stage1.cnblock1"
    # the 4x4/4 stem sees 4 pixels; the 7x7 depthwise conv at jump 4 adds 24
    assert rf["stem.conv1"] == 4 and rf[f"{block}.dwconv"] == 28
    for layer in ("permute1", "layernorm1", "linear1", "gelu1", "linear2", "permute2",
                  "layer_scale1", "residual1"):
        assert rf[f"{block}.{layer}"] == 28, layer


def test_the_readme_tour_shows_the_zoos_block(tmp_path):
    """The README's ConvNeXt section writes the zoo's block as it ships, and its net checks."""
    import re

    root = Path(__file__).resolve().parents[1]
    text = (root / "README.md").read_text()
    text = text[text.index("### ConvNeXt as written"):]
    spec = re.findall(r"```\n(.*?)```", text, re.DOTALL)[0]
    block = spec[:spec.index("\n\n")]
    assert block.startswith("def cnblock(") and block in (root / "model_specs/convnext.net"
                                                           ).read_text()
    path = tmp_path / "tour.net"
    path.write_text(spec)
    graph = load(str(path))
    assert [round(n.attrs.survival, 6) for n in graph if n.op == "residual"] == [1.0, 0.9]
    assert sum(n.op == "permute" for n in graph) == 4 and graph[graph.outputs[0]].shape == (10,)


# -- the new ops' mistakes: one located line each, exit 1 ------------------------------------

@pytest.mark.parametrize("body, message", [
    ("permute([1, 1, 0])", "permute: dims must list each axis 0..2 once; got [1, 1, 0]"),
    ("permute([1, 0])", "permute: [1, 0] orders 2 axes; the input 3x8x8 has 3"),
    ("transpose(1, 1)", "transpose: the two axes must differ; got 1 twice"),
    ("reshape([12, 16]) -> transpose(0, 2)", "transpose(0, 2): the input 12x16 has axes 0..1"),
    ("gap -> layernorm(over=last)", "layernorm(over=last) on 3x1x1 normalises an axis of 1 "
                                    "value, which gives its bias whatever the input: "
                                    "over=channels normalises C of a CxHxW map"),
    ("gelu(approximate=fast)", "gelu: parameter 'approximate' must be one of none, tanh"),
    ("layer_scale(init=1e40)", "layer_scale: parameter 'init' must be a finite float32 number"),
])
def test_a_mistake_with_the_new_ops_is_one_located_line(tmp_path, cli, body, message):
    path = tmp_path / "e.net"
    path.write_text(f"net e {{\n  input image: 3x8x8\n  image -> {body}\n}}\n")
    result = cli("check", path)
    assert result.code == 1 and "Traceback" not in result.err
    first = result.err.splitlines()[0]
    assert first.startswith(f"{path}:3:") and f"error: {message}" in first, first


def test_linear_maps_the_last_axis_and_counts_in_times_out_per_position(tmp_path):
    path = tmp_path / "l.net"
    path.write_text("net l {\n  input image: 8x5x7\n  image -> permute([1, 2, 0]) -> linear(3) "
                    "-> flatten -> linear(4, bias=false)\n}\n")
    rows = {r.op + str(i): r for i, r in enumerate(summarize(load(str(path))).rows)}
    first, last = rows["linear2"], rows["linear4"]
    assert first.shape == (5, 7, 3) and first.params == 8 * 3 + 3 and first.macs == 5 * 7 * 8 * 3
    assert last.shape == (4,) and last.params == last.macs == 105 * 4
