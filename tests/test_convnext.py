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
    for key, array in weights.items():
        if key.endswith(".gamma"):
            weights[key] = rng.uniform(0.2, 0.6, array.shape).astype(np.float32)
        elif ".layernorm" in key:
            centre = 1.0 if key.endswith(".weight") else 0.0
            weights[key] = (centre + rng.normal(0, 0.2, array.shape)).astype(np.float32)
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
    layer norm over channels of a map is Transpose, LayerNormalization, Transpose at opset 17
    on and nine nodes below it (over the last axis: one, or nine)."""
    graph = convnext(64)
    counts = {opset: Counter(n.op_type for n in lower(graph, opset=opset).graph.node)
              for opset in (13, 18)}
    blocks, maps = sum(DEPTHS), 1 + 3 + 1  # layer norms over a map's channels
    head = 1 + 1 + 1  # GlobalAveragePool, Flatten, Gemm
    conv = 1 + 3  # the stem's and the downsamples'
    at18 = blocks * (14 + 1) + maps * 3 + conv + head
    at13 = blocks * (14 + 9) + maps * 9 + conv + head
    assert sum(counts[18].values()) == at18 == 292
    assert sum(counts[13].values()) == at13 == 466
    assert counts[18]["LayerNormalization"] == blocks + maps
    assert "LayerNormalization" not in counts[13]


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
