"""EfficientNetV2-S and RegNetY-400MF (issue 21) are torchvision's nets, tensor for tensor.

torchvision cannot be installed here; ``shared/reference/torchvision/NAME.state_dict.json``
records what ``torchvision.models.NAME(weights=None).state_dict()`` holds (every key, shape and
dtype) and the parameter count. The tests below check, for each new net:

- the parameter count the JSON records is test_zoo_modern's row, which holds the spec to it and
  its MACs (multiply-accumulates of the conv and fc layers, SE's 1x1 convs included, at the
  spec's input size) to torchvision's model-table GFLOPS, which count multiply-adds too;
- netc's state dict, renamed by the hand-written maps below (never by netc's own pairing), has
  the JSON's keys and shapes, every one;
- a state dict in torchvision's layout, random values of the JSON's shapes, imports with no
  rename rule and every tensor lands where the hand-written map says;
- the torch module and the ONNX file agree in ONNX Runtime at opsets 13 and 18;
- what the paper states as a rule is what the spec computes: RegNet's widths from
  (w_0, w_a, w_m, d), EfficientNetV2's stochastic-depth schedule (and skipping in training).
"""

from __future__ import annotations

import json
import math
import re
from functools import lru_cache
from itertools import groupby
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from netc.compiler.analyses.receptive import fields
from netc.compiler.analyses.summary import receptive_fields
from netc.compiler.frontend.loader import load
from netc.compiler.ir import Graph
from netc.compiler.lower_onnx.model import lower
from netc.compiler.lower_torch.module import build_module
from netc.runtime.weights import import_weights, read_tensors
from tests.test_onnx_ops import run_ort
from tests.test_onnx_zoo import sane_weights
from tests.test_zoo_modern import MODERN

pytestmark = pytest.mark.usefixtures("one_torch_thread")

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "torchvision"
COUNTER = "num_batches_tracked"

NEW = ["efficientnet_v2_s", "regnet_y_400mf"]


@lru_cache(maxsize=None)
def reference(name: str) -> dict:
    return json.loads((REFERENCE / f"{name}.state_dict.json").read_text())


def reference_shapes(name: str) -> dict[str, tuple[int, ...]]:
    return {key: tuple(shape) for key, shape, _ in reference(name)["state_dict"]}


@lru_cache(maxsize=None)
def zoo_graph(name: str, shape: tuple[int, ...] | None = None) -> Graph:
    return load(name, {}, input_shapes={None: shape} if shape else None)


# ---- what the papers state as rules ---------------------------------------------------------

def regnet_stages(depth=16, w_0=48, w_a=27.89, w_m=2.09, group_width=8, bottleneck=1.0):
    """torchvision's ``BlockParams.from_init_params`` (regnet.py), in numpy: each block's width
    u_j = w_0 + w_a·j quantised to w_0·w_m^s and to a multiple of 8; runs of equal widths are
    stages; widths then made divisible by the group width. Returns [(width, depth)]."""
    u = np.arange(depth) * w_a + w_0
    s = np.round(np.log(u / w_0) / math.log(w_m))
    widths = (np.round(w_0 * np.power(w_m, s) / 8) * 8).astype(int).tolist()
    stages = [(w, len(list(run))) for w, run in groupby(widths)]
    out = []
    for w, d in stages:  # _adjust_widths_groups_compatibilty
        w_bot = int(w * bottleneck)
        g = min(group_width, w_bot)
        out.append((int(round(w_bot / g) * g / bottleneck), d))
    return out


# torchvision's efficientnet_v2_s configuration (efficientnet.py, _efficientnet_conf):
# (fused, expansion, kernel, stride, in, out, layers).
V2_S = [(True, 1, 3, 1, 24, 24, 2), (True, 4, 3, 2, 24, 48, 4), (True, 4, 3, 2, 48, 64, 4),
        (False, 4, 3, 2, 64, 128, 6), (False, 6, 3, 1, 128, 160, 9),
        (False, 6, 3, 2, 160, 256, 15)]


# ---- torchvision's names, by hand -----------------------------------------------------------

