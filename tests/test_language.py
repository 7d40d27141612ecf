"""The language's constructs elaborate to the graphs and numbers they should."""

from __future__ import annotations

import pytest

from netc.compiler.ir import verify
from netc.compiler.frontend.loader import load
from netc.compiler.ops.conv import window_out
from netc.compiler.analyses.summary import summarize
from netc.dsl.diagnostics import DiagnosticError


def spec(tmp_path, text: str, name: str = "t.net") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_conv_formula_lecture_example():
    # (W + 2P − F)/S + 1 with W=5, P=1, F=3, S=2 (the lecture's slide) gives 3.
    assert window_out(5, 3, 2, 1) == 3


@pytest.mark.parametrize("size,k,s,p,ceil,expected", [
    (112, 3, 2, 0, True, 56),   # ResNet-50 Caffe pool1: ceil gives 56 ...
    (112, 3, 2, 0, False, 55),  # ... where PyTorch's floor gives 55
    (14, 3, 2, 0, True, 7),     # GoogLeNet pool4
    (55, 3, 2, 0, True, 27),    # AlexNet pool1
    (6, 2, 2, 1, True, 4),      # ceil with padding keeps a window that starts inside the input
    (5, 2, 2, 1, True, 3),      # and drops one that would start in the right padding
])
def test_pool_rounding(size, k, s, p, ceil, expected):
    assert window_out(size, k, s, p, 1, ceil) == expected


def test_vgg16_parameters_and_macs():
    s = summarize(load("vgg16"))
    assert s.params == 138_357_544
    assert s.macs == 15_470_264_320  # 15.47 G


def test_resnet34_macs_match_the_seed_3_6_billion():
    s = summarize(load("resnet34"))
    assert s.params == 21_797_672
    assert abs(s.macs - 3.6e9) / 3.6e9 < 0.02


def longest_conv_path(graph) -> int:
    depth = {}
    for node in graph:
        best = max((depth[i] for i in node.inputs), default=0)
        depth[node.name] = best + (node.op == "conv")
    return max(depth.values())


def test_fractalnet_depth_is_b_times_2_to_the_c_minus_1():
    g = load("fractalnet")
    verify(g)
    assert longest_conv_path(g) == 5 * 2 ** (4 - 1) == 40
    convs = [n for n in g if n.op == "conv"]
    assert len(convs) == 5 * (2 ** 4 - 1)  # 15 per block
    joins = [n for n in g if n.op == "mean" and n.name.startswith("block1.")]
    # C = 4: joins every 2 rows with 2, 3, 2 and 4 inputs (the paper's Fig. 1).
    assert sorted(len(j.inputs) for j in joins) == [2, 2, 3, 4]
    last = [j for j in joins if len(j.inputs) == 4][0]
    assert last.attrs["columns"] == (4, 3, 2, 1)


def test_fractalnet_depth_follows_c(tmp_path):
    for c in (2, 3):
        g = load("fractalnet", {"C": c})
        assert longest_conv_path(g) == 5 * 2 ** (c - 1)


INCEPTION = """
def inception(c1, r3, c3, r5, c5, pp) = concat[
  conv(c1, 1) -> relu,
  conv(r3, 1) -> relu -> conv(c3, 3, pad=1) -> relu,
  conv(r5, 1) -> relu -> conv(c5, 5, pad=2) -> relu,
  maxpool(3, stride=1, pad=1) -> conv(pp, 1) -> relu ]

net block3a {
  input x: 192x28x28
  output y = x -> inception(64, 96, 128, 16, 32, 32) as inception_3a
}
"""


def test_inception_module(tmp_path):
    g = load(spec(tmp_path, INCEPTION))
    s = summarize(g)
    assert s.outputs == {"y": (256, 28, 28)}
    # Parameters of GoogLeNet's inception 3a (weights + biases), as in bvlc_googlenet.
    expected = (192 * 64 + 64) + (192 * 96 + 96) + (96 * 9 * 128 + 128) + (192 * 16 + 16) \
        + (16 * 25 * 32 + 32) + (192 * 32 + 32)
    assert s.params == expected
    assert g.resolve("inception_3a") == "inception_3a.concat1"


