"""PyTorch modules for the ops with several inputs: joins, residual additions, option-A shortcuts.

The op registry (``compiler/ops/join.py``) returns these from its ``to_torch`` faces; this module
imports torch at the top, so only the PyTorch lowering imports it.

Training-time randomness follows the papers (``shared/reference/SEMANTICS.md`` a and b) and is
computed with tensors only — no ``.item()``, no Python branching on random numbers — so every
branch stays in the autograd graph (DistributedDataParallel sees a gradient for every parameter),
and ``torch.compile`` traces a training step without graph breaks:

- :class:`MeanJoin` (FractalNet): the mean of the inputs that survive drop-path. Local sampling
  drops each input with probability ``p`` and restores one at random when all are dropped;
  global sampling keeps only the input of one column, drawn once per mini-batch for the whole
  network by a :class:`DropPathSampler`; eval mode averages all inputs.
- :class:`ResidualJoin` (stochastic depth): in training the body survives with probability
  ``survival`` (one draw per block per mini-batch; a closed block is its shortcut); in eval mode
  the output is ``shortcut + survival * body``.

Each random module keeps its last draw (``last_keep``, ``last_gate``) when ``record`` is true, so
tests can count what was dropped.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class Concat(nn.Module):
    """Concatenation along channels (dimension 1)."""

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return torch.cat(xs, dim=1)


class Add(nn.Module):
    """Element-wise sum (Caffe Eltwise SUM)."""

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out


class Mul(nn.Module):
    """Element-wise product (Caffe Eltwise PROD)."""

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        out = xs[0]
        for x in xs[1:]:
            out = out * x
        return out


class Max(nn.Module):
    """Element-wise maximum (Caffe Eltwise MAX)."""

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        out = xs[0]
        for x in xs[1:]:
            out = torch.maximum(out, x)
        return out


class DropPathSampler:
    """The network-wide half of FractalNet drop-path, drawn once per mini-batch.

    With probability ``global_ratio`` the mini-batch uses global sampling: one column in
    ``1..num_columns`` is drawn and every join keeps only that column's input. Otherwise each
    join samples locally. :meth:`draw` returns ``(is_global, column)`` as 0-d tensors; it holds
    no state between draws, so it can be shared by all joins of a network (the NetModule owns
    one and hands each draw to the joins).
    """

    def __init__(self, global_ratio: float, num_columns: int):
        self.global_ratio = float(global_ratio)
        self.num_columns = int(num_columns)

    def draw(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        is_global = torch.rand((), device=device) < self.global_ratio
        column = torch.randint(1, self.num_columns + 1, (), device=device)
        return is_global, column

    def __repr__(self) -> str:
        return f"DropPathSampler(global_ratio={self.global_ratio}, columns={self.num_columns})"


class MeanJoin(nn.Module):
    """FractalNet join: the mean of the inputs that survive drop-path.

    ``p`` is the local drop probability (None: no drop-path at this join); ``columns`` gives the
    FractalNet column of each input (1 = the shallowest), used by global sampling. A global draw
    whose column is not among this join's inputs keeps none of them: the join then lies off the
    sampled path and outputs zeros (nothing downstream of it is kept either).
    """

    record = False  # keep the last mask in ``last_keep`` (tests)

    def __init__(self, p: float | None = None, columns: tuple[int, ...] | None = None):
        super().__init__()
        self.p = p
        self.columns = tuple(columns) if columns else None
        self.last_keep: torch.Tensor | None = None

    def forward(self, *xs: torch.Tensor, sample=None) -> torch.Tensor:
        if not self.training or self.p is None:
            return _mean(xs)
        n = len(xs)
        device = xs[0].device
        keep = torch.rand(n, device=device) >= self.p
        # Caffe's FractalJoin: if every input was dropped, restore one chosen uniformly.
        pick = torch.randint(0, n, (), device=device)
        keep = keep | (~keep.any() & (torch.arange(n, device=device) == pick))
        if sample is not None and self.columns is not None:
            is_global, column = sample
            on_path = torch.tensor(self.columns, device=device) == column
            keep = torch.where(is_global, on_path, keep)
        if self.record and not torch.compiler.is_compiling():
            self.last_keep = keep.detach().cpu()
        weights = keep.to(xs[0].dtype)
        out = weights[0] * xs[0]
        for i in range(1, n):
            out = out + weights[i] * xs[i]
        return out / weights.sum().clamp(min=1.0)

    def extra_repr(self) -> str:
        return f"p={self.p}, columns={self.columns}"


def _mean(xs) -> torch.Tensor:
    out = xs[0]
    for x in xs[1:]:
        out = out + x
    return out / len(xs)


class ResidualJoin(nn.Module):
    """``body + shortcut``, with stochastic depth when ``survival`` < 1.

    Training: one Bernoulli(survival) gate per forward (per mini-batch), output
    ``shortcut + gate * body`` — no rescaling, as in Huang et al. Eval:
    ``shortcut + survival * body``.
    """

    record = False  # keep the last gate in ``last_gate`` (tests)

    def __init__(self, survival: float = 1.0):
        super().__init__()
        self.survival = float(survival)
        self.last_gate: torch.Tensor | None = None

    def forward(self, body: torch.Tensor, shortcut: torch.Tensor) -> torch.Tensor:
        if self.survival >= 1.0:
            return body + shortcut
        if not self.training:
            return shortcut + self.survival * body
        gate = torch.rand((), device=body.device) < self.survival
        if self.record and not torch.compiler.is_compiling():
            self.last_gate = gate.detach().cpu()
        return shortcut + gate.to(body.dtype) * body

    def extra_repr(self) -> str:
        return f"survival={self.survival:.4f}"


class ShortcutPad(nn.Module):
    """ResNet option A: every ``stride``-th pixel (or the mean of stride x stride windows,
    ``mode="avg"``), then zero channels after the real ones."""

    def __init__(self, out: int, stride: int, mode: str = "subsample"):
        super().__init__()
        self.out = out
        self.stride = stride
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1 and self.mode == "avg":
            x = F.avg_pool2d(x, self.stride)
        elif self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        extra = self.out - x.shape[1]
        if extra > 0:
            x = F.pad(x, (0, 0, 0, 0, 0, extra))
        return x

    def extra_repr(self) -> str:
        return f"out={self.out}, stride={self.stride}, mode={self.mode}"
