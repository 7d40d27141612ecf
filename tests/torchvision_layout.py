"""torchvision's state-dict names for netc's torchvision-derived zoo nets, written by hand.

The tests build a "torchvision file" from a netc module's state dict renamed with these
functions, so the pairing code under test never sees the correspondence. The names follow
torchvision's model code: ``features.N`` counts every module of the ``nn.Sequential``
(conv, bn, ReLU, pool), ``classifier.N`` likewise; ResNets are ``layerI.J.convK``/``bnK`` with
``downsample.0``/``downsample.1`` for the projection.
"""

from __future__ import annotations

import json
import math
import re
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from netc.compiler.frontend.loader import load
from netc.compiler.importers.pairing import spec_layers
from netc.compiler.lower_torch.module import build_module
from netc.runtime.weights import Source, map_weights
from netc.runtime.weights.rename import renamed_source, rules_from

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


# ---- torchvision's ConvNeXt-T and ViT-B/16, written out by hand --------------------------------
# torchvision cannot be installed here; these follow torchvision/models/convnext.py and
# vision_transformer.py module by module, so that their state dicts have torchvision's keys in
# torchvision's order (tests check that against shared/reference/torchvision/*.json).
REFERENCE = Path(__file__).resolve().parent.parent / ".." / "shared" / "reference" / "torchvision"


def reference_layout(name: str) -> list[tuple[str, tuple[int, ...]]]:
    """``torchvision.models.NAME(weights=None).state_dict()``'s keys and shapes, in order."""
    data = json.loads((REFERENCE / f"{name}.state_dict.json").read_text())
    return [(key, tuple(shape)) for key, shape, _ in data["state_dict"]]


def random_state(name: str, seed: int = 0) -> dict:
    """A state dict in torchvision's layout of ``name`` with random values: weights of fan-in
    scale (so a deep net's activations stay of ordinary size), norms' weights near 1."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for key, shape in reference_layout(name):
        values = torch.randn(shape, generator=gen)
        if len(shape) >= 2:
            values *= math.prod(shape[1:]) ** -0.5
        elif key.endswith("weight"):
            values = 1 + 0.1 * values
        else:
            values *= 0.1
        out[key] = values
    return out


class Permute(nn.Module):
    def __init__(self, dims):
        super().__init__()
        self.dims = dims

    def forward(self, x):
        return x.permute(*self.dims)


class LayerNorm2d(nn.LayerNorm):
    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class CNBlock(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2d(dim, dim, 7, padding=3, groups=dim), Permute([0, 2, 3, 1]),
            nn.LayerNorm(dim, eps=1e-6), nn.Linear(dim, 4 * dim), nn.GELU(),
            nn.Linear(4 * dim, dim), Permute([0, 3, 1, 2]))
        self.layer_scale = nn.Parameter(torch.full((dim, 1, 1), 1e-6))

    def forward(self, x):  # stochastic depth is the identity in eval mode
        return self.layer_scale * self.block(x) + x


class ConvNeXt(nn.Module):
    def __init__(self, dims=(96, 192, 384, 768), depths=(3, 3, 9, 3), classes=1000):
        super().__init__()
        layers = [nn.Sequential(nn.Conv2d(3, dims[0], 4, 4), LayerNorm2d(dims[0], eps=1e-6))]
        for i, (dim, depth) in enumerate(zip(dims, depths)):
            layers.append(nn.Sequential(*(CNBlock(dim) for _ in range(depth))))
            if i + 1 < len(dims):
                layers.append(nn.Sequential(LayerNorm2d(dim, eps=1e-6),
                                            nn.Conv2d(dim, dims[i + 1], 2, 2)))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(LayerNorm2d(dims[-1], eps=1e-6), nn.Flatten(1),
                                        nn.Linear(dims[-1], classes))

    def forward(self, x):
        return self.classifier(self.avgpool(self.features(x)))


class EncoderBlock(nn.Module):
    def __init__(self, heads, dim, mlp):
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim, eps=1e-6)
        self.self_attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.dropout = nn.Dropout(0.0)
        self.ln_2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp), nn.GELU(), nn.Dropout(0.0),
                                 nn.Linear(mlp, dim), nn.Dropout(0.0))

    def forward(self, x):
        y = self.ln_1(x)
        y, _ = self.self_attention(y, y, y, need_weights=False)
        x = x + self.dropout(y)
        return x + self.mlp(self.ln_2(x))


class Encoder(nn.Module):
    def __init__(self, length, layers, heads, dim, mlp):
        super().__init__()
        self.pos_embedding = nn.Parameter(torch.empty(1, length, dim).normal_(std=0.02))
        self.dropout = nn.Dropout(0.0)
        self.layers = nn.Sequential(OrderedDict(
            (f"encoder_layer_{i}", EncoderBlock(heads, dim, mlp)) for i in range(layers)))
        self.ln = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x):
        return self.ln(self.layers(self.dropout(x + self.pos_embedding)))


class VisionTransformer(nn.Module):
    def __init__(self, image=224, patch=16, layers=12, heads=12, dim=768, mlp=3072,
                 classes=1000):
        super().__init__()
        self.conv_proj = nn.Conv2d(3, dim, patch, patch)
        self.class_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.encoder = Encoder((image // patch) ** 2 + 1, layers, heads, dim, mlp)
        self.heads = nn.Sequential(OrderedDict(head=nn.Linear(dim, classes)))

    def forward(self, x):
        x = self.conv_proj(x).flatten(2).transpose(1, 2)  # (n, h*w, dim)
        x = torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], 1)
        return self.heads(self.encoder(x)[:, 0])


def reference_module(name: str):
    """The hand-written torchvision module class of ``name`` (``convnext_tiny``,
    ``vit_b_16``), or of one of their blocks (``cnblock``, ``encoder_block``)."""
    return {"convnext_tiny": ConvNeXt, "vit_b_16": VisionTransformer, "cnblock": CNBlock,
            "encoder_block": EncoderBlock}[name]


def timm_vit_keys(state: dict) -> dict:
    """A torchvision ViT state dict as timm names its ViTs (``blocks.0.attn.qkv``,
    ``cls_token``, ``pos_embed``): the keys a user's own checkpoint may have."""
    rules = [(r"^class_token$", "cls_token"), (r"^encoder\.pos_embedding$", "pos_embed"),
             (r"^conv_proj\.", "patch_embed.proj."),
             (r"^encoder\.layers\.encoder_layer_(\d+)\.", r"blocks.\1."),
             (r"\.ln_1\.", ".norm1."), (r"\.ln_2\.", ".norm2."),
             (r"\.self_attention\.in_proj_(weight|bias)$", r".attn.qkv.\1"),
             (r"\.self_attention\.out_proj\.", ".attn.proj."),
             (r"\.mlp\.0\.", ".mlp.fc1."), (r"\.mlp\.3\.", ".mlp.fc2."),
             (r"^encoder\.ln\.", "norm."), (r"^heads\.head\.", "head.")]
    out = {}
    for key, value in state.items():
        for pattern, replacement in rules:
            key = re.sub(pattern, replacement, key)
        out[key] = value
    return out


