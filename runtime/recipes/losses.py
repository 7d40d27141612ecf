"""The loss terms of recipes, each a small function of tensors, following the papers' formulas.

Feature maps are ``(1, C, H, W)`` or ``(C, H, W)`` tensors (one image); images given to the
image-space regularisers are *centred 0-255 images*, ``255 · (x − mean pixel)``, the input space
Mahendran and Vedaldi's constants (B = 80) are stated in. ``shared/reference/SEMANTICS.md``
sections e, f and g hold the sources; each docstring says where the paper and its reference code
differ and which one netc follows.

>>> import torch
>>> f = torch.tensor([[[[1.0, 2.0]], [[0.0, 1.0]]]])      # C=2, H=1, W=2
>>> gram(f)
tensor([[5., 2.],
        [2., 1.]])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def content(f: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """Gatys et al. 2015 (arXiv 1508.06576), eq. 1: L_content = ½ Σ (F − P)².

    Follows the paper. jcjohnson/neural-style's code uses ``content_weight × MSE(F, P)``, i.e.
    (1/(C·H·W)) Σ (F − P)² without the ½; a recipe can reproduce it with the term's weight.
    """
    return 0.5 * (f - p).pow(2).sum()


def gram(f: torch.Tensor) -> torch.Tensor:
    """G = F Fᵀ with F the N × M matrix of a layer's N channels over its M = H·W positions.

    Unnormalised, as in the paper (the code divides by N·M; see :func:`style_layer`).
    """
    n = f.shape[-3]
    flat = f.reshape(n, -1)
    return flat @ flat.t()


def style_layer(g: torch.Tensor, a: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Gatys et al. 2015, eq. 4: E_l = 1/(4 N_l² M_l²) Σ (G^l − A^l)².

    Follows the paper. neural-style's code divides each Gram by N·M and averages the squared
    difference over the N² entries, 1/(N⁴ M²) Σ (ΔG)² in all: it adds 1/N² and drops the ¼.
    """
    return (g - a).pow(2).sum() / (4.0 * n * n * m * m)


def style(feats: list[torch.Tensor], targets: list[torch.Tensor],
          weights: list[float]) -> torch.Tensor:
    """Gatys et al. 2015, eq. 5: L_style = Σ_l w_l E_l, the targets A^l already Gram matrices.

    The paper's w_l is 1/5 over its five layers (netc's default is 1/L for L layers);
    neural-style gives every layer the full style weight. Several style images: their Grams
    are blended with weights normalised to sum to 1 *before* this function (neural-style's
    ``-style_blend_weights``; the paper has one style image).
    """
    total = feats[0].new_zeros(())
    for f, a, w in zip(feats, targets, weights, strict=True):
        n, m = f.shape[-3], f.shape[-2] * f.shape[-1]
        total = total + w * style_layer(gram(f), a, n, m)
    return total


def code(phi: torch.Tensor, phi0: torch.Tensor) -> torch.Tensor:
    """Mahendran & Vedaldi, CVPR 2015 (arXiv 1412.0035): ‖Φ(x) − Φ₀‖² / ‖Φ₀‖².

    The normalised representation loss as coded in aravindhm/deep-goggle ``invert_nn.m``, where
    ‖Φ₀‖² is ``y0_sigma²``. The paper writes Φ(σx) and keeps σ outside the regularisers; the
    code divides the regularisers by σ² instead. netc follows the 2016 follow-up (IJCV,
    nnpreimage), whose regularisers carry their own normalisation (:func:`alpha_norm`,
    :func:`tv`), so this term has no σ. A zero target code has no scale: it is divided by 1.
    """
    norm = phi0.pow(2).sum()
    diff = (phi - phi0).pow(2).sum()
    return diff / norm if float(norm) > 0 else diff


def activation(a: torch.Tensor, channel: int | None = None) -> torch.Tensor:
    """DeepDream's ``objective_L2`` (google/deepdream dream.ipynb): ½‖a‖², to be *maximised*.

    The notebook sets ``dst.diff = dst.data``, the gradient of ½‖a‖²; with ``channel`` only that
    feature map counts (the notebook's per-channel examples). In a recipe's loss, which netc
    minimises, write it with a minus sign: ``loss = -activation(inception_4c)``.
    """
    if channel is not None:
        a = a[..., channel, :, :] if a.dim() >= 3 else a[..., channel]
    return 0.5 * a.pow(2).sum()


def alpha_norm(x: torch.Tensor, alpha: float = 6.0, bound: float = 80.0) -> torch.Tensor:
    """Mahendran & Vedaldi, IJCV 2016 (nnpreimage): R_α = (1/HW) Σ_p (‖x_p‖ / B)^α.

    ``x`` is the centred 0-255 image ``(1, C, H, W)``; ‖x_p‖ is the Euclidean norm of pixel p's
    colour vector and B = 80 a typical pixel norm, so λ_α = B^−α is folded in. The CVPR 2015
    code used Σ x^α over every value with λ_α = 8e-10 divided by σ² = 27098.1²; netc follows
    the 2016 form, which does not depend on the image size. α = 6 in both.
    """
    sq = x.pow(2).sum(dim=-3) / (bound * bound)
    return sq.pow(alpha / 2).mean()


def tv(x: torch.Tensor, beta: float = 2.0, bound: float = 80.0) -> torch.Tensor:
    """Mahendran & Vedaldi's total variation: R_TV = (1/HW) Σ_p ((d1² + d2²) / V²)^(β/2).

    d1 and d2 are forward differences along x and y, zero at the last column and row (the code
    replicates the border). V = B / 6.5, i.e. λ_TV = (6.5/B)^β as in nnpreimage
    ``get_defaults.m``; squared differences are summed over colour channels inside the power
    (for β = 2, the papers' value, this equals summing per channel). The CVPR 2015 code sums
    without the 1/HW and weights by λ_TV/(2σ²); neural-style's TV is ½ Σ of squared differences
    over the (H−1)×(W−1) region, injected as a gradient only.
    """
    d1 = F.pad(x[..., :, 1:] - x[..., :, :-1], (0, 1))  # zero at the last column
    d2 = F.pad(x[..., 1:, :] - x[..., :-1, :], (0, 0, 0, 1))  # and at the last row
    v = bound / 6.5
    sq = (d1.pow(2) + d2.pow(2)).sum(dim=-3) / (v * v)
    return sq.pow(beta / 2).mean() if beta != 2 else sq.mean()
