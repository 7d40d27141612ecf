"""Caffe layer types mapped to netc ops: one function per type, named like the type.

Each function reads its ``*_param`` message (every field checked by :class:`Fields`), computes
the output shape the way Caffe does, and returns the netc op text. Shapes are ``(C, H, W)`` for
one sample or ``(N,)`` for a flat vector, as in netc. A layer that netc cannot express exactly
is a located diagnostic, never an approximation.

The rules that need care:

1. Convolution rounds down: ``(W + 2P - (D(K-1)+1)) // S + 1``.
2. Pooling rounds up by default (``round_mode: CEIL``) and Caffe drops a last window that would
   start in the right padding, but only when ``pad > 0``. netc's ``ceil=true`` (like PyTorch)
   drops it whatever the padding; the two differ only when ``pad == 0`` and the stride is larger
   than the kernel, and that case is reported rather than imported wrongly.
3. Pooling stride defaults to 1 in Caffe, to the kernel in netc: the stride is always written.
4. LRN: Caffe's ``x / (k + alpha/n * sum x^2)^beta`` is netc's ``lrn`` formula; Caffe's alpha
   defaults to 1, netc's to 1e-4, so alpha is always written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from netc.compiler.importers.caffe.fields import Fields, error
from netc.compiler.importers.caffe.textformat import Message
from netc.compiler.ops.formulas import caffe_pool_size, window_out
from netc.dsl.diagnostics import Span

Shape = tuple[int, ...]


@dataclass
class Mapped:
    """What one Caffe layer becomes: netc op calls applied in order, or a join of its bottoms.

    The last call is the layer's own op and carries the layer's label; a call before it (the
    ``flatten`` in front of an ``fc``) is a helper.
    """

    calls: list[str]
    shape: Shape
    join: bool = False


@dataclass
class LayerInfo:
    """The parts of a layer every mapping needs: its name and type for messages, its span."""

    name: str
    type: str
    span: Span

    @property
    def what(self) -> str:
        return f"layer {self.name!r} ({self.type})"


# ---- formatting ------------------------------------------------------------------------------
def fmt_pair(p: tuple[int, int]) -> str:
    return str(p[0]) if p[0] == p[1] else f"[{p[0]}, {p[1]}]"


def fmt_float(x: float) -> str:
    """A float in netc's syntax: ``0.5``, ``1.0``, ``0.0001``, ``1e-05``."""
    if x == int(x) and abs(x) < 1e15:
        return f"{int(x)}.0"
    return repr(float(x))


def call(op: str, *args: str, **kwargs: str | None) -> str:
    """``conv(64, 3, stride=2)``: positional texts, then keyword texts that are not None."""
    parts = list(args) + [f"{k}={v}" for k, v in kwargs.items() if v is not None]
    return f"{op}({', '.join(parts)})" if parts else op


def _spatial(layer: LayerInfo, shape: Shape) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise error(layer.span, f"{layer.what} needs a CxHxW feature map; its bottom is a flat "
                                f"vector of {shape[0]}")
    return shape  # type: ignore[return-value]


# ---- weight layers ---------------------------------------------------------------------------
CONV_FIELDS = frozenset({
    "num_output", "bias_term", "pad", "pad_h", "pad_w", "kernel_size", "kernel_h", "kernel_w",
    "stride", "stride_h", "stride_w", "dilation", "group", "weight_filler", "bias_filler",
    "engine", "axis", "force_nd_im2col",
})


