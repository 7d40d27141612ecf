"""PyTorch modules for the fitted ops (``compiler/ops/fitted.py``): per-image normalisation and
the three faces of a PCA subspace (code, reconstruction, distance from the subspace).

A subspace's fitted values are buffers, not parameters: gradient descent (``netc train``) leaves
them as ``netc fit`` solved them, and they still travel in the state dict under the layer's name
(``face_space.components``). Only the torch lowering imports this module.
"""

from __future__ import annotations

import torch
import torch.nn as nn


class UnitNorm(nn.Module):
    """Per sample: subtract the mean of all its values (``center``), divide by the norm."""

    def __init__(self, center: bool, eps: float):
        super().__init__()
        self.center, self.eps = center, eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dims = tuple(range(1, x.dim()))
        if self.center:
            x = x - x.mean(dim=dims, keepdim=True)
        norm = x.pow(2).sum(dim=dims, keepdim=True).sqrt()
        return x / norm.clamp_min(self.eps)


class Subspace(nn.Module):
    """y = W(x − μ) (``code``), μ + WᵀW(x − μ) (``reconstruct``) or ‖(x − μ) − WᵀW(x − μ)‖
    (``distance``), W the k×F orthonormal ``components``; ``whiten`` divides the code by
    √variance."""

    def __init__(self, features: int, k: int, mode: str, whiten: bool = False):
        super().__init__()
        self.mode, self.whiten = mode, whiten
        self.register_buffer("mean", torch.zeros(features))
        self.register_buffer("components", torch.zeros(k, features))
        self.register_buffer("variance", torch.ones(k))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = x - self.mean
        y = d @ self.components.t()
        if self.mode == "code":
            return y / self.variance.sqrt() if self.whiten else y
        p = y @ self.components
        if self.mode == "reconstruct":
            return p + self.mean
        return (d - p).pow(2).sum(dim=1, keepdim=True).sqrt()
