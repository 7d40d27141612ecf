"""The constructs of a configuration table: the flowing value's shape inside a definition,
``let``, ``min``/``max``/``round``, list items, ``for`` over a list, input sizes from net
parameters and ``--input``, layer shortcuts, and training-only outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from netc.compiler.frontend.loader import load
from netc.compiler.lower_onnx.model import lower
from netc.compiler.lower_torch.module import build_module
from netc.compiler.analyses.summary import summarize
from netc.dsl.diagnostics import DiagnosticError
from tests.test_onnx_ops import run_ort


def spec(tmp_path, text: str, name: str = "t.net") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def net(tmp_path, body: str, head: str = "", shape: str = "8x16x16", params: str = "") -> str:
    return spec(tmp_path, f"{head}\nnet t({params}) {{\n  input image: {shape}\n  {body}\n}}\n")


def shapes(graph) -> dict[str, tuple]:
    return {n.name: n.shape for n in graph}


def errors(path: str, **kw) -> list[str]:
    with pytest.raises(DiagnosticError) as err:
        load(path, **kw)
    return [f"{d.span.line}:{d.span.col}: {d.message}" if d.span else d.message
            for d in err.value.diagnostics]


# ---- the flowing value's shape ------------------------------------------------------------------

def test_in_channels_is_the_definitions_input_width(tmp_path):
    head = ("def dw(stride=1) = conv(in_channels, 3, stride=stride, pad=1, groups=in_channels)\n"
            "def half = conv(in_channels // 2, 1) -> maxpool(in_height // 4)")
    g = load(net(tmp_path, "image -> dw -> conv(24, 1) -> dw(2) -> half", head))
    assert g["dw1.conv1"].attrs["groups"] == 8 and g["dw1.conv1"].shape == (8, 16, 16)
    assert g["dw2.conv1"].attrs["groups"] == 24 and g["dw2.conv1"].shape == (24, 8, 8)
    assert g["half1.conv1"].shape == (12, 8, 8) and g["half1.maxpool1"].shape == (12, 4, 4)


def test_defaults_are_evaluated_on_the_input_so_they_can_read_its_shape(tmp_path):
    head = ("def se(squeeze=max(8, in_channels // 4)) = gap -> conv(squeeze, 1) -> relu "
            "-> conv(in_channels, 1) -> sigmoid")
    g = load(net(tmp_path, "image -> se -> conv(64, 1) -> se -> conv(64, 1) -> se(3)", head))
    assert g["se1.conv1"].shape == (8, 1, 1)      # max(8, 8 // 4)
    assert g["se2.conv1"].shape == (16, 1, 1)     # max(8, 64 // 4)
    assert g["se3.conv1"].shape == (3, 1, 1) and g["se3.conv2"].shape == (64, 1, 1)
    assert g.calls["se2"] == "se(squeeze=16)"


def test_densenet_width_grows_through_repeated_calls(tmp_path):
    head = "def layer(k) = concat[identity, conv(k, 3, pad=1)]\n" \
           "def transition = conv(in_channels // 2, 1)"
    g = load(net(tmp_path, "image -> layer(4) * 3 -> transition", head))
    assert [g[f"layer{i}.concat1"].shape[0] for i in (1, 2, 3)] == [12, 16, 20]
    assert g["transition1.conv1"].shape[0] == 10


def test_in_shape_outside_a_definition_is_a_located_error(tmp_path):
    msgs = errors(net(tmp_path, "image -> conv(in_channels, 1)"))
    assert msgs == ["4:17: in_channels is the shape of a definition's input; it is known only "
                    "inside a definition (def block(ch) = conv(in_channels, 3, "
                    "groups=in_channels))"]
    head = "def f = fc(in_height)"
    assert "flat vector of 2048" in errors(net(tmp_path, "image -> flatten -> f", head))[0]


# ---- let, numeric functions, lists ---------------------------------------------------------------

def test_let_expression_statement_and_file_constant(tmp_path):
    head = "let widths = [4, 6]\n" \
           "def two(c) = let a = c * 2, b = a + 1 in conv(a, 1) -> conv(b, 1)"
    g = load(net(tmp_path, "let k = widths[1]\n  image -> two(k) -> conv(widths[-2], 1)", head))
    assert [n.shape[0] for n in g if n.op == "conv"] == [12, 13, 4]


def test_min_max_round_floor_ceil_len(tmp_path):
    body = ("image -> conv(min(5, 3, 9), 1) -> conv(max([2, 7]), 1) -> conv(round(2.5), 1) "
            "-> conv(round(2.49), 1) -> conv(floor(7 / 2), 1) -> conv(ceil(7 / 2), 1) "
            "-> conv(len([1, 2, 3, 4, 5]), 1) -> conv(7.9 // 2, 1)")
    g = load(net(tmp_path, body))
    assert [n.shape[0] for n in g if n.op == "conv"] == [3, 7, 3, 2, 3, 4, 5, 3]


def test_make_divisible_is_written_with_round_and_max(tmp_path):
    """torchvision's _make_divisible(v, 8): round to a multiple of 8, never below 90% of v."""
    head = ("def divisible(v, d=8) = let m = max(d, round(v / d) * d) in\n"
            "  conv(if m < 0.9 * v then m + d else m, 1)")
    cases = {16 * 0.75: 16, 32 * 0.35: 16, 24 * 1.4: 32, 96 * 0.5: 48, 10: 16, 1280 * 1.0: 1280}
    body = "image -> " + " -> ".join(f"divisible({v!r})" for v in cases)
    g = load(net(tmp_path, body, head))
    assert [n.shape[0] for n in g if n.op == "conv"] == list(cases.values())


