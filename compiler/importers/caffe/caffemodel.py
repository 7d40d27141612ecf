"""Caffe's binary weights (``.caffemodel``): a ``NetParameter`` read with the protobuf runtime.

The schema is built here, in code, with only the fields netc needs; the field numbers are facts
of Caffe's format (BVLC ``src/caffe/proto/caffe.proto``). Everything else in a file is kept by
protobuf as unknown fields and ignored. Read:

- ``NetParameter``: ``name`` (1), ``input`` (3), ``input_dim`` (4), ``input_shape`` (8), the
  current ``layer`` (100) and the V1 ``layers`` (2);
- ``LayerParameter``: ``name`` (1), ``type`` (2), ``bottom`` (3), ``top`` (4), ``blobs`` (7),
  ``convolution_param`` (106); ``V1LayerParameter``: ``bottom`` (2), ``top`` (3), ``name`` (4),
  ``type`` (5, an enum), ``blobs`` (6), ``convolution_param`` (10);
- ``BlobProto``: ``shape`` (7, ``BlobShape.dim`` = 1), the legacy ``num``/``channels``/
  ``height``/``width`` (1-4), ``data`` (5) and ``double_data`` (8);
- ``ConvolutionParameter``: ``kernel_size`` (4), ``stride`` (6), ``stride_h``/``stride_w``
  (13/14), so that an import knows where each conv's stride is (ResNet v1 or v1.5).

``data`` is declared ``packed = true`` in caffe.proto, and a packed field is written exactly as
a ``bytes`` field with the same number (wire type 2, a length, then the little-endian floats).
So the schema declares it ``bytes``: numpy reads the floats straight from the buffer, where a
repeated float would build a Python float per value (VGG-16 holds 138 M).
"""

from __future__ import annotations

from dataclasses import dataclass, field
import math
from functools import lru_cache
from pathlib import Path

import numpy as np

from netc.compiler.ops.base import fmt_shape
from netc.dsl.diagnostics import UserError

_F = None  # descriptor_pb2.FieldDescriptorProto, bound lazily


def _field(msg, name, number, kind, label="optional", type_name=None):
    f = msg.field.add()
    f.name, f.number = name, number
    f.label = getattr(_F, f"LABEL_{label.upper()}")
    f.type = getattr(_F, f"TYPE_{kind.upper()}")
    if type_name:
        f.type_name = f".netc_caffe.{type_name}"
    return f


@lru_cache(maxsize=1)
def _classes() -> dict:
    """The message classes of the schema (built once)."""
    global _F
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    _F = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(name="netc_caffe.proto", package="netc_caffe",
                                               syntax="proto2")
    shape = proto.message_type.add(name="BlobShape")
    packed = _field(shape, "dim", 1, "int64", "repeated")
    packed.options.packed = True

    blob = proto.message_type.add(name="BlobProto")
    for name, number in (("num", 1), ("channels", 2), ("height", 3), ("width", 4)):
        _field(blob, name, number, "int64")
    _field(blob, "data", 5, "bytes")  # packed floats, read as raw bytes (module docstring)
    _field(blob, "shape", 7, "message", type_name="BlobShape")
    _field(blob, "double_data", 8, "bytes")

    conv = proto.message_type.add(name="ConvolutionParameter")
    _field(conv, "num_output", 1, "uint64")
    for name, number in (("pad", 3), ("kernel_size", 4), ("stride", 6)):
        _field(conv, name, number, "uint64", "repeated")
    _field(conv, "group", 5, "uint64")
    for name, number in (("stride_h", 13), ("stride_w", 14)):
        _field(conv, name, number, "uint64")

    layer = proto.message_type.add(name="LayerParameter")
    _field(layer, "name", 1, "string")
    _field(layer, "type", 2, "string")
    _field(layer, "bottom", 3, "string", "repeated")
    _field(layer, "top", 4, "string", "repeated")
    _field(layer, "blobs", 7, "message", "repeated", "BlobProto")
    _field(layer, "convolution_param", 106, "message", type_name="ConvolutionParameter")

    v1 = proto.message_type.add(name="V1LayerParameter")
    _field(v1, "bottom", 2, "string", "repeated")
    _field(v1, "top", 3, "string", "repeated")
    _field(v1, "name", 4, "string")
    _field(v1, "type", 5, "int32")  # an enum in caffe.proto; V1_TYPE_NAMES below
    _field(v1, "blobs", 6, "message", "repeated", "BlobProto")
    _field(v1, "convolution_param", 10, "message", type_name="ConvolutionParameter")

    net = proto.message_type.add(name="NetParameter")
    _field(net, "name", 1, "string")
    _field(net, "layers", 2, "message", "repeated", "V1LayerParameter")
    _field(net, "input", 3, "string", "repeated")
    _field(net, "input_dim", 4, "int64", "repeated")
    _field(net, "input_shape", 8, "message", "repeated", "BlobShape")
    _field(net, "layer", 100, "message", "repeated", "LayerParameter")

    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    names = ("BlobShape", "BlobProto", "ConvolutionParameter", "LayerParameter",
             "V1LayerParameter", "NetParameter")
    return {n: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"netc_caffe.{n}"))
            for n in names}


