"""Weights from your own checkpoints: the PyTorch patterns pairing by structure must reach.

Each test writes a reference module by hand in the checkpoint's own layout (a ``Linear`` where
the spec has a 1x1 conv, a tensor owned by a block, lists kept side by side, keys renamed by a
training wrapper), saves its state dict, imports it into a spec, and compares the forward of
netc's module with the reference's (float64, to 1e-6).
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import torch.nn as nn
from safetensors.numpy import load_file, save_file
from torchvision_layout import (
    TIMM_TO_TORCHVISION,
    Permute,
    randomise,
    same_outputs,
    check_lands_where_torchvision_uses_it,
    mapped_in_memory,
    random_state,
    reference_layout,
    reference_module,
    timm_vit_keys,
)

import netc
from netc.compiler.frontend.loader import load, zoo_index
from netc.compiler.importers.pairing import Layer, PairingError, pair_tree
from netc.compiler.lower_torch.module import build_module
from netc.dsl.diagnostics import UserError
from netc.runtime.cli import main
from netc.runtime.weights import import_weights, load_weights, map_by_structure

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def write(tmp_path, name: str, text: str) -> str:
    path = tmp_path / f"{name}.net"
    path.write_text(text)
    return str(path)


# ---- Linear <-> 1x1 conv, and tensors a block owns ---------------------------------------------
CONVNEXTISH = """
def block = residual(conv(in_channels, 7, pad=3, groups=in_channels) -> conv(4 * in_channels, 1)
                     -> relu -> conv(in_channels, 1) -> scale(bias=false))