def convolution(layer: LayerInfo, p: Fields, ins: list[Shape],
                groups: int | None = None) -> Mapped:
    """Caffe's Convolution; ``groups`` overrides ``group`` (a fork's depthwise layer)."""
    c, h, w = _spatial(layer, ins[0])
    out = p.int("num_output", minimum=1)
    if out is None:
        raise error(layer.span, f"{layer.what}: convolution_param needs num_output")
    kernel = p.pair("kernel", None, minimum=1)
    if kernel is None:
        raise error(p.span, f"{layer.what}: convolution_param needs kernel_size "
                            "(or kernel_h and kernel_w)")
    stride = p.pair("stride", 1, minimum=1)
    pad = p.pair("pad", 0)
    dilation = p.pair("dilation", 1, minimum=1)
    groups = groups or p.int("group", 1, minimum=1)
    if p.int("axis", 1, minimum=None) != 1:
        raise error(p.field("axis").span, f"{layer.what}: netc convolves over axis 1 only")
    if c % groups or out % groups:
        raise error((p.field("group") or p).span, f"{layer.what}: group {groups} must divide "
                    f"the input channels ({c}) and num_output ({out})")
    size = []
    for axis, n, k, s, pd, d in zip(("height", "width"), (h, w), kernel, stride, pad, dilation):
        o = window_out(n, k, s, pd, d)
        if o <= 0:
            raise error(layer.span, f"{layer.what}: output {axis} is {o}: "
                                    f"({n} + 2*{pd} - {d * (k - 1) + 1})/{s} + 1")
        size.append(o)
    text = call("conv", str(out), fmt_pair(kernel),
                stride=fmt_pair(stride) if stride != (1, 1) else None,
                pad=fmt_pair(pad) if pad != (0, 0) else None,
                dilation=fmt_pair(dilation) if dilation != (1, 1) else None,
                groups=str(groups) if groups != 1 else None,
                bias=None if p.bool("bias_term", True) else "false")
    return Mapped([text], (out, size[0], size[1]))


IP_FIELDS = frozenset({"num_output", "bias_term", "weight_filler", "bias_filler", "axis",
                       "transpose"})


def inner_product(layer: LayerInfo, p: Fields, ins: list[Shape]) -> Mapped:
    out = p.int("num_output", minimum=1)
    if out is None:
        raise error(layer.span, f"{layer.what}: inner_product_param needs num_output")
    if p.bool("transpose", False):
        raise error(p.field("transpose").span, f"{layer.what}: netc's fc stores its weight as "
                                               "out x in; a transposed InnerProduct is not read")
    rank = len(ins[0]) + 1  # with the batch axis, as Caffe counts
    axis_field = p.field("axis")
    axis = p.int("axis", 1, minimum=None)
    axis = axis + rank if axis < 0 else axis
    if not 1 <= axis < rank:
        raise error(axis_field.span, f"{layer.what}: axis {axis} of a {rank}-axis blob; netc "
                                     f"keeps the batch axis 0, so axis is 1 .. {rank - 1}")
    bias = None if p.bool("bias_term", True) else "false"
    if axis > 1:  # the axes before `axis` are kept: fc_axis
        return Mapped([call("fc_axis", str(out), axis=str(axis), bias=bias)],
                      tuple(ins[0][: axis - 1]) + (out,))
    text = call("fc", str(out), bias=bias)
    calls = ["flatten", text] if len(ins[0]) != 1 else [text]  # Caffe flattens implicitly
    return Mapped(calls, (out,))


# ---- pooling ---------------------------------------------------------------------------------
POOL_FIELDS = frozenset({
    "pool", "pad", "pad_h", "pad_w", "kernel_size", "kernel_h", "kernel_w", "stride",
    "stride_h", "stride_w", "engine", "global_pooling", "round_mode",
    "ceil_mode",  # a widely used fork's spelling of round_mode (true = CEIL)
})


