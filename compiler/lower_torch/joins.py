"""PyTorch modules for the ops with several inputs: joins, residual additions, option-A shortcuts.

The op registry (``compiler/ops/join.py``) returns these from its ``to_torch`` faces; this module
imports torch at the top, so only the PyTorch lowering imports it.

Training-time randomness follows the papers (``shared/reference/SEMANTICS.md`` a and b). Inside a
:class:`~netc.compiler.lower_torch.module.NetModule` the decisions are made for the whole network
at once (:class:`netc.compiler.lower_torch.gates.Gates`) and handed to these modules, so that the
network can skip what is dropped; used on their own, the modules draw their own:

- :class:`MeanJoin` (FractalNet): the mean of the inputs that survive drop-path. Local sampling
  drops each input with probability ``p`` and restores one at random when all are dropped;
  global sampling keeps only the input of one column, drawn once per mini-batch for the whole
  network by a :class:`DropPathSampler`; eval mode averages all inputs.
- :class:`ResidualJoin` (stochastic depth), per batch (Huang et al., the default): in training
  the body survives with probability ``survival`` (one draw per block per mini-batch; a closed
  block is its shortcut, unscaled); in eval mode the output is ``shortcut + survival * body``.
  Per sample (``mode="row"``, torchvision's ``StochasticDepth`` as EfficientNet uses it): each
  example keeps the body with probability ``survival``, scaled by ``1 / survival`` in training;
  eval mode is ``shortcut + body``.

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
    join samples locally. The draw itself is :class:`netc.compiler.lower_torch.gates.Gates`'s, made
    with the network's other decisions; a join gets it as ``sample=(is_global, column)``.
    """

    def __init__(self, global_ratio: float, num_columns: int):
        self.global_ratio = float(global_ratio)
        self.num_columns = int(num_columns)

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

    def forward(self, *xs: torch.Tensor | None, sample=None, keep=None) -> torch.Tensor:
        """``keep``: the decision made for the network, a bool tensor (every input computed)
        or a tuple of bools (dropped inputs may be None); without it the join draws its own."""
        if not self.training or self.p is None:
            return _mean(xs)
        if isinstance(keep, tuple):
            if self.record:
                self.last_keep = torch.tensor(keep)
            kept = [x for x, k in zip(xs, keep) if k]
            # None when a global draw keeps no input here (off the sampled path; the network
            # fills in zeros when something still reads the join).
            return _mean(kept) if kept else None
        if keep is None:
            keep = self._draw(len(xs), xs[0].device, sample)
        if self.record and not torch.compiler.is_compiling():
            self.last_keep = keep.detach().cpu()
        weights = keep.to(xs[0].dtype)
        out = weights[0] * xs[0]
        for i in range(1, len(xs)):
            out = out + weights[i] * xs[i]
        return out / weights.sum().clamp(min=1.0)

    def _draw(self, n: int, device, sample) -> torch.Tensor:
        keep = torch.rand(n, device=device) >= self.p
        # Caffe's FractalJoin: if every input was dropped, restore one chosen uniformly.
        pick = torch.randint(0, n, (), device=device)
        keep = keep | (~keep.any() & (torch.arange(n, device=device) == pick))
        if sample is not None and self.columns is not None:
            is_global, column = sample
            on_path = torch.tensor(self.columns, device=device) == column
            keep = torch.where(is_global, on_path, keep)
        return keep

    def extra_repr(self) -> str:
        return f"p={self.p}, columns={self.columns}"


def _mean(xs) -> torch.Tensor:
    out = xs[0]
    for x in xs[1:]:
        out = out + x
    return out / len(xs)


class ResidualJoin(nn.Module):
    """``body + shortcut``, with stochastic depth when ``survival`` < 1.

    ``mode="batch"`` (Huang et al.): training draws one Bernoulli(survival) gate per forward
    (per mini-batch), output ``shortcut + gate * body``, no rescaling; eval:
    ``shortcut + survival * body``. ``mode="row"`` (torchvision's ``StochasticDepth``): training
    keeps the body per example with probability ``survival`` and scales kept bodies by
    ``1 / survival``; eval: ``shortcut + body``.
    """

    record = False  # keep the last gate in ``last_gate`` (tests)

    def __init__(self, survival: float = 1.0, mode: str = "batch"):
        super().__init__()
        self.survival = float(survival)
        self.mode = mode
        self.last_gate: torch.Tensor | bool | None = None

    def forward(self, body: torch.Tensor | None, shortcut: torch.Tensor,
                gate=None) -> torch.Tensor:
        """``gate``: the network's decision for this block, a bool (False: ``body`` was not
        computed and may be None) or a 0-d bool tensor; without it the block draws its own."""
        if self.survival >= 1.0:
            return body + shortcut
        if self.mode == "row":
            if not self.training:
                return shortcut + body
            shape = (body.shape[0],) + (1,) * (body.dim() - 1)
            keep = torch.rand(shape, device=body.device) < self.survival
            return shortcut + body * (keep.to(body.dtype) / self.survival)
        if not self.training:
            return shortcut + self.survival * body
        if isinstance(gate, bool):
            if self.record:
                self.last_gate = gate
            return body + shortcut if gate else shortcut
        if gate is None:
            gate = torch.rand((), device=shortcut.device) < self.survival
        if self.record and not torch.compiler.is_compiling():
            self.last_gate = gate.detach().cpu()
        return shortcut + gate.to(body.dtype) * body

    def extra_repr(self) -> str:
        return f"survival={self.survival:.4f}, mode={self.mode}"


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
