"""The vocabulary every op module speaks: shapes, the two errors an op raises, frozen attributes.

Shapes exclude the batch axis: ``(C, H, W)`` for feature maps, ``(F,)`` for flat vectors.

>>> a = Attrs(kernel=(3, 3), stride=(1, 1))
>>> a.kernel, a.replace(stride=(2, 2))["stride"]
((3, 3), (2, 2))
>>> fmt_shape((64, 56, 56))
'64x56x56'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Shape = tuple[int, ...]


class ShapeError(Exception):
    """An op cannot accept its inputs; the message names the shapes and the rule applied."""


class ArgError(Exception):
    """A spec passed a bad argument to an op; the message says which and why.

    ``param`` names the parameter at fault (when one is), so the elaborator can point at that
    argument rather than at the whole call.
    """

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param


class Attrs(Mapping):
    """Frozen, hashable attributes of a node; ``attrs.kernel`` reads like ``attrs["kernel"]``."""

    __slots__ = ("_items", "_dict")

    def __init__(self, items: Mapping[str, Any] | None = None, **kw: Any):
        data = dict(items or {}, **kw)
        object.__setattr__(self, "_items", tuple(sorted(data.items())))
        object.__setattr__(self, "_dict", data)

    def __getitem__(self, key: str) -> Any:
        return self._dict[key]

    def __getattr__(self, key: str) -> Any:
        try:
            return self._dict[key]
        except KeyError:
            raise AttributeError(key) from None

    def __setattr__(self, key, value):
        raise AttributeError("Attrs are frozen")

    def __iter__(self):
        return (k for k, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(self._items)

    def __eq__(self, other) -> bool:
        return isinstance(other, Attrs) and self._items == other._items

    def replace(self, **kw: Any) -> Attrs:
        """A copy with the given attributes changed or added."""
        return Attrs(dict(self._items), **kw)

    def __repr__(self) -> str:
        return "Attrs(" + ", ".join(f"{k}={v!r}" for k, v in self._items) + ")"


def spatial(shape: Shape, op: str) -> tuple[int, int, int]:
    """(C, H, W) of a feature-map shape, or a ShapeError naming the kind of shape it got."""
    if len(shape) != 3:
        raise ShapeError(f"{op} needs a CxHxW feature map; got {kind_of(shape)}")
    return shape  # type: ignore[return-value]


def kind_of(shape: Shape) -> str:
    """A shape in words for messages: a flat vector, a token sequence or a feature map."""
    if len(shape) == 1:
        return f"a flat vector of {shape[0]}"
    if len(shape) == 2:
        return (f"a token sequence LxD {fmt_shape(shape)} (transpose(0, 1) -> reshape([D, H, "
                "W]) makes a map of it)")
    return f"a CxHxW feature map {fmt_shape(shape)}"


def per_channel(shape: Shape) -> tuple[int, ...]:
    """(C, 1, ..., 1) of ``shape``'s rank: a per-channel array broadcast against a value of
    ``shape`` with its batch axis (``(1, *per_channel(shape))`` against it without); the
    channel is axis 0, C of a CxHxW map and L of an LxD token sequence."""
    return (shape[0], *(1,) * (len(shape) - 1))


def not_flat(op: str, shape: Shape, hint: str) -> ShapeError:
    """The error of an op that reads a flat vector and got ``shape``: a feature map with
    ``hint`` (how to flatten it), or a token sequence with how to take a vector of it."""
    if len(shape) == 2:
        return ShapeError(f"{op} needs a flat input; got a token sequence LxD {fmt_shape(shape)}: "
                          "add flatten or take_token(0) (the class token) before it")
    return ShapeError(f"{op} needs a flat input; got a {fmt_shape(shape)} feature map: {hint}")


def fmt_shape(shape: Shape | None) -> str:
    """A shape as messages and summaries write it: ``64x56x56``; ``?`` when unknown."""
    return "x".join(str(d) for d in shape) if shape else "?"


def is_int(v: Any) -> bool:
    """An integer, never a bool (``True`` is an int to Python, not to a spec)."""
    return isinstance(v, int) and not isinstance(v, bool)


def clip(text: str, width: int = 60) -> str:
    """``text`` cut to ``width`` characters with an ellipsis: values in messages stay short."""
    return text if len(text) <= width else text[:width - 3] + "..."