# The --rename rules that take timm's names back to torchvision's (what a user would write).
TIMM_TO_TORCHVISION = [
    r"^cls_token$=class_token", r"^pos_embed$=encoder.pos_embedding",
    r"^patch_embed\.proj\.=conv_proj.", r"^blocks\.(\d+)\.=encoder.layers.encoder_layer_\1.",
    r"\.norm1\.=.ln_1.", r"\.norm2\.=.ln_2.",
    r"\.attn\.qkv\.(weight|bias)$=.self_attention.in_proj_\1",
    r"\.attn\.proj\.=.self_attention.out_proj.", r"\.mlp\.fc1\.=.mlp.0.",
    r"\.mlp\.fc2\.=.mlp.3.", r"^norm\.=encoder.ln.", r"^head\.=heads.head."]


# ---- importing such state dicts into the zoo's nets (tests/test_weights_reach.py) ---------------
FORWARD_ORDER = {  # some of torchvision's keys, in the order its forward uses them
    "convnext_tiny": ["features.0.0.weight", "features.0.1.weight", "features.1.0.block.0.weight",
                      "features.1.0.block.2.weight", "features.1.0.block.3.weight",
                      "features.1.0.block.5.weight", "features.1.0.layer_scale",
                      "features.1.1.block.0.weight", "features.1.2.layer_scale",
                      "features.2.0.weight", "features.2.1.weight", "features.7.2.layer_scale",
                      "classifier.0.weight", "classifier.2.weight"],
    "vit_b_16": ["conv_proj.weight", "class_token", "encoder.pos_embedding",
                 "encoder.layers.encoder_layer_0.ln_1.weight",
                 "encoder.layers.encoder_layer_0.self_attention.in_proj_weight",
                 "encoder.layers.encoder_layer_0.self_attention.out_proj.weight",
                 "encoder.layers.encoder_layer_0.ln_2.weight",
                 "encoder.layers.encoder_layer_0.mlp.0.weight",
                 "encoder.layers.encoder_layer_0.mlp.3.weight",
                 "encoder.layers.encoder_layer_1.ln_1.weight",
                 "encoder.layers.encoder_layer_11.mlp.3.weight", "encoder.ln.weight",
                 "heads.head.weight"]}


def mapped_in_memory(graph, state: dict, rename=()):
    """``map_weights`` on a state dict held in memory (no 350 MB file for ViT-B/16)."""
    arrays = {k: v.numpy() for k, v in state.items()}
    source = Source(Path("<tensors>"), {k: v.shape for k, v in arrays.items()}, arrays)
    source, warnings = renamed_source(source, rules_from(rename))
    assert not warnings
    return map_weights(graph, source)


def check_lands_where_torchvision_uses_it(name, graph, state, mapped):
    """Every file tensor is used once, unchanged but for size-1 axes, and the spec's layers
    take torchvision's tensors in the order torchvision's forward uses them."""
    assert sorted(row.file_key for row in mapped.rows) == sorted(state)
    for row in mapped.rows:
        np.testing.assert_array_equal(mapped.tensors[row.key],
                                      state[row.file_key].numpy().reshape(row.shape))
    index = {layer.name: i for i, layer in enumerate(spec_layers(graph))}
    at = {row.file_key: index[row.layer] for row in mapped.rows}
    order = [at[k] for k in FORWARD_ORDER[name]]
    assert order == sorted(order), list(zip(FORWARD_ORDER[name], order))


# ---- helpers the weights tests share -----------------------------------------------------------
def randomise(module: nn.Module, seed: int) -> None:
    """Random values in every tensor (variances positive), so nothing matches by accident."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.rand(t.shape, generator=gen) * 0.5 + 0.5 if "var" in name
                        else torch.randn(t.shape, generator=gen) * 0.3)


def same_outputs(spec, weights, ref: nn.Module, x: torch.Tensor) -> None:
    """netc's module of ``spec`` (a path, or a loaded graph) with ``weights`` computes what
    ``ref`` computes (eval mode, float64, to 1e-6)."""
    module = build_module(load(spec) if isinstance(spec, str) else spec, seed=9)
    module.load_named(weights)
    module, ref = module.double().eval(), ref.double().eval()
    with torch.no_grad():
        got, want = module(x.double()), ref(x.double())
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
