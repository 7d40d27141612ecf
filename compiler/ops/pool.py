"""Pooling: max and average windows (floor or Caffe's ceil rounding), global and adaptive."""

from __future__ import annotations

import numpy as np

from netc.compiler.numerics.moments import of_maximum
from netc.compiler.ops.base import ArgError, spatial
from netc.compiler.ops.conv import normalise_pad, onnx_window, window_shape
from netc.compiler.ops.domains import NON_NEGATIVE, POSITIVE
from netc.compiler.ops.formulas import resolve_pads
from netc.compiler.ops.opdef import OpDef, keep_moments, register
from netc.compiler.ops.params import BOOL, PADS, PAIR, Param

_WINDOW_PARAMS = (
    Param("kernel", PAIR, domain=POSITIVE),
    Param("stride", PAIR, None, doc="defaults to the kernel size, as in PyTorch and Keras",
          domain=POSITIVE),
    Param("pad", PADS.or_words("same"), 0, domain=NON_NEGATIVE,
          doc="an int, [h, w], [top, left, bottom, right], or same (TensorFlow's rule)"),
    Param("ceil", BOOL, False, doc="round the output size up, as Caffe does by default"),
)


class _Window(OpDef):
    family = "pool"

    def normalise(self, a):
        if a.stride is None:
            a = a.replace(stride=a.kernel)
        a = normalise_pad(self.name, a)
        if a.pad == "same" or len(a.pad) == 4:
            if a.ceil:
                # Caffe's ceil rounding is defined for symmetric padding only.
                raise ArgError(f"{self.name}: ceil=true needs a symmetric pad; got pad="
                               + ("same" if a.pad == "same" else str(list(a.pad))), "ceil")
            if a.pad != "same" and any(p >= a.kernel[i % 2] for i, p in enumerate(a.pad)):
                raise ArgError(f"{self.name}: pad {list(a.pad)} reaches a whole kernel "
                               f"{list(a.kernel)}: a window would see only padding", "pad")
        elif any(2 * p > k for p, k in zip(a.pad, a.kernel)):
            raise ArgError(f"{self.name}: pad {a.pad} is more than half the kernel {a.kernel}",
                           "pad")
        return a

    def pads(self, a, shape) -> tuple[int, int, int, int]:
        """(top, left, bottom, right) on an input of ``shape``."""
        return resolve_pads(a.pad, shape[1:], a.kernel, a.stride)

    def infer_shape(self, a, ins):
        return window_shape(self.name, ins[0], a.kernel, a.stride, a.pad, (1, 1), a.ceil)

    def geometry(self, a, ins):
        return a.kernel, a.stride, (1, 1)


@register
class MaxPool(_Window):
    name = "maxpool"
    doc = "max pooling: maxpool(kernel, stride=kernel, pad=0, ceil=false)"
    params = _WINDOW_PARAMS

    def seeded_moments(self, a, ins, out, w):
        return of_maximum(a.kernel[0] * a.kernel[1], *ins[0])

    def to_torch(self, a, ins, out):
        import torch.nn as nn

        pads = self.pads(a, ins[0])
        if pads[:2] == pads[2:]:
            return nn.MaxPool2d(a.kernel, a.stride, pads[:2], ceil_mode=a.ceil)
        from netc.compiler.lower_torch.layers import PaddedPool

        return PaddedPool(pads, "max", a.kernel, a.stride)

    def to_onnx(self, tape, node, inputs, weights):
        a = node.attrs
        return tape.op("MaxPool", inputs, name=node.name, ceil_mode=int(a.ceil),
                       **onnx_window(a.kernel, a.stride, self.pads(a, tape.shape(inputs[0]))))


