"""torchvision's state-dict names for netc's torchvision-derived zoo nets, written by hand.

The tests build a "torchvision file" from a netc module's state dict renamed with these
functions, so the pairing code under test never sees the correspondence. The names follow
torchvision's model code: ``features.N`` counts every module of the ``nn.Sequential``
(conv, bn, ReLU, pool), ``classifier.N`` likewise; ResNets are ``layerI.J.convK``/``bnK`` with
``downsample.0``/``downsample.1`` for the projection.
"""

from __future__ import annotations

import re

# Small bottleneck ResNets from the zoo's own block definitions: the stride rules are the
# same as in resnet50 (layer2's first block strides), at a fraction of the weights.
BOTTLENECKS = """
include "resnet.net"
net mini_v1 {
  input image: 3x32x32
  image -> conv(16, 3, pad=1, bias=false) as conv1 -> bn as bn1 -> relu
        -> (bottleneck(8) * 2) as layer1
        -> (bottleneck(16, stride=2) -> bottleneck(16)) as layer2
        -> gap -> flatten -> fc(10) as fc
}
net mini_v15 {
  input image: 3x32x32
  image -> conv(16, 3, pad=1, bias=false) as conv1 -> bn as bn1 -> relu
        -> (bottleneck_v15(8) * 2) as layer1
        -> (bottleneck_v15(16, stride=2) -> bottleneck_v15(16)) as layer2
        -> gap -> flatten -> fc(10) as fc
}
"""


def resnet(key: str) -> str:
    """``layer2.bottleneck_v15_1.shortcut.conv1.weight`` -> ``layer2.0.downsample.0.weight``."""
    m = re.match(r"(layer\d)\.[a-z_0-9]*?_?(\d+)\.(.*)$", key)
    if not m:
        return key  # conv1, bn1, fc
    layer, block, rest = m.group(1), int(m.group(2)) - 1, m.group(3)
    rest = rest.replace("shortcut.conv1", "downsample.0").replace("shortcut.bn1", "downsample.1")
    return f"{layer}.{block}.{rest}"


def sequential(graph, state: dict) -> dict:
    """VGG (with or without bn) and torchvision's AlexNet: ``features.N``/``classifier.N``."""
    out, index, part = {}, 0, "features"
    rename = {}
    for node in graph:
        if node.op == "input":
            continue
        if node.op in ("flatten", "adaptive_avgpool"):  # torchvision's avgpool, then classifier
            part, index = "classifier", 0
            continue
        if node.op == "softmax":  # torchvision's nets end with the logits
            continue
        rename[node.name] = f"{part}.{index}"
        index += 1
    for key, value in state.items():
        layer, _, tensor = key.rpartition(".")
        out[f"{rename[layer]}.{tensor}"] = value
    return out
