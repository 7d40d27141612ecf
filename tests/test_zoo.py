"""The zoo reproduces its papers: parameter counts, MACs and structure of every built-in net.

Each row of :data:`PUBLISHED` is a number from a paper, a reference implementation or the issue
that asked for the net, with where it comes from. ``Exact(n)`` must hold to the unit;
``About(x, rel)`` within a relative tolerance, for numbers the sources give rounded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import pytest

from netc.compiler.ir import Graph, verify
from netc.compiler.frontend.loader import load, zoo_index
from netc.compiler.analyses.summary import summarize
from netc.model_specs import SOURCES


@dataclass(frozen=True)
class Exact:
    value: int

    def holds(self, n: int) -> bool:
        return n == self.value


@dataclass(frozen=True)
class About:
    value: float
    rel: float

    def holds(self, n: int) -> bool:
        return abs(n - self.value) <= self.rel * self.value


G, M = 1e9, 1e6

# name: (parameters, MACs); None where no source gives a number.
PUBLISHED: dict[str, tuple[Exact | About | None, Exact | About | None]] = {
    # LeCun 1998 §II.B: "60,000 trainable parameters" (netc's C3 is fully connected, see below).
    "lenet5": (About(60_000, 0.03), None),
    # Caffe bvlc_alexnet; MACs as counted layer by layer from the prototxt (test_zoo_caffe).
    "alexnet": (Exact(60_965_224), None),
    # torchvision.models.alexnet: 61,100,840 parameters, 0.714 GFLOPS (multiply-accumulates).
    "alexnet_tv": (Exact(61_100_840), About(0.714 * G, 0.0007)),
    # VGG Table 1 configurations, as counted by torchvision and the Caffe files; MACs as
    # torchvision's model table (7.61, 11.31, 15.47, 19.63 GFLOPS; the ResNet paper's
    # "19.6 billion FLOPs" for VGG-19).
    "vgg11": (Exact(132_863_336), About(7.61 * G, 0.001)),
    "vgg11_lrn": (Exact(132_863_336), About(7.61 * G, 0.001)),  # LRN has no parameters
    "vgg13": (Exact(133_047_848), About(11.31 * G, 0.001)),
    "vgg16c": (Exact(133_638_952), None),
    "vgg16": (Exact(138_357_544), About(15.47 * G, 0.0005)),
    "vgg": (Exact(138_357_544), About(15.47 * G, 0.0005)),  # the family's base: D by default
    "vgg19": (Exact(143_667_240), About(19.63 * G, 0.0005)),
    "vgg11_bn": (Exact(132_868_840), About(7.61 * G, 0.001)),
    "vgg13_bn": (Exact(133_053_736), About(11.31 * G, 0.001)),
    "vgg16_bn": (Exact(138_365_992), About(15.47 * G, 0.0005)),
    "vgg19_bn": (Exact(143_678_248), About(19.63 * G, 0.0005)),
    # "1.5 billion multiply-adds" is the paper's budget (§5); the exact count is checked
    # against the prototxt in test_zoo_caffe.
    "googlenet": (None, About(1.5 * G, 0.06)),
    # He et al. Table 1 (FLOPs there are multiply-adds), parameters as torchvision counts them.
    "resnet18": (Exact(11_689_512), About(1.8 * G, 0.03)),
    "resnet": (Exact(11_689_512), About(1.8 * G, 0.03)),  # the family's base: ResNet-18
    "resnet34": (Exact(21_797_672), About(3.6 * G, 0.03)),
    "resnet50": (Exact(25_557_032), About(3.8 * G, 0.03)),
    "resnet50_v1_5": (Exact(25_557_032), About(4.09 * G, 0.002)),
    "resnet101": (Exact(44_549_160), About(7.6 * G, 0.03)),
    "resnet152": (Exact(60_192_808), About(11.3 * G, 0.03)),
    "plain34": (None, About(3.6 * G, 0.03)),
    # He et al. §4.2 Table 6: 0.27 M, 0.46 M, 0.66 M, 0.85 M, 1.7 M, 19.4 M parameters.
    "cifar_resnet20": (About(0.27 * M, 0.005 / 0.27), None),
    "cifar_resnet": (About(0.27 * M, 0.005 / 0.27), None),  # base: n = 3
    "cifar_resnet32": (About(0.46 * M, 0.005 / 0.46), None),
    "cifar_resnet44": (About(0.66 * M, 0.005 / 0.66), None),
    "cifar_resnet56": (About(0.85 * M, 0.005 / 0.85), None),
    "cifar_resnet110": (Exact(1_727_962), None),
    "cifar_resnet1202": (Exact(19_421_274), None),
    "cifar_resnet110_sd": (Exact(1_727_962), None),
    "cifar_resnet1202_sd": (Exact(19_421_274), None),
    # Springenberg et al.: "1.3 M" for All-CNN-C (Table 2); 1,369,738 counted by hand.
    "allcnn_c": (Exact(1_369_738), None),
    "fractalnet": (None, None),  # structure checked below
    # Turk & Pentland 1991 give no count: three subspace layers, each k = 5 eigenfaces of
    # 25x25 = 625 pixels and the mean face (5*625 + 625), and 5*625 or 2*5*625 MACs each.
    "eigenfaces": (Exact(3 * (5 * 625 + 625)), Exact(5 * 625 + 2 * 2 * 5 * 625)),
}


@lru_cache(maxsize=None)
def zoo_graph(name: str) -> Graph:
    return load(name)


def test_every_zoo_net_has_a_row():
    """A new zoo net needs its published numbers here (or in test_zoo_modern's table), and
    every row names a zoo net."""
    from tests.test_zoo_modern import MODERN

    assert sorted(zoo_index()) == sorted({**PUBLISHED, **MODERN})


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_zoo_net_checks_and_matches_its_numbers(name):
    graph = zoo_graph(name)
    verify(graph)
    summary = summarize(graph)
    params, macs = PUBLISHED[name]
    if params is not None:
        assert params.holds(summary.params), f"{name}: {summary.params:,} parameters, want {params}"
    if macs is not None:
        assert macs.holds(summary.macs), f"{name}: {summary.macs:,} MACs, want {macs}"


def test_zoo_files_start_with_their_source():
    """Every spec file's first line names the paper (and table) it follows."""
    for path in sorted(set(zoo_index().values())):
        first = path.read_text(encoding="utf-8").splitlines()[0]
        assert first.startswith("# ") and any(ch.isdigit() for ch in first), (path.name, first)


def test_every_source_names_a_zoo_net_and_what_its_file_cites():
    """``netc zoo``'s source column (netc.model_specs.SOURCES) names a real net, and the
    author, year and library it gives are the ones the net's spec file cites."""
    index = zoo_index()
    for name, source in SOURCES.items():
        assert name in index, f"SOURCES names {name!r}, which is no zoo net"
        text = index[name].read_text(encoding="utf-8")
        author = re.search(r"\b(?!Caffe\b)[A-Z][a-z]+", source.replace("torchvision", ""))
        assert author and author.group() in text, (name, source)
        year = re.search(r"\b(19|20)\d\d\b", source)
        assert year is None or year.group() in text, (name, source)
        assert "torchvision" not in source or "torchvision" in text, (name, source)
    # and every net has one: a family's base too (vit showed its file's first line, cut)
    assert sorted(set(index) - set(SOURCES)) == []


@pytest.mark.parametrize("name, source", [
    ("mobilenet_v2", "Sandler et al. 2018 (torchvision)"),
    ("mobilenet_v3_large", "Howard et al. 2019 (torchvision)"),
    ("wrn28_10", "Zagoruyko & Komodakis 2016"),
    ("wide_resnet50_2", "Zagoruyko & Komodakis 2016 (torchvision)"),
    ("resnet101_v1_5", "torchvision (He et al. 2015, v1.5)"),
    ("googlenet_tv", "torchvision (Szegedy et al. 2014 + bn)"),
    ("efficientnet_v2_s", "Tan & Le 2021 (torchvision)"),
    ("regnet_y_400mf", "Radosavovic et al. 2020 (torchvision)"),
])
def test_zoo_source_column(cli, name, source):
    r = cli("zoo", name)
    assert r.code == 0, r.err
    row = r.out.splitlines()[1]
    assert row.startswith(name) and f"  {source}  " in row, row


# ---- LeNet-5 ----------------------------------------------------------------------------------

def test_lenet5_differs_from_the_paper_only_where_its_comment_says():
    """The paper's 60,000 = netc's count with C3's connection table (1,516 instead of the full
    2,416) and without the output fc (the paper's RBF units are fixed, not trained)."""
    graph = zoo_graph("lenet5")
    s = summarize(graph)
    rows = {r.name: r for r in s.rows}
    assert rows["c3"].params == 6 * 16 * 25 + 16
    assert rows["output"].params == 84 * 10 + 10
    assert s.params - rows["c3"].params + 1_516 - rows["output"].params == 60_000
    assert rows["c5"].shape == (120, 1, 1)


# ---- AlexNet ----------------------------------------------------------------------------------

def test_alexnet_units_are_the_papers_650k_neurons():
    """The paper counts 650,000 neurons: the outputs of its conv and fc layers."""
    graph = zoo_graph("alexnet")
    units = sum(_size(n.shape) for n in graph if n.op in ("conv", "fc"))
    assert units == 659_272
    shapes = {n.name: n.shape for n in graph}
    assert [shapes[f"pool{i}"][1] for i in (1, 2, 5)] == [27, 13, 6]


def test_alexnet_groups_follow_the_two_gpu_split():
    graph = zoo_graph("alexnet")
    groups = {n.name: n.attrs["groups"] for n in graph if n.op == "conv"}
    assert groups == {"conv1": 1, "conv2": 2, "conv3": 1, "conv4": 2, "conv5": 2}


# ---- names recipes and users rely on ----------------------------------------------------------

@pytest.mark.parametrize("name,layers", [
    ("vgg16", ["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv4_2", "conv5_1", "relu4_2",
               "pool5", "fc6", "fc7", "fc8"]),
    ("vgg19", ["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv4_2", "conv5_1", "conv5_4",
               "relu5_1", "fc8"]),
    ("vgg16c", ["conv3_3", "conv4_3", "conv5_3"]),
    ("googlenet", [f"inception_{m}" for m in
                   ("3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b")]
     + ["inception_4c.output", "inception_3b.conv5x5_reduce", "pool5", "classifier"]),
    ("resnet50", ["conv1", "layer1", "layer2", "layer3", "layer4", "fc"]),
    ("cifar_resnet110", ["conv1", "layer1", "layer2", "layer3", "fc"]),
    ("alexnet", ["conv1", "norm1", "pool1", "conv5", "fc6", "fc8"]),
])
def test_conventional_layer_names_resolve(name, layers):
    graph = zoo_graph(name)
    for layer in layers:
        assert graph.resolve(layer) is not None, f"{name}: no layer {layer!r}"


def test_vgg_c_closes_stages_with_unpadded_1x1_convs():
    graph = zoo_graph("vgg16c")
    for s in (3, 4, 5):
        node = graph[f"conv{s}_3"]
        assert node.attrs["kernel"] == (1, 1) and node.attrs["pad"] == (0, 0)
    assert graph["conv3_2"].attrs["kernel"] == (3, 3)


def test_googlenet_spatial_sizes_reach_7x7_before_the_average_pool():
    graph = zoo_graph("googlenet")
    sizes = [graph[f"pool{i}"].shape[1] for i in (1, 2, 3, 4, 5)]
    assert sizes == [56, 28, 14, 7, 1]
    assert graph.nodes[graph.resolve("inception_5b")].shape == (1024, 7, 7)


# ---- FractalNet ----------------------------------------------------------------------------------

def longest_conv_path(graph: Graph) -> int:
    """The most convolutions on any path from an input to an output (the paper's depth)."""
    depth: dict[str, int] = {}
    for node in graph:  # topological order
        before = max((depth[i] for i in node.inputs), default=0)
        depth[node.name] = before + (node.op == "conv")
    return max(depth[o] for o in graph.outputs)


def test_fractalnet_depth_is_b_times_2_to_the_c_minus_1():
    graph = zoo_graph("fractalnet")
    blocks, columns = 5, 4
    assert longest_conv_path(graph) == blocks * 2 ** (columns - 1) == 40


def test_fractalnet_block_has_2_to_the_c_minus_1_convs_and_one_join_per_depth():
    graph = zoo_graph("fractalnet")
    for b in range(1, 6):
        convs = [n for n in graph if n.op == "conv" and n.name.startswith(f"block{b}.")]
        assert len(convs) == 2 ** 4 - 1 == 15
        joins = [n for n in graph if n.op == "mean" and n.name.startswith(f"block{b}.")]
        # The deepest column has 8 convs; a join after each of rows 2, 4, 6, 8 (paper Fig. 1),
        # joining 2, 3, 2 and 4 columns.
        assert sorted(len(j.inputs) for j in joins) == [2, 2, 3, 4]
        assert graph[f"pool{b}"].inputs == (joins[-1].name,)


def test_fractalnet_widths_dropout_and_drop_path():
    graph = zoo_graph("fractalnet")
    widths = [graph[f"pool{b}"].shape[0] for b in range(1, 6)]
    assert widths == [64, 128, 256, 512, 512]
    assert graph["pool5"].shape[1:] == (1, 1)
    for b, p in zip(range(1, 6), (0.0, 0.1, 0.2, 0.3, 0.4)):
        drops = {n.attrs["p"] for n in graph
                 if n.op == "dropout" and n.name.startswith(f"block{b}.")}
        assert drops == {p}
    assert graph.options.droppath_local == 0.15
    assert graph.options.droppath_global == 0.5


# ---- stochastic depth -----------------------------------------------------------------------

@pytest.mark.parametrize("name,blocks", [("cifar_resnet110_sd", 54), ("cifar_resnet1202_sd", 600)])
def test_survival_decays_linearly_to_one_half(name, blocks):
    graph = zoo_graph(name)
    residuals = [n for n in graph if n.op == "residual"]
    assert len(residuals) == blocks
    for l, node in enumerate(residuals, start=1):
        assert node.attrs["survival"] == pytest.approx(1 - l / blocks * (1 - 0.5), abs=1e-12)
    assert residuals[-1].attrs["survival"] == pytest.approx(0.5)


def test_summary_prints_survival_probabilities(cli):
    result = cli("summary", "cifar_resnet110_sd")
    assert result.code == 0
    lines = [line for line in result.out.splitlines() if " residual " in f" {line} "]
    assert len(lines) == 54
    assert "p=0.9907" in lines[0]  # 1 - (1/54)(0.5)
    assert "p=0.5000" in lines[-1]


def test_cifar_resnets_use_option_a_shortcuts():
    graph = zoo_graph("cifar_resnet20")
    pads = [n for n in graph if n.op == "shortcut_pad"]
    assert [(n.shape, n.attrs["stride"]) for n in pads] == [((32, 16, 16), 2), ((64, 8, 8), 2)]
    convs = [n for n in graph if n.op == "conv"]
    assert len(convs) + 1 == 20  # 6n + 2 weight layers with the fc, n = 3


def _size(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n
