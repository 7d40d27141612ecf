"""The Caffe layers that change how blobs connect: Reshape, Slice, Eltwise with ``coeff``, and a
Convolution with several bottoms. A mixin of :class:`netc.compiler.importers.caffe.net.NetReader`.

The rules:

1. **Reshape** computes Caffe's new shape (``0`` copies an axis, ``-1`` is inferred, ``axis``
   and ``num_axes`` choose the axes replaced). When the batch axis keeps its size N, the result
   is netc's ``reshape`` to the rest (or nothing, when the shape does not change).
2. A Reshape that moves values across the batch axis (N x ... to M x ..., as the OpenCV test
   nets do) cannot be a netc op, whose shapes exclude the batch. The blob becomes a *view*: the
   same node, with Caffe's shape noted. Reshape keeps C order, so an element-wise layer
   (Eltwise) on views of the same shape computes on the nodes themselves, and a Reshape back
   to N x ... reshapes the node. Any other layer reading a view is an error naming it.
3. **Slice** with n tops is n netc ``slice`` nodes of the same bottom, labelled by the tops
   (``slice_point`` or, without it, n equal parts).
4. **Eltwise SUM with coeff** c_i is an ``add`` join whose branches are ``power(scale=c_i)``
   (no op for c_i = 1).
5. A **Convolution with n bottoms and n tops** applies one set of weights to each pair. netc
   writes n convs labelled ``name``, ``name_2``, ...; ``ImportedNet.shared`` records that the
   extra ones take the Caffe layer's weights, which the caffemodel import follows.
"""

from __future__ import annotations

import math

from netc.compiler.importers.caffe import layers
from netc.compiler.importers.caffe.fields import Fields, error
from netc.compiler.importers.caffe.textformat import Message

Shape = tuple[int, ...]


def _dims(shape: Shape) -> str:
    return "x".join(map(str, shape))