net convnextish {
  input image: 3x32x32
  image -> conv(16, 4, stride=4) -> scale(bias=false) -> block * 2 -> gap -> flatten -> fc(10)
}
"""


class CNBlock(nn.Module):
    """torchvision's CNBlock layout (LayerNorm left out): Linear layers over the channels of
    each position, and a ``layer_scale`` (C, 1, 1) the block owns and applies last."""

    def __init__(self, dim):
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(dim, dim, 7, padding=3, groups=dim),
                                   Permute([0, 2, 3, 1]), nn.Linear(dim, 4 * dim), nn.ReLU(),
                                   nn.Linear(4 * dim, dim), Permute([0, 3, 1, 2]))
        self.layer_scale = nn.Parameter(torch.ones(dim, 1, 1))

    def forward(self, x):
        return x + self.layer_scale * self.block(x)


class ConvNeXtish(nn.Module):
    """A net that owns a tensor itself (``gamma``, used after ``stem``) and ends with a 1x1
    conv as its classifier, where the spec has ``fc``."""

    def __init__(self):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(16, 1, 1))
        self.stem = nn.Conv2d(3, 16, 4, stride=4)
        self.stages = nn.Sequential(CNBlock(16), CNBlock(16))
        self.head = nn.Conv2d(16, 10, 1)

    def forward(self, x):
        x = self.stages(self.stem(x) * self.gamma)
        return self.head(x.mean((2, 3), keepdim=True)).flatten(1)


def test_linear_as_1x1_conv_and_the_reverse_and_block_owned_tensors(tmp_path, cli):
    spec = write(tmp_path, "convnextish", CONVNEXTISH)
    ref = ConvNeXtish()
    randomise(ref, 1)
    torch.save(ref.state_dict(), tmp_path / "ref.pth")
    out = tmp_path / "w.safetensors"
    result = cli("weights", "import", spec, tmp_path / "ref.pth", "-o", out, "--show")
    assert result.code == 0, result.err
    same_outputs(spec, load_weights(load(spec), out), ref, torch.randn(2, 3, 32, 32))
    mapped, sd = load_file(str(out)), ref.state_dict()
    # every tensor landed where the reference uses it, reshaped without a transpose
    np.testing.assert_array_equal(mapped["block1.conv2.weight"],
                                  sd["stages.0.block.2.weight"].numpy()[:, :, None, None])
    np.testing.assert_array_equal(mapped["block2.scale1.weight"],
                                  sd["stages.1.layer_scale"].numpy().ravel())
    np.testing.assert_array_equal(mapped["scale1.weight"], sd["gamma"].numpy().ravel())
    np.testing.assert_array_equal(mapped["fc1.weight"], sd["head.weight"].numpy()[:, :, 0, 0])
    rows = {line.split()[0]: line for line in result.out.splitlines()}
    assert rows["block1.conv2.weight"].split()[1:5] == [
        "stages.0.block.2.weight", "64x16", "64x16x1x1", "reshape"]
    assert rows["block1.conv2.weight"].endswith("reshape 1x1 (Linear as conv)")
    assert rows["fc1.weight"].endswith("reshape 1x1 (conv as Linear)")
    assert rows["block2.scale1.weight"].split()[1:4] == ["stages.1.layer_scale", "16x1x1", "16"]
    assert rows["block2.scale1.weight"].endswith("squeezed")
    assert rows["block1.conv1.weight"].endswith("-")  # taken as it is
    assert rows["spec"].split()[:3] == ["spec", "tensor", "file"]


def test_a_sorted_safetensors_of_the_same_checkpoint_pairs_the_same(tmp_path):
    """Keys sorted (``gamma`` and ``head`` before ``stem``, ``layer_scale`` after ``block``):
    the own tensors still land after the layers they follow."""
    ref = ConvNeXtish()
    randomise(ref, 2)
    arrays = {k: v.numpy() for k, v in sorted(ref.state_dict().items())}
    save_file(arrays, str(tmp_path / "ref.safetensors"))
    spec = write(tmp_path, "convnextish", CONVNEXTISH)
    weights = load_weights(load(spec), tmp_path / "ref.safetensors", say=lambda _: None)
    same_outputs(spec, weights, ref, torch.randn(2, 3, 32, 32))


# ---- parallel lists (Res2Net's convs.i, bns.i) ------------------------------------------------
RES2 = """
net res2 {
  input image: 24x8x8
  x = image -> conv(24, 1, bias=false) as conv1 -> bn as bn1 -> relu
  y1 = x -> chunk(3, 0) -> conv(8, 3, pad=1, bias=false) -> bn -> relu
  y2 = add[y1, x -> chunk(3, 1)] -> conv(8, 3, pad=1, bias=false) -> bn -> relu
  z = concat[y1, y2, x -> chunk(3, 2)] -> conv(24, 1, bias=false) as conv3 -> bn as bn3
  output out = add[z, image] -> relu
}
"""


class Res2Block(nn.Module):
    """Res2Net's Bottle2neck (scale 3, stride 1): the 3x3 convs and their batch norms kept in
    two lists, ``convs.i`` and ``bns.i``, that the forward interleaves."""

    def __init__(self, planes=24, width=8, scale=3):
        super().__init__()
        self.width, self.scale = width, scale
        self.conv1 = nn.Conv2d(planes, width * scale, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width * scale)
        self.convs = nn.ModuleList(nn.Conv2d(width, width, 3, padding=1, bias=False)
                                   for _ in range(scale - 1))
        self.bns = nn.ModuleList(nn.BatchNorm2d(width) for _ in range(scale - 1))
        self.conv3 = nn.Conv2d(width * scale, planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes)

    def forward(self, x):
        spx = torch.split(torch.relu(self.bn1(self.conv1(x))), self.width, 1)
        outs, sp = [], None
        for i in range(self.scale - 1):
            sp = spx[i] if i == 0 else sp + spx[i]
            sp = torch.relu(self.bns[i](self.convs[i](sp)))
            outs.append(sp)
        out = self.bn3(self.conv3(torch.cat([*outs, spx[-1]], 1)))
        return torch.relu(out + x)


@pytest.mark.parametrize("fmt", ["pth", "safetensors"])
def test_parallel_lists_are_interleaved_as_the_spec_runs_them(fmt, tmp_path):
    ref = Res2Block()
    randomise(ref, 3)
    path = tmp_path / f"ref.{fmt}"
    if fmt == "pth":
        torch.save(ref.state_dict(), path)
    else:
        save_file({k: v.numpy() for k, v in ref.state_dict().items()
                   if "num_batches" not in k}, str(path))
    spec = write(tmp_path, "res2", RES2)
    out = tmp_path / "w.safetensors"
    mapped = import_weights(load(spec), path, out)
    pairs = dict(mapped.pairs)
    assert [pairs[f"{k}{i}"] for i in (2, 3) for k in ("conv", "bn")] == [
        "convs.0", "bns.0", "convs.1", "bns.1"]
    same_outputs(spec, load_weights(load(spec), out), ref, torch.randn(2, 24, 8, 8))


def test_a_module_whose_tensors_are_one_spec_layers_pairs_whole():
    """MultiheadAttention keeps ``in_proj_*`` itself and ``out_proj.*`` in a child: an op that
    owns all four takes the module whole, its keys relative to it."""
    d = 8
    ours = [Layer("ln", (("weight", (d,)), ("bias", (d,)))),
            Layer("attn", (("in_proj_weight", (3 * d, d)), ("in_proj_bias", (3 * d,)),
                           ("out_proj.weight", (d, d)), ("out_proj.bias", (d,))))]
    theirs = {"enc.ln_1": Layer("enc.ln_1", (("weight", (d,)), ("bias", (d,)))),
              "enc.self_attention.out_proj": Layer("enc.self_attention.out_proj",
                                                   (("weight", (d, d)), ("bias", (d,)))),
              "enc.self_attention": Layer("enc.self_attention",
                                          (("in_proj_bias", (3 * d,)),
                                           ("in_proj_weight", (3 * d, d))))}
    pairs = pair_tree(ours, theirs)
    assert [(a.name, b.name) for a, b in pairs] == [("ln", "enc.ln_1"),
                                                    ("attn", "enc.self_attention")]
    assert dict(pairs[1][1].tensors)["out_proj.weight"] == (d, d)


# ---- --rename ---------------------------------------------------------------------------------
TWINS = """
net twins {
  input image: 4x8x8
  image -> concat[conv(8, 3, pad=1) as left -> relu, conv(8, 3, pad=1) as right -> tanh]
        -> conv(4, 1) as mix
}
"""


class Twins(nn.Module):
    """Two branches of equal shapes whose names say nothing of which is which: ``b`` is the
    left (ReLU) branch. Only a rename rule can tell."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(4, 8, 3, padding=1)
        self.b = nn.Conv2d(4, 8, 3, padding=1)
        self.mix = nn.Conv2d(16, 4, 1)

    def forward(self, x):
        return self.mix(torch.cat([torch.relu(self.b(x)), torch.tanh(self.a(x))], 1))


