"""Typed, checked access to the fields of one Caffe message (a layer or a ``*_param``).

A :class:`Fields` is built with the names a message may hold; any other name is a located
diagnostic naming it and listing the known ones, so a parameter netc does not understand is
never skipped silently. Values are read by type (``int``, ``float``, ``bool``, ``enum``,
``string``, a Caffe pair such as ``kernel_size``/``kernel_h``/``kernel_w``), each a located
diagnostic when the file holds something else.
"""

from __future__ import annotations

from math import inf, isfinite

from netc.compiler.importers.caffe.textformat import Field, Message, Scalar
from netc.compiler.ops.domains import MAX_SIZE
from netc.dsl.diagnostics import Diagnostic, DiagnosticError, Span


def error(span: Span | None, message: str) -> DiagnosticError:
    """A located diagnostic, ready to raise."""
    return DiagnosticError(Diagnostic(span, message))


class Fields:
    """The fields of ``message`` (named ``what`` in messages), restricted to ``known`` names."""

    def __init__(self, message: Message, what: str, known: set[str] | frozenset[str]):
        self.message = message
        self.what = what
        for f in message.fields:
            if f.name not in known:
                listed = ", ".join(sorted(known)) or "no fields"
                raise error(f.span, f"{what}: unknown parameter {f.name!r} (netc reads {listed})")

    @property
    def span(self) -> Span:
        return self.message.span

    def field(self, name: str) -> Field | None:
        return self.message.one(name)

    def _scalar(self, f: Field) -> Scalar:
        if isinstance(f.value, Message):
            raise error(f.span, f"{self.what}: {f.name} takes a value, not a message")
        return f.value

    def message_of(self, name: str) -> Message | None:
        f = self.field(name)
        if f is None:
            return None
        if not isinstance(f.value, Message):
            raise error(f.span, f"{self.what}: {name} is a message: write {name} {{ ... }}")
        return f.value

    # ---- scalars, by type -------------------------------------------------------------------
    def int_value(self, f: Field, minimum: int | None = 0) -> int:
        v = self._scalar(f)
        if v.kind != "number" or not isinstance(v.value, int):
            raise error(v.span, f"{self.what}: {f.name} must be an integer")
        if minimum is not None and v.value < minimum:
            raise error(v.span, f"{self.what}: {f.name} must be at least {minimum}; got {v.value}")
        if abs(v.value) > MAX_SIZE:  # sizes, counts and axes: netc builds up to int32
            raise error(v.span, f"{self.what}: {f.name} is {v.value:,}; netc builds sizes up "
                                f"to {MAX_SIZE:,}")
        return v.value

    def int(self, name: str, default: int | None = None, minimum: int | None = 0) -> int | None:
        f = self.field(name)
        return default if f is None else self.int_value(f, minimum)

    def ints(self, name: str, minimum: int | None = 0) -> list[int]:
        return [self.int_value(f, minimum) for f in self.message.all(name)]

    def float_value(self, f: Field) -> float:
        v = self._scalar(f)
        if v.kind != "number":
            raise error(v.span, f"{self.what}: {f.name} must be a number")
        value = float(v.value) if isinstance(v.value, float) or abs(v.value) < 10**300 else inf
        if not isfinite(value):
            raise error(v.span, f"{self.what}: {f.name} must be a finite number; got {v.value}")
        return value

    def float(self, name: str, default: float | None = None) -> float | None:
        f = self.field(name)
        return default if f is None else self.float_value(f)

    def floats(self, name: str) -> list[float]:
        return [self.float_value(f) for f in self.message.all(name)]

    def bool(self, name: str, default: bool) -> bool:
        f = self.field(name)
        if f is None:
            return default
        v = self._scalar(f)
        if v.kind == "identifier" and v.value in ("true", "True", "t", "false", "False", "f"):
            return v.value in ("true", "True", "t")
        if v.kind == "number" and v.value in (0, 1):
            return bool(v.value)
        raise error(v.span, f"{self.what}: {name} must be true or false")

    def enum(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        """An enum by name (``pool: MAX``) or by number (``pool: 0``, index into ``choices``)."""
        f = self.field(name)
        if f is None:
            return default
        v = self._scalar(f)
        if v.kind == "identifier" and v.value in choices:
            return str(v.value)
        if v.kind == "number" and isinstance(v.value, int) and 0 <= v.value < len(choices):
            return choices[v.value]
        raise error(v.span, f"{self.what}: {name} must be one of {', '.join(choices)}; "
                            f"got {v.value}")

    def string(self, name: str, default: str | None = None) -> str | None:
        f = self.field(name)
        if f is None:
            return default
        v = self._scalar(f)
        if v.kind != "string":
            raise error(v.span, f"{self.what}: {name} must be a quoted string")
        return str(v.value)

    def strings(self, name: str) -> list[tuple[str, Span]]:
        out = []
        for f in self.message.all(name):
            v = self._scalar(f)
            if v.kind != "string":
                raise error(v.span, f"{self.what}: {name} must be a quoted string")
            out.append((str(v.value), v.span))
        return out

    # ---- Caffe's spatial pairs ----------------------------------------------------------------
    def pair(self, base: str, default: int | None, minimum: int = 0,
             repeated: bool = True) -> tuple[int, int] | None:
        """``base`` (once, or twice as h then w) or ``base_h`` with ``base_w``; None if absent.

        Caffe's spellings: ``kernel_size: 3``; ``kernel_size: 3 kernel_size: 5`` (h, w);
        ``kernel_h: 3 kernel_w: 5``. Giving both spellings is an error, as in Caffe.
        """
        name = "kernel_size" if base == "kernel" else base
        values = self.ints(name, minimum)
        h_field, w_field = self.field(f"{base}_h"), self.field(f"{base}_w")
        if h_field or w_field:
            if values:
                first = self.message.all(name)[0]
                raise error(first.span, f"{self.what}: give either {name} or "
                                        f"{base}_h/{base}_w, not both")
            if base != "pad" and not (h_field and w_field):
                given = h_field or w_field
                raise error(given.span, f"{self.what}: {base}_h and {base}_w go together")
            h = self.int_value(h_field, minimum) if h_field else 0
            w = self.int_value(w_field, minimum) if w_field else 0
            return (h, w)
        if not values:
            return None if default is None else (default, default)
        if len(values) > (2 if repeated else 1):
            extra = self.message.all(name)[2 if repeated else 1]
            raise error(extra.span, f"{self.what}: {name} is given {len(values)} times; netc "
                                    "imports 2-D layers (one value, or height then width)")
        return (values[0], values[-1])