# V1LayerParameter.LayerType (caffe.proto), the types that can hold blobs or matter to netc.
V1_TYPE_NAMES = {
    4: "Convolution", 14: "InnerProduct", 39: "Deconvolution", 17: "Pooling", 18: "ReLU",
    15: "LRN", 6: "Dropout", 20: "Softmax", 3: "Concat", 25: "Eltwise", 22: "Split",
    5: "Data", 12: "ImageData", 29: "MemoryData", 9: "HDF5Data", 21: "SoftmaxWithLoss",
    1: "Accuracy", 8: "Flatten", 19: "Sigmoid", 23: "TanH", 26: "Power", 34: "MVN",
    33: "Slice", 2: "BNLL", 35: "AbsVal", 0: "None",
}
_V1_NUMBERS = {v: k for k, v in V1_TYPE_NAMES.items()}


@dataclass
class CaffeLayer:
    """One layer of a caffemodel: what netc needs of it."""

    name: str
    type: str
    bottoms: list[str]
    tops: list[str]
    blobs: list[np.ndarray]
    stride: tuple[int, int] | None = None  # convolutions only


@dataclass
class CaffeModel:
    name: str
    layers: list[CaffeLayer] = field(default_factory=list)
    v1: bool = False


def _blob(b, where: str) -> np.ndarray:
    if b.data:
        values = np.frombuffer(b.data, dtype="<f4").astype(np.float32)
    elif b.double_data:
        values = np.frombuffer(b.double_data, dtype="<f8").astype(np.float32)
    else:
        values = np.zeros(0, np.float32)
    if b.HasField("shape"):
        shape = tuple(int(d) for d in b.shape.dim)
    elif any((b.num, b.channels, b.height, b.width)):
        shape = (int(b.num), int(b.channels), int(b.height), int(b.width))
    else:  # a blob with neither (a channel-shared PReLU slope): its values, flat
        shape = (values.size,)
    if any(d < 0 for d in shape):  # numpy would read -1 as "the rest"
        raise UserError(f"{where}: the blob's shape {fmt_shape(shape)} has a "
                        "negative size")
    # Python's product: numpy's int64 one wraps (2**62 x 4 is 0, which an empty blob holds).
    if math.prod(shape) != values.size:
        raise UserError(f"{where}: the blob's shape {fmt_shape(shape)} does not hold "
                        f"its {values.size} values")
    return values.reshape(shape)


def _stride(p) -> tuple[int, int]:
    if p.stride_h or p.stride_w:
        return (int(p.stride_h or 1), int(p.stride_w or 1))
    s = [int(v) for v in p.stride] or [1]
    return (s[0], s[-1])


def read_caffemodel(path: str | Path) -> CaffeModel:
    """The layers of a binary ``.caffemodel``, in net order. Raises :class:`UserError`."""
    from google.protobuf.message import DecodeError

    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise UserError(f"cannot read {path}: {err.strerror or err}") from None
    net = _classes()["NetParameter"]()
    try:
        net.ParseFromString(raw)
    except (DecodeError, RuntimeError, ValueError) as err:
        raise UserError(f"{path} is not a Caffe NetParameter (a binary .caffemodel): "
                        f"{err}") from None
    model = CaffeModel(net.name, v1=bool(net.layers) and not net.layer)
    for i, lay in enumerate(list(net.layer) + list(net.layers)):
        v1 = i >= len(net.layer)
        type_name = V1_TYPE_NAMES.get(lay.type, f"V1 type {lay.type}") if v1 else lay.type
        where = f"{path}: layer {lay.name!r} ({type_name})"
        blobs = [_blob(b, where) for b in lay.blobs]
        stride = _stride(lay.convolution_param) if lay.HasField("convolution_param") else None
        model.layers.append(CaffeLayer(lay.name, type_name, list(lay.bottom), list(lay.top),
                                       blobs, stride))
    if not model.layers:
        raise UserError(f"{path} holds no Caffe layers (is it a .caffemodel?)")
    return model


