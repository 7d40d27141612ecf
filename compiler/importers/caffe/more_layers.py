"""Caffe layer types beyond the classic classification nets, one function per type.

Deconvolution, ConvolutionDepthwise (a fork), PReLU, Power, MVN, Interp (a fork: DeepLab,
PSPNet), ShuffleChannel (a fork: ShuffleNet), Crop, and the layers of SENet's and SSD's forks:
Axpy, Scale by a second blob, Normalize and Permute. Each reads its ``*_param`` message
(every field checked), computes the output shape the way Caffe does, and returns the netc
op text, as in :mod:`netc.compiler.importers.caffe.layers`. The layers that change how blobs connect
(Reshape, Slice, Eltwise with coeff, a Scale on its own, a Convolution with several bottoms)
are read in :mod:`netc.compiler.importers.caffe.net`.
"""

from __future__ import annotations

from netc.compiler.importers.caffe.fields import Fields, error
from netc.compiler.importers.caffe.layers import (
    CONV_FIELDS,
    LayerInfo,
    LayerKind,
    Mapped,
    Shape,
    _spatial,
    call,
    convolution,
    fmt_float,
    fmt_pair,
)
from netc.compiler.ops.base import fmt_shape
from netc.compiler.ops.formulas import deconv_out


def deconvolution(layer: LayerInfo, p: Fields, ins: list[Shape]) -> Mapped:
    """Caffe's Deconvolution: out = (W − 1)·S − 2P + D(K − 1) + 1, weights C_in x C_out/g."""
    c, h, w = _spatial(layer, ins[0])
    out = p.int("num_output", minimum=1)
    kernel = p.pair("kernel", None, minimum=1)
    if out is None or kernel is None:
        raise error(layer.span, f"{layer.what}: convolution_param needs num_output and "
                                "kernel_size")
    stride, pad = p.pair("stride", 1, minimum=1), p.pair("pad", 0)
    dilation, groups = p.pair("dilation", 1, minimum=1), p.int("group", 1, minimum=1)
    if c % groups or out % groups:
        raise error((p.field("group") or p).span, f"{layer.what}: group {groups} must divide "
                    f"the input channels ({c}) and num_output ({out})")
    size = [deconv_out(n, k, s, 2 * pd, d)
            for n, k, s, pd, d in zip((h, w), kernel, stride, pad, dilation)]
    if min(size) <= 0:
        raise error(layer.span, f"{layer.what}: the output would be {size[0]}x{size[1]}")
    text = call("deconv", str(out), fmt_pair(kernel),
                stride=fmt_pair(stride) if stride != (1, 1) else None,
                pad=fmt_pair(pad) if pad != (0, 0) else None,
                groups=str(groups) if groups != 1 else None,
                dilation=fmt_pair(dilation) if dilation != (1, 1) else None,
                bias=None if p.bool("bias_term", True) else "false")
    return Mapped([text], (out, size[0], size[1]))


def convolution_depthwise(layer: LayerInfo, p: Fields, ins: list[Shape]) -> Mapped:
    """A fork's ConvolutionDepthwise: a Convolution with one group per input channel."""
    c = _spatial(layer, ins[0])[0]
    given = p.int("group", None, minimum=1)
    if given not in (None, c):
        raise error(p.field("group").span, f"{layer.what}: a depthwise convolution has one "
                                           f"group per input channel ({c}); got group {given}")
    return convolution(layer, p, ins, groups=c)


def prelu(layer: LayerInfo, p: Fields, ins: list[Shape]) -> Mapped:
    shared = p.bool("channel_shared", False)
    return Mapped([call("prelu", shared="true" if shared else None)], ins[0])


def power(layer: LayerInfo, p: Fields, ins: list[Shape]) -> Mapped:
    """``(shift + scale·x)^power``; each argument written only where it is not the default."""
    values = {k: p.float(k, d) for k, d in (("power", 1.0), ("scale", 1.0), ("shift", 0.0))}
    args = {k: fmt_float(v) for k, v in values.items()
            if v != {"power": 1.0, "scale": 1.0, "shift": 0.0}[k]}
    return Mapped([call("power", **args)], ins[0])