def test_max_with_branches_is_still_the_join(tmp_path):
    g = load(net(tmp_path, "image -> max[conv(8, 1), identity]"))
    assert [n.op for n in g][-1] == "max"


def test_for_over_a_list_unpacks_its_rows(tmp_path):
    head = "let table = [[1, 4, 2], [2, 6, 1]]  # t, c, n\n" \
           "def unit(c, stride) = conv(c, 3, stride=stride, pad=1)"
    body = ("image -> ((unit(c, t) -> unit(c, 1) * (n - 1)) as stage{c} for t, c, n in table)"
            " -> (conv(w, 1) for w in [3, 5])")
    g = load(net(tmp_path, body, head))
    convs = [(n.name, n.shape) for n in g if n.op == "conv"]
    assert convs == [("stage4.unit1.conv1", (4, 16, 16)), ("stage4.unit2.conv1", (4, 16, 16)),
                     ("stage6.unit1.conv1", (6, 8, 8)), ("conv1", (3, 8, 8)),
                     ("conv2", (5, 8, 8))]


@pytest.mark.parametrize("body,message", [
    ("image -> conv([1, 2][2], 1)", "4:24: index 2 is out of range for a list of 2"),
    ("image -> conv([1, 2][true], 1)", "4:24: a list index must be an integer; got True"),
    ("image -> (conv(a, 1) for a, b in [[1, 2], [3]])",
     "4:36: for a, b in ...: item 1 is [3], not a list of 2"),
    ("image -> (conv(a, 1) for a in 3)", "4:33: for a in ... needs a list (or a range lo..hi); "
                                         "got 3"),
    ("image -> conv(min(1, [2]), 1)", "4:17: min needs numbers (or one list of numbers); got 1, "
                                      "[2]"),
    ("image -> conv(round(1, 2), 1)", "4:17: round takes one number; got 1, 2"),
    ("image -> conv(len(3), 1)", "4:17: len takes one list"),
    ("let k = 2\n  let k = 3\n  image -> conv(k, 1)", "5:3: 'k' is already defined"),
])
def test_list_and_function_mistakes_are_located(tmp_path, body, message):
    assert errors(net(tmp_path, body)) == [message]


def test_a_constant_defined_in_terms_of_itself_is_an_error(tmp_path):
    msgs = errors(net(tmp_path, "image -> conv(a, 1)", "let a = b + 1\nlet b = a"))
    assert msgs[0] == "2:9: a is defined in terms of itself"


# ---- input sizes ----------------------------------------------------------------------------------

def test_input_size_is_a_net_parameter(tmp_path):
    path = net(tmp_path, "image -> conv(4, 3)", shape="3x{size}x{size * 2}", params="size=10")
    assert load(path)["conv1"].shape == (4, 8, 18)
    assert load(path, {"size": 20})["conv1"].shape == (4, 18, 38)
    bad = net(tmp_path, "image -> conv(4, 3)", shape="3x{size / 2}x8", params="size=10")
    assert errors(bad) == ["3:19: an input dimension must be an integer; got 5"]


def test_input_option_replaces_the_declared_shape(tmp_path, cli, capsys):
    path = net(tmp_path, "image -> conv(4, 3) -> gap -> flatten -> fc(2)", shape="3x1x1")
    assert "output height is -1" in errors(path)[0]
    assert load(path, input_shapes={None: (3, 9, 9)})["conv1"].shape == (4, 7, 7)
    assert load(path, input_shapes={"image": (3, 5, 5)})["conv1"].shape == (4, 3, 3)
    result = cli("check", path, "--input", "3x32x32")
    assert result.code == 0 and "3x32x32 -> 2" in result.out
    result = cli("summary", "resnet18", "--input", "image=3x64x64", "--depth", "1")
    assert result.code == 0 and "3x64x64 -> 1000" in result.out
    for bad in ("3x0x4", "3x4"):  # malformed: argparse's one-line error, exit 2
        with pytest.raises(SystemExit) as exit_:
            cli("check", path, "--input", bad)
        assert exit_.value.code == 2
        assert f"argument --input: expected CxHxW (or NAME=CxHxW) with positive sizes; got '{bad}'" \
            in capsys.readouterr().err
    result = cli("check", path, "--input", "foo=3x8x8")
    assert result.code == 1 and "has no input 'foo'" in result.err and "Traceback" not in result.err


