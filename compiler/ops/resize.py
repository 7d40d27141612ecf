"""Resizing ops of encoder–decoder nets: fixed upsampling, and crops of one branch to another.

- ``upsample(scale)`` / ``upsample(size=[h, w])``: nearest or bilinear interpolation (torch's
  ``nn.Upsample``, ONNX ``Resize``; Caffe's Interp is ``size=`` with ``align_corners=true``).
- ``resize[x, ref]``: ``x`` interpolated to ``ref``'s size (FPN's top-down path).
- ``crop[x, ref]``: ``x`` cut to ``ref``'s size (Caffe's Crop layer; the U-Net skip).
- :func:`fit_offsets`: where ``concat(fit=crop|pad)`` cuts or zero-pads each branch to one
  size, centred with the odd pixel at the bottom/right.
"""

from __future__ import annotations

import math

import numpy as np

from netc.compiler.ops.base import ArgError, ShapeError, fmt_shape, kind_of, spatial
from netc.compiler.ops.domains import MAX_SIZE, POSITIVE, POSITIVE_NUMBER, between
from netc.compiler.ops.opdef import OpDef, keep_moments, register
from netc.compiler.ops.params import BOOL, INT, INTS, PAIR, SCALE, Enum, Param


_MODE_PARAMS = (
    Param("mode", Enum("nearest", "bilinear"), "nearest"),
    Param("align_corners", BOOL, False,
          doc="bilinear only: corner pixels of input and output coincide (Caffe's Interp)"),
)


@register
class Upsample(OpDef):
    name = "upsample"
    doc = ("fixed upsampling: upsample(scale, mode=nearest|bilinear, align_corners=false) or "
           "upsample(size=[h, w], ...); the output is floor(H·scale) or the size")
    params = (
        Param("scale", SCALE, None, domain=POSITIVE_NUMBER,
              doc="a number or [h, w]; the output is floor(H·scale) x floor(W·scale)"),
        *_MODE_PARAMS,
        Param("size", PAIR, None, domain=POSITIVE, doc="the output's [h, w] instead of a scale"),
    )
    seeded_moments = keep_moments  # interpolation keeps the mean

    def normalise(self, a):
        if (a.scale is None) == (a.size is None):
            raise ArgError("upsample needs a scale or a size, not both: upsample(2) or "
                           "upsample(size=[h, w])", "size" if a.size is not None else "scale")
        if a.align_corners and a.mode != "bilinear":
            raise ArgError("upsample: align_corners=true is for mode=bilinear; nearest "
                           "upsampling has no corners to align", "align_corners")
        return a

    def infer_shape(self, a, ins):
        c, h, w = spatial(ins[0], "upsample")
        if a.size is not None:
            return (c, a.size[0], a.size[1])
        scaled = (h * a.scale[0], w * a.scale[1])
        if max(scaled) > MAX_SIZE:  # (and 32·1e308 is inf, which floor cannot take)
            raise ShapeError(f"upsample: scale {list(a.scale)} on {c}x{h}x{w} gives an axis "
                             f"past {MAX_SIZE:,}")
        out = (math.floor(scaled[0]), math.floor(scaled[1]))
        if min(out) <= 0:
            raise ShapeError(f"upsample: scale {list(a.scale)} on {c}x{h}x{w} gives "
                             f"{out[0]}x{out[1]}: floor(H·scale) must be at least 1")
        return (c, *out)

    def geometry(self, a, ins):
        # Bilinear reads two neighbours per axis; nearest reads one (pointwise).
        return ((2, 2), (1, 1), (1, 1)) if a.mode == "bilinear" else None

    def to_torch(self, a, ins, out):
        import torch.nn as nn

        # Both faces resize to the computed size, so sampling follows the size ratio
        # (torch's recompute_scale_factor=True); for an integer scale that is the scale.
        return nn.Upsample(size=tuple(out[1:]), mode=a.mode,
                           align_corners=a.align_corners if a.mode == "bilinear" else None)

    def to_onnx(self, tape, node, inputs, weights):
        return onnx_resize(tape, node.name, inputs[0], node.shape[1:], node.attrs.mode,
                           node.attrs.align_corners)


