"""A recipe's loss as a function of the image, and its gradient, whole or tile by tile.

The network is fixed (eval mode, no parameter gradients); only the image has a gradient. The
image is kept as RGB pixels in [0, 1]; :class:`Preprocess` turns it into the network's input
(the spec's ``scale``, channel ``layout``, ``mean`` and ``std``), so clipping to the valid pixel
range is clipping to [0, 1] whatever the network expects. Features come from the module's taps,
so only the layers the loss needs are computed.
"""

from __future__ import annotations

import numpy as np
import torch

from netc.compiler.ir import InputSpec
from netc.compiler.frontend.recipe import Plan, Term
from netc.runtime.recipes import losses
from netc.runtime.recipes.images import cover


class Preprocess:
    """Pixels in [0, 1] (RGB, ``(1, 3, H, W)``) to the network's input space."""

    def __init__(self, spec: InputSpec):
        self.scale = float(spec.scale)
        self.layout = spec.layout
        channels = spec.shape[0]
        mean = torch.tensor(spec.mean or [0.0] * channels, dtype=torch.float32)
        std = torch.tensor(spec.std or [1.0] * channels, dtype=torch.float32)
        self.mean, self.std = mean.view(1, -1, 1, 1), std.view(1, -1, 1, 1)
        # The mean pixel in RGB [0, 1] units: where the regularisers centre the image.
        pixel = (mean / self.scale).tolist() if spec.mean else [0.5] * channels
        if self.layout == "bgr":
            pixel = pixel[::-1]
        if len(pixel) == 1:
            pixel = pixel * 3
        self.mean_pixel = torch.tensor(pixel, dtype=torch.float32).view(1, 3, 1, 1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x * self.scale
        if self.layout == "bgr":
            x = x.flip(1)
        elif self.layout == "gray":
            x = x.mean(dim=1, keepdim=True)
        return (x - self.mean) / self.std

    def centred(self, x: torch.Tensor) -> torch.Tensor:
        """The centred 0-255 image the Mahendran-Vedaldi regularisers are stated for."""
        return 255.0 * (x - self.mean_pixel)


def to_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None].float()


def to_image(x: torch.Tensor) -> np.ndarray:
    return x.detach()[0].permute(1, 2, 0).clamp(0, 1).numpy()


_FEATURE_TERMS = ("content", "style", "code", "activation")