def pooling(layer: LayerInfo, p: Fields, ins: list[Shape]) -> Mapped:
    c, h, w = _spatial(layer, ins[0])
    kind = p.enum("pool", "MAX", ("MAX", "AVE", "STOCHASTIC"))
    if kind == "STOCHASTIC":
        raise error(p.field("pool").span, f"{layer.what}: netc has no stochastic pooling")
    if p.bool("global_pooling", False):
        if kind == "AVE":
            return Mapped(["gap"], (c, 1, 1))
        return Mapped([call("maxpool", fmt_pair((h, w)))], (c, 1, 1))
    kernel = p.pair("kernel", None, minimum=1, repeated=False)
    if kernel is None:
        raise error(p.span, f"{layer.what}: pooling_param needs kernel_size "
                            "(or kernel_h and kernel_w, or global_pooling: true)")
    stride = p.pair("stride", 1, minimum=1, repeated=False)  # Caffe's default stride is 1
    pad = p.pair("pad", 0, repeated=False)
    if p.field("round_mode") and p.field("ceil_mode"):
        raise error(p.field("ceil_mode").span, f"{layer.what}: give round_mode or ceil_mode "
                                               "(a fork's spelling of it), not both")
    if p.field("ceil_mode"):
        ceil = p.bool("ceil_mode", True)
    else:
        ceil = p.enum("round_mode", "CEIL", ("CEIL", "FLOOR")) == "CEIL"
    size, exact = [], True
    for axis, n, k, s, pd in zip(("height", "width"), (h, w), kernel, stride, pad):
        if pd >= k:
            raise error(p.span, f"{layer.what}: pad {pd} is not smaller than the kernel {k} "
                                "(Caffe refuses this too)")
        caffe = caffe_pool_size(n, k, s, pd, ceil)
        if caffe <= 0:
            raise error(layer.span, f"{layer.what}: output {axis} is {caffe}: "
                                    f"({n} + 2*{pd} - {k})/{s} + 1")
        # netc's pools (as PyTorch's) allow at most half the kernel as padding, and drop a
        # last ceil window that starts past the input even with pad 0; Caffe does neither.
        exact &= 2 * pd <= k and caffe == window_out(n, k, s, pd, 1, ceil)
        size.append(caffe)
    if not exact:  # Caffe's rules exactly (compiler/ops/caffe_pool.py)
        text = call("caffe_pool", fmt_pair(kernel), stride=fmt_pair(stride),
                    pad=fmt_pair(pad) if pad != (0, 0) else None,
                    mode="ave" if kind == "AVE" else None, ceil=None if ceil else "false")
        return Mapped([text], (c, size[0], size[1]))
    op = "maxpool" if kind == "MAX" else "avgpool"
    text = call(op, fmt_pair(kernel),
                stride=fmt_pair(stride) if stride != kernel else None,
                pad=fmt_pair(pad) if pad != (0, 0) else None,
                ceil="true" if ceil else None)
    return Mapped([text], (c, size[0], size[1]))


# ---- pointwise and normalisation -------------------------------------------------------------
def relu(layer: LayerInfo, p: Fields, ins: list[Shape]) -> Mapped:
    slope = p.float("negative_slope", 0.0)
    return Mapped([call("leaky_relu", fmt_float(slope)) if slope else "relu"], ins[0])


def simple(op: str) -> Callable[[LayerInfo, Fields, list[Shape]], Mapped]:
    """A layer that becomes one netc op with no arguments (Sigmoid, TanH)."""

    def mapping(layer: LayerInfo, p: Fields, ins: list[Shape]) -> Mapped:
        return Mapped([op], ins[0])

    return mapping


def elu(layer: LayerInfo, p: Fields, ins: list[Shape]) -> Mapped:
    alpha = p.float("alpha", 1.0)
    return Mapped([call("elu", fmt_float(alpha)) if alpha != 1 else "elu"], ins[0])


def dropout(layer: LayerInfo, p: Fields, ins: list[Shape]) -> Mapped:
    ratio = p.float("dropout_ratio", 0.5)
    if not 0 <= ratio < 1:
        raise error(p.field("dropout_ratio").span, f"{layer.what}: dropout_ratio must be in "
                                                   f"[0, 1); got {ratio}")
    return Mapped([call("dropout", fmt_float(ratio))], ins[0])


def softmax(layer: LayerInfo, p: Fields, ins: list[Shape]) -> Mapped:
    if p.int("axis", 1, minimum=None) != 1:
        raise error(p.field("axis").span, f"{layer.what}: netc's softmax runs over axis 1 only")
    return Mapped(["softmax"], ins[0])


