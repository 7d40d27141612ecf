"""The IR: a graph of named, shaped nodes, produced by elaboration and consumed by the lowerings.

Node kinds (``Node.op``):

- ``input``: a network input; no inputs, its shape declared by the spec;
- any name in :data:`netc.compiler.ops.REGISTRY`: an operator applied to ``inputs``.

Sharing: a node whose ``shares`` names another node (its *owner*) computes with the owner's
weights and buffers, not its own (``share tower = ...`` applied twice; Caffe's ``param { name }``).
It has no weights of its own: counts, seeded weights, the torch module, the ONNX initializers
and weights files hold the owner's once; MACs count every application.

Invariants, checked by :func:`verify`: names are unique; nodes are in topological order (every
input of a node comes before it); every shape is known; every output names a node; op names are
registered; a sharing node names an earlier owner of the same op and attributes, which
shares nothing itself; the net-wide options (:class:`NetOptions`) agree with the nodes and
outputs. Names are hierarchical (``stage4.conv4_2``): the same strings are summary rows,
PyTorch state-dict prefixes and ONNX value names.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace

from netc.compiler.ops import REGISTRY, Attrs, OpDef, Shape
from netc.dsl.diagnostics import Span


@dataclass(frozen=True, slots=True)
class Node:
    """One operation. ``inputs`` are names of earlier nodes; ``shares``, the node whose
    weights this one uses (None: its own, if it has any)."""

    name: str
    op: str
    inputs: tuple[str, ...]
    attrs: Attrs
    shape: Shape
    span: Span | None = None
    shares: str | None = None

    @property
    def opdef(self) -> OpDef:
        """The registry's definition of this node's op."""
        return REGISTRY[self.op]

    def replace(self, **changes) -> Node:
        """A copy with ``changes`` (field name -> value)."""
        return replace(self, **changes)


@dataclass(frozen=True, slots=True)
class InputSpec:
    """A network input and how images are prepared for it (used by ``netc run``)."""

    name: str
    shape: Shape
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    # An image becomes the input as: pixels in [0, 1] times ``scale`` (1 for torchvision,
    # 255 for Caffe), channels in ``layout`` order (rgb, bgr or gray), then (x − mean) / std.
    scale: float = 1.0
    layout: str = "rgb"


@dataclass(frozen=True, slots=True)
class NetOptions:
    """What a net declares about itself beyond its nodes; read by the passes and lowerings.

    Frozen: make a changed copy with :meth:`replace` (the mappings inside are read-only by
    convention; the elaborator builds them once). Every field has a default meaning "not
    declared", so ``NetOptions()`` is a net that declares nothing.
    """

    # The names the spec gives its outputs (``output logits = ...``), one per ``Graph.outputs``
    # entry in the same order; empty: the output nodes' own names (summary rows, ONNX outputs).
    output_names: tuple[str, ...] = ()
    # ``training output aux1 = ...``: name -> the node computing it. The torch module computes
    # these in training mode only; ONNX and the totals leave them out.
    training_outputs: Mapping[str, str] = field(default_factory=dict)
    # The loss weight of each training output, by the same names (GoogLeNet's 0.3).
    training_output_weights: Mapping[str, float] = field(default_factory=dict)
    # ``with droppath(local=, global=)`` (FractalNet): the drop probability of a mean join that
    # gives none itself, and the fraction of mini-batches sampled globally (one column).
    droppath_local: float | None = None
    droppath_global: float | None = None
    # ``with stochastic_depth(p_L=, mode=)`` (Huang et al.): the survival of the last residual
    # block (the others decay linearly towards it), and whether one draw is made per block and
    # mini-batch ("batch") or per sample ("row").
    stochastic_depth: float | None = None
    stochastic_depth_mode: str = "batch"

    def replace(self, **changes) -> NetOptions:
        """A copy with ``changes`` (field name -> value)."""
        return replace(self, **changes)

    def problems(self, graph: Graph) -> list[str]:
        """What is inconsistent in these options for ``graph`` (empty when nothing is)."""
        out = []
        if self.output_names and len(self.output_names) != len(graph.outputs):
            out.append(f"{len(self.output_names)} output names for {len(graph.outputs)} outputs")
        for name, node in self.training_outputs.items():
            if node not in graph.nodes:
                out.append(f"training output {name!r} names no node ({node!r})")
        if set(self.training_output_weights) != set(self.training_outputs):
            out.append("training output weights do not name the training outputs")
        for key in ("droppath_local", "droppath_global", "stochastic_depth"):
            p = getattr(self, key)
            if p is not None and not 0 <= p <= 1:
                out.append(f"{key} is {p!r}, not a probability")
        if self.stochastic_depth_mode not in ("batch", "row"):
            out.append(f"stochastic_depth_mode is {self.stochastic_depth_mode!r}")
        return out


@dataclass
class Graph:
    """Nodes in topological order, plus inputs, outputs and net-wide declarations.

    ``aliases`` maps scope names (a definition call such as ``inception_4c``) to the node that
    computes the scope's output, so ``inception_4c`` can be tapped by name.
    ``options`` holds the net-wide declarations (:class:`NetOptions`).
    """

    name: str
    nodes: dict[str, Node] = field(default_factory=dict)
    inputs: dict[str, InputSpec] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)
    aliases: dict[str, str] = field(default_factory=dict)
    options: NetOptions = field(default_factory=NetOptions)
    source: str | None = None
    # Scope name of every (non-inline) definition call -> the call as written with its
    # arguments, e.g. ``layer1.basic1`` -> ``basic(ch=64, stride=1)``. The ONNX lowering's
    # ``--functions`` turns each call into a model-local function.
    calls: dict[str, str] = field(default_factory=dict)

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes.values())

    def __len__(self) -> int:
        return len(self.nodes)

    def __getitem__(self, name: str) -> Node:
        return self.nodes[name]

    def add(self, node: Node) -> Node:
        """Append ``node`` (after its inputs: the caller keeps the order topological)."""
        self.nodes[node.name] = node
        return node

    def sharing(self) -> dict[str, str]:
        """Sharing node -> the owner of the weights it uses (empty when nothing is shared)."""
        return {n.name: n.shares for n in self if n.shares is not None}

    def state_size(self, node: Node) -> int:
        """How many numbers ``node``'s op holds (weights and buffers), from its op's counts:
        nothing is drawn, and a sharing node counts what its owner holds for it."""
        if node.op == "input":
            return 0
        ins = [self.nodes[i].shape for i in node.inputs]
        return (node.opdef.param_count(node.attrs, ins, node.shape)
                + node.opdef.buffer_count(node.attrs, ins, node.shape))

    def consumers(self) -> dict[str, list[str]]:
        """Node name -> the names of the nodes that read it, in graph order."""
        users: dict[str, list[str]] = {n: [] for n in self.nodes}
        for node in self:
            for i in node.inputs:
                users[i].append(node.name)
        return users

    def resolve(self, name: str) -> str | None:
        """The node a user means by ``name``: a node, a scope alias, or a unique dotted suffix."""
        if name in self.nodes:
            return name
        if name in self.aliases:
            return self.aliases[name]
        suffix = "." + name
        hits = [n for n in self.nodes if n.endswith(suffix)]
        hits += [self.aliases[a] for a in self.aliases if a.endswith(suffix)]
        hits = sorted(set(hits))
        return hits[0] if len(hits) == 1 else None

    def candidates(self, name: str) -> list[str]:
        """Names that end with ``name`` (for an ambiguity message)."""
        suffix = "." + name
        return sorted({n for n in list(self.nodes) + list(self.aliases) if n.endswith(suffix)})

    def copy(self, **changes) -> Graph:
        """A shallow copy (new containers, the same frozen nodes) with ``changes``."""
        g = Graph(self.name, dict(self.nodes), dict(self.inputs), list(self.outputs),
                  dict(self.aliases), self.options, self.source, dict(self.calls))
        for k, v in changes.items():
            setattr(g, k, v)
        return g

    def slice(self, targets: list[str]) -> list[Node]:
        """The nodes needed to compute ``targets``, in topological order (the backward slice)."""
        need: set[str] = set()
        stack = list(targets)
        while stack:
            n = stack.pop()
            if n in need:
                continue
            need.add(n)
            stack.extend(self.nodes[n].inputs)
        return [node for node in self if node.name in need]


class IRError(Exception):
    """An IR invariant is broken: a compiler bug, never a user's mistake."""


