"""Arithmetic of the language: one table, used by nets, definitions and recipes alike.

The semantics (the README's "integer arithmetic ... ``//`` gives integers"):

1. ``+ - * /`` are Python's on numbers; ``/`` always gives a float.
2. ``//`` is floor division (rounds toward minus infinity: ``-7 // 2`` is ``-4``) and gives an
   integer also on floats (``7.9 // 2`` is ``3``), because sizes are computed with it.
3. ``%`` is the remainder of that division, with the divisor's sign (``-7 % 2`` is ``1``,
   ``7 % -2`` is ``-1``), so ``a == (a // b) * b + a % b``.
4. Dividing by zero (``/``, ``//``, ``%``) raises :class:`ZeroDivisionError`; each language
   reports it in its own words.
5. Comparisons (``== != < <= > >=``) give booleans; the recipe language has none.

A value is a number when it is an int or a finite float, never a bool.

>>> ARITHMETIC["//"](-7, 2), ARITHMETIC["%"](-7, 2), ARITHMETIC["//"](7.9, 2)
(-4, 1, 3)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any


def floordiv(a, b):
    """``a // b`` (rule 2): an integer also on floats, unless the quotient is not finite."""
    q = a // b
    return int(q) if isinstance(q, float) and math.isfinite(q) else q


ARITHMETIC: dict[str, Callable[[Any, Any], Any]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
    "//": floordiv,
    "%": lambda a, b: a % b,
}

COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}

# Integers past 100 digits are no size, count or seed anything can use; arithmetic that grows
# past them is refused at once (Python would keep multiplying ever larger numbers).
BIG_INT_DIGITS = 100
BIG_INT = 10**BIG_INT_DIGITS


def is_num(v) -> bool:
    """A number: an int or a finite float, never a bool (nan and inf are no size or weight)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and (
        isinstance(v, int) or math.isfinite(v))
