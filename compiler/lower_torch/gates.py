"""Which parts of a network one training step drops, and running only the parts it keeps.

Stochastic depth (Huang et al.) and FractalNet drop-path decide once per mini-batch which
residual bodies are closed and which join inputs are dropped. The papers' point is that a
dropped part is not computed: Huang et al. train in 0.73 of the time (their Table 2), and
FractalNet's global drop-path trains one column at a time. :class:`Gates` makes every decision
of a forward from one vector of uniforms, and :func:`live_nodes` then finds the nodes a step
still needs, so the PyTorch lowering skips the rest.

The uniforms come, in this order: one per residual block with per-batch stochastic depth, then
for each drop-path join n (one per input) plus one (the input restored when all were dropped),
then two for the network (global or local sampling, and the global column). They are drawn on
the CPU from torch's generator, or from a generator seeded by ``(seed, step)`` after
:meth:`Gates.seed` — so every DistributedDataParallel rank draws the same gates for a
mini-batch and skips the same blocks, and a resumed run draws what the uninterrupted one drew.

Three ways of applying the decisions:

- **eager** (:meth:`Gates.decide` as Python values): the lowering does not run what is dropped.
  Parameters of skipped layers get a zero gradient through :func:`zero_touch`, as they did when
  dropped bodies were multiplied by 0 (and as in Huang et al.'s Lua code, where a dropped
  block's gradient is zero and momentum and weight decay still act), so DDP needs no
  ``find_unused_parameters`` and the optimiser sees the same gradients as before.
- **under torch.compile** (:meth:`Gates.decide_tensors`): the decisions stay tensors and every
  body is computed and multiplied by its gate, in one graph without breaks or recompilation.
  ``torch.cond`` would skip bodies, but it refuses branches that mutate inputs, and batch norm
  in training updates its running statistics (measured with torch 2.13: "Higher order ops do
  not support input mutation"). So a whole-net compiled training step saves nothing.
- **compiled block by block** (``NetModule.compile_blocks``,
  :mod:`netc.compiler.lower_torch.blocks`): the decisions are Python values as in eager
  mode, and each residual body or column is its own block, compiled or eager (whichever its
  first call timed faster), not called when dropped.

Per-sample stochastic depth (``mode=row``, torchvision's ``StochasticDepth``) keeps or drops
each example separately, so a body always runs for the examples it keeps: it cannot be skipped
and draws its own masks inside :class:`~netc.compiler.lower_torch.joins.ResidualJoin`.
"""

from __future__ import annotations

import numpy as np
import torch


class Gates:
    """The random decisions of a network's training forward.

    ``residuals``: (node name, survival) of each per-batch stochastic-depth block; ``joins``:
    (node name, drop probability, number of inputs, columns or None) of each drop-path join;
    ``sampler``: the
    network's :class:`~netc.compiler.lower_torch.joins.DropPathSampler` (global sampling) or None.
    """

    def __init__(self, residuals, joins, sampler):
        self.residuals = list(residuals)
        self.joins = list(joins)
        self.sampler = sampler
        self.count = (len(self.residuals) + sum(n + 1 for _, _, n, _ in self.joins)
                      + (2 if sampler is not None else 0))
        self._survival = torch.tensor([p for _, p in self.residuals], dtype=torch.float64)
        self._seeded: torch.Generator | None = None

    def __bool__(self) -> bool:
        return self.count > 0

    def seed(self, seed: int, step: int) -> None:
        """Draw the next forwards' uniforms from a generator fixed by ``(seed, step)``."""
        mixed = int(np.random.SeedSequence([int(seed), int(step)]).generate_state(1)[0])
        self._seeded = torch.Generator().manual_seed(mixed)

    def uniforms(self) -> torch.Tensor:
        """One forward's uniforms (CPU, float64): seeded if :meth:`seed` was called, else from
        torch's global generator."""
        return torch.rand(self.count, dtype=torch.float64, generator=self._seeded)

    def decide_tensors(self, u: torch.Tensor):
        """``({node: gate or keep mask as bool tensors}, (is_global, column))`` from ``u``."""
        out: dict[str, torch.Tensor] = {}
        r = len(self.residuals)
        opened = u[:r] < self._survival.to(u.device)
        for i, (name, _) in enumerate(self.residuals):
            out[name] = opened[i]
        sample = None
        if self.sampler is not None:
            is_global = u[-2] < self.sampler.global_ratio
            column = 1 + (u[-1] * self.sampler.num_columns).floor().clamp(
                max=self.sampler.num_columns - 1).long()
            sample = (is_global, column)
        offset = r
        for name, p, n, columns in self.joins:
            keep = u[offset:offset + n] >= p
            # Caffe's FractalJoin: if every input was dropped, restore one chosen uniformly.
            pick = (u[offset + n] * n).floor().clamp(max=n - 1).long()
            index = torch.arange(n, device=u.device)
            keep = keep | (~keep.any() & (index == pick))
            if sample is not None and columns:
                on_path = torch.tensor(columns, device=u.device) == sample[1]
                keep = torch.where(sample[0], on_path, keep)
            out[name] = keep
            offset += n + 1
        return out, sample

    def decide(self, u: torch.Tensor):
        """The same decisions as Python values (bools, tuples of bools, ints), in one
        ``tolist`` (no per-node device synchronisation)."""
        tensors, sample = self.decide_tensors(u)
        flat = [t.reshape(-1).long() for t in tensors.values()]
        if sample is not None:
            flat += [sample[0].reshape(1).long(), sample[1].reshape(1)]
        values = torch.cat(flat).tolist() if flat else []
        out, i = {}, 0
        for name, t in tensors.items():
            if t.dim() == 0:
                out[name] = bool(values[i])
                i += 1
            else:
                out[name] = tuple(bool(v) for v in values[i:i + t.numel()])
                i += t.numel()
        py_sample = (bool(values[i]), int(values[i + 1])) if sample is not None else None
        return out, py_sample


def live_nodes(steps, targets, decisions) -> set[str]:
    """The nodes of ``steps`` (a plan, in graph order) that ``targets`` still need when closed
    residual bodies (``decisions[name] is False``: only the shortcut, input 2, is read) and
    dropped join inputs (``decisions[name][k] is False``) are not read."""
    live = set(targets)
    for step in reversed(steps):
        if step.name not in live:
            continue
        d = decisions.get(step.name)
        for k, inp in enumerate(step.inputs):
            if d is None or d is True or (d is False and k == 1) or (
                    isinstance(d, tuple) and d[k]):
                live.add(inp)
    return live


def zero_touch(params) -> torch.Tensor | None:
    """A zero that depends on every tensor of ``params``: added to an output, it gives each a
    zero gradient (DistributedDataParallel then sees every parameter used)."""
    params = [p for p in params if p.requires_grad]
    if not params:
        return None
    return torch.stack([p.reshape(-1)[0] for p in params]).sum() * 0.0
