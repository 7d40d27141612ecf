"""Elaboration: a parsed net becomes an IR graph with stable names and checked shapes.

Rules, in order of application:

1. Expressions evaluate to numbers, lists, symbols or blocks (:mod:`netc.compiler.frontend.values`);
   blocks are applied to the value flowing through a chain, adding nodes.
2. A definition call opens a scope named by its label or ``<def><k>``; a primitive op is named
   by its label or ``<op><k>``, counting per scope (``stage2.conv1``); a label that collides gets
   ``_1``, ``_2``. ``x as name`` on a group opens a scope ``name``.
3. Every node's shape is inferred when it is created, so a shape error points at the call that
   caused it and at the expansion path that led there.
4. Errors do not stop elaboration: the failing value becomes ``POISON`` and later errors that
   depend on it are suppressed; independent errors are all reported.
5. Growth is bounded: more than ``max_nodes`` nodes, definition calls (or parameter defaults
   that call definitions) nested deeper than ``max_depth``, or more than ``IDLE_STEPS +
   STEPS_PER_NODE * nodes made`` steps (applications, iterations, calls: work that makes no
   node, such as an empty ``for`` over 10**12, counts too) stop elaboration at once with a
   diagnostic.
6. Cost is linear in the nodes made: chains, sums and ``if ... else if`` ladders are walked in
   loops (:mod:`netc.dsl.nesting` bounds the rest), colliding labels find their next free suffix in
   O(1), and a residual finds its body's nodes by position.

After elaboration: nested FractalNet mean-joins are flattened (:func:`flatten_mean_joins`) and
stochastic-depth survival probabilities are assigned (:func:`assign_survival`).
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from typing import Any

from netc.compiler import ops as opreg
from netc.compiler.frontend.bindings import INPUT_KEY, NUMERIC_FUNCTIONS, SHAPE_NAMES, BindingsMixin
from netc.compiler.ir import Graph, InputSpec, Node
from netc.compiler.ops import ArgError, Attrs, ShapeError, Symbol, fmt_shape
from netc.compiler.ops.domains import MAX_SIZE
from netc.compiler.frontend.values import (
    POISON,
    Block,
    DefBlock,
    DefRef,
    ForBlock,
    JoinBlock,
    JoinHead,
    LabelledBlock,
    OpBlock,
    OpRef,
    Poison,
    ResidualBlock,
    SeqBlock,
    TimesBlock,
    Value,
    ValueRef,
)
from netc.dsl import ast
from netc.dsl.diagnostics import Diagnostic, DiagnosticError, Span

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
JOIN_KINDS = ("concat", "add", "mean", "mul", "max", "crop")
SHORTCUTS = ("identity", "pad", "pad_avg", "project", "conv")
# The loss weight of an auxiliary head (``training output``) unless it says: GoogLeNet's 0.3.
TRAINING_OUTPUT_WEIGHT = 0.3
JOIN_KINDS += ("resize",)  # resize[x, ref]: x interpolated to ref's size


class _Fatal(Exception):
    """Stops elaboration at once (node budget, recursion depth)."""


@dataclass
class _Scope:
    path: tuple[str, ...]
    counters: dict[str, int] = field(default_factory=dict)


class Elaborator(BindingsMixin):
    """Builds one :class:`Graph` from one ``ast.Net`` and the definitions visible to it.

    ``constants`` are the program's file-level ``let`` statements; ``input_shapes`` replace
    declared input shapes (``--input``: input name, or None for the first input -> shape).
    """

    def __init__(self, defs: dict[str, ast.Definition], max_nodes: int = DEFAULT_MAX_NODES,
                 max_depth: int = DEFAULT_MAX_DEPTH,
                 constants: dict[str, ast.LetStmt] | None = None,
                 input_shapes: dict[str | None, tuple[int, ...]] | None = None):
        self.defs = defs
        self.constants = dict(constants or {})
        self._constant_values: dict[str, Any] = {}
        self.input_shapes = dict(input_shapes or {})
        self.max_nodes = max_nodes
        self.max_depth = max_depth
        self.idle_steps = max(IDLE_STEPS, 2 * max_nodes)
        self.steps = 0
        self.where: Span | None = None  # the last block applied: where a RecursionError lands
        self._suffix: dict[str, int] = {}  # full label -> last suffix tried (linear labels)
        self._position: dict[str, int] = {}  # node name -> its index in graph order
        self._order: list[str] = []
        self.diags: list[Diagnostic] = []
        self.graph: Graph | None = None
        self.values: dict[str, Value | Poison] = {}
        self.used: set[str] = set()
        self.scopes: list[_Scope] = [_Scope(())]
        self.path: list[str] = []  # expansion frames, for notes
        self.depth = 0
        self.column_offset = 0
        self._bound: dict[tuple, Attrs] = {}
        self._eval_methods: dict[type, Any] = {}

    # ---- diagnostics ------------------------------------------------------------------------
    def error(self, span: Span | None, message: str) -> Poison:
        notes = ()
        if self.path:
            frames = self.path
            if len(frames) > 12:  # a deep recursion: its start and its end tell the story
                frames = frames[:5] + [f"… {len(frames) - 10} more …"] + frames[-5:]
            notes = ("in " + " → ".join(frames),)
        self.diags.append(Diagnostic(span, message, notes=notes))
        return POISON

    def fatal(self, span: Span | None, message: str):
        self.error(span, message)
        raise _Fatal

    def step(self, span: Span | None) -> None:
        """Count one unit of work (an application, an iteration, a call) against the budget."""
        self.steps += 1
        self.where = span
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

    # ---- naming -----------------------------------------------------------------------------
    @property
    def scope(self) -> _Scope:
        return self.scopes[-1]

    def _full(self, local: str) -> str:
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
                if self._full(local) not in self.used:
                    break
            self.scope.counters[base] = k
        else:
            # A label used n times tries base, base_1, ... once overall, not once per use.
            local, full = base, self._full(base)
            k = self._suffix.get(full, 0)
            while self._full(local) in self.used:
                k += 1
                local = f"{base}_{k}"
            self._suffix[full] = k
        self.used.add(self._full(local))
        return local

    def push_scope(self, local: str) -> None:
        self.scopes.append(_Scope(self.scope.path + (local,)))

    def pop_scope(self) -> str:
        return ".".join(self.scopes.pop().path)

    # ---- nodes ------------------------------------------------------------------------------
    def add_node(self, op: str, inputs: list[Value], attrs: Attrs, span: Span,
                 label: str | None) -> Value | Poison:
        if len(self.graph.nodes) >= self.max_nodes:
            self.fatal(span, f"the network grows past {self.max_nodes:,} nodes; a recursion or "
                             "repetition is too deep (raise the limit with --max-nodes)")
        opdef = opreg.REGISTRY[op]
        if len(inputs) < opdef.min_inputs or (opdef.max_inputs is not None
                                               and len(inputs) > opdef.max_inputs):
            want = opdef.min_inputs if opdef.max_inputs == opdef.min_inputs else \
                f"at least {opdef.min_inputs}"
            return self.error(span, f"{op} takes {want} input{'s' if want != 1 else ''}; "
                                    f"got {len(inputs)}")
        in_shapes = [v.shape for v in inputs]
        try:
            shape = opdef.infer_shape(attrs, in_shapes)
        except ShapeError as e:
            return self.error(span, str(e))
        big = [d for d in shape if d > MAX_SIZE]
        if big:  # flatten of a huge map, concat of many branches: past int32 indexing
            return self.error(span, f"{op}: output {fmt_shape(shape)} has an axis of {big[0]:,}; "
                                    f"netc builds axes up to {MAX_SIZE:,}")
        name = self._full(self.fresh(label, numbered=False) if label else self.fresh(op, True))
        self.record(Node(name, op, tuple(v.node for v in inputs), attrs, tuple(shape), span))
        return Value(name, tuple(shape))

    def record(self, node: Node) -> None:
        """Add ``node`` to the graph, remembering its position (residual bodies use it)."""
        self._position[node.name] = len(self._order)
        self._order.append(node.name)
        self.graph.add(node)

    # ---- evaluation -------------------------------------------------------------------------
    def eval(self, e: ast.Node, env: dict[str, Any]) -> Any:
        kind = type(e)
        method = self._eval_methods.get(kind)
        if method is None:
            method = self._eval_methods[kind] = getattr(self, "eval_" + kind.__name__)
        return method(e, env)

    def eval_Num(self, e: ast.Num, env):
        return e.value

    def eval_Str(self, e: ast.Str, env):
        return e.value

    def eval_ListLit(self, e: ast.ListLit, env):
        items = [self.eval(i, env) for i in e.items]
        return POISON if any(i is POISON for i in items) else items

    def eval_Name(self, e: ast.Name, env):
        if e.id in env:
            return env[e.id]
        if e.id in SHAPE_NAMES:
            return self.shape_name(e, env)
        if e.id in self.values and self.depth == 0:  # definitions cannot see a net's values
            v = self.values[e.id]
            return POISON if v is POISON else ValueRef(e.id, v, e.span)
        if e.id in ("true", "false"):
            return e.id == "true"
        if e.id in self.constants:
            return self.constant(e)
        if e.id in self.defs:
            defn = self.defs[e.id]
            if any(p.default is None for p in defn.params):
                return DefRef(defn, e.span)  # called later, as block(ch, stride=2)
            return self.call_def(defn, [], {}, e.span)
        if e.id == "residual":
            return self.error(e.span, "residual needs a body: "
                                      "residual(conv(...) -> bn, shortcut=project)")
        if e.id in opreg.REGISTRY and e.id not in ("residual",):
            opdef = opreg.REGISTRY[e.id]
            if any(p.required for p in opdef.params):
                return OpRef(opdef, e.span)
            return self.make_op(e.id, [], {}, e.span)
        return Symbol(e.id)

    def make_op(self, name: str, args, kwargs, span: Span, arg_spans=None):
        """Bind a call of op ``name``; a bad argument is reported at that argument's span
        (``arg_spans`` maps a parameter name to where the call writes it)."""
        opdef = opreg.REGISTRY[name]
        # Binding is pure: the same call (a conv inside a repeated block) is bound once.
        try:
            key = (name, _freeze(args), _freeze(sorted(kwargs.items())))
            attrs = self._bound.get(key)
        except TypeError:  # an unhashable argument (a block): bind every time
            key, attrs = None, None
        if attrs is None:
            try:
                attrs = opdef.bind(args, kwargs)
            except ArgError as err:
                where = (arg_spans or {}).get(err.param, span)
                return self.error(where, str(err))
            if key is not None:
                self._bound[key] = attrs
        if name in JOIN_KINDS:
            return JoinHead(opdef, attrs, span)
        return OpBlock(opdef, attrs, span)

    def eval_Call(self, e: ast.Call, env):
        args = [self.eval(a, env) for a in e.args]
        kwargs = {}
        for kw in e.kwargs:
            if kw.name in kwargs:
                return self.error(kw.span, f"argument {kw.name!r} given twice")
            kwargs[kw.name] = self.eval(kw.value, env)
        if any(v is POISON for v in list(args) + list(kwargs.values())):
            return POISON
        if not isinstance(e.func, ast.Name):
            return self.error(e.span, "only a layer or a definition can be called")
        fname = e.func.id
        if fname in self.constants and fname not in env:
            return self.call_function(e, fname, args, kwargs, env)
        if fname in NUMERIC_FUNCTIONS and fname not in env and fname not in self.defs:
            value = self.numeric_call(e, fname, args, kwargs)
            if value is not NotImplemented:
                return value
        if fname in env:
            target = env[fname]
            if isinstance(target, (DefRef, DefBlock)):  # a definition passed as an argument
                return self.call_def(target.defn, args, kwargs, e.span)
            return self.error(e.func.span, f"{fname!r} is {_show(target)}, not a definition; "
                                           "it cannot take arguments")
        if fname in self.defs:
            return self.call_def(self.defs[fname], args, kwargs, e.span)
        if fname == "residual":
            return self.make_residual(args, kwargs, e.span)
        if fname in opreg.REGISTRY:
            params = opreg.REGISTRY[fname].params
            spans = {p.name: a.span for p, a in zip(params, e.args)}
            spans.update((kw.name, kw.span) for kw in e.kwargs)
            return self.make_op(fname, args, kwargs, e.span, spans)
        if fname in opreg.VALUE_CALLS:  # an argument value such as fit=ridge(0.1)
            try:
                return opreg.VALUE_CALLS[fname](args, kwargs)
            except ArgError as err:
                return self.error(e.span, str(err))
        return self.unknown(fname, e.func.span)

    def unknown_name(self, name: str, span: Span) -> Poison:
        """A label's ``{name}`` that names nothing."""
        return self.error(span, f"{name!r} in this label is not a parameter or loop variable")

    def unknown(self, name: str, span: Span) -> Poison:
        if name in self.values and self.depth > 0:
            return self.error(span, f"{name!r} is a value of the net; a definition sees only its "
                                    "parameters: pass the value in, or use it in the net")
        known = list(self.defs) + list(opreg.REGISTRY) + list(self.values)
        close = difflib.get_close_matches(name, known, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        return self.error(span, f"unknown layer or definition {name!r}{hint}")

    def call_def(self, defn: ast.Definition, args, kwargs, span: Span):
        params = defn.params
        if len(args) > len(params):
            return self.error(span, f"{defn.name} takes {len(params)} argument"
                                    f"{'s' if len(params) != 1 else ''} "
                                    f"({', '.join(p.name for p in params)}); got {len(args)}")
        env: dict[str, Any] = {}
        for p, v in zip(params, args):
            env[p.name] = v
        names = {p.name for p in params}
        for k, v in kwargs.items():
            if k not in names:
                return self.error(span, f"{defn.name} has no parameter {k!r}; it takes "
                                        f"({', '.join(p.name for p in params)})")
            if k in env:
                return self.error(span, f"{defn.name}: parameter {k!r} given twice")
            env[k] = v
        self.step(span)
        for p in params:
            if p.name not in env and p.default is None:
                return self.error(span, f"{defn.name} needs its parameter {p.name!r} "
                                        f"({', '.join(q.name for q in params)})")
        # Defaults are evaluated when the block is applied: they may read in_channels.
        return DefBlock(defn, env, span, defn.name)

    def bind_defaults(self, b: DefBlock, x: Value) -> tuple[dict[str, Any], str] | None:
        """The environment of a definition call applied to ``x``: its arguments, defaults
        evaluated in order, and ``x`` for in_channels; with the call as shown in notes."""
        env: dict[str, Any] = {**b.env, INPUT_KEY: x}
        for p in b.defn.params:
            if p.name not in env:
                # A default may call definitions (def f(x = g()) = ...): one level deeper, so
                # a default that calls its own definition meets the depth limit.
                self.enter(p.default.span, f"the default of {b.defn.name}'s {p.name}")
                self.path.append(f"{b.defn.name}'s default {p.name}")
                try:
                    env[p.name] = self.eval(p.default, dict(env))
                finally:
                    self.depth -= 1
                    self.path.pop()
                if env[p.name] is POISON:
                    return None
        shown = ", ".join(f"{p.name}={_show(env[p.name])}" for p in b.defn.params)
        return env, f"{b.defn.name}({shown})"

    def make_residual(self, args, kwargs, span: Span):
        body = args[0] if args else kwargs.pop("body", None)
        if len(args) > 1:
            return self.error(span, "residual takes one body; give options by name "
                                    "(shortcut=..., survival=...)")
        if not isinstance(body, Block):
            return self.error(span, "residual needs a body of layers: residual(conv(...) -> bn)")
        shortcut = kwargs.pop("shortcut", "identity")
        if isinstance(shortcut, OpRef) or (isinstance(shortcut, OpBlock)
                                           and shortcut.op.name == "identity"):
            shortcut = shortcut.op.name  # shortcut=identity / shortcut=conv
        survival = kwargs.pop("survival", None)
        if kwargs:
            return self.error(span, f"residual has no parameter {next(iter(kwargs))!r}; "
                                    "it takes (body, shortcut, survival)")
        if not isinstance(shortcut, Block) and shortcut not in SHORTCUTS:
            return self.error(span, f"residual: shortcut must be one of {', '.join(SHORTCUTS)}; "
                                    f"got {shortcut!r} (or layers: shortcut=conv(256, 1))")
        if survival is not None and not (isinstance(survival, (int, float))
                                         and 0 < survival <= 1):
            return self.error(span, f"residual: survival must be in (0, 1]; got {survival!r}")
        if not isinstance(shortcut, Block):
            shortcut = str(shortcut)
        return ResidualBlock(body, shortcut, survival, span)

    def eval_Join(self, e: ast.Join, env):
        head = self.eval(e.head, env)
        if head is POISON:
            return POISON
        if isinstance(head, list):  # table[i]
            return self.index(head, e, env)
        if not isinstance(head, JoinHead):
            return self.error(e.head.span, "branches in [...] need a join: "
                                           f"{', '.join(JOIN_KINDS)}")
        branches = [self.eval(b, env) for b in e.branches]
        if any(b is POISON for b in branches):
            return POISON
        for b, b_ast in zip(branches, e.branches):
            if not isinstance(b, Block):
                return self.error(b_ast.span, f"a branch must be a block of layers; got {_show(b)}")
        if not branches:
            return self.error(e.span, f"{head.op.name} needs at least one branch")
        return JoinBlock(head.op, head.attrs, tuple(branches), e.span)

    def eval_Seq(self, e: ast.Seq, env):
        # ``a -> b -> c`` is Seq(Seq(a, b), c): walk the chain in a loop, not by recursion, so a
        # generated chain of 100,000 layers costs no stack.
        links = []
        while isinstance(e, ast.Seq):
            links.append(e)
            e = e.first
        acc = self.eval(e, env)
        if acc is not POISON and not isinstance(acc, Block):
            acc = self.not_a_block(acc, e)
        for link in reversed(links):
            then = self.eval(link.then, env)  # evaluated even after an error: report them all
            if then is POISON:
                acc = POISON
                continue
            if not isinstance(then, Block):
                acc = self.not_a_block(then, link.then)
            elif isinstance(then, ValueRef):
                acc = self.error(link.then.span, f"{then.name!r} is a value; a chain can start "
                                                 "from a value but cannot flow into one")
            elif acc is not POISON:
                acc = SeqBlock(acc, then, link.span)
        return acc

    def not_a_block(self, v, node: ast.Node) -> Poison:
        if isinstance(v, Symbol):
            return self.unknown(str(v), node.span)
        if isinstance(v, JoinHead):
            return self.error(node.span, f"{v.op.name} joins branches: write {v.op.name}[a, b]")
        if isinstance(v, DefRef):
            params = ", ".join(p.name for p in v.defn.params if p.default is None)
            return self.error(node.span, f"{v.defn.name} needs arguments ({params})")
        if isinstance(v, OpRef):
            return self.error(node.span, f"{v.op.name} needs arguments: {v.op.signature()}")
        if isinstance(v, str):
            hint = f": write {v} without quotes" if v in opreg.REGISTRY or v in self.defs else ""
            return self.error(node.span, f"expected a layer here; got the string "
                                         f"\"{_clip(v)}\"{hint}")
        return self.error(node.span, f"expected a layer here; got {_show(v)}")

    def eval_BinOp(self, e: ast.BinOp, env):
        # A sum of 5,000 terms is a left spine of BinOps: evaluated in a loop.
        spine = []
        while isinstance(e, ast.BinOp):
            spine.append(e)
            e = e.left
        acc = self.eval(e, env)
        for op in reversed(spine):
            acc = self.binop(op, acc, env)
        return acc

    def binop(self, e: ast.BinOp, left, env):
        """``left <op> right`` with ``left`` already evaluated."""
        if e.op in ("and", "or"):
            if left is POISON:
                return POISON
            if e.op == "and" and not left:
                return left
            if e.op == "or" and left:
                return left
            return self.eval(e.right, env)
        right = self.eval(e.right, env)
        if left is POISON or right is POISON:
            return POISON
        if e.op == "*" and isinstance(left, Block) and _is_int(right):
            if right < 0:
                return self.error(e.right.span, f"cannot repeat a block {right} times")
            if isinstance(left, TimesBlock):  # (b * m) * n is b * (m*n): no nesting
                return TimesBlock(left.body, left.times * right, e.span)
            return TimesBlock(left, right, e.span)
        if not (_is_num(left) and _is_num(right)):
            if e.op in ("==", "!=") and isinstance(left, str) and isinstance(right, str):
                return (left == right) == (e.op == "==")
            shown = f"{_show(left)} {e.op} {_show(right)}"
            return self.error(e.span, f"cannot compute {shown}: {e.op} needs numbers")
        try:
            value = _ARITH[e.op](left, right)
        except ZeroDivisionError:
            return self.error(e.span, f"division by zero in {_show(left)} {e.op} {_show(right)}")
        except OverflowError:
            return self.error(e.span, f"{_show(left)} {e.op} {_show(right)} is too large")
        if isinstance(value, float) and not math.isfinite(value):
            return self.error(e.span, f"{_show(left)} {e.op} {_show(right)} is not finite")
        if _is_int(value) and abs(value) > _BIG_INT:
            return self.error(e.span, f"{_show(left)} {e.op} {_show(right)} has more than "
                                      f"{_BIG_INT_DIGITS} digits")
        return value

    def eval_UnaryOp(self, e: ast.UnaryOp, env):
        ops = []  # ``not not ... x``: a loop, innermost first
        while isinstance(e, ast.UnaryOp):
            ops.append(e)
            e = e.operand
        v = self.eval(e, env)
        for u in reversed(ops):
            if v is POISON:
                return POISON
            if u.op == "not":
                v = not v
            elif not _is_num(v):
                return self.error(u.span, f"cannot negate {_show(v)}")
            elif u.op == "-":
                v = -v
        return v

    def eval_IfExpr(self, e: ast.IfExpr, env):
        while isinstance(e, ast.IfExpr):  # an if ... else if ... ladder, in a loop
            cond = self.eval(e.cond, env)
            if cond is POISON:
                return POISON
            if not isinstance(cond, (bool, int, float)):
                return self.error(e.cond.span,
                                  f"a condition must be true or false; got {_show(cond)}")
            e = e.then if cond else e.orelse
        return self.eval(e, env)

    def eval_Repeat(self, e: ast.Repeat, env):
        lo, hi = self.eval(e.lo, env), self.eval(e.hi, env)
        if lo is POISON or hi is POISON:
            return POISON
        if not (_is_int(lo) and _is_int(hi)):
            return self.error(e.span, f"for {e.var} in lo..hi needs integers; "
                                      f"got {_show(lo)}..{_show(hi)}")
        return ForBlock(e.body, e.var, lo, hi, dict(env), e.span)

    def eval_Labelled(self, e: ast.Labelled, env):
        inner = self.eval(e.target, env)
        text = []
        for part in e.parts:
            if isinstance(part, str):
                text.append(part)
            else:
                v = self.eval(part, env)
                if v is POISON:
                    return POISON
                if isinstance(v, Symbol):  # a name bound to nothing, not text to paste
                    return self.unknown_name(str(v), part.span)
                if not (_is_int(v) or isinstance(v, str)):
                    return self.error(part.span, "a label can interpolate integers and "
                                                 f"names; got {_show(v)}")
                text.append(str(v))
        if inner is POISON:
            return POISON
        if not isinstance(inner, Block):
            return self.not_a_block(inner, e.target)
        return LabelledBlock(inner, "".join(text), e.span)

    # ---- application ------------------------------------------------------------------------
    def apply(self, block: Any, x: Value | Poison | None, label: str | None = None):
        """Apply ``block`` to the value ``x`` (None at the start of a statement)."""
        if block is POISON:
            return POISON
        if isinstance(block, ValueRef):
            if x is not None:
                return self.error(block.span, f"{block.name!r} is a value; a chain can start from "
                                              "a value but cannot flow into one")
            return block.value
        if x is None and not _starts_with_value(block):
            return self.error(block.span, "this chain has no input: start it from a value, "
                                          "as in image -> ...")
        if x is POISON:
            return POISON
        self.step(block.span)
        method = getattr(self, "apply_" + type(block).__name__)
        return method(block, x, label)

    def apply_OpBlock(self, b: OpBlock, x: Value, label):
        return self.add_node(b.op.name, [x], b.attrs, b.span, label)

    def apply_LabelledBlock(self, b: LabelledBlock, x: Value, label):
        inner = b.inner
        if isinstance(inner, (OpBlock, JoinBlock, ResidualBlock, DefBlock, LabelledBlock)):
            return self.apply(inner, x, b.label)
        # A labelled group opens a scope of that name.
        return self.in_scope(self.fresh(b.label, numbered=False), lambda: self.apply(inner, x))

    def in_scope(self, local: str, fn):
        self.push_scope(local)
        try:
            out = fn()
        finally:
            scope_name = self.pop_scope()
        if isinstance(out, Value):
            self.graph.aliases[scope_name] = out.node
        return out

    def apply_DefBlock(self, b: DefBlock, x: Value, label):
        bound = self.bind_defaults(b, x)
        if bound is None:
            return POISON
        env, described = bound
        self.enter(b.span, described)
        inline = b.defn.inline and not label
        if not inline:
            local = self.fresh(label, numbered=False) if label else self.fresh(b.defn.name, True)
            # Which scopes are definition calls, for the ONNX lowering's --functions.
            self.graph.calls[self._full(local)] = described
        self.path.append(described)
        try:
            def body():
                value = self.eval(b.defn.body, env)
                if value is POISON:
                    return POISON
                if not isinstance(value, Block):
                    return self.not_a_block(value, b.defn.body)
                return self.apply(value, x)
            return body() if inline else self.in_scope(local, body)
        finally:
            self.depth -= 1
            self.path.pop()

    def apply_SeqBlock(self, b: SeqBlock, x: Value | None, label):
        steps = []  # SeqBlock(SeqBlock(a, b), c): a loop down the chain, then along it
        while isinstance(b, SeqBlock):
            steps.append(b.then)
            b = b.first
        x = self.apply(b, x)
        for then in reversed(steps):
            x = self.apply(then, x)
        return x

    def apply_TimesBlock(self, b: TimesBlock, x: Value, label):
        for _ in range(b.times):
            if x is POISON:
                return POISON
            self.step(b.span)  # an empty body (relu * 0) * 10**9 still costs each turn
            x = self.apply(b.body, x)
        return x

    def apply_ForBlock(self, b: ForBlock, x: Value, label):
        envs = ({**b.env, b.var: i} for i in range(b.lo, b.hi + 1))
        return self.apply_each(b.body, b.span, envs, x)

    def apply_each(self, body, span, envs, x: Value):
        """``body`` evaluated in each of ``envs`` in turn, each block applied to the last
        output: the loop behind ``for i in a..b`` and ``for t, c in rows``."""
        for env in envs:
            if x is POISON:
                return POISON
            self.step(span)
            value = self.eval(body, env)
            if value is POISON:
                return POISON
            if not isinstance(value, Block):
                return self.not_a_block(value, body)
            x = self.apply(value, x)
        return x

    def apply_JoinBlock(self, b: JoinBlock, x: Value, label):
        self.path.append(b.op.name)
        outs = []
        columns = []
        n = len(b.branches)
        try:
            for i, branch in enumerate(b.branches):
                saved = self.column_offset
                if b.op.name == "mean":
                    # The FractalNet column of branch i: the last branch is this join's
                    # shallowest column; joins inside branch i sit (n - 1 - i) columns deeper.
                    columns.append(saved + n - i)
                    self.column_offset = saved + (n - 1 - i)
                try:
                    src = None if _starts_with_value(branch) else x
                    outs.append(self.apply(branch, src))
                finally:
                    self.column_offset = saved
        finally:
            self.path.pop()
        if any(o is POISON for o in outs):
            return POISON
        attrs = b.attrs.replace(columns=tuple(columns)) if b.op.name == "mean" else b.attrs
        return self.add_node(b.op.name, outs, attrs, b.span, label)

    def apply_ResidualBlock(self, b: ResidualBlock, x: Value, label):
        self.path.append("residual")
        try:
            y = self.apply(b.body, x)
            if y is POISON:
                return POISON
            short = self.shortcut(b, x, y)
        finally:
            self.path.pop()
        if short is POISON:
            return POISON
        if short.shape != y.shape:  # a pad_avg shortcut floors where the body rounded up
            return self.error(b.span, f"residual: body gives {fmt_shape(y.shape)}, "
                                      f"shortcut={b.shortcut} gives {fmt_shape(short.shape)}")
        attrs = Attrs(survival=b.survival if b.survival is not None else 1.0,
                      explicit=b.survival is not None)
        return self.add_node("residual", [y, short], attrs, b.span, label)

    def shortcut(self, b: ResidualBlock, x: Value, y: Value):
        if isinstance(b.shortcut, Block):
            return self.layer_shortcut(b, x, y)
        if x.shape == y.shape and b.shortcut != "conv":
            return x
        if b.shortcut == "identity":
            return self.error(
                b.span, f"residual: body gives {fmt_shape(y.shape)}, shortcut gives "
                        f"{fmt_shape(x.shape)}; declare shortcut=project or shortcut=pad")
        if len(x.shape) != 3 or len(y.shape) != 3:
            return self.error(
                b.span, f"residual: body gives {fmt_shape(y.shape)}, its input is "
                        f"{fmt_shape(x.shape)}; shortcut={b.shortcut} matches feature maps "
                        "(CxHxW) only: the body must keep a flat vector's size")
        (cx, hx, wx), (cy, hy, wy) = x.shape, y.shape
        stride = -(-hx // hy) if hy else 0
        if stride < 1 or -(-hx // stride) != hy or -(-wx // stride) != wy:
            return self.error(b.span, f"residual: cannot match shortcut {fmt_shape(x.shape)} to "
                                      f"body {fmt_shape(y.shape)} with one stride")
        if b.shortcut in ("pad", "pad_avg"):
            if cy < cx:
                return self.error(b.span, f"residual: shortcut={b.shortcut} cannot reduce {cx} "
                                          f"channels to {cy}; use shortcut=project")
            mode = "avg" if b.shortcut == "pad_avg" else "subsample"
            attrs = opreg.REGISTRY["shortcut_pad"].bind([cy, stride], {"mode": mode})
            return self.add_node("shortcut_pad", [x], attrs, b.span, "shortcut")
        # Projection (option B, or option C with shortcut=conv): 1x1 conv, with bn if the
        # body normalises.
        with_bn = any(self.graph.nodes[n].op == "bn" for n in self._body_nodes(x, y))
        conv = opreg.REGISTRY["conv"].bind([cy, 1], {"stride": stride, "bias": not with_bn})

        def project():
            v = self.add_node("conv", [x], conv, b.span, None)
            if with_bn and v is not POISON:
                v = self.add_node("bn", [v], opreg.REGISTRY["bn"].bind([], {}), b.span, None)
            return v
        return self.in_scope(self.fresh("shortcut", numbered=False), project)

    def layer_shortcut(self, b: ResidualBlock, x: Value, y: Value):
        """``shortcut=conv(256, 1, stride=2, bias=false)``: the given layers, always applied,
        in the scope ``shortcut`` (pre-activation ResNets project without a bn)."""
        short = self.in_scope(self.fresh("shortcut", numbered=False),
                              lambda: self.apply(b.shortcut, x))
        if isinstance(short, Value) and short.shape != y.shape:
            return self.error(b.span, f"residual: body gives {fmt_shape(y.shape)}, shortcut "
                                      f"layers give {fmt_shape(short.shape)}")
        return short

    def _body_nodes(self, x: Value, y: Value) -> list[str]:
        # By position, not by searching the node list: n residual blocks cost O(n), not O(n²).
        return self._order[self._position[x.node] + 1:self._position[y.node] + 1]

    # ---- nets -------------------------------------------------------------------------------
    def net(self, net: ast.Net, overrides: dict[str, Any] | None = None,
            source: str | None = None) -> Graph:
        """Elaborate one net. Raises DiagnosticError listing every error found."""
        self.graph = graph = Graph(net.name, source=source)
        env: dict[str, Any] = {}
        overrides = dict(overrides or {})
        for p in net.params:
            if p.name in overrides:
                env[p.name] = overrides.pop(p.name)
            elif p.default is not None:
                env[p.name] = self.eval(p.default, dict(env))
            else:
                self.error(p.span, f"net parameter {p.name!r} needs a default value")
        for name in overrides:
            self.error(net.span, f"net {net.name} has no parameter {name!r}")
        last: Value | Poison | None = None
        output_names: list[str] = []
        try:
            prev_end = None
            for stmt in net.body:
                if (isinstance(stmt, ast.ExprStmt) and prev_end == stmt.span.line
                        and isinstance(stmt.value, (ast.Name, ast.Call))):
                    # `image -> conv(8, 3) relu` parses as two statements.
                    self.error(stmt.span, "unexpected layer after the end of a chain; "
                                          "missing '->' before it?")
                    continue
                prev_end = stmt.span.end_line
                result = self.statement(stmt, env, output_names)
                if result is not None:
                    last = result
        except _Fatal:
            raise DiagnosticError(self.diags) from None
        except RecursionError:  # a last resort: depth and nesting limits should come first
            self.error(self.where, "this net nests too deeply to elaborate (definition calls "
                                   "and brackets inside one another); lower --max-depth or "
                                   "flatten the spec")
            raise DiagnosticError(self.diags) from None
        if not graph.inputs and not self.diags:
            self.error(net.span, f"net {net.name} declares no input (input image: 3x224x224)")
        for name in self.input_shapes:
            if name is not None and name not in graph.inputs:
                self.error(net.span, f"--input {name}=...: net {net.name} has no input {name!r}; "
                                     f"it has {', '.join(graph.inputs) or 'none'}")
        if not output_names and isinstance(last, Value):
            if last.node in graph.inputs:
                self.error(net.span, f"net {net.name} computes nothing from its input")
            else:
                graph.outputs.append(last.node)
                output_names.append(last.node)
        if not graph.outputs and not self.diags:
            self.error(net.span, f"net {net.name} has no output")
        if self.diags:
            raise DiagnosticError(self.diags)
        graph.options["output_names"] = tuple(output_names)
        flatten_mean_joins(graph)
        assign_survival(graph)
        return graph

    def statement(self, stmt: ast.Node, env, output_names) -> Value | Poison | None:
        g = self.graph
        if isinstance(stmt, ast.InputStmt):
            if stmt.name in self.values:
                return self.error(stmt.span, f"{stmt.name!r} is already defined")
            shape = self.input_shape(stmt, env)
            problem = None if shape is None else _input_shape_problem(shape)
            if problem is not None:
                self.error(stmt.span, problem)
            spec = None
            if shape is not None and problem is None:
                stmt = ast.InputStmt(stmt.span, stmt.name, shape, stmt.options)
                spec = self.input_spec(stmt, env)
            if spec is None:
                # Known but failed: later uses stay quiet instead of "unknown layer 'image'".
                self.values[stmt.name] = POISON
                return POISON
            self.record(Node(stmt.name, "input", (), Attrs(), stmt.shape, stmt.span))
            self.used.add(stmt.name)
            g.inputs[stmt.name] = spec
            self.values[stmt.name] = Value(stmt.name, stmt.shape)
            return None
        if isinstance(stmt, ast.WithStmt):
            self.declaration(stmt, env)
            return None
        if isinstance(stmt, ast.LetStmt):  # let table = [...]: a number, list or word
            if stmt.name in env or stmt.name in self.values:
                return self.error(stmt.span, f"{stmt.name!r} is already defined")
            env[stmt.name] = self.eval(stmt.value, env)
            return None
        if isinstance(stmt, ast.OutputStmt) and stmt.training:
            self.training_output(stmt, env)  # never the net's implicit last chain
            return None
        if isinstance(stmt, (ast.BindStmt, ast.OutputStmt)):
            if stmt.value is None:  # output x
                v = self.values.get(stmt.name)
                if v is None:
                    return self.error(stmt.span, f"output {stmt.name!r} is not a value of this net")
            else:
                if stmt.name in self.values:
                    return self.error(stmt.span, f"{stmt.name!r} is already defined")
                v = self.expression(stmt.value, env)
                self.values[stmt.name] = v
                if isinstance(v, Value) and stmt.name not in g.nodes:
                    g.aliases[stmt.name] = v.node
            if isinstance(stmt, ast.OutputStmt) and isinstance(v, Value):
                g.outputs.append(v.node)
                output_names.append(stmt.name)
            return v
        if isinstance(stmt, ast.ExprStmt):
            return self.expression(stmt.value, env)
        raise AssertionError(type(stmt))

    def expression(self, e: ast.Node, env) -> Value | Poison:
        block = self.eval(e, env)
        if block is POISON:
            return POISON
        if not isinstance(block, Block):
            return self.not_a_block(block, e)
        if not _starts_with_value(block):
            return self.error(e.span, "this chain has no input: start it from a value, "
                                      "as in image -> ...")
        return self.apply(block, None)

    def input_shape(self, stmt: ast.InputStmt, env) -> tuple[int, ...] | None:
        """The declared shape with its ``{expr}`` dimensions evaluated, or the ``--input``
        shape given for this input (by name, or for the first input)."""
        key = stmt.name if stmt.name in self.input_shapes else None
        if key in self.input_shapes and (key is not None or not self.graph.inputs):
            return tuple(self.input_shapes[key])
        dims = []
        for d in stmt.shape:
            v = d if isinstance(d, int) else self.eval(d, env)
            if v is POISON:
                return None
            if isinstance(v, bool) or not isinstance(v, int):
                self.error(d.span, f"an input dimension must be an integer; got {_show(v)}")
                return None
            dims.append(v)
        return tuple(dims)

    def training_output(self, stmt: ast.OutputStmt, env) -> Value | Poison:
        """``training output aux1 = ...``: computed by the torch module in training mode only;
        absent at inference, from ONNX and from the totals (the summary counts it apart)."""
        if stmt.name in self.values:
            return self.error(stmt.span, f"{stmt.name!r} is already defined")
        weight = TRAINING_OUTPUT_WEIGHT
        for kw in stmt.options:
            value = self.eval(kw.value, env)
            if kw.name != "weight":
                return self.error(kw.span, f"a training output takes weight=...; got {kw.name!r}")
            if not (_is_num(value) and value >= 0):
                return self.error(kw.span, f"weight must be a number >= 0; got {_show(value)}")
            weight = float(value)
        v = self.expression(stmt.value, env)
        self.values[stmt.name] = v
        if isinstance(v, Value):
            if stmt.name not in self.graph.nodes:
                self.graph.aliases[stmt.name] = v.node
            self.graph.options.setdefault("training_outputs", {})[stmt.name] = v.node
            self.graph.options.setdefault("training_output_weights", {})[stmt.name] = weight
        return v

    def input_spec(self, stmt: ast.InputStmt, env) -> InputSpec | None:
        opts = {}
        for kw in stmt.options:
            if kw.name in opts:
                self.error(kw.span, f"input option {kw.name!r} given twice")
                return None
            v = self.eval(kw.value, env)
            if v is POISON:
                return None
            opts[kw.name] = v
        known = {"mean", "std", "scale", "layout"}
        where = {kw.name: kw.span for kw in stmt.options}
        for k in opts:
            if k not in known:
                self.error(where[k], f"input has no option {k!r}; "
                                     f"it takes {', '.join(sorted(known))}")
                return None
        c = stmt.shape[0]
        for k in ("mean", "std"):
            if k in opts:
                v = opts[k]
                if _is_num(v):
                    v = [v] * c
                if not (isinstance(v, list) and len(v) == c and all(_is_num(i) for i in v)):
                    self.error(where[k], f"input {k} needs {c} finite numbers (one per "
                                         f"channel); got {_show(opts[k])}")
                    return None
                if k == "std" and any(i <= 0 for i in v):
                    self.error(where[k], f"input std must be positive (it divides); got "
                                         f"{_show(opts[k])}")
                    return None
                opts[k] = tuple(float(i) for i in v)
        scale = opts.get("scale", 1.0)
        if not (_is_num(scale) and scale > 0):
            self.error(where.get("scale", stmt.span), "input scale must be a positive number "
                                                      f"(255 for Caffe); got {_show(scale)}")
            return None
        layout = str(opts.get("layout", "rgb"))
        if layout not in ("rgb", "bgr", "gray"):
            self.error(stmt.span, f"input layout must be rgb, bgr or gray; got {layout!r}")
            return None
        return InputSpec(stmt.name, stmt.shape, opts.get("mean"), opts.get("std"),
                         float(opts.get("scale", 1.0)), layout)

    def declaration(self, stmt: ast.WithStmt, env) -> None:
        args = [self.eval(a, env) for a in stmt.args]
        kwargs = {kw.name: self.eval(kw.value, env) for kw in stmt.kwargs}
        opts = self.graph.options
        if stmt.name == "droppath":
            allowed = {"local", "global"}
            params = dict(zip(("local", "global"), args), **kwargs)
        elif stmt.name == "stochastic_depth":
            allowed = {"p_L", "mode"}
            params = dict(zip(("p_L", "mode"), args), **kwargs)
            mode = str(params.pop("mode", "batch"))
            if mode not in ("batch", "row"):
                self.error(stmt.span, "stochastic_depth: mode must be batch (one draw per "
                                      f"block per mini-batch) or row (per sample); got {mode!r}")
                return
            opts["stochastic_depth_mode"] = mode
        else:
            self.error(stmt.span, f"unknown declaration {stmt.name!r}; netc knows "
                                  "droppath(local=, global=) and stochastic_depth(p_L=, mode=)")
            return
        for k, v in params.items():
            if k not in allowed:
                self.error(stmt.span, f"{stmt.name} has no parameter {k!r}")
                return
            if not (_is_num(v) and 0 <= v <= 1):
                self.error(stmt.span, f"{stmt.name}: {k} must be a probability in [0, 1]; "
                                      f"got {_show(v)}")
                return
        if stmt.name == "droppath":
            opts["droppath_local"] = float(params.get("local", 0.15))
            opts["droppath_global"] = float(params.get("global", 0.5))
        else:
            opts["stochastic_depth"] = float(params.get("p_L", 0.5))


def _input_shape_problem(shape: tuple[int, ...]) -> str | None:
    """Why an input shape cannot be, or None: CxHxW or a length, positive, buildable."""
    if len(shape) == 4 and shape[0] == 1:
        rest = fmt_shape(shape[1:])
        return (f"input shape {fmt_shape(shape)} has 4 axes; shapes exclude the batch axis: "
                f"write {rest}")
    if len(shape) not in (1, 3) or any(d <= 0 for d in shape):
        return f"input shape must be CxHxW (or a length); got {fmt_shape(shape)}"
    if any(d > MAX_SIZE for d in shape):
        return f"input shape {fmt_shape(shape)}: netc builds axes up to {MAX_SIZE:,}"
    return None


def _starts_with_value(block) -> bool:
    while isinstance(block, (SeqBlock, LabelledBlock)):
        block = block.first if isinstance(block, SeqBlock) else block.inner
    if isinstance(block, JoinBlock):
        return all(isinstance(b, ValueRef) or _starts_with_value(b) for b in block.branches)
    return isinstance(block, ValueRef)


# ---- passes run after elaboration ---------------------------------------------------------


def flatten_mean_joins(graph: Graph) -> None:
    """Merge a mean-join into the mean-join that is its only consumer (in place).

    FractalNet's rule f_{C+1} = [f_C ∘ f_C] ⊕ conv nests binary joins; the paper's join takes
    the mean of every column meeting at that depth, so mean(mean(a, b), c) becomes
    mean(a, b, c), each input keeping its column number. Aliases of a removed join are dropped.
    """
    users = graph.consumers()
    removed: set[str] = set()
    for node in list(graph):
        if node.op != "mean":
            continue
        inputs, columns, changed = [], [], False
        for inp, col in zip(node.inputs, node.attrs["columns"]):
            src = graph.nodes[inp]
            if (src.op == "mean" and users[inp] == [node.name] and inp not in graph.outputs
                    and src.attrs.get("droppath") == node.attrs.get("droppath")):
                inputs.extend(src.inputs)
                columns.extend(src.attrs["columns"])
                removed.add(inp)
                changed = True
            else:
                inputs.append(inp)
                columns.append(col)
        if changed:
            graph.nodes[node.name] = node.replace(
                inputs=tuple(inputs), attrs=node.attrs.replace(columns=tuple(columns)))
    for name in removed:
        del graph.nodes[name]
    for alias, target in list(graph.aliases.items()):
        if target in removed:
            del graph.aliases[alias]


def assign_survival(graph: Graph) -> None:
    """Stochastic depth (Huang et al.): residual block l of L survives with
    p_l = 1 − (l/L)(1 − p_L), counting blocks in graph order. Explicit survivals are kept.
    The declaration's ``mode`` (batch or row) goes to every block, explicit ones included (so a
    net can write its own schedule, as EfficientNet's, and declare only the mode)."""
    p_last = graph.options.get("stochastic_depth")
    if p_last is None:
        return
    mode = graph.options.get("stochastic_depth_mode", "batch")  # or "row": per sample
    blocks = [n for n in graph if n.op == "residual"]
    total = len(blocks)
    for l, node in enumerate(blocks, start=1):
        if node.attrs.get("explicit"):
            graph.nodes[node.name] = node.replace(attrs=node.attrs.replace(mode=mode))
            continue
        p = 1.0 - (l / total) * (1.0 - p_last)
        graph.nodes[node.name] = node.replace(attrs=node.attrs.replace(survival=p, mode=mode))


# ---- helpers ------------------------------------------------------------------------------

_ARITH = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
    "//": lambda a, b: _floordiv(a, b),
    "%": lambda a, b: a % b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _floordiv(a, b):
    """``//`` gives an integer also on floats (7.9 // 2 is 3): sizes are computed with it."""
    q = a // b
    return int(q) if isinstance(q, float) and math.isfinite(q) else q


# Integers past 100 digits are no size, count or seed anything can use; arithmetic that grows
# past them is refused at once (Python would keep multiplying ever larger numbers).
_BIG_INT_DIGITS = 100
_BIG_INT = 10**_BIG_INT_DIGITS


def _freeze(v):
    """A hashable form of an argument list (lists become tuples); TypeError if impossible."""
    if isinstance(v, (list, tuple)):
        return tuple(_freeze(i) for i in v)
    hash(v)
    return (type(v), v)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and (
        isinstance(v, int) or math.isfinite(v))


def _clip(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."


def _show(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, Block):
        return "a block of layers"
    if isinstance(v, JoinHead):
        return v.op.name
    if isinstance(v, DefRef):
        return f"the definition {v.defn.name}"
    if isinstance(v, OpRef):
        return v.op.name
    if isinstance(v, list):
        return "[" + ", ".join(_show(i) for i in v[:8]) + (", ...]" if len(v) > 8 else "]")
    return _clip(str(v))
