"""The operator registry: every op of the language, declared once with all its faces.

An op is a subclass of :class:`OpDef` registered with :func:`register` under its spec-language
name. Each declares, side by side:

- ``params``: its parameters (name, kind, default, domain), checked when a spec calls it: a
  numeric parameter declares its :mod:`~netc.compiler.ops.domains` domain (``POSITIVE``,
  ``PROBABILITY``, ``between(0, 1)``...) and a value outside it is the spec's error;
- ``infer_shape``: the output shape from the input shapes, raising :class:`ShapeError` with the
  numbers that disagree;
- ``param_count`` and ``macs``: learnable parameters and multiply-accumulates (only weight
  layers, conv and fc, count MACs: the convention of the VGG and ResNet papers);
- ``init_weights``: netc's own seeded initial weights (numpy), the arrays both lowerings use;
- ``to_torch``: an ``nn.Module`` computing the op (PyTorch lowering);
- ``to_onnx``: the ONNX nodes computing the op (ONNX lowering).

Shapes exclude the batch axis: ``(C, H, W)`` for feature maps, ``(F,)`` for flat vectors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from netc.compiler.ops.domains import KIND_DEFAULTS, Domain

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


_REQUIRED = object()


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter of an op.

    ``kind`` is one of ``int``, ``float``, ``bool``, ``pair`` (an int or ``[h, w]``),
    ``pads`` (an int, ``[h, w]`` or ``[top, left, bottom, right]``), ``scale`` (a positive
    number or ``[h, w]`` of them), ``ints`` (an int or a list of ints), ``floats`` (a list of
    numbers), ``enum`` (one of ``choices``), ``block`` (a sub-network, used by ``residual``) or
    ``any``. ``domain`` (:mod:`netc.compiler.ops.domains`) says which numbers a numeric parameter
    accepts, element by element; without one, any 64-bit integer or any finite number
    (``test_registry`` wants it declared).
    """

    name: str
    kind: str
    default: Any = _REQUIRED
    choices: tuple[str, ...] = ()
    doc: str = ""
    domain: Domain | None = None

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED

    @property
    def accepts(self) -> Domain | None:
        """The domain checked: the declared one, else the kind's default."""
        return self.domain or KIND_DEFAULTS.get(self.kind)


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
        return Attrs(dict(self._items), **kw)

    def __repr__(self) -> str:
        return "Attrs(" + ", ".join(f"{k}={v!r}" for k, v in self._items) + ")"


class OpDef:
    """Base of every op. Subclasses set ``name`` and ``params`` and override the faces they need."""

    name: ClassVar[str]
    params: ClassVar[tuple[Param, ...]] = ()
    min_inputs: ClassVar[int] = 1
    max_inputs: ClassVar[int | None] = 1  # None: any number (joins)
    doc: ClassVar[str] = ""

    # -- faces ------------------------------------------------------------------------------
    def infer_shape(self, a: Attrs, ins: list[Shape]) -> Shape:
        raise NotImplementedError(f"op {self.name!r} has no shape rule")

    def param_count(self, a: Attrs, ins: list[Shape], out: Shape) -> int:
        return 0

    def macs(self, a: Attrs, ins: list[Shape], out: Shape) -> int:
        return 0

    def buffer_count(self, a: Attrs, ins: list[Shape], out: Shape) -> int:
        """Non-trainable state (batch norm's running statistics): Keras's non-trainable params."""
        return 0

    def geometry(self, a: Attrs, ins: list[Shape]) -> tuple[Shape, Shape, Shape] | None:
        """(kernel, stride, dilation) per spatial axis, for receptive fields; None = pointwise."""
        return None

    def init_weights(
        self, a: Attrs, ins: list[Shape], out: Shape, rng: np.random.Generator
    ) -> dict[str, np.ndarray]:
        """Initial weights and buffers, named as the torch module names them."""
        return {}

    def to_torch(self, a: Attrs, ins: list[Shape], out: Shape):
        raise NotImplementedError(f"op {self.name!r} has no PyTorch lowering")

    def to_onnx(self, tape, node, inputs: list[str], weights: Mapping[str, np.ndarray]) -> str:
        raise NotImplementedError(f"op {self.name!r} has no ONNX lowering")

    # -- argument binding -------------------------------------------------------------------
    def bind(self, args: list[Any], kwargs: dict[str, Any]) -> Attrs:
        """Match call arguments to ``params``, check kinds, fill defaults. Raises ArgError."""
        if len(args) > len(self.params):
            raise ArgError(
                f"{self.name} takes at most {len(self.params)} positional argument"
                f"{'s' if len(self.params) != 1 else ''} ({self.signature()}); got {len(args)}"
            )
        values: dict[str, Any] = {}
        for p, v in zip(self.params, args):
            values[p.name] = v
        known = {p.name for p in self.params}
        for k, v in kwargs.items():
            if k not in known:
                raise ArgError(f"{self.name} has no parameter {k!r}; it takes {self.signature()}",
                               k)
            if k in values:
                raise ArgError(f"{self.name}: parameter {k!r} given twice", k)
            values[k] = v
        out = {}
        for p in self.params:
            if p.name in values:
                out[p.name] = check_kind(self.name, p, values[p.name])
            elif p.required:
                raise ArgError(f"{self.name} needs its parameter {p.name!r} ({self.signature()})")
            else:
                out[p.name] = None if p.default is None else check_kind(self.name, p, p.default)
        return self.normalise(Attrs(out))

    def normalise(self, a: Attrs) -> Attrs:
        """Hook for ops whose defaults depend on other arguments (pool stride = kernel)."""
        return a

    def signature(self) -> str:
        parts = []
        for p in self.params:
            parts.append(p.name if p.required else f"{p.name}={_fmt(p.default)}")
        return f"{self.name}({', '.join(parts)})"