def write_caffemodel(path: str | Path, model: CaffeModel) -> None:
    """Write ``model`` as a binary NetParameter (``layer`` entries, blobs with ``shape``).

    For tests, and for whoever needs a caffemodel of netc's weights. Written atomically: a
    temporary file beside ``path``, then one rename.
    """
    import os
    import tempfile

    cls = _classes()
    net = cls["NetParameter"](name=model.name)
    for lay in model.layers:
        if model.v1:
            msg = net.layers.add(name=lay.name, type=_V1_NUMBERS[lay.type])
        else:
            msg = net.layer.add(name=lay.name, type=lay.type)
        msg.bottom.extend(lay.bottoms)
        msg.top.extend(lay.tops)
        if lay.stride is not None:
            msg.convolution_param.stride_h, msg.convolution_param.stride_w = lay.stride
        for arr in lay.blobs:
            b = msg.blobs.add()
            arr = np.ascontiguousarray(arr, dtype="<f4")
            if model.v1 and arr.ndim <= 4:  # the legacy num/channels/height/width
                dims = (1,) * (4 - arr.ndim) + arr.shape
                b.num, b.channels, b.height, b.width = dims
            else:
                b.shape.dim.extend(arr.shape)
            b.data = arr.tobytes()
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(net.SerializeToString())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---- the tensors of each layer, named as netc's ops name them ---------------------------------
_CONVS = ("Convolution", "Deconvolution", "ConvolutionDepthwise", "DepthwiseConvolution")


def _flat(a: np.ndarray) -> np.ndarray:
    return a.reshape(-1)


def weight_groups(model: CaffeModel) -> list[tuple[CaffeLayer, dict[str, np.ndarray]]]:
    """Each layer that holds blobs, in net order, with its tensors under netc's names.

    - Convolution (and Deconvolution, depthwise forks): ``weight``, ``bias``;
    - InnerProduct: ``weight`` as (out, in) (a legacy 1x1xOUTxIN blob too), ``bias``;
    - BatchNorm: ``running_mean`` = blob0 / s and ``running_var`` = blob1 / s with s = blob2[0]
      the moving-average factor (0 gives 0, as Caffe), merged with a Scale right after it that
      reads its output: ``weight`` = γ, ``bias`` = β (0 when the Scale has no bias) — netc's
      ``bn``;
    - Scale on its own: ``weight``, ``bias``; PReLU: ``weight``; Bias: ``bias``;
    - any other layer with blobs: ``blob0``, ``blob1``, ... (which fit no netc op).
    """
    out: list[tuple[CaffeLayer, dict[str, np.ndarray]]] = []
    layers = [lay for lay in model.layers if lay.blobs]
    i = 0
    while i < len(layers):
        lay, b = layers[i], layers[i].blobs
        i += 1
        if lay.type in _CONVS:
            tensors = {"weight": b[0]}
            if len(b) > 1:
                tensors["bias"] = _flat(b[1])
        elif lay.type == "InnerProduct":
            tensors = {"weight": b[0].reshape(b[0].shape[-2], b[0].shape[-1])
                       if b[0].ndim > 2 else b[0]}
            if len(b) > 1:
                tensors["bias"] = _flat(b[1])
        elif lay.type == "BatchNorm" and len(b) >= 3:
            factor = float(b[2].reshape(-1)[0])
            s = 0.0 if factor == 0 else 1.0 / factor
            tensors = {"running_mean": (_flat(b[0]) * s).astype(np.float32),
                       "running_var": (_flat(b[1]) * s).astype(np.float32)}
            nxt = layers[i] if i < len(layers) else None
            if nxt is not None and nxt.type == "Scale" and nxt.bottoms[:1] == lay.tops[:1]:
                gamma = _flat(nxt.blobs[0])
                beta = _flat(nxt.blobs[1]) if len(nxt.blobs) > 1 else np.zeros_like(gamma)
                tensors = {"weight": gamma, "bias": beta, **tensors}
                i += 1
        elif lay.type == "Scale":
            tensors = {"weight": _flat(b[0])}
            if len(b) > 1:
                tensors["bias"] = _flat(b[1])
        elif lay.type == "PReLU":
            tensors = {"weight": _flat(b[0])}
        elif lay.type == "Bias":
            tensors = {"bias": _flat(b[0])}
        else:
            tensors = {f"blob{k}": v for k, v in enumerate(b)}
        out.append((lay, tensors))
    return out
