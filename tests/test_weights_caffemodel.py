"""Caffe's .caffemodel into netc: written here from netc's own weights with netc's schema.

bvlc_googlenet.caffemodel cannot be downloaded here, so the test writes a file laid out as it
is (the train net's layers in file order, the two auxiliary heads loss1/ and loss2/ among
them, blobs with ``shape``) from the zoo googlenet's weights, and imports it back: into the
zoo net (the DeepDream route of the README) and through ``bvlc_googlenet.prototxt``. The
legacy V1 format (``layers``, 4-D num/channels/height/width blobs) and Caffe's BatchNorm
(mean, variance and a moving-average factor, then a Scale) are checked the same way.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from safetensors.numpy import load_file

from netc.compiler.importers.caffe.caffemodel import CaffeLayer, CaffeModel, read_caffemodel, write_caffemodel
from netc.compiler.importers.caffe.textformat import parse_prototxt
from netc.compiler.frontend.loader import load
from netc.compiler.lower_torch.module import build_module
from netc.compiler.importers.pairing import spec_layers
from netc.dsl.diagnostics import UserError
from netc.runtime.weights import import_weights
from torchvision_layout import BOTTLENECKS

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CAFFE = Path(__file__).resolve().parent / ".." / ".." / "shared" / "reference" / "caffe"


def caffe_layers(prototxt: Path, types=("Convolution", "InnerProduct")) -> list[str]:
    """The names of a prototxt's weight layers, in file order."""
    root = parse_prototxt(prototxt.read_text(), str(prototxt))
    names = []
    for f in root.all("layer"):
        if f.value.one("type").value.value in types:
            names.append(f.value.one("name").value.value)
    return names


def googlenet_caffemodel(path: Path, weights: dict) -> None:
    """bvlc_googlenet's layout: its conv/fc names in order, auxiliary heads after 4a and 4d."""
    graph = load("googlenet")
    ours = spec_layers(graph)
    names = caffe_layers(CAFFE / "bvlc_googlenet.prototxt")
    assert len(names) == len(ours) == 58
    rng = np.random.default_rng(0)
    layers = []
    for caffe_name, layer in zip(names, ours):
        node = graph[layer.name]
        blobs = [weights[f"{layer.name}.weight"], weights[f"{layer.name}.bias"]]
        kind = "Convolution" if node.op == "conv" else "InnerProduct"
        stride = tuple(node.attrs.stride) if node.op == "conv" else None
        layers.append(CaffeLayer(caffe_name, kind, [], [], blobs, stride))
        for head, after, cin in (("loss1", "inception_4a/pool_proj", 512),
                                 ("loss2", "inception_4d/pool_proj", 528)):
            if caffe_name == after:
                for name, shape in ((f"{head}/conv", (128, cin, 1, 1)),
                                    (f"{head}/fc", (1024, 2048)),
                                    (f"{head}/classifier", (1000, 1024))):
                    blobs = [rng.standard_normal(shape).astype(np.float32),
                             np.zeros(shape[0], np.float32)]
                    kind = "Convolution" if len(shape) == 4 else "InnerProduct"
                    layers.append(CaffeLayer(name, kind, [], [], blobs,
                                             (1, 1) if kind == "Convolution" else None))
    write_caffemodel(path, CaffeModel("GoogleNet", layers))


