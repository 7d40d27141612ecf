"""Parameter domains: which values an op parameter accepts, beyond its kind.

Every numeric :class:`~netc.compiler.ops.params.Param` declares a domain (``Param("out", INT,
domain=POSITIVE)``); :meth:`OpDef.bind <netc.compiler.ops.OpDef.bind>` checks each argument against
it where the spec makes the value, so ``adaptive_avgpool(0)``, ``bn(eps=-1)`` or
``leaky_relu(1e999)`` are located errors at the argument, never a crash in a lowering. A domain
applies to each element of a ``PAIR`` or ``FLOATS`` value; a numeric kind without a declared
domain takes ``INTEGER`` or ``FINITE``.

Sizes are capped at :data:`MAX_SIZE`: channels, features, kernels and strides past 2**31 − 1
cannot be built by any backend netc lowers to (torch and ONNX Runtime index some kernels with
int32; every ONNX attribute must fit int64), and the memory estimate refuses far smaller nets.

>>> POSITIVE.contains(3), POSITIVE.contains(0)
(True, False)
>>> PROBABILITY.text
'a probability in [0, 1]'
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MAX_SIZE = 2**31 - 1  # the largest channel count, feature count, kernel, stride or pad
INT64_MAX = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Domain:
    """An interval of numbers (ends open or closed, ``None`` = unbounded), with its wording.

    ``text`` completes "must be ...": "a positive integer", "a probability in [0, 1]".
    Non-finite numbers (inf, nan) are never in a domain.
    """

    text: str
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    cap: bool = False  # ``hi`` is a size cap that ``text`` does not say: name it when broken

    def contains(self, v: int | float) -> bool:
        if isinstance(v, float) and not math.isfinite(v):
            return False
        if self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo):
            return False
        if self.hi is not None and (v >= self.hi if self.hi_open else v > self.hi):
            return False
        return True

    def expected(self, v: int | float) -> str:
        """What a rejected ``v`` should have been: the domain's wording, or "at most N" when
        only the upper bound of an otherwise fitting number is broken."""
        if self.cap and isinstance(v, int) and v > self.hi:
            return f"{self.text}, at most {_g(self.hi, 'inf')}"
        return self.text


def between(lo: float | None, hi: float | None, *, lo_open: bool = False,
            hi_open: bool = False, text: str | None = None) -> Domain:
    """A domain [lo, hi] (or open at either end), worded as "in [lo, hi)" unless ``text``."""
    if text is None:
        left = "(" if lo_open or lo is None else "["
        right = ")" if hi_open or hi is None else "]"
        text = f"in {left}{_g(lo, '-inf')}, {_g(hi, 'inf')}{right}"
    return Domain(text, lo, hi, lo_open, hi_open)


def _g(v, unbounded: str) -> str:
    if v is None:
        return unbounded
    return f"{v:,}" if isinstance(v, int) else f"{v:g}"


# ---- the domains ops declare --------------------------------------------------------------
INTEGER = Domain("an integer that fits in 64 bits", -INT64_MAX, INT64_MAX)
POSITIVE = Domain("a positive integer", 1, MAX_SIZE, cap=True)
NON_NEGATIVE = Domain("a non-negative integer", 0, MAX_SIZE, cap=True)
FINITE = Domain("a finite number")
POSITIVE_NUMBER = Domain("a positive finite number", 0, None, lo_open=True)
NON_NEGATIVE_NUMBER = Domain("a non-negative finite number", 0, None)
PROBABILITY = Domain("a probability in [0, 1]", 0, 1)
DROP_PROBABILITY = Domain("a probability in [0, 1)", 0, 1, hi_open=True)
SURVIVAL = Domain("a survival probability in (0, 1]", 0, 1, lo_open=True)
# A learned slope, a scale or an initial value that torch and ONNX hold in float32 (1e308
# would overflow).
FLOAT32 = Domain("a finite float32 number", -3.4e38, 3.4e38, lo_open=True, hi_open=True)
POSITIVE_FLOAT32 = Domain("a positive finite float32 number", 0, 3.4e38, lo_open=True,
                          hi_open=True)
