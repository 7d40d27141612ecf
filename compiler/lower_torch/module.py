"""Lowering to PyTorch: an ``nn.Module`` that interprets the IR graph node by node.

:func:`build_module` asks each op's registry entry for its ``to_torch`` module and assembles a
:class:`NetModule`:

- ops with weights or buffers (conv, fc, bn) become real submodules installed at their IR dotted
  names (``layer1.basic1.conv1``), as ``torch.fx.GraphModule`` installs them, so state-dict keys
  are the IR names: the words of ``netc summary``, of the ONNX graph and of recipes;
- stateless ops (relu, pools, joins, dropout, ...) stay outside the module tree, so the tree and
  the state dict hold exactly the weights; :meth:`NetModule.train` still reaches them, since
  dropout, drop-path and stochastic depth behave differently in training;
- a layer that shares another's weights (``Node.shares``) runs its owner's module, kept with
  the stateless ones: one ``nn.Parameter`` for both applications, whose gradient sums both,
  held once in the state dict, under the owner's name;
- ``forward`` walks a precomputed plan: the backward slice of the requested values (the declared
  outputs, or ``taps``), each intermediate freed after its last use;
- in training, the step's stochastic-depth and drop-path decisions are made first
  (:mod:`netc.compiler.lower_torch.gates`), and the plan skips the closed residual bodies and
  dropped join inputs that nothing kept still needs.

Initial weights are netc's own seeded numpy arrays
(:func:`netc.compiler.numerics.seeded_weights.init_weights`), the same numbers the ONNX lowering
writes, so one seed gives the same network in both worlds.

    >>> from netc.compiler.frontend.loader import load                      # doctest: +SKIP
    >>> net = build_module(load("vgg16"), seed=0)             # doctest: +SKIP
    >>> feats = net(x, taps=["conv4_2"])                      # runs conv1_1 .. conv4_2 only
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
from netc.compiler.ir import Graph
from netc.compiler.lower_torch import attribution as torch_attribution
from netc.compiler.lower_torch.blocks import Chain, allow_graphs, block_plan, find_chains
from netc.compiler.lower_torch.gates import Gates, live_nodes, zero_touch
from netc.compiler.lower_torch.joins import DropPathSampler, MeanJoin, ResidualJoin
from netc.dsl.diagnostics import UserError


@dataclass(frozen=True)
class _Step:
    """One node of a plan: compute ``name`` from ``inputs``, then free the values in ``free``."""

    name: str
    op: str
    inputs: tuple[str, ...]
    free: tuple[str, ...]


class NetModule(nn.Module):
    """A compiled network. Call it as ``net(x)`` or ``net(x, taps=[names])``.

    ``net(*inputs)`` returns the declared output (a tensor) or outputs (a tuple, in
    ``graph.outputs`` order). ``net(*inputs, taps=names)`` returns ``{name: tensor}`` for exactly
    the requested names, resolved with :meth:`netc.compiler.ir.Graph.resolve` (node names, scope
    aliases such as ``inception_4c``, unique dotted suffixes such as ``conv4_2``), and computes
    only what those names need. Inputs are positional in ``graph.inputs`` order.

    In training mode ``net(*inputs)`` also returns the ``training output``s (auxiliary heads),
    after the declared outputs and in the order the spec declares them, as torchvision's
    GoogLeNet and Inception-v3 do.
    """

    def __init__(self, graph: Graph):
        super().__init__()
        self.graph = graph
        # Plain attributes (not registered): stateless op modules and the plan cache.
        self._stateless: dict[str, nn.Module] = {}
        self._plans: dict[tuple[str, ...], tuple[_Step, ...]] = {}
        self._droppath: DropPathSampler | None = None
        self._gates = Gates((), (), None)  # stochastic depth and drop-path decisions
        # Skipped layers' parameters get zero gradients (torch_gates.zero_touch); False leaves
        # them without (None), for DDP with find_unused_parameters=True.
        self.zero_grads_for_skipped = True
        # An attribution method's backward rule at every ReLU
        # (netc.compiler.lower_torch.attribution).
        self.relu_rule: str | None = None
        # torch.compile's options when compiled block by block (compile_blocks), the compiled
        # blocks by chain, and the plans with their chains.
        self._compile: dict | None = None
        self._blocks: dict[tuple[str, ...], nn.Module] = {}
        self._block_plans: dict[tuple[str, ...], tuple] = {}

    # -- building ---------------------------------------------------------------------------
    def _install(self, name: str, module: nn.Module) -> None:
        """Put ``module`` at dotted path ``name``, creating empty parent modules on the way."""
        parent: nn.Module = self
        *scopes, leaf = name.split(".")
        for i, part in enumerate(scopes):
            child = parent._modules.get(part)
            if child is None:
                child = nn.Module()
                parent.add_module(part, child)
            elif type(child) is not nn.Module:
                raise UserError(f"layer {name!r} cannot be a PyTorch submodule: "
                                f"{'.'.join(scopes[:i + 1])!r} is a layer, not a scope")
            parent = child
        if leaf in parent._modules or hasattr(parent, leaf):
            # e.g. a layer labelled ``as forward`` or ``as train``: a name nn.Module uses.
            raise UserError(f"layer {name!r} cannot be a PyTorch submodule: {leaf!r} is "
                            "already taken (a name torch.nn.Module uses?); relabel it")
        parent.add_module(leaf, module)

    def node_module(self, name: str) -> nn.Module | None:
        """The module computing node ``name`` (a submodule or a stateless op); None for inputs."""
        node = self.graph.resolve(name)
        if node is None:
            raise KeyError(name)
        if node in self._stateless:
            return self._stateless[node]
        if self.graph[node].op == "input":
            return None
        return self.get_submodule(node)

    def train(self, mode: bool = True) -> NetModule:
        super().train(mode)
        for m in self._stateless.values():
            m.train(mode)
        return self

    # -- weights ----------------------------------------------------------------------------
    def load_named(self, tensors: Mapping[str, object], source: str = "weights",
                   allow_unused: bool = False) -> None:
        """Copy tensors (numpy arrays or torch tensors) into the module by state-dict name.

        Every weight of the network must be present with its exact shape (batch-norm
        ``num_batches_tracked`` counters may be missing). Tensors the network does not have are
        an error unless ``allow_unused`` (a full FractalNet's weights loaded into its deepest
        column). Raises :class:`UserError` naming the first missing, unexpected or mis-shaped
        tensor.
        """
        from netc.compiler.numerics.seeded_weights import check_weights

        own = self.state_dict()
        counters = {k: v for k, v in tensors.items()
                    if k.endswith("num_batches_tracked") and k in own}
        with torch.no_grad():
            for key, value in {**check_weights(self.graph, tensors, source, allow_unused),
                               **counters}.items():
                t = torch.as_tensor(np.asarray(value) if not torch.is_tensor(value) else value)
                if key.endswith("num_batches_tracked") and t.numel() == 1:
                    t = t.reshape(())  # some writers store the counter as shape [1]
                own[key].copy_(t.to(own[key].dtype))

    def calibrate_batchnorm(self, *inputs: torch.Tensor, passes: int = 1) -> None:
        """Set every batch norm's running statistics to the batch statistics of ``inputs``.

        A freshly initialised deep network in eval mode (running mean 0, variance 1) can blow
        up (CIFAR ResNet-110 logits reach ~1e10); a few train-mode passes give it sane
        statistics. Only batch norms switch to training for this; dropout, drop-path and
        stochastic depth stay in eval mode. The module is left in eval mode.
        """
        norms = [m for m in self.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        self.eval()
        saved = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the passes
            m.train()
        try:
            with torch.no_grad():
                for _ in range(passes):
                    self(*inputs)
        finally:
            for m, momentum in zip(norms, saved):
                m.momentum = momentum
                m.eval()

    # -- running ----------------------------------------------------------------------------
    def plan(self, targets: tuple[str, ...]) -> tuple[_Step, ...]:
        """The steps computing ``targets`` (node names): their backward slice, with frees."""
        cached = self._plans.get(targets)
        if cached is not None:
            return cached
        nodes = self.graph.slice(list(targets))
        last_use: dict[str, int] = {}
        for i, node in enumerate(nodes):
            for inp in node.inputs:
                last_use[inp] = i
        keep = set(targets)
        frees: list[list[str]] = [[] for _ in nodes]
        for name, i in last_use.items():
            if name not in keep:
                frees[i].append(name)
        steps = tuple(_Step(n.name, n.op, n.inputs, tuple(frees[i]))
                      for i, n in enumerate(nodes))
        self._plans[targets] = steps
        return steps

    def resolve_taps(self, taps) -> list[tuple[str, str]]:
        """(requested name, node name) pairs; a :class:`UserError` for an unknown name."""
        pairs = []
        for name in taps:
            node = self.graph.resolve(name)
            if node is None:
                near = self.graph.candidates(name)
                hint = (f"; it could be {', '.join(near[:6])}" if near else
                        "; `netc summary` lists the layer names")
                raise UserError(f"{self.graph.name} has no layer named {name!r}{hint}")
            pairs.append((name, node))
        return pairs

    def forward(self, *inputs: torch.Tensor, taps=None):
        if len(inputs) != len(self.graph.inputs):
            raise UserError(f"{self.graph.name} takes {len(self.graph.inputs)} input(s) "
                            f"({', '.join(self.graph.inputs)}); got {len(inputs)}")
        if taps is None:
            targets = tuple(self.graph.outputs)
            if self.training:  # auxiliary heads (``training output``) exist in training only
                # after the declared outputs, one each as in eval (a node may be two
                # outputs), the training outputs they do not already hold
                extra = dict.fromkeys(self.graph.options.training_outputs.values())
                targets = (*targets, *(n for n in extra if n not in targets))
        else:
            if isinstance(taps, str):
                taps = [taps]
            pairs = self.resolve_taps(taps)
            targets = tuple(dict.fromkeys(node for _, node in pairs))
        values = self._run(self.plan(targets), inputs, targets)
        if taps is not None:
            return {name: values[node] for name, node in pairs}
        if len(targets) == 1:
            return values[targets[0]]
        return tuple(values[t] for t in targets)

    def seed_gates(self, seed: int, step: int) -> None:
        """Draw the stochastic-depth and drop-path decisions of the next training forwards from
        ``(seed, step)`` instead of torch's generator: what ``netc train`` does before each step,
        so that every DDP rank skips the same blocks and a resumed run repeats its draws."""
        self._gates.seed(seed, step)

    def compile_blocks(self, backend: str = "inductor", **options) -> NetModule:
        """Compile the network chain by chain (:mod:`netc.compiler.lower_torch.blocks`): each
        residual body, FractalNet column, stem and head its own block, run ``torch.compile``d
        or eager, NCHW or channels-last, whichever its first call timed faster
        (:class:`~netc.compiler.lower_torch.blocks.Timed`), with the joins and the
        stochastic-depth and drop-path gates left in Python, so that a training step skips what
        it drops, as eager does. ``options`` go to ``torch.compile``
        (``dynamic=False`` unless given). Returns the module itself; call it as before, not
        through ``torch.compile(net)``."""
        from torch._dynamo import list_backends

        known = list_backends(exclude_tags=())
        if backend not in known:
            raise UserError(f"torch.compile has no backend {backend!r}; it has "
                            f"{', '.join(b for b in known if 'TESTING' not in b)}")
        if backend == "inductor" and "mode" not in options:
            # Dropout through ATen's generator, as eager draws it: on a CPU inductor's own
            # random kernels made FractalNet's units (conv, dropout, bn, relu) slower than
            # eager ones, ATen's much less so.
            options.setdefault("options", {"fallback_random": True})
        self._compile = {"backend": backend, "dynamic": False, **options}
        self._blocks.clear()
        self._block_plans.clear()
        plan = self.plan(tuple(self.graph.outputs))
        # Room for every chain in a few shapes (batch sizes, train and eval) in dynamo's cache.
        allow_graphs(8 * len(find_chains(plan, self.graph.outputs, self._gated())) + 8)
        return self

    def _gated(self) -> set[str]:
        return {n for n, _ in self._gates.residuals} | {j[0] for j in self._gates.joins}

    def _items(self, steps, targets) -> tuple:
        """The plan as run: its chains as compiled blocks when :meth:`compile_blocks` was
        called (not under an outer ``torch.compile``, nor with an attribution rule)."""
        if self._compile is None or self.relu_rule is not None or torch.compiler.is_compiling():
            return steps
        items = self._block_plans.get(targets)
        if items is None:
            items = self._block_plans[targets] = block_plan(
                steps, targets, self._gated(), self.get_submodule_or_op, self._blocks,
                self._compile)
        return items

    def get_submodule_or_op(self, name: str) -> nn.Module:
        """The module of node ``name`` (a registered layer or a stateless op)."""
        fn = self._stateless.get(name)
        return fn if fn is not None else self.get_submodule(name)

    def _run(self, steps, inputs, targets=()) -> dict[str, torch.Tensor]:
        given = dict(zip(self.graph.inputs, inputs))
        decisions, sample, live = {}, None, None
        if self.training and self._gates:
            if torch.compiler.is_compiling():
                # One graph, every body computed and multiplied by its gate (torch_gates).
                u = torch.rand(self._gates.count, device=inputs[0].device)
                decisions, sample = self._gates.decide_tensors(u)
            else:
                decisions, sample = self._gates.decide(self._gates.uniforms())
                live = live_nodes(steps, targets, decisions)
                self.last_droppath_sample = sample  # (is_global, column), for tests
                self._record(decisions)
        values: dict[str, torch.Tensor] = {}
        skipped = []
        for step in self._items(steps, targets):
            if live is not None and step.name not in live:  # dropped: nothing kept reads it
                skipped += [s.name for s in step.steps] if isinstance(step, Chain) else [step.name]
            elif isinstance(step, Chain):
                values[step.name] = step.run(values[step.source])
            elif step.op == "input":
                values[step.name] = given[step.name]
            else:
                values[step.name] = self._step(step, values, decisions, sample, inputs[0])
            for name in step.free:
                values.pop(name, None)
        if skipped and self.zero_grads_for_skipped and torch.is_grad_enabled():
            touch = zero_touch(p for name in skipped if name not in self._stateless
                               for p in self.get_submodule(name).parameters())
            if touch is not None:
                values[targets[0]] = values[targets[0]] + touch
        return values

    def _step(self, step: _Step, values, decisions, sample, x) -> torch.Tensor:
        fn = self._stateless.get(step.name)
        if fn is None:
            fn = self.get_submodule(step.name)
        args = [values.get(i) for i in step.inputs]  # None: not computed (dropped)
        if step.op == "mean":
            out = fn(*args, sample=sample, keep=decisions.get(step.name))
            if out is None:  # a join a global draw keeps nothing of, still read downstream
                out = x.new_zeros((x.shape[0], *self.graph[step.name].shape))
            return out
        if step.op == "residual":
            return fn(*args, gate=decisions.get(step.name))
        if step.op == "relu" and self.relu_rule is not None:
            return torch_attribution.relu(args[0], self.relu_rule)
        return fn(*args)

    def _record(self, decisions) -> None:
        for name, d in decisions.items():
            m = self._stateless[name]
            if m.record and isinstance(d, tuple):
                m.last_keep = torch.tensor(d)
            elif m.record:
                m.last_gate = d

    def extra_repr(self) -> str:
        return f"graph={self.graph.name!r}, nodes={len(self.graph)}"


def _effective_attrs(graph: Graph, node):
    """Attributes as the torch face needs them: a mean join's drop probability resolved."""
    if node.op == "mean" and node.attrs.get("droppath") is None:
        local = graph.options.droppath_local
        if local is not None:
            return node.attrs.replace(droppath=float(local))
    return node.attrs


