"""One neural-style step: netc's taps against a straightforward PyTorch implementation.

Both sides compute the same loss (Gatys: content at conv4_2, style at conv1_1 ... conv5_1, the
paper's normalisations) and its gradient with respect to a 256x256 image, on the CPU, with the
same VGG-19 weights, in one process, interleaved:

- **netc**: ``NetModule(x, taps=[...])`` runs only the prefix of VGG-19 the loss needs
  (conv1_1 ... conv5_1), freeing each activation after its last use;
- **plain PyTorch**: a torchvision-style VGG-19 (``features``, adaptive pool, ``classifier``),
  forward hooks on the six layers, and the whole network run forward, as most tutorials do.

Also checks that both give the same loss. Writes its section of benchmarks/RESULTS.md.

    python benchmarks/recipes.py [--size 256] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

from _results import machine, write_section  # noqa: E402
from netc.compiler.frontend.loader import load  # noqa: E402
from netc.compiler.frontend.recipe import prefix_graph  # noqa: E402
from netc.compiler.lower_torch.module import build_module  # noqa: E402
from netc.compiler.numerics.seeded_weights import init_weights  # noqa: E402
from netc.runtime.recipes import losses  # noqa: E402

STYLE = ["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"]
CONTENT = "conv4_2"
VGG19 = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
         512, 512, 512, 512, "M"]


def plain_vgg19(weights) -> tuple[nn.Module, dict[str, nn.Module]]:
    """torchvision's VGG-19 layout, written out; returns it and the conv layers by Caffe name."""
    layers, named, cin, stage, i = [], {}, 3, 1, 1
    for v in VGG19:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
            stage, i = stage + 1, 1
            continue
        conv = nn.Conv2d(cin, v, 3, padding=1)
        conv.weight.data = torch.from_numpy(weights[f"conv{stage}_{i}.weight"])
        conv.bias.data = torch.from_numpy(weights[f"conv{stage}_{i}.bias"])
        named[f"conv{stage}_{i}"] = conv
        layers += [conv, nn.ReLU()]
        cin, i = v, i + 1
    classifier = [nn.Linear(512 * 7 * 7, 4096), nn.ReLU(), nn.Dropout(),
                  nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(), nn.Linear(4096, 1000)]
    for lin, name in zip(classifier[::3], ("fc6", "fc7", "fc8")):
        lin.weight.data = torch.from_numpy(weights[f"{name}.weight"])
        lin.bias.data = torch.from_numpy(weights[f"{name}.bias"])
    net = nn.Sequential(nn.Sequential(*layers), nn.AdaptiveAvgPool2d(7), nn.Flatten(),
                        *classifier)
    return net.eval(), named


def style_loss(feats, targets):
    content = losses.content(feats[CONTENT], targets[CONTENT])
    return content + 1e3 * losses.style([feats[n] for n in STYLE],
                                        [targets[n] for n in STYLE], [0.2] * 5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    torch.manual_seed(0)
    graph = load("vgg19")
    taps = [graph.resolve(n) for n in STYLE + [CONTENT]]
    t = time.perf_counter()
    weights = init_weights(graph, seed=0)
    build_module(graph, weights)
    build_whole = time.perf_counter() - t
    t = time.perf_counter()
    netc_net = build_module(prefix_graph(graph, taps), seed=0).eval()  # what netc recipe does
    build_prefix = time.perf_counter() - t
    plain, named = plain_vgg19(weights)
    for p in list(netc_net.parameters()) + list(plain.parameters()):
        p.requires_grad_(False)

    captured: dict[str, torch.Tensor] = {}
    for name, conv in named.items():
        if name in STYLE or name == CONTENT:
            conv.register_forward_hook(lambda m, i, o, name=name: captured.__setitem__(name, o))

    def netc_features(x):
        return netc_net(x, taps=STYLE + [CONTENT])

    def plain_features(x):
        captured.clear()
        plain(x)
        return dict(captured)

    size = args.size
    with torch.no_grad():
        content_img, style_img = torch.rand(1, 3, size, size), torch.rand(1, 3, size, size)
        f_content = netc_features(content_img)
        f_style = netc_features(style_img)
        targets = {CONTENT: f_content[CONTENT]} | {n: losses.gram(f_style[n]) for n in STYLE}
    x0 = torch.rand(1, 3, size, size)

    def step(features):
        x = x0.clone().requires_grad_(True)
        loss = style_loss(features(x), targets)
        loss.backward()
        return float(loss.detach()), x.grad

    (l_netc, g_netc), (l_plain, g_plain) = step(netc_features), step(plain_features)  # warm
    agree = abs(l_netc - l_plain) / abs(l_plain)
    grad_diff = float((g_netc - g_plain).abs().max() / g_plain.abs().max())
    loadavg = os.getloadavg()[0]
    times = {"netc": [], "plain": []}
    for _ in range(args.repeat):
        for name, fn in (("netc", netc_features), ("plain", plain_features)):
            t = time.perf_counter()
            step(fn)
            times[name].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    best = {k: min(v) for k, v in times.items()}
    computed = len(graph.slice(taps))

    def row(name):
        return f"{med[name]:.2f} s | {best[name]:.2f} s"

    text = f"""## Recipes: one neural-style step (`benchmarks/recipes.py`)

Machine: {machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads;
load average {loadavg:.1f} when the timing started (other jobs on the same cores slow both sides).
One step = forward to the loss's layers, the Gatys loss (content conv4_2, style conv1_1 ...
conv5_1), and the backward pass to a {size}x{size} image; VGG-19 with the same (random)
weights on both sides; {args.repeat} interleaved repeats after a warm-up.

| implementation | median | best |
|---|---|---|
| netc taps (computes {computed} of {len(graph)} nodes, up to conv5_1) | {row('netc')} |
| plain PyTorch, whole VGG-19 forward + hooks | {row('plain')} |

Building the network with seeded random weights: the whole VGG-19 {build_whole:.1f} s, the
prefix `netc recipe` builds {build_prefix:.1f} s (fc6 alone holds 103 M of the 144 M weights).

netc takes {med['netc'] / med['plain']:.2f}x the time of the hook version (median). The losses
agree to {agree:.1e} (relative), the image gradients to {grad_diff:.1e} of their largest value.
The difference is what the taps skip: conv5_2 ... conv5_4, pool5 and the three fc layers in the
forward pass (the backward pass is the same on both sides, since the loss does not depend on
the skipped layers); most of a step is the shared prefix and its backward pass.
"""
    print(text)
    write_section("recipes", text)


if __name__ == "__main__":
    main()
