"""Transposed convolution (``deconv``): the learnable upsampling of FCN, U-Net and DCGAN.

Each input pixel scatters a kernel-sized patch, stride S apart, into the output; padding P cuts
rows and columns off the output's edges rather than adding them to the input. The output size
is ONNX ConvTranspose's and ``torch.nn.ConvTranspose2d``'s rule::

    out = (W − 1)·S − (P_before + P_after) + d·(F − 1) + output_pad + 1

``output_pad`` (less than the stride or the dilation) adds rows at the bottom/right: it picks
one of the S input sizes that a strided conv maps to the same output. The weight is laid out
(C_in, C_out/groups, kh, kw), as torch and Caffe's Deconvolution store it.
"""

from __future__ import annotations

import numpy as np

from netc.compiler.numerics.moments import of_weighted_sum
from netc.compiler.ops.base import ArgError, ShapeError, spatial
from netc.compiler.ops.conv import onnx_window
from netc.compiler.ops.domains import NON_NEGATIVE, POSITIVE
from netc.compiler.ops.formulas import bilinear_kernel, deconv_out, kaiming_normal, xavier_uniform
from netc.compiler.ops.opdef import OpDef, register
from netc.compiler.ops.params import BOOL, INT, PADS, PAIR, Enum, Param


@register
class Deconv(OpDef):
    name = "deconv"
    doc = ("transposed convolution: deconv(out, kernel, stride=1, pad=0, output_pad=0, "
           "groups=1, dilation=1, bias=true); out = (W−1)·S − 2P + d(F−1) + output_pad + 1")
    params = (
        Param("out", INT, domain=POSITIVE),
        Param("kernel", PAIR, domain=POSITIVE),
        Param("stride", PAIR, 1, domain=POSITIVE),
        Param("pad", PADS.or_words("same"), 0, domain=NON_NEGATIVE,
              doc="rows cut off the output: an int, [h, w], [top, left, bottom, right], or "
                  "same (the output is W·S, TensorFlow's rule)"),
        Param("output_pad", PAIR, 0, domain=NON_NEGATIVE,
              doc="rows added at the bottom/right; less than the stride or the dilation"),
        Param("groups", INT, 1, domain=POSITIVE),
        Param("dilation", PAIR, 1, domain=POSITIVE),
        Param("bias", BOOL, True),
        Param("init", Enum("kaiming", "xavier", "bilinear"), "kaiming",
              doc="bilinear: Caffe's bilinear filler in every kernel slice (FCN)"),
    )
    family = "conv"

    def normalise(self, a):
        if a.out % a.groups:
            raise ArgError(f"deconv: out={a.out} is not divisible by groups={a.groups}", "groups")
        extent = tuple(d * (k - 1) + 1 for k, d in zip(a.kernel, a.dilation))
        if a.pad == "same":
            # TensorFlow's conv2d_transpose SAME: the output is W·S. The full output is
            # (W−1)·S + F long; cut F − S, the extra row at the bottom/right, or, when the
            # kernel is shorter than the stride, append S − F rows (output_pad).
            if a.output_pad != (0, 0):
                raise ArgError("deconv: pad=same sets output_pad itself; give one of them",
                               "output_pad")
            cut = [max(f - s, 0) for f, s in zip(extent, a.stride)]
            a = a.replace(pad=(cut[0] // 2, cut[1] // 2, cut[0] - cut[0] // 2,
                               cut[1] - cut[1] // 2),
                          output_pad=tuple(max(s - f, 0) for f, s in zip(extent, a.stride)))
        pad = a.pad if len(a.pad) == 4 else (*a.pad, *a.pad)
        if pad[0] == pad[2] and pad[1] == pad[3]:
            a = a.replace(pad=pad[:2])
        for o, s, d in zip(a.output_pad, a.stride, a.dilation):
            if o >= max(s, d):
                raise ArgError(f"deconv: output_pad {list(a.output_pad)} must be smaller than "
                               f"the stride {list(a.stride)} or the dilation "
                               f"{list(a.dilation)}", "output_pad")
        return a

    def pads4(self, a) -> tuple[int, int, int, int]:
        return a.pad if len(a.pad) == 4 else (*a.pad, *a.pad)

    def infer_shape(self, a, ins):
        c, h, w = spatial(ins[0], "deconv")
        if c % a.groups:
            raise ShapeError(f"deconv: {c} input channels are not divisible by "
                             f"groups={a.groups}")
        t, left, b, r = self.pads4(a)
        outs = []
        for axis, size, k, s, pb, pa, d, o in zip(("height", "width"), (h, w), a.kernel,
                                                  a.stride, (t, left), (b, r), a.dilation,
                                                  a.output_pad):
            n = deconv_out(size, k, s, pb + pa, d, o)
            if n <= 0:
                raise ShapeError(
                    f"deconv: output {axis} is {n}: ({size} - 1)*{s} - ({pb} + {pa}) + "
                    f"{d}*({k} - 1) + {o} + 1 on input {c}x{h}x{w}; the pad cuts away the "
                    "whole output")
            outs.append(n)
        return (a.out, outs[0], outs[1])

    def geometry(self, a, ins):
        # One output pixel sees ceil(F/S) input pixels per axis; the jump cannot shrink in
        # integer geometry, so later fields are an upper bound.
        k = tuple(-(-(d * (kk - 1) + 1) // s) for kk, s, d in zip(a.kernel, a.stride, a.dilation))
        return k, (1, 1), (1, 1)

    def param_count(self, a, ins, out):
        return ins[0][0] * (a.out // a.groups) * a.kernel[0] * a.kernel[1] + (
            a.out if a.bias else 0)

    def macs(self, a, ins, out):
        # Every input value meets C_out/groups kernels (fvcore's count), including the products
        # that land in the cut-off padding.
        c, h, w = ins[0]
        return c * h * w * (a.out // a.groups) * a.kernel[0] * a.kernel[1]

    def init_weights(self, a, ins, out, rng):
        cin, per_group = ins[0][0], a.out // a.groups
        shape = (cin, per_group, a.kernel[0], a.kernel[1])
        area = a.kernel[0] * a.kernel[1]
        if a.init == "bilinear":
            weight = np.broadcast_to(bilinear_kernel(*a.kernel), shape).copy()
        elif a.init == "xavier":
            weight = xavier_uniform(rng, shape, per_group * area, cin // a.groups * area)
        else:  # He et al. over the fan of each output pixel, torch's fan_in of this layout
            weight = kaiming_normal(rng, shape, per_group * area)
        w = {"weight": weight}
        if a.bias:
            w["bias"] = np.zeros(a.out, np.float32)
        return w

    def seeded_moments(self, a, ins, out, w):
        if a.groups != 1:
            return ins[0]  # grouped: left to the input's moments (their channel average)
        wt = w["weight"].swapaxes(0, 1)  # (out, in, kh, kw), a conv's layout
        mu, var = of_weighted_sum(wt, w.get("bias"), 1, *ins[0])
        taps = a.stride[0] * a.stride[1]  # each output position meets 1/stride² of the taps
        return mu / taps, var / taps

    def to_torch(self, a, ins, out):
        import torch.nn as nn

        args = (ins[0][0], a.out, a.kernel, a.stride)
        kw = dict(output_padding=a.output_pad, groups=a.groups, bias=a.bias,
                  dilation=a.dilation)
        if len(a.pad) == 2:
            return nn.ConvTranspose2d(*args, padding=a.pad, **kw)
        from netc.compiler.lower_torch.layers import CroppedConvTranspose2d

        return CroppedConvTranspose2d(a.pad, *args, padding=0, **kw)

    def to_onnx(self, tape, node, inputs, weights):
        a = node.attrs
        ins = [inputs[0], tape.initializer(f"{node.name}.weight", weights[f"{node.name}.weight"])]
        if a.bias:
            ins.append(tape.initializer(f"{node.name}.bias", weights[f"{node.name}.bias"]))
        return tape.op("ConvTranspose", ins, name=node.name, group=a.groups,
                       output_padding=list(a.output_pad),
                       **onnx_window(a.kernel, a.stride, self.pads4(a), a.dilation))