def build_module(graph: Graph, weights: Mapping[str, np.ndarray] | None = None,
                 seed: int = 0) -> NetModule:
    """The PyTorch module of ``graph``, with ``weights`` (state-dict names -> arrays) or, when
    None, netc's seeded initial weights for ``seed``."""
    from netc.compiler.numerics.seeded_weights import init_weights

    net = NetModule(graph)
    max_column = 0
    for node in graph:
        if node.op == "input":
            continue
        ins = [graph[i].shape for i in node.inputs]
        if node.shares:  # the owner's module: one set of parameters for both
            net._stateless[node.name] = net.get_submodule(node.shares)
            continue
        attrs = _effective_attrs(graph, node)
        module = node.opdef.to_torch(attrs, ins, node.shape)
        if node.op == "mean" and attrs.get("droppath") is not None and attrs.get("columns"):
            max_column = max(max_column, *attrs["columns"])
        if len(module.state_dict()) or any(True for _ in module.parameters()):
            net._install(node.name, module)
        else:
            net._stateless[node.name] = module
    ratio = graph.options.droppath_global
    if ratio and max_column:
        net._droppath = DropPathSampler(float(ratio), max_column)
    mods = net._stateless
    net._gates = Gates(
        [(n, m.survival) for n, m in mods.items() if isinstance(m, ResidualJoin)
         and m.mode == "batch" and m.survival < 1.0],
        [(n, m.p, len(graph[n].inputs), m.columns) for n, m in mods.items()
         if isinstance(m, MeanJoin) and m.p is not None],
        net._droppath)
    net.load_named(init_weights(graph, seed) if weights is None else weights,
                   "weights" if weights is not None else "initial weights")
    return net