def wrapped(state: dict) -> dict:
    """The keys as DataParallel around a detector's ``backbone`` saves them."""
    return {f"module.backbone.{k}": v for k, v in state.items()}


RULES = ["--rename", r"^module\.=", "--rename", r"backbone\.=", "--rename", r"^b\.=left.",
         "--rename", r"^a\.=right."]


def test_rename_rules_decide_what_structure_cannot(tmp_path, cli):
    spec = write(tmp_path, "twins", TWINS)
    ref = Twins()
    randomise(ref, 4)
    torch.save(wrapped(ref.state_dict()), tmp_path / "ref.pth")
    x = torch.randn(2, 4, 8, 8)
    plain = tmp_path / "plain.safetensors"
    assert cli("weights", "import", spec, tmp_path / "ref.pth", "-o", plain).code == 0
    with pytest.raises(AssertionError):  # by structure alone, a pairs with left: wrong
        same_outputs(spec, load_weights(load(spec), plain), ref, x)
    out = tmp_path / "w.safetensors"
    result = cli("weights", "import", spec, tmp_path / "ref.pth", "-o", out, "--show", *RULES)
    assert result.code == 0, result.err
    same_outputs(spec, load_weights(load(spec), out), ref, x)
    rows = {line.split()[0]: line for line in result.out.splitlines()}
    assert rows["left.weight"].split()[1] == "module.backbone.b.weight"
    assert rows["left.weight"].endswith("renamed by rule 1, 2, 3")
    assert rows["mix.bias"].endswith("renamed by rule 1, 2")


def test_rename_on_the_weights_road_and_in_the_api(tmp_path, cli):
    spec = write(tmp_path, "twins", TWINS)
    ref = Twins()
    randomise(ref, 5)
    torch.save(wrapped(ref.state_dict()), tmp_path / "ref.pth")
    onnx_out = tmp_path / "m.onnx"
    result = cli("compile", spec, "-o", onnx_out, *RULES[:4], "--weights", tmp_path / "ref.pth",
                 *RULES[4:], "--rename", "nothing=here")
    assert result.code == 0, result.err
    assert "warning: --rename rule 5 (nothing=here) matched no key of the file" in result.err
    import onnx

    inits = {i.name: onnx.numpy_helper.to_array(i) for i in onnx.load(onnx_out).graph.initializer}
    np.testing.assert_array_equal(inits["left.weight"], ref.b.weight.detach().numpy())
    rules = [r for r in RULES if r != "--rename"]
    arrays = netc.load(spec).import_weights(tmp_path / "ref.pth", rename=rules)
    same_outputs(spec, arrays, ref, torch.randn(2, 4, 8, 8))
    same_outputs(spec, map_by_structure(load(spec), wrapped(ref.state_dict()), rename=rules), ref,
                 torch.randn(1, 4, 8, 8))
    with pytest.raises(netc.NetcError, match=r"rename: 'a\(=b': missing \)"):
        netc.load(spec).import_weights(tmp_path / "ref.pth", rename=["a(=b"])
    with pytest.raises(netc.NetcError, match="rename is a rule or a list of rules; got 5"):
        netc.load(spec).import_weights(tmp_path / "ref.pth", rename=5)  # was a TypeError