def test_names_scopes_labels_and_suffix_lookup():
    g = load("vgg16")
    assert "conv4_2" in g.nodes and "pool5" in g.nodes
    r = load("resnet18")
    assert "layer2.basic1.shortcut.conv1" in r.nodes
    assert r.resolve("layer3") == "layer3.basic2.relu2"
    assert r.resolve("basic1.conv1") is None  # ambiguous across layers


def test_labels_collide_with_suffixes(tmp_path):
    g = load(spec(tmp_path, """
net n { input x: 3x8x8
  x -> conv(4, 3, pad=1) as c -> conv(4, 3, pad=1) as c -> relu }"""))
    assert ["c", "c_1"] == [n.name for n in g if n.op == "conv"]


def test_arithmetic_defaults_keywords_and_for(tmp_path):
    g = load(spec(tmp_path, """
def widen(ch, k=2) = conv(ch * k, 3, pad=(3 - 1) // 2)
def tower(n, base=8) = (widen(base * i, k=1) as w{i}) for i in 1..n
net n(depth=3) { input x: 3x16x16
  x -> tower(depth) -> widen(4) }"""))
    convs = [n for n in g if n.op == "conv"]
    assert [n.shape[0] for n in convs] == [8, 16, 24, 8]
    assert [n.name for n in convs][:3] == ["tower1.w1.conv1", "tower1.w2.conv1", "tower1.w3.conv1"]


def test_repetition_and_conditionals(tmp_path):
    g = load(spec(tmp_path, """
def f(n) = if n <= 1 then conv(4, 3, pad=1) else conv(4, 3, pad=1) -> f(n - 1)
net n { input x: 3x8x8
  x -> f(3) -> (relu -> identity) * 2 }"""))
    assert [n.op for n in g][1:] == ["conv", "conv", "conv", "relu", "identity", "relu", "identity"]


def test_residual_shortcuts(tmp_path):
    text = """
def blk(ch, stride, kind) = residual(conv(ch, 3, stride=stride, pad=1, bias=false) -> bn,
                                     shortcut=kind)
net n { input x: 16x32x32
  output a = x -> blk(16, 1, identity)
  output b = x -> blk(32, 2, pad)
  output c = x -> blk(32, 2, project)
  output d = x -> blk(16, 1, conv)
}"""
    g = load(spec(tmp_path, text))
    ops = {n.name: n.op for n in g}
    assert ops["blk2.shortcut"] == "shortcut_pad"
    assert g["blk2.shortcut"].shape == (32, 16, 16)
    assert ops["blk3.shortcut.conv1"] == "conv" and ops["blk3.shortcut.bn1"] == "bn"
    assert g["blk3.shortcut.conv1"].attrs.stride == (2, 2)
    assert ops["blk4.shortcut.conv1"] == "conv"  # option C projects even when shapes agree
    assert g["blk1.residual1"].inputs == ("blk1.bn1", "x")
    assert summarize(g).outputs == {"a": (16, 32, 32), "b": (32, 16, 16),
                                    "c": (32, 16, 16), "d": (16, 32, 32)}


def test_stochastic_depth_linear_decay(tmp_path):
    g = load(spec(tmp_path, """
net n { input x: 8x8x8
  with stochastic_depth(p_L=0.5)
  x -> residual(conv(8, 3, pad=1)) * 4 }"""))
    ps = [n.attrs["survival"] for n in g if n.op == "residual"]
    assert ps == pytest.approx([1 - (l / 4) * 0.5 for l in range(1, 5)])


