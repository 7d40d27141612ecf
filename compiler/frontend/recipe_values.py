"""The plain values of a recipe: numbers, text, lists, parameters and arithmetic, checked.

A recipe's values are simpler than a net's: no layers, no definitions. Rules:

1. A number or string is itself; a name is a recipe parameter, ``true`` or ``false``, or (where
   a file or image name is expected) its own text; any other name is an error with the closest
   parameter as a hint.
2. ``+ - * / // %`` and unary minus follow the language's one arithmetic table
   (:mod:`netc.compiler.frontend.arithmetic`), so a recipe and a net agree on ``-7 // 2``;
   division by zero, and a result that is not finite or has more than 100 digits, is an error.
3. A setting or option is checked against its domain (:mod:`netc.compiler.ops.domains`) where
   it is written; one given on the command line (``--set``) is a one-line error instead.

Every mistake is collected as a :class:`~netc.dsl.diagnostics.Diagnostic` and the failed value
is None, so independent mistakes are all reported.
"""

from __future__ import annotations

import difflib
import math
from typing import Any

from netc.compiler.frontend.arithmetic import ARITHMETIC, BIG_INT, is_num
from netc.compiler.ops.domains import Domain
from netc.dsl import ast
from netc.dsl.diagnostics import Diagnostic, Span, UserError
from netc.dsl.nesting import unwind

SIGNS = ("+", "-")


class RecipeValues:
    """Evaluates a recipe's values in ``env`` (its parameters), collecting ``diags``."""

    def __init__(self):
        self.diags: list[Diagnostic] = []
        self.env: dict[str, Any] = {}

    def error(self, span: Span | None, message: str) -> None:
        """Record a diagnostic at ``span``."""
        self.diags.append(Diagnostic(span, message))

    def number_or_text(self, e: ast.Node, bare_names: bool = False) -> Any:
        """Evaluate a value; with ``bare_names`` an unknown bare name is its own text."""
        if isinstance(e, ast.Num | ast.Str):
            return e.value
        if isinstance(e, ast.Name):
            return self.name(e, bare_names)
        if isinstance(e, ast.ListLit):
            return [self.number_or_text(i, bare_names) for i in e.items]
        if isinstance(e, ast.UnaryOp) and e.op in SIGNS:
            e, signs = unwind(e, SIGNS)  # - - - x: a loop
            v = self.number_or_text(e)
            if v is not None and not is_num(v):
                self.error(e.span, f"cannot negate {v!r}")
                return None
            return None if v is None else (-1) ** sum(s.op == "-" for s in signs) * v
        if isinstance(e, ast.BinOp) and e.op in ARITHMETIC:
            first, spine = unwind(e, ARITHMETIC)  # a sum of many terms: evaluated in a loop
            a = self.number_or_text(first)
            for op in spine:
                a = self.arith(op, a, self.number_or_text(op.right))
            return a
        self.error(e.span, "expected a number, a name or a string here")
        return None

    def name(self, e: ast.Name, bare_names: bool) -> Any:
        """A name (rule 1)."""
        if e.id in self.env:
            return self.env[e.id]
        if e.id in ("true", "false"):
            return e.id == "true"
        if bare_names:
            return e.id
        known = list(self.env)
        close = difflib.get_close_matches(e.id, known, n=1)
        hint = f"; did you mean {close[0]}?" if close else \
            f" (the recipe's parameters: {', '.join(known) or 'none'})"
        self.error(e.span, f"unknown name {e.id!r}{hint}")
        return None

    def arith(self, e: ast.BinOp, a, b):
        """``a <op> b`` for numbers, or None after an error (rule 2)."""
        if not is_num(a) or not is_num(b):
            if a is not None and b is not None:
                self.error(e.span, f"{e.op!r} needs numbers")
            return None
        try:
            v = ARITHMETIC[e.op](a, b)
        except ZeroDivisionError:
            self.error(e.span, "division by zero")
            return None
        except OverflowError:
            v = math.inf
        if not is_num(v) or (isinstance(v, int) and abs(v) > BIG_INT):
            self.error(e.span, f"{e.op!r} gives a number too large to use")
            return None
        return v

    def checked(self, v, kind: str, domain: Domain, span: Span | None, what: str):
        """``v`` if it is a ``kind`` ("int"/"float") in ``domain``, else an error and None.

        ``span`` None: the value came from the command line (``what`` names the flag).
        """
        ok = is_num(v) and (kind != "int" or isinstance(v, int)) and domain.contains(v)
        if ok:
            return v
        shown = repr(v) if isinstance(v, str) else v
        message = f"{what} must be {domain.text}; got {shown}"
        if span is None:
            raise UserError(message)
        self.error(span, message)
        return None

    def number(self, e: ast.Node, what: str, integer: bool = False, positive: bool = False,
               domain: Domain | None = None):
        """A number written at ``e`` (an integer, positive, or in ``domain`` when asked)."""
        v = self.number_or_text(e)
        if v is None:
            return None
        if domain is not None:
            return self.checked(v, "int" if integer else "float", domain, e.span, what)
        if not is_num(v) or (integer and not isinstance(v, int)):
            self.error(e.span, f"{what} must be {'an integer' if integer else 'a number'}; "
                               f"got {v!r}")
            return None
        if positive and v <= 0:
            self.error(e.span, f"{what} must be positive; got {v}")
            return None
        return v