def test_a_netc_file_saved_under_a_wrapper_is_taken_by_name_after_a_rename(tmp_path):
    graph = load(write(tmp_path, "twins", TWINS))
    state = build_module(graph, seed=3).state_dict()
    torch.save(wrapped(state), tmp_path / "dp.pth")
    mapped = import_weights(graph, tmp_path / "dp.pth", tmp_path / "w.safetensors",
                            rename=[r"^module\.backbone\.="])
    assert mapped.by_name
    for key, value in state.items():
        np.testing.assert_array_equal(mapped.tensors[key], value.numpy())


@pytest.mark.parametrize("rule, message", [
    ("a(=b", "missing ), unterminated subpattern"),
    (r"conv=\2", "invalid group reference 2"),
    (r"(?P<x>conv)=\g<y>", "unknown group name 'y'"),  # IndexError, not re.error
    ("no-equals-sign", "expected REGEX=REPLACEMENT")])
def test_a_bad_rule_is_argparses_one_line_error(rule, message, tmp_path, capsys):
    spec = write(tmp_path, "twins", TWINS)
    for argv in (["weights", "import", spec, "x.pth", "-o", "w.safetensors"],
                 ["compile", spec, "--weights", "x.pth"]):
        with pytest.raises(SystemExit) as exit_:
            main([*argv, "--rename", rule])
        err = capsys.readouterr().err.strip().splitlines()
        assert exit_.value.code == 2
        assert err[-1].startswith(f"netc {argv[0]}") and "argument --rename" in err[-1], err
        assert message in err[-1]


def test_two_keys_renamed_to_one_is_refused_in_one_line(tmp_path, cli):
    spec = write(tmp_path, "twins", TWINS)
    torch.save(Twins().state_dict(), tmp_path / "ref.pth")
    out = tmp_path / "w.safetensors"
    result = cli("weights", "import", spec, tmp_path / "ref.pth", "-o", out,
                 "--rename", r"^[ab]\.=left.")
    assert result.code == 1
    assert result.err.strip() == ("netc: error: --rename: a.weight and b.weight are both renamed "
                                  "to left.weight")
    assert not out.exists()


# ---- what a failure says ----------------------------------------------------------------------
def test_a_misfit_names_the_spec_layer_and_the_nearest_file_layers(tmp_path):
    graph = load(write(tmp_path, "convnextish", CONVNEXTISH))
    state = {k: v.numpy() for k, v in ConvNeXtish().state_dict().items()}
    state["stages.1.block.4.weight"] = np.zeros((16, 48), np.float32)  # 48: not 4 x 16
    with pytest.raises(UserError) as err:
        map_by_structure(graph, state)
    text = str(err.value)
    assert "layer 9 of 11 (in graph order) has no partner" in text, text
    assert "spec: block2.conv3 (conv): weight 16x64x1x1, bias 16" in text
    assert "nearest in the file: stages.0.block.4: weight 16x64, bias 16" in text
    assert "Traceback" not in text


# ---- torchvision's layouts of the zoo's ConvNeXt-T and ViT-B/16 --------------------------------
# State dicts built by hand from shared/reference/torchvision/NAME.state_dict.json (torchvision's
# keys and shapes, random values), checked against hand-written torchvision modules
# (tests/torchvision_layout.py) whose state dicts have exactly those keys.
INPUTS = {"convnext_tiny": (3, 64, 64), "vit_b_16": (3, 224, 224)}  # ConvNeXt takes any size


@pytest.mark.parametrize("name, params", [("convnext_tiny", 28_589_128),
                                          ("vit_b_16", 86_567_656)])
