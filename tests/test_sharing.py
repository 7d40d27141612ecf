"""Sharing weights (``share tower = ...``; Caffe's ``param { name }``) and ONNX output names.

``let`` binds a description (each use makes new layers); ``share`` binds one set of layers
(every use applies the same weights). Every face must count, hold and write shared weights
once: the summary, the seeded weights, the torch module (one ``nn.Parameter``, gradients from
both uses), the ONNX model (one initializer), weights files, and the Caffe importer.
"""

from __future__ import annotations

import math

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from netc.compiler.analyses.summary import summarize
from netc.compiler.frontend.loader import load, load_text
from netc.compiler.importers.caffe.caffemodel import CaffeLayer, CaffeModel, write_caffemodel
from netc.compiler.ir import IRError, verify
from netc.compiler.lower_onnx.model import lower
from netc.compiler.lower_torch.module import build_module
from netc.compiler.numerics.seeded_weights import init_weights
from netc.dsl.diagnostics import DiagnosticError, UserError
from netc.dsl.format import format_text
from netc.runtime.weights.load import load_weights

SIAMESE_CAFFE = Path(__file__).parent / "caffe" / "mnist_siamese_train_test.prototxt"

TOWER = "conv(20, 5) -> bn -> relu -> maxpool(2) -> conv(50, 5) -> maxpool(2) -> flatten " \
        "-> fc(500) -> relu -> fc(10)"
# The tower's own parameters: 520 + 40 (bn) + 25,050 + 400,500 + 5,010.
TOWER_PARAMS = 520 + 40 + 25_050 + 400_500 + 5_010


def siamese(keyword: str, shapes=("1x28x28", "1x28x28")) -> str:
    return f"""
net siamese {{
  input left: {shapes[0]}
  input right: {shapes[1]}
  {keyword} tower = {TOWER}
  a = left -> tower
  b = right -> tower
  output pair = concat[a, b]
}}
"""


@pytest.fixture(scope="module")
def shared():
    return load_text(siamese("share"), "siamese.net")


def feeds(seed: int = 0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((2, 1, 28, 28), dtype=np.float32) for _ in range(2)]


# ---- the language: let copies, share shares ---------------------------------------------------
def test_let_makes_new_layers_at_each_use_and_share_the_same():
    copied = summarize(load_text(siamese("let"), "siamese.net"))
    one = summarize(load_text(siamese("share"), "siamese.net"))
    assert copied.params == 2 * TOWER_PARAMS
    assert one.params == TOWER_PARAMS
    assert one.macs == copied.macs  # MACs count every application
    rows = {r.name: r for r in one.rows}
    assert rows["tower.conv1"].params == 520 and rows["tower.conv1"].extra == ""
    assert rows["tower_1.conv1"].params == 0
    assert rows["tower_1.conv1"].extra == "shares tower.conv1"
    assert rows["tower_1.conv1"].macs == rows["tower.conv1"].macs > 0


def test_the_ir_names_the_owner_and_verify_checks_it(shared):
    sharing = shared.sharing()
    assert sharing == {f"tower_1.{n}": f"tower.{n}"
                       for n in ("conv1", "bn1", "conv2", "fc1", "fc2")}
    verify(shared)
    broken = shared.copy(nodes={**shared.nodes, "tower_1.conv2":
                                shared["tower_1.conv2"].replace(shares="tower.fc1")})
    with pytest.raises(IRError, match="a different layer"):
        verify(broken)


def test_labels_name_each_use_and_a_shared_block_may_be_a_definition():
    g = load_text("""
def tower(w) = conv(w, 3) -> relu
net n {
  input x: 3x16x16
  share t = tower(8)
  output y = concat[x -> t as left, x -> t as right]
}
""", "n.net")
    assert g.sharing() == {"right.conv1": "left.conv1"}
    assert g.calls["left"] == g.calls["right"] == "tower(w=8)"


