"""Weight layers: convolution and fully connected. Only these count multiply-accumulates."""

from __future__ import annotations

import math

import numpy as np

from compiler.ops import ArgError, Attrs, OpDef, Param, Shape, ShapeError, register, spatial
from compiler.ops.domains import NON_NEGATIVE, POSITIVE


def window_out(size: int, kernel: int, stride: int, pad: int, dilation: int = 1,
               ceil: bool = False) -> int:
    """Output length of a sliding window: (W + 2P − F)/S + 1, floored (or Caffe's ceil).

    ``F`` is the dilated extent d·(k−1)+1. In ceil mode a last window that would start inside
    the right padding is dropped, as Caffe and PyTorch both do.

    >>> window_out(5, 3, 2, 1)   # the lecture's example: W=5, P=1, F=3, S=2
    3
    """
    extent = dilation * (kernel - 1) + 1
    span = size + 2 * pad - extent
    out = (-(-span // stride) if ceil else span // stride) + 1
    if ceil and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def window_shape(op: str, shape: Shape, kernel, stride, pad, dilation=(1, 1), ceil=False,
                 channels: int | None = None) -> Shape:
    """Apply :func:`window_out` on both spatial axes, with an error that shows the numbers."""
    c, h, w = spatial(shape, op)
    outs = []
    for axis, size, k, s, p, d in zip(("height", "width"), (h, w), kernel, stride, pad, dilation):
        o = window_out(size, k, s, p, d, ceil)
        if o <= 0:
            f = d * (k - 1) + 1
            rule = "ceil" if ceil else "floor"
            raise ShapeError(
                f"{op}: output {axis} is {o}: ({size} + 2*{p} - {f})/{s} + 1 "
                f"({rule}) on input {c}x{h}x{w}; the window is larger than the padded input"
            )
        outs.append(o)
    return (channels if channels is not None else c, outs[0], outs[1])


def _xavier(rng, shape, fan_in, fan_out):
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-bound, bound, size=shape).astype(np.float32)


def _kaiming(rng, shape, fan):
    return (rng.standard_normal(size=shape) * math.sqrt(2.0 / fan)).astype(np.float32)


@register
class Conv(OpDef):
    name = "conv"
    doc = "2-D convolution: conv(out, kernel, stride=1, pad=0, dilation=1, groups=1, bias=true)"
    params = (
        Param("out", "int", domain=POSITIVE),
        Param("kernel", "pair", domain=POSITIVE),
        Param("stride", "pair", 1, domain=POSITIVE),
        Param("pad", "pair", 0, choices=("same",), doc="an int, [h, w], or same",
              domain=NON_NEGATIVE),
        Param("dilation", "pair", 1, domain=POSITIVE),
        Param("groups", "int", 1, domain=POSITIVE),
        Param("bias", "bool", True),
        Param("init", "enum", "kaiming", choices=("kaiming", "xavier")),
    )

    def normalise(self, a: Attrs) -> Attrs:
        # Each value's range is its Param's domain; what is left relates parameters.
        if a.pad == "same":
            if a.stride != (1, 1) or any(k % 2 == 0 for k in a.kernel):
                raise ArgError("conv: pad=same needs stride 1 and an odd kernel", "pad")
            a = a.replace(pad=tuple(d * (k - 1) // 2 for k, d in zip(a.kernel, a.dilation)))
        if a.out % a.groups:
            raise ArgError(f"conv: out={a.out} is not divisible by groups={a.groups}", "groups")
        return a

    def infer_shape(self, a, ins):
        c = spatial(ins[0], "conv")[0]
        if c % a.groups:
            raise ShapeError(f"conv: {c} input channels are not divisible by groups={a.groups}")
        return window_shape("conv", ins[0], a.kernel, a.stride, a.pad, a.dilation, False, a.out)

    def geometry(self, a, ins):
        return a.kernel, a.stride, a.dilation

    def param_count(self, a, ins, out):
        cin = ins[0][0] // a.groups
        return a.out * cin * a.kernel[0] * a.kernel[1] + (a.out if a.bias else 0)

    def macs(self, a, ins, out):
        cin = ins[0][0] // a.groups
        return out[0] * out[1] * out[2] * cin * a.kernel[0] * a.kernel[1]

    def init_weights(self, a, ins, out, rng):
        cin = ins[0][0] // a.groups
        shape = (a.out, cin, a.kernel[0], a.kernel[1])
        fan_in = cin * a.kernel[0] * a.kernel[1]
        fan_out = a.out * a.kernel[0] * a.kernel[1]
        if a.init == "xavier":
            weight = _xavier(rng, shape, fan_in, fan_out)
        else:
            weight = _kaiming(rng, shape, fan_out)
        w = {"weight": weight}
        if a.bias:
            w["bias"] = np.zeros(a.out, np.float32)
        return w

    def to_torch(self, a, ins, out):
        import torch.nn as nn

        return nn.Conv2d(ins[0][0], a.out, a.kernel, a.stride, a.pad, a.dilation, a.groups, a.bias)

    def to_onnx(self, tape, node, inputs, weights):
        a = node.attrs
        ins = [inputs[0], tape.initializer(f"{node.name}.weight", weights[f"{node.name}.weight"])]
        if a.bias:
            ins.append(tape.initializer(f"{node.name}.bias", weights[f"{node.name}.bias"]))
        return tape.op("Conv", ins, name=node.name, group=a.groups,
                       **onnx_window(a.kernel, a.stride, a.pad, a.dilation))


@register
class FC(OpDef):
    name = "fc"
    doc = ("fully connected layer on a flat vector: fc(out, bias=true); fit=lstsq or "
           "fit=ridge(λ) makes netc fit solve it by least squares (compiler/ops/fitted.py)")
    params = (
        Param("out", "int", domain=POSITIVE),
        Param("bias", "bool", True),
        Param("init", "enum", "uniform", choices=("uniform", "xavier", "normal")),
        Param("fit", "any", None, doc="lstsq, lstsq(rcond=r) or ridge(λ)"),
    )

    def normalise(self, a):
        from compiler.ops.fitted import fit_value

        return a.replace(fit=fit_value(a.fit))

    def fit_weights(self, a, ins, out, moments):
        """A fitted fc (``fit=``): least squares on the moments of its input and target."""
        from compiler.fitting import GRAM_RCOND

        rcond = GRAM_RCOND if a.fit.rcond is None else a.fit.rcond
        w, b, sol = moments.solve(a.fit.ridge, a.bias, rcond)
        weights = {"weight": w.astype(np.float32)}
        if a.bias:
            weights["bias"] = b.astype(np.float32)
        return weights, f"{sol.describe()}, {moments.n:,} samples"

    def infer_shape(self, a, ins):
        if len(ins[0]) != 1:
            dims = "x".join(map(str, ins[0]))
            raise ShapeError(
                f"fc needs a flat input; got a {dims} feature map: "
                f"add flatten (keeps all {math.prod(ins[0])} values) or gap before it"
            )
        return (a.out,)

    def param_count(self, a, ins, out):
        return ins[0][0] * a.out + (a.out if a.bias else 0)

    def macs(self, a, ins, out):
        return ins[0][0] * a.out

    def init_weights(self, a, ins, out, rng):
        n = ins[0][0]
        shape = (a.out, n)
        if a.init == "xavier":
            weight = _xavier(rng, shape, n, a.out)
        elif a.init == "normal":
            weight = (rng.standard_normal(shape) * 0.01).astype(np.float32)
        else:
            bound = 1.0 / math.sqrt(n)
            weight = rng.uniform(-bound, bound, size=shape).astype(np.float32)
        w = {"weight": weight}
        if a.bias:
            w["bias"] = np.zeros(a.out, np.float32)
        return w

    def to_torch(self, a, ins, out):
        import torch.nn as nn

        return nn.Linear(ins[0][0], a.out, a.bias)

    def to_onnx(self, tape, node, inputs, weights):
        ins = [inputs[0], tape.initializer(f"{node.name}.weight", weights[f"{node.name}.weight"])]
        if node.attrs.bias:
            ins.append(tape.initializer(f"{node.name}.bias", weights[f"{node.name}.bias"]))
        return tape.op("Gemm", ins, name=node.name, transB=1)


def onnx_window(kernel, stride, pad, dilation=None) -> dict:
    """ONNX attributes of a sliding window (Conv, MaxPool, AveragePool), shared by the ops.

    netc pads symmetrically, so ``pads`` is (top, left, bottom, right) = (ph, pw, ph, pw).
    """
    attrs = {"kernel_shape": list(kernel), "strides": list(stride), "pads": [*pad, *pad]}
    if dilation is not None:
        attrs["dilations"] = list(dilation)
    return attrs