def verify(graph: Graph) -> None:
    """Check the invariants in the module docstring; raise :class:`IRError` naming the node."""
    seen: set[str] = set()
    for node in graph:
        if node.name in seen:
            raise IRError(f"duplicate node name {node.name!r}")
        if node.op != "input" and node.op not in REGISTRY:
            raise IRError(f"node {node.name!r}: unknown op {node.op!r}")
        for i in node.inputs:
            if i not in seen:
                raise IRError(f"node {node.name!r}: input {i!r} is not defined before it")
        if not node.shape or any(not isinstance(d, int) or d <= 0 for d in node.shape):
            raise IRError(f"node {node.name!r}: bad shape {node.shape!r}")
        if node.shares is not None:
            _verify_sharing(graph, node, seen)
        seen.add(node.name)
    for name in graph.inputs:
        if name not in graph.nodes or graph.nodes[name].op != "input":
            raise IRError(f"input {name!r} has no input node")
    if not graph.outputs:
        raise IRError("graph has no outputs")
    for out in graph.outputs:
        if out not in graph.nodes:
            raise IRError(f"output {out!r} is not a node")
    problems = graph.options.problems(graph)
    if problems:
        raise IRError("options: " + "; ".join(problems))


def _verify_sharing(graph: Graph, node: Node, seen: set[str]) -> None:
    """A sharing node's owner comes before it, is the same layer, and shares nothing itself."""
    owner = graph.nodes.get(node.shares) if node.shares in seen else None
    if owner is None:
        raise IRError(f"node {node.name!r}: shares {node.shares!r}, which is not before it")
    if owner.op != node.op or owner.attrs != node.attrs or owner.shares is not None:
        raise IRError(f"node {node.name!r}: shares {owner.name!r}, a different layer")
