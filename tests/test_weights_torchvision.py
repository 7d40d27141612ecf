"""torchvision files into the zoo's torchvision-derived nets, in .pth and .safetensors.

A "torchvision file" is a netc module's state dict renamed to torchvision's layout by hand
(tests/torchvision_layout.py), so the pairing under test never sees the correspondence;
``num_batches_tracked`` counters come along, as in a real file. A .safetensors file stores its
keys sorted (``bn1`` before ``conv1``, ``classifier`` before ``features``), which is what broke
file-order pairing. Every tensor must come back bit for bit; two nets also run.
"""

from __future__ import annotations

import os

import pytest
import torch
from safetensors.torch import save_file

import torchvision_layout as tv
from torchvision_layout import BOTTLENECKS
from netc.compiler.frontend.loader import load
from netc.compiler.lower_torch.module import build_module
from netc.dsl.diagnostics import UserError
from netc.runtime.weights import import_weights, load_weights

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FULL = os.environ.get("NETC_FULL_ZOO") == "1"
# The zoo nets that follow torchvision's models (resnet101/152 are He et al.'s v1: below).
# The default run takes the ResNets and, for VGG's and AlexNet's features.N/classifier.N
# layout, small nets built from the same zoo definitions (VGG-16 alone is half a gigabyte);
# NETC_FULL_ZOO=1 takes every one.
NETS = ["resnet18", "resnet50_v1_5", "mini_vgg_bn", "mini_alexnet_tv"]
if FULL:
    NETS += ["resnet34", "alexnet_tv", "vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn",
             "vgg13_bn", "vgg16_bn", "vgg19_bn"]
RUN = {"resnet18", "mini_vgg_bn", "mini_alexnet_tv", "alexnet_tv"}  # outputs compared too
MINI = """
include "vgg.net"
net mini_vgg_bn(classes=10) {
  input image: 3x32x32
  output prob = image -> stage(1, 8, 2, 0, true) -> stage(2, 16, 1, 0, true) -> flatten
    -> fc(64) as fc6 -> relu as relu6 -> dropout(0.5) as drop6 -> fc(64) as fc7 -> relu as relu7
    -> dropout(0.5) as drop7 -> fc(classes) as fc8 -> softmax as prob
}
net mini_alexnet_tv {
  input image: 3x67x67
  image -> conv(16, 11, stride=4, pad=2) as conv1 -> relu -> maxpool(3, stride=2)
        -> conv(24, 5, pad=2) as conv2 -> relu -> maxpool(3, stride=2)
        -> conv(32, 3, pad=1) as conv3 -> relu -> conv(32, 3, pad=1) as conv4 -> relu
        -> conv(24, 3, pad=1) as conv5 -> relu -> maxpool(3, stride=2)
        -> adaptive_avgpool(6) as avgpool -> flatten -> dropout(0.5) -> fc(64) as fc6 -> relu
        -> dropout(0.5) -> fc(64) as fc7 -> relu -> fc(10) as fc8
}
"""


def load_net(name: str, tmp_path):
    if not name.startswith("mini_"):
        return load(name)
    path = tmp_path / "mini.net"
    path.write_text(MINI)
    return load(f"{path}:{name}")


def torchvision_file(graph, module, tmp_path, fmt: str):
    state = {k: v.clone() for k, v in module.state_dict().items()}
    renamed = ({tv.resnet(k): v for k, v in state.items()} if "layer1" in str(state.keys())
               else tv.sequential(graph, state))
    path = tmp_path / f"tv.{fmt}"
    if fmt == "pth":
        torch.save(renamed, path)
    else:
        save_file({k: v.contiguous() for k, v in renamed.items()}, str(path))
    return path, renamed


@pytest.mark.parametrize("name, fmt", [(n, f) for n in NETS for f in ("pth", "safetensors")
                                       if FULL or (n, f) != ("resnet50_v1_5", "pth")])