def mvn(layer: LayerInfo, p: Fields, ins: list[Shape]) -> Mapped:
    across = p.bool("across_channels", False)
    if not across:
        _spatial(layer, ins[0])
    return Mapped([call("mvn", across_channels="true" if across else None,
                        normalize_variance=None if p.bool("normalize_variance", True)
                        else "false", eps=fmt_float(p.float("eps", 1e-9)))], ins[0])


def interp(layer: LayerInfo, p: Fields, ins: list[Shape]) -> Mapped:
    """The Interp layer of DeepLab's fork: bilinear with corners aligned, to a given size,
    ``zoom_factor`` z (H + (H−1)(z−1)) or ``shrink_factor`` s ((H−1)/s + 1)."""
    c, h, w = _spatial(layer, ins[0])
    if p.int("pad_beg", 0, minimum=None) or p.int("pad_end", 0, minimum=None):
        raise error(p.span, f"{layer.what}: netc imports Interp without pad_beg/pad_end")
    zoom, shrink = p.int("zoom_factor", None, minimum=1), p.int("shrink_factor", None, minimum=1)
    height, width = p.int("height", None, minimum=1), p.int("width", None, minimum=1)
    if height and width:
        size = (height, width)
    elif zoom or shrink:
        size = (h, w)
        if shrink:
            size = tuple((n - 1) // shrink + 1 for n in size)
        if zoom:
            size = tuple(n + (n - 1) * (zoom - 1) for n in size)
    else:
        raise error(p.span, f"{layer.what}: interp_param needs height and width, zoom_factor "
                            "or shrink_factor")
    return Mapped([call("upsample", size=fmt_pair(size), mode="bilinear",
                        align_corners="true")], (c, size[0], size[1]))


def shuffle_channel(layer: LayerInfo, p: Fields, ins: list[Shape]) -> Mapped:
    c = _spatial(layer, ins[0])[0]
    groups = p.int("group", 1, minimum=1)
    if c % groups:
        raise error(p.field("group").span, f"{layer.what}: group {groups} does not divide the "
                                           f"{c} channels")
    return Mapped([call("channel_shuffle", str(groups))], ins[0])


def crop(layer: LayerInfo, p: Fields, ins: list[Shape]) -> Mapped:
    """Caffe's Crop: bottom 0 cut to bottom 1's size on the axes from ``axis`` (default 2)."""
    axis, offsets = crop_offsets(layer, p, ins[0])
    return crop_at(layer, axis, offsets, ins)


def crop_offsets(layer: LayerInfo, p: Fields, x: Shape) -> tuple[int, list[int]]:
    """(axis, one offset per cropped axis) of ``crop_param``; axes count N C H W from 0."""
    axis = p.int("axis", 2, minimum=None)
    axis = axis + len(x) + 1 if axis < 0 else axis
    if not 1 <= axis <= len(x):
        raise error(layer.span, f"{layer.what}: axis {axis} on a {len(x) + 1}-axis blob")
    offsets = p.ints("offset")
    n = len(x) - axis + 1
    if len(offsets) not in (0, 1, n):
        raise error(p.span, f"{layer.what}: {len(offsets)} offsets for {n} cropped axes")
    # Caffe's offset defaults to 0 on every axis (netc's crop defaults to the centre).
    return axis, (offsets * n if len(offsets) == 1 else offsets) or [0] * n


def crop_at(layer: LayerInfo, axis: int, offs: list[int], ins: list[Shape]) -> Mapped:
    """netc's crop of bottom 0 to bottom 1's size at ``offs`` on the axes from ``axis``."""
    x, ref = ins
    out = list(x)
    for i, o in zip(range(axis - 1, len(x)), offs):
        if o + ref[i] > x[i]:
            raise error(layer.span, f"{layer.what}: offset {o} + {ref[i]} is past the size "
                                    f"{x[i]} of axis {i + 1}")
        out[i] = ref[i]
    text = call("crop", offset=f"[{', '.join(map(str, offs))}]",
                axis=str(axis) if axis != 2 else None)
    return Mapped([text], tuple(out), join=True)


# ---- SENet's and SSD's forks -----------------------------------------------------------------
def axpy(layer: LayerInfo, p: Fields, ins: list[Shape]) -> Mapped:
    """SENet's Axpy, ``a · x + y`` (bottoms in that order): ``a`` one value per channel of
    ``x`` (N x C x 1 x 1, or N x C), ``x`` and ``y`` of one shape (axpy_layer.cpp's checks)."""
    a, x, y = ins
    if x != y:
        raise error(layer.span, f"{layer.what}: x (bottom 2) is {fmt_shape(x)} and y (bottom 3) is "
                                f"{fmt_shape(y)}; Axpy adds them, so they must be of one shape")
    if a not in ((x[0],), (x[0], 1, 1)):
        raise error(layer.span, f"{layer.what}: a (bottom 1) is {fmt_shape(a)}; it must hold one "
                                f"value per channel of x: {x[0]}x1x1 (or {x[0]})")
    return Mapped(["axpy"], x, join=True)


SCALE_FIELDS = frozenset({"axis", "num_axes", "filler", "bias_term", "bias_filler"})


def scale_by_blob(layer: LayerInfo, p: Fields, ins: list[Shape]) -> Mapped:
    """Caffe's Scale with two bottoms, ``x · s`` (scale_layer.cpp): ``s``'s shape must equal
    ``x``'s from ``axis`` on. netc's shapes leave out the batch axis N, so only ``axis: 0``
    (the squeeze-and-excitation form: ``s`` is N x C after a Reshape) keeps the batch where
    it is; then ``s`` is C (a weight per channel) or all of ``x``, and ``mul`` broadcasts it.
    ``num_axes`` is ignored with two bottoms, as Caffe ignores it."""
    x, s = ins
    axis_field = p.field("axis")
    axis = p.int("axis", 1, minimum=None)
    axis = axis + len(x) + 1 if axis < 0 else axis
    if axis != 0:
        raise error((axis_field or p).span,
                    f"{layer.what}: a scale by a second blob along axis {axis} matches that "
                    "blob's batch axis with an axis of the first; netc keeps the batch axis "
                    "apart, so it imports axis: 0 (the scale N x C or the whole N x C x H x W)")
    if s not in ((x[0],), x):
        raise error(layer.span, f"{layer.what}: the scale (bottom 2) is {fmt_shape(s)} for a "
                                f"bottom of {fmt_shape(x)}; netc imports one value per channel "
                                f"({x[0]}, a Reshape of N x C x 1 x 1 to N x C) or one per value")
    if p.bool("bias_term", False):
        raise error(p.field("bias_term").span,
                    f"{layer.what}: a Scale by a second blob with bias_term learns a bias of "
                    "the scale's shape N x ..., which changes with the batch size; netc has no "
                    "op for it")
    return Mapped(["mul"], x, join=True)


NORM_FIELDS = frozenset({"across_spatial", "scale_filler", "channel_shared", "eps"})
FILLER_FIELDS = frozenset({"type", "value", "min", "max", "mean", "std", "sparse",
                           "variance_norm"})


def normalize(layer: LayerInfo, p: Fields, ins: list[Shape]) -> Mapped:
    """SSD's Normalize (normalize_layer.cpp): netc's ``normalize``, whose defaults are
    ``NormalizeParameter``'s (across_spatial and channel_shared true, eps 1e-10). A constant
    ``scale_filler`` (SSD's 20) becomes ``init``; it only sets the scale before training."""
    if len(ins[0]) not in (1, 3):
        raise error(layer.span, f"{layer.what} needs N x C x H x W or N x C; its bottom is "
                                f"N x {fmt_shape(ins[0])}")
    across = p.bool("across_spatial", True)
    shared = p.bool("channel_shared", True)
    eps = p.float("eps", 1e-10)
    if eps < 0:
        raise error(p.field("eps").span, f"{layer.what}: eps must not be negative; got {eps}")
    init = 1.0  # Caffe's constant 1 where the file gives no scale_filler
    filler = p.message_of("scale_filler")
    if filler is not None:
        f = Fields(filler, f"{layer.what} scale_filler", FILLER_FIELDS)
        if f.string("type", "constant") == "constant":
            init = f.float("value", 0.0)  # FillerParameter's value defaults to 0
    text = call("normalize", across_spatial=None if across else "false",
                channel_shared=None if shared else "false",
                eps=fmt_float(eps) if eps != 1e-10 else None,
                init=fmt_float(init) if init != 1.0 else None)
    return Mapped([text], ins[0])


def permute(layer: LayerInfo, p: Fields, ins: list[Shape]) -> Mapped:
    """SSD's Permute (permute_layer.cpp): the axes in ``order``, the ones it does not name
    after them in their order. netc's ``permute`` orders the axes after the batch axis, which
    must stay first (``order: 0 order: 2 order: 3 order: 1`` is ``permute([1, 2, 0])``)."""
    rank = len(ins[0]) + 1
    given = p.ints("order")
    order = list(given) + [i for i in range(rank) if i not in given]
    if any(o >= rank for o in given) or len(set(given)) != len(given):
        raise error(p.span, f"{layer.what}: order {given} must name distinct axes of the "
                            f"{rank}-axis bottom N x {fmt_shape(ins[0])} (0 .. {rank - 1})")
    if order[0] != 0:
        raise error(p.span, f"{layer.what}: order {given} moves the batch axis; netc keeps it "
                            "first")
    dims = [o - 1 for o in order[1:]]
    shape = tuple(ins[0][d] for d in dims)
    return Mapped([call("permute", "[" + ", ".join(map(str, dims)) + "]")], shape)


KINDS: dict[str, LayerKind] = {
    "Axpy": LayerKind(axpy, None, frozenset(), 3),
    # A Scale with one bottom is read by net.py (a BatchNorm's affine part, or netc's scale);
    # this is the one with two.
    "Scale": LayerKind(scale_by_blob, "scale_param", SCALE_FIELDS, 2),
    "Normalize": LayerKind(normalize, "norm_param", NORM_FIELDS),
    "Permute": LayerKind(permute, "permute_param", frozenset({"order"})),
    "Deconvolution": LayerKind(deconvolution, "convolution_param", CONV_FIELDS),
    "ConvolutionDepthwise": LayerKind(convolution_depthwise, "convolution_param", CONV_FIELDS),
    "DepthwiseConvolution": LayerKind(convolution_depthwise, "convolution_param", CONV_FIELDS),
    "PReLU": LayerKind(prelu, "prelu_param", frozenset({"filler", "channel_shared"})),
    "Power": LayerKind(power, "power_param", frozenset({"power", "scale", "shift"})),
    "MVN": LayerKind(mvn, "mvn_param",
                     frozenset({"normalize_variance", "across_channels", "eps"})),
    "Interp": LayerKind(interp, "interp_param", frozenset({
        "height", "width", "zoom_factor", "shrink_factor", "pad_beg", "pad_end"})),
    "ShuffleChannel": LayerKind(shuffle_channel, "shuffle_channel_param",
                                frozenset({"group"})),
    "Crop": LayerKind(crop, "crop_param", frozenset({"axis", "offset"}), 2),
}

# Layers netc refuses by name: what they are, so the message can say why.
REFUSED = {
    "PriorBox": "an SSD detection head (prior boxes)",
    "DetectionOutput": "an SSD detection head (box decoding and non-maximum suppression)",
    "ROIPooling": "a Fast/Faster R-CNN region-of-interest pooling",
    "PSROIPooling": "an R-FCN position-sensitive region-of-interest pooling",
    "Proposal": "a Faster R-CNN region proposal layer",
    "Python": "a Python layer, which runs user code that netc cannot see",
}
