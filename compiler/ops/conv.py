"""Weight layers: convolution and fully connected. Only these count multiply-accumulates."""

from __future__ import annotations

import math

import numpy as np

from netc.compiler.numerics.moments import of_weighted_sum
from netc.compiler.ops.base import ArgError, Attrs, Shape, ShapeError, not_flat, spatial
from netc.compiler.ops.domains import NON_NEGATIVE, POSITIVE
from netc.compiler.ops.formulas import (
    fan_in_uniform,
    kaiming_normal,
    resolve_pads,
    window_out,
    xavier_uniform,
)
from netc.compiler.ops.opdef import OpDef, register
from netc.compiler.ops.params import ANY, BOOL, INT, PADS, PAIR, Enum, Param


def normalise_pad(op: str, a, dilation=(1, 1)):
    """Check a ``pads`` attribute and keep it in its simplest form, so a symmetric pad stays the
    familiar ``(ph, pw)`` pair: ``[t, l, b, r]`` with t = b and l = r becomes a pair, and
    ``same`` is resolved at once where it does not depend on the input size (stride 1)."""
    pad = a.pad
    if pad == "same":
        if a.stride != (1, 1):
            return a  # resolved per input size by resolve_pads
        pad = resolve_pads("same", (1, 1), a.kernel, a.stride, dilation)
    if min(pad) < 0:
        raise ArgError(f"{op}: pad must not be negative; got {list(pad)}", "pad")
    if len(pad) == 4 and pad[0] == pad[2] and pad[1] == pad[3]:
        pad = (pad[0], pad[1])
    return a.replace(pad=tuple(pad))


def window_shape(op: str, shape: Shape, kernel, stride, pad, dilation=(1, 1), ceil=False,
                 channels: int | None = None) -> Shape:
    """Apply :func:`window_out` on both spatial axes, with an error that shows the numbers.

    ``pad`` is a pair, ``(top, left, bottom, right)`` or ``"same"`` (:func:`resolve_pads`).
    """
    c, h, w = spatial(shape, op)
    t, left, b, r = resolve_pads(pad, (h, w), kernel, stride, dilation)
    outs = []
    for axis, size, k, s, pb, pa, d in zip(("height", "width"), (h, w), kernel, stride,
                                            (t, left), (b, r), dilation):
        if pb == pa:
            o = window_out(size, k, s, pb, d, ceil)
            shown = f"2*{pb}"
        else:  # asymmetric: never with ceil (the ops refuse it)
            o = (size + pb + pa - (d * (k - 1) + 1)) // s + 1
            shown = f"{pb} + {pa}"
        if o <= 0:
            f = d * (k - 1) + 1
            rule = "ceil" if ceil else "floor"
            raise ShapeError(
                f"{op}: output {axis} is {o}: ({size} + {shown} - {f})/{s} + 1 "
                f"({rule}) on input {c}x{h}x{w}; the window is larger than the padded input"
            )
        outs.append(o)
    return (channels if channels is not None else c, outs[0], outs[1])


