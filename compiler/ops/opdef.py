"""The base of every op (:class:`OpDef`), the registry that holds one instance of each, and the
questions other code asks it.

An op declares what it *is* as class attributes (its categories: is it a join head, does it
vanish at inference, does batch norm fold into it...) and what it *does* as methods (its faces:
shape rule, counts, weights, seeded statistics, PyTorch and ONNX lowerings). Code outside
:mod:`netc.compiler.ops` asks an op (``node.opdef.folds_bn``) or the registry
(:func:`join_heads`); it never lists op names.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any, ClassVar

import numpy as np

from netc.compiler.ops.base import ArgError, Attrs, Shape
from netc.compiler.ops.params import Param, check_argument

Moments = tuple[np.ndarray, np.ndarray]  # per-channel mean and variance


class OpDef:
    """Base of every op. Subclasses set ``name`` and ``params``, their categories, and override
    the faces they need; ``tests/test_registry.py`` fails on an op that lacks one it must have."""

    name: ClassVar[str]
    params: ClassVar[tuple[Param, ...]] = ()
    min_inputs: ClassVar[int] = 1
    max_inputs: ClassVar[int | None] = 1  # None: any number (joins)
    doc: ClassVar[str] = ""

    # -- categories: what other code needs to know about the op --------------------------------
    join_head: ClassVar[bool] = False
    """Written before branches, ``name[a, b]`` (concat, add, mean...): its inputs are a join's."""
    vanishes_at_eval: ClassVar[bool] = False
    """The identity at inference (dropout, identity): passes may look through it."""
    folds_bn: ClassVar[bool] = False
    """A batch norm reading it folds into its weight and bias, per output channel (conv, fc)."""
    scales_with_weights: ClassVar[bool] = False
    """Multiplying its weight and bias by p multiplies its output by p (conv, fc, bn), so
    stochastic depth's inference scale folds into it (``passes.fold_survival``)."""
    running_statistics: ClassVar[bool] = False
    """Holds running statistics that the seeded initialiser sets from its input (bn)."""
    probability_output: ClassVar[bool] = False
    """Its output is a class distribution or its log (softmax): the logits are its input."""
    family: ClassVar[str] = "other"
    """What kind of layer it is, for pictures: conv, fc, pool, norm, dropout, join, activation
    or other."""

    # -- faces ---------------------------------------------------------------------------------
    def infer_shape(self, a: Attrs, ins: list[Shape]) -> Shape:
        """The output shape from the input shapes; a ShapeError naming the numbers otherwise."""
        raise NotImplementedError(f"op {self.name!r} has no shape rule")

    def param_count(self, a: Attrs, ins: list[Shape], out: Shape) -> int:
        """Learnable parameters."""
        return 0

    def macs(self, a: Attrs, ins: list[Shape], out: Shape) -> int:
        """Multiply-accumulates per sample (weight layers only: the VGG and ResNet papers')."""
        return 0

    def workspace(self, a: Attrs, ins: list[Shape], out: Shape) -> int:
        """Values held while the op runs besides its output (attention's L x L scores), for
        the memory budget (``netc.compiler.analyses.budget``); 0 for most ops."""
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

    def fitted(self, a: Attrs) -> bool:
        """Whether ``netc fit`` solves its weights from data (``fit_weights``), not training."""
        return False

    def seeded_moments(self, a: Attrs, ins: list[Moments], out: Shape,
                       w: MutableMapping[str, np.ndarray]) -> Moments:
        """Per-channel mean and variance of the output on standard-normal input images, from
        the inputs' (``ins``) and the node's seeded weights ``w`` (by local name: ``weight``);
        an op with running statistics sets them in ``w``. Every op declares its rule
        (:mod:`netc.compiler.analyses.seeded_stats`), if only :func:`keep_moments`."""
        raise NotImplementedError(f"op {self.name!r} declares no seeded-statistics rule")

    def numpy(self, a: Attrs, x: np.ndarray) -> np.ndarray:
        """The op on a numpy array in eval mode, for the ops that are pointwise functions."""
        raise NotImplementedError(f"op {self.name!r} has no numpy form")

    def to_torch(self, a: Attrs, ins: list[Shape], out: Shape):
        """An ``nn.Module`` computing the op (PyTorch lowering)."""
        raise NotImplementedError(f"op {self.name!r} has no PyTorch lowering")

    def to_onnx(self, tape, node, inputs: list[str], weights: Mapping[str, np.ndarray]) -> str:
        """The ONNX nodes computing the op, recorded on ``tape``; returns the output value. An
        ONNX op newer than the tape's opset (``tape.has``) is written in older ones here."""
        raise NotImplementedError(f"op {self.name!r} has no ONNX lowering")

    # -- argument binding ----------------------------------------------------------------------
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
                out[p.name] = check_argument(self.name, p, values[p.name])
            elif p.required:
                raise ArgError(f"{self.name} needs its parameter {p.name!r} ({self.signature()})")
            else:
                out[p.name] = None if p.default is None else check_argument(self.name, p,
                                                                            p.default)
        return self.normalise(Attrs(out))

    def normalise(self, a: Attrs) -> Attrs:
        """Hook for ops whose defaults depend on other arguments (pool stride = kernel)."""
        return a

    def signature(self) -> str:
        """``conv(out, kernel, stride=1, ...)``: the call with its defaults."""
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


def keep_moments(self: OpDef, a: Attrs, ins: list[Moments], out: Shape, w) -> Moments:
    """The seeded-statistics rule "the output has its first input's moments": exact for ops
    that keep them (dropout, identity), the chosen approximation for the others that declare
    it (a layer whose channels differ from its input's gets their average)."""
    return ins[0]


REGISTRY: dict[str, OpDef] = {}


def register(cls: type[OpDef]) -> type[OpDef]:
    """Class decorator: register one instance of ``cls`` under ``cls.name``."""
    if cls.name in REGISTRY:
        raise RuntimeError(f"op {cls.name!r} registered twice")
    REGISTRY[cls.name] = cls()
    return cls


def join_heads() -> tuple[str, ...]:
    """The ops a spec writes before branches, ``name[a, b]``, in registry order."""
    return tuple(name for name, op in REGISTRY.items() if op.join_head)
