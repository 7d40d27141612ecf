"""Names, lists and numbers in definitions: what a block can compute before it adds layers.

The part of evaluation that configuration tables and width rules need (used by
:class:`netc.compiler.frontend.expressions.Evaluator`, which hands it the evaluation of
sub-expressions):

1. ``in_channels``, ``in_height``, ``in_width`` and ``in_shape`` inside a definition are the
   shape of the definition's input (the value the call is applied to): depthwise
   ``groups=in_channels``, DenseNet's transition ``conv(in_channels // 2, 1)``. A definition's
   parameter defaults are evaluated when it is applied, so they may read them too
   (``def se(squeeze=max(8, in_channels // 4))``).
2. ``let c = e1, d = e2 in body`` binds names in order for ``body``; ``let NAME = e`` in a net
   binds a number, list or word for the statements after it, and at file level for every
   definition and net of the program (a configuration table written once).
3. ``min``, ``max``, ``round``, ``floor``, ``ceil`` and ``len`` compute on numbers (``max`` with
   branches, ``max[a, b]``, is still the element-wise join). ``round`` rounds halves up, as
   MobileNet's ``make_divisible`` does; ``round``, ``floor``, ``ceil`` and ``//`` give integers.
4. ``table[i]`` is an item of a list (0-based; negative counts from the end);
   ``body for t, c, n, s in table`` repeats ``body`` once per row, the row's items bound to the
   names (one name binds the whole item).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from netc.compiler.frontend.arithmetic import is_num
from netc.compiler.frontend.context import Context
from netc.compiler.frontend.values import POISON, Block, ForEachBlock
from netc.dsl import ast

# The key under which a definition's environment holds the value it is applied to.
INPUT_KEY = "$input"
SHAPE_NAMES = ("in_channels", "in_height", "in_width", "in_shape")
NUMERIC_FUNCTIONS = ("min", "max", "round", "floor", "ceil", "len")


def _to_int(x: float) -> int:
    # Integral results stay ints (conv(round(c * 0.5), 1) needs an int); huge ones are an error
    # raised by the caller.
    return int(x)


class Bindings:
    """Evaluation of shape names, constants, functions, ``let``, list items, numeric functions
    and ``for`` over a list. ``evaluate(e, env)`` evaluates a sub-expression."""

    def __init__(self, ctx: Context, evaluate: Callable[[ast.Node, dict], Any],
                 constants: dict[str, ast.LetStmt]):
        self.ctx = ctx
        self.error = ctx.error  # every diagnostic goes to the shared context
        self.eval = evaluate
        self.constants = constants
        self._constant_values: dict[str, Any] = {}

    # ---- names ------------------------------------------------------------------------------
    def shape_name(self, e: ast.Name, env) -> Any:
        """``in_channels`` and friends: the shape of the current definition's input."""
        x = env.get(INPUT_KEY)
        if x is None:
            return self.error(e.span, f"{e.id} is the shape of a definition's input; it is "
                                      "known only inside a definition (def block(ch) = "
                                      "conv(in_channels, 3, groups=in_channels))")
        if x is POISON:
            return POISON
        shape = x.shape
        if e.id == "in_shape":
            return list(shape)
        if e.id == "in_channels":
            return shape[0]
        if len(shape) != 3:
            return self.error(e.span, f"{e.id}: the definition's input is a flat vector of "
                                      f"{shape[0]}, not a CxHxW feature map")
        return shape[1] if e.id == "in_height" else shape[2]

    def constant(self, e: ast.Name) -> Any:
        """A file-level ``let``: evaluated once, on first use, in an empty environment."""
        if self.constants[e.id].params is not None:
            return self.error(e.span, f"{e.id} is a function: call it, {e.id}(...)")
        value = self._constant_values.get(e.id)
        if value is _EVALUATING:
            return self.error(e.span, f"{e.id} is defined in terms of itself")
        if e.id not in self._constant_values:
            self._constant_values[e.id] = _EVALUATING
            value = self._constant_values[e.id] = self.eval(self.constants[e.id].value, {})
        return value

    def call_function(self, e: ast.Call, fname: str, args: list, kwargs: dict, env) -> Any:
        """``make_divisible(c * width)``: a file-level ``let f(v, d=8) = ...`` applied to
        values. It sees its parameters, the file's constants and the caller's in_channels."""
        stmt = self.constants[fname]
        if stmt.params is None:
            return self.error(e.func.span, f"{fname} is a value, not a function")
        names = [p.name for p in stmt.params]
        if len(args) > len(names) or any(k not in names for k in kwargs):
            return self.error(e.span, f"{fname} takes ({', '.join(names)})")
        inner: dict[str, Any] = dict(zip(names, args))
        if INPUT_KEY in env:
            inner[INPUT_KEY] = env[INPUT_KEY]
        for k, v in kwargs.items():
            if k in inner:
                return self.error(e.span, f"{fname}: parameter {k!r} given twice")
            inner[k] = v
        for p in stmt.params:
            if p.name not in inner:
                if p.default is None:
                    return self.error(e.span, f"{fname} needs its parameter {p.name!r}")
                inner[p.name] = self.eval(p.default, dict(inner))
        self.ctx.step(e.span)
        self.ctx.enter(e.span, f"the function {fname}")  # a recursion meets the depth limit
        try:
            return self.eval(stmt.value, inner)
        finally:
            self.ctx.leave()

    # ---- let, items, numeric functions --------------------------------------------------------
    def let(self, e: ast.Let, env):
        """``let c = e1, d = e2 in body``: names bound in order, for ``body``."""
        inner = dict(env)
        for b in e.bindings:
            v = self.eval(b.value, inner)
            if v is POISON:
                return POISON
            inner[b.name] = v
        return self.eval(e.body, inner)

    def index(self, items: list, e: ast.Join, env) -> Any:
        """``table[i]``: the join syntax applied to a list."""
        if len(e.branches) != 1:
            return self.error(e.span, f"a list takes one index; got {len(e.branches)}")
        i = self.eval(e.branches[0], env)
        if i is POISON:
            return POISON
        if isinstance(i, bool) or not isinstance(i, int):
            return self.error(e.branches[0].span, f"a list index must be an integer; got {i!r}")
        if not -len(items) <= i < len(items):
            return self.error(e.branches[0].span, f"index {i} is out of range for a list of "
                                                  f"{len(items)}")
        return items[i]

    def numeric_call(self, e: ast.Call, fname: str, args: list, kwargs: dict) -> Any:
        """``min(a, b)``, ``max(...)``, ``round(x)``, ``floor(x)``, ``ceil(x)``, ``len(list)``.

        Returns ``NotImplemented`` for ``max`` with keyword arguments or blocks (the join head).
        """
        if fname == "max" and (kwargs or not args or any(isinstance(a, Block) for a in args)):
            return NotImplemented
        if kwargs:
            return self.error(e.span, f"{fname} takes no keyword arguments")
        if fname == "len":
            if len(args) != 1 or not isinstance(args[0], list):
                return self.error(e.span, "len takes one list")
            return len(args[0])
        if fname in ("min", "max"):
            items = args[0] if len(args) == 1 and isinstance(args[0], list) else args
            if not items or not all(is_num(a) for a in items):
                return self.error(e.span, f"{fname} needs numbers (or one list of numbers); got "
                                          f"{', '.join(map(repr, items)) or 'nothing'}")
            return (min if fname == "min" else max)(items)
        if len(args) != 1 or not is_num(args[0]):
            return self.error(e.span, f"{fname} takes one number; got "
                                      f"{', '.join(map(repr, args)) or 'nothing'}")
        x = args[0]
        try:
            if fname == "round":  # halves up: make_divisible's int(v + d / 2) // d
                return _to_int(math.floor(x + 0.5))
            return _to_int(math.floor(x) if fname == "floor" else math.ceil(x))
        except OverflowError:
            return self.error(e.span, f"{fname}({x!r}) is too large")

    # ---- for over a list ----------------------------------------------------------------------
    def for_each(self, e: ast.RepeatList, env):
        """``body for a, b in items``: a block that repeats ``body`` once per item."""
        items = self.eval(e.items, env)
        if items is POISON:
            return POISON
        if not isinstance(items, list):
            return self.error(e.items.span, f"for {', '.join(e.vars)} in ... needs a list (or a "
                                            f"range lo..hi); got {items!r}")
        if len(e.vars) > 1:
            for k, item in enumerate(items):
                if not (isinstance(item, list) and len(item) == len(e.vars)):
                    return self.error(e.items.span, f"for {', '.join(e.vars)} in ...: item {k} "
                                                    f"is {item!r}, not a list of {len(e.vars)}")
        return ForEachBlock(e.body, e.vars, tuple(items), dict(env), e.span)


_EVALUATING = object()  # a file-level constant being evaluated