def _stage_and_index(k: int, depths) -> tuple[int, int]:
    """Block k (from 0, over the whole net) is block j of stage s (stages from 1)."""
    for s, d in enumerate(depths, start=1):
        if k < d:
            return s, k
        k -= d
    raise AssertionError(f"block {k} past the last stage")


REGNET_PARTS = {"conv1": "f.a.0", "bn1": "f.a.1", "conv2": "f.b.0", "bn2": "f.b.1",
                "se1.fc1": "f.se.fc1", "se1.fc2": "f.se.fc2", "conv3": "f.c.0", "bn3": "f.c.1",
                "shortcut.conv1": "proj.0", "shortcut.bn1": "proj.1"}


def regnet_layer(layer: str) -> str:
    """``y_block5.se1.fc1`` -> ``trunk_output.block3.block3-0.f.se.fc1``."""
    fixed = {"stem.conv1": "stem.0", "stem.bn1": "stem.1", "fc": "fc"}
    if layer in fixed:
        return fixed[layer]
    k, part = re.fullmatch(r"y_block(\d+)\.(.+)", layer).groups()
    s, j = _stage_and_index(int(k) - 1, [d for _, d in regnet_stages()])
    return f"trunk_output.block{s}.block{s}-{j}.{REGNET_PARTS[part]}"


def efficientnet_v2_layer(layer: str) -> str:
    """``mbconv3.se1.fc1`` -> ``features.4.2.block.2.fc1``: conv i / bn i of a block are
    ``block.(i-1).0`` / ``.1``, but MBConv's projection comes after its SE (``block.2``)."""
    fixed = {"stem.conv1": "features.0.0", "stem.bn1": "features.0.1",
             "head.conv1": "features.7.0", "head.bn1": "features.7.1",
             "classifier": "classifier.1"}
    if layer in fixed:
        return fixed[layer]
    kind, k, part = re.fullmatch(r"(fused_mbconv|mbconv)(\d+)\.(.+)", layer).groups()
    fused_blocks = sum(n for fused, *_, n in V2_S if fused)
    index = int(k) - 1 + (0 if kind == "fused_mbconv" else fused_blocks)
    s, j = _stage_and_index(index, [n for *_, n in V2_S])
    if part.startswith("se1."):
        return f"features.{s}.{j}.block.2.{part.removeprefix('se1.')}"
    what, i = re.fullmatch(r"(conv|bn)(\d)", part).groups()
    i = int(i) - 1 if kind == "fused_mbconv" or i != "3" else 3
    return f"features.{s}.{j}.block.{i}.{0 if what == 'conv' else 1}"


TORCHVISION_LAYER = {"regnet_y_400mf": regnet_layer, "efficientnet_v2_s": efficientnet_v2_layer}


def torchvision_key(name: str, key: str) -> str:
    layer, _, tensor = key.rpartition(".")
    return f"{TORCHVISION_LAYER[name](layer)}.{tensor}"


# ---- counts ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", [*NEW, "mobilenet_v3_large"])
def test_the_recorded_count_is_the_zoo_tables(name):
    """torchvision's count as the JSON records it is the row of test_zoo_modern's MODERN, the
    one table of published numbers, which holds the spec to it and to the model table's MACs
    (half a unit of its last digit)."""
    assert reference(name)["parameters"] == MODERN[name][0].value


def test_input_sizes_are_torchvisions():
    """efficientnet_v2_s is evaluated at 384x384 (torchvision's transforms), RegNet at 224."""
    assert zoo_graph("efficientnet_v2_s").inputs["image"].shape == (3, 384, 384)
    assert zoo_graph("regnet_y_400mf").inputs["image"].shape == (3, 224, 224)


# ---- every tensor where torchvision has it -------------------------------------------------

