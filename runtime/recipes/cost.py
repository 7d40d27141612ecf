"""What a recipe run will cost, worked out from the graph before any tensor exists.

The estimate counts, for the image size of the run, the float32 activations of every node the
loss needs (the backward slice of its taps, nothing past them) and their weights. An optimisation
step keeps each activation for the backward pass and holds gradients of similar size, so the
estimate is ``2 × activations + weights``; the targets (content and style features) are small
next to it and computed once without gradients.

>>> from netc.compiler.frontend.loader import load
>>> c = estimate(load("vgg16"), ["conv1_2"], 224, 224)
>>> c.layers, c.weight_bytes, c.activation_bytes == 4 * (3 + 3 * 64) * 224 * 224
(4, 154880, True)

A shared block's weights are counted once, however many times it is applied:

>>> from netc.compiler.frontend.loader import load_text
>>> g = load_text("net n { input image: 3x8x8 share t = conv(3, 3, pad=1) "
...               "image -> t -> relu -> t }", "n.net")
>>> estimate(g, [list(g.nodes)[-1]], 8, 8).weight_bytes == 4 * (3 * 3 * 3 * 3 + 3)
True
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from netc.compiler.analyses.budget import workspace
from netc.compiler.analyses.summary import human_bytes
from netc.compiler.ir import Graph
from netc.dsl.diagnostics import UserError

FLOAT = 4  # bytes


@dataclass(frozen=True, slots=True)
class Cost:
    height: int
    width: int
    layers: int  # nodes computed (input included)
    total_layers: int
    activation_bytes: int
    weight_bytes: int

    @property
    def total(self) -> int:
        return 2 * self.activation_bytes + self.weight_bytes

    def describe(self) -> str:
        return (f"{self.height}x{self.width}, computes {self.layers} of {self.total_layers} "
                f"nodes, about {human_bytes(self.total)} (activations "
                f"{human_bytes(self.activation_bytes)} x2 for gradients, weights "
                f"{human_bytes(self.weight_bytes)})")


def estimate(graph: Graph, taps: list[str], height: int, width: int) -> Cost:
    """The cost of one forward and backward pass to ``taps`` on a ``height`` × ``width`` image:
    maps scale with the image, a token sequence's length with its area (a token per position
    of the map it was made from), and the largest working memory of one op (attention's
    L x L scores) is held with the activations."""
    nodes = graph.slice(taps)
    _, h0, w0 = next(iter(graph.inputs.values())).shape

    def scaled(shape):
        if len(shape) == 3:
            c, h, w = shape
            return (c, math.ceil(h * height / h0), math.ceil(w * width / w0))
        if len(shape) == 2:
            return (math.ceil(shape[0] * height * width / (h0 * w0)), shape[1])
        return shape

    acts = weights = scratch = 0
    for node in nodes:
        acts += math.prod(scaled(node.shape))
        if node.op != "input":
            ins = [graph[i].shape for i in node.inputs]
            if not node.shares:  # a shared layer's weights are its owner's, counted once
                weights += node.opdef.param_count(node.attrs, ins, node.shape)
            scratch = max(scratch, workspace(node, [scaled(s) for s in ins], scaled(node.shape)))
    return Cost(height, width, len(nodes), len(graph), FLOAT * (acts + scratch),
                FLOAT * weights)


def available_memory() -> int:
    """Bytes of memory free for this run (``MemAvailable``, else physical memory)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


def parse_size(text: str) -> int:
    """``512M``, ``2G``, ``800K`` or a plain number of bytes."""
    units = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    scale = 1
    if t and t[-1] in units:
        t, scale = t[:-1], units[t[-1]]
    try:
        number = float(t)
    except ValueError:
        number = math.nan
    # inf, nan, -1G and 0 are no budget; past 2**60 bytes (an exbibyte) is no machine.
    if not (math.isfinite(number) and 0 < number * scale <= 2**60 and number * scale >= 1):
        raise UserError(f"--max-memory expects a size such as 512M or 2G; got {text!r}")
    return int(number * scale)


def choose_tile(graph: Graph, taps: list[str], height: int, width: int,
                budget: int, smallest: int = 32) -> int | None:
    """The largest square tile (a multiple of 32 pixels) whose pass fits ``budget``, or None."""
    tile = (min(max(height, width), 4096) // 32) * 32
    while tile >= smallest:
        if estimate(graph, taps, min(tile, height), min(tile, width)).total <= budget:
            return tile
        tile -= 32
    return None