def test_the_hand_written_references_have_torchvisions_keys_shapes_and_count(name, params):
    ref = reference_module(name)()
    assert [(k, tuple(v.shape)) for k, v in ref.state_dict().items()] == \
        reference_layout(name)
    assert sum(p.numel() for p in ref.parameters()) == params


def zoo_net(name: str):
    """The zoo's ``name`` at the test's input size; skipped while the zoo lacks it."""
    if name not in zoo_index():
        pytest.skip(f"{name} is not in the zoo on this branch (convnext.net comes from the ops21 "
                    "branch, vit.net from tokens21)")
    return load(name, input_shapes={None: INPUTS[name]})


@pytest.mark.parametrize("name", sorted(INPUTS))
def test_a_torchvision_layout_state_dict_imports_with_no_rename_rule(name, tmp_path):
    graph = zoo_net(name)
    state = random_state(name, seed=7)
    mapped = mapped_in_memory(graph, state)
    check_lands_where_torchvision_uses_it(name, graph, state, mapped)
    ref = reference_module(name)()
    ref.load_state_dict(state)
    x = torch.randn(1, *INPUTS[name], generator=torch.Generator().manual_seed(0))
    same_outputs(graph, mapped.tensors, ref, x)


def test_convnext_tiny_from_a_pth_with_wrapped_keys_imports_with_rename(tmp_path, cli):
    graph = zoo_net("convnext_tiny")
    state = random_state("convnext_tiny", seed=8)
    torch.save({f"module.backbone.{k}": v for k, v in state.items()}, tmp_path / "ckpt.pth")
    out = tmp_path / "w.safetensors"
    result = cli("weights", "import", "convnext_tiny", tmp_path / "ckpt.pth", "-o", out,
                 "--show", "--rename", r"^module\.=", "--rename", r"^backbone\.=")
    assert result.code == 0, result.err
    assert "--rename" not in result.err  # both rules matched
    mapped = load_file(str(out))
    want = mapped_in_memory(graph, state).tensors
    assert mapped.keys() == want.keys()
    for key, value in want.items():
        np.testing.assert_array_equal(mapped[key], value, err_msg=key)
    row = next(line for line in result.out.splitlines()
               if "module.backbone.features.1.0.layer_scale" in line)
    assert row.split()[2:4] == ["96x1x1", "96"], row
    assert row.endswith("squeezed; renamed by rule 1, 2"), row


def test_vit_b_16_with_timms_names_needs_and_takes_rename_rules():
    """timm names ViT's tensors its own way (``cls_token`` and ``pos_embed`` both owned by the
    net, ``attn.qkv`` a Linear): structure alone cannot pair them; the rules a user writes can."""
    graph = zoo_net("vit_b_16")
    state = random_state("vit_b_16", seed=9)
    timm = timm_vit_keys(state)
    assert "blocks.3.attn.qkv.weight" in timm and "pos_embed" in timm
    with pytest.raises(UserError, match="weights do not fit vit_b_16"):
        mapped_in_memory(graph, timm)
    mapped = mapped_in_memory(graph, timm, rename=TIMM_TO_TORCHVISION)
    want = mapped_in_memory(graph, state).tensors
    assert mapped.tensors.keys() == want.keys()
    for key, value in want.items():
        np.testing.assert_array_equal(mapped.tensors[key], value, err_msg=key)


def test_rename_rules_rename_a_caffe_models_layers(tmp_path):
    from netc.compiler.importers.caffe.caffemodel import CaffeLayer, CaffeModel, write_caffemodel

    spec = write(tmp_path, "tiny", "net tiny {\n  input image: 1x8x8\n  image -> conv(4, 3) "
                                   "as conv1 -> relu -> flatten -> fc(10) as fc1\n}\n")
    rng = np.random.default_rng(0)
    conv, fc = ([rng.standard_normal(s).astype(np.float32) for s in shapes]
                for shapes in (((4, 1, 3, 3), (4,)), ((10, 144), (10,))))
    write_caffemodel(tmp_path / "tiny.caffemodel", CaffeModel("tiny", [
        CaffeLayer("net/conv1", "Convolution", [], [], conv, (1, 1)),
        CaffeLayer("net/fc1", "InnerProduct", [], [], fc, None)]))
    mapped = import_weights(load(spec), tmp_path / "tiny.caffemodel", tmp_path / "w.safetensors",
                            rename=["^net/="])
    assert mapped.by_name and mapped.pairs == [("conv1", "conv1"), ("fc1", "fc1")]
    np.testing.assert_array_equal(mapped.tensors["fc1.weight"], fc[0])
    assert [r.file_key for r in mapped.rows][:2] == ["net/conv1.weight", "net/conv1.bias"]
    assert mapped.rows[0].conversions == ("renamed by rule 1",)