@register
class AvgPool(_Window):
    name = "avgpool"
    doc = "average pooling: avgpool(kernel, stride=kernel, pad=0, ceil=false, count_pad=true)"
    params = _WINDOW_PARAMS + (
        Param("count_pad", BOOL, True, doc="divide by the window including padding (Caffe)"),
    )
    seeded_moments = keep_moments  # the mean kept; the variance as if neighbours agreed

    def to_torch(self, a, ins, out):
        import torch.nn as nn

        pads = self.pads(a, ins[0])
        if pads[:2] == pads[2:]:
            return nn.AvgPool2d(a.kernel, a.stride, pads[:2], ceil_mode=a.ceil,
                                count_include_pad=a.count_pad)
        from netc.compiler.lower_torch.layers import PaddedPool

        return PaddedPool(pads, "avg" if a.count_pad else "avg_valid", a.kernel, a.stride)

    def to_onnx(self, tape, node, inputs, weights):
        a = node.attrs
        return tape.op("AveragePool", inputs, name=node.name, ceil_mode=int(a.ceil),
                       count_include_pad=int(a.count_pad),
                       **onnx_window(a.kernel, a.stride, self.pads(a, tape.shape(inputs[0]))))


@register
class GlobalAvgPool(OpDef):
    name = "gap"
    doc = "global average pooling: CxHxW -> Cx1x1"
    family = "pool"
    seeded_moments = keep_moments

    def infer_shape(self, a, ins):
        c, _, _ = spatial(ins[0], "gap")
        return (c, 1, 1)

    def geometry(self, a, ins):
        _, h, w = ins[0]
        return (h, w), (h, w), (1, 1)

    def to_torch(self, a, ins, out):
        import torch.nn as nn

        return nn.AdaptiveAvgPool2d(1)

    def to_onnx(self, tape, node, inputs, weights):
        return tape.op("GlobalAveragePool", inputs, name=node.name)


@register
class AdaptiveAvgPool(OpDef):
    name = "adaptive_avgpool"
    doc = "adaptive average pooling to a fixed size, as torchvision's AlexNet and VGG"
    params = (Param("size", PAIR, domain=POSITIVE),)
    family = "pool"
    seeded_moments = keep_moments

    def infer_shape(self, a, ins):
        c, h, w = spatial(ins[0], "adaptive_avgpool")
        return (c, a.size[0], a.size[1])

    def geometry(self, a, ins):
        _, h, w = ins[0]
        # Exact for the divisible case; an upper bound of the window otherwise.
        k = tuple(-(-n // s) + (1 if n % s else 0) for n, s in zip((h, w), a.size))
        st = tuple(max(n // s, 1) for n, s in zip((h, w), a.size))
        return k, st, (1, 1)

    def to_torch(self, a, ins, out):
        import torch.nn as nn

        return nn.AdaptiveAvgPool2d(a.size)

    def to_onnx(self, tape, node, inputs, weights):
        return _adaptive_onnx(tape, node, inputs)


def adaptive_matrix(size: int, out: int) -> np.ndarray:
    """(out, size) matrix whose rows average PyTorch's adaptive windows.

    Window i covers [floor(i*size/out), ceil((i+1)*size/out)), as ``nn.AdaptiveAvgPool2d``.
    """
    m = np.zeros((out, size), np.float64)
    for i in range(out):
        lo, hi = (i * size) // out, -(-((i + 1) * size) // out)
        m[i, lo:hi] = 1.0 / (hi - lo)
    return m


def _adaptive_onnx(tape, node, inputs):
    """Adaptive average pooling in ONNX, which has no such op.

    Equal windows (the size divides evenly) are an AveragePool; otherwise pooling is linear and
    separable, so Y = A_h · X · A_wᵀ with :func:`adaptive_matrix`: two MatMuls.
    """
    (_, h, w), (oh, ow) = tape.shape(inputs[0]), node.attrs.size
    if h % oh == 0 and w % ow == 0:
        k = (h // oh, w // ow)
        return tape.op("AveragePool", inputs, name=node.name, **onnx_window(k, k, (0, 0)))
    a_wt = tape.float_constant(f"{node.name}.cols", adaptive_matrix(w, ow).T)
    a_h = tape.float_constant(f"{node.name}.rows", adaptive_matrix(h, oh))
    x = tape.op("MatMul", [inputs[0], a_wt], name=f"{node.name}/cols")
    return tape.op("MatMul", [a_h, x], name=node.name)
