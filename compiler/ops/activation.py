"""Pointwise ops: activations, dropout, softmax and identity. Shape in = shape out.

An activation declares its ``numpy`` form (the function in eval mode), from which its seeded
batch-norm statistics follow (:func:`netc.compiler.numerics.moments.of_function`); the registry
test checks that form against the torch module. Each ONNX form is valid from opset 13 on: an
op whose ONNX op is newer (HardSwish, opset 14) writes its older form itself below that opset.
"""

from __future__ import annotations

import numpy as np

from netc.compiler.numerics.moments import of_function
from netc.compiler.ops.base import per_channel
from netc.compiler.ops.domains import DROP_PROBABILITY, FLOAT32, POSITIVE_FLOAT32
from netc.compiler.ops.opdef import OpDef, keep_moments, register
from netc.compiler.ops.params import BOOL, FLOAT, Enum, Param


class _Pointwise(OpDef):
    def infer_shape(self, a, ins):
        return ins[0]


class Activation(_Pointwise):
    """Base of the activations, here and in their own modules: a pointwise function that
    declares its ``numpy`` form, from which its seeded moments follow (those of the function of
    a normal variable)."""

    family = "activation"

    def seeded_moments(self, a, ins, out, w):
        return of_function(lambda x: self.numpy(a, x), *ins[0])


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _simple(op_name: str, torch_cls: str, doc: str, numpy, params=(), torch_args=(),
            onnx_op: str = "", onnx_attrs=(), older=None):
    """Register an activation whose torch module is ``nn.<torch_cls>``, whose numpy form is
    ``numpy(attrs, x)`` and whose ONNX form is one ``onnx_op`` node; ``older(tape, name, x)``
    writes it where the target opset lacks ``onnx_op``. ``onnx_attrs`` pairs an ONNX attribute
    with the op parameter it takes its value from."""

    def to_torch(self, a, ins, out):
        import torch.nn as nn

        return getattr(nn, torch_cls)(*[a[p] for p in torch_args])

    def to_onnx(self, tape, node, inputs, weights):
        if older is not None and not tape.has(onnx_op):
            return older(tape, node.name, inputs[0])
        attrs = {key: node.attrs[param] for key, param in onnx_attrs}
        return tape.op(onnx_op, inputs, name=node.name, **attrs)

    cls = type(op_name.title().replace("_", ""), (Activation,),
               {"name": op_name, "doc": doc, "params": params, "to_torch": to_torch,
                "to_onnx": to_onnx, "numpy": lambda self, a, x: numpy(a, x)})
    return register(cls)


def _hardswish_before_opset_14(tape, name: str, x: str) -> str:
    # The ONNX definition of HardSwish: x · HardSigmoid(x; α = 1/6, β = 1/2).
    gate = tape.op("HardSigmoid", [x], name=f"{name}/hardsigmoid", alpha=1 / 6, beta=0.5)
    return tape.op("Mul", [x, gate], name=name)


_simple("relu", "ReLU", "rectified linear unit max(0, x)", lambda a, x: np.maximum(x, 0.0),
        onnx_op="Relu")
_simple("sigmoid", "Sigmoid", "logistic sigmoid", lambda a, x: _sigmoid(x), onnx_op="Sigmoid")
_simple("tanh", "Tanh", "hyperbolic tangent", lambda a, x: np.tanh(x), onnx_op="Tanh")
_simple("leaky_relu", "LeakyReLU", "leaky ReLU: leaky_relu(slope=0.01)",
        lambda a, x: np.where(x > 0, x, a.slope * x),
        (Param("slope", FLOAT, 0.01, domain=FLOAT32),), ("slope",), "LeakyRelu",
        (("alpha", "slope"),))
_simple("elu", "ELU", "exponential linear unit: elu(alpha=1.0)",
        lambda a, x: np.where(x > 0, x, a.alpha * np.expm1(np.minimum(x, 0.0))),
        (Param("alpha", FLOAT, 1.0, domain=FLOAT32),), ("alpha",), "Elu", (("alpha", "alpha"),))
# ONNX HardSwish is torch's x·relu6(x + 3)/6.
_simple("hardswish", "Hardswish", "hard swish x·relu6(x + 3)/6 (MobileNetV3)",
        lambda a, x: x * np.clip(x + 3.0, 0.0, 6.0) / 6.0, onnx_op="HardSwish",
        older=_hardswish_before_opset_14)