def test_applied_in_a_row_it_is_one_layer_used_twice():
    g = load_text("net n {\n  input x: 4x8x8\n  share c = conv(4, 3, pad=1)\n"
                  "  output y = x -> c -> c -> c\n}\n", "n.net")
    assert summarize(g).params == 4 * 4 * 9 + 4
    assert g.sharing() == {"c_1": "c", "c_2": "c"}


def test_other_heights_and_widths_share_a_conv_tower():
    tower = "conv(8, 5) -> relu -> adaptive_avgpool(1) -> flatten"
    g = load_text(siamese("share", ("1x28x28", "1x36x36")).replace(TOWER, tower), "siamese.net")
    assert g["tower_1.conv1"].shares == "tower.conv1"
    assert g["tower_1.conv1"].shape == (8, 32, 32)


@pytest.mark.parametrize("shapes, words", [
    (("1x28x28", "3x28x28"), "tower.conv1 holds 520 weights"),  # other channels: the conv
    (("1x28x28", "1x32x32"), "tower.fc1 holds 400,500 weights"),  # other size: the fc
])
def test_a_use_whose_input_gives_other_weights_is_a_located_error(shapes, words):
    with pytest.raises(DiagnosticError) as err:
        load_text(siamese("share", shapes), "siamese.net")
    (d,) = err.value.diagnostics
    assert d.span.line == 7 and d.span.col == 16  # `tower` in `b = right -> tower`
    assert words in d.message and "first use (line 6)" in d.message
    assert "must fit every input" in d.message


@pytest.mark.parametrize("value, words", [
    ("left -> conv(8, 3)", "not a value"),
    ("3", "share binds a block of layers; got 3"),
])
def test_share_binds_layers(value, words):
    with pytest.raises(DiagnosticError, match=words):
        load_text(siamese("share").replace(TOWER, value), "siamese.net")


@pytest.mark.parametrize("text, message", [
    ("net n {\n  input x: 3x8x8\n  share = relu\n  x -> relu\n}\n",
     "unexpected '='; expected a name"),  # in a net: only the name is missing
    ("def f = share t = relu\n", "unexpected 't'; expected 'def', 'include', 'inline', 'let', "
     "'net', 'recipe', end of file (share NAME = block is a statement of a net"),
])
def test_a_share_statement_out_of_place_says_where_share_belongs(text, message):
    with pytest.raises(DiagnosticError) as err:
        load_text(text, "s.net")
    [d] = err.value.diagnostics
    assert d.message.startswith(message) and ("(share NAME" in message) == ("(share" in d.message)


def test_netc_fmt_formats_the_share_statement():
    text = "net n { input x: 3x8x8\n share  t=conv(4,3)\n output y = x -> t -> t }\n"
    once = format_text(text)
    assert "  share t = conv(4, 3)\n" in once
    assert format_text(once) == once


# ---- the faces: seeded weights, torch, ONNX, weights files -----------------------------------
def test_seeded_weights_are_drawn_once(shared):
    seen = []
    w = init_weights(shared, seed=3, progress=lambda done, total: seen.append((done, total)))
    drawn = sum(a.size for k, a in w.items() if not k.endswith("num_batches_tracked"))
    assert seen[-1] == (drawn, drawn)  # the progress counts what is drawn: the owner's, once
    assert not [k for k in w if k.startswith("tower_1.")]
    assert sum(a.size for k, a in w.items() if not k.startswith("tower.bn1.running")
               and not k.endswith("num_batches_tracked")) == TOWER_PARAMS


def test_torch_holds_one_parameter_and_both_uses_add_to_its_gradient(shared):
    net = build_module(shared, seed=0)
    assert net.node_module("tower_1.conv1") is net.node_module("tower.conv1")
    assert sum(p.numel() for p in net.parameters()) == TOWER_PARAMS
    assert not [k for k in net.state_dict() if k.startswith("tower_1.")]
    x, y = (torch.from_numpy(a) for a in feeds())
    weight = net.get_submodule("tower.conv1").weight

    def grad(loss_of) -> torch.Tensor:
        net.zero_grad()
        loss_of(net(x, y)).backward()
        return weight.grad.clone()

    left, right = grad(lambda o: o[:, :10].sum()), grad(lambda o: o[:, 10:].sum())
    both = grad(lambda o: o.sum())
    assert left.abs().sum() > 0 and right.abs().sum() > 0
    torch.testing.assert_close(both, left + right)


