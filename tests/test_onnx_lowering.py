"""The ONNX lowering's contract: checked models, IR names, folding passes, functions, extra
outputs, half precision, weights from files, and ``netc compile`` without torch."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch
from safetensors.numpy import save_file

from netc.compiler.ir import verify
from netc.compiler.frontend.loader import load
from netc.compiler.lower_onnx.model import lower
from netc.compiler.lower_torch.module import build_module
from netc.compiler.lower_onnx.tape import DOMAIN
from netc.compiler.passes.fold_bn import fold_bn
from netc.compiler.passes.fold_survival import fold_survival
from netc.compiler.numerics.seeded_weights import init_weights
from netc.dsl.diagnostics import UserError
from tests.test_onnx_ops import close, make_net, random_bn, run_ort


@pytest.fixture(scope="module")
def resnet18():
    return load("resnet18")


@pytest.fixture(scope="module")
def resnet18_model(resnet18):
    return lower(resnet18)


def test_the_file_passes_the_full_check_and_shape_inference_matches_the_ir(resnet18,
                                                                        resnet18_model):
    model = onnx.load_from_string(resnet18_model.SerializeToString())
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version >= 17
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    shapes = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in list(inferred.graph.value_info) + list(inferred.graph.output)}
    named = [n for n in resnet18 if n.name in shapes]
    assert len(named) == len(model.graph.node)  # every node's value carries its IR name
    for node in named:
        assert shapes[node.name] == ["batch", *node.shape], node.name
    image = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in image] == ["batch", 3, 224, 224]


def test_nodes_and_weights_carry_the_ir_names(resnet18, resnet18_model):
    graph = resnet18_model.graph
    names = [n.name for n in graph.node]
    assert names[:4] == ["conv1", "relu1", "pool1", "layer1.basic1.conv1"]
    assert set(names) <= set(resnet18.nodes)
    # 20 convs + 1 fc, each with a weight and (after folding bn) a bias; no bn arrays left.
    inits = {t.name for t in graph.initializer}
    assert len(inits) == 42 and "layer2.basic1.shortcut.conv1.bias" in inits
    assert not any("running_mean" in n for n in inits)
    counts = {}
    for n in graph.node:
        counts[n.op_type] = counts.get(n.op_type, 0) + 1
    assert counts == {"Conv": 20, "Relu": 17, "Add": 8, "MaxPool": 1, "GlobalAveragePool": 1,
                      "Flatten": 1, "Gemm": 1}


def test_the_initializers_are_the_weights_torch_holds(resnet18):
    weights = init_weights(resnet18, seed=7)
    model = lower(resnet18, seed=7, fold_bn=False)
    stored = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    assert set(stored) == set(weights)
    state = build_module(resnet18, seed=7).state_dict()
    for key in ("conv1.weight", "layer4.basic2.bn2.running_var", "fc.bias"):
        np.testing.assert_array_equal(stored[key], state[key].numpy())


# -- passes -------------------------------------------------------------------------------------

def test_fold_bn_is_pure_and_exact(tmp_path):
    graph = make_net(tmp_path, "3x8x8", "conv(4, 3, pad=1, bias=false) -> bn -> relu -> bn")
    weights = random_bn(graph, init_weights(graph, seed=1))
    before = {k: v.copy() for k, v in weights.items()}
    nodes_before = dict(graph.nodes)
    folded, new = fold_bn(graph, weights)
    verify(folded)
    assert graph.nodes == nodes_before and all(
        np.array_equal(weights[k], before[k]) for k in before)  # arguments untouched
    assert [n.op for n in folded] == ["input", "conv", "relu", "bn"]  # the bn after relu stays
    assert folded["conv1"].attrs.bias and "bn1.weight" not in new
    assert folded.resolve("bn1") == "conv1"
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    t = {k: torch.from_numpy(v).double() for k, v in weights.items()}
    want = F_bn(torch.nn.functional.conv2d(x, t["conv1.weight"], padding=1), t, "bn1")
    got = torch.nn.functional.conv2d(x, torch.from_numpy(new["conv1.weight"]).double(),
                                     torch.from_numpy(new["conv1.bias"]).double(), padding=1)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-6)


def F_bn(x, t, name):
    return torch.nn.functional.batch_norm(x, t[f"{name}.running_mean"], t[f"{name}.running_var"],
                                          t[f"{name}.weight"], t[f"{name}.bias"], eps=1e-5)


def test_fold_bn_leaves_alone_what_it_must(tmp_path):
    clean = make_net(tmp_path, "3x8x8", "conv(4, 3) -> relu", "clean")
    w = init_weights(clean)
    assert fold_bn(clean, w)[0] is clean
    shared = make_net(tmp_path, "3x8x8", "conv(4, 1) -> add[bn, identity]", "shared")
    assert sum(n.op == "bn" for n in fold_bn(shared, init_weights(shared))[0]) == 1
    out = make_net(tmp_path, "3x8x8", "conv(4, 1) -> bn", "out")  # bn is the output
    assert [n.op for n in fold_bn(out, init_weights(out))[0]] == ["input", "conv", "bn"]


def test_fold_bn_folds_through_ops_that_vanish_at_inference(tmp_path):
    """FractalNet's unit conv -> dropout -> bn -> relu: dropout is the identity at inference, so
    bn folds into the conv across it; a dropout someone else reads (or taps) blocks the fold."""
    graph = make_net(tmp_path, "3x8x8", "conv(4, 3, pad=1) -> dropout(0.2) -> identity -> bn "
                                        "-> relu", "through")
    weights = random_bn(graph, init_weights(graph, seed=3))
    folded, new = fold_bn(graph, weights)
    verify(folded)
    assert [n.op for n in folded] == ["input", "conv", "dropout", "identity", "relu"]
    assert folded.resolve("bn1") == "identity1" and "bn1.weight" not in new
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    module = build_module(graph, weights).eval()
    with torch.no_grad():
        ref = module(torch.from_numpy(x)).numpy()
    model = lower(graph, weights)
    assert [n.op_type for n in model.graph.node] == ["Conv", "Relu"]
    np.testing.assert_allclose(run_ort(model, x)[0], ref, rtol=1e-5, atol=1e-5)
    assert sum(n.op == "bn" for n in fold_bn(graph, weights, keep=["dropout1"])[0]) == 1
    shared = make_net(tmp_path, "3x8x8", "conv(4, 1) -> dropout(0.1) -> add[bn, identity]",
                      "shared_dropout")
    assert sum(n.op == "bn" for n in fold_bn(shared, init_weights(shared))[0]) == 1


def test_fold_survival_scales_a_linear_body_end_only(tmp_path):
    graph = make_net(tmp_path, "3x6x6", "residual(conv(3, 3, pad=1), survival=0.25) -> "
                                        "residual(conv(3, 1) -> relu, survival=0.5)")
    weights = init_weights(graph, seed=2)
    folded, new = fold_survival(graph, weights)
    first, second = [n for n in folded if n.op == "residual"]
    assert first.attrs.survival == 1.0 and second.attrs.survival == 0.5
    np.testing.assert_allclose(new["conv1.weight"], 0.25 * weights["conv1.weight"], rtol=1e-7)
    assert [n.op_type for n in lower(graph).graph.node].count("Mul") == 1


# -- options ------------------------------------------------------------------------------------

def test_functions_keep_each_definition_and_compute_the_same(resnet18, resnet18_model):
    model = lower(resnet18, functions=True)
    onnx.checker.check_model(onnx.load_from_string(model.SerializeToString()), full_check=True)
    calls = [n for n in model.graph.node if n.domain == DOMAIN]
    assert [n.name for n in calls][:2] == ["layer1.basic1", "layer1.basic2"]
    assert len(calls) == 8
    # two bodies: identity shortcut (shared by 6 calls) and projection shortcut (3 calls)
    assert sorted(f.name for f in model.functions) == ["basic", "basic_2"]
    assert all(f.doc_string.startswith("basic(ch=") for f in model.functions)
    x = np.random.default_rng(0).standard_normal((2, 3, 224, 224)).astype(np.float32)
    (flat,), (nested,) = run_ort(resnet18_model, x), run_ort(model, x)
    np.testing.assert_allclose(nested, flat, rtol=0, atol=1e-5 * np.abs(flat).max())


def test_one_inception_function_serves_all_nine_modules():
    model = lower(load("googlenet"), functions=True)
    assert [f.name for f in model.functions] == ["inception"]
    calls = [n for n in model.graph.node if n.domain == DOMAIN]
    assert [n.name for n in calls] == ["inception_3a", "inception_3b", "inception_4a",
                                       "inception_4b", "inception_4c", "inception_4d",
                                       "inception_4e", "inception_5a", "inception_5b"]
    # data input first, then that module's own weights under their state-dict names
    assert calls[4].input[:3] == ["inception_4b.output", "inception_4c.conv1x1.weight",
                                  "inception_4c.conv1x1.bias"]


def test_recursive_fractal_rules_become_nested_functions():
    graph = load("fractalnet", {"C": 3})
    model = lower(graph, functions=True)
    onnx.checker.check_model(onnx.load_from_string(model.SerializeToString()), full_check=True)
    by_name = {f.name: f for f in model.functions}
    nested = [f for f in by_name.values() if any(n.domain == DOMAIN for n in f.node)]
    assert nested and all(f.doc_string.startswith("fractal(") for f in by_name.values())
    assert [n.name for n in model.graph.node if n.domain == DOMAIN] == [
        f"block{b}" for b in range(1, 6)]


def test_extra_outputs_are_resolved_like_taps_and_match_torch(resnet18):
    model = lower(resnet18, outputs=["layer1", "bn1", "layer2.basic1.conv2"], seed=3)
    names = [o.name for o in model.graph.output]
    assert names == ["fc", "layer1.basic2.relu2", "bn1", "layer2.basic1.conv2"]
    x = np.random.default_rng(1).standard_normal((1, 3, 224, 224)).astype(np.float32)
    outs = run_ort(model, x)
    module = build_module(resnet18, seed=3).eval()
    with torch.no_grad():
        taps = module(torch.from_numpy(x), taps=names)
    for name, out in zip(names, outs):
        assert close(out, taps[name].numpy()), name


def test_an_unknown_or_ambiguous_output_is_a_user_error(resnet18):
    with pytest.raises(UserError, match="no single layer is called 'conv9'"):
        lower(resnet18, outputs=["conv9"])
    with pytest.raises(UserError, match="layer1.basic1.conv1"):
        lower(resnet18, outputs=["basic1.conv1"])


def test_fp16_writes_half_weights_and_io_that_run(tmp_path):
    graph = load("lenet5")
    model = lower(graph, fp16=True)
    onnx.checker.check_model(onnx.load_from_string(model.SerializeToString()), full_check=True)
    half = onnx.TensorProto.FLOAT16
    assert model.graph.input[0].type.tensor_type.elem_type == half
    assert {t.data_type for t in model.graph.initializer} == {half}
    x = np.random.default_rng(0).standard_normal((3, 1, 32, 32)).astype(np.float32)
    (ref,) = run_ort(lower(graph), x)
    (out,) = run_ort(model, x.astype(np.float16))
    assert out.dtype == np.float16
    np.testing.assert_allclose(out.astype(np.float32), ref, atol=2e-3 * np.abs(ref).max())


# -- the command --------------------------------------------------------------------------------

def test_compile_reads_safetensors_weights(cli, tmp_path):
    graph = load("lenet5")
    weights = {k: v + 1.0 for k, v in init_weights(graph, seed=9).items()}
    save_file(weights, str(tmp_path / "w.safetensors"))
    r = cli("compile", "lenet5", "-o", tmp_path / "m.onnx", "--weights", tmp_path / "w.safetensors")
    assert r.code == 0, r.err
    assert r.out.startswith("lenet5: 61,750 params")
    stored = {t.name: onnx.numpy_helper.to_array(t)
              for t in onnx.load(str(tmp_path / "m.onnx")).graph.initializer}
    np.testing.assert_array_equal(stored["c1.weight"], weights["c1.weight"])
    del weights["c1.bias"]
    weights["c1.weight"] = weights["c1.weight"][:3]
    save_file(weights, str(tmp_path / "bad.safetensors"))
    r = cli("compile", "lenet5", "-o", tmp_path / "x.onnx",
            "--weights", tmp_path / "bad.safetensors")
    assert r.code == 1 and "missing: c1.bias" in r.err and "c1.weight is 3x1x5x5" in r.err


def test_a_failed_compile_leaves_no_file(cli, tmp_path):
    r = cli("compile", "lenet5", "-o", tmp_path / "m.onnx", "--outputs", "nothing")
    assert r.code == 1 and "no single layer is called 'nothing'" in r.err
    assert list(tmp_path.iterdir()) == []
    r = cli("compile", "lenet5", "-o", tmp_path / "m.onnx", "--weights", tmp_path / "none.st")
    assert r.code == 1 and "cannot read weights" in r.err and "Traceback" not in r.err


def test_compile_and_run_do_not_import_torch(tmp_path):
    out, image = tmp_path / "r.onnx", tmp_path / "x.png"
    code = ("import sys, json; from netc.runtime.cli import main; from PIL import Image; "
            f"rc = main(['compile', 'resnet18', '-o', {str(out)!r}, '--functions']); "
            "after_compile = ['torch' in sys.modules, 'onnxruntime' in sys.modules]; "
            f"Image.new('RGB', (300, 250), (90, 30, 200)).save({str(image)!r}); "
            f"rc2 = main(['run', {str(out)!r}, {str(image)!r}]); "
            "print(json.dumps([rc, rc2, after_compile, 'torch' in sys.modules]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    rc, rc2, after_compile, torch_after_run = json.loads(done.stdout.strip().splitlines()[-1])
    assert rc == 0 and rc2 == 0
    assert after_compile == [False, False] and not torch_after_run
    assert "CPUExecutionProvider" in done.stdout and "class" in done.stdout


# -- what no output reads is not written ----------------------------------------------------------

@pytest.mark.parametrize("functions", [False, True])
def test_a_conv_read_only_for_its_size_is_not_written(tmp_path, functions):
    """crop and resize read their reference's shape, which the IR knows: the conv that only
    sets it writes no node and no weight, flat or inside a function."""
    path = tmp_path / "ref.net"
    path.write_text("def cut() = crop(offset=1)[identity, conv(2, 5) -> relu]\n"
                    "net ref {\n  input image: 3x12x12\n  image -> cut -> conv(4, 1)\n}\n")
    graph = load(str(path))
    model = lower(graph, functions=functions)
    nodes = [n for f in [model.graph, *model.functions] for n in f.node]
    assert [n.op_type for n in nodes if n.op_type in ("Conv", "Relu")] == ["Conv"]
    assert [t.name for t in model.graph.initializer if t.name.endswith("weight")] == [
        "conv1.weight"]
    assert all(len(f.input) == 1 for f in model.functions)  # no weight input for the dead conv
    x = np.random.default_rng(0).standard_normal((2, 3, 12, 12)).astype(np.float32)
    with torch.no_grad():
        ref = build_module(graph, init_weights(graph)).eval()(torch.from_numpy(x)).numpy()
    assert close(run_ort(model, x)[0], ref)


def test_nested_concats_are_one_concat_and_compute_the_same(tmp_path):
    graph = make_net(tmp_path, "3x6x6", "concat[concat[conv(2, 1), conv(3, 1)], "
                                        "concat[conv(1, 1), concat[identity, relu]], conv(2, 1)]")
    model = lower(graph)
    concats = [n for n in model.graph.node if n.op_type == "Concat"]
    assert len(concats) == 1 and len(concats[0].input) == 6
    x = np.random.default_rng(1).standard_normal((2, 3, 6, 6)).astype(np.float32)
    with torch.no_grad():
        ref = build_module(graph, init_weights(graph)).eval()(torch.from_numpy(x)).numpy()
    assert close(run_ort(model, x)[0], ref)
    # an inner concat that is also an output, or read twice, stays
    kept = lower(graph, outputs=[graph[graph.outputs[0]].inputs[0]])
    assert sum(n.op_type == "Concat" for n in kept.graph.node) == 2


def test_compile_draws_no_training_only_head_and_writes_the_same(tmp_path):
    """Seeded weights are drawn only for what the file holds; each node has its own
    generator and the statistics flow forward, so they are the full draw's arrays."""
    path = tmp_path / "aux.net"
    path.write_text("net aux {\n  input image: 3x8x8\n"
                    "  x = image -> conv(4, 3, pad=1) -> bn -> relu\n"
                    "  training output side = x -> conv(2, 1) -> bn -> gap -> flatten\n"
                    "  output y = x -> conv(3, 1) -> bn -> relu -> gap -> flatten\n}\n")
    graph = load(str(path))
    full = init_weights(graph)
    needed = [n.name for n in graph.slice(list(graph.outputs))]
    part = init_weights(graph, needed=needed)
    assert len(part) < len(full) and all(np.array_equal(part[k], full[k]) for k in part)
    # the side head's conv and bn (conv2, bn2) are the only nodes not drawn
    assert {k.rsplit(".", 1)[0] for k in full} - {k.rsplit(".", 1)[0] for k in part} == {
        "conv2", "bn2"}
    drawn, given = lower(graph), lower(graph, full)
    assert drawn.graph.SerializeToString() == given.graph.SerializeToString()


def test_a_call_read_only_for_its_size_leaves_no_function(tmp_path):
    path = tmp_path / "ref.net"
    path.write_text("def size() = conv(2, 5) -> relu\n"
                    "def cut() = crop(offset=1)[identity, size]\n"
                    "net ref {\n  input image: 3x12x12\n  image -> cut -> conv(4, 1)\n}\n")
    model = lower(load(str(path)), functions=True)
    assert [f.name for f in model.functions] == ["cut"]
    assert [n.op_type for n in model.functions[0].node if n.op_type != "Constant"] == ["Slice"]
    onnx.checker.check_model(model, full_check=True)
