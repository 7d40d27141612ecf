"""Pointwise ops: activations, dropout, softmax and identity. Shape in = shape out."""

from __future__ import annotations

import numpy as np

from netc.compiler.ops import OpDef, Param, register
from netc.compiler.ops.domains import DROP_PROBABILITY, FINITE, between

# A learned slope or a scale that torch and ONNX hold in float32 (1e308 would overflow).
FLOAT32 = between(-3.4e38, 3.4e38, lo_open=True, hi_open=True, text="a finite float32 number")
POSITIVE_FLOAT32 = between(0, 3.4e38, lo_open=True, hi_open=True,
                           text="a positive finite float32 number")


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
# ONNX HardSwish is torch's x·relu6(x + 3)/6 (opset 14).
_simple("hardswish", "Hardswish", "hard swish x·relu6(x + 3)/6 (MobileNetV3)",
        onnx_op="HardSwish")


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


# ---- the activations of MobileNet, EfficientNet and later nets -----------------------------
# Each ONNX form is valid at opset 18 and computes torch's formula.

@register
class Relu6(_Pointwise):
    name = "relu6"
    doc = "ReLU capped at 6: min(max(0, x), 6) (MobileNet)"

    def to_torch(self, a, ins, out):
        import torch.nn as nn

        return nn.ReLU6()

    def to_onnx(self, tape, node, inputs, weights):
        n = node.name
        return tape.op("Clip", [inputs[0], tape.float_constant(f"{n}.min", 0.0),
                                tape.float_constant(f"{n}.max", 6.0)], name=n)


@register
class Silu(_Pointwise):
    name = "silu"
    doc = "sigmoid-weighted linear unit x·sigmoid(x) (Swish with beta 1; EfficientNet)"

    def to_torch(self, a, ins, out):
        import torch.nn as nn

        return nn.SiLU()

    def to_onnx(self, tape, node, inputs, weights):
        s = tape.op("Sigmoid", inputs, name=f"{node.name}/sigmoid")
        return tape.op("Mul", [inputs[0], s], name=node.name)


@register
class Swish(Silu):
    name = "swish"
    doc = "another name of silu: x·sigmoid(x) (Ramachandran et al.)"


@register
class HardSigmoid(_Pointwise):
    name = "hardsigmoid"
    doc = "hard sigmoid relu6(x + 3)/6, torch's form (MobileNetV3's squeeze-excitation gate)"

    def to_torch(self, a, ins, out):
        import torch.nn as nn

        return nn.Hardsigmoid()

    def to_onnx(self, tape, node, inputs, weights):
        # ONNX's defaults (alpha 0.2) are Keras'; torch's is max(0, min(1, x/6 + 1/2)).
        return tape.op("HardSigmoid", inputs, name=node.name, alpha=1.0 / 6.0, beta=0.5)


@register
class Softplus(_Pointwise):
    name = "softplus"
    doc = "softplus(beta=1): log(1 + exp(beta·x))/beta"
    params = (Param("beta", "float", 1.0, domain=POSITIVE_FLOAT32),)

    def to_torch(self, a, ins, out):
        import torch.nn as nn

        return nn.Softplus(beta=a.beta)

    def to_onnx(self, tape, node, inputs, weights):
        return onnx_softplus(tape, node.name, inputs[0], node.attrs.beta)


def onnx_softplus(tape, name: str, x: str, beta: float = 1.0, out: str | None = None) -> str:
    """log(1 + exp(beta·x))/beta as ONNX Softplus (with a scale either side when beta ≠ 1)."""
    if beta == 1.0:
        return tape.op("Softplus", [x], name=out or name)
    b = tape.float_constant(f"{name}.beta", beta)
    y = tape.op("Mul", [x, b], name=f"{name}/scale")
    y = tape.op("Softplus", [y], name=f"{name}/softplus")
    return tape.op("Div", [y, b], name=out or name)


@register
class Mish(_Pointwise):
    name = "mish"
    doc = "x·tanh(softplus(x)) (Misra 2019; YOLOv4)"

    def to_torch(self, a, ins, out):
        import torch.nn as nn

        return nn.Mish()

    def to_onnx(self, tape, node, inputs, weights):
        n = node.name
        y = tape.op("Softplus", inputs, name=f"{n}/softplus")
        y = tape.op("Tanh", [y], name=f"{n}/tanh")
        return tape.op("Mul", [inputs[0], y], name=n)


@register
class PRelu(_Pointwise):
    name = "prelu"
    doc = ("parametric ReLU max(0, x) + a·min(0, x) with a learned slope a per channel, or one "
           "for all with prelu(shared=true); a starts at 0.25 (He et al. 2015, Caffe's PReLU)")
    params = (Param("shared", "bool", False, doc="one slope for every channel"),
              Param("init", "float", 0.25, domain=FLOAT32, doc="the slope's initial value"))

    def param_count(self, a, ins, out):
        return 1 if a.shared else ins[0][0]

    def init_weights(self, a, ins, out, rng):
        return {"weight": np.full(self.param_count(a, ins, out), a.init, np.float32)}

    def to_torch(self, a, ins, out):
        import torch.nn as nn

        return nn.PReLU(self.param_count(a, ins, out), init=a.init)

    def to_onnx(self, tape, node, inputs, weights):
        # ONNX PRelu broadcasts the slope onto (N, C, H, W): a per-channel slope is C x 1 x 1.
        slope = weights[f"{node.name}.weight"]
        shape = tape.shape(inputs[0])
        if slope.size > 1 and len(shape) == 3:
            slope = slope.reshape(-1, 1, 1)
        return tape.op("PRelu", [inputs[0], tape.initializer(f"{node.name}.weight", slope)],
                       name=node.name)
