"""Op parameters: what a spec may write for each, checked when it calls the op.

A :class:`Param` has a name, a *kind* and usually a default and a domain. The kind is a small
object that knows how a spec writes the value and the form the op keeps
(:meth:`Kind.check`): ``INT``, ``FLOAT``, ``BOOL``, ``PAIR`` (an int or ``[h, w]``), ``PADS``
(an int, ``[h, w]`` or ``[top, left, bottom, right]``), ``SCALE`` (a positive number or
``[h, w]`` of them), ``INTS`` (an int or a list of ints), ``FLOATS`` (a list of numbers),
``Enum("a", "b")`` (one of some words) and ``ANY``. A numeric kind also accepts a few words
where the op says so (``PADS.or_words("same")``). The domain
(:mod:`netc.compiler.ops.domains`) then says which numbers a numeric parameter accepts, element
by element.

>>> from netc.compiler.ops.domains import POSITIVE
>>> check_argument("conv", Param("kernel", PAIR, domain=POSITIVE), 3)
(3, 3)
>>> try:
...     check_argument("conv", Param("kernel", PAIR, domain=POSITIVE), [3, 0])
... except ArgError as err:
...     print(err)
conv: parameter 'kernel' must be a positive integer (each value); got [3, 0]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from netc.compiler.ops.base import ArgError, clip, is_int
from netc.compiler.ops.domains import FINITE, INTEGER, Domain


class Symbol(str):
    """A bare name that was not bound to anything: an enum value such as ``project``."""


class SpecValue:
    """Base of the front end's values that are not plain data (blocks, an op named bare, a join
    head before its branches), so that the registry can name them without importing the front
    end: :meth:`shown` is how an argument error shows the value, :meth:`op_word` the op name it
    stands for where a parameter takes words (``concat(fit=crop)``: ``crop`` is also an op)."""

    def shown(self) -> str:
        return clip(str(self), 80)

    def op_word(self) -> str | None:
        return None


class Refused(Exception):
    """A value a kind does not accept; ``expected`` completes "must be ..."."""

    def __init__(self, expected: str):
        super().__init__(expected)
        self.expected = expected


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _is_list(v: Any, n: int | None = None, item=is_int) -> bool:
    return isinstance(v, (list, tuple)) and (n is None or len(v) == n) and all(map(item, v))


# ---- kinds ------------------------------------------------------------------------------------
class Kind:
    """How a spec writes a parameter's value. :meth:`check` returns the form the op keeps, or
    raises :class:`Refused`; ``domain`` is the domain of a numeric kind's numbers when the
    parameter declares none (None: not numeric, no domain is checked); ``choices`` are the
    words it takes. A kind is known by its ``name`` too, and compares equal to it
    (``PAIR == "pair"``), so tools that speak of kinds by name (the hostile corpus) need not
    import them."""

    name: str = ""
    domain: Domain | None = None
    choices: tuple[str, ...] = ()

    def check(self, v: Any) -> Any:
        raise NotImplementedError

    def __eq__(self, other) -> bool:
        if isinstance(other, str):
            return self.name == other
        return self is other

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        return self.name.upper() if not self.choices else f"{self.name}{self.choices}"

    def or_words(self, *words: str) -> Kind:
        """This kind, or one of ``words`` written bare (``pad=same``, ``offset=center``)."""
        return _OrWords(self, words)


class _Int(Kind):
    name = "int"
    domain = INTEGER

    def check(self, v):
        if not is_int(v):
            raise Refused("an integer")
        return v


class _Float(Kind):
    name = "float"
    domain = FINITE

    def check(self, v):
        if not _is_number(v):
            raise Refused("a number")
        try:
            return float(v)
        except OverflowError:  # an integer past the float range, such as 10**400
            raise Refused("a finite number") from None


class _Bool(Kind):
    name = "bool"

    def check(self, v):
        if isinstance(v, bool):
            return v
        if isinstance(v, Symbol) and v in ("true", "false"):
            return v == "true"
        if is_int(v) and v in (0, 1):
            return bool(v)
        raise Refused("true or false")


class _Pair(Kind):
    name = "pair"
    domain = INTEGER

    def check(self, v):
        if is_int(v):
            return (v, v)
        if _is_list(v, 2):
            return (v[0], v[1])
        raise Refused("an integer or [height, width]")


class _Pads(Kind):
    name = "pads"
    domain = INTEGER

    def check(self, v):
        if _is_list(v, 4):
            return tuple(v)
        try:
            return PAIR.check(v)  # an int or [h, w]: symmetric padding
        except Refused:
            raise Refused("an integer, [h, w], [top, left, bottom, right]") from None


class _Scale(Kind):
    name = "scale"
    domain = FINITE

    def check(self, v):
        nums = list(v) if isinstance(v, (list, tuple)) else [v, v]
        if not _is_list(nums, 2, _is_number):
            raise Refused("a number or [h, w] of them")
        try:
            return (float(nums[0]), float(nums[1]))
        except OverflowError:
            raise Refused("a finite number or [h, w] of them") from None


class _Ints(Kind):
    name = "ints"
    domain = INTEGER

    def check(self, v):
        if is_int(v):
            return (v,)
        if _is_list(v):
            return tuple(v)
        raise Refused("an integer or a list of integers")


class _Floats(Kind):
    name = "floats"
    domain = FINITE

    def check(self, v):
        if not _is_list(v, None, _is_number):
            raise Refused("a list of numbers")
        try:
            return tuple(float(x) for x in v)
        except OverflowError:
            raise Refused("a list of finite numbers") from None


class _Any(Kind):
    name = "any"

    def check(self, v):
        return v


class Enum(Kind):
    """One of ``choices``, written bare: ``Enum("kaiming", "xavier")``. A choice that is also an
    op's name (``concat(fit=crop)``) is accepted where the front end made that name a layer."""

    name = "enum"

    def __init__(self, *choices: str):
        self.choices = choices

    def check(self, v):
        if isinstance(v, str) and v in self.choices:
            return str(v)
        spec = _spec_value(v)
        word = spec.op_word() if spec is not None else None
        if word in self.choices:
            return word
        raise Refused("one of " + ", ".join(self.choices))


