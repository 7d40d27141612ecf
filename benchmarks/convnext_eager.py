"""ConvNeXt-T in torch eager: netc's module against torchvision's structure, turn by turn.

Issue 21 measured the ConvNeXt written without layer norm, permute or layer scale (its layer
norm built from reshape, avgpool, power and scale) 1.16x slower in eager forward than
torchvision's. torchvision cannot be installed here, so its ``convnext_tiny`` is rewritten
below from its source (``torchvision/models/convnext.py``: ``CNBlock``, ``LayerNorm2d``,
``Permute``, the stem, downsamples and classifier, as ``nn.Sequential``s), given torch's
seeded initial weights (layer scales drawn from U(0.2, 0.6), so that every block counts), and
its state dict imported into netc's module by ``netc weights import``'s pairing; the outputs
must agree before anything is timed.

Both run in eval mode, ``torch.no_grad``, 2 threads, batch 1 at 224x224, in rotating turns
(``benchmarks/_results.rotating``): the ratio netc/torchvision of each round is taken within
the round, so load from elsewhere falls on both alike. The ``convnext_eager`` section of
``benchmarks/RESULTS.md`` is written with the command.

    python benchmarks/convnext_eager.py                 # 1 minute (load 3), writes RESULTS.md
    python benchmarks/convnext_eager.py --rounds 10 --no-write
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._results import machine, publish, rotating  # noqa: E402


def torchvision_convnext_tiny():
    """torchvision.models.convnext_tiny's modules (weights=None), in its own layout."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class LayerNorm2d(nn.LayerNorm):
        def forward(self, x):
            x = x.permute(0, 2, 3, 1)
            x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
            return x.permute(0, 3, 1, 2)

    class Permute(nn.Module):
        def __init__(self, dims):
            super().__init__()
            self.dims = dims

        def forward(self, x):
            return torch.permute(x, self.dims)

    class CNBlock(nn.Module):
        def __init__(self, dim):
            super().__init__()
            self.block = nn.Sequential(
                nn.Conv2d(dim, dim, 7, padding=3, groups=dim), Permute([0, 2, 3, 1]),
                nn.LayerNorm(dim, eps=1e-6), nn.Linear(dim, 4 * dim), nn.GELU(),
                nn.Linear(4 * dim, dim), Permute([0, 3, 1, 2]))
            self.layer_scale = nn.Parameter(torch.ones(dim, 1, 1) * 1e-6)

        def forward(self, x):
            return x + self.layer_scale * self.block(x)  # eval: stochastic depth is identity

    layers = [nn.Sequential(nn.Conv2d(3, 96, 4, stride=4), LayerNorm2d(96, eps=1e-6))]
    dims, depths = (96, 192, 384, 768), (3, 3, 9, 3)
    for i, (dim, n) in enumerate(zip(dims, depths)):
        layers.append(nn.Sequential(*[CNBlock(dim) for _ in range(n)]))
        if i < 3:
            layers.append(nn.Sequential(LayerNorm2d(dim, eps=1e-6),
                                        nn.Conv2d(dim, dims[i + 1], 2, stride=2)))

    class ConvNeXt(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(*layers)
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.classifier = nn.Sequential(LayerNorm2d(768, eps=1e-6), nn.Flatten(1),
                                            nn.Linear(768, 1000))

        def forward(self, x):
            return self.classifier(self.avgpool(self.features(x)))

    return ConvNeXt()


def imported(graph, state: dict):
    """torchvision's state dict mapped onto netc's names by ``netc weights import``'s pairing
    (``map_weights``), which must take torchvision's layout with no rename rule."""
    from netc.runtime.weights import Source, map_weights

    arrays = {k: v.numpy() for k, v in state.items()}
    return map_weights(graph, Source(Path("<torchvision>"), {k: a.shape for k, a in
                                                             arrays.items()}, arrays))


def main(argv=None) -> int:
    import torch

    from netc.compiler.frontend.loader import load
    from netc.compiler.lower_torch.module import build_module

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    reference = torchvision_convnext_tiny().eval()
    with torch.no_grad():
        for name, value in reference.named_parameters():
            if name.endswith("layer_scale"):  # 1e-6 would hide every block
                value.uniform_(0.2, 0.6)
    graph = load("convnext_tiny")
    netc = build_module(graph, imported(graph, reference.state_dict()).tensors).eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        diff = float((netc(x) - reference(x)).abs().max())
        scale = float(reference(x).abs().max())
        assert diff <= 1e-5 * scale, f"the two modules differ: {diff:.3g} (max {scale:.3g})"

        def run(m):
            return lambda: m(x)

        times = rotating({"netc": run(netc), "torchvision": run(reference)}, args.rounds, 3)
    ratios = [a / b for a, b in zip(times["netc"], times["torchvision"])]
    ms = {k: 1000 * statistics.median(v) for k, v in times.items()}
    q = statistics.quantiles(ratios, n=10)
    command = "python benchmarks/convnext_eager.py" + "".join(
        f" --{k} {v}" for k, v, d in (("rounds", args.rounds, 20), ("threads", args.threads, 2))
        if v != d)
    text = "\n".join([
        "## ConvNeXt-T eager forward: netc's module and torchvision's structure",
        "",
        f"`{command}` ({machine()}; torch {torch.__version__}, {args.threads} threads, eval, "
        f"batch 1, 224x224, {args.rounds} rotating rounds). torchvision's convnext_tiny "
        "rewritten from its source with torch's seeded weights, layer scales drawn from "
        "U(0.2, 0.6) so that every block counts, imported into netc's module by `netc "
        "weights import`'s pairing (outputs agree to "
        f"{diff:.1e}, max |logit| {scale:.2g}). Issue 21's layer norm made of reshape, "
        "avgpool, power and scale was 1.16x torchvision's time.",
        "",
        "| module | median ms |",
        "| --- | --- |",
        f"| netc `convnext_tiny` | {ms['netc']:.1f} |",
        f"| torchvision structure | {ms['torchvision']:.1f} |",
        "",
        f"netc / torchvision per round: median {statistics.median(ratios):.3f} "
        f"(p10 {q[0]:.3f}, p90 {q[-1]:.3f}).",
    ])
    publish("convnext_eager", text, not args.no_write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
