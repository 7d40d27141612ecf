"""Channel ops of ShuffleNet and Caffe's Slice: a range of channels, an equal part, a shuffle.

ShuffleNet v2's unit splits the channels in two halves, sends one through convolutions and
concatenates them again; each half is a single-input op, so the unit is a plain join::

    def unit(c) = concat[chunk(2, 0), chunk(2, 1) -> conv(c // 2, 1) -> ...] -> channel_shuffle(2)

``slice`` and ``chunk`` count axes as torch and Caffe do (1 = channels, 2 = height, 3 = width;
0 is the batch) and take Python's half-open ranges, negative indices counting from the end.
"""

from __future__ import annotations

import numpy as np

from netc.compiler.ops.base import ArgError, ShapeError, fmt_shape, spatial
from netc.compiler.ops.domains import INTEGER, NON_NEGATIVE, POSITIVE, between
from netc.compiler.ops.opdef import OpDef, keep_moments, register
from netc.compiler.ops.params import INT, Param
from netc.compiler.ops.resize import onnx_slice

_AXIS = Param("axis", INT, 1, domain=between(1, 3, text="1 (channels), 2 (height) or 3 (width)"),
              doc="the axis cut, counted as torch and Caffe count (0 is the batch)")


class _Range(OpDef):
    """An op keeping indices [start, end) of one axis; subclasses say which."""

    seeded_moments = keep_moments  # a channel range: their average (the driver's rule)

    def bounds(self, a, shape) -> tuple[int, int]:
        raise NotImplementedError

    def _length(self, a, shape) -> int:
        if a.axis > len(shape):
            raise ShapeError(f"{self.name}: axis {a.axis} is past the {len(shape)} axes of "
                             f"{fmt_shape(shape)}")
        return shape[a.axis - 1]

    def infer_shape(self, a, ins):
        start, end = self.bounds(a, ins[0])
        out = list(ins[0])
        out[a.axis - 1] = end - start
        return tuple(out)

    def to_torch(self, a, ins, out):
        from netc.compiler.lower_torch.layers import Slice

        return Slice(a.axis, *self.bounds(a, ins[0]))

    def to_onnx(self, tape, node, inputs, weights):
        start, end = self.bounds(node.attrs, tape.shape(inputs[0]))
        return onnx_slice(tape, node.name, inputs[0], [start], [end], [node.attrs.axis])


@register
class Slice(_Range):
    name = "slice"
    doc = ("slice(start, end=none, axis=1): indices start .. end−1 of an axis, channels by "
           "default (Caffe's Slice; Python's negative indices count from the end)")
    params = (
        Param("start", INT, domain=INTEGER),
        Param("end", INT, None, domain=INTEGER, doc="none: to the end of the axis"),
        _AXIS,
    )

    def bounds(self, a, shape):
        n = self._length(a, shape)
        start = a.start + n if a.start < 0 else a.start
        end = n if a.end is None else (a.end + n if a.end < 0 else a.end)
        if not 0 <= start < end <= n:
            shown = "" if a.end is None else f", {a.end}"
            raise ShapeError(f"{self.name}({a.start}{shown}) on {fmt_shape(shape)}: axis "
                             f"{a.axis} has {n} indices; the range {start}..{end - 1} is "
                             f"{'empty' if start >= end else 'outside it'}")
        return start, end


@register
class Chunk(_Range):
    name = "chunk"
    doc = ("chunk(parts, index, axis=1): part `index` (from 0, as torch.chunk) of `parts` "
           "equal parts of an axis, channels by default (ShuffleNet v2's channel split)")
    params = (
        Param("parts", INT, domain=POSITIVE),
        Param("index", INT, domain=NON_NEGATIVE, doc="which part, counting from 0"),
        _AXIS,
    )

    def normalise(self, a):
        if a.index >= a.parts:
            raise ArgError(f"chunk: index {a.index} is not one of the {a.parts} parts "
                           f"(0 .. {a.parts - 1})", "index")
        return a

    def bounds(self, a, shape):
        n = self._length(a, shape)
        if n % a.parts:
            raise ShapeError(f"chunk: {n} indices of axis {a.axis} ({fmt_shape(shape)}) do "
                             f"not split into {a.parts} equal parts")
        size = n // a.parts
        return a.index * size, (a.index + 1) * size


@register
class ChannelShuffle(OpDef):
    name = "channel_shuffle"
    doc = ("channel_shuffle(groups): channels seen as groups x C/groups, transposed "
           "(ShuffleNet; Caffe's ShuffleChannel)")
    params = (Param("groups", INT, domain=POSITIVE),)
    seeded_moments = keep_moments  # channels reordered: their average (the driver's rule)

    def infer_shape(self, a, ins):
        c, h, w = spatial(ins[0], "channel_shuffle")
        if c % a.groups:
            raise ShapeError(f"channel_shuffle: {c} channels ({fmt_shape(ins[0])}) are not "
                             f"divisible by groups={a.groups}")
        return ins[0]

    def to_torch(self, a, ins, out):
        from netc.compiler.lower_torch.layers import ChannelShuffle

        return ChannelShuffle(a.groups)

    def to_onnx(self, tape, node, inputs, weights):
        # Reshape to (N, g, C/g, H, W), swap the two channel axes, reshape back; a 0 in a
        # Reshape shape keeps that axis of the input: the dynamic batch.
        (c, h, w), g, n = tape.shape(inputs[0]), node.attrs.groups, node.name
        split = tape.constant(f"{n}.split", np.array([0, g, c // g, h, w], np.int64))
        merged = tape.constant(f"{n}.merged", np.array([0, c, h, w], np.int64))
        y = tape.op("Reshape", [inputs[0], split], name=f"{n}/split")
        y = tape.op("Transpose", [y], name=f"{n}/transpose", perm=[0, 2, 1, 3, 4])
        return tape.op("Reshape", [y, merged], name=n)
