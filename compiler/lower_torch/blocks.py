"""Compiling a network block by block, so that a compiled training step still skips.

``torch.compile`` of a whole :class:`~netc.compiler.lower_torch.module.NetModule` makes one graph
in which every stochastic-depth body and FractalNet column is computed and multiplied by its
gate (:mod:`netc.compiler.lower_torch.gates`): ``torch.cond`` would skip, but refuses bodies whose
batch norms update running statistics. So the unit compiled here is the *chain*: a run of
single-input layers in which each value is read only by the next (a residual body
``conv -> bn -> relu -> conv -> bn``, a FractalNet column between two joins, the stem, the head).
Each chain is one :class:`Block` run through ``torch.compile``; the joins, the residual
additions and the gates stay in Python, in the network's eager plan, and a closed body's chain
is simply not called.

Why chains: inside a chain every node is needed exactly when the last one is (nothing else
reads the values in between, and only joins have gate decisions), so a step's live set
(:func:`~netc.compiler.lower_torch.gates.live_nodes`) never splits a chain, and a chain's
compiled graph never depends on a gate: no guard on the gate choices, no recompilation when
the draws change. Chains of the same layers and shapes share one dynamo cache entry (the
layers' parameters are graph inputs), so ResNet-110's 54 bodies make 5 graphs; ``dynamic=False``
gives each new batch shape its own graphs, compiled on its first step.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace

import torch
import torch.nn as nn


class Block(nn.Module):
    """A chain of single-input layers called as one module: what ``torch.compile`` compiles.

    Not registered in the network (its layers are the network's own submodules), so state
    dicts, ``parameters()`` and ``.to(device)`` see each layer once."""

    def __init__(self, layers):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class Unit(nn.Module):
    """A residual body, its join and the chain after the join (a ReLU), called as one:
    ``tail(shortcut + scale * body(x))``. ``scale`` is a 0-d tensor (1 in training and for
    plain residuals, the survival in eval mode), so blocks with different survivals share one
    graph instead of each guarding on its own constant."""

    def __init__(self, body, tail):
        super().__init__()
        self.body = Block(body)
        self.tail = Block(tail)

    def forward(self, x: torch.Tensor, shortcut: torch.Tensor,
                scale: torch.Tensor) -> torch.Tensor:
        return self.tail(shortcut + scale * self.body(x))


@dataclass(frozen=True)
class Chain:
    """Plan item running ``steps`` (a chain, in order) as one compiled :class:`Block`."""

    steps: tuple
    run: object  # the compiled Block
    free: tuple[str, ...] = ()  # what the plan frees after it (its inner values never stored)

    @property
    def name(self) -> str:
        """The chain's output node (the liveness of the whole chain)."""
        return self.steps[-1].name

    @property
    def reads(self) -> tuple[str, ...]:
        return (self.steps[0].inputs[0],)


@dataclass(frozen=True)
class Residual:
    """Plan item for a residual unit: ``body`` (a chain), the ``join`` step, and ``tail`` (the
    chain its output feeds, possibly empty). ``run`` is the compiled :class:`Unit`;
    ``closed`` (eager) computes ``tail(shortcut)`` for a closed gate."""

    body: tuple
    join: object
    tail: tuple
    run: object
    closed: object
    survival: float  # the join's survival (<= 1), the eval-mode scale of the body
    free: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return (self.tail or (self.join,))[-1].name

    @property
    def reads(self) -> tuple[str, ...]:
        return (self.body[0].inputs[0], self.join.inputs[1])

    @property
    def steps(self) -> tuple:
        return (*self.body, self.join, *self.tail)


def find_chains(steps, targets, gated, shortest: int = 2) -> list[list[int]]:
    """Indices into ``steps`` (a plan in graph order) of each chain of ``shortest`` or more
    steps.

    A step can join a chain when it reads one value and has no gate decision (``gated``: the
    names of residual joins and drop-path joins); it extends the chain of its input when that
    input is itself chainable and read by nothing else (``targets`` count as readers)."""
    readers = Counter(i for s in steps for i in set(s.inputs))
    readers.update(targets)
    index = {s.name: k for k, s in enumerate(steps)}

    def chainable(s) -> bool:
        return len(s.inputs) == 1 and s.inputs[0] in index and s.name not in gated

    chain_of: dict[str, list[int]] = {}
    chains = []
    for k, s in enumerate(steps):
        if not chainable(s):
            continue
        src = s.inputs[0]
        prev = chain_of.get(src)
        if prev is not None and readers[src] == 1:
            prev.append(k)
        else:
            prev = [k]
            chains.append(prev)
        chain_of[s.name] = prev
    return [c for c in chains if len(c) >= shortest]


def block_plan(steps, targets, gated, layer, compiled: dict, compile_options: dict,
               residual=lambda name: None) -> tuple:
    """``steps`` with every chain replaced by one :class:`Chain` and every residual unit (a
    chain body read only by its join, ``residual(name)`` giving the join's survival, or None
    for other nodes) by one :class:`Residual`, with the values to free recomputed.

    ``layer(name)`` gives a step's module; ``compiled`` caches the compiled modules by their
    steps' names (shared between plans); ``compile_options`` go to ``torch.compile``."""
    readers = Counter(i for s in steps for i in set(s.inputs))
    readers.update(targets)
    chains = find_chains(steps, targets, gated, shortest=1)
    ending = {steps[c[-1]].name: c for c in chains}
    starting = {steps[c[0]].inputs[0]: c for c in chains}
    anchor: dict[int, object] = {}  # plan index -> the item placed there
    taken: set[int] = set()

    def compiled_as(key, make):
        if key not in compiled:
            compiled[key] = torch.compile(make(), **compile_options)
        return compiled[key]

    for k, s in enumerate(steps):
        survival = residual(s.name)
        body = ending.get(s.inputs[0]) if survival is not None else None
        if body is None or len(body) < 2 or readers[s.inputs[0]] != 1:
            continue
        tail = starting.get(s.name) if readers[s.name] == 1 and s.name not in targets else None
        body_steps = tuple(steps[i] for i in body)
        tail_steps = tuple(steps[i] for i in tail or ())
        key = tuple(x.name for x in (*body_steps, s, *tail_steps))
        unit = compiled_as(key, lambda: Unit([layer(x.name) for x in body_steps],
                                             [layer(x.name) for x in tail_steps]))
        anchor[k] = Residual(body_steps, s, tail_steps, unit, unit._orig_mod.tail, survival)
        taken.update([*body, k, *(tail or ())])
    for c in chains:
        if len(c) >= 2 and c[0] not in taken:
            key = tuple(steps[i].name for i in c)
            anchor[c[0]] = Chain(tuple(steps[i] for i in c), compiled_as(
                key, lambda: Block([layer(n) for n in key])))
            taken.update(c)
    items = [anchor[k] if k in anchor else s for k, s in enumerate(steps)
             if k in anchor or k not in taken]
    return _with_frees(items, targets)


def _with_frees(items, targets) -> tuple:
    """``items`` each with ``free``: the values it reads last (targets are kept)."""
    last: dict[str, int] = {}
    for k, item in enumerate(items):
        for name in getattr(item, "reads", None) or item.inputs:
            last[name] = k
    frees: list[list[str]] = [[] for _ in items]
    for name, k in last.items():
        if name not in targets:
            frees[k].append(name)
    return tuple(replace(item, free=tuple(f)) for item, f in zip(items, frees))


def allow_graphs(count: int) -> None:
    """Let dynamo keep ``count`` graphs of :meth:`Block.forward` (its default limit is 8
    entries per code object, and a FractalNet's chains come in more shapes than that; past
    the limit dynamo would silently run the rest eagerly)."""
    import torch._dynamo.config as config

    config.recompile_limit = max(config.recompile_limit, count)
    config.accumulated_recompile_limit = max(config.accumulated_recompile_limit, count)
