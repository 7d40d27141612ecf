"""ViT-B/16 in the zoo, and the token ops it is written with (compiler/ops/tokens.py,
compiler/ops/attention.py).

- ``vit_b_16`` has torchvision's 86,567,656 parameters, its state-dict names and shapes
  (shared/reference/torchvision/vit_b_16.state_dict.json) but for the two learned tensors that
  torchvision's blocks own (``class_token``, ``encoder.pos_embedding``: netc's ops hold them as
  ``.weight``), and 17.56 G MACs, torchvision's "17.56 GFLOPS" (which count MACs);
- a small ViT from the same spec computes what torchvision's ViT code computes (written out
  below, since torchvision cannot be installed here) with the same tensors;
- the torch module and ONNX Runtime agree, at every opset for the small ViT and at 13 and 18 for
  vit_b_16 (batch 1);
- attention in torch and in ONNX Runtime is a numpy reference's softmax(Q·Kᵀ/√d)·V per head;
- a token op given the wrong shape is a located error that says what to add.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from netc.compiler.analyses.summary import summarize
from netc.compiler.frontend.loader import load
from netc.compiler.lower_onnx.model import lower
from netc.compiler.lower_torch.module import build_module
from netc.compiler.numerics.seeded_weights import init_weights
from netc.dsl.diagnostics import DiagnosticError
from tests.test_onnx_ops import OPSETS, make_net, program, run_ort
from tests.test_onnx_zoo import assert_close
from tests.torchvision_layout import VisionTransformer

pytestmark = pytest.mark.usefixtures("one_torch_thread")

REFERENCE = (Path(__file__).resolve().parents[2] / "shared" / "reference" / "torchvision"
             / "vit_b_16.state_dict.json")
# netc's op holds the tensor as `.weight`; torchvision's model or its encoder owns it
OWNED = {"class_token.weight": "class_token", "encoder.pos_embedding.weight":
         "encoder.pos_embedding"}
SMALL = {"patch": 4, "layers": 2, "dim": 32, "heads": 4, "hidden": 64, "classes": 10}


def small_vit():
    """ViT from the zoo's spec: 16x16 images, 4x4 patches, 2 layers of width 32, 4 heads."""
    return load("vit", SMALL, input_shapes={None: (3, 16, 16)})


def torchvision_keys(graph) -> dict[str, tuple[int, ...]]:
    """The net's tensors under torchvision's names, with their shapes."""
    return {OWNED.get(k, k): v.shape for k, v in init_weights(graph, seed=0).items()}


# -- counts and names ---------------------------------------------------------------------------

def test_vit_b_16_has_torchvisions_count_and_macs():
    s = summarize(load("vit_b_16"))
    assert s.params == 86_567_656
    # conv_proj 196·768·768, per layer: projections 4·197·768², Q·Kᵀ and A·V 2·197²·768,
    # MLP 2·197·768·3072; head 768·1000. torchvision's table: 17.56 GFLOPS (MACs).
    layer = 4 * 197 * 768**2 + 2 * 197**2 * 768 + 2 * 197 * 768 * 3072
    assert s.macs == 196 * 768 * 768 + 12 * layer + 768 * 1000 == 17_563_828_224


@pytest.mark.skipif(not REFERENCE.exists(), reason="needs shared/reference/torchvision")
def test_vit_b_16_state_dict_is_torchvisions():
    ref = json.loads(REFERENCE.read_text())
    want = {key: tuple(shape) for key, shape, _ in ref["state_dict"]}
    assert ref["parameters"] == 86_567_656
    assert torchvision_keys(load("vit_b_16")) == want


def test_the_spec_computes_what_torchvisions_vit_code_computes():
    graph = small_vit()
    weights = init_weights(graph, seed=3)
    # torchvision's ViT as its code computes it (torchvision/models/vision_transformer.py)
    ref = VisionTransformer(image=16, patch=4, layers=2, heads=4, dim=32, mlp=64,
                            classes=10).eval()
    state = {OWNED.get(k, k): torch.from_numpy(v) for k, v in weights.items()}
    ref.load_state_dict(state)  # strict: every key and shape is torchvision's
    x = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = ref(x).numpy()
        got = build_module(graph, weights).eval()(x).numpy()
    assert np.abs(want).max() > 0.1
    assert_close(got, want, "small vit against torchvision's code")