@register
class Identity(_Pointwise):
    name = "identity"
    doc = "passes its input through"
    vanishes_at_eval = True
    seeded_moments = keep_moments

    def to_torch(self, a, ins, out):
        import torch.nn as nn

        return nn.Identity()

    def to_onnx(self, tape, node, inputs, weights):
        return inputs[0]  # no node: the value passes through


@register
class Gelu(Activation):
    name = "gelu"
    doc = ("Gaussian error linear unit x·Φ(x): gelu(approximate=none); approximate=tanh is "
           "x/2·(1 + tanh(√(2/π)·(x + 0.044715·x³))), torch's GELU(approximate='tanh')")
    params = (Param("approximate", Enum("none", "tanh"), "none",
                    doc="none (the exact erf form) or tanh (Hendrycks and Gimpel's estimate)"),)

    def numpy(self, a, x):
        if a.approximate == "tanh":
            return 0.5 * x * (1.0 + np.tanh(_GELU_TANH * (x + 0.044715 * x ** 3)))
        from scipy.special import erf

        return 0.5 * x * (1.0 + erf(x * 0.5 ** 0.5))

    def to_torch(self, a, ins, out):
        import torch.nn as nn

        return nn.GELU(approximate=a.approximate)

    def to_onnx(self, tape, node, inputs, weights):
        # ONNX has Gelu only from opset 20 (its approximate attribute too): write torch's
        # formulas, x/2 · (1 + erf(x/√2)) or x/2 · (1 + tanh(√(2/π)·(x + 0.044715·x³))).
        n, x = node.name, inputs[0]
        if node.attrs.approximate == "tanh":
            cube = tape.op("Mul", [x, tape.op("Mul", [x, x], name=f"{n}/square")],
                           name=f"{n}/cube")
            t = tape.op("Mul", [cube, tape.float_constant(f"{n}.c", 0.044715)], name=f"{n}/c")
            t = tape.op("Add", [x, t], name=f"{n}/inner")
            t = tape.op("Mul", [t, tape.float_constant(f"{n}.k", _GELU_TANH)], name=f"{n}/scale")
            t = tape.op("Tanh", [t], name=f"{n}/tanh")
        else:
            t = tape.op("Mul", [x, tape.float_constant(f"{n}.rsqrt2", 0.5 ** 0.5)],
                        name=f"{n}/scale")
            t = tape.op("Erf", [t], name=f"{n}/erf")
        t = tape.op("Add", [t, tape.float_constant(f"{n}.one", 1.0)], name=f"{n}/add")
        t = tape.op("Mul", [x, t], name=f"{n}/mul")
        return tape.op("Mul", [t, tape.float_constant(f"{n}.half", 0.5)], name=n)


_GELU_TANH = (2.0 / np.pi) ** 0.5  # √(2/π) of the tanh form


@register
class Dropout(_Pointwise):
    name = "dropout"
    doc = "dropout(p=0.5): zeroes each value with probability p in training; identity in eval"
    params = (Param("p", FLOAT, 0.5, domain=DROP_PROBABILITY),)
    vanishes_at_eval = True
    family = "dropout"
    seeded_moments = keep_moments  # eval mode: the identity

    def to_torch(self, a, ins, out):
        import torch.nn as nn

        return nn.Dropout(a.p)

    def to_onnx(self, tape, node, inputs, weights):
        return inputs[0]  # inference: dropout is the identity, and writes no node


class _Probabilities(_Pointwise):
    """Softmax and its log over channels (the class axis of a flat vector)."""

    probability_output = True
    family = "activation"
    seeded_moments = keep_moments  # a classifier's last layer: no batch norm reads it


@register
class Softmax(_Probabilities):
    name = "softmax"
    doc = "softmax over channels (the class axis of a flat vector)"

    def to_torch(self, a, ins, out):
        import torch.nn as nn

        return nn.Softmax(dim=1)

    def to_onnx(self, tape, node, inputs, weights):
        return tape.op("Softmax", inputs, name=node.name, axis=1)


@register
class LogSoftmax(_Probabilities):
    name = "log_softmax"
    doc = "log-softmax over channels"

    def to_torch(self, a, ins, out):
        import torch.nn as nn

        return nn.LogSoftmax(dim=1)

    def to_onnx(self, tape, node, inputs, weights):
        return tape.op("LogSoftmax", inputs, name=node.name, axis=1)


# ---- the activations of MobileNet, EfficientNet and later nets -----------------------------

@register
class Relu6(Activation):
    name = "relu6"
    doc = "ReLU capped at 6: min(max(0, x), 6) (MobileNet)"

    def numpy(self, a, x):
        return np.clip(x, 0.0, 6.0)

    def to_torch(self, a, ins, out):
        import torch.nn as nn

        return nn.ReLU6()

    def to_onnx(self, tape, node, inputs, weights):
        # Clip's bounds in the attribute form: the tape makes them the inputs opset 11+ wants.
        return tape.op("Clip", inputs, name=node.name, min=0.0, max=6.0)