def _fmt(v: Any) -> str:
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


class Symbol(str):
    """A bare name that was not bound to anything: an enum value such as ``project``."""


def check_kind(op: str, p: Param, v: Any) -> Any:
    """Check and normalise one argument: its kind, then its domain (each element of a pair or
    list). Raises ArgError naming the op, the parameter, what it accepts and the value."""

    def bad(expected: str):
        shown = _shown(v)
        return ArgError(f"{op}: parameter {p.name!r} must be {expected}; got {shown}", p.name)

    value = _check_type(p, v, bad)
    domain = p.accepts
    if domain is not None and value is not None and p.kind in KIND_DEFAULTS:
        items = value if isinstance(value, tuple) else (value,)
        for x in items:
            if isinstance(x, (int, float)) and not domain.contains(x):
                each = " (each value)" if isinstance(v, (list, tuple)) else ""
                raise ArgError(f"{op}: parameter {p.name!r} must be {domain.expected(x)}{each}; "
                               f"got {_shown(v)}", p.name)
    return value


def _shown(v: Any) -> str:
    """A value as a message shows it, bounded: a block by name, a huge number by its size."""
    from netc.compiler.frontend.values import Block

    if isinstance(v, Block):
        return "a block"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int) and abs(v) >= 10**18:  # str() of a 10**5000 would refuse, too
        return f"{'-' if v < 0 else ''}~10^{int(abs(v).bit_length() * 0.30103)}"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        inner = ", ".join(_shown(x) for x in list(v)[:8])
        return "[" + inner + (", ..." if len(v) > 8 else "") + "]"
    text = repr(v) if isinstance(v, str) else str(v)
    return text if len(text) <= 80 else text[:77] + "..."


def _op_word(v: Any) -> str | None:
    """The name of an op written bare (``crop``), which the elaborator has made a layer."""
    from netc.compiler.frontend.values import JoinHead, OpBlock, OpRef

    if isinstance(v, OpRef):
        return v.op.name
    if isinstance(v, (OpBlock, JoinHead)) and v.attrs == v.op.bind([], {}):
        return v.op.name
    return None