class Reshaping:
    """Methods of NetReader for the layers of the module docstring (it supplies ``blobs``,
    ``views``, ``batch``, ``add_node``, ``bottom``, ``label``, ``labels`` and ``net``)."""

    # ---- rule 1 and 2 ----------------------------------------------------------------------
    def reshape_layer(self, info: layers.LayerInfo, fields: Fields) -> None:
        (blob, span), = self._one(info, fields.strings("bottom"), "bottom")
        (top, _), = self._one(info, fields.strings("top"), "top")
        node = self.bottom(blob, span)
        full = self.views.get(blob, (self.batch, *node.shape))
        p = Fields(fields.message_of("reshape_param") or Message((), info.span),
                   f"{info.what} reshape_param", frozenset({"shape", "axis", "num_axes"}))
        shape_msg = p.message_of("shape")
        dims = Fields(shape_msg, "shape", frozenset({"dim"})).ints("dim", minimum=None) \
            if shape_msg is not None else []
        new = self._caffe_shape(info, p, full, dims)
        if new[0] != self.batch:  # rule 2: a view
            self.blobs[top] = node
            self.views[top] = new
            return
        self.views.pop(top, None)
        per_sample = new[1:]
        if not 1 <= len(per_sample) <= 3:
            raise error(info.span, f"{info.what}: the shape {_dims(new)} has {len(new)} axes; "
                                   "netc's shapes have 1 to 3 besides the batch")
        if per_sample == node.shape:
            self.blobs[top] = node
            return
        call = layers.call("reshape", "[" + ", ".join(map(str, per_sample)) + "]")
        self.blobs[top] = self.add_node([node], [call], self.label(info.name), per_sample,
                                        info.span, caffe_name=info.name)

    @staticmethod
    def _caffe_shape(info, p: Fields, full: Shape, dims: list[int]) -> Shape:
        """Caffe's ReshapeLayer::Reshape: ``dims`` replace the axes [axis, axis + num_axes)."""
        rank = len(full)
        axis = p.int("axis", 0, minimum=None)
        axis = axis + rank + 1 if axis < 0 else axis
        num = p.int("num_axes", -1, minimum=-1)
        end = rank if num == -1 else axis + num
        if not 0 <= axis <= end <= rank:
            raise error(p.span, f"{info.what}: axis {axis} and num_axes {num} do not fit a "
                                f"{rank}-axis blob {_dims(full)}")
        if dims.count(-1) > 1 or any(d < -1 for d in dims):
            raise error(p.span, f"{info.what}: shape dims are positive, 0 (copy) or one -1")
        out = [full[axis + i] if d == 0 else d for i, d in enumerate(dims)]
        if any(d == 0 and axis + i >= rank for i, d in enumerate(dims)):
            raise error(p.span, f"{info.what}: a 0 dim copies an axis {_dims(full)} lacks")
        out = list(full[:axis]) + out + list(full[end:])
        total, known = math.prod(full), math.prod(d for d in out if d != -1)
        if -1 in out:
            if known == 0 or total % known:
                raise error(p.span, f"{info.what}: {_dims(full)} ({total} values) does not "
                                    f"divide into {dims}")
            out = [total // known if d == -1 else d for d in out]
        elif known != total:
            raise error(p.span, f"{info.what}: {_dims(full)} holds {total} values; the shape "
                                f"{_dims(tuple(out))} holds {known}")
        return tuple(out)

    def no_views(self, info, fields: Fields) -> None:
        """Rule 2: only Eltwise and Reshape may read a blob reshaped across the batch axis."""
        for blob, span in fields.strings("bottom"):
            if blob in self.views:
                raise error(span, f"{info.what} reads {blob!r}, which a Reshape made "
                                  f"{_dims(self.views[blob])} from a batch of {self.batch}; "
                                  "netc keeps the batch axis, so only element-wise layers and "
                                  "a Reshape back to the batch may read it")

    # ---- rule 4 ----------------------------------------------------------------------------
    def eltwise_bottoms(self, info, fields: Fields, bottoms: list) -> list:
        names = [b for b, _ in fields.strings("bottom")]
        views = {self.views.get(b) for b in names}
        if len(views) > 1:
            raise error(info.span, f"{info.what}: its bottoms are reshaped differently: "
                                   + ", ".join(_dims(v) if v else "as computed" for v in views))
        if views != {None} and len({b.shape for b in bottoms}) > 1:
            raise error(info.span, f"{info.what}: the nodes under its reshaped bottoms differ "
                                   "in shape")
        p = fields.message_of("eltwise_param")
        coeffs = Fields(p, "eltwise_param", layers.KINDS["Eltwise"].fields).floats("coeff") \
            if p is not None else []
        if len(coeffs) != len(bottoms) or all(c == 1 for c in coeffs):
            return bottoms
        out = []
        for i, (node, c) in enumerate(zip(bottoms, coeffs)):
            if c == 1:
                out.append(node)
                continue
            call = layers.call("power", scale=layers.fmt_float(c))
            label = self.labels.make(f"{info.name}_coeff{i + 1}")
            out.append(self.add_node([node], [call], label, node.shape, info.span))
        return out

    def keep_view(self, fields: Fields, top: str) -> None:
        for blob, _ in fields.strings("bottom"):
            if blob in self.views:
                self.views[top] = self.views[blob]
                return
        self.views.pop(top, None)

    # ---- rule 3 ----------------------------------------------------------------------------
    def slice_layer(self, info, fields: Fields) -> None:
        (blob, span), = self._one(info, fields.strings("bottom"), "bottom")
        tops = fields.strings("top")
        node = self.bottom(blob, span)
        self.no_views(info, fields)
        p = Fields(fields.message_of("slice_param") or Message((), info.span),
                   f"{info.what} slice_param", frozenset({"axis", "slice_point", "slice_dim"}))
        axis = p.int("axis", None, minimum=None)
        axis = p.int("slice_dim", 1, minimum=None) if axis is None else axis
        axis = axis + len(node.shape) + 1 if axis < 0 else axis
        if not 1 <= axis <= len(node.shape):
            raise error(p.span, f"{info.what}: netc slices an axis after the batch (1 .. "
                                f"{len(node.shape)}); got {axis}")
        size = node.shape[axis - 1]
        points = p.ints("slice_point")
        if not points:
            if not tops or size % len(tops):
                raise error(info.span, f"{info.what}: {len(tops)} tops do not split {size} "
                                       "evenly; give slice_point")
            points = [size // len(tops) * k for k in range(1, len(tops))]
        bounds = [0, *points, size]
        if len(points) != len(tops) - 1 or any(a >= b for a, b in zip(bounds, bounds[1:])):
            raise error(p.span, f"{info.what}: slice_point {points} must rise inside "
                                f"0 .. {size} and give {len(tops)} parts")
        for (top, _), start, end in zip(tops, bounds, bounds[1:]):
            shape = list(node.shape)
            shape[axis - 1] = end - start
            call = layers.call("slice", str(start), str(end),
                               axis=str(axis) if axis != 1 else None)
            self.blobs[top] = self.add_node([node], [call], self.label(top), tuple(shape),
                                            info.span, caffe_name=info.name)

    # ---- rule 5 ----------------------------------------------------------------------------
    def shared_convolution(self, info, fields: Fields, kind, bottoms: list, tops: list) -> None:
        if len(tops) != len(bottoms):
            raise error(info.span, f"{info.what}: {len(bottoms)} bottoms need as many tops; "
                                   f"got {len(tops)}")
        self.no_views(info, fields)
        params = layers.param_message(kind, info, fields.message_of(kind.param))
        first = None
        for i, (node, (top, _)) in enumerate(zip(bottoms, tops)):
            mapped = kind.mapping(info, params, [node.shape])
            label = self.label(info.name) if i == 0 else self.labels.make(
                f"{info.name}_{i + 1}")
            if i:
                self.net.shared[label] = first
            else:
                first = label
            self.blobs[top] = self.add_node([node], mapped.calls, label, mapped.shape,
                                            info.span, caffe_name=info.name)

    @staticmethod
    def _one(info, items: list, what: str) -> list:
        if len(items) != 1:
            raise error(info.span, f"{info.what} takes one {what}; got {len(items)}")
        return items
