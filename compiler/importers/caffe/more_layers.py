"""Caffe layer types beyond the classic classification nets, one function per type.

Deconvolution, ConvolutionDepthwise (a fork), PReLU, Power, MVN, Interp (a fork: DeepLab,
PSPNet), ShuffleChannel (a fork: ShuffleNet) and Crop. Each reads its ``*_param`` message
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


KINDS: dict[str, LayerKind] = {
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
