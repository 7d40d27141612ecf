"""Values of the elaborator: what a spec expression evaluates to.

Numbers, booleans, strings, lists and :class:`~netc.compiler.ops.Symbol` (an unbound bare name, such
as ``project``) are plain Python values. Everything that can be applied to a tensor is a
:class:`Block`; applying a block to a :class:`Value` adds nodes to the graph. Blocks are closures:
a definition call remembers its bound arguments, ``for`` remembers its environment, so recursion
unfolds lazily, only as far as the graph is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from netc.compiler.ops import Attrs, OpDef, SpecValue
from netc.compiler.ops.base import clip
from netc.dsl import ast
from netc.dsl.diagnostics import Span


@dataclass(frozen=True, slots=True)
class Value:
    """A tensor in flight during elaboration: the node that computes it and its shape."""

    node: str
    shape: tuple[int, ...]


class Poison:
    """The result of an expression that already failed; anything applied to it stays quiet."""

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "Poison"


POISON = Poison()


class Block(SpecValue):
    """Something that maps one tensor to another when applied."""

    span: Span

    def shown(self) -> str:
        return "a block of layers"


def bare_op_word(op: OpDef, attrs: Attrs) -> str | None:
    """The op's name where it was written bare (``crop``): no argument but defaults."""
    return op.name if attrs == op.bind([], {}) else None


@dataclass(frozen=True, slots=True)
class OpBlock(Block):
    op: OpDef
    attrs: Attrs
    span: Span

    def op_word(self) -> str | None:
        return bare_op_word(self.op, self.attrs)


@dataclass(frozen=True, slots=True)
class DefBlock(Block):
    defn: ast.Definition
    env: dict[str, Any]  # bound parameters
    span: Span
    described: str  # stage(ch=64, n=2), for expansion paths


@dataclass(frozen=True, slots=True)
class SeqBlock(Block):
    first: Any  # Block or ValueRef
    then: Block
    span: Span


@dataclass(frozen=True, slots=True)
class TimesBlock(Block):
    body: Block
    times: int
    span: Span


@dataclass(frozen=True, slots=True)
class ForBlock(Block):
    body: ast.Node
    var: str
    lo: int
    hi: int
    env: dict[str, Any]
    span: Span


@dataclass(frozen=True, slots=True)
class ForEachBlock(Block):
    """``body for a, b in items``: ``body`` once per item, with the item (or its parts) bound."""

    body: ast.Node
    vars: tuple[str, ...]
    items: tuple[Any, ...]
    env: dict[str, Any]
    span: Span


@dataclass(frozen=True, slots=True)
class JoinBlock(Block):
    op: OpDef
    attrs: Attrs
    branches: tuple[Any, ...]  # Blocks or ValueRefs
    span: Span


@dataclass(frozen=True, slots=True)
class ResidualBlock(Block):
    body: Block
    shortcut: Any  # identity | pad | pad_avg | project | conv, or a Block (a shortcut layer)
    survival: float | None
    span: Span


@dataclass(frozen=True, slots=True)
class LabelledBlock(Block):
    inner: Any
    label: str
    span: Span


@dataclass
class ShareRecord:
    """What the first application of a shared block made: the layers that own the weights,
    and the input they were made for (the elaborator fills it in at that application)."""

    owners: list[str] | None = None  # names of the weighted nodes, in graph order
    input_shape: tuple[int, ...] | None = None
    first: Span | None = None  # where it was first applied


@dataclass(frozen=True, slots=True)
class SharedBlock(Block):
    """``share tower = ...``: a block whose every application uses the layers (the weights)
    its first application made."""

    inner: Block
    name: str
    record: ShareRecord
    span: Span

    def shown(self) -> str:
        return f"the shared block {self.name}"


@dataclass(frozen=True, slots=True)
class ValueRef(Block):
    """A named value of the net (``image``, or ``x`` after ``x = ...``) used as a chain's source."""

    name: str
    value: Value
    span: Span


@dataclass(frozen=True, slots=True)
class JoinHead(SpecValue):
    """``mean(droppath=0.1)`` before its ``[branches]``."""

    op: OpDef
    attrs: Attrs
    span: Span

    def op_word(self) -> str | None:
        return bare_op_word(self.op, self.attrs)

    def shown(self) -> str:
        return self.op.name


@dataclass(frozen=True, slots=True)
class DefRef(SpecValue):
    """A definition named without arguments although it needs some: a value to call later."""

    defn: ast.Definition
    span: Span

    def shown(self) -> str:
        return f"the definition {self.defn.name}"


@dataclass(frozen=True, slots=True)
class OpRef(SpecValue):
    """An op named bare although it needs arguments (``conv``): an error only if applied, and a
    plain word where a word is expected (``shortcut=conv``)."""

    op: OpDef
    span: Span

    def op_word(self) -> str:
        return self.op.name

    def shown(self) -> str:
        return self.op.name


def starts_with_value(block) -> bool:
    """Whether applying ``block`` needs no input: its chain starts from a named value (every
    branch's, for a join)."""
    while isinstance(block, (SeqBlock, LabelledBlock, SharedBlock)):
        block = block.first if isinstance(block, SeqBlock) else block.inner
    if isinstance(block, JoinBlock):
        return all(isinstance(b, ValueRef) or starts_with_value(b) for b in block.branches)
    return isinstance(block, ValueRef)


def show(v) -> str:
    """A value as a diagnostic shows it: numbers as the spec writes them, a block by kind."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, SpecValue):  # blocks, ops named bare, join heads, definitions
        return v.shown()
    if isinstance(v, list):
        return "[" + ", ".join(show(i) for i in v[:8]) + (", ...]" if len(v) > 8 else "]")
    return clip(str(v))