class Objective:
    """The recipe's weighted loss. Call :meth:`prepare` with the working size, then
    :meth:`gradient` (whole image) or :meth:`tiled_gradient` (tile by tile)."""

    def __init__(self, plan: Plan, net, content: np.ndarray | None = None,
                 styles: list[np.ndarray] | None = None):
        self.plan, self.net = plan, net
        self.prep = Preprocess(plan.input)
        self.content, self.styles = content, list(styles or [])
        blend = np.asarray(plan.blend or [1.0] * len(self.styles), dtype=np.float64)
        self.blend = (blend / blend.sum()).tolist() if len(blend) else []
        self.taps = [n for n in plan.taps]
        self.size: tuple[int, int] | None = None
        self.targets: dict[tuple[int, str], torch.Tensor] = {}
        self.content_x: torch.Tensor | None = None

    def features(self, x: torch.Tensor, taps: list[str] | None = None) -> dict:
        return self.net(self.prep(x), taps=taps or self.taps)

    # ---- targets -----------------------------------------------------------------------------
    @torch.no_grad()
    def prepare(self, height: int, width: int) -> None:
        """Compute the targets (content features, blended style Grams) for this image size."""
        if self.size == (height, width):
            return
        self.size, self.targets = (height, width), {}
        if self.content is not None:
            self.content_x = to_tensor(cover(self.content, height, width))
        content_taps = [n for t in self.plan.terms if t.kind in ("content", "code")
                        for n in t.layers]
        if content_taps:
            feats = self.features(self.content_x, content_taps)
            for i, t in enumerate(self.plan.terms):
                if t.kind in ("content", "code"):
                    self.targets[(i, t.layers[0])] = feats[t.layers[0]]
        style_taps = [n for t in self.plan.terms if t.kind == "style" for n in t.layers]
        if style_taps:
            for img, b in zip(self.styles, self.blend, strict=True):
                feats = self.features(to_tensor(cover(img, height, width)), style_taps)
                for i, t in enumerate(self.plan.terms):
                    for n in t.layers if t.kind == "style" else ():
                        g = b * losses.gram(feats[n])
                        key = (i, n)
                        self.targets[key] = self.targets[key] + g if key in self.targets else g

    # ---- the loss on a whole image -----------------------------------------------------------
    def terms(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each term's weighted value (a differentiable scalar), by label."""
        need = self.taps if any(t.kind in _FEATURE_TERMS for t in self.plan.terms) else []
        feats = self.features(x, need) if need else {}
        out: dict[str, torch.Tensor] = {}
        for i, t in enumerate(self.plan.terms):
            out[_unique(out, t.label)] = t.weight * self._value(i, t, x, feats)
        return out

    def _value(self, i: int, t: Term, x: torch.Tensor, feats: dict) -> torch.Tensor:
        if t.kind == "content":
            return losses.content(feats[t.layers[0]], self.targets[(i, t.layers[0])])
        if t.kind == "code":
            return losses.code(feats[t.layers[0]], self.targets[(i, t.layers[0])])
        if t.kind == "style":
            return losses.style([feats[n] for n in t.layers],
                                [self.targets[(i, n)] for n in t.layers], list(t.layer_weights))
        if t.kind == "activation":
            return losses.activation(feats[t.layers[0]], t.option("channel"))
        if t.kind == "alpha_norm":
            return losses.alpha_norm(self.prep.centred(x), t.option("alpha"), t.option("bound"))
        if t.kind == "tv":
            return losses.tv(self.prep.centred(x), t.option("beta"), t.option("bound"))
        raise ValueError(f"no loss for term {t.kind!r}")  # compiler/recipe.py lists the kinds

    def gradient(self, x: torch.Tensor) -> tuple[float, dict[str, float]]:
        """Loss and its terms at ``x`` (a leaf with ``requires_grad``); fills ``x.grad``."""
        parts = self.terms(x)
        total = sum(parts.values())
        total.backward()
        return float(total.detach()), {k: float(v.detach()) for k, v in parts.items()}

    # ---- the loss tile by tile ---------------------------------------------------------------
    def tiled_gradient(self, x: torch.Tensor, tile: int,
                       rng: np.random.Generator) -> tuple[float, dict[str, float]]:
        """Like :meth:`gradient`, computing features one ``tile`` × ``tile`` window at a time.

        The image (and the content image) is first rolled by a random offset, so tile borders
        fall somewhere else at every step and leave no seams. Content and activation terms are
        sums over positions, so tiles add up. A style Gram is a sum over positions too: a first
        pass without gradients accumulates G over all tiles; the second pass back-propagates,
        per tile, the surrogate Σ W ⊙ F_t F_tᵀ with W = 2c(G − A), c = 1/(4N²M²), whose
        gradient 4c(G − A)F_t is exactly dE/dF_t. Image-space terms use the whole image.
        """
        height, width = x.shape[-2:]
        oy, ox = (int(v) for v in rng.integers(0, tile, 2))
        xr = torch.roll(x.detach(), (oy, ox), (-2, -1))
        cr = torch.roll(self.content_x, (oy, ox), (-2, -1)) if self.content_x is not None \
            else None
        if getattr(self, "_smallest", None) is None:
            from netc.compiler.frontend.recipe import smallest_side

            self._smallest = smallest_side(self.plan)
        windows = [(slice(None), slice(None), slice(*rows), slice(*cols))
                   for rows in _spans(height, tile, self._smallest)
                   for cols in _spans(width, tile, self._smallest)]
        feature_terms = [(i, t) for i, t in enumerate(self.plan.terms)
                         if t.kind in _FEATURE_TERMS]
        sums, weights = self._style_surrogates(xr, windows, feature_terms)
        grad = torch.zeros_like(x)
        for win in windows:
            xt = xr[win].clone().requires_grad_(True)
            self._tile_loss(xt, cr[win] if cr is not None else None, feature_terms, weights,
                            sums).backward()
            grad[win] = xt.grad
        grad = torch.roll(grad, (-oy, -ox), (-2, -1))
        total, parts = self._image_terms(x, sums)
        x.grad = grad if x.grad is None else x.grad + grad
        return total, parts

    def _style_surrogates(self, xr, windows, feature_terms):
        """The first pass of :meth:`tiled_gradient`: every style Gram accumulated over the
        tiles without gradients. Returns each feature term's running sum (the style terms'
        values, complete) and each style layer's surrogate weight W = 2c(G − A)."""
        grams: dict[tuple[int, str], torch.Tensor] = {}
        positions: dict[tuple[int, str], int] = {}
        style = [(i, t) for i, t in feature_terms if t.kind == "style"]
        if style:
            with torch.no_grad():
                for win in windows:
                    feats = self.features(xr[win], [n for _, t in style for n in t.layers])
                    for i, t in style:
                        for n in t.layers:
                            f = feats[n]
                            grams[(i, n)] = grams.get((i, n), 0) + losses.gram(f)
                            positions[(i, n)] = positions.get((i, n), 0) + f.shape[-2] * f.shape[-1]
        sums: dict[int, float] = {i: 0.0 for i, _ in feature_terms}
        weights: dict[tuple[int, str], torch.Tensor] = {}
        for i, t in style:
            for n, lw in zip(t.layers, t.layer_weights):
                g, a = grams[(i, n)], self.targets[(i, n)]
                c = 1.0 / (4.0 * g.shape[0] ** 2 * positions[(i, n)] ** 2)
                sums[i] += t.weight * lw * c * float((g - a).pow(2).sum())
                weights[(i, n)] = t.weight * lw * 2.0 * c * (g - a)
        return sums, weights

    def _tile_loss(self, xt, content_tile, feature_terms, weights, sums) -> torch.Tensor:
        """The feature terms' loss on one tile (style as its surrogate); adds the content and
        activation values to ``sums``."""
        feats = self.features(xt)
        loss = xt.new_zeros(())
        for i, t in feature_terms:
            f = feats[t.layers[0]]
            if t.kind == "content":
                with torch.no_grad():
                    p = self.features(content_tile, [t.layers[0]])[t.layers[0]]
                value = t.weight * losses.content(f, p)
            elif t.kind == "activation":
                value = t.weight * losses.activation(f, t.option("channel"))
            elif t.kind == "style":
                value = sum((weights[(i, n)] * losses.gram(feats[n])).sum() for n in t.layers)
            else:  # code: a whole-image quantity, refused for tiling by the command
                raise ValueError("code terms cannot be tiled")
            if t.kind != "style":
                sums[i] += float(value.detach())
            loss = loss + value
        return loss

    def _image_terms(self, x, sums: dict[int, float]) -> tuple[float, dict[str, float]]:
        """The total and each term's value: the feature terms' ``sums``, and the image-space
        terms computed on the whole image (their gradient added to ``x.grad``)."""
        parts: dict[str, float] = {}
        total = 0.0
        image_loss = None
        for i, t in enumerate(self.plan.terms):
            if i in sums:
                value = sums[i]
            else:
                v = t.weight * self._value(i, t, x, {})
                image_loss = v if image_loss is None else image_loss + v
                value = float(v.detach())
            parts[_unique(parts, t.label)] = value
            total += value
        if image_loss is not None:
            image_loss.backward()
        return total, parts


def _unique(seen: dict, label: str) -> str:
    if label not in seen:
        return label
    k = 2
    while f"{label}#{k}" in seen:
        k += 1
    return f"{label}#{k}"


def _spans(size: int, tile: int, smallest: int) -> list[tuple[int, int]]:
    """[start, end) pieces of ``size`` of ``tile`` each; a last piece narrower than
    ``smallest`` (a 4-pixel remainder a 3x3 conv and a pool cannot take) joins the one before.

    >>> _spans(100, 32, 8)
    [(0, 32), (32, 64), (64, 100)]
    """
    spans = [(s, min(s + tile, size)) for s in range(0, size, tile)]
    if len(spans) > 1 and spans[-1][1] - spans[-1][0] < smallest:
        spans[-2:] = [(spans[-2][0], spans[-1][1])]
    return spans