# -- torch and ONNX Runtime ---------------------------------------------------------------------

def test_a_small_vit_agrees_with_onnx_runtime_at_every_opset():
    graph = small_vit()
    weights = init_weights(graph, seed=1)
    x = np.random.default_rng(0).standard_normal((3, 3, 16, 16)).astype(np.float32)
    with torch.no_grad():
        ref = build_module(graph, weights).eval()(torch.from_numpy(x)).numpy()
    run = set()
    for opset in OPSETS:
        model = lower(graph, weights, opset=opset)
        if program(model) in run:
            continue
        run.add(program(model))
        for batch in (3, 1):
            (out,) = run_ort(model, x[:batch])
            assert_close(out, ref[:batch], f"opset {opset}, batch {batch}")
    assert len(run) >= 2  # LayerNormalization from 17: the expansion below it also ran
    # each encoder layer a call of one model-local function (netc compile --functions)
    model = lower(graph, weights, functions=True)
    assert [n.op_type for n in model.graph.node].count("encoder_layer") == 2
    assert_close(run_ort(model, x)[0], ref, "functions")


def test_a_simplifier_finds_nothing_to_remove_in_a_vit():
    """No Transpose of a weight left to fold, no Add of torch's zero attention biases."""
    onnxslim = pytest.importorskip("onnxslim")
    model = lower(small_vit())
    assert len(onnxslim.slim(model).graph.node) == len(model.graph.node)


def test_vit_b_16_agrees_with_onnx_runtime_at_opsets_13_and_18():
    graph = load("vit_b_16")
    weights = init_weights(graph, seed=0)
    x = np.random.default_rng(2).standard_normal((1, 3, 224, 224)).astype(np.float32)
    with torch.no_grad():
        ref = build_module(graph, weights).eval()(torch.from_numpy(x)).numpy()
    assert np.isfinite(ref).all() and np.abs(ref).max() > 0.1
    for opset in (13, 18):
        (out,) = run_ort(lower(graph, weights, opset=opset), x)
        assert_close(out, ref, f"vit_b_16 opset {opset}")


def test_a_small_vit_learns_every_tensor_and_drops_out_only_in_training():
    graph = load("vit", {**SMALL, "drop": 0.1, "attention_drop": 0.1},
                 input_shapes={None: (3, 16, 16)})
    module = build_module(graph, seed=0).train()
    x = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    loss = nn.functional.cross_entropy(module(x), torch.arange(4))
    loss.backward()
    grads = {k: p.grad for k, p in module.named_parameters()}
    assert {"class_token.weight", "encoder.pos_embedding.weight",
            "encoder.layers.encoder_layer_1.self_attention.in_proj_weight",
            "encoder.layers.encoder_layer_1.mlp.3.weight"} <= set(grads)
    assert all(g is not None and g.abs().sum() > 0 for g in grads.values())
    with torch.no_grad():
        assert not torch.equal(module(x), module(x))  # dropout in attention and mlp
        module.eval()
        assert torch.equal(module(x), module(x))