class _OrWords(Kind):
    def __init__(self, kind: Kind, words: tuple[str, ...]):
        self.kind, self.words = kind, words
        self.name, self.domain, self.choices = kind.name, kind.domain, words

    def check(self, v):
        if isinstance(v, Symbol) and v in self.words:
            return str(v)
        try:
            return self.kind.check(v)
        except Refused as refused:
            raise Refused(refused.expected + "".join(f" or {w}" for w in self.words)) from None


INT, FLOAT, BOOL, PAIR, PADS = _Int(), _Float(), _Bool(), _Pair(), _Pads()
SCALE, INTS, FLOATS, ANY = _Scale(), _Ints(), _Floats(), _Any()

_REQUIRED = object()


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter of an op: its name, :class:`Kind`, default (none: required), a line of
    documentation and, for a numeric kind, the :class:`~netc.compiler.ops.domains.Domain` of its
    numbers (``test_registry`` wants one declared; without it, any 64-bit integer or any finite
    number)."""

    name: str
    kind: Kind
    default: Any = _REQUIRED
    doc: str = ""
    domain: Domain | None = None

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED

    @property
    def accepts(self) -> Domain | None:
        """The domain checked: the declared one, else the kind's."""
        return self.domain or self.kind.domain

    @property
    def choices(self) -> tuple[str, ...]:
        """The words the parameter takes: an enum's choices, a numeric kind's extra words."""
        return self.kind.choices


def check_argument(op: str, p: Param, v: Any) -> Any:
    """Check and normalise one argument: its kind, then its domain (each element of a pair or
    list). Raises ArgError naming the op, the parameter, what it accepts and the value."""
    if v is None and p.default is None:
        return None
    try:
        value = p.kind.check(v)
    except Refused as refused:
        raise ArgError(f"{op}: parameter {p.name!r} must be {refused.expected}; "
                       f"got {shown(v)}", p.name) from None
    domain = p.accepts
    if domain is None or value is None or p.kind.domain is None:
        return value
    for x in value if isinstance(value, tuple) else (value,):
        if isinstance(x, (int, float)) and not domain.contains(x):
            each = " (each value)" if isinstance(v, (list, tuple)) else ""
            raise ArgError(f"{op}: parameter {p.name!r} must be {domain.expected(x)}{each}; "
                           f"got {shown(v)}", p.name)
    return value


def shown(v: Any) -> str:
    """A value as a message shows it, bounded: a block by name, a huge number by its size."""
    spec = _spec_value(v)
    if spec is not None:
        return spec.shown()
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int) and abs(v) >= 10**18:  # str() of a 10**5000 would refuse, too
        return f"{'-' if v < 0 else ''}~10^{int(abs(v).bit_length() * 0.30103)}"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        inner = ", ".join(shown(x) for x in list(v)[:8])
        return "[" + inner + (", ..." if len(v) > 8 else "") + "]"
    return clip(repr(v) if isinstance(v, str) else str(v), 80)


def _spec_value(v: Any) -> SpecValue | None:
    return v if isinstance(v, SpecValue) else None