@pytest.mark.parametrize("functions", [False, True])
def test_onnx_has_one_initializer_read_by_both_nodes_and_agrees_with_torch(shared, functions):
    model = lower(shared, seed=0, functions=functions)
    names = [i.name for i in model.graph.initializer]
    assert not [n for n in names if n.startswith("tower_1.")]
    assert len(names) == len(set(names)) == 8  # the tower's weights and biases (bn folded)
    readers = [n for n in model.graph.node if "tower.conv2.weight" in n.input]
    assert len(readers) == 2  # a Conv each (or a call of the tower's function each)
    net = build_module(shared, seed=0).eval()
    x, y = feeds(1)
    with torch.no_grad():
        ref = net(torch.from_numpy(x), torch.from_numpy(y)).numpy()
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"left": x, "right": y})
    assert np.abs(got - ref).max() <= 1e-5 * np.abs(ref).max()


def test_onnx_keeps_two_initializers_where_folding_an_unshared_bn_makes_them_differ():
    g = load_text("net n {\n  input x: 3x8x8\n  share c = conv(4, 3)\n"
                  "  output y = concat[x -> c -> bn, x -> c -> bn]\n}\n", "n.net")
    w = init_weights(g, 0)
    w["bn2.weight"] = w["bn2.weight"] + 1  # the two (unshared) bns differ
    model = lower(g, w)
    names = {i.name for i in model.graph.initializer}
    assert {"c.weight", "c_1.weight"} <= names
    net = build_module(g, w).eval()
    x = np.random.default_rng(2).standard_normal((1, 3, 8, 8), dtype=np.float32)
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    assert np.abs(session.run(None, {"x": x})[0] - ref).max() <= 1e-5 * np.abs(ref).max()


def test_onnx_of_a_shared_block_first_used_by_a_training_output_draws_the_owners_weights():
    """The ONNX file leaves out training-only outputs, and with them the owner of a shared
    block first applied there: the inference output's use still computes with the owner's
    seeded weights (init_weights draws an owner a kept sharer needs)."""
    g = load_text("net n {\n  input x: 3x8x8\n  share t = conv(4, 3, pad=1) -> bn -> relu\n"
                  "  training output aux = x -> t -> gap -> flatten -> fc(2)\n"
                  "  output y = x -> t -> gap -> flatten -> fc(3)\n}\n", "n.net")
    model = lower(g, seed=0)
    assert not [i.name for i in model.graph.initializer if i.name.startswith(("t.", "fc1"))]
    net = build_module(g, seed=0).eval()
    x = np.random.default_rng(2).standard_normal((2, 3, 8, 8), dtype=np.float32)
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    assert np.abs(session.run(None, {"x": x})[0] - ref).max() <= 1e-5 * np.abs(ref).max()


def test_a_weights_file_copy_of_a_shared_tensor_must_equal_the_owners(shared):
    w = init_weights(shared, 0)
    net = build_module(shared, {**w, "tower_1.fc2.bias": w["tower.fc2.bias"]})
    assert torch.equal(net.get_submodule("tower.fc2").bias, torch.from_numpy(w["tower.fc2.bias"]))
    with pytest.raises(UserError, match="tower_1.fc2.bias differs from tower.fc2.bias"):
        build_module(shared, {**w, "tower_1.fc2.bias": w["tower.fc2.bias"] + 1})