# ---- shortcuts made of layers --------------------------------------------------------------------

def test_a_layer_shortcut_is_used_as_written_without_an_automatic_bn(tmp_path):
    body = ("image -> bn -> relu -> residual(conv(16, 3, stride=2, pad=1, bias=false) -> bn, "
            "shortcut=conv(16, 1, stride=2, bias=false))")
    g = load(net(tmp_path, body))
    short = [n for n in g if n.name.startswith("shortcut")]
    assert [(n.name, n.op) for n in short] == [("shortcut.conv1", "conv")]
    assert summarize(g).params == 16 + 8 * 16 * 9 + 32 + 8 * 16
    auto = load(net(tmp_path, body.replace("conv(16, 1, stride=2, bias=false)", "project")))
    assert [n.op for n in auto if n.name.startswith("shortcut")] == ["conv", "bn"]


def test_a_layer_shortcut_of_the_wrong_shape_is_a_located_error(tmp_path):
    body = "image -> residual(conv(16, 3, stride=2, pad=1), shortcut=conv(16, 1))"
    assert errors(net(tmp_path, body)) == [
        "4:12: residual: body gives 16x8x8, shortcut layers give 16x16x16"]


# ---- training-only outputs ------------------------------------------------------------------------

AUX = """
  x = image -> conv(4, 3, pad=1) -> relu
  output logits = x -> conv(6, 3, pad=1) -> gap -> flatten -> fc(5)
  training output aux = x -> gap -> flatten -> fc(5) as head
"""


def test_training_outputs_are_counted_apart(tmp_path, cli):
    g = load(net(tmp_path, AUX, shape="3x8x8"))
    assert g.outputs == ["fc1"] and g.options.training_outputs == {"aux": "head"}
    s = summarize(g)
    assert s.params == (3 * 9 + 1) * 4 + (4 * 9 + 1) * 6 + 6 * 5 + 5
    assert s.training_params == 4 * 5 + 5
    assert "training only" in {r.extra for r in s.rows if r.name == "head"}
    result = cli("check", net(tmp_path, AUX, shape="3x8x8"))
    assert "(+25 in training-only outputs)" in result.out


def test_training_outputs_exist_in_training_only(tmp_path):
    g = load(net(tmp_path, AUX, shape="3x8x8"))
    module = build_module(g)
    x = torch.randn(3, 3, 8, 8)
    logits, aux = module.train()(x)
    assert logits.shape == aux.shape == (3, 5)
    with torch.no_grad():
        ref = module.eval()(x)
    assert torch.is_tensor(ref)
    model = lower(g)
    assert [o.name for o in model.graph.output] == ["logits"]
    assert not [i for i in model.graph.initializer if i.name.startswith("head")]
    (out,) = run_ort(model, x.numpy())
    assert np.abs(out - ref.numpy()).max() <= 1e-5 * np.abs(ref.numpy()).max() + 1e-6


def test_a_training_output_is_never_the_implicit_last_chain(tmp_path):
    body = ("x = image -> conv(4, 3)\n  x -> gap -> flatten -> fc(3)\n"
            "  training output aux = x -> gap -> flatten -> fc(2)")
    g = load(net(tmp_path, body))
    assert g.outputs == ["fc1"] and g["fc1"].shape == (3,)


# ---- file-level functions ---------------------------------------------------------------------------

FUNCTIONS = """
let make_divisible(v, d=8) = let m = max(d, round(v / d) * d) in if m < 0.9 * v then m + d else m
let fact(n) = if n <= 1 then 1 else n * fact(n - 1)
let quarter() = in_channels // 4
def squeeze = conv(quarter(), 1)
"""


def test_file_level_functions_compute_values(tmp_path):
    body = ("image -> conv(make_divisible(32 * 0.35), 1) -> conv(make_divisible(10, d=4), 1) "
            "-> conv(fact(4), 1) -> squeeze")
    g = load(net(tmp_path, body, FUNCTIONS))
    assert [n.shape[0] for n in g if n.op == "conv"] == [16, 12, 24, 6]


