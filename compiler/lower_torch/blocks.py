"""Compiling a network block by block, so that a compiled training step still skips.

``torch.compile`` of a whole :class:`~netc.compiler.lower_torch.module.NetModule` makes one graph
in which every stochastic-depth body and FractalNet column is computed and multiplied by its
gate (:mod:`netc.compiler.lower_torch.gates`): ``torch.cond`` would skip, but refuses bodies whose
batch norms update running statistics. So the unit compiled here is the *chain*: a run of
single-input layers in which each value is read only by the next (a residual body
``conv -> bn -> relu -> conv -> bn``, a FractalNet column between two joins, the stem, the head).
Each chain is one :class:`Block`; the joins, the residual additions and the gates stay in
Python, in the network's eager plan, and a closed body's chain is simply not called.

Why chains: inside a chain every node is needed exactly when the last one is (nothing else
reads the values in between, and only joins have gate decisions), so a step's live set
(:func:`~netc.compiler.lower_torch.gates.live_nodes`) never splits a chain, and a chain's
compiled graph never depends on a gate: no guard on the gate choices, no recompilation when
the draws change. Chains of the same layers and shapes share one dynamo cache entry (the
layers' parameters are graph inputs), so ResNet-110's 54 bodies make 5 graphs; ``dynamic=False``
gives each new batch shape its own graphs, compiled on its first step.

Compiled is not always faster, nor is one memory layout. On a CPU inductor always runs
convolutions channels-last (its ``layout_optimization``), which makes ResNet's 16-channel
bodies about 1.5x faster than eager NCHW (and no faster than eager channels-last), and
FractalNet's 512-channel units at 2x2 pixels slower (benchmarks/RESULTS.md, droppath
section). So each chain *structure* (its layers and input shape) is timed once, on its first
call (:class:`Timed`): eager NCHW against eager channels-last, then eager against compiled in
the faster layout; the chain then always runs the faster of the two, its input converted to
that layout, and so does every chain of the same structure. A structure first called after
the first step (a body every earlier draw closed) is timed, and compiled, then. A trial
restores what it touched (running statistics, the random generator) and computes gradients
with ``torch.autograd.grad``, so the step itself is unchanged and no gradient hook (DDP's)
fires. The verdicts rest on timings, so two runs may choose differently where candidates are
close; the numbers differ only by rounding.
"""

from __future__ import annotations

import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn as nn

NCHW, CHANNELS_LAST = torch.contiguous_format, torch.channels_last
REPEATS = 3  # timed calls per candidate in a trial; the shortest counts (load only adds time)


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
    """Plan item running ``steps`` (a chain, in order) as one :class:`Block` (``run``)."""

    steps: tuple
    run: object  # a Timed block, or any callable of the chain's input

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


def in_layout(x: torch.Tensor, fmt) -> torch.Tensor:
    """``x`` laid out as ``fmt`` with the canonical strides of that layout (a size-1 dimension's
    stride too: dynamo guards on strides, and a stray one would recompile a graph)."""
    if fmt is None or x.dim() != 4:
        return x
    n, c, h, w = x.shape
    strides = (c * h * w, h * w, w, 1) if fmt is NCHW else (h * w * c, 1, w * c, c)
    return x if x.stride() == strides else x.clone(memory_format=fmt)


@dataclass
class Verdict:
    """How a chain structure runs for one kind of input: its layout (None: not 4-D) and
    whether compiled; with the trial's shortest times (seconds) for the record."""

    layout: object
    compiled: bool
    times: dict


class Timed:
    """A chain's runner: eager or compiled, in the layout that measured faster.

    ``verdicts`` is shared by the chains of one structure; ``compile(layout)`` returns the
    block compiled for inputs in that layout."""

    def __init__(self, block: Block, compile, verdicts: dict):
        self.block = block
        self._compile = compile
        self._compiled: dict = {}
        self.verdicts = verdicts

    def compiled(self, layout):
        """The block compiled for ``layout`` (compiled on first use)."""
        run = self._compiled.get(layout)
        if run is None:
            run = self._compiled[layout] = self._compile(self.block, layout)
        return run

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        kind = (tuple(x.shape), x.dtype, x.device, self.block.training, torch.is_grad_enabled())
        verdict = self.verdicts.get(kind)
        if verdict is None:
            verdict = self.verdicts[kind] = self.trial(x)
        run = self.compiled(verdict.layout) if verdict.compiled else self.block
        return run(in_layout(x, verdict.layout))

    def trial(self, x: torch.Tensor) -> Verdict:
        """Time the candidates on ``x`` (forward, and backward when it records gradients) and
        return the verdict; the block's buffers and the random generators are left as they
        were, and no ``.grad`` is written."""
        with _untouched(self.block, x.device):
            layout = None
            times = {}
            if x.dim() == 4:
                times.update(_shortest({
                    ("eager", "nchw"): lambda: _call(self.block, in_layout(x, NCHW), x),
                    ("eager", "channels_last"): lambda: _call(
                        self.block, in_layout(x, CHANNELS_LAST), x)}, x.device))
                layout = min((NCHW, CHANNELS_LAST), key=lambda f: times[("eager", _tag(f))])
            compiled = self.compiled(layout)
            _call(compiled, in_layout(x, layout), x)  # compiles; not timed
            times.update(_shortest({
                ("eager", _tag(layout)): lambda: _call(self.block, in_layout(x, layout), x),
                ("compiled", _tag(layout)): lambda: _call(compiled, in_layout(x, layout), x)},
                x.device))
            faster = times[("compiled", _tag(layout))] < times[("eager", _tag(layout))]
        return Verdict(layout, faster, times)


