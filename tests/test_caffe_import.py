"""``netc import caffe`` on the real Caffe files in shared/reference/caffe.

Every file imports, passes netc's checks, and gives at every layer the output shape Caffe
computes. The shapes come from a small oracle in this file that applies Caffe's own rules
(conv_layer.cpp, pooling_layer.cpp) to the parsed prototxt, without the importer's mapping code.
Parameter counts are the published ones: learnable weights only (see the README).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from netc.compiler.importers.caffe import import_prototxt
from netc.compiler.importers.caffe.net import Labels
from netc.compiler.importers.caffe.textformat import Message, parse_prototxt
from netc.compiler.ir import verify
from netc.compiler.frontend.loader import load, load_text
from netc.compiler.analyses.summary import summarize
from netc.runtime.cli import main

CAFFE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "caffe"
pytestmark = pytest.mark.skipif(not CAFFE.is_dir(),
                                reason=f"the reference Caffe files are not at {CAFFE}")
FILES = sorted(p.name for p in CAFFE.glob("*.prototxt")) if CAFFE.is_dir() else []

# Learnable parameters. ResNet-50: torchvision's 25,557,032 plus the 64 biases of conv1, which
# He et al.'s file keeps (bias_term is not set on conv1); BN running statistics are buffers.
PARAMS = {
    "bvlc_alexnet.prototxt": 60_965_224,
    "bvlc_reference_caffenet.prototxt": 60_965_224,
    "VGG_ILSVRC_16_layers_deploy.prototxt": 138_357_544,
    "VGG_ILSVRC_19_layers_deploy.prototxt": 143_667_240,
    "ResNet-50-deploy.prototxt": 25_557_032 + 64,
    "bvlc_googlenet.prototxt": 6_998_552,
    "lenet.prototxt": 431_080,
}


# ---- the oracle: Caffe's shape rules over the parsed file ---------------------------------
def _values(msg: Message, name: str) -> list:
    return [f.value.value for f in msg.all(name)]


def _first(msg: Message | None, name: str, default):
    found = _values(msg, name) if msg is not None else []
    return found[0] if found else default


def _pair(p: Message, name: str, default: int) -> tuple[int, int]:
    key = "kernel_size" if name == "kernel" else name
    if p.all(f"{name}_h"):
        return _first(p, f"{name}_h", default), _first(p, f"{name}_w", default)
    found = _values(p, key)
    return (found[0], found[-1]) if found else (default, default)


def caffe_shapes(text: str) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Layer name -> (type, the shape of its top), by Caffe's rules (one sample: C x H x W)."""
    root = parse_prototxt(text, "oracle")
    blobs = {}
    names = _values(root, "input")
    dims = _values(root, "input_dim")
    for i, name in enumerate(names):
        if dims:
            blobs[name] = tuple(dims[4 * i + 1: 4 * i + 4])
        else:
            blobs[name] = tuple(_values(root.all("input_shape")[i].value, "dim")[1:])
    out = {}
    for f in root.fields:
        if f.name not in ("layer", "layers"):
            continue
        layer = f.value
        kind, name = _first(layer, "type", ""), _first(layer, "name", "")
        ins = [blobs[b] for b in _values(layer, "bottom")]
        if kind == "Input":
            shape = tuple(_values(layer.one("input_param").value.one("shape").value, "dim")[1:])
        elif kind in ("Convolution", "CONVOLUTION"):
            p = layer.one("convolution_param").value
            (c, h, w), n = ins[0], _first(p, "num_output", 0)
            k, s = _pair(p, "kernel", 0), _pair(p, "stride", 1)
            pad, d = _pair(p, "pad", 0), _pair(p, "dilation", 1)
            size = [(x + 2 * pp - (dd * (kk - 1) + 1)) // ss + 1
                    for x, kk, ss, pp, dd in zip((h, w), k, s, pad, d)]
            shape = (n, *size)
        elif kind in ("Pooling", "POOLING"):
            p = layer.one("pooling_param").value
            c, h, w = ins[0]
            if _first(p, "global_pooling", "false") == "true":
                shape = (c, 1, 1)
            else:
                k, s, pad = _pair(p, "kernel", 0), _pair(p, "stride", 1), _pair(p, "pad", 0)
                size = []
                for x, kk, ss, pp in zip((h, w), k, s, pad):
                    o = math.ceil((x + 2 * pp - kk) / ss) + 1
                    if pp > 0 and (o - 1) * ss >= x + pp:  # pooling_layer.cpp, Reshape
                        o -= 1
                    size.append(o)
                shape = (c, *size)
        elif kind in ("InnerProduct", "INNER_PRODUCT"):
            shape = (_first(layer.one("inner_product_param").value, "num_output", 0),)
        elif kind in ("Concat", "CONCAT"):
            shape = (sum(i[0] for i in ins), *ins[0][1:])
        else:  # ReLU, LRN, Dropout, Softmax, BatchNorm, Scale, Eltwise: the bottom's shape
            shape = ins[0]
        for top in _values(layer, "top"):
            blobs[top] = shape
        out[name] = (kind, shape)
    return out


