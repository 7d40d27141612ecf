"""What every part of one elaboration shares: the graph being built, the diagnostics found so
far, the expansion path that their notes show, and the growth budget.

Rules:

1. A user's mistake is collected, not raised: :meth:`Context.error` records a diagnostic, with
   the expansion path as a note (``in stage(ch=64, n=2) → residual``), and returns ``POISON``
   so later errors that depend on it stay quiet.
2. :meth:`Context.fatal` records one and stops elaboration at once (:class:`Fatal`): for the
   limits below, past which going on would only cost time.
3. Nodes: no more than ``max_nodes`` (checked where nodes are made, in
   :mod:`netc.compiler.frontend.builder`).
4. Depth: definition calls (and parameter defaults that call definitions) nest at most
   ``max_depth`` deep (:meth:`Context.enter` / :meth:`Context.leave`).
5. Steps: applications, iterations and calls are counted (:meth:`Context.step`); past
   ``IDLE_STEPS + STEPS_PER_NODE * nodes made`` elaboration stops, so work that makes no node
   (an empty ``for`` over 10**12) ends in seconds and elaboration stays linear in the nodes.
"""

from __future__ import annotations

from netc.compiler.frontend.values import POISON, Poison
from netc.compiler.ir import Graph
from netc.dsl.diagnostics import Diagnostic, Span

DEFAULT_MAX_NODES = 100_000
DEFAULT_MAX_DEPTH = 64
# --max-depth can raise the limit this far: a call d deep names its nodes with d scopes
# (stage.block.f.f.f...), so n nodes at depth d cost O(n·d) in names alone; 2,000 checks in
# seconds, and no real net nests a tenth of that.
MAX_DEPTH_LIMIT = 2_000
# The step budget: IDLE_STEPS of work plus STEPS_PER_NODE per node made (the zoo needs at most
# 4 per node), so elaboration is linear in the nodes it makes and an empty loop stops in seconds.
STEPS_PER_NODE = 10
IDLE_STEPS = 200_000
# An expansion path longer than this is shown by its start and its end.
_SHOWN_FRAMES = 12


class Fatal(Exception):
    """Stops elaboration at once (node budget, recursion depth, step budget)."""


class Cancelled(Exception):
    """Raised out of elaboration when its :class:`Trace` says the result is no longer wanted
    (an editor's newer text): no diagnostic, nothing returned."""


class Trace:
    """What an editor asks of one elaboration (``netc lsp``): what each applied block gave, by
    the block's span, and a way to stop early.

    ``applied[span]`` lists, for each application of the block written at ``span`` in order,
    ``(first, end, value)``: the nodes ``list(graph.nodes)[first:end]`` of ``graph`` (the
    graph as built, before the passes) were made by it, and ``value`` is what it gave.
    ``cancelled()`` is asked every 1,024 steps.
    """

    def __init__(self, cancelled=None):
        self.records: list[tuple[Span, int, int, object]] = []  # in order; cheap to add to
        self.graph: Graph | None = None
        self.cancelled = cancelled or (lambda: False)
        self._applied: dict[Span, list[tuple[int, int, object]]] | None = None

    def record(self, span: Span, graph: Graph, first: int, value: object) -> None:
        """One application of the block at ``span``, which made the nodes from ``first`` on."""
        self.graph = graph
        self.records.append((span, first, len(graph.nodes), value))

    @property
    def applied(self) -> dict[Span, list[tuple[int, int, object]]]:
        """The records by span, built once when first asked."""
        if self._applied is None:
            self._applied = {}
            for span, first, end, value in self.records:
                self._applied.setdefault(span, []).append((first, end, value))
        return self._applied


class Context:
    """The shared state of one elaboration (rules in the module docstring)."""

    def __init__(self, max_nodes: int = DEFAULT_MAX_NODES, max_depth: int = DEFAULT_MAX_DEPTH):
        self.max_nodes = max_nodes
        self.max_depth = max_depth
        self.idle_steps = max(IDLE_STEPS, 2 * max_nodes)
        self.steps = 0
        self.depth = 0
        self.where: Span | None = None  # the last block applied: where a RecursionError lands
        self.diags: list[Diagnostic] = []
        self.path: list[str] = []  # expansion frames, for notes
        # The graph being built: None while a net's parameters (or an alias's) are evaluated.
        self.graph: Graph | None = None
        self.trace: Trace | None = None  # set by an editor (netc lsp), else None

    def error(self, span: Span | None, message: str) -> Poison:
        """Record a diagnostic at ``span`` (rule 1); the failed value is ``POISON``."""
        notes = ()
        if self.path:
            frames = self.path
            if len(frames) > _SHOWN_FRAMES:  # a deep recursion: its start and end tell the story
                frames = frames[:5] + [f"… {len(frames) - 10} more …"] + frames[-5:]
            notes = ("in " + " → ".join(frames),)
        self.diags.append(Diagnostic(span, message, notes=notes))
        return POISON

    def fatal(self, span: Span | None, message: str):
        """Record a diagnostic and stop elaboration (rule 2)."""
        self.error(span, message)
        raise Fatal

    def step(self, span: Span | None) -> None:
        """Count one unit of work (an application, an iteration, a call) against the budget."""
        self.steps += 1
        self.where = span
        if self.trace is not None and not self.steps & 1023 and self.trace.cancelled():
            raise Cancelled
        if self.steps > self.idle_steps and self.graph is not None:
            made = len(self.graph.nodes)
            if self.steps > self.idle_steps + STEPS_PER_NODE * made:
                self.fatal(span, f"elaboration has taken {self.steps:,} steps (applications, "
                                 f"iterations, calls) and made only {made:,} nodes: a "
                                 "repetition or recursion that makes nothing? (the budget is "
                                 f"{self.idle_steps:,} steps, plus {STEPS_PER_NODE} per node)")

    def enter(self, span: Span | None, described: str) -> None:
        """One level deeper into definition calls; fatal past ``max_depth``."""
        if self.depth >= self.max_depth:
            self.fatal(span, f"definition calls nest deeper than the limit of {self.max_depth} "
                             f"({described}): a recursion that does not reach its base case, or "
                             "a deeper one than the limit allows (raise it with --max-depth, up "
                             f"to {MAX_DEPTH_LIMIT:,})")
        self.depth += 1

    def leave(self) -> None:
        """Back out of one level entered with :meth:`enter`."""
        self.depth -= 1