def test_a_weights_file_with_only_the_sharing_layers_copies_needs_them_equal():
    """Without the owner's tensor, the first sharing copy stands for it and the others must
    equal it (no copy silently wins)."""
    g = load_text("net n {\n  input x: 3x8x8\n  share c = conv(3, 3, pad=1)\n"
                  "  x -> c -> c -> c\n}\n", "n.net")
    w = init_weights(g, 0)
    copies = {f"{n}.{t}": w[f"c.{t}"] for n in ("c_1", "c_2") for t in ("weight", "bias")}
    net = build_module(g, copies)
    assert torch.equal(net.get_submodule("c").bias, torch.from_numpy(w["c.bias"]))
    with pytest.raises(UserError, match="c_2.bias differs from c_1.bias, both copies of c.bias"):
        build_module(g, {**copies, "c_2.bias": w["c.bias"] + 1})


# ---- Caffe: param { name } ---------------------------------------------------------------------
def caffe_siamese():
    """BVLC's MNIST siamese train_val (V1 format), whole: its V1 CONTRASTIVE_LOSS is dropped as
    every loss layer is."""
    return SIAMESE_CAFFE.read_text()


def test_caffe_siamese_imports_with_its_shared_count(tmp_path, cli):
    proto = tmp_path / "mnist_siamese_train_test.prototxt"
    proto.write_text(caffe_siamese())
    r = cli("import", "caffe", proto, "--input", "2x28x28", "-o", tmp_path / "siamese.net")
    assert r.code == 0, r.err
    assert "431,102 params" in r.out + r.err
    spec = (tmp_path / "siamese.net").read_text()
    assert "  share conv1_w = conv(20, 5);" in spec
    assert "-> conv1_w as conv1\n" in spec and "-> conv1_w as conv1_p\n" in spec
    g = load(str(tmp_path / "siamese.net"))
    assert summarize(g).params == 431_102 and g["conv1_p"].shares == "conv1"


def test_a_caffemodels_shared_blobs_load_once(tmp_path):
    proto = tmp_path / "siamese.prototxt"
    proto.write_text(caffe_siamese())
    g = load(str(proto), input_shapes={None: (2, 28, 28)})
    w = init_weights(g, 5)
    kinds = {"conv": "Convolution", "fc": "InnerProduct"}
    layers = [CaffeLayer(n.name, kinds[n.op], [], [], [w[f"{n.shares or n.name}.weight"],
                                                     w[f"{n.shares or n.name}.bias"]])
              for n in g if n.op in kinds]  # Caffe writes a shared blob in each layer
    write_caffemodel(tmp_path / "siamese.caffemodel", CaffeModel("siamese", layers))
    net = build_module(g, load_weights(g, tmp_path / "siamese.caffemodel", say=lambda s: None))
    assert sorted(net.state_dict()) == sorted(w)
    assert torch.equal(net.get_submodule("ip1").weight, torch.from_numpy(w["ip1.weight"]))


def test_weights_import_pairs_a_shared_layer_once(shared):
    """The pairing's spec side is the owners: a sharing use holds no weights of its own, so an
    imported file (a caffemodel writes a shared blob in each layer) is not written twice."""
    from netc.compiler.importers.pairing import spec_layers

    names = [layer.name for layer in spec_layers(shared)]
    assert names and all(not n.startswith("tower_1.") for n in names)
    paired = {f"{layer.name}.{k}": math.prod(shape) for layer in spec_layers(shared)
              for k, shape in layer.tensors}
    drawn = init_weights(shared, seed=3)
    assert paired == {k: a.size for k, a in drawn.items() if k in paired}
    assert set(drawn) - set(paired) <= {"tower.bn1.num_batches_tracked"}, set(drawn) - set(paired)