def _check_type(p: Param, v: Any, bad) -> Any:
    """The kind check of :func:`check_kind`: the value normalised, or ``bad(...)`` raised."""
    from netc.compiler.frontend.values import Block

    if p.kind == "any":
        return v
    if v is None and p.default is None:
        return None
    if (isinstance(v, Symbol) and p.kind in ("int", "pair", "pads", "ints") and p.choices
            and v in p.choices):
        return str(v)
    if p.kind == "int":
        if isinstance(v, bool) or not isinstance(v, int):
            raise bad("an integer")
        return v
    if p.kind == "float":
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise bad("a number")
        try:
            return float(v)
        except OverflowError:  # an integer past the float range, such as 10**400
            raise bad("a finite number") from None
    if p.kind == "bool":
        if isinstance(v, bool):
            return v
        if isinstance(v, Symbol) and v in ("true", "false"):
            return v == "true"
        if isinstance(v, int) and v in (0, 1):
            return bool(v)
        raise bad("true or false")
    if p.kind == "pair":
        if isinstance(v, int) and not isinstance(v, bool):
            return (v, v)
        if isinstance(v, (list, tuple)) and len(v) == 2 and all(
            isinstance(x, int) and not isinstance(x, bool) for x in v
        ):
            return (v[0], v[1])
        raise bad("an integer or [height, width]")
    if p.kind == "pads":
        if isinstance(v, (list, tuple)) and len(v) == 4 and all(
            isinstance(x, int) and not isinstance(x, bool) for x in v
        ):
            return tuple(v)
        if isinstance(v, int) and not isinstance(v, bool):
            return (v, v)
        if isinstance(v, (list, tuple)) and len(v) == 2 and all(
            isinstance(x, int) and not isinstance(x, bool) for x in v
        ):
            return (v[0], v[1])
        raise bad("an integer, [h, w], [top, left, bottom, right]"
                  + "".join(f" or {c}" for c in p.choices))
    if p.kind == "scale":
        nums = list(v) if isinstance(v, (list, tuple)) else [v, v]
        if len(nums) == 2 and all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                  for x in nums):
            try:
                return (float(nums[0]), float(nums[1]))
            except OverflowError:
                raise bad("a finite number or [h, w] of them") from None
        raise bad("a number or [h, w] of them")
    if p.kind == "ints":
        if isinstance(v, int) and not isinstance(v, bool):
            return (v,)
        if isinstance(v, (list, tuple)) and all(
            isinstance(x, int) and not isinstance(x, bool) for x in v
        ):
            return tuple(v)
        raise bad("an integer or a list of integers" + "".join(f" or {c}" for c in p.choices))
    if p.kind == "floats":
        if isinstance(v, (list, tuple)) and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) for x in v
        ):
            try:
                return tuple(float(x) for x in v)
            except OverflowError:
                raise bad("a list of finite numbers") from None
        raise bad("a list of numbers")
    if p.kind == "enum":
        if isinstance(v, str) and v in p.choices:
            return str(v)
        word = _op_word(v)
        if word in p.choices:  # a choice that is also an op's name: concat(fit=crop)
            return word
        raise bad("one of " + ", ".join(p.choices))
    if p.kind == "block":
        if isinstance(v, Block):
            return v
        raise bad("a block of layers")
    raise AssertionError(f"unknown parameter kind {p.kind!r}")


REGISTRY: dict[str, OpDef] = {}


def register(cls: type[OpDef]) -> type[OpDef]:
    """Class decorator: register one instance of ``cls`` under ``cls.name``."""
    if cls.name in REGISTRY:
        raise RuntimeError(f"op {cls.name!r} registered twice")
    REGISTRY[cls.name] = cls()
    return cls


def get(name: str) -> OpDef:
    return REGISTRY[name]


def spatial(shape: Shape, op: str) -> tuple[int, int, int]:
    """(C, H, W) of a feature-map shape, or a ShapeError for a flat one."""
    if len(shape) != 3:
        raise ShapeError(f"{op} needs a CxHxW feature map; got a flat vector of {shape[0]}")
    return shape  # type: ignore[return-value]


def fmt_shape(shape: Shape | None) -> str:
    return "x".join(str(d) for d in shape) if shape else "?"


# Importing the op modules registers them.
from netc.compiler.ops import (  # noqa: E402,F401
    activation,
    channels,
    conv,
    deconv,
    join,
    norm,
    pool,
    reshape,
    resize,
)
from netc.compiler.ops import caffe_affine, caffe_norm, caffe_pool, fitted, view  # noqa: E402,F401

# Calls that make an argument value, not a layer: fc(10, fit=ridge(0.1)). name -> maker(args,
# kwargs), raising ArgError.
VALUE_CALLS = dict(fitted.VALUE_CALLS)