@pytest.mark.parametrize("name", NEW)
def test_state_dict_keys_and_shapes_are_torchvisions(name):
    ours = build_module(zoo_graph(name), seed=0).state_dict()
    renamed = {torchvision_key(name, k): tuple(v.shape) for k, v in ours.items()}
    want = reference_shapes(name)
    assert len(renamed) == len(ours) == len(want)
    assert sorted(set(renamed) ^ set(want)) == []
    wrong = {k: (renamed[k], want[k]) for k in want if renamed[k] != want[k]}
    assert wrong == {}


def torchvision_state(name: str) -> dict[str, torch.Tensor]:
    """Random values of the JSON's shapes under its keys, counters as int64, as a file has."""
    g = torch.Generator().manual_seed(21)
    return {key: torch.zeros(shape, dtype=torch.int64) if dtype == "int64"
            else torch.randn(shape, generator=g)
            for key, shape, dtype in reference(name)["state_dict"]}


@pytest.mark.parametrize("name, fmt", [("regnet_y_400mf", "pth"),
                                       ("regnet_y_400mf", "safetensors"),
                                       ("efficientnet_v2_s", "pth")])
def test_a_torchvision_layout_state_dict_imports_without_rename_rules(name, fmt, tmp_path):
    """netc's structural pairing (runtime/weights) places every tensor; a .safetensors file
    stores its keys sorted, so file order cannot be what pairs them."""
    state = torchvision_state(name)
    path = tmp_path / f"tv.{fmt}"
    if fmt == "pth":
        torch.save(state, path)
    else:
        save_file(state, str(path))
    graph = zoo_graph(name)
    mapped = import_weights(graph, path, tmp_path / "w.safetensors")
    assert not mapped.by_name and not mapped.skipped
    ours = [k for k in build_module(graph, seed=0).state_dict() if not k.endswith(COUNTER)]
    assert sorted(mapped.tensors) == sorted(ours)
    for key, value in mapped.tensors.items():
        assert np.array_equal(value, state[torchvision_key(name, key)].numpy()), key


def test_weights_import_command_takes_the_torchvision_file(tmp_path, cli):
    path = tmp_path / "regnet_y_400mf.pth"
    state = torchvision_state("regnet_y_400mf")
    torch.save(state, path)
    out = tmp_path / "w.safetensors"
    r = cli("weights", "import", "regnet_y_400mf", path, "-o", out)
    assert r.code == 0, r.err
    tensors = read_tensors(out)
    key = "y_block2.shortcut.conv1.weight"
    assert np.array_equal(tensors[key], state[torchvision_key("regnet_y_400mf", key)].numpy())
    assert len(tensors) == sum(not k.endswith(COUNTER) for k in state)


# ---- ONNX Runtime against torch ----------------------------------------------------------------

# The input for the differential test: RegNet at its own 224x224; EfficientNetV2-S (8.4 G MACs
# at 384x384) at 64x64, where its five stride-2 stages still leave 2x2 maps.
ORT_INPUT = {"efficientnet_v2_s": (3, 64, 64), "regnet_y_400mf": None}


@pytest.mark.parametrize("name", NEW)
def test_onnx_runtime_agrees_with_torch_at_opsets_13_and_18(name):
    graph = zoo_graph(name, ORT_INPUT[name])
    weights = sane_weights(graph)
    x = np.random.default_rng(3).standard_normal((2, *graph.inputs["image"].shape))
    x = x.astype(np.float32)
    with torch.no_grad():
        ref = build_module(graph, weights).eval()(torch.from_numpy(x)).numpy()
    top = float(np.abs(ref).max())
    assert np.isfinite(ref).all() and top > 0
    for opset in (13, 18):
        model = lower(graph, weights, opset=opset)
        assert model.opset_import[0].version == opset
        (out,) = run_ort(model, x)
        err = float(np.abs(out - ref).max())
        assert out.shape == ref.shape and err <= 1e-5 * top, (opset, err, top)


# ---- receptive fields past squeeze-and-excitation ---------------------------------------------

