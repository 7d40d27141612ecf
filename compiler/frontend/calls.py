"""Calls of layers and definitions: arguments bound to parameters, before anything is applied.

Rules:

1. A layer call (``conv(64, 3, pad=1)``) is bound by its op's parameters
   (:meth:`netc.compiler.ops.OpDef.bind`); a bad argument is reported at that argument. The same
   call is bound once (binding is pure), so a conv inside a repeated block costs one binding.
2. A join op called before its branches (``mean(droppath=0.1)``) is a :class:`JoinHead`; any
   other op call is an :class:`OpBlock`.
3. A definition call binds its arguments by position, then by name, each once; it becomes a
   :class:`DefBlock`, a closure applied later.
4. A definition's defaults are evaluated when the block is applied (:meth:`Calls.bind_defaults`),
   in order, each seeing the parameters before it and the input's shape (``in_channels``); a
   default that calls definitions counts one level of depth.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from netc.compiler import ops as opreg
from netc.compiler.frontend.bindings import INPUT_KEY
from netc.compiler.frontend.context import Context
from netc.compiler.frontend.values import POISON, DefBlock, JoinHead, OpBlock, Value, show
from netc.compiler.ops import ArgError, Attrs
from netc.dsl import ast
from netc.dsl.diagnostics import Span


class Calls:
    """Binds layer and definition calls (rules in the module docstring)."""

    def __init__(self, ctx: Context, evaluate: Callable[[ast.Node, dict], Any]):
        self.ctx = ctx
        self.eval = evaluate
        self._bound: dict[tuple, Attrs] = {}

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
                return self.ctx.error(where, str(err))
            if key is not None:
                self._bound[key] = attrs
        if opdef.join_head:
            return JoinHead(opdef, attrs, span)
        return OpBlock(opdef, attrs, span)

    def call_def(self, defn: ast.Definition, args, kwargs, span: Span):
        """A call of definition ``defn``: a :class:`DefBlock` with its arguments bound."""
        params = defn.params
        if len(args) > len(params):
            return self.ctx.error(span, f"{defn.name} takes {len(params)} argument"
                                        f"{'s' if len(params) != 1 else ''} "
                                        f"({', '.join(p.name for p in params)}); got {len(args)}")
        env: dict[str, Any] = {}
        for p, v in zip(params, args):
            env[p.name] = v
        names = {p.name for p in params}
        for k, v in kwargs.items():
            if k not in names:
                return self.ctx.error(span, f"{defn.name} has no parameter {k!r}; it takes "
                                            f"({', '.join(p.name for p in params)})")
            if k in env:
                return self.ctx.error(span, f"{defn.name}: parameter {k!r} given twice")
            env[k] = v
        self.ctx.step(span)
        for p in params:
            if p.name not in env and p.default is None:
                return self.ctx.error(span, f"{defn.name} needs its parameter {p.name!r} "
                                            f"({', '.join(q.name for q in params)})")
        # Defaults are evaluated when the block is applied: they may read in_channels.
        return DefBlock(defn, env, span, defn.name)

    def bind_defaults(self, b: DefBlock, x: Value) -> tuple[dict[str, Any], str] | None:
        """The environment of a definition call applied to ``x``: its arguments, defaults
        evaluated in order, and ``x`` for in_channels; with the call as shown in notes."""
        ctx = self.ctx
        env: dict[str, Any] = {**b.env, INPUT_KEY: x}
        for p in b.defn.params:
            if p.name not in env:
                # A default may call definitions (def f(x = g()) = ...): one level deeper, so
                # a default that calls its own definition meets the depth limit.
                ctx.enter(p.default.span, f"the default of {b.defn.name}'s {p.name}")
                ctx.path.append(f"{b.defn.name}'s default {p.name}")
                try:
                    env[p.name] = self.eval(p.default, dict(env))
                finally:
                    ctx.leave()
                    ctx.path.pop()
                if env[p.name] is POISON:
                    return None
        shown = ", ".join(f"{p.name}={show(env[p.name])}" for p in b.defn.params)
        return env, f"{b.defn.name}({shown})"


def _freeze(v):
    """A hashable form of an argument list (lists become tuples); TypeError if impossible."""
    if isinstance(v, (list, tuple)):
        return tuple(_freeze(i) for i in v)
    hash(v)
    return (type(v), v)
