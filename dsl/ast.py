"""The abstract syntax of netc: small frozen records, each carrying its source :class:`Span`.

Expressions are one family: numbers, names, calls and chains of blocks share a grammar, and the
elaborator (``netc.compiler.frontend.elaborate``) decides what each denotes. Nothing here knows
about tensors.
"""

from __future__ import annotations

from dataclasses import dataclass

from netc.dsl.diagnostics import Span


@dataclass(frozen=True, slots=True)
class Node:
    span: Span


# ---- expressions -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Name(Node):
    id: str


@dataclass(frozen=True, slots=True)
class Num(Node):
    value: int | float


@dataclass(frozen=True, slots=True)
class Str(Node):
    value: str


@dataclass(frozen=True, slots=True)
class ListLit(Node):
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class BinOp(Node):
    op: str  # + - * / // % == != < <= > >= and or
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class UnaryOp(Node):
    op: str  # - + not
    operand: Node


@dataclass(frozen=True, slots=True)
class IfExpr(Node):
    cond: Node
    then: Node
    orelse: Node


@dataclass(frozen=True, slots=True)
class Kwarg(Node):
    name: str
    value: Node


@dataclass(frozen=True, slots=True)
class Call(Node):
    """``f(a, b, k=v)``: a layer, a definition, or a join head such as ``mean(droppath=0.1)``."""

    func: Node
    args: tuple[Node, ...]
    kwargs: tuple[Kwarg, ...]


@dataclass(frozen=True, slots=True)
class Join(Node):
    """``head[branch, branch, ...]``: parallel branches on one input, joined by ``head``."""

    head: Node
    branches: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Seq(Node):
    """``a -> b``: the output of ``a`` feeds ``b``."""

    first: Node
    then: Node


@dataclass(frozen=True, slots=True)
class Labelled(Node):
    """``x as conv{s}_{i}``: parts are literal text or interpolated expressions."""

    target: Node
    parts: tuple[str | Node, ...]


@dataclass(frozen=True, slots=True)
class Repeat(Node):
    """``body for var in lo..hi`` (inclusive range)."""

    body: Node
    var: str
    lo: Node
    hi: Node


@dataclass(frozen=True, slots=True)
class RepeatList(Node):
    """``body for a, b in items``: once per item of a list, the item (or its parts) bound."""

    body: Node
    vars: tuple[str, ...]
    items: Node


@dataclass(frozen=True, slots=True)
class Let(Node):
    """``let c = in_channels, r = c // 4 in body``: names bound in order, then ``body``."""

    bindings: tuple[Kwarg, ...]  # name = value, in order
    body: Node


# ---- statements and items ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Param(Node):
    name: str
    default: Node | None


@dataclass(frozen=True, slots=True)
class InputStmt(Node):
    name: str
    shape: tuple[int | Node, ...]  # a dimension is a number or an expression: 3x{size}x{size}
    options: tuple[Kwarg, ...]


@dataclass(frozen=True, slots=True)
class BindStmt(Node):
    name: str
    value: Node


@dataclass(frozen=True, slots=True)
class OutputStmt(Node):
    name: str
    value: Node | None
    training: bool = False  # ``training output aux = ...``: absent at inference and in ONNX
    options: tuple[Kwarg, ...] = ()  # ``, weight=0.3``: the head's share of the training loss


@dataclass(frozen=True, slots=True)
class LetStmt(Node):
    """``let table = [[1, 16, 1, 1], ...]`` in a net, or a file-level constant: a named number,
    list or word (not a tensor), visible to the statements after it (file level: everywhere).
    At file level ``let f(v, d=8) = ...`` defines a function computing a value."""

    name: str
    value: Node
    params: tuple[Param, ...] | None = None  # let f(v, d=8) = ...: a function of numbers


@dataclass(frozen=True, slots=True)
class ShareStmt(Node):
    """``share tower = block(...)`` in a net: one set of layers, whose weights every use of
    ``tower`` applies (a siamese tower); a ``let`` would make new layers at each use."""

    name: str
    value: Node


@dataclass(frozen=True, slots=True)
class WithStmt(Node):
    name: str
    args: tuple[Node, ...]
    kwargs: tuple[Kwarg, ...]


@dataclass(frozen=True, slots=True)
class ExprStmt(Node):
    value: Node


@dataclass(frozen=True, slots=True)
class Include(Node):
    path: str


@dataclass(frozen=True, slots=True)
class Definition(Node):
    name: str
    params: tuple[Param, ...]
    body: Node
    inline: bool = False  # an inline definition adds its nodes to the caller's scope


@dataclass(frozen=True, slots=True)
class Net(Node):
    name: str
    params: tuple[Param, ...]
    body: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class NetAlias(Node):
    """``net vgg16 = vgg(2, 2, 3, 3, 3)``: the net ``target`` with its parameters set."""

    name: str
    target: str
    args: tuple[Node, ...]
    kwargs: tuple[Kwarg, ...]


@dataclass(frozen=True, slots=True)
class Module(Node):
    """One parsed file."""

    items: tuple[Node, ...]


# ---- recipes -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecipeSetting(Node):
    """``content "astronaut"`` or ``optimizer lbfgs(steps=300)``: a setting's name and arguments.

    ``net vgg19`` is the setting named ``net``; :mod:`netc.compiler.frontend.recipe` checks names
    and values.
    """

    name: str
    args: tuple[Node, ...]
    kwargs: tuple[Kwarg, ...]


@dataclass(frozen=True, slots=True)
class RecipeLet(Node):
    """``loss = content(conv4_2) + 1e3 * style(conv1_1, conv2_1)``: a named expression."""

    name: str
    value: Node


@dataclass(frozen=True, slots=True)
class Recipe(Node):
    """``recipe NAME(params) { ... }``: an image optimisation over a net's named layers."""

    name: str
    params: tuple[Param, ...]
    body: tuple[Node, ...]
