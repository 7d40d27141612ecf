"""The graph under construction: the one naming authority, and nodes made with their shapes.

Rules:

1. Names are hierarchical: a definition call or a labelled group opens a scope
   (:meth:`GraphBuilder.in_scope`), and a node's name is its scope path and its local name
   (``stage2.conv1``); the scope's name becomes an alias of the node computing its output.
2. A primitive op or definition call without a label is numbered per scope and base
   (``conv1``, ``conv2``; ``bottleneck_v15_12`` when the base ends in a digit).
3. A label is used as written; one that collides gets ``_1``, ``_2``; a label used n times
   finds its next free suffix in O(1), not by trying every earlier one.
4. Every node's shape is inferred when it is made (:meth:`GraphBuilder.add_node`), so a shape
   error points at the call that caused it; an output axis past ``MAX_SIZE`` is refused.
5. Each node's position in graph order is kept, so a residual finds its body's nodes by
   position (:meth:`GraphBuilder.body_nodes`), not by searching.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from netc.compiler import ops as opreg
from netc.compiler.frontend.context import Context
from netc.compiler.frontend.values import Poison, Value
from netc.compiler.ir import Graph, Node
from netc.compiler.ops import Attrs, ShapeError, fmt_shape
from netc.compiler.ops.domains import MAX_SIZE
from netc.dsl.diagnostics import Span


@dataclass
class _Scope:
    path: tuple[str, ...]
    counters: dict[str, int] = field(default_factory=dict)


class GraphBuilder:
    """Names and adds the nodes of ``ctx.graph`` (rules in the module docstring)."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.used: set[str] = set()
        self.scopes: list[_Scope] = [_Scope(())]
        self._suffix: dict[str, int] = {}  # full label -> last suffix tried (rule 3)
        self._position: dict[str, int] = {}  # node name -> its index in graph order (rule 5)
        self._order: list[str] = []

    def start(self, name: str, source: str | None) -> Graph:
        """Begin the graph of net ``name``."""
        self.ctx.graph = Graph(name, source=source)
        return self.ctx.graph

    # ---- naming -----------------------------------------------------------------------------
    @property
    def scope(self) -> _Scope:
        """The innermost open scope."""
        return self.scopes[-1]

    def full(self, local: str) -> str:
        """The full name of ``local`` in the current scope."""
        return ".".join(self.scope.path + (local,))

    def fresh(self, base: str, numbered: bool) -> str:
        """A unique local name in this scope: ``conv3`` (numbered), or ``label``/``label_1``."""
        if numbered:
            k = self.scope.counters.get(base, 0)
            while True:
                k += 1
                # A base that ends in a digit gets a "_" first: block 12 of bottleneck_v15 is
                # bottleneck_v15_12, not bottleneck_v1512.
                local = f"{base}_{k}" if base[-1:].isdigit() else f"{base}{k}"
                if self.full(local) not in self.used:
                    break
            self.scope.counters[base] = k
        else:
            # A label used n times tries base, base_1, ... once overall, not once per use.
            local, full = base, self.full(base)
            k = self._suffix.get(full, 0)
            while self.full(local) in self.used:
                k += 1
                local = f"{base}_{k}"
            self._suffix[full] = k
        self.used.add(self.full(local))
        return local

    def in_scope(self, local: str, fn: Callable[[], Any]):
        """``fn()`` inside the scope ``local``; the scope's name becomes an alias of the node
        that computes its output."""
        self.scopes.append(_Scope(self.scope.path + (local,)))
        try:
            out = fn()
        finally:
            scope_name = ".".join(self.scopes.pop().path)
        if isinstance(out, Value):
            self.ctx.graph.aliases[scope_name] = out.node
        return out

    # ---- nodes ------------------------------------------------------------------------------
    def add_node(self, op: str, inputs: list[Value], attrs: Attrs, span: Span,
                 label: str | None) -> Value | Poison:
        """Make one node of ``op`` on ``inputs``, named by ``label`` or numbered; its shape
        inferred (rule 4). A mistake is a diagnostic and ``POISON``."""
        ctx = self.ctx
        if len(ctx.graph.nodes) >= ctx.max_nodes:
            ctx.fatal(span, f"the network grows past {ctx.max_nodes:,} nodes; a recursion or "
                            "repetition is too deep (raise the limit with --max-nodes)")
        opdef = opreg.REGISTRY[op]
        if len(inputs) < opdef.min_inputs or (opdef.max_inputs is not None
                                               and len(inputs) > opdef.max_inputs):
            want = opdef.min_inputs if opdef.max_inputs == opdef.min_inputs else \
                f"at least {opdef.min_inputs}"
            return ctx.error(span, f"{op} takes {want} input{'s' if want != 1 else ''}; "
                                   f"got {len(inputs)}")
        in_shapes = [v.shape for v in inputs]
        try:
            shape = opdef.infer_shape(attrs, in_shapes)
        except ShapeError as e:
            return ctx.error(span, str(e))
        big = [d for d in shape if d > MAX_SIZE]
        if big:  # flatten of a huge map, concat of many branches: past int32 indexing
            return ctx.error(span, f"{op}: output {fmt_shape(shape)} has an axis of {big[0]:,}; "
                                   f"netc builds axes up to {MAX_SIZE:,}")
        name = self.full(self.fresh(label, numbered=False) if label else self.fresh(op, True))
        self.record(Node(name, op, tuple(v.node for v in inputs), attrs, tuple(shape), span))
        return Value(name, tuple(shape))

    def record(self, node: Node) -> None:
        """Add ``node`` to the graph, remembering its position (rule 5)."""
        self._position[node.name] = len(self._order)
        self._order.append(node.name)
        self.ctx.graph.add(node)

    def count(self) -> int:
        """How many nodes have been made so far (a mark for :meth:`made_since`)."""
        return len(self._order)

    def made_since(self, mark: int) -> list[str]:
        """The names of the nodes made after :meth:`count` returned ``mark``, in order."""
        return self._order[mark:]

    def share(self, name: str, owner: str) -> None:
        """Make node ``name`` use the weights of node ``owner`` (``Node.shares``)."""
        graph = self.ctx.graph
        graph.nodes[name] = graph.nodes[name].replace(shares=owner)

    def body_nodes(self, x: Value, y: Value) -> list[str]:
        """The nodes made after ``x`` up to ``y``: a residual body's, by position (O(body))."""
        return self._order[self._position[x.node] + 1:self._position[y.node] + 1]
