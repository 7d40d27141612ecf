"""Evaluation: a spec expression becomes a value (:mod:`netc.compiler.frontend.values`).

Rules:

1. Numbers, strings and lists are themselves; arithmetic and comparisons follow
   :mod:`netc.compiler.frontend.arithmetic`; ``and``/``or`` short-circuit; a condition is true
   or false (or a number).
2. A name is looked up in order: the environment (parameters, loop variables, ``let``), the
   input's shape names, the net's values (only outside definitions), ``true``/``false``, the
   file's constants, the definitions, the ops; an unbound word is a :class:`Symbol`
   (``project``).
3. A call is a file-level function, a numeric function, a definition (also one passed as an
   argument), ``residual``, a layer, or an argument value (``ridge(0.1)``)
   (:mod:`netc.compiler.frontend.calls`, :mod:`netc.compiler.frontend.residual`).
4. Blocks are built, not applied: ``a -> b`` is a :class:`SeqBlock`, ``join[a, b]`` a
   :class:`JoinBlock`, ``b * n`` a :class:`TimesBlock`, ``for`` a closure over its environment,
   ``x as name`` a :class:`LabelledBlock` (:mod:`netc.compiler.frontend.application` applies
   them).
5. Spines are walked in loops, not by recursion: a chain of 100,000 layers, a sum of 5,000
   terms, an ``if ... else if`` ladder or ``not not ... x`` cost no stack.
6. An error yields ``POISON``, and an expression over ``POISON`` is ``POISON`` without a
   second diagnostic.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import replace
from typing import Any

from netc.compiler import ops as opreg
from netc.compiler.frontend.arithmetic import (
    ARITHMETIC,
    BIG_INT,
    BIG_INT_DIGITS,
    COMPARISONS,
    is_num,
)
from netc.compiler.frontend.bindings import NUMERIC_FUNCTIONS, SHAPE_NAMES, Bindings
from netc.compiler.frontend.calls import Calls
from netc.compiler.frontend.context import Context
from netc.compiler.frontend.residual import residual_block
from netc.compiler.frontend.values import (
    POISON,
    Block,
    DefBlock,
    DefRef,
    ForBlock,
    JoinBlock,
    JoinHead,
    LabelledBlock,
    OpRef,
    Poison,
    SeqBlock,
    SharedBlock,
    TimesBlock,
    Value,
    ValueRef,
    show,
)
from netc.compiler.ops import ArgError, Symbol
from netc.compiler.ops.base import clip, is_int
from netc.dsl import ast
from netc.dsl.diagnostics import Span
from netc.dsl.nesting import unwind

_OPERATORS = {**ARITHMETIC, **COMPARISONS}


class Evaluator:
    """Evaluates expressions for one elaboration (rules in the module docstring).

    ``values`` is the net's named values (``image``, ``x = ...``), filled in by the statements
    as they run; ``defs`` and ``constants`` are the program's definitions and file-level lets.
    """

    def __init__(self, ctx: Context, defs: dict[str, ast.Definition],
                 constants: dict[str, ast.LetStmt], values: dict[str, Value | Poison]):
        self.ctx = ctx
        self.error = ctx.error  # every diagnostic goes to the shared context
        self.defs = defs
        self.values = values
        # Names the net's ``share`` statements bind, with where: those not yet run (a use
        # before the declaration), and the one whose block is being evaluated (a recursion).
        self.shares_later: dict[str, Span] = {}
        self.sharing: str | None = None
        self.shared: set[str] = set()  # the names share statements have bound so far
        self.calls = Calls(ctx, self.eval)
        self.bindings = Bindings(ctx, self.eval, constants)
        # Which method evaluates which kind of expression.
        self._rules = {
            ast.Num: self.literal, ast.Str: self.literal, ast.ListLit: self.list_literal,
            ast.Name: self.name, ast.Call: self.call, ast.BinOp: self.binary,
            ast.UnaryOp: self.unary, ast.IfExpr: self.conditional, ast.Seq: self.chain,
            ast.Join: self.join, ast.Repeat: self.range_loop, ast.Labelled: self.labelled,
            ast.Let: self.bindings.let, ast.RepeatList: self.bindings.for_each,
        }

    def eval(self, e: ast.Node, env: dict[str, Any]) -> Any:
        """The value of ``e`` in ``env`` (parameter and variable names -> values)."""
        return self._rules[type(e)](e, env)

    # ---- values -----------------------------------------------------------------------------
    def literal(self, e: ast.Num | ast.Str, env):
        """A number or a string: itself."""
        return e.value

    def list_literal(self, e: ast.ListLit, env):
        """``[a, b, c]``: a list of values."""
        items = [self.eval(i, env) for i in e.items]
        return POISON if any(i is POISON for i in items) else items

    def name(self, e: ast.Name, env):
        """A bare name (rule 2)."""
        if e.id in env:
            v = env[e.id]
            # A shared block carries the span of each use, where a mismatch is reported.
            return replace(v, span=e.span) if isinstance(v, SharedBlock) else v
        if e.id in SHAPE_NAMES:
            return self.bindings.shape_name(e, env)
        if e.id in self.values and self.ctx.depth == 0:  # definitions cannot see a net's values
            v = self.values[e.id]
            return POISON if v is POISON else ValueRef(e.id, v, e.span)
        if e.id in ("true", "false"):
            return e.id == "true"
        if e.id in self.bindings.constants:
            return self.bindings.constant(e)
        if e.id in self.defs:
            defn = self.defs[e.id]
            if any(p.default is None for p in defn.params):
                return DefRef(defn, e.span)  # called later, as block(ch, stride=2)
            return self.calls.call_def(defn, [], {}, e.span)
        if e.id == "residual":
            return self.error(e.span, "residual needs a body: "
                                      "residual(conv(...) -> bn, shortcut=project)")
        if e.id in opreg.REGISTRY:
            opdef = opreg.REGISTRY[e.id]
            if any(p.required for p in opdef.params):
                return OpRef(opdef, e.span)
            return self.calls.make_op(e.id, [], {}, e.span)
        return Symbol(e.id)

    def call(self, e: ast.Call, env):
        """``f(args...)`` (rule 3)."""
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
        if fname in self.bindings.constants and fname not in env:
            return self.bindings.call_function(e, fname, args, kwargs, env)
        if fname in NUMERIC_FUNCTIONS and fname not in env and fname not in self.defs:
            value = self.bindings.numeric_call(e, fname, args, kwargs)
            if value is not NotImplemented:
                return value
        if fname in env:
            target = env[fname]
            if isinstance(target, (DefRef, DefBlock)):  # a definition passed as an argument
                return self.calls.call_def(target.defn, args, kwargs, e.span)
            return self.error(e.func.span, f"{fname!r} is {show(target)}, not a definition; "
                                           "it cannot take arguments")
        if fname in self.defs:
            return self.calls.call_def(self.defs[fname], args, kwargs, e.span)
        if fname == "residual":
            return residual_block(self.ctx, args, kwargs, e.span)
        if fname in opreg.REGISTRY:
            params = opreg.REGISTRY[fname].params
            spans = {p.name: a.span for p, a in zip(params, e.args)}
            spans.update((kw.name, kw.span) for kw in e.kwargs)
            return self.calls.make_op(fname, args, kwargs, e.span, spans)
        if fname in opreg.VALUE_CALLS:  # an argument value such as fit=ridge(0.1)
            try:
                return opreg.VALUE_CALLS[fname](args, kwargs)
            except ArgError as err:
                return self.error(e.span, str(err))
        return self.unknown(fname, e.func.span)

    # ---- what a name is not -----------------------------------------------------------------
    def unknown_name(self, name: str, span: Span) -> Poison:
        """A label's ``{name}`` that names nothing."""
        return self.error(span, f"{name!r} in this label is not a parameter or loop variable")

    def unknown(self, name: str, span: Span, lead: str | None = None) -> Poison:
        """A name that is no layer, definition or value, with the closest ones as a hint;
        ``lead`` says where the name came from when that is not the span's text."""
        if name in self.values and self.ctx.depth > 0:
            return self.error(span, f"{name!r} is a value of the net; a definition sees only its "
                                    "parameters: pass the value in, or use it in the net")
        if name in self.values:  # called, as x(3): not "did you mean x?"
            return self.error(span, f"{name!r} is a value of the net, not a layer or a "
                                    f"definition; it cannot take arguments ({name} -> ...)")
        shared = self.unknown_share(name)
        if shared is not None:
            return self.error(span, shared)
        known = list(self.defs) + list(opreg.REGISTRY) + list(self.values)
        close = difflib.get_close_matches(name, known, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        return self.error(span, f"{lead or 'unknown layer or definition'} {name!r}{hint}")

    def unknown_share(self, name: str) -> str | None:
        """Why a shared block's name is not bound here, or None: used inside its own block,
        or before its ``share`` statement."""
        if name == self.sharing:
            return (f"share {name} = ... uses {name!r} inside its own block: a shared block is "
                    "one set of layers, made once; a block that repeats itself is a def "
                    "(def f(n) = if n == 0 then ... else ... -> f(n - 1))")
        if name in self.shared and self.ctx.depth > 0:
            return (f"{name!r} is a shared block of the net; a definition sees only its "
                    f"parameters: pass it in (def f(tower) = ... -> tower, then f({name}))")
        if name in self.shares_later and self.ctx.depth == 0:
            return (f"{name!r} is declared by share on line {self.shares_later[name].line}, "
                    "after this use; a shared block is used after its share statement")
        return None

    def not_a_block(self, v, node: ast.Node) -> Poison:
        """The diagnostic for a value ``v`` written where a layer is expected."""
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
                                         f"\"{clip(v)}\"{hint}")
        return self.error(node.span, f"expected a layer here; got {show(v)}")

    # ---- arithmetic and conditions ----------------------------------------------------------
    def binary(self, e: ast.BinOp, env):
        """``a <op> b``, a left spine of them walked in a loop (rule 5)."""
        first, links = unwind(e)  # a sum of 5,000 terms costs no stack
        acc = self.eval(first, env)
        for op in links:
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
        if e.op == "*" and isinstance(left, Block) and is_int(right):
            if right < 0:
                return self.error(e.right.span, f"cannot repeat a block {right} times")
            if isinstance(left, TimesBlock):  # (b * m) * n is b * (m*n): no nesting
                return TimesBlock(left.body, left.times * right, e.span)
            return TimesBlock(left, right, e.span)
        if not (is_num(left) and is_num(right)):
            if e.op in ("==", "!=") and isinstance(left, str) and isinstance(right, str):
                return (left == right) == (e.op == "==")
            shown = f"{show(left)} {e.op} {show(right)}"
            return self.error(e.span, f"cannot compute {shown}: {e.op} needs numbers")
        return self.compute(e, left, right)

    def compute(self, e: ast.BinOp, left, right):
        """``left <op> right`` on two numbers; division by zero and overflow are diagnostics."""
        try:
            value = _OPERATORS[e.op](left, right)
        except ZeroDivisionError:
            return self.error(e.span, f"division by zero in {show(left)} {e.op} {show(right)}")
        except OverflowError:
            return self.error(e.span, f"{show(left)} {e.op} {show(right)} is too large")
        if isinstance(value, float) and not math.isfinite(value):
            return self.error(e.span, f"{show(left)} {e.op} {show(right)} is not finite")
        if is_int(value) and abs(value) > BIG_INT:
            return self.error(e.span, f"{show(left)} {e.op} {show(right)} has more than "
                                      f"{BIG_INT_DIGITS} digits")
        return value

    def unary(self, e: ast.UnaryOp, env):
        """``-x`` and ``not x``."""
        operand, ops = unwind(e)  # ``not not ... x``: a loop, innermost first
        v = self.eval(operand, env)
        for u in ops:
            if v is POISON:
                return POISON
            if u.op == "not":
                v = not v
            elif not is_num(v):
                return self.error(u.span, f"cannot negate {show(v)}")
            elif u.op == "-":
                v = -v
        return v

    def conditional(self, e: ast.IfExpr, env):
        """``if c then a else b``: only the branch taken is evaluated."""
        while isinstance(e, ast.IfExpr):  # an if ... else if ... ladder, in a loop
            cond = self.eval(e.cond, env)
            if cond is POISON:
                return POISON
            if not isinstance(cond, (bool, int, float)):
                return self.error(e.cond.span,
                                  f"a condition must be true or false; got {show(cond)}")
            e = e.then if cond else e.orelse
        return self.eval(e, env)

    # ---- blocks (rule 4) --------------------------------------------------------------------
    def chain(self, e: ast.Seq, env):
        """``a -> b -> c``: a block of blocks in sequence."""
        # ``a -> b -> c`` is Seq(Seq(a, b), c): walk the chain in a loop, not by recursion, so a
        # generated chain of 100,000 layers costs no stack.
        first, links = unwind(e)
        acc = self.eval(first, env)
        if acc is not POISON and not isinstance(acc, Block):
            acc = self.not_a_block(acc, first)
        for link in links:
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

    def join(self, e: ast.Join, env):
        """``head[branches...]``: a join of blocks, or an item of a list (``table[i]``)."""
        head = self.eval(e.head, env)
        if head is POISON:
            return POISON
        if isinstance(head, list):  # table[i]
            return self.bindings.index(head, e, env)
        if not isinstance(head, JoinHead):
            return self.error(e.head.span, "branches in [...] need a join: "
                                           f"{', '.join(opreg.join_heads())}")
        branches = [self.eval(b, env) for b in e.branches]
        if any(b is POISON for b in branches):
            return POISON
        for b, b_ast in zip(branches, e.branches):
            if not isinstance(b, Block):
                return self.error(b_ast.span, f"a branch must be a block of layers; got {show(b)}")
        if not branches:
            return self.error(e.span, f"{head.op.name} needs at least one branch")
        return JoinBlock(head.op, head.attrs, tuple(branches), e.span)

    def range_loop(self, e: ast.Repeat, env):
        """``body for i in lo..hi``: a block that repeats ``body`` with ``i`` bound."""
        lo, hi = self.eval(e.lo, env), self.eval(e.hi, env)
        if lo is POISON or hi is POISON:
            return POISON
        if not (is_int(lo) and is_int(hi)):
            return self.error(e.span, f"for {e.var} in lo..hi needs integers; "
                                      f"got {show(lo)}..{show(hi)}")
        return ForBlock(e.body, e.var, lo, hi, dict(env), e.span)

    def labelled(self, e: ast.Labelled, env):
        """``x as name`` (with ``{expr}`` parts interpolated): a block with a label."""
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
                if not (is_int(v) or isinstance(v, str)):
                    return self.error(part.span, "a label can interpolate integers and "
                                                 f"names; got {show(v)}")
                text.append(str(v))
        if inner is POISON:
            return POISON
        if not isinstance(inner, Block):
            return self.not_a_block(inner, e.target)
        return LabelledBlock(inner, "".join(text), e.span)