def lrn(layer: LayerInfo, p: Fields, ins: list[Shape]) -> Mapped:
    _spatial(layer, ins[0])
    region = p.enum("norm_region", "ACROSS_CHANNELS", ("ACROSS_CHANNELS", "WITHIN_CHANNEL"))
    size = p.int("local_size", 5, minimum=1)
    if region == "WITHIN_CHANNEL":  # Caffe ignores k here: x·(1 + alpha·avg(x²))^-beta
        if size % 2 == 0:
            raise error(p.field("local_size").span, f"{layer.what}: local_size must be odd")
        return Mapped([call("lrn_within", str(size), alpha=fmt_float(p.float("alpha", 1.0)),
                            beta=fmt_float(p.float("beta", 0.75)))], ins[0])
    k = p.float("k", 1.0)
    text = call("lrn", str(size), alpha=fmt_float(p.float("alpha", 1.0)),
                beta=fmt_float(p.float("beta", 0.75)), k=fmt_float(k) if k != 1 else None)
    return Mapped([text], ins[0])


def batch_norm(layer: LayerInfo, p: Fields, ins: list[Shape]) -> Mapped:
    """netc's ``bn`` when a Scale follows (it supplies the affine part; net.py pairs them),
    else ``standardize``. ``use_global_stats: false`` normalises with the batch's own
    statistics even at test time: ``standardize(stats=batch)``, never merged with a Scale."""
    eps = p.float("eps", 1e-5)
    eps_text = fmt_float(eps) if eps != 1e-5 else None
    if not p.bool("use_global_stats", True):
        return Mapped([call("standardize", eps=eps_text, stats="batch")], ins[0])
    return Mapped([call("bn", eps=eps_text)], ins[0])


def standardize_call(bn_call: str) -> str:
    """The ``standardize`` that a ``bn`` call becomes when no Scale follows its BatchNorm."""
    return "standardize" + bn_call[2:]


def flatten(layer: LayerInfo, p: Fields, ins: list[Shape]) -> Mapped:
    if p.int("axis", 1, minimum=None) != 1 or p.int("end_axis", -1, minimum=None) != -1:
        raise error(p.span, f"{layer.what}: netc flattens from axis 1 to the end only")
    return Mapped(["flatten"], (math.prod(ins[0]),))


# ---- joins -----------------------------------------------------------------------------------
def concat(layer: LayerInfo, p: Fields, ins: list[Shape]) -> Mapped:
    axis_field = p.field("axis") or p.field("concat_dim")
    if axis_field is not None and p.int_value(axis_field, minimum=None) != 1:
        raise error(axis_field.span, f"{layer.what}: netc concatenates along channels (axis 1)")
    if len({len(s) for s in ins}) > 1 or (len(ins[0]) == 3 and len({s[1:] for s in ins}) > 1):
        shown = ", ".join("x".join(map(str, s)) for s in ins)
        raise error(layer.span, f"{layer.what}: bottoms differ in size: {shown}")
    return Mapped(["concat"], (sum(s[0] for s in ins),) + tuple(ins[0][1:]), join=True)


def eltwise(layer: LayerInfo, p: Fields, ins: list[Shape]) -> Mapped:
    if len(ins) < 2:
        raise error(layer.span, f"{layer.what} takes at least 2 bottoms; got {len(ins)}")
    op = p.enum("operation", "SUM", ("PROD", "SUM", "MAX"))
    coeffs = p.floats("coeff")
    # Caffe's checks (eltwise_layer.cpp): one coeff per bottom, and none for PROD; MAX
    # ignores them. The reader turns SUM's coefficients into scaled branches.
    if coeffs and (op == "PROD" or len(coeffs) != len(ins)):
        raise error(p.message.all("coeff")[0].span,
                    f"{layer.what}: coeff takes one value per bottom ({len(ins)}) and is not "
                    f"for PROD; got {len(coeffs)} for {op}")
    if len(set(ins)) > 1:
        shown = ", ".join("x".join(map(str, s)) for s in ins)
        raise error(layer.span, f"{layer.what}: bottoms differ in shape: {shown}")
    return Mapped([{"SUM": "add", "PROD": "mul", "MAX": "max"}[op]], ins[0], join=True)