@pytest.mark.parametrize("name", NEW)
def test_a_field_past_an_se_gate_keeps_the_maps_spacing(name):
    """An SE gate (Cx1x1, after a global pool) widens the field of the map it scales but not
    its spacing: the jump and start are the map's (a top-activations crop past the first gate
    once jumped a whole image per unit), and the summary's column is the same walk's height."""
    graph = zoo_graph(name)
    boxes, column = fields(graph), receptive_fields(graph)
    gated = [n for n in graph if n.op == "mul" and len(n.shape) == 3]
    assert len(gated) > 10
    for node in gated:
        x = next(i for i in node.inputs if graph[i].shape == node.shape)
        f = boxes[node.name]
        assert (f.jump, f.start) == (boxes[x].jump, boxes[x].start), node.name
        assert f.size[0] >= boxes[x].size[0] and column[node.name] == (f.size[0], f.jump[0])


# ---- RegNet: the rule and the block ------------------------------------------------------------

def test_regnet_y_400mf_stages_are_what_the_rule_computes():
    """The spec's table (48x1, 104x3, 208x6, 440x6) read back off the graph: block widths,
    a stride-2 grouped 3x3 starting each stage, 8 channels a group, SE to a quarter of the
    block's input width."""
    graph = zoo_graph("regnet_y_400mf")
    assert regnet_stages() == [(48, 1), (104, 3), (208, 6), (440, 6)]
    blocks = sorted({int(m[1]) for n in graph if (m := re.match(r"y_block(\d+)\.", n.name))})
    assert blocks == list(range(1, 17))
    widths, starts = [], []
    width_in = 32  # the stem
    for k in blocks:
        conv2, fc1 = graph[f"y_block{k}.conv2"], graph[f"y_block{k}.se1.fc1"]
        w = conv2.shape[0]
        widths.append(w)
        starts.append(conv2.attrs["stride"] == (2, 2))
        assert conv2.attrs["groups"] == w // 8 and fc1.shape[0] == round(0.25 * width_in)
        width_in = w
    assert [(w, len(list(run))) for w, run in groupby(widths)] == regnet_stages()
    assert starts == [True, True, False, False, True] + [False] * 5 + [True] + [False] * 5


def test_batch_norm_settings_are_torchvisions():
    """EfficientNetV2's norm_layer is BatchNorm2d(eps=1e-3), momentum left at 0.1; RegNet's
    is BatchNorm2d(eps=1e-5, momentum=0.1)."""
    for name, eps in (("efficientnet_v2_s", 1e-3), ("regnet_y_400mf", 1e-5)):
        bns = [n for n in zoo_graph(name) if n.op == "bn"]
        assert bns and {(n.attrs.eps, n.attrs.momentum) for n in bns} == {(eps, 0.1)}, name


# ---- EfficientNetV2: stochastic depth ----------------------------------------------------------

def test_efficientnet_v2_stochastic_depth_is_torchvisions_schedule():
    """torchvision: block k of 40 (from 0, every block counted) drops with 0.2·k/40, per
    sample; only blocks with stride 1 and the width kept have a residual (and so a drop)."""
    graph = zoo_graph("efficientnet_v2_s")
    index = {}  # residual node -> its block's index among the 40
    fused = sum(n for f, *_, n in V2_S if f)
    for n in graph:
        m = re.match(r"(fused_mbconv|mbconv)(\d+)\.", n.name)
        if m and n.op == "residual":
            index[n.name] = int(m[2]) - 1 + (0 if m[1] == "fused_mbconv" else fused)
    blocks = [(stride if i == 0 else 1, c_in if i == 0 else c_out, c_out)
              for _, _, _, stride, c_in, c_out, layers in V2_S for i in range(layers)]
    want = [k for k, (stride, c_in, c_out) in enumerate(blocks) if stride == 1 and c_in == c_out]
    assert len(blocks) == 40 and sorted(index.values()) == want and len(want) == 35
    for node, k in index.items():
        attrs = graph[node].attrs
        assert attrs.mode == "row" and attrs.survival == pytest.approx(1 - 0.2 * k / 40), node


