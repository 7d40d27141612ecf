"""Pointwise ops: activations, dropout, softmax and identity. Shape in = shape out."""

from __future__ import annotations

from compiler.ops import OpDef, Param, register
from compiler.ops.domains import DROP_PROBABILITY, FINITE


class _Pointwise(OpDef):
    def infer_shape(self, a, ins):
        return ins[0]


def _simple(op_name: str, torch_cls: str, doc: str, params=(), torch_args=(),
            onnx_op: str | None = None, onnx_attrs=()):
    """Register a pointwise op whose torch module is ``nn.<torch_cls>`` and whose ONNX form is
    one ``onnx_op`` node (``None``: the input passes through, no node). ``onnx_attrs`` pairs an
    ONNX attribute with the op parameter it takes its value from."""

    def to_torch(self, a, ins, out):
        import torch.nn as nn

        return getattr(nn, torch_cls)(*[a[p] for p in torch_args])

    def to_onnx(self, tape, node, inputs, weights):
        if onnx_op is None:
            return inputs[0]
        attrs = {key: node.attrs[param] for key, param in onnx_attrs}
        return tape.op(onnx_op, inputs, name=node.name, **attrs)

    cls = type(op_name.title().replace("_", ""), (_Pointwise,),
               {"name": op_name, "doc": doc, "params": params, "to_torch": to_torch,
                "to_onnx": to_onnx})
    return register(cls)


_simple("relu", "ReLU", "rectified linear unit max(0, x)", onnx_op="Relu")
_simple("sigmoid", "Sigmoid", "logistic sigmoid", onnx_op="Sigmoid")
_simple("tanh", "Tanh", "hyperbolic tangent", onnx_op="Tanh")
_simple("identity", "Identity", "passes its input through")
_simple("leaky_relu", "LeakyReLU", "leaky ReLU: leaky_relu(slope=0.01)",
        (Param("slope", "float", 0.01, domain=FINITE),), ("slope",), "LeakyRelu",
        (("alpha", "slope"),))
_simple("elu", "ELU", "exponential linear unit: elu(alpha=1.0)",
        (Param("alpha", "float", 1.0, domain=FINITE),), ("alpha",), "Elu", (("alpha", "alpha"),))


@register
class Gelu(_Pointwise):
    name = "gelu"
    doc = "Gaussian error linear unit"

    def to_torch(self, a, ins, out):
        import torch.nn as nn

        return nn.GELU()

    def to_onnx(self, tape, node, inputs, weights):
        # ONNX has Gelu only from opset 20: write x/2 · (1 + erf(x/√2)), torch's exact form.
        n = node.name
        t = tape.op("Mul", [inputs[0], tape.float_constant(f"{n}.rsqrt2", 0.5 ** 0.5)],
                    name=f"{n}/scale")
        t = tape.op("Erf", [t], name=f"{n}/erf")
        t = tape.op("Add", [t, tape.float_constant(f"{n}.one", 1.0)], name=f"{n}/add")
        t = tape.op("Mul", [inputs[0], t], name=f"{n}/mul")
        return tape.op("Mul", [t, tape.float_constant(f"{n}.half", 0.5)], name=n)


@register
class Dropout(_Pointwise):
    name = "dropout"
    doc = "dropout(p=0.5): zeroes each value with probability p in training; identity in eval"
    params = (Param("p", "float", 0.5, domain=DROP_PROBABILITY),)

    def to_torch(self, a, ins, out):
        import torch.nn as nn

        return nn.Dropout(a.p)

    def to_onnx(self, tape, node, inputs, weights):
        return inputs[0]  # inference: dropout is the identity, and writes no node


@register
class Softmax(_Pointwise):
    name = "softmax"
    doc = "softmax over channels (the class axis of a flat vector)"

    def to_torch(self, a, ins, out):
        import torch.nn as nn

        return nn.Softmax(dim=1)

    def to_onnx(self, tape, node, inputs, weights):
        return tape.op("Softmax", inputs, name=node.name, axis=1)


@register
class LogSoftmax(_Pointwise):
    name = "log_softmax"
    doc = "log-softmax over channels"

    def to_torch(self, a, ins, out):
        import torch.nn as nn

        return nn.LogSoftmax(dim=1)

    def to_onnx(self, tape, node, inputs, weights):
        return tape.op("LogSoftmax", inputs, name=node.name, axis=1)