def test_droppath_declaration_and_override(tmp_path):
    g = load(spec(tmp_path, """
net n { input x: 8x8x8
  with droppath(local=0.1, global=0.25)
  x -> mean[conv(8, 3, pad=1), conv(8, 1)] -> mean(droppath=0.3)[relu, identity] }"""))
    assert g.options.droppath_local == 0.1 and g.options.droppath_global == 0.25
    means = [n for n in g if n.op == "mean"]
    assert [m.attrs["droppath"] for m in means] == [None, 0.3]


def test_several_outputs_and_statement_joins(tmp_path):
    g = load(spec(tmp_path, """
net n { input x: 3x8x8
  a = x -> conv(4, 1)
  b = x -> conv(6, 1)
  c = concat[a, b -> relu]
  output feats = c
  output logits = c -> gap -> flatten -> fc(10) }"""))
    s = summarize(g)
    assert s.outputs == {"feats": (10, 8, 8), "logits": (10,)}
    verify(g)


def test_include_and_zoo_include(tmp_path):
    (tmp_path / "blocks.net").write_text("def two(ch) = conv(ch, 3, pad=1) -> relu\n")
    path = spec(tmp_path, 'include "blocks.net"\nnet n { input x: 3x8x8\n x -> two(4) }')
    assert [n.op for n in load(path)][1:] == ["conv", "relu"]


def test_net_parameter_override():
    assert summarize(load("vgg16", {"classes": 10})).outputs == {"prob": (10,)}


def test_node_limit_is_configurable(tmp_path):
    path = spec(tmp_path, "net n { input x: 3x8x8\n x -> relu * 50 }")
    with pytest.raises(DiagnosticError) as err:
        load(path, max_nodes=20)
    assert "grows past 20 nodes" in err.value.diagnostics[0].message


def test_a_label_ends_at_its_token(tmp_path):
    # `as r` then a new statement on the next line: the label must not swallow `y`.
    g = load(spec(tmp_path, """
def f(s, i) = conv(8, 3, pad=1) as conv{s}_{i + 1} -> relu as r
net n { input x: 3x8x8
  a = x -> f(2, 3) -> relu as q
  b = a -> f(1, 1) as blk{3 * 2}
}"""))
    assert [n.name for n in g] == ["x", "f1.conv2_4", "f1.r", "q", "blk6.conv1_2", "blk6.r"]


def test_pad_avg_shortcut_averages_then_pads(tmp_path):
    import numpy as np
    import torch

    from netc.compiler.lower_torch.module import build_module

    g = load(spec(tmp_path, """
net n { input x: 2x4x4
  x -> residual(conv(4, 3, stride=2, pad=1), shortcut=pad_avg) }"""))
    pad = next(n for n in g if n.op == "shortcut_pad")
    assert pad.attrs.mode == "avg" and pad.shape == (4, 2, 2)
    module = build_module(g, seed=0).eval()
    x = torch.arange(32, dtype=torch.float32).reshape(1, 2, 4, 4)
    out = module.node_module(pad.name)(x)
    expected = np.zeros((1, 4, 2, 2), np.float32)
    expected[0, :2] = x.numpy().reshape(2, 2, 2, 2, 2).mean(axis=(2, 4))
    assert np.allclose(out.numpy(), expected)


ALIASES = """
net vgg(n1=2, n2=2, classes=1000) {
  input image: 3x32x32
  output logits = image -> (conv(8, 3, pad=1) -> relu) * n1 -> maxpool(2)
                        -> (conv(16, 3, pad=1) -> relu) * n2 -> gap -> flatten -> fc(classes)
}
net small = vgg(1, 1, classes=10)
net smaller = small(n2=0, classes=5)
"""


def test_net_aliases_set_parameters(tmp_path):
    path = spec(tmp_path, ALIASES)
    small, smaller = load(f"{path}:small"), load(f"{path}:smaller")
    assert small.name == "small" and summarize(small).outputs == {"logits": (10,)}
    assert sum(n.op == "conv" for n in small) == 2
    # an alias of an alias: its own settings win, the rest come from the alias it names
    assert summarize(smaller).outputs == {"logits": (5,)}
    assert sum(n.op == "conv" for n in smaller) == 1
    # --set on the command line wins over both
    assert summarize(load(f"{path}:small", {"classes": 3})).outputs == {"logits": (3,)}


