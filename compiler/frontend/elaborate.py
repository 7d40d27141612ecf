"""Elaboration: a parsed net becomes an IR graph with stable names and checked shapes.

Rules, in order of application:

1. Expressions evaluate to numbers, lists, symbols or blocks (:mod:`.expressions`, with
   :mod:`.bindings` for names, lists and numbers inside definitions and :mod:`.calls` for
   layer and definition calls); blocks are applied to the value flowing through a chain, adding
   nodes (:mod:`.application`; residual blocks and their shortcuts in :mod:`.residual`).
2. A definition call opens a scope named by its label or ``<def><k>``; a primitive op is named
   by its label or ``<op><k>``, counting per scope (``stage2.conv1``); a label that collides gets
   ``_1``, ``_2``. ``x as name`` on a group opens a scope ``name`` (:mod:`.builder`).
3. Every node's shape is inferred when it is created, so a shape error points at the call that
   caused it and at the expansion path that led there.
4. Errors do not stop elaboration: the failing value becomes ``POISON`` and later errors that
   depend on it are suppressed; independent errors are all reported (:mod:`.context`).
5. Growth is bounded: more than ``max_nodes`` nodes, definition calls (or parameter defaults
   that call definitions) nested deeper than ``max_depth``, or more than ``IDLE_STEPS +
   STEPS_PER_NODE * nodes made`` steps (applications, iterations, calls: work that makes no
   node, such as an empty ``for`` over 10**12, counts too) stop elaboration at once with a
   diagnostic (:mod:`.context`).
6. Cost is linear in the nodes made: chains, sums and ``if ... else if`` ladders are walked in
   loops (:mod:`netc.dsl.nesting` bounds the rest), colliding labels find their next free suffix
   in O(1), and a residual finds its body's nodes by position.
7. A net's statements (inputs, bindings, outputs, declarations) run in order
   (:mod:`.statements`); a net without ``output`` returns its last chain.

After elaboration two passes run: nested FractalNet mean-joins are flattened
(:mod:`netc.compiler.passes.flatten_mean_joins`) and stochastic-depth survival probabilities
are assigned (:mod:`netc.compiler.passes.assign_survival`).
"""

from __future__ import annotations

from typing import Any

from netc.compiler.frontend.application import Applier
from netc.compiler.frontend.builder import GraphBuilder
from netc.compiler.frontend.context import (
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_NODES,
    MAX_DEPTH_LIMIT,
    Context,
    Fatal,
)
from netc.compiler.frontend.expressions import Evaluator
from netc.compiler.frontend.statements import NetStatements
from netc.compiler.frontend.values import Block, DefRef, Poison, Value
from netc.compiler.ops import Symbol
from netc.compiler.ir import Graph
from netc.compiler.passes.assign_survival import assign_survival
from netc.compiler.passes.flatten_mean_joins import flatten_mean_joins
from netc.dsl import ast
from netc.dsl.diagnostics import Diagnostic, DiagnosticError

__all__ = ["DEFAULT_MAX_DEPTH", "DEFAULT_MAX_NODES", "MAX_DEPTH_LIMIT", "Elaborator"]