@register
class Crop(OpDef):
    name = "crop"
    doc = ("crop(offset=center, axis=2)[x, ref]: x cut to ref's size on the axes from axis on "
           "(1 channels, 2 height, 3 width; Caffe's Crop layer); offset is center, one number, "
           "or one per cropped axis")
    min_inputs = 2
    max_inputs = 2
    params = (
        Param("offset", INTS.or_words("center"), None, domain=between(0, 2**31 - 1),
              doc="center (the default: the odd pixel at the bottom/right), an int, or a list"),
        Param("axis", INT, 2, domain=between(1, 3, text="1 (channels), 2 (height) or 3 (width)"),
              doc="the first axis cropped, counted as Caffe and torch count (0 is the batch)"),
    )
    join_head = True
    seeded_moments = keep_moments  # x's moments (a channel crop: their average)

    def normalise(self, a):
        return a.replace(offset="center") if a.offset is None else a

    def offsets(self, a, ins) -> tuple[int, ...]:
        """The start of the kept window on each cropped axis; a ShapeError if it does not fit."""
        x, ref = ins
        if len(x) != len(ref):
            raise ShapeError(f"crop: cannot crop {fmt_shape(x)} to the size of "
                             f"{fmt_shape(ref)}: one is flat, the other a feature map")
        if a.axis > len(x):
            raise ShapeError(f"crop: axis {a.axis} is past the {len(x)} axes of {fmt_shape(x)}")
        first = a.axis - 1
        n = len(x) - first
        if a.offset == "center":
            offs = tuple((x[i] - ref[i]) // 2 for i in range(first, len(x)))
        elif len(a.offset) == 1:
            offs = a.offset * n
        elif len(a.offset) == n:
            offs = a.offset
        else:
            raise ShapeError(f"crop: {len(a.offset)} offsets for {n} cropped axes (axis="
                             f"{a.axis} on {fmt_shape(x)}); give one, or one per axis")
        for i, o in zip(range(first, len(x)), offs):
            if o < 0 or o + ref[i] > x[i]:
                raise ShapeError(
                    f"crop: cannot cut {fmt_shape(x)} to the size of {fmt_shape(ref)}: on axis "
                    f"{i + 1}, {ref[i]} values from offset {o} need {o + ref[i]}, there are "
                    f"{x[i]}")
        return offs

    def infer_shape(self, a, ins):
        self.offsets(a, ins)
        x, ref = ins
        return tuple(x[:a.axis - 1]) + tuple(ref[a.axis - 1:])

    def to_torch(self, a, ins, out):
        from netc.compiler.lower_torch.layers import Crop

        return Crop(a.axis, self.offsets(a, ins), out[a.axis - 1:])

    def to_onnx(self, tape, node, inputs, weights):
        a = node.attrs
        ins = [tape.shape(i) for i in inputs]
        offs = self.offsets(a, ins)
        axes = list(range(a.axis, len(ins[0]) + 1))
        ends = [o + n for o, n in zip(offs, node.shape[a.axis - 1:])]
        return onnx_slice(tape, node.name, inputs[0], list(offs), ends, axes)


@register
class Resize(OpDef):
    name = "resize"
    doc = ("resize(mode=nearest|bilinear, align_corners=false)[x, ref]: x interpolated to "
           "ref's height and width (FPN's top-down path, DeepLabv3+'s decoder)")
    min_inputs = 2
    max_inputs = 2
    params = _MODE_PARAMS
    join_head = True
    seeded_moments = keep_moments  # x's moments: interpolation keeps the mean

    def normalise(self, a):
        if a.align_corners and a.mode != "bilinear":
            raise ArgError("resize: align_corners=true is for mode=bilinear", "align_corners")
        return a

    def infer_shape(self, a, ins):
        c, _, _ = spatial(ins[0], "resize")
        _, h, w = spatial(ins[1], "resize (its reference)")
        return (c, h, w)

    def geometry(self, a, ins):
        return ((2, 2), (1, 1), (1, 1)) if a.mode == "bilinear" else None

    def to_torch(self, a, ins, out):
        from netc.compiler.lower_torch.layers import ResizeTo

        return ResizeTo(out[1:], a.mode, a.align_corners)

    def to_onnx(self, tape, node, inputs, weights):
        return onnx_resize(tape, node.name, inputs[0], node.shape[1:], node.attrs.mode,
                           node.attrs.align_corners)


def onnx_resize(tape, n: str, x: str, size, mode: str, align_corners: bool) -> str:
    """ONNX nodes resizing ``x`` to the spatial ``size`` as torch's ``F.interpolate`` does."""
    (_, h, w), (oh, ow) = tape.shape(x), size
    if mode == "nearest" and (oh % h or ow % w):
        # Resize computes dst / (out/in), torch dst · (in/out), in float32: they pick
        # different pixels for about 5% of ratios. Gather torch's own indices instead.
        rows = tape.constant(f"{n}.rows", nearest_indices(h, oh))
        cols = tape.constant(f"{n}.cols", nearest_indices(w, ow))
        y = tape.op("Gather", [x, rows], name=f"{n}/rows", axis=2)
        return tape.op("Gather", [y, cols], name=n, axis=3)
    if mode == "nearest":  # an integer ratio: src = floor(dst / scale), exactly
        modes = dict(mode="nearest", coordinate_transformation_mode="asymmetric",
                     nearest_mode="floor")
    else:  # torch's bilinear: src = (dst + 0.5)·in/out − 0.5, clamped at 0 (half_pixel)
        modes = dict(mode="linear", coordinate_transformation_mode=(
            "align_corners" if align_corners else "half_pixel"))
    sizes = tape.constant(f"{n}.sizes", np.array([oh, ow], np.int64))
    if tape.opset >= 18:  # Resize takes the axes it resizes from opset 18 on
        out = tape.op("Resize", [x, "", "", sizes], name=n, axes=[2, 3], **modes)
    else:  # before: a size for every axis, the batch and the channels read from x
        kept = onnx_slice(tape, f"{n}/kept", tape.op("Shape", [x], name=f"{n}/shape"), [0],
                          [2], [0])
        sizes = tape.op("Concat", [kept, sizes], name=f"{n}/sizes", axis=0)
        out = tape.op("Resize", [x, "", "", sizes], name=n, **modes)
    tape.declare(out, (tape.shape(x)[0], oh, ow))
    return out


def nearest_indices(size: int, out: int) -> np.ndarray:
    """The source pixel of each output pixel in torch's nearest upsampling, computed as torch
    computes it (float32): min(floor(dst · (in/out)), in − 1)."""
    scale = np.float32(size) / np.float32(out)
    dst = np.arange(out, dtype=np.float32)
    return np.minimum(np.floor(dst * scale).astype(np.int64), size - 1)


def fit_offsets(shape, target, how: str) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) to cut (``how="crop"``) or zero-pad (``"pad"``) a CxHxW
    ``shape`` to the spatial ``target``: centred, the odd pixel at the bottom/right (as
    U-Net's centre crop and TensorFlow's same padding)."""
    dh, dw = (abs(shape[1] - target[0]), abs(shape[2] - target[1]))
    return dh // 2, dw // 2, dh - dh // 2, dw - dw // 2


def fit_target(op: str, how: str, ins) -> tuple[int, int]:
    """The common spatial size of ``concat(fit=how)``: the smallest (crop) or largest (pad)
    height and width of the branches."""
    for i, s in enumerate(ins):
        if len(s) != 3:
            raise ShapeError(f"{op}(fit={how}): branch {i + 1} is {kind_of(s)}; fit needs "
                             "CxHxW feature maps")
    pick = min if how == "crop" else max
    return pick(s[1] for s in ins), pick(s[2] for s in ins)


def onnx_slice(tape, name: str, x: str, starts, ends, axes, node_name: str | None = None) -> str:
    """An ONNX Slice of ``x`` with constant bounds (named ``<name>.starts`` ...)."""
    def ints(key, values):
        return tape.constant(f"{name}.{key}", np.array(values, np.int64))
    return tape.op("Slice", [x, ints("starts", starts), ints("ends", ends), ints("axes", axes)],
                   name=node_name or name)