@pytest.mark.parametrize("body,message", [
    ("image -> conv(fact, 1)", "10:17: fact is a function: call it, fact(...)"),
    ("image -> conv(fact(1, 2), 1)", "10:17: fact takes (n)"),
    ("image -> conv(make_divisible(), 1)", "10:17: make_divisible needs its parameter 'v'"),
    ("image -> conv(forever(1), 1)", "nest deeper than the limit of 64 (the function forever)"),
])
def test_function_mistakes_are_located(tmp_path, body, message):
    msgs = errors(net(tmp_path, body, FUNCTIONS + "let forever(n) = forever(n + 1)\n"))
    assert message in msgs[0], msgs


def test_input_option_sizes_a_caffe_file_defined_at_runtime(tmp_path, cli):
    """A deploy file whose input is 1x1 ("reshaped at runtime", as FCN's) needs --input."""
    proto = tmp_path / "fcn.prototxt"
    proto.write_text('name: "fcn" input: "data" input_dim: 1 input_dim: 3 input_dim: 1 '
                     'input_dim: 1\nlayer { name: "conv1" type: "Convolution" bottom: "data" '
                     'top: "conv1" convolution_param { num_output: 4 kernel_size: 3 } }\n')
    result = cli("check", proto)
    assert result.code == 1 and "output height is -1" in result.err
    result = cli("summary", proto, "--input", "3x16x16")
    assert result.code == 0 and "3x16x16 -> 4x14x14" in result.out


def test_readme_tour_examples_of_these_constructs_elaborate(tmp_path):
    """The tour's SE block and configuration-table lines, as the README writes them."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    flat = " ".join(readme.split())
    se = ("def se(squeeze=max(8, in_channels // 4)) = mul[identity, gap -> conv(squeeze, 1) "
          "-> relu -> conv(in_channels, 1) -> sigmoid]")
    rows = "let rows = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2]]"
    chain = ("image -> ((inverted_residual(t, c, if i == 1 then s else 1) for i in 1..n) "
             "for t, c, n, s in rows)")
    divisible = ("let make_divisible(v, d=8) = let m = max(d, round(v / d) * d) in "
                 "if m < 0.9 * v then m + d else m")
    for text in (se, rows, chain, divisible):
        assert text in flat, text
    head = (f"{se}\n{divisible}\ndef inverted_residual(t, c, stride) = conv(in_channels * t, 1) "
            "-> conv(c, 3, stride=stride, pad=1) -> se")
    g = load(net(tmp_path, f"{rows}\n  {chain}", head, shape="3x32x32"))
    assert [n.shape for n in g if n.op == "mul"][-1] == (32, 8, 8)
    assert sum(n.op == "mul" for n in g) == 6  # 1 + 2 + 3 blocks


def test_training_outputs_join_the_training_loss_with_their_weight(tmp_path):
    """netc train adds weight x cross-entropy of each auxiliary head: its weights learn."""
    from netc.runtime.train import TrainConfig, auxiliary_heads, train

    body = """
  x = image -> conv(4, 3, pad=1) -> relu
  output logits = x -> gap -> flatten -> fc(10)
  training output aux = x -> conv(2, 1) as aux_conv -> flatten -> fc(10) as aux_fc, weight=0.4
"""
    path = net(tmp_path, body, shape="1x8x8")
    graph = load(path)
    assert auxiliary_heads(graph) == {"aux_fc": 0.4}
    from netc.compiler.numerics.seeded_weights import init_weights

    before = init_weights(graph, 1)  # netc train's seed 1 draws these
    cfg = TrainConfig(data="digits", epochs=1, batch_size=16, steps_per_epoch=3, lr=0.1, seed=1,
                      checkpoint=str(tmp_path / "c.pt"), output=str(tmp_path / "w.safetensors"),
                      progress=False, threads=1)
    train(graph, cfg, log=lambda line: None)
    from safetensors.numpy import load_file

    after = load_file(str(tmp_path / "w.safetensors"))
    assert not np.allclose(after["aux_fc.weight"], before["aux_fc.weight"])
    assert not np.allclose(after["aux_conv.weight"], before["aux_conv.weight"])
    bad = net(tmp_path, body.replace("weight=0.4", "weight=-1"), shape="1x8x8")
    assert errors(bad) == ["7:85: weight must be a number >= 0; got -1"]


def test_deep_nesting_inside_let_and_input_sizes_is_refused_not_a_crash(tmp_path):
    deep = "[" * 300 + "1" + "]" * 300  # lists in lists: each one a level
    for body, shape in ((f"image -> (let a = {deep} in conv(1, 1))", "3x8x8"),
                        ("image -> conv(1, 1)", f"3x{{len({deep})}}x8")):
        msgs = errors(net(tmp_path, body, shape=shape))
        assert any("nest deeper than 200" in m for m in msgs), msgs
