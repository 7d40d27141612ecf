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
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Chain:
    """Plan item running ``steps`` (a chain, in order) as one compiled :class:`Block`."""

    steps: tuple
    run: object  # the compiled Block

    @property
    def name(self) -> str:
        """The chain's output node (the liveness of the whole chain)."""
        return self.steps[-1].name

    @property
    def source(self) -> str:
        """The value the chain reads."""
        return self.steps[0].inputs[0]

    @property
    def free(self) -> tuple[str, ...]:
        """What the plan frees after the chain (values inside it are never stored)."""
        return tuple(n for s in self.steps for n in s.free)


def find_chains(steps, targets, gated) -> list[list[int]]:
    """Indices into ``steps`` (a plan in graph order) of each chain of two or more steps.

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
    # The graph's inputs are plan steps too but not layers: a chain never starts at one.
    return [c for c in chains if len(c) >= 2]


def block_plan(steps, targets, gated, layer, compiled: dict, compile_options: dict) -> tuple:
    """``steps`` with every chain replaced by one :class:`Chain` item at its first step.

    ``layer(name)`` gives a step's module; ``compiled`` caches the compiled blocks by chain
    (shared between plans); ``compile_options`` go to ``torch.compile``."""
    chains = find_chains(steps, targets, gated)
    first = {c[0]: c for c in chains}
    inside = {k for c in chains for k in c[1:]}
    items = []
    for k, s in enumerate(steps):
        if k in inside:
            continue
        if k not in first:
            items.append(s)
            continue
        chain = tuple(steps[i] for i in first[k])
        key = tuple(c.name for c in chain)
        run = compiled.get(key)
        if run is None:
            run = compiled[key] = torch.compile(Block([layer(c.name) for c in chain]),
                                                **compile_options)
        items.append(Chain(chain, run))
    return tuple(items)


def allow_graphs(count: int) -> None:
    """Let dynamo keep ``count`` graphs of :meth:`Block.forward` (its default limit is 8
    entries per code object, and a FractalNet's chains come in more shapes than that; past
    the limit dynamo would silently run the rest eagerly)."""
    import torch._dynamo.config as config

    config.recompile_limit = max(config.recompile_limit, count)
    config.accumulated_recompile_limit = max(config.accumulated_recompile_limit, count)