@dataclass(frozen=True)
class LayerKind:
    """How to read one Caffe type: its mapping, its ``*_param`` message and that message's fields.

    ``inputs`` is how many bottoms the layer takes (None: two or more, a join).
    """

    mapping: Callable[[LayerInfo, Fields, list[Shape]], Mapped]
    param: str | None = None
    fields: frozenset[str] = frozenset()
    inputs: int | None = 1


KINDS: dict[str, LayerKind] = {
    "Convolution": LayerKind(convolution, "convolution_param", CONV_FIELDS),
    "InnerProduct": LayerKind(inner_product, "inner_product_param", IP_FIELDS),
    "Pooling": LayerKind(pooling, "pooling_param", POOL_FIELDS),
    "ReLU": LayerKind(relu, "relu_param", frozenset({"negative_slope", "engine"})),
    "Sigmoid": LayerKind(simple("sigmoid"), "sigmoid_param", frozenset({"engine"})),
    "TanH": LayerKind(simple("tanh"), "tanh_param", frozenset({"engine"})),
    "ELU": LayerKind(elu, "elu_param", frozenset({"alpha"})),
    "Dropout": LayerKind(dropout, "dropout_param", frozenset({"dropout_ratio", "scale_train"})),
    "Softmax": LayerKind(softmax, "softmax_param", frozenset({"axis", "engine"})),
    "LRN": LayerKind(lrn, "lrn_param", frozenset({"local_size", "alpha", "beta", "norm_region",
                                                  "k", "engine"})),
    "BatchNorm": LayerKind(batch_norm, "batch_norm_param",
                           frozenset({"use_global_stats", "moving_average_fraction", "eps"})),
    "Flatten": LayerKind(flatten, "flatten_param", frozenset({"axis", "end_axis"})),
    "Concat": LayerKind(concat, "concat_param", frozenset({"axis", "concat_dim"}), None),
    "Eltwise": LayerKind(eltwise, "eltwise_param",
                         frozenset({"operation", "coeff", "stable_prod_grad"}), None),
}

# The V1 format (``layers { type: CONVOLUTION }``) names types by enum.
V1_TYPES = {
    "CONTRASTIVE_LOSS": "ContrastiveLoss",
    "CONVOLUTION": "Convolution", "INNER_PRODUCT": "InnerProduct", "POOLING": "Pooling",
    "RELU": "ReLU", "SIGMOID": "Sigmoid", "TANH": "TanH", "DROPOUT": "Dropout",
    "SOFTMAX": "Softmax", "LRN": "LRN", "FLATTEN": "Flatten", "CONCAT": "Concat",
    "ELTWISE": "Eltwise", "SPLIT": "Split", "ELU": "ELU", "DATA": "Data", "IMAGE_DATA": "ImageData",
    "MEMORY_DATA": "MemoryData", "HDF5_DATA": "HDF5Data", "WINDOW_DATA": "WindowData",
    "DUMMY_DATA": "DummyData", "SOFTMAX_LOSS": "SoftmaxWithLoss", "ACCURACY": "Accuracy",
    "EUCLIDEAN_LOSS": "EuclideanLoss", "DECONVOLUTION": "Deconvolution", "POWER": "Power",
    "BNLL": "BNLL", "ABSVAL": "AbsVal", "ARGMAX": "ArgMax", "SLICE": "Slice", "MVN": "MVN",
    "IM2COL": "Im2col", "SILENCE": "Silence", "THRESHOLD": "Threshold",
}

# Types a deploy file should not hold: named in the message so the user knows why.
TRAINING_TYPES = {"Data", "ImageData", "MemoryData", "HDF5Data", "WindowData", "DummyData",
                  "SoftmaxWithLoss", "Accuracy", "EuclideanLoss", "HDF5Output", "Silence",
                  "SigmoidCrossEntropyLoss", "HingeLoss", "InfogainLoss",
                  "MultinomialLogisticLoss", "ContrastiveLoss"}


def param_message(kind: LayerKind, layer: LayerInfo, message: Message | None) -> Fields:
    """The checked ``*_param`` fields of a layer (an empty message when it has none)."""
    empty = Message((), layer.span)
    return Fields(message or empty, f"{layer.what} {kind.param}", kind.fields)