def test_caffe_partial_sharing_is_a_located_error(tmp_path, cli):
    text = caffe_siamese().replace('param: "ip2_w"\n  param: "ip2_b"\n}\n\nlayers {\n  '
                                   'name: "feat_p"', 'param: "ip2_w"\n  param: "other_b"\n}\n\n'
                                   'layers {\n  name: "feat_p"')
    assert "other_b" in text
    proto = tmp_path / "siamese.prototxt"
    proto.write_text(text)
    r = cli("check", proto, "--input", "2x28x28")
    assert r.code == 1 and "netc shares whole layers" in r.err
    assert "siamese.prototxt:" in r.err and "Traceback" not in r.err


# ---- ONNX output names ------------------------------------------------------------------------
TWO_OUTPUTS = """
net two {
  input image: 3x16x16
  f = image -> conv(8, 3, pad=1) -> relu
  output out = f -> conv(4, 1)
  output aux = f -> conv(2, 1) -> upsample(2)
}
"""


@pytest.mark.parametrize("options", [{}, {"functions": True}, {"opset": 13},
                                     {"outputs": ["conv1"]}])
def test_onnx_outputs_carry_the_names_the_spec_declares(options):
    g = load_text(TWO_OUTPUTS, "two.net")
    model = lower(g, **options)
    want = ["out", "aux"] + (["conv1"] if options.get("outputs") else [])
    assert [o.name for o in model.graph.output] == want
    meta = {p.key: p.value for p in model.metadata_props}
    assert json.loads(meta["netc.outputs"]) == want
    assert "conv2" in {n.name for n in model.graph.node}  # nodes keep the IR names
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((1, 3, 16, 16), dtype=np.float32)
    got = dict(zip(want, session.run(None, {"image": x})))
    net = build_module(g).eval()
    with torch.no_grad():
        ref = net(torch.from_numpy(x), taps=["conv2", "upsample1"])
    assert np.allclose(got["out"], ref["conv2"].numpy(), atol=1e-5)
    assert got["aux"].shape == (1, 2, 32, 32)


def test_onnx_outputs_keep_node_names_where_the_spec_names_none_and_copy_an_input():
    g = load_text("net n {\n  input x: 3x8x8\n  x -> conv(2, 1)\n}\n", "n.net")
    assert [o.name for o in lower(g).graph.output] == ["conv1"]
    g = load_text("net n {\n  input x: 3x8x8\n  output same = x\n"
                  "  output y = x -> conv(2, 1)\n}\n", "n.net")
    model = lower(g)
    assert [o.name for o in model.graph.output] == ["same", "y"]
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.ones((1, 3, 8, 8), np.float32)
    assert np.array_equal(session.run(["same"], {"x": x})[0], x)


def test_onnx_gives_each_declared_name_of_one_node_its_output():
    """Two names for one value, then an input: every declared name is an output of the
    value it names (the outputs were once de-duplicated, which shifted the names after)."""
    g = load_text("net n {\n  input x: 3x8x8\n  y = x -> conv(4, 3, pad=1)\n  output a = y\n"
                  "  output b = y\n  output same = x\n  output r = x -> relu\n}\n", "n.net")
    model = lower(g)
    assert [o.name for o in model.graph.output] == ["a", "b", "same", "r"]
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).standard_normal((1, 3, 8, 8), dtype=np.float32)
    a, b, same, r = session.run(None, {"x": x})
    assert a.shape == (1, 4, 8, 8) and np.array_equal(a, b)
    assert np.array_equal(same, x) and np.array_equal(r, np.maximum(x, 0))
    net = build_module(g)
    for mode in (net.eval, net.train):  # torch: one value per declared output in both modes
        mode()
        assert [tuple(v.shape) for v in net(torch.from_numpy(x))] == [
            (1, 4, 8, 8), (1, 4, 8, 8), (1, 3, 8, 8), (1, 3, 8, 8)]


def test_netc_run_reads_a_named_output(tmp_path, cli):
    spec = tmp_path / "named.net"
    spec.write_text("net named {\n  input image: 3x32x32\n"
                    "  output scores = image -> adaptive_avgpool(1) -> flatten -> fc(10) -> softmax\n}\n")
    onnx_path = tmp_path / "named.onnx"
    assert cli("compile", spec, "-o", onnx_path).code == 0
    import onnx
    assert [o.name for o in onnx.load(str(onnx_path)).graph.output] == ["scores"]
    image = tmp_path / "x.png"
    from PIL import Image
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(image)
    r = cli("run", onnx_path, image, "--topk", "2")
    assert r.code == 0, r.err