def test_efficientnet_v2_skips_bodies_per_sample_in_training_only():
    """In training each example keeps a body with its survival p (scaled by 1/p) or is its
    shortcut; in eval every block is the plain sum."""
    graph = zoo_graph("efficientnet_v2_s", (3, 32, 32))
    blocks = [n for n in graph if n.op == "residual"]
    taps = [t for n in blocks for t in (n.name, *n.inputs)]
    module = build_module(graph, sane_weights(graph))  # seeded weights zero each body's last bn
    torch.manual_seed(0)
    x = torch.randn(8, 3, 32, 32)
    kept = dropped = 0
    with torch.no_grad():
        feats = module.train()(x, taps=taps)
        for node in blocks:
            (body, short), out = (feats[i] for i in node.inputs), feats[node.name]
            p = node.attrs["survival"]
            for row in range(len(x)):
                tol = 1e-5 * float(out[row].abs().max()) + 1e-6
                is_kept = float((out[row] - short[row] - body[row] / p).abs().max()) <= tol
                is_dropped = torch.equal(out[row], short[row])
                assert is_kept != is_dropped, (node.name, row)
                kept, dropped = kept + is_kept, dropped + is_dropped
        assert kept > dropped > 0
        feats = module.eval()(x[:2], taps=taps)
        for node in blocks:
            body, short = (feats[i] for i in node.inputs)
            torch.testing.assert_close(feats[node.name], body + short, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", ["efficientnet_b0", "efficientnet_v2_s"])
def test_efficientnet_sd_mode_batch_does_not_compute_a_dropped_body(name):
    """sd_mode=batch: one draw per block per step (Huang et al.), and a body whose gate closes is
    not run at all, so skipping saves its time as for the CIFAR ResNets."""
    graph = load(name, {"sd_mode": "batch"}, input_shapes={None: (3, 32, 32)})
    module = build_module(graph, seed=0).train()
    gated = [n for n, _ in module._gates.residuals]
    assert gated and all(graph[n].attrs.mode == "batch" for n in gated)
    u = torch.zeros(module._gates.count, dtype=torch.float64)  # u < p: every body kept ...
    u[len(gated) - 1] = 0.999  # ... but the last gated block's
    module._gates.uniforms = lambda: u
    convs = [n.name for n in graph if n.op == "conv"]
    ran = []
    hooks = [module.get_submodule(c).register_forward_hook(
        lambda m, i, o, name=c: ran.append(name)) for c in convs]
    module(torch.randn(2, 3, 32, 32))
    for h in hooks:
        h.remove()
    block = gated[-1].rsplit(".", 1)[0] + "."  # the dropped block's layers: its body only
    skipped = [c for c in convs if c.startswith(block)]
    assert skipped and not set(skipped) & set(ran) and len(ran) == len(convs) - len(skipped)


def test_efficientnet_v2_blocks_follow_torchvisions_configuration():
    """Fused-MBConv in stages 1-3 (no SE; with expansion 1 a single kxk conv), MBConv with
    SE to a quarter of the block's input width in stages 4-6; a 1x1 head to 1280."""
    graph = zoo_graph("efficientnet_v2_s")
    assert not any(n.name.startswith("fused_mbconv") and n.op == "mul" for n in graph)
    k = {"fused_mbconv": 0, "mbconv": 0}
    for fused, t, kernel, stride, c_in, c_out, layers in V2_S:
        kind = "fused_mbconv" if fused else "mbconv"
        for i in range(layers):
            k[kind] += 1
            block = f"{kind}{k[kind]}"
            first = graph[f"{block}.conv1"]
            assert first.attrs["kernel"] == ((kernel, kernel) if fused else (1, 1)), block
            if not fused:
                squeeze = graph[f"{block}.se1.fc1"].shape[0]
                assert squeeze == (c_in if i == 0 else c_out) // 4, block
            if fused and t == 1:
                assert f"{block}.conv2" not in graph.nodes and first.shape[0] == c_out
            last = graph[f"{block}.conv{1 if fused and t == 1 else 2 if fused else 3}"]
            assert last.shape[0] == c_out, block
    assert k == {"fused_mbconv": 10, "mbconv": 30}
    assert graph["head.conv1"].shape == (1280, 12, 12)