def test_zoo_families_are_aliases():
    assert summarize(load("vgg19_bn")).params == 143_678_248
    assert summarize(load("resnet152")).params == 60_192_808


@pytest.mark.parametrize("body,shown", [
    ("image -> conv(conv, 1)", "conv: parameter 'out' must be an integer; got conv"),
    ("image -> conv(8, 3, pad=relu)", "got a block of layers"),
    ("image -> conv(8, 3, pad=two)", "got the definition two"),
    ("image -> concat(fit=mean)[relu, relu]", "one of crop, pad; got mean"),
    ("with stochastic_depth(mode=conv)\n  image -> relu", "or row (per sample); got conv"),
    ("with stochastic_depth(mode=rows)\n  image -> relu", "or row (per sample); got 'rows'"),
    ("image -> relu", "input layout must be rgb, bgr or gray; got [1]"),
])
def test_a_value_in_a_message_is_shown_as_the_spec_writes_it(tmp_path, body, shown):
    """Ops named bare, blocks, join heads and definitions are named, never shown as Python
    objects (``OpRef(op=<...Conv object at 0x...>)``)."""
    layout = ", layout=[1]" if "layout" in shown else ""
    path = spec(tmp_path, f"def two(ch) = conv(ch, 1)\n"
                          f"net n {{ input image: 3x8x8{layout}\n  {body} }}")
    with pytest.raises(DiagnosticError) as err:
        load(path)
    [message] = [d.message for d in err.value.diagnostics]
    assert message.endswith(shown) and "object at" not in message


@pytest.mark.parametrize("text,message", [
    ("input image: {}x8x8\n  image -> relu", "1:23: empty {} in an input shape"),
    ("input image: {2 +}x8x8\n  image -> relu", "cannot read {2 +} in this input shape"),
    ("input image: 3x8x8\n  image -> relu as r{}", "empty {} in a label"),
    ("input image: 3x8x8\n  image -> relu as r{2 +}", "cannot read {2 +} in this label"),
])
def test_a_braced_expression_that_cannot_be_read_names_where_it_is(tmp_path, text, message):
    with pytest.raises(DiagnosticError) as err:
        load(spec(tmp_path, f"net n {{ {text} }}"))
    [d] = err.value.diagnostics
    assert f"{d.span.line}:{d.span.col}: {d.message}".endswith(message)


def test_calling_a_value_of_the_net_says_what_it_is(tmp_path):
    path = spec(tmp_path, "net n { input image: 3x8x8\n  x = image -> relu\n  image -> x(3) }")
    with pytest.raises(DiagnosticError) as err:
        load(path)
    [message] = [d.message for d in err.value.diagnostics]
    assert message.startswith("'x' is a value of the net, not a layer or a definition")
    assert "did you mean" not in message  # it used to suggest 'x' for 'x'


@pytest.mark.parametrize("declaration,message", [
    ("droppath(0.1, local=0.2)", "droppath: local given twice"),
    ("droppath(local=0.1, local=0.3)", "droppath: local given twice"),
    ("droppath(0.1, 0.2, 0.3)", "droppath takes (local, global); got 3 values"),
    ("stochastic_depth(0.5, row, 7)", "stochastic_depth takes (p_L, mode); got 3 values"),
    ("stochastic_depth(q=0.5)", "stochastic_depth has no parameter 'q'"),
    ("droppath(local=1/0)", "division by zero in 1 / 0"),  # and no second 'got Poison'
])
def test_a_declaration_binds_each_argument_once(tmp_path, declaration, message):
    path = spec(tmp_path, f"net n {{ input x: 8x8x8\n  with {declaration}\n  x -> relu }}")
    with pytest.raises(DiagnosticError) as err:
        load(path)
    assert [d.message for d in err.value.diagnostics] == [message]