# ---- every file --------------------------------------------------------------------------
@pytest.fixture(scope="module", params=FILES)
def imported(request):
    path = CAFFE / request.param
    text = import_prototxt(path)
    graph = load_text(text, str(path.with_suffix(".net")))
    return request.param, path, text, graph


def test_every_file_imports_and_checks(imported):
    name, _, text, graph = imported
    verify(graph)
    assert summarize(graph).params == PARAMS[name]
    assert text.startswith(f"# Imported from {name}")


def test_every_layer_has_caffes_output_shape(imported):
    """Each Caffe layer is the netc node labelled with its name, with Caffe's top shape;
    a Scale lives inside the bn of its BatchNorm, an Input layer is a netc input."""
    _, path, _, graph = imported
    for layer, (kind, shape) in caffe_shapes(path.read_text()).items():
        label = Labels.plain(layer)
        if label not in graph.nodes and label + "_" in graph.nodes:
            label += "_"  # a Caffe name that is a netc op name (relu6) gets a "_"
        if kind == "Scale":
            assert label not in graph.nodes
        elif kind == "Input":
            assert graph.inputs[label].shape == shape
        else:
            assert graph.nodes[label].shape == shape, layer


def test_googlenet_reaches_7x7_before_its_average_pool():
    graph = load(str(CAFFE / "bvlc_googlenet.prototxt"))
    sizes = [graph.nodes[f"pool{i}_3x3_s2"].shape for i in range(1, 5)]
    assert sizes == [(64, 56, 56), (192, 28, 28), (480, 14, 14), (832, 7, 7)]
    assert graph.nodes["inception_5b_output"].shape == (1024, 7, 7)
    assert graph.nodes["pool5_7x7_s1"].shape == (1024, 1, 1)
    assert graph.nodes["pool1_3x3_s2"].attrs.ceil  # floor would give 55 -> 27 -> 13 -> 6


def test_resnet50_first_pool_gives_56x56_and_bn_counts_learnables_only():
    graph = load(str(CAFFE / "ResNet-50-deploy.prototxt"))
    assert graph.nodes["pool1"].shape == (64, 56, 56)
    assert graph.nodes["res5c_relu"].shape == (2048, 7, 7)
    bns = [n for n in graph.nodes.values() if n.op == "bn"]
    assert len(bns) == 53  # every BatchNorm + Scale pair became one bn
    rows = {r.name: r.params for r in summarize(graph).rows}
    assert rows["bn_conv1"] == 2 * 64  # Scale's gamma and beta; mean and variance are buffers
    assert rows["conv1"] == 64 * 3 * 7 * 7 + 64


def test_resnet50_in_place_blobs_are_followed():
    """``res2a`` is written by the Eltwise, then in place by its ReLU: the next block reads
    the ReLU's output, on both of its paths."""
    graph = load(str(CAFFE / "ResNet-50-deploy.prototxt"))
    assert graph.nodes["res2a_relu"].inputs == ("res2a",)
    assert graph.nodes["res2b_branch2a"].inputs == ("res2a_relu",)
    assert "res2a_relu" in graph.nodes["res2b"].inputs
    assert graph.nodes["res2a"].inputs == ("bn2a_branch1", "bn2a_branch2c")


