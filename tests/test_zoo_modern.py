"""The zoo's nets of the last ten years reproduce torchvision's counts and their papers' numbers.

Each row of :data:`MODERN` is a number from torchvision (``weights=None``, parameters only, no
buffers; MACs as torchvision's model table gives GFLOPS) or from a paper, with where it comes
from, as in :mod:`tests.test_zoo`. Nets with auxiliary classifiers declare them as training
outputs: their parameters are counted apart (``training_params``) and must add up to
torchvision's count with the heads.

ONNX Runtime must agree with the torch module at batch 3 and 1. Most nets run on a small input
(``--input``: the spec's own shape rules carry every net to 1x1 before its classifier), a few
big ones at their own size; the rest with ``NETC_FULL_ZOO=1``.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
import torch

from netc.compiler.ir import Graph, verify
from netc.compiler.frontend.loader import load, zoo_index
from netc.compiler.lower_onnx.model import lower
from netc.compiler.lower_torch.module import build_module
from netc.compiler.analyses.summary import summarize
from tests.test_onnx_ops import run_ort
from tests.test_onnx_zoo import assert_close, sane_weights
from tests.test_zoo import About, Exact

G, M = 1e9, 1e6

# name: (parameters, MACs, parameters of the training-only outputs); None where no source.
MODERN: dict[str, tuple] = {
    # torchvision: densenet121 7,978,856 (2.83 GFLOPS), densenet169 14,149,480 (3.36).
    "densenet121": (Exact(7_978_856), About(2.83 * G, 0.002), 0),
    "densenet169": (Exact(14_149_480), About(3.36 * G, 0.002), 0),
    "densenet": (Exact(7_978_856), About(2.83 * G, 0.002), 0),  # the family's base: 121
    # torchvision: resnext50_32x4d 25,028,904 (4.23), wide_resnet50_2 68,883,240 (11.40).
    "resnext50_32x4d": (Exact(25_028_904), About(4.23 * G, 0.002), 0),
    "wide_resnet50_2": (Exact(68_883_240), About(11.40 * G, 0.001), 0),
    # torchvision's resnet101/152 (v1.5: stride on the 3x3): 7.80 and 11.51 GFLOPS.
    "resnet101_v1_5": (Exact(44_549_160), About(7.80 * G, 0.001), 0),
    "resnet152_v1_5": (Exact(60_192_808), About(11.51 * G, 0.001), 0),
    # torchvision: squeezenet1_0 1,248,424 (0.82 GFLOPS), squeezenet1_1 1,235,496 (0.35).
    "squeezenet1_0": (Exact(1_248_424), About(0.82 * G, 0.005), 0),
    "squeezenet1_1": (Exact(1_235_496), About(0.35 * G, 0.005), 0),
    "squeezenet": (Exact(1_248_424), About(0.82 * G, 0.005), 0),
    # torchvision: inception_v3 23,834,568 without AuxLogits, 27,161,264 with (5.71 GFLOPS).
    "inception_v3": (Exact(23_834_568), About(5.71 * G, 0.001), 27_161_264 - 23_834_568),
    # torchvision googlenet: 6,624,904 without aux1/aux2, 13,004,888 with them (1.50 GFLOPS).
    "googlenet_tv": (Exact(6_624_904), About(1.50 * G, 0.003), 13_004_888 - 6_624_904),
    # Howard et al. Table 1/8: "4.2 million parameters, 569 million mult-adds".
    "mobilenet_v1": (About(4.2 * M, 0.01), About(569 * M, 0.001), 0),
    # Zagoruyko & Komodakis Table 1/4: WRN-28-10 has 36.5 M parameters.
    "wrn28_10": (About(36.5 * M, 0.001), None, 0),
    "wrn": (About(36.5 * M, 0.001), None, 0),
    # He et al. 2016 Table 2: 1.7 M (ResNet-164) and 10.2 M (ResNet-1001); see below for 1001.
    "preact_resnet164": (About(1.7 * M, 0.01), None, 0),
    "preact_resnet": (About(1.7 * M, 0.01), None, 0),
    "preact_resnet1001": (None, None, 0),
    # torchvision: mobilenet_v2 3,504,872 (0.30 GFLOPS), mobilenet_v3_large 5,483,032 (0.22),
    # mobilenet_v3_small 2,542,856 (0.06).
    "mobilenet_v2": (Exact(3_504_872), About(0.30 * G, 0.005), 0),
    "mobilenet_v3_large": (Exact(5_483_032), About(0.22 * G, 0.02), 0),
    "mobilenet_v3": (Exact(5_483_032), About(0.22 * G, 0.02), 0),  # the base: Large
    "mobilenet_v3_small": (Exact(2_542_856), About(0.06 * G, 0.06), 0),
    # torchvision efficientnet_b0 5,288,548; Tan & Le Table 2: 0.39 B FLOPS (mult-adds).
    "efficientnet_b0": (Exact(5_288_548), About(0.39 * G, 0.013), 0),
    "efficientnet": (Exact(5_288_548), About(0.39 * G, 0.013), 0),
    # torchvision efficientnet_v2_s 21,458,488 (8.37 GFLOPS at 384x384), regnet_y_400mf
    # 4,344,144 (0.40); the bases are these nets. Half a unit of the table's last digit.
    "efficientnet_v2_s": (Exact(21_458_488), About(8.37 * G, 0.005 / 8.37), 0),
    "efficientnet_v2": (Exact(21_458_488), About(8.37 * G, 0.005 / 8.37), 0),
    "regnet_y_400mf": (Exact(4_344_144), About(0.40 * G, 0.0125), 0),
    "regnet_y": (Exact(4_344_144), About(0.40 * G, 0.0125), 0),
    # torchvision shufflenet_v2_x1_0 2,278,604; Ma et al. Table 5: 146 M FLOPs at 1x.
    "shufflenet_v2_x1_0": (Exact(2_278_604), About(146 * M, 0.01), 0),
    "shufflenet_v2": (Exact(2_278_604), About(146 * M, 0.01), 0),
    # torchvision: convnext_tiny 28,589,128 (4.46 GFLOPS).
    "convnext_tiny": (Exact(28_589_128), About(4.46 * G, 0.002), 0),
    "convnext": (Exact(28_589_128), About(4.46 * G, 0.002), 0),  # the family's base: tiny
    # torchvision: vit_b_16 86,567,656 (17.56 GFLOPS = MACs: projections, Q·Kᵀ, A·V).
    "vit_b_16": (Exact(86_567_656), About(17.56 * G, 0.001), 0),
    "vit": (Exact(86_567_656), About(17.56 * G, 0.001), 0),  # the family's base: B/16
    # Ronneberger et al. give no count; the output size is checked below.
    "unet": (None, None, 0),
}


@lru_cache(maxsize=None)
def zoo_graph(name: str, input_shape: tuple[int, ...] | None = None, **overrides) -> Graph:
    return load(name, overrides, input_shapes={None: input_shape} if input_shape else None)


@pytest.mark.parametrize("name", sorted(MODERN))
def test_modern_net_checks_and_matches_its_numbers(name):
    graph = zoo_graph(name)
    verify(graph)
    s = summarize(graph)
    params, macs, training = MODERN[name]
    if params is not None:
        assert params.holds(s.params), f"{name}: {s.params:,} parameters, want {params}"
    if macs is not None:
        assert macs.holds(s.macs), f"{name}: {s.macs:,} MACs, want {macs}"
    assert s.training_params == training, f"{name}: {s.training_params:,} in training outputs"


def test_preact_resnet1001_is_the_papers_10_2_million_in_conv_and_fc_weights():
    """He et al. round ResNet-1001's weights to 10.2 M; batch norm's γ and β add 149,216."""
    s = summarize(zoo_graph("preact_resnet1001"))
    weights = sum(r.params for r in s.rows if r.op in ("conv", "fc"))
    assert About(10.2 * M, 0.003).holds(weights), weights
    assert s.params == weights + sum(r.params for r in s.rows if r.op == "bn")
    units = [n for n in zoo_graph("preact_resnet1001") if n.op == "residual"]
    assert len(units) == 3 * 111  # 9n + 2 = 1001 layers


def test_aliases_name_torchvisions_v1_5_resnets():
    for depth in (101, 152):
        v1, v15 = zoo_graph(f"resnet{depth}"), zoo_graph(f"resnet{depth}_v1_5")
        assert summarize(v1).params == summarize(v15).params
        stride = {n.name: n.attrs["stride"] for n in v15 if n.op == "conv"}
        assert stride["layer2.bottleneck_v15_1.conv2"] == (2, 2)  # on the 3x3
        assert stride["layer2.bottleneck_v15_1.conv1"] == (1, 1)


def test_densenet_width_grows_by_32_per_layer_and_transitions_halve_it():
    graph = zoo_graph("densenet121")
    widths = [graph.nodes[graph.resolve(f"denseblock{b}")].shape[0] for b in (1, 2, 3, 4)]
    assert widths == [64 + 6 * 32, 128 + 12 * 32, 256 + 24 * 32, 512 + 16 * 32]
    halves = [graph[f"transition{t}.conv"].shape[0] for t in (1, 2, 3)]
    assert halves == [w // 2 for w in widths[:3]]


def test_mobilenet_v1_depthwise_convs_have_one_group_per_channel():
    graph = zoo_graph("mobilenet_v1")
    dws = [n for n in graph if n.name.endswith(".dw")]
    assert len(dws) == 13
    for n in dws:
        assert n.attrs["groups"] == graph[n.inputs[0]].shape[0] == n.shape[0]
    assert graph["pool"].shape == (1024, 1, 1)
    half = summarize(load("mobilenet_v1", {"width": 0.5}))  # Table 6: 1.3 M, 149 M mult-adds
    assert About(1.3 * M, 0.03).holds(half.params) and About(149 * M, 0.01).holds(half.macs)


def test_unet_maps_572_to_2x388x388_as_in_figure_1():
    graph = zoo_graph("unet")
    assert graph.inputs["image"].shape == (1, 572, 572)
    assert graph[graph.outputs[0]].shape == (2, 388, 388)
    ups = [n for n in graph if n.op == "deconv"]
    assert [n.shape for n in ups] == [(512, 56, 56), (256, 104, 104), (128, 200, 200),
                                            (64, 392, 392)]
    joins = [n for n in graph if n.op == "concat"]
    assert all(n.attrs["fit"] == "crop" for n in joins) and len(joins) == 4
    # The contracting path's 64x568x568 is cut to the up-conv's 392x392 (Figure 1's top skip).
    top = graph["level1.concat1"]
    assert [graph[i].shape for i in top.inputs] == [(64, 568, 568), (64, 392, 392)]
    assert top.shape == (128, 392, 392)


def test_mobilenet_v3_se_gates_broadcast_over_the_map():
    graph = zoo_graph("mobilenet_v3_small")
    gates = [n for n in graph if n.op == "mul"]
    assert len(gates) == 9  # the SE column of Table 2
    for n in gates:
        x, gate = (graph[i].shape for i in n.inputs)
        assert gate == (x[0], 1, 1) and n.shape == x


def test_efficientnet_b0_stochastic_depth_is_torchvisions_schedule():
    """torchvision: block k of 16 (from 0, every block counted) drops with 0.2·k/16, per sample,
    and only blocks with a residual connection (stride 1, width kept) have it."""
    graph = zoo_graph("efficientnet_b0")
    blocks = sorted({int(re.match(r"mbconv(\d+)\.", n.name)[1]) for n in graph
                     if re.match(r"mbconv\d+\.", n.name)})
    assert blocks == list(range(1, 17))
    survival = {int(re.match(r"mbconv(\d+)\.", n.name)[1]) - 1: n.attrs.survival
                for n in graph if n.op == "residual"}
    modes = {n.attrs.mode for n in graph if n.op == "residual"}
    # torchvision's use_res_connect: every block but the first of its stage
    assert sorted(survival) == [2, 4, 6, 7, 9, 10, 12, 13, 14] and modes == {"row"}
    for k, p in survival.items():
        assert p == pytest.approx(1 - 0.2 * k / 16, abs=1e-12), k


def test_inception_v3_grids_follow_table_1():
    graph = zoo_graph("inception_v3")
    at = {m: graph.nodes[graph.resolve(m)].shape for m in
          ("Mixed_5b", "Mixed_5d", "Mixed_6a", "Mixed_6e", "Mixed_7a", "Mixed_7c")}
    assert at == {"Mixed_5b": (256, 35, 35), "Mixed_5d": (288, 35, 35),
                  "Mixed_6a": (768, 17, 17), "Mixed_6e": (768, 17, 17),
                  "Mixed_7a": (1280, 8, 8), "Mixed_7c": (2048, 8, 8)}


# ---- tables written once ---------------------------------------------------------------------

@pytest.mark.parametrize("file,table,block", [
    ("mobilenet.net", "mobilenet_v1_rows", "separable"),
    ("squeezenet.net", "fires_1_0", "fire"),
    ("densenet.net", None, "denselayer"),
    ("mobilenet.net", "mobilenet_v2_rows", "inverted_residual"),
    ("mobilenet.net", "mobilenet_v3_large_rows", "bneck"),
    ("efficientnet.net", "efficientnet_b0_rows", "mbconv"),
    ("efficientnet.net", "efficientnet_v2_s_rows", "fused_mbconv"),
    ("regnet.net", "regnet_y_400mf_rows", "y_block"),
    ("shufflenet.net", "shufflenet_v2_x1_0_rows", "shuffle_unit"),
])
def test_configuration_tables_appear_once(file, table, block):
    """The paper's table is one `let` (or net parameter) and the block is called in one place,
    not unrolled row by row."""
    text = (zoo_index()["densenet121"].parent / file).read_text()
    code = "\n".join(line.split("#")[0] for line in text.splitlines())
    if table:
        assert len(re.findall(rf"\blet {table}\b", code)) == 1
    calls = re.findall(rf"\b{block}\(", code)
    definitions = re.findall(rf"\bdef {block}\(", code)
    assert len(definitions) == 1 and len(calls) - len(definitions) <= 2, calls


# ---- training-only outputs --------------------------------------------------------------------

@pytest.mark.parametrize("name,aux", [
    ("googlenet_tv", ["aux2", "aux1"]),
    pytest.param("inception_v3", ["aux"], marks=pytest.mark.skipif(
        not os.environ.get("NETC_FULL_ZOO"), reason="set NETC_FULL_ZOO=1 to run (8 s)")),
])
def test_auxiliary_heads_exist_in_training_only(name, aux, one_torch_thread):
    graph = zoo_graph(name)
    assert list(graph.options.training_outputs) == aux
    module = build_module(graph, sane_weights(graph))
    shape = next(iter(graph.inputs.values())).shape
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((2, *shape),
                                                                 dtype=np.float32))
    with torch.no_grad():
        out = module.train()(x)
        assert isinstance(out, tuple) and len(out) == 1 + len(aux)
        assert all(o.shape == (2, 1000) for o in out)
        single = module.eval()(x)
    assert torch.is_tensor(single) and single.shape == (2, 1000)
    model = lower(graph, sane_weights(graph))
    assert [o.name for o in model.graph.output] == list(graph.options.output_names or graph.outputs)
    onnx_names = {n.name for n in model.graph.node} | {i.name for i in model.graph.initializer}
    assert not any(n.startswith(tuple(a + "." for a in aux)) for n in onnx_names)


# ---- ONNX Runtime against torch ----------------------------------------------------------------

# name -> input shape for the differential test (None: the net's own), or (shape, --set).
SMALL = {"densenet121": (3, 32, 32), "convnext_tiny": (3, 32, 32), "squeezenet1_1": (3, 64, 64),
         "squeezenet1_0": (3, 64, 64), "mobilenet_v1": (3, 32, 32),
         "googlenet_tv": (3, 64, 64),
         "preact_resnet164": None,
         "mobilenet_v2": (3, 32, 32), "mobilenet_v3_small": (3, 32, 32),
         "mobilenet_v3_large": (3, 32, 32), "efficientnet_b0": (3, 32, 32),
         "shufflenet_v2_x1_0": (3, 32, 32),
         "unet": (None, {"size": 188, "width": 16})}  # the smallest tile that reaches 4x4
FULL = {"densenet169": (3, 32, 32), "wide_resnet50_2": (3, 64, 64),
        "resnet101_v1_5": (3, 64, 64), "resnet152_v1_5": (3, 64, 64), "wrn28_10": None,
        "preact_resnet1001": None, "resnext50_32x4d": (3, 64, 64),
        "unet_full": (None, {"size": 188}),
        "inception_v3": None}  # the auxiliary head needs a 17x17 Mixed_6e: 299x299
RUN = {**SMALL, **(FULL if os.environ.get("NETC_FULL_ZOO") else {})}


@pytest.mark.parametrize("name", sorted(RUN))
def test_onnx_runtime_agrees_with_torch_on_modern_nets(name, one_torch_thread):
    shape, overrides = RUN[name] if isinstance(RUN[name], tuple) and isinstance(
        RUN[name][-1], dict) else (RUN[name], {})
    graph = zoo_graph(name.removesuffix("_full"), shape, **overrides)
    weights = sane_weights(graph)
    shape = next(iter(graph.inputs.values())).shape
    x = np.random.default_rng(2).standard_normal((3, *shape)).astype(np.float32)
    with torch.no_grad():
        ref = build_module(graph, weights).eval()(torch.from_numpy(x)).numpy()
    assert np.isfinite(ref).all() and np.abs(ref).max() > 0
    model = lower(graph, weights)
    for batch in (3, 1):
        (out,) = run_ort(model, x[:batch])
        assert out.shape == ref[:batch].shape
        assert_close(out, ref[:batch], f"{name} batch {batch}")


def test_readme_zoo_table_gives_these_numbers():
    """Every new net named in the README's zoo table shows the count `netc check` prints."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    rows = [line for line in readme.splitlines() if line.startswith("| `")]
    shown = 0
    for row in rows:
        for name in re.findall(r"`(\w+)`", row.split("|")[1]):
            if name in MODERN:
                s = summarize(zoo_graph(name))
                assert f"{s.params:,}" in row, (name, s.params, row)
                if s.training_params:
                    assert f"+{s.training_params:,}" in row, (name, row)
                shown += 1
    assert shown >= 20
