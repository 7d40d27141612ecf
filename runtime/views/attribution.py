"""Which pixels drive one unit: saliency, deconvnet and guided backprop maps, and their picture.

The unit is channel ``k`` of a named layer. For a feature map it is the channel's strongest
activation, as Zeiler and Fergus visualise "the strongest activation" of a feature map; for a
flat layer (fc, class scores) it is unit ``k``. The map is the signal that reaches the image when
that one value is sent back through the network with the method's rule at every ReLU
(:mod:`netc.compiler.lower_torch.attribution`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from netc.compiler.lower_torch.attribution import METHODS, backward_rule
from netc.dsl.diagnostics import UserError

TITLES = {"saliency": "saliency (gradient)", "deconvnet": "deconvnet (Zeiler-Fergus)",
          "guided": "guided backprop"}


@dataclass(frozen=True)
class Attribution:
    """One map (C×H×W, like the input) and the unit it explains."""

    method: str
    channel: int
    position: tuple[int, ...]  # (h, w) in the feature map; () for a flat layer
    value: float               # the unit's activation
    map: np.ndarray


def check_channel(shape: tuple[int, ...], channel: int | None, layer: str) -> None:
    if channel is not None and not 0 <= channel < shape[0]:
        raise UserError(f"--channel {channel}: {layer} has {shape[0]} channels "
                        f"(0..{shape[0] - 1})")


def attribute(net, x: np.ndarray, layer: str, method: str, channel: int | None = None
              ) -> Attribution:
    """The ``method`` map of ``layer``'s unit ``channel`` for one input ``x`` (C×H×W).

    ``channel=None`` picks the channel with the largest activation.
    """
    import torch

    if method not in METHODS:
        raise UserError(f"--method {method}: expected one of {', '.join(METHODS)}")
    xt = torch.from_numpy(np.ascontiguousarray(x))[None].requires_grad_(True)
    with backward_rule(net, method):
        out = net(xt, taps=[layer])[layer][0]
        check_channel(tuple(out.shape), channel, layer)
        flat = out.reshape(out.shape[0], -1)
        if channel is None:
            channel = int(flat.max(dim=1).values.argmax())
        where = int(flat[channel].argmax())
        position = tuple(int(i) for i in np.unravel_index(where, tuple(out.shape[1:])))
        value = flat[channel, where]
        value.backward()
    return Attribution(method, channel, position, float(value.detach()), xt.grad[0].numpy().copy())


def explain_picture(shown: np.ndarray, maps: list[Attribution], heading: str, size: int = 256):
    """The image beside each method's map (signed: grey is zero) and, for one method, its heat
    map; for several methods the heat maps go on a second row, under their maps."""
    from netc.runtime.views.pictures import attribution_rgb, heat_rgb, labelled_grid

    if len(maps) == 1:
        cells = [shown, attribution_rgb(maps[0].map), heat_rgb(maps[0].map)]
        captions = ["image", TITLES[maps[0].method], "|map|, max over channels"]
        return labelled_grid(cells, 3, size, captions, title=heading)
    cells = [shown] + [attribution_rgb(a.map) for a in maps]
    cells += [None] + [heat_rgb(a.map) for a in maps]
    captions = ["image"] + [TITLES[a.method] for a in maps] + [""] + ["|map|"] * len(maps)
    return labelled_grid(cells, 1 + len(maps), size, captions, title=heading)