def test_the_readme_conventions_example_gives_its_numbers(tmp_path):
    import re
    import textwrap

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("### Conventions"):readme.index("## Commands")]
    (block,) = re.findall(r"  ```\n(.*?)  ```", section, re.DOTALL)
    text = textwrap.dedent(block)
    assert "431,080 parameters here, not 862,160" in section
    assert summarize(load_text(text, "readme.net")).params == 431_080
    assert summarize(load_text(text.replace("share", "let"), "readme.net")).params == 862_160


def test_the_editor_says_what_let_and_share_mean_and_counts_a_shared_use_once(tmp_path):
    from netc.runtime.lsp.analysis import analyze, real
    from netc.runtime.lsp.hover import hover

    path = tmp_path / "siamese.net"

    def hovered(keyword: str, word: str, line_has: str) -> str:
        text = siamese(keyword)
        path.write_text(text)
        analysis = analyze(path, {real(path): text})
        lines = text.splitlines()
        k = next(k for k, line in enumerate(lines) if line_has in line)
        return hover(analysis, {}, k, lines[k].index(word) + 1).contents.value

    assert "same weights" in hovered("share", "share", "share tower")
    assert "new layers" in hovered("let", "let", "let tower")
    # The second use's row: its nodes hold no weights of their own.
    assert "parameters 0 " in hovered("share", "tower", "right -> tower")
    assert f"parameters {TOWER_PARAMS:,} " in hovered("let", "tower", "right -> tower")


MODERN = """name: "twin"
input: "a"
input_shape { dim: 1 dim: 3 dim: 16 dim: 16 }
input: "b"
input_shape { dim: 1 dim: 3 dim: 16 dim: 16 }
layer { name: "conv_a" type: "Convolution" bottom: "a" top: "conv_a"
        param { name: "w" lr_mult: 1 } param { name: "bias" lr_mult: 2 }
        convolution_param { num_output: 8 kernel_size: 3 } }
layer { name: "conv_b" type: "Convolution" bottom: "b" top: "conv_b"
        param { name: "w" lr_mult: 1 } param { name: "bias" lr_mult: 2 }
        convolution_param { num_output: 8 kernel_size: 3 STRIDE } }
"""


def test_caffe_param_messages_share_and_other_settings_are_refused(tmp_path, cli):
    proto = tmp_path / "twin.prototxt"
    proto.write_text(MODERN.replace(" STRIDE", ""))
    g = load(str(proto))
    assert g["conv_b"].shares == "conv_a" and summarize(g).params == 8 * 3 * 9 + 8
    proto.write_text(MODERN.replace("STRIDE", "stride: 2"))
    r = cli("check", proto)
    assert r.code == 1 and "twin.prototxt:" in r.err
    assert "shares the blobs of 'conv_a' but is another layer" in r.err


def test_a_tower_first_used_by_a_training_output_counts_at_inference():
    """The owner of a shared block sits in a training-only head here, but the inference output
    applies its weights: they are the net's parameters, not the head's (they were counted as
    training-only, 15 against 135)."""
    g = load_text("""net n {
  input image: 3x8x8
  share tower = conv(4, 3, pad=1) -> bn -> relu
  training output aux = image -> tower -> gap -> flatten -> fc(2)
  output y = image -> tower -> gap -> flatten -> fc(3)
}""", "t.net")
    s = summarize(g)
    tower = 4 * 3 * 9 + 4 + 8  # conv and bn, once
    assert s.params == tower + 4 * 3 + 3 and s.training_params == 4 * 2 + 2
    assert s.buffers == 8  # the bn's running statistics are inference's too
