"""The zoo agrees with the Caffe files people trained: layer by layer, shapes and parameters.

Two independent routes to the Caffe side:

1. A tiny prototxt reader in this file, with Caffe's own shape rules (convolutions round down,
   pools round up, SEMANTICS.md h), so the zoo is checked against the files without trusting
   any of netc's code;
2. ``netc``'s Caffe importer (``netc.compiler.importers.caffe``), when present: the imported graph and the zoo
   graph must agree on every weight layer, pool and LRN.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from netc.compiler.frontend.loader import load
from netc.compiler.analyses.summary import summarize

CAFFE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "caffe"
if not CAFFE.exists():
    CAFFE = Path("/work/shared/reference/caffe")

FILES = {
    "alexnet": "bvlc_alexnet.prototxt",
    "googlenet": "bvlc_googlenet.prototxt",
    "vgg16": "VGG_ILSVRC_16_layers_deploy.prototxt",
    "vgg19": "VGG_ILSVRC_19_layers_deploy.prototxt",
}

pytestmark = pytest.mark.skipif(not CAFFE.exists(), reason="shared/reference/caffe is missing")


# ---- a tiny prototxt reader ---------------------------------------------------------------

_TOKEN = re.compile(r'"[^"]*"|[{}:]|[^\s{}:"]+')


def read_prototxt(text: str) -> dict:
    """Protobuf text format -> nested dicts of lists: ``{"layer": [{...}, ...], ...}``."""
    tokens = _TOKEN.findall(re.sub(r"#[^\n]*", "", text))
    pos = 0

    def message() -> dict:
        nonlocal pos
        out: dict[str, list] = {}
        while pos < len(tokens) and tokens[pos] != "}":
            key = tokens[pos]
            pos += 1
            if tokens[pos] == ":":
                pos += 1
            if tokens[pos] == "{":
                pos += 1
                value = message()
                pos += 1  # the closing brace
            else:
                value = _scalar(tokens[pos])
                pos += 1
            out.setdefault(key, []).append(value)
        return out

    return message()


def _scalar(token: str):
    if token.startswith('"'):
        return token[1:-1]
    if token in ("true", "false"):
        return token == "true"
    for conv in (int, float):
        try:
            return conv(token)
        except ValueError:
            pass
    return token  # an enum: MAX, CONVOLUTION, true


@dataclass(frozen=True)
class Layer:
    """What the comparison looks at: kind (conv, fc, pool, lrn, concat), output shape, params,
    multiply-accumulates."""

    name: str
    kind: str
    shape: tuple[int, ...]
    params: int
    macs: int


# Layer types of the V1 format (VGG-19) and the current one.
_KINDS = {"Convolution": "conv", "CONVOLUTION": "conv", "InnerProduct": "fc",
          "INNER_PRODUCT": "fc", "Pooling": "pool", "POOLING": "pool", "LRN": "lrn",
          "Concat": "concat", "CONCAT": "concat"}


def caffe_layers(path: Path) -> list[Layer]:
    """Every conv, fc, pool, LRN and concat layer of a deploy file, with Caffe's shapes."""
    net = read_prototxt(path.read_text())
    blobs: dict[str, tuple[int, ...]] = {}
    if "input_dim" in net:
        blobs[net["input"][0]] = tuple(net["input_dim"][1:])
    out: list[Layer] = []
    for layer in net.get("layer", []) + net.get("layers", []):
        kind, top = layer["type"][0], layer["top"][0]
        ins = [blobs[b] for b in layer.get("bottom", [])]
        params = macs = 0
        if kind == "Input":
            shape = tuple(layer["input_param"][0]["shape"][0]["dim"][1:])
        elif _KINDS.get(kind) == "conv":
            p = layer["convolution_param"][0]
            c, h, w = ins[0]
            k, s, pad = p["kernel_size"][0], p.get("stride", [1])[0], p.get("pad", [0])[0]
            groups, n = p.get("group", [1])[0], p["num_output"][0]
            size = (h + 2 * pad - k) // s + 1  # convolutions round down
            shape = (n, size, size)
            params = n * (c // groups) * k * k + (n if p.get("bias_term", [True])[0] else 0)
            macs = n * size * size * (c // groups) * k * k
        elif _KINDS.get(kind) == "fc":
            n, fan_in = layer["inner_product_param"][0]["num_output"][0], math.prod(ins[0])
            shape, params, macs = (n,), fan_in * n + n, fan_in * n
        elif _KINDS.get(kind) == "pool":
            p = layer["pooling_param"][0]
            c, h, w = ins[0]
            k, s, pad = p["kernel_size"][0], p.get("stride", [1])[0], p.get("pad", [0])[0]
            size = -(-(h + 2 * pad - k) // s) + 1  # pools round up ...
            if pad and (size - 1) * s >= h + pad:  # ... but never start in the padding
                size -= 1
            shape = (c, size, size)
        elif _KINDS.get(kind) == "concat":
            shape = (sum(i[0] for i in ins),) + ins[0][1:]
        else:  # ReLU, LRN, Dropout, Softmax: same shape
            shape = ins[0]
        blobs[top] = shape
        if kind in _KINDS:
            out.append(Layer(layer["name"][0], _KINDS[kind], shape, params, macs))
    return out


# ---- netc's side --------------------------------------------------------------------------

_NETC_KINDS = {"conv": "conv", "fc": "fc", "maxpool": "pool", "avgpool": "pool", "lrn": "lrn",
               "concat": "concat"}


def netc_layers(graph) -> list[Layer]:
    rows = summarize(graph).rows
    return [Layer(r.name, _NETC_KINDS[r.op], r.shape, r.params, r.macs)
            for r in rows if r.op in _NETC_KINDS]


# GoogLeNet's names, by the rule its spec states: "/" is ".", a part that starts with a digit
# gets "conv" in front; the stem and head have their own short names.
_GOOGLENET_STEM = {
    "conv1/7x7_s2": "conv1", "pool1/3x3_s2": "pool1", "pool1/norm1": "norm1",
    "conv2/3x3_reduce": "conv2_reduce", "conv2/3x3": "conv2", "conv2/norm2": "norm2",
    "pool2/3x3_s2": "pool2", "pool3/3x3_s2": "pool3", "pool4/3x3_s2": "pool4",
    "pool5/7x7_s1": "pool5", "loss3/classifier": "classifier",
}


def netc_name(net: str, caffe_name: str) -> str:
    if net != "googlenet":
        return caffe_name
    if caffe_name in _GOOGLENET_STEM:
        return _GOOGLENET_STEM[caffe_name]
    module, part = caffe_name.split("/")
    return f"{module}.{'conv' + part if part[0].isdigit() else part}"


@pytest.mark.parametrize("net", sorted(FILES))
def test_zoo_matches_caffe_file_layer_by_layer(net):
    """Same layers in the same order, same names, shapes, parameters and MACs at each."""
    theirs = caffe_layers(CAFFE / FILES[net])
    ours = netc_layers(load(net))
    assert [netc_name(net, t.name) for t in theirs] == [o.name for o in ours]
    for t, o in zip(theirs, ours):
        assert (o.kind, o.shape, o.params, o.macs) == (t.kind, t.shape, t.params, t.macs), t.name
    summary = summarize(load(net))
    assert summary.params == sum(t.params for t in theirs)
    assert summary.macs == sum(t.macs for t in theirs)


def test_googlenet_totals_from_the_prototxt():
    """Totals computed from the Caffe file alone (no netc code), written down once."""
    layers = caffe_layers(CAFFE / FILES["googlenet"])
    assert sum(t.params for t in layers) == 6_998_552
    assert sum(t.macs for t in layers) == 1_582_671_872  # the paper's budget: 1.5 G
    pools = [t.shape[1] for t in layers if t.kind == "pool" and "/" in t.name
             and not t.name.startswith("inception")]
    assert pools == [56, 28, 14, 7, 1]


def test_alexnet_total_from_the_prototxt():
    assert sum(t.params for t in caffe_layers(CAFFE / FILES["alexnet"])) == 60_965_224


def test_reader_reads_both_formats():
    v1 = caffe_layers(CAFFE / FILES["vgg19"])  # layers { type: CONVOLUTION }, input_dim
    assert [t.name for t in v1][:3] == ["conv1_1", "conv1_2", "pool1"]
    assert v1[-1] == Layer("fc8", "fc", (1000,), 4_097_000, 4_096_000)


# ---- through netc's own Caffe importer ------------------------------------------------------

@pytest.mark.parametrize("net", sorted(FILES))
def test_zoo_matches_imported_caffe_file(net):
    """``netc import caffe`` of the real file and the zoo spec give the same layers."""
    caffe = pytest.importorskip("netc.compiler.importers.caffe")
    if not hasattr(caffe, "import_prototxt"):
        pytest.skip("the Caffe importer (netc.compiler.importers.caffe.import_prototxt) has not landed yet")
    imported = netc_layers(load(str(CAFFE / FILES[net])))
    ours = netc_layers(load(net))
    assert [(o.kind, o.shape, o.params) for o in imported] == \
        [(o.kind, o.shape, o.params) for o in ours]
    assert summarize(load(str(CAFFE / FILES[net]))).params == summarize(load(net)).params


def test_resnet50_has_the_convs_of_the_authors_caffe_file():
    """He et al.'s own ResNet-50 (stride on the first 1x1 conv, as resnet50 here): the same
    convolutions and fc. Caffe's file lists each projection before its block and gives conv1 a
    bias (netc's has none, as torchvision's), so compare sorted, with that one bias added."""
    theirs = [t for t in caffe_layers(CAFFE / "ResNet-50-deploy.prototxt")
              if t.kind in ("conv", "fc")]
    ours = [o for o in netc_layers(load("resnet50")) if o.kind in ("conv", "fc")]
    conv1_bias = 64
    assert sorted((t.shape, t.params) for t in theirs) == sorted(
        (o.shape, o.params + (conv1_bias if o.name == "conv1" else 0)) for o in ours)
    # The first 1x1 conv of stages 3-5 already halves the map (v1.5 would keep 56, 28, 14).
    caffe_shapes = {t.name: t.shape for t in theirs}
    netc_shapes = {o.name: o.shape for o in ours}
    for stage, size in ((2, 28), (3, 14), (4, 7)):
        caffe_name = f"res{stage + 1}a_branch2a"
        assert caffe_shapes[caffe_name][1:] == netc_shapes[f"layer{stage}.bottleneck1.conv1"][1:] \
            == (size, size)