def test_torchvision_files_load_bit_for_bit(name, fmt, tmp_path):
    graph = load_net(name, tmp_path)
    ref = build_module(graph, seed=11)
    path, renamed = torchvision_file(graph, ref, tmp_path, fmt)
    assert any(k.endswith("num_batches_tracked") for k in renamed) == ("bn" in name or
                                                                       "resnet" in name)
    if fmt == "pth":
        assert [k.split(".")[0] for k in renamed][:1] != sorted(k.split(".")[0]
                                                                for k in renamed)[:1] or \
            "resnet" in name  # features/conv1 first in the file, as torchvision stores it
    mapped = import_weights(graph, path, tmp_path / "w.safetensors")
    assert not mapped.by_name
    want = {k: v for k, v in ref.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert mapped.tensors.keys() == want.keys()
    for key, value in want.items():
        assert torch.equal(torch.from_numpy(mapped.tensors[key]), value), key
    if name in RUN:
        net = build_module(graph, seed=12)
        net.load_named(load_weights(graph, tmp_path / "w.safetensors"))
        ref.eval(), net.eval()
        x = torch.randn(1, *graph.inputs["image"].shape)
        with torch.no_grad():
            assert torch.equal(net(x), ref(x))


def test_the_file_order_does_not_matter(tmp_path):
    """The keys of a .pth reversed, module by module: still the same pairing."""
    graph = load("resnet18")
    ref = build_module(graph, seed=5)
    _, renamed = torchvision_file(graph, ref, tmp_path, "pth")
    torch.save(dict(reversed(list(renamed.items()))), tmp_path / "rev.pth")
    mapped = import_weights(graph, tmp_path / "rev.pth", tmp_path / "w.safetensors")
    assert torch.equal(torch.from_numpy(mapped.tensors["layer2.basic1.shortcut.conv1.weight"]),
                       ref.state_dict()["layer2.basic1.shortcut.conv1.weight"])


def bottleneck_net(name, tmp_path):
    path = tmp_path / "bottlenecks.net"
    path.write_text(BOTTLENECKS)
    return f"{path}:{name}", load(f"{path}:{name}")


def test_a_torchvision_bottleneck_is_v1_5_and_refused_by_a_v1_spec(tmp_path, cli):
    v1, _ = bottleneck_net("mini_v1", tmp_path)
    v15_spec, v15 = bottleneck_net("mini_v15", tmp_path)
    path, renamed = torchvision_file(v15, build_module(v15, seed=1), tmp_path, "safetensors")
    assert "layer2.0.downsample.0.weight" in renamed and "layer2.0.conv3.weight" in renamed
    out = tmp_path / "w.safetensors"
    r = cli("weights", "import", v1, path, "-o", out)
    assert r.code == 1 and not out.exists()
    assert "ResNet v1 vs v1.5" in r.err and "use resnet50_v1_5" in r.err
    assert "layer2.0.conv1 has stride 1x1 (torchvision's layout" in r.err
    r = cli("weights", "import", v1, path, "-o", out, "--allow-stride-mismatch")
    assert r.code == 0 and "warning: loaded although the strides disagree" in r.err
    assert cli("weights", "import", v15_spec, path, "-o", out).code == 0


def test_a_v1_file_is_refused_by_a_v1_5_spec(tmp_path, cli):
    """netc's own v1 weights: the zoo's block names (bottleneck) say where the stride is."""
    _, v1 = bottleneck_net("mini_v1", tmp_path)
    v15_spec, _ = bottleneck_net("mini_v15", tmp_path)
    module = build_module(v1, seed=1)
    save_file({k: v.contiguous() for k, v in module.state_dict().items()},
              str(tmp_path / "v1.safetensors"))
    r = cli("weights", "import", v15_spec, tmp_path / "v1.safetensors", "-o",
            tmp_path / "w.safetensors")
    assert r.code == 1
    assert "the spec is v1.5 (stride on the 3x3) and the file is v1" in r.err


def test_auxiliary_heads_are_skipped_when_asked_and_reported(tmp_path, cli):
    graph = load("googlenet")
    module = build_module(graph, seed=2)
    state = dict(module.state_dict())
    state["aux1.conv.conv.weight"] = torch.zeros(128, 512, 1, 1)
    state["aux1.fc1.weight"] = torch.zeros(1024, 2048)
    state["aux2.fc2.weight"] = torch.zeros(1000, 1024)
    torch.save(state, tmp_path / "g.pth")
    out = tmp_path / "w.safetensors"
    r = cli("weights", "import", "googlenet", tmp_path / "g.pth", "-o", out)
    assert r.code == 1 and "add --skip aux1,aux2\n" in r.err
    r = cli("weights", "import", "googlenet", tmp_path / "g.pth", "-o", out, "--skip", "aux1,aux2")
    assert r.code == 0, r.err
    assert "skipped 3 file layers (--skip): aux1.conv.conv, aux1.fc1, aux2.fc2" in r.out
    r = cli("weights", "import", "googlenet", tmp_path / "g.pth", "-o", out, "--skip", "aux3")
    assert r.code == 1 and "--skip aux3: no layer" in r.err


def test_known_misfits_name_their_likely_cause(tmp_path):
    conv1 = {"features.0.weight": torch.zeros(96, 3, 11, 11), "features.0.bias": torch.zeros(96)}
    torch.save(conv1, tmp_path / "caffe.pth")
    with pytest.raises(UserError, match="the file is Caffe's AlexNet .*use alexnet\\b"):
        import_weights(load("alexnet_tv"), tmp_path / "caffe.pth", tmp_path / "w.safetensors")
    conv1 = {"features.0.weight": torch.zeros(64, 3, 11, 11), "features.0.bias": torch.zeros(64)}
    torch.save(conv1, tmp_path / "tv.pth")
    with pytest.raises(UserError, match="torchvision's AlexNet .* use alexnet_tv"):
        import_weights(load("alexnet"), tmp_path / "tv.pth", tmp_path / "w.safetensors")
    tv_googlenet = {"conv1.conv.weight": torch.zeros(64, 3, 7, 7),
                    "conv1.bn.weight": torch.zeros(64), "conv1.bn.bias": torch.zeros(64),
                    "inception3a.branch1.conv.weight": torch.zeros(64, 192, 1, 1)}
    torch.save(tv_googlenet, tmp_path / "tvg.pth")
    with pytest.raises(UserError, match="torchvision's GoogLeNet .*bvlc_googlenet.caffemodel"):
        import_weights(load("googlenet"), tmp_path / "tvg.pth", tmp_path / "w.safetensors")
    r18 = load("resnet18")
    path, _ = torchvision_file(r18, build_module(r18), tmp_path, "safetensors")
    with pytest.raises(UserError, match=r"layer 11 of 73 \(in graph order\) has no partner"
                                        r"(.|\n)*fits the zoo's resnet, resnet18"):
        import_weights(load("resnet34"), path, tmp_path / "w.safetensors")