class Elaborator:
    """Builds one :class:`Graph` from one ``ast.Net`` and the definitions visible to it.

    ``constants`` are the program's file-level ``let`` statements; ``input_shapes`` replace
    declared input shapes (``--input``: input name, or None for the first input -> shape).
    One elaborator elaborates one net; it wires the parts of the front end together.
    """

    def __init__(self, defs: dict[str, ast.Definition], max_nodes: int = DEFAULT_MAX_NODES,
                 max_depth: int = DEFAULT_MAX_DEPTH,
                 constants: dict[str, ast.LetStmt] | None = None,
                 input_shapes: dict[str | None, tuple[int, ...]] | None = None):
        self.ctx = Context(max_nodes, max_depth)
        self.builder = GraphBuilder(self.ctx)
        self.evaluator = Evaluator(self.ctx, defs, dict(constants or {}), {})
        self.applier = Applier(self.ctx, self.builder, self.evaluator)
        self.statements = NetStatements(self.ctx, self.builder, self.evaluator, self.applier,
                                        dict(input_shapes or {}))

    @property
    def diags(self) -> list[Diagnostic]:
        """The diagnostics found so far."""
        return self.ctx.diags

    def eval(self, e: ast.Node, env: dict[str, Any]) -> Any:
        """The value of expression ``e`` (a net alias's arguments are evaluated with this)."""
        return self.evaluator.eval(e, env)

    def net(self, net: ast.Net, overrides: dict[str, Any] | None = None,
            source: str | None = None) -> Graph:
        """Elaborate one net. Raises DiagnosticError listing every error found."""
        ctx = self.ctx
        graph = self.builder.start(net.name, source)
        env = self.parameters(net, dict(overrides or {}))
        try:
            last = self.body(net, env)
        except Fatal:
            raise DiagnosticError(ctx.diags) from None
        except RecursionError:  # a last resort: depth and nesting limits should come first
            ctx.error(ctx.where, "this net nests too deeply to elaborate (definition calls "
                                 "and brackets inside one another); lower --max-depth or "
                                 "flatten the spec")
            raise DiagnosticError(ctx.diags) from None
        self.finish(net, last)
        if ctx.diags:
            raise DiagnosticError(ctx.diags)
        graph.options = graph.options.replace(output_names=tuple(self.statements.output_names))
        return assign_survival(flatten_mean_joins(graph))

    def parameters(self, net: ast.Net, overrides: dict[str, Any]) -> dict[str, Any]:
        """The net's parameters: overrides (``--set``), else defaults evaluated in order."""
        env: dict[str, Any] = {}
        for p in net.params:
            if p.name in overrides:
                env[p.name] = self.override(overrides.pop(p.name), p, env)
            elif p.default is not None:
                env[p.name] = self.eval(p.default, dict(env))
            else:
                self.ctx.error(p.span, f"net parameter {p.name!r} needs a default value")
        for name in overrides:
            self.ctx.error(net.span, f"net {net.name} has no parameter {name!r}")
        return env

    def override(self, value: Any, p: ast.Param, env: dict[str, Any]) -> Any:
        """A parameter set from outside (``--set``, ``netc.load(..., block="bottleneck")``): a
        word means what it would mean written in the spec as the default, so a definition, an
        op or a file-level constant can be chosen by name; anything else is the value itself."""
        if not (isinstance(value, str) and value.isidentifier()):
            return value
        chosen = self.eval(ast.Name(p.span, value), dict(env))
        if (isinstance(chosen, Symbol) and p.default is not None
                and isinstance(self.eval(p.default, dict(env)), (Block, DefRef))):
            # a block parameter set to a word that names nothing: one error here, with the
            # closest names, rather than one at every use of the parameter
            return self.evaluator.unknown(
                value, p.span, f"{p.name} (set from outside) names no layer or definition:")
        return chosen

    def body(self, net: ast.Net, env: dict[str, Any]) -> Value | Poison | None:
        """Run the net's statements in order; the value of the last that computed one."""
        last: Value | Poison | None = None
        prev_end = None
        self.statements.declare_shares(net.body)
        for stmt in net.body:
            if (isinstance(stmt, ast.ExprStmt) and prev_end == stmt.span.line
                    and isinstance(stmt.value, (ast.Name, ast.Call))):
                # `image -> conv(8, 3) relu` parses as two statements.
                self.ctx.error(stmt.span, "unexpected layer after the end of a chain; "
                                          "missing '->' before it?")
                continue
            prev_end = stmt.span.end_line
            result = self.statements.run(stmt, env)
            if result is not None:
                last = result
        return last

    def finish(self, net: ast.Net, last: Value | Poison | None) -> None:
        """Check the net has inputs and outputs; without ``output``, its last chain is one."""
        ctx, graph, output_names = self.ctx, self.ctx.graph, self.statements.output_names
        if not graph.inputs and not ctx.diags:
            ctx.error(net.span, f"net {net.name} declares no input (input image: 3x224x224)")
        for name in self.statements.input_shapes:
            if name is not None and name not in graph.inputs:
                ctx.error(net.span, f"--input {name}=...: net {net.name} has no input {name!r}; "
                                    f"it has {', '.join(graph.inputs) or 'none'}")
        if not output_names and isinstance(last, Value):
            if last.node in graph.inputs:
                ctx.error(net.span, f"net {net.name} computes nothing from its input")
            else:
                graph.outputs.append(last.node)
                output_names.append(last.node)
        if not graph.outputs and not ctx.diags:
            ctx.error(net.span, f"net {net.name} has no output")