def test_a_hybrid_net_goes_back_to_a_map_and_on_with_convolutions(tmp_path):
    """tokens, a transformer layer with layer scale, then the README's way back to DxHxW;
    with a bn after it, so the seeded statistics pass runs through every token op."""
    graph = make_net(tmp_path, "3x32x32",
                     "conv(32, 4, stride=4) -> tokens -> class_token -> pos_embedding "
                     "-> residual(layernorm -> attention(4)) "
                     "-> residual(layernorm -> mlp(64) -> layer_scale(0.5)) "
                     "-> slice(1, axis=1) -> transpose(0, 1) -> reshape([32, 8, 8]) "
                     "-> conv(16, 3, pad=1) -> bn -> relu")
    assert graph[graph.outputs[0]].shape == (16, 8, 8)
    weights = init_weights(graph, seed=2)
    bn = next(n for n in graph if n.op == "bn").name
    assert np.isfinite(weights[f"{bn}.running_var"]).all()
    x = np.random.default_rng(3).standard_normal((2, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        ref = build_module(graph, weights).eval()(torch.from_numpy(x)).numpy()
    for opset in (13, 18):
        assert_close(run_ort(lower(graph, weights, opset=opset), x)[0], ref, f"opset {opset}")


# -- attention against numpy --------------------------------------------------------------------

def numpy_attention(x, w, heads):
    """softmax(Q·Kᵀ/√d)·V per head, the heads side by side, then the out projection."""
    d = x.shape[-1]
    q, k, v = np.split(x @ w["in_proj_weight"].T + w["in_proj_bias"], 3, axis=-1)

    def split(t):  # (N, L, D) -> (N, heads, L, D/heads)
        return t.reshape(*t.shape[:2], heads, d // heads).transpose(0, 2, 1, 3)

    q, k, v = split(q), split(k), split(v)
    scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(d // heads)
    att = np.exp(scores - scores.max(-1, keepdims=True))
    att /= att.sum(-1, keepdims=True)
    out = (att @ v).transpose(0, 2, 1, 3).reshape(x.shape)
    return out @ w["out_proj.weight"].T + w["out_proj.bias"]


@pytest.mark.parametrize("heads", [1, 3])
def test_attention_is_the_numpy_reference_in_torch_and_onnx(tmp_path, heads):
    graph = make_net(tmp_path, "12x3x5", f"tokens -> attention({heads})")
    node = next(n for n in graph if n.op == "attention")
    weights = init_weights(graph, seed=5)
    rng = np.random.default_rng(6)  # biases too, so a bias on the wrong projection shows
    for key in ("in_proj_bias", "out_proj.bias"):
        weights[f"{node.name}.{key}"] = rng.normal(0, 0.5, weights[f"{node.name}.{key}"].shape)
    weights = {k: np.asarray(v, np.float32) for k, v in weights.items()}
    x = rng.standard_normal((2, 12, 3, 5)).astype(np.float32)
    with torch.no_grad():
        got = build_module(graph, weights).eval()(torch.from_numpy(x)).numpy()
    tokens = x.reshape(2, 12, 15).transpose(0, 2, 1).astype(np.float64)
    local = {k.removeprefix(f"{node.name}."): v.astype(np.float64) for k, v in weights.items()}
    want = numpy_attention(tokens, local, heads)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    for opset in (13, 18):  # with biases, the projections' Adds are written too
        model = lower(graph, weights, opset=opset)
        assert [n.op_type for n in model.graph.node].count("Add") == 2
        np.testing.assert_allclose(run_ort(model, x)[0], want, rtol=1e-5, atol=1e-5)


def test_tokens_are_positions_row_major_and_take_token_picks_one(tmp_path):
    graph = make_net(tmp_path, "4x2x3", "tokens -> take_token(4)")
    x = np.arange(2 * 24, dtype=np.float32).reshape(2, 4, 2, 3)
    with torch.no_grad():
        got = build_module(graph).eval()(torch.from_numpy(x)).numpy()
    np.testing.assert_array_equal(got, x[:, :, 1, 1])  # token 4: row 1, column 1
    (out,) = run_ort(lower(graph), x)
    np.testing.assert_array_equal(out, x[:, :, 1, 1])


def test_seeded_statistics_through_the_token_ops_are_the_batch_statistics(tmp_path):
    """Each bn's seeded running statistics against the batch statistics its input has in torch
    on 64 standard-normal images (per token: over images and the D values). A position table
    of std 2 quadruples the variance, so a rule that dropped it (or linear's) is off by a
    factor 5, and layer_scale(0.5)'s by 4. Measured variance ratios: 0.997, 1.025, 1.025, 1.001
    and 0.275 (mlp's GELU, kept as an approximation); mean errors 0 to 0.25 predicted
    deviations."""
    graph = make_net(tmp_path, "3x16x16", "conv(8, 2, stride=2) -> tokens "
                     "-> class_token(init=normal, std=1) -> pos_embedding(std=2) -> bn "
                     "-> linear(12) -> bn -> layer_scale(0.5) -> bn -> layernorm -> bn -> mlp(16) "
                     "-> bn")
    w = init_weights(graph, seed=0)
    x = torch.from_numpy(np.random.default_rng(1).standard_normal((64, 3, 16, 16))
                         .astype(np.float32))
    bns = [n.name for n in graph if n.op == "bn"]
    with torch.no_grad():
        taps = build_module(graph, w).eval()(x, taps=[graph[b].inputs[0] for b in bns])
    ratios, errors = [], []
    for b in bns:
        a = taps[graph[b].inputs[0]].double()
        mean, var = a.mean((0, 2)).numpy(), a.var((0, 2)).numpy()
        rm, rv = w[f"{b}.running_mean"], w[f"{b}.running_var"].astype(np.float64) + 1e-5
        ratios.append(float(np.median(var / rv)))
        errors.append(float(np.median(np.abs(mean - rm) / np.sqrt(rv))))
    assert all(0.8 < r < 1.25 for r in ratios[:4]) and 0.25 < ratios[4] < 4.0, ratios
    assert max(errors) < 0.5, errors


# -- mistakes -----------------------------------------------------------------------------------

@pytest.mark.parametrize("body, message", [
    ("attention(2)", "attention needs a token sequence LxD; got a CxHxW feature map 8x3x4: "
                     "add tokens before it"),
    ("tokens -> attention(3)", "attention: the token width 8 is not divisible by heads=3"),
    ("tokens -> take_token(12)", "take_token: index 12 is past the last of 12 tokens"),
    ("tokens -> tokens", "tokens needs a CxHxW feature map; got 12x8"),
    ("gap -> flatten -> mlp(4)", "mlp needs a token sequence LxD; got a flat vector 8"),
    ("tokens -> fc(4)", "fc needs a flat input; got a token sequence LxD 12x8: add flatten or "
                        "take_token(0)"),
])
def test_a_token_op_on_the_wrong_shape_is_a_located_error(tmp_path, body, message):
    with pytest.raises(DiagnosticError) as err:
        make_net(tmp_path, "8x3x4", body)
    (diag,) = err.value.diagnostics
    assert message in diag.message
    assert diag.span.line == 3


def test_the_cli_names_the_line_and_exits_1(tmp_path, cli):
    spec = tmp_path / "bad.net"
    spec.write_text("net bad {\n  input image: 8x3x4\n  image -> tokens -> attention(3)\n}\n")
    result = cli("check", spec)
    assert result.code == 1
    assert f"{spec}:3:" in result.err and "Traceback" not in result.err


# -- the README's tour ---------------------------------------------------------------------------

def test_the_readme_tour_hybrid_net_is_what_it_says(tmp_path, cli):
    """The tour's conv + attention net elaborates to 65x64 tokens (8x8 positions and the class
    token), runs in torch and ONNX Runtime alike, and the vit_b_16 figures are summary's."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("### Attention nets: tokens, attention, mlp"):]
    spec = tmp_path / "tour.net"
    spec.write_text(section.split("```")[1])
    graph = load(f"{spec}:tour_hybrid")
    assert [n.shape for n in graph if n.op == "class_token"] == [(65, 64)]
    assert sum(n.op == "attention" for n in graph) == 2
    weights = init_weights(graph, seed=0)
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        ref = build_module(graph, weights).eval()(torch.from_numpy(x)).numpy()
    (out,) = run_ort(lower(graph, weights), x)
    assert_close(out, ref, "tour_hybrid")
    printed = cli("summary", "vit_b_16").out.splitlines()[0]
    assert printed == "vit_b_16: 86,567,656 params, 17.56 G MACs, 3x224x224 -> 1000"
    assert "prints 86,567,656 parameters and 17.56 G MACs" in " ".join(section.split())