def test_a_module_of_two_layers_with_one_layers_shapes_is_still_two_layers():
    """A bias-free conv and a PReLU kept in one module have a biased conv's shapes (a weight
    and a C-vector) but not its names: the module is not taken whole as the spec's biased
    conv (its PReLU slopes as the bias), so this file, which has one PReLU more than the
    spec, does not fit."""
    ours = [Layer("conv", (("weight", (8, 4, 3, 3)), ("bias", (8,))), "conv"),
            Layer("act", (("weight", (8,)),), "prelu")]
    theirs = {"a.0.0": Layer("a.0.0", (("weight", (8, 4, 3, 3)),)),
              "a.0.1": Layer("a.0.1", (("weight", (8,)),)),
              "a.1": Layer("a.1", (("weight", (8,)),))}
    with pytest.raises(PairingError):
        pair_tree(ours, theirs)
    theirs["a.0.0"] = Layer("a.0.0", (("weight", (8, 4, 3, 3)), ("bias", (8,))))
    del theirs["a.0.1"]
    assert [(a.name, b.name) for a, b in pair_tree(ours, theirs)] == [("conv", "a.0.0"),
                                                                     ("act", "a.1")]


def test_vit_b_16s_torchvision_file_runs_on_the_weights_road(tmp_path):
    """The zoo's ViT shares most of torchvision's names (not ``class_token`` or
    ``pos_embedding``, whose tensors the spec calls ``weight``): a --weights road does not
    stop at the name-by-name check but pairs the file."""
    graph = zoo_net("vit_b_16")
    state = random_state("vit_b_16", seed=10)
    torch.save(state, tmp_path / "vit.pth")
    lines = []
    weights = load_weights(graph, tmp_path / "vit.pth", say=lines.append)
    assert "paired with vit_b_16's by structure" in lines[0], lines
    np.testing.assert_array_equal(weights["class_token.weight"], state["class_token"].numpy())
    np.testing.assert_array_equal(
        weights["encoder.layers.encoder_layer_4.self_attention.out_proj.weight"],
        state["encoder.layers.encoder_layer_4.self_attention.out_proj.weight"].numpy())


def test_every_command_with_a_weights_flag_takes_rename():
    """``--rename`` is declared with ``--weights``/``--init`` (options.add_weights), so no
    command has one without the other; ``weights import`` declares it itself."""
    import argparse

    from netc.runtime.cli import build_parser

    def walk(parser, path=()):  # (path, that parser's flags) of every (sub)command
        yield path, {s for a in parser._actions for s in a.option_strings}
        for a in parser._actions:
            if isinstance(a, argparse._SubParsersAction):
                for name, sub in a.choices.items():
                    yield from walk(sub, (*path, name))

    found = dict(walk(build_parser()))
    with_weights = [p for p, flags in found.items() if flags & {"--weights", "--init"}]
    assert len(with_weights) >= 10
    assert all("--rename" in found[p] for p in with_weights)
    assert "--rename" in found[("weights", "import")]


def test_convnext_with_1x1_convs_for_its_linears_pairs_with_the_linear_op():
    """Some ConvNeXt code (timm's ``conv_mlp``) keeps the block's two Linears as 1x1 convs:
    they pair with the zoo's ``linear`` layers, reshaped, and say so."""
    graph = zoo_net("convnext_tiny")
    state = random_state("convnext_tiny", seed=11)
    convs = {k: v[:, :, None, None] if re.search(r"block\.[35]\.weight$", k) else v
             for k, v in state.items()}
    mapped = mapped_in_memory(graph, convs)
    want = mapped_in_memory(graph, state).tensors
    for key, value in want.items():
        np.testing.assert_array_equal(mapped.tensors[key], value, err_msg=key)
    row = next(r for r in mapped.rows if r.file_key == "features.5.8.block.5.weight")
    assert (row.file_shape, row.shape) == ((384, 1536, 1, 1), (384, 1536))
    assert row.conversions == ("reshape 1x1 (conv as Linear)",)