def _tag(layout) -> str:
    return {NCHW: "nchw", CHANNELS_LAST: "channels_last"}.get(layout, "any")


def _call(run, x: torch.Tensor, given: torch.Tensor) -> None:
    """One forward of ``run`` on ``x`` and, when gradients are recorded, its backward through
    ``torch.autograd.grad`` (into nothing: no ``.grad``, no hooks)."""
    x = x.detach().requires_grad_(given.requires_grad)
    out = run(x)
    if out.requires_grad:
        params = run.parameters() if hasattr(run, "parameters") else ()
        wrt = [t for t in (x, *params) if t.requires_grad]
        torch.autograd.grad(out, wrt, torch.ones_like(out), allow_unused=True)


def _shortest(candidates: dict, device) -> dict:
    """Each candidate's shortest time over :data:`REPEATS` rounds, the order alternating.

    On a CPU with one torch thread the clock is this thread's CPU time (the autograd engine
    runs a CPU backward on the calling thread), which leaves out the time other processes
    held the core: on a shared machine wall time made the verdicts of close candidates
    a coin toss. Otherwise wall time, synchronised on CUDA."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    one_cpu = device.type == "cpu" and torch.get_num_threads() == 1
    clock = time.thread_time if one_cpu else time.perf_counter
    times: dict = {k: [] for k in candidates}
    keys = list(candidates)
    for r in range(REPEATS):
        for k in keys if r % 2 == 0 else keys[::-1]:
            sync()
            start = clock()
            candidates[k]()
            sync()
            times[k].append(clock() - start)
    return {k: min(v) for k, v in times.items()}


@contextmanager
def _untouched(block: Block, device):
    """Restore ``block``'s buffers (batch norms' running statistics and counters) and the
    random generators (dropout's) after a trial, so the step draws what it would have."""
    saved = [b.detach().clone() for b in block.buffers()]
    devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        with torch.no_grad():
            for b, s in zip(block.buffers(), saved):
                b.copy_(s)


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


def compiler(options: dict):
    """``compile(block, layout)``: ``torch.compile`` with ``options``; for inductor (without a
    ``mode``) its channels-last layout optimisation is on only for a channels-last input,
    so a chain timed faster in NCHW runs NCHW compiled too."""
    def compile(block: Block, layout):
        opts = dict(options)
        if opts.get("backend") == "inductor" and "mode" not in opts and layout is not None:
            opts["options"] = {**opts.get("options", {}),
                               "layout_optimization": layout is CHANNELS_LAST}
        return torch.compile(block, **opts)
    return compile


def block_plan(steps, targets, gated, layer, compiled: dict, compile_options: dict) -> tuple:
    """``steps`` with every chain replaced by one :class:`Chain` item at its first step.

    ``layer(name)`` gives a step's module; ``compiled`` caches each chain's :class:`Timed`
    runner by chain (shared between plans); ``compile_options`` go to ``torch.compile``.
    Chains of the same layers (by their ``repr``) share their verdicts."""
    chains = find_chains(steps, targets, gated)
    first = {c[0]: c for c in chains}
    inside = {k for c in chains for k in c[1:]}
    compile = compiler(compile_options)
    verdicts: dict = {}
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
            block = Block([layer(c.name) for c in chain])
            shared = verdicts.setdefault(repr(block), {})
            run = compiled[key] = Timed(block, compile, shared)
        items.append(Chain(chain, run))
    return tuple(items)


def allow_graphs(count: int) -> None:
    """Let dynamo keep ``count`` graphs of :meth:`Block.forward` (its default limit is 8
    entries per code object, and a FractalNet's chains come in more shapes than that; past
    the limit dynamo would silently run the rest eagerly)."""
    import torch._dynamo.config as config

    config.recompile_limit = max(config.recompile_limit, count)
    config.accumulated_recompile_limit = max(config.accumulated_recompile_limit, count)