@register
class Silu(Activation):
    name = "silu"
    doc = "sigmoid-weighted linear unit x·sigmoid(x) (Swish with beta 1; EfficientNet)"

    def numpy(self, a, x):
        return x * _sigmoid(x)

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
class HardSigmoid(Activation):
    name = "hardsigmoid"
    doc = "hard sigmoid relu6(x + 3)/6, torch's form (MobileNetV3's squeeze-excitation gate)"

    def numpy(self, a, x):
        return np.clip(x / 6.0 + 0.5, 0.0, 1.0)

    def to_torch(self, a, ins, out):
        import torch.nn as nn

        return nn.Hardsigmoid()

    def to_onnx(self, tape, node, inputs, weights):
        # ONNX's defaults (alpha 0.2) are Keras'; torch's is max(0, min(1, x/6 + 1/2)).
        return tape.op("HardSigmoid", inputs, name=node.name, alpha=1.0 / 6.0, beta=0.5)


@register
class Softplus(Activation):
    name = "softplus"
    doc = "softplus(beta=1): log(1 + exp(beta·x))/beta"
    params = (Param("beta", FLOAT, 1.0, domain=POSITIVE_FLOAT32),)

    def numpy(self, a, x):
        return np.logaddexp(0.0, a.beta * x) / a.beta

    def to_torch(self, a, ins, out):
        import torch.nn as nn

        return nn.Softplus(beta=a.beta)

    def to_onnx(self, tape, node, inputs, weights):
        return onnx_softplus(tape, node.name, inputs[0], node.attrs.beta)


def onnx_softplus(tape, name: str, x: str, beta: float = 1.0) -> str:
    """log(1 + exp(beta·x))/beta as ONNX Softplus (with a scale either side when beta ≠ 1)."""
    if beta == 1.0:
        return tape.op("Softplus", [x], name=name)
    b = tape.float_constant(f"{name}.beta", beta)
    y = tape.op("Mul", [x, b], name=f"{name}/scale")
    y = tape.op("Softplus", [y], name=f"{name}/softplus")
    return tape.op("Div", [y, b], name=name)


@register
class Mish(Activation):
    name = "mish"
    doc = "x·tanh(softplus(x)) (Misra 2019; YOLOv4)"

    def numpy(self, a, x):
        return x * np.tanh(np.logaddexp(0.0, x))

    def to_torch(self, a, ins, out):
        import torch.nn as nn

        return nn.Mish()

    def to_onnx(self, tape, node, inputs, weights):
        # ONNX's Mish (opset 18) by its definition, in ops every opset from 13 has.
        n = node.name
        y = tape.op("Softplus", inputs, name=f"{n}/softplus")
        y = tape.op("Tanh", [y], name=f"{n}/tanh")
        return tape.op("Mul", [inputs[0], y], name=n)


@register
class PRelu(_Pointwise):
    name = "prelu"
    doc = ("parametric ReLU max(0, x) + a·min(0, x) with a learned slope a per channel, or one "
           "for all with prelu(shared=true); a starts at 0.25 (He et al. 2015, Caffe's PReLU)")
    params = (Param("shared", BOOL, False, doc="one slope for every channel"),
              Param("init", FLOAT, 0.25, domain=FLOAT32, doc="the slope's initial value"))
    family = "activation"
    seeded_moments = keep_moments  # the learned slope is left out of the seeded statistics

    def param_count(self, a, ins, out):
        return 1 if a.shared else ins[0][0]

    def init_weights(self, a, ins, out, rng):
        return {"weight": np.full(self.param_count(a, ins, out), a.init, np.float32)}

    def to_torch(self, a, ins, out):
        import torch.nn as nn

        return nn.PReLU(self.param_count(a, ins, out), init=a.init)

    def to_onnx(self, tape, node, inputs, weights):
        # ONNX PRelu broadcasts the slope from the last axis: a per-channel slope is C x 1 x 1
        # on (N, C, H, W) and L x 1 on a token sequence (N, L, D) (torch's channel is axis 1).
        slope = weights[f"{node.name}.weight"]
        if slope.size > 1:
            slope = slope.reshape(per_channel(tape.shape(inputs[0])))
        return tape.op("PRelu", [inputs[0], tape.initializer(f"{node.name}.weight", slope)],
                       name=node.name)
