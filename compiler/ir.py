"""The IR: a graph of named, shaped nodes, produced by elaboration and consumed by the lowerings.

Node kinds (``Node.op``):

- ``input``: a network input; no inputs, its shape declared by the spec;
- any name in :data:`netc.compiler.ops.REGISTRY`: an operator applied to ``inputs``.

Invariants, checked by :func:`verify`: names are unique; nodes are in topological order (every
input of a node comes before it); every shape is known; every output names a node; op names are
registered. Names are hierarchical (``stage4.conv4_2``): the same strings are summary rows,
PyTorch state-dict prefixes and ONNX value names.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from netc.compiler.ops import REGISTRY, Attrs, OpDef, Shape
from netc.dsl.diagnostics import Span


@dataclass(frozen=True, slots=True)
class Node:
    """One operation. ``inputs`` are names of earlier nodes."""

    name: str
    op: str
    inputs: tuple[str, ...]
    attrs: Attrs
    shape: Shape
    span: Span | None = None

    @property
    def opdef(self) -> OpDef:
        return REGISTRY[self.op]

    def replace(self, **changes) -> Node:
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


@dataclass
class Graph:
    """Nodes in topological order, plus inputs, outputs and net-wide declarations.

    ``aliases`` maps scope names (a definition call such as ``inception_4c``) to the node that
    computes the scope's output, so ``inception_4c`` can be tapped by name.
    ``options`` holds net-wide declarations: ``droppath_global`` (ratio of global sampling),
    ``droppath_local`` (default local probability), ``stochastic_depth`` (p_L).
    """

    name: str
    nodes: dict[str, Node] = field(default_factory=dict)
    inputs: dict[str, InputSpec] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)
    aliases: dict[str, str] = field(default_factory=dict)
    options: dict[str, object] = field(default_factory=dict)
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
        self.nodes[node.name] = node
        return node

    def consumers(self) -> dict[str, list[str]]:
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
        g = Graph(self.name, dict(self.nodes), dict(self.inputs), list(self.outputs),
                  dict(self.aliases), dict(self.options), self.source, dict(self.calls))
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
        seen.add(node.name)
    for name in graph.inputs:
        if name not in graph.nodes or graph.nodes[name].op != "input":
            raise IRError(f"input {name!r} has no input node")
    if not graph.outputs:
        raise IRError("graph has no outputs")
    for out in graph.outputs:
        if out not in graph.nodes:
            raise IRError(f"output {out!r} is not a node")