def test_a_googlenet_caffemodel_feeds_the_zoo_googlenet(tmp_path, cli):
    graph = load("googlenet")
    module = build_module(graph, seed=7)
    weights = {k: v.numpy() for k, v in module.state_dict().items()}
    model = tmp_path / "bvlc_googlenet.caffemodel"
    googlenet_caffemodel(model, weights)
    out = tmp_path / "googlenet.safetensors"
    r = cli("weights", "import", "googlenet", model, "-o", out)
    assert r.code == 1 and "add --skip loss1,loss2\n" in r.err  # loss3 is the classifier
    r = cli("weights", "import", "googlenet", model, "-o", out, "--skip", "loss1,loss2")
    assert r.code == 0, r.err
    assert "warning" not in r.err  # the zoo googlenet's input is Caffe's BGR 0..255
    assert "skipped 6 file layers (--skip): loss1/conv, loss1/fc, loss1/classifier" in r.out
    got = load_file(str(out))
    assert got.keys() == weights.keys()
    for key, value in weights.items():
        np.testing.assert_array_equal(got[key], value)
    # The same file through Caffe's own deploy prototxt: by name, the heads left out.
    onnx_file = tmp_path / "g.onnx"
    r = cli("compile", CAFFE / "bvlc_googlenet.prototxt", "--weights", model, "-o", onnx_file)
    assert r.code == 0, r.err
    assert "by name (a Caffe model); 6 file layers not in the spec were left out: loss1/conv" \
        in r.err
    assert "is a Caffe model, and Caffe's nets take BGR pixels in 0..255" in r.err  # deploy
    x = np.random.default_rng(1).standard_normal((1, 3, 224, 224)).astype(np.float32)
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    prob = session.run(None, {session.get_inputs()[0].name: x})[0]
    module.eval()
    with torch.no_grad():
        ref = module(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(prob, ref, rtol=0, atol=1e-5 * np.abs(ref).max() + 1e-6)


def test_the_v1_format_with_legacy_blob_dimensions(tmp_path):
    """Caffe before 2015: ``layers`` with enum types, blobs as num x channels x height x width
    (an InnerProduct weight 1x1xOUTxIN, a bias 1x1x1xOUT)."""
    lenet = read_caffemodel(CAFFE / "conformance" / "lenet_mnist" / "weights.caffemodel")
    kept = [lay for lay in lenet.layers if lay.type in ("Convolution", "InnerProduct")]
    write_caffemodel(tmp_path / "v1.caffemodel", CaffeModel("LeNet", kept, v1=True))
    back = read_caffemodel(tmp_path / "v1.caffemodel")
    assert back.v1 and [b.shape for b in back.layers[2].blobs] == [(1, 1, 500, 800),
                                                                   (1, 1, 1, 500)]
    graph = load(str(CAFFE / "lenet.prototxt"))
    a = import_weights(graph, tmp_path / "v1.caffemodel", tmp_path / "a.safetensors")
    b = import_weights(graph, CAFFE / "conformance" / "lenet_mnist" / "weights.caffemodel",
                       tmp_path / "b.safetensors")
    assert a.by_name and a.tensors.keys() == b.tensors.keys()
    for key in a.tensors:
        np.testing.assert_array_equal(a.tensors[key], b.tensors[key])


def resnet_caffemodel(path: Path, graph, weights: dict, factor: float = 4.0,
                      he_order: bool = False) -> None:
    """Caffe's layout: conv, BatchNorm (mean·f, var·f, f), Scale (γ, β) per conv; with
    ``he_order`` a block's projection shortcut before its body, as He et al.'s files (and
    named like them)."""
    blocks: dict[str, list] = {}
    for layer in spec_layers(graph):
        if graph[layer.name].op != "conv":
            continue
        bn = layer.name.replace("conv", "bn")
        node = graph[layer.name]
        name = layer.name.replace(".", "/")
        if he_order and ".shortcut." in layer.name:
            name = "res" + layer.name.split(".")[0][-1] + "a_branch1"  # one is enough here
        group = [CaffeLayer(name, "Convolution", [], [name], [weights[f"{layer.name}.weight"]],
                            tuple(node.attrs.stride)),
                 CaffeLayer(f"{name}/bn", "BatchNorm", [name], [name],
                            [weights[f"{bn}.running_mean"] * factor,
                             weights[f"{bn}.running_var"] * factor,
                             np.array([factor], np.float32)]),
                 CaffeLayer(f"{name}/scale", "Scale", [name], [name],
                            [weights[f"{bn}.weight"], weights[f"{bn}.bias"]])]
        if ".shortcut." in layer.name and he_order:
            block = layer.name.split(".shortcut.")[0]
            blocks[block] = group + blocks[block]  # He et al.: branch1 before branch2a
        else:
            blocks.setdefault(layer.name.rsplit(".", 1)[0], []).extend(group)
    fc = [CaffeLayer("fc1000", "InnerProduct", [], [], [weights["fc.weight"], weights["fc.bias"]])]
    write_caffemodel(path, CaffeModel("ResNet-50", [x for b in blocks.values() for x in b] + fc))


def test_caffe_batchnorm_and_scale_become_bn_and_the_strides_are_checked(tmp_path, cli):
    (tmp_path / "b.net").write_text(BOTTLENECKS)
    graph = load(f"{tmp_path / 'b.net'}:mini_v1")
    module = build_module(graph, seed=3)
    state = module.state_dict()
    rng = torch.Generator().manual_seed(0)
    for key in state:  # statistics that are not 0 and 1, so the factor matters
        if key.endswith(("running_mean", "running_var")):
            state[key].copy_(torch.rand(state[key].shape, generator=rng) + 0.5)
    weights = {k: v.numpy() for k, v in state.items()}
    model = tmp_path / "resnet50.caffemodel"
    resnet_caffemodel(model, graph, weights)
    mapped = import_weights(graph, model, tmp_path / "w.safetensors")
    for key, value in weights.items():
        if not key.endswith("num_batches_tracked"):
            np.testing.assert_array_equal(mapped.tensors[key], value, err_msg=key)
    with pytest.raises(UserError, match=r"the caffemodel's convolution_param(.|\n)*the spec is "
                                        r"v1.5 \(stride on the 3x3\) and the file is v1"):
        import_weights(load(f"{tmp_path / 'b.net'}:mini_v15"), model, tmp_path / "x.safetensors")
    # He et al.'s order (branch1 first): a bottleneck's conv3 and projection have one shape,
    # so no other order is guessed; the message says what to do.
    resnet_caffemodel(model, graph, weights, he_order=True)
    with pytest.raises(UserError, match=r"layer 3 of 31 (.|\n)*He et al.'s Caffe ResNets"):
        import_weights(graph, model, tmp_path / "x.safetensors")


def test_not_a_caffemodel(tmp_path):
    bad = tmp_path / "x.caffemodel"
    bad.write_bytes(b"\xff\xfe not protobuf at all \x00\x01")
    with pytest.raises(UserError, match="is not a Caffe NetParameter|holds no Caffe layers"):
        import_weights(load("lenet5"), bad, tmp_path / "w.safetensors")