def test_output_reads_as_a_spec():
    """Linear runs are one chain; inception branches are joins; names are sanitised labels."""
    alexnet = import_prototxt(CAFFE / "bvlc_alexnet.prototxt")
    body = alexnet.split("{", 1)[1]
    assert body.count(" = ") == 1 and "output prob = data" in body
    assert body.count("->") == 23 + 1  # 23 layers in one chain, and a flatten before fc6
    googlenet = import_prototxt(CAFFE / "bvlc_googlenet.prototxt")
    assert "  inception_3a_output = concat[\n      pool2_3x3_s2 -> conv(64, 1) as " \
           "inception_3a_1x1 -> relu as inception_3a_relu_1x1,\n" in googlenet
    assert "/" not in googlenet.split("net ", 1)[1]
    assert all(len(line) <= 100 for line in googlenet.splitlines())


# ---- the command line ----------------------------------------------------------------------
def test_cli_writes_a_spec_that_netc_checks(tmp_path, capsys):
    out = tmp_path / "vgg19.net"
    assert main(["import", "caffe", str(CAFFE / "VGG_ILSVRC_19_layers_deploy.prototxt"),
                 "-o", str(out)]) == 0
    assert "143,667,240 params" in capsys.readouterr().err
    assert main(["check", str(out)]) == 0
    assert "143,667,240 params" in capsys.readouterr().out


def test_cli_without_output_prints_the_spec(capsys):
    assert main(["import", "caffe", str(CAFFE / "lenet.prototxt")]) == 0
    text = capsys.readouterr().out
    assert "net LeNet {" in text and "-> maxpool(2, ceil=true) as pool1" in text


def test_summary_reads_a_prototxt_directly(capsys):
    assert main(["summary", str(CAFFE / "bvlc_alexnet.prototxt")]) == 0
    out = capsys.readouterr().out
    assert "60,965,224" in out and "pool5" in out


@pytest.mark.parametrize("name", ["bvlc_googlenet.prototxt", "ResNet-50-deploy.prototxt",
                                  "lenet.prototxt"])
def test_torch_runs_the_imported_net_with_caffes_shapes(name):
    """Run the PyTorch lowering of the imported net: every tensor has Caffe's shape (PyTorch's
    ceil_mode pooling included), not only the shapes netc inferred."""
    torch = pytest.importorskip("torch")
    from netc.compiler.lower_torch.module import build_module

    graph = load(str(CAFFE / name))
    expected = {Labels.plain(layer): shape
                for layer, (kind, shape) in caffe_shapes((CAFFE / name).read_text()).items()
                if kind not in ("Scale", "Input")}
    (spec,) = graph.inputs.values()
    net = build_module(graph).eval()
    with torch.no_grad():
        out = net(torch.randn(1, *spec.shape), taps=list(expected))
    assert {label: tuple(t.shape[1:]) for label, t in out.items()} == expected


def test_imported_caffenet_agrees_in_torch_and_onnx_runtime():
    """Grouped convs, LRN and ceil pools of an imported net: ONNX Runtime gives what the
    PyTorch lowering gives, on the same seeded weights, to 1e-4."""
    torch = pytest.importorskip("torch")
    ort = pytest.importorskip("onnxruntime")
    import numpy as np

    from netc.compiler.lower_onnx.model import lower
    from netc.compiler.lower_torch.module import build_module

    graph = load(str(CAFFE / "bvlc_reference_caffenet.prototxt"))
    x = np.random.default_rng(0).standard_normal((2, 3, 227, 227)).astype(np.float32)
    with torch.no_grad():
        net = build_module(graph, seed=1).eval()
        expected = net(torch.from_numpy(x), taps=["fc8"])["fc8"].numpy()
    session = ort.InferenceSession(lower(graph, seed=1, outputs=["fc8"]).SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    (got,) = session.run(["fc8"], {"data": x})  # the logits: softmax would hide differences
    assert np.abs(expected).max() > 1e-2
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)


LENET_SPEC = """\
net LeNet {
  input data: 1x28x28
  output prob = data
      -> conv(20, 5) as conv1
      -> maxpool(2, ceil=true) as pool1
      -> conv(50, 5) as conv2
      -> maxpool(2, ceil=true) as pool2
      -> flatten
      -> fc(500) as ip1
      -> relu as relu1
      -> fc(10) as ip2
      -> softmax as prob;
}
"""


def test_lenet_golden():
    """The whole spec of a small file, as a user sees it (after the header comments)."""
    text = import_prototxt(CAFFE / "lenet.prototxt")
    assert text[text.index("net LeNet"):] == LENET_SPEC
