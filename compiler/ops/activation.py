"""Pointwise ops: activations, dropout, softmax and identity. Shape in = shape out."""

from __future__ import annotations

from compiler.ops import ArgError, OpDef, Param, register


class _Pointwise(OpDef):
    def infer_shape(self, a, ins):
        return ins[0]


def _simple(op_name: str, torch_cls: str, doc: str, params=(), torch_args=()):
    """Register a parameter-free pointwise op whose torch module is ``nn.<torch_cls>``."""

    def to_torch(self, a, ins, out):
        import torch.nn as nn

        return getattr(nn, torch_cls)(*[a[p] for p in torch_args])

    cls = type(op_name.title().replace("_", ""), (_Pointwise,),
               {"name": op_name, "doc": doc, "params": params, "to_torch": to_torch})
    return register(cls)


_simple("relu", "ReLU", "rectified linear unit max(0, x)")
_simple("sigmoid", "Sigmoid", "logistic sigmoid")
_simple("tanh", "Tanh", "hyperbolic tangent")
_simple("gelu", "GELU", "Gaussian error linear unit")
_simple("identity", "Identity", "passes its input through")
_simple("leaky_relu", "LeakyReLU", "leaky ReLU: leaky_relu(slope=0.01)",
        (Param("slope", "float", 0.01),), ("slope",))
_simple("elu", "ELU", "exponential linear unit: elu(alpha=1.0)",
        (Param("alpha", "float", 1.0),), ("alpha",))


@register
class Dropout(_Pointwise):
    name = "dropout"
    doc = "dropout(p=0.5): zeroes each value with probability p in training; identity in eval"
    params = (Param("p", "float", 0.5),)

    def normalise(self, a):
        if not 0.0 <= a.p < 1.0:
            raise ArgError(f"dropout: p must be in [0, 1); got {a.p}")
        return a

    def to_torch(self, a, ins, out):
        import torch.nn as nn

        return nn.Dropout(a.p)


@register
class Softmax(_Pointwise):
    name = "softmax"
    doc = "softmax over channels (the class axis of a flat vector)"

    def to_torch(self, a, ins, out):
        import torch.nn as nn

        return nn.Softmax(dim=1)


@register
class LogSoftmax(_Pointwise):
    name = "log_softmax"
    doc = "log-softmax over channels"

    def to_torch(self, a, ins, out):
        import torch.nn as nn

        return nn.LogSoftmax(dim=1)