@register
class Conv(OpDef):
    name = "conv"
    doc = "2-D convolution: conv(out, kernel, stride=1, pad=0, dilation=1, groups=1, bias=true)"
    params = (
        Param("out", INT, domain=POSITIVE),
        Param("kernel", PAIR, domain=POSITIVE),
        Param("stride", PAIR, 1, domain=POSITIVE),
        Param("pad", PADS.or_words("same"), 0, domain=NON_NEGATIVE,
              doc="an int, [h, w], [top, left, bottom, right], or same (TensorFlow's rule)"),
        Param("dilation", PAIR, 1, domain=POSITIVE),
        Param("groups", INT, 1, domain=POSITIVE),
        Param("bias", BOOL, True),
        Param("init", Enum("kaiming", "xavier"), "kaiming"),
    )
    folds_bn = True
    scales_with_weights = True
    family = "conv"

    def normalise(self, a: Attrs) -> Attrs:
        # Each value's range is its Param's domain; what is left relates parameters.
        a = normalise_pad("conv", a, a.dilation)
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
            weight = xavier_uniform(rng, shape, fan_in, fan_out)
        else:
            weight = kaiming_normal(rng, shape, fan_out)
        w = {"weight": weight}
        if a.bias:
            w["bias"] = np.zeros(a.out, np.float32)
        return w

    def seeded_moments(self, a, ins, out, w):
        return of_weighted_sum(w["weight"], w.get("bias"), a.groups, *ins[0])

    def to_torch(self, a, ins, out):
        import torch.nn as nn

        pads = resolve_pads(a.pad, ins[0][1:], a.kernel, a.stride, a.dilation)
        if pads[:2] == pads[2:]:
            return nn.Conv2d(ins[0][0], a.out, a.kernel, a.stride, pads[:2], a.dilation,
                             a.groups, a.bias)
        from netc.compiler.lower_torch.layers import PaddedConv2d

        return PaddedConv2d(pads, ins[0][0], a.out, a.kernel, a.stride, 0, a.dilation, a.groups,
                            a.bias)

    def to_onnx(self, tape, node, inputs, weights):
        a = node.attrs
        ins = [inputs[0], tape.initializer(f"{node.name}.weight", weights[f"{node.name}.weight"])]
        if a.bias:
            ins.append(tape.initializer(f"{node.name}.bias", weights[f"{node.name}.bias"]))
        pads = resolve_pads(a.pad, tape.shape(inputs[0])[1:], a.kernel, a.stride, a.dilation)
        return tape.op("Conv", ins, name=node.name, group=a.groups,
                       **onnx_window(a.kernel, a.stride, pads, a.dilation))


@register
class FC(OpDef):
    name = "fc"
    doc = ("fully connected layer on a flat vector: fc(out, bias=true); fit=lstsq or "
           "fit=ridge(λ) makes netc fit solve it by least squares (compiler/ops/fitted.py)")
    params = (
        Param("out", INT, domain=POSITIVE),
        Param("bias", BOOL, True),
        Param("init", Enum("uniform", "xavier", "normal"), "uniform"),
        Param("fit", ANY, None, doc="lstsq, lstsq(rcond=r) or ridge(λ)"),
    )
    folds_bn = True
    scales_with_weights = True
    family = "fc"

    def normalise(self, a):
        from netc.compiler.ops.fitted import fit_value

        return a.replace(fit=fit_value(a.fit))

    def fitted(self, a):
        return a.fit is not None

    def fit_weights(self, a, ins, out, moments):
        """A fitted fc (``fit=``): least squares on the moments of its input and target."""
        from netc.compiler.numerics.fitting import GRAM_RCOND

        rcond = GRAM_RCOND if a.fit.rcond is None else a.fit.rcond
        w, b, sol = moments.solve(a.fit.ridge, a.bias, rcond)
        weights = {"weight": w.astype(np.float32)}
        if a.bias:
            weights["bias"] = b.astype(np.float32)
        return weights, f"{sol.describe()}, {moments.n:,} samples"

    def infer_shape(self, a, ins):
        if len(ins[0]) != 1:
            raise not_flat("fc", ins[0], f"add flatten (keeps all {math.prod(ins[0])} values) "
                                         "or gap before it")
        return (a.out,)

    def param_count(self, a, ins, out):
        return ins[0][0] * a.out + (a.out if a.bias else 0)

    def macs(self, a, ins, out):
        return ins[0][0] * a.out

    def init_weights(self, a, ins, out, rng):
        n = ins[0][0]
        shape = (a.out, n)
        if a.init == "xavier":
            weight = xavier_uniform(rng, shape, n, a.out)
        elif a.init == "normal":
            weight = (rng.standard_normal(shape) * 0.01).astype(np.float32)
        else:
            weight = fan_in_uniform(rng, shape, n)
        w = {"weight": weight}
        if a.bias:
            w["bias"] = np.zeros(a.out, np.float32)
        return w

    def seeded_moments(self, a, ins, out, w):
        return of_weighted_sum(w["weight"], w.get("bias"), 1, *ins[0])

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

    ``pad`` is ``(ph, pw)`` or ``(top, left, bottom, right)``, which is ONNX's own order of
    ``pads`` (x1_begin, x2_begin, x1_end, x2_end).
    """
    pads = [*pad, *pad] if len(pad) == 2 else list(pad)
    attrs = {"kernel_shape": list(kernel), "strides": list(stride), "pads": pads}
    if dilation is not None:
        attrs["dilations"] = list(dilation)
    return attrs
