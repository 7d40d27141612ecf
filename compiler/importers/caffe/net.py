"""Reading a Caffe net: inputs, layers in file order, and the blobs that connect them.

The result is an :class:`ImportedNet`, a small graph of :class:`Node` s: each node is an input
or a short run of netc ops applied to the outputs of earlier nodes. Blobs are tracked by name:

1. A layer's bottom is the node that last wrote that blob. A layer whose top equals its bottom
   (ReLU, Dropout, BatchNorm, Scale "in place") makes a new node; later bottoms of that name
   see the new node, earlier ones keep the old.
2. ``Split`` copies a blob: each of its tops names the bottom's node; it adds no node.
3. ``BatchNorm`` followed by ``Scale`` on its output (and nothing else reading the BatchNorm
   output in between) is one netc ``bn``; a ``BatchNorm`` on its own is ``standardize``, a
   ``Scale`` on its own is ``scale`` (:mod:`.reshaping` reads those that change
   how blobs connect: Reshape, Slice, Eltwise with coeff, a Convolution with several bottoms).
4. A train_val file imports as its TEST net (:mod:`.phases`): phase and stage
   rules are followed, data layers become the input, losses and Accuracy are dropped; every
   dropped layer is listed in ``ImportedNet.dropped``.
5. A layer that fails is reported and the reading goes on: every error of a file is reported,
   in file order. A layer reading a blob that a failed layer would have written is skipped
   quietly (its error is the first one's consequence).

Every Caffe layer name becomes a unique netc label (:class:`Labels`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from netc.compiler.importers.caffe import layers, more_layers, phases
from netc.compiler.importers.caffe.coord_maps import IDENTITY, CoordTracking
from netc.compiler.importers.caffe.fields import Fields, error
from netc.compiler.importers.caffe.param_sharing import ParamSharing
from netc.compiler.importers.caffe.reshaping import Reshaping
from netc.compiler.importers.caffe.textformat import Message
from netc.dsl.diagnostics import Diagnostic, DiagnosticError, Span

KINDS = {**layers.KINDS, **more_layers.KINDS}
# Types read by NetReader's own methods (not by a LayerKind mapping).
SPECIAL = ("Input", "Split", "Scale", "Reshape", "Slice")

Shape = tuple[int, ...]

NET_FIELDS = frozenset({"name", "input", "input_dim", "input_shape", "force_backward", "state",
                        "debug_info", "layer", "layers"})
# Fields of a layer that concern training only; they do not change the architecture.
TRAINING_FIELDS = frozenset({"param", "blobs_lr", "weight_decay", "loss_weight",
                             "propagate_down", "blobs", "phase"})
LAYER_FIELDS = frozenset({"name", "type", "bottom", "top", "include", "exclude"}) | TRAINING_FIELDS
# What a data or loss layer may hold; none of it matters to the deploy net but its shape.
DATA_FIELDS = LAYER_FIELDS | frozenset({
    "data_param", "transform_param", "image_data_param", "hdf5_data_param",
    "memory_data_param", "window_data_param", "dummy_data_param", "annotated_data_param",
    "loss_param", "accuracy_param", "hdf5_output_param", "softmax_param",
    "multibox_loss_param", "contrastive_loss_param", "input_param"})

# Words a label or value name must not be: netc keywords, op names (a value would shadow the
# op) and the symbols that arguments use.
_KEYWORDS = {"include", "def", "inline", "net", "input", "output", "with", "if", "then", "else",
             "or", "and", "not", "as", "for", "in", "true", "false", "same", "residual"}


@dataclass
class Node:
    """An input, or netc ``calls`` applied in order to ``inputs`` (a join when ``join``)."""

    index: int
    inputs: list[int]
    calls: list[str]
    labels: list[str | None]
    shape: Shape
    span: Span
    join: bool = False
    comment: str = ""
    caffe_name: str = ""
    consumers: int = 0
    pending_scale: bool = False  # a BatchNorm still waiting for its Scale
    options: str = ""  # an input's preparation: ", scale=..., mean=[...], layout=bgr"

    @property
    def name(self) -> str:
        """The node's value name: its input name, or the label of its last op."""
        return self.labels[-1] or ""

    @property
    def is_input(self) -> bool:
        return not self.calls


@dataclass
class ImportedNet:
    name: str
    nodes: list[Node] = field(default_factory=list)
    renamed: dict[str, str] = field(default_factory=dict)  # Caffe name -> label, where not obvious
    dropped: list[str] = field(default_factory=list)  # train_val layers left out, and why
    shared: dict[str, str] = field(default_factory=dict)  # extra label -> Caffe layer (weights)
    # ``param { name }`` sharing (param_sharing.py): share block name -> the call it binds.
    shares: dict[str, str] = field(default_factory=dict)
    warnings: list[Diagnostic] = field(default_factory=list)  # imported, but worth a look

    @property
    def outputs(self) -> list[Node]:
        return [n for n in self.nodes if not n.is_input and n.consumers == 0]


class Labels:
    """Caffe names made into unique netc names: ``inception_3a/1x1`` -> ``inception_3a_1x1``."""

    def __init__(self):
        from netc.compiler import ops

        self.used: set[str] = set()
        self.reserved = _KEYWORDS | set(ops.REGISTRY)

    @staticmethod
    def plain(name: str) -> str:
        """The obvious spelling: every character other than a letter, digit or _ becomes _."""
        text = re.sub(r"[^A-Za-z0-9_]", "_", name) or "layer"
        return "_" + text if text[0].isdigit() else text

    def make(self, name: str, register: bool = True) -> str:
        """A valid, unused netc name for ``name``; ``register`` reserves it for this net."""
        base = self.plain(name)
        # A bare ``flatten`` that netc numbers (flatten1) must not meet a label of that name.
        if base in self.reserved or re.fullmatch(r"flatten\d+", base):
            base += "_"
        label, k = base, 0
        while label in self.used:
            k += 1
            label = f"{base}_{k}"
        if register:
            self.used.add(label)
        return label


class _Skip(Exception):
    """A layer reads a blob that an earlier failed layer would have written (rule 5)."""


class NetReader(CoordTracking, Reshaping):
    """Reads one parsed prototxt into an :class:`ImportedNet` (see the module docstring)."""

    def __init__(self, root: Message, default_name: str,
                 input_shapes: dict | None = None, stages: frozenset[str] = frozenset(),
                 crop_offsets: str = "caffe"):
        self.root = Fields(root, "net", NET_FIELDS)
        self.labels = Labels()
        # The net's name lives apart from its labels: a layer may share it.
        self.net = ImportedNet(self.labels.make(self.root.string("name") or default_name,
                                                register=False))
        self.blobs: dict[str, Node] = {}
        self.views: dict[str, Shape] = {}  # blobs reshaped across the batch axis (reshaping.py)
        self.batch = 1  # the declared batch size N of the first input
        self.failed: set[str] = set()  # blobs of layers that failed (rule 5)
        self.gone: dict[str, str] = {}  # blobs of dropped layers -> the layer, for messages
        # ``--input`` shapes (C, H, W) by input name, None for the first input; they replace
        # the file's (add_input) and give a data layer's shape where the file has none.
        self.input_shapes = dict(input_shapes or {})
        self.stages = stages
        self.left_out: dict[str, list[str]] = {}  # tops of layers the TEST net leaves out
        self.coords: dict = {}  # blob -> its coordinate map from the input (coord_maps.py)
        self.crop_mode = crop_offsets
        self.warnings = self.net.warnings
        self.params = ParamSharing(calls=self.net.shares)

    def read(self) -> ImportedNet:
        self.check_v0()
        self.header_inputs()
        diagnostics = []
        for f in self.root.message.fields:
            if f.name not in ("layer", "layers"):
                continue
            try:
                if not isinstance(f.value, Message):
                    raise error(f.span, f"{f.name} is a message: write {f.name} {{ ... }}")
                self.layer(f.value, v1=f.name == "layers")
            except (DiagnosticError, _Skip) as err:
                if isinstance(err, DiagnosticError):
                    diagnostics.extend(err.diagnostics)
                if isinstance(f.value, Message):
                    self.failed.update(v.value.value for v in f.value.all("top")
                                       if not isinstance(v.value, Message))
        if diagnostics:
            raise DiagnosticError(diagnostics)
        for node in self.net.nodes:
            if node.pending_scale:  # a BatchNorm with no Scale after it: no affine part
                node.calls[-1] = layers.standardize_call(node.calls[-1])
                node.pending_scale = False
        if not self.net.outputs:
            raise error(self.root.span, "this net has no layers to import")
        return self.net

    def check_v0(self) -> None:
        """The 2013 format (``layers { layer { type: "conv" } }``) named as such."""
        for f in self.root.message.all("layers"):
            if isinstance(f.value, Message) and f.value.one("layer") is not None:
                raise error(f.value.one("layer").span,
                            "this file is in Caffe's 2013 V0 format (layers { layer { ... } }), "
                            "which Caffe itself upgrades before use; run Caffe's "
                            "upgrade_net_proto_text on it and import the result")

    # ---- nodes and blobs --------------------------------------------------------------------
    def add_node(self, inputs: list[Node], calls: list[str], label: str | None, shape: Shape,
                 span: Span, join: bool = False, caffe_name: str = "") -> Node:
        for node in inputs:
            node.consumers += 1
        labels: list[str | None] = [None] * (len(calls) - 1) + [label]
        node = Node(len(self.net.nodes), [n.index for n in inputs], calls, labels, shape, span,
                    join, caffe_name=caffe_name)
        self.net.nodes.append(node)
        return node

    def add_input(self, name: str, span: Span, dims: list[int], dims_span: Span) -> None:
        if name in self.blobs:
            raise error(span, f"input {name!r} is declared twice")
        if len(dims) != 4:
            raise error(dims_span, f"input {name!r}: netc imports N x C x H x W inputs; got "
                                   f"{len(dims)} dimensions")
        shape: Shape = tuple(dims[1:])
        first = not any(n.is_input for n in self.net.nodes)
        sized = self.input_shapes.get(name, self.input_shapes.get(None) if first else None)
        if sized is not None:  # --input: a shape "defined at runtime" (1x1 in the file)
            shape = tuple(sized)
        if any(d <= 0 for d in shape):
            raise error(dims_span, f"input {name!r}: dimensions must be positive; got {dims}")
        if not any(n.is_input for n in self.net.nodes):
            self.batch = max(dims[0], 1)
        label = self.labels.make(name)
        node = self.add_node([], [], label, shape, span, caffe_name=name)
        self.note_rename(name, label)
        self.blobs[name] = node
        self.coords[name] = IDENTITY
        return node

    def note_rename(self, caffe: str, label: str) -> None:
        if label != Labels.plain(caffe):
            self.net.renamed[caffe] = label

    def header_inputs(self) -> None:
        """``input: "data"`` with four ``input_dim`` each, or one ``input_shape {}`` each."""
        names = self.root.strings("input")
        dims = self.root.ints("input_dim", minimum=None)
        shapes = self.root.message.all("input_shape")
        if dims and shapes:
            raise error(shapes[0].span, "give input_dim or input_shape, not both")
        if dims and len(dims) != 4 * len(names):
            first = self.root.message.all("input_dim")[0]
            raise error(first.span, f"{len(names)} input(s) need {4 * len(names)} input_dim "
                                    f"values (N, C, H, W each); got {len(dims)}")
        if shapes and len(shapes) != len(names):
            raise error(shapes[0].span, f"{len(names)} input(s) need as many input_shape "
                                        f"messages; got {len(shapes)}")
        if names and not dims and not shapes:
            raise error(names[0][1], f"input {names[0][0]!r} has no input_dim or input_shape")
        for i, (name, span) in enumerate(names):
            if dims:
                dim_span = self.root.message.all("input_dim")[4 * i].span
                self.add_input(name, span, dims[4 * i: 4 * i + 4], dim_span)
            else:
                self.add_input(name, span, self.shape_dims(shapes[i]), shapes[i].span)

    @staticmethod
    def shape_dims(f) -> list[int]:
        if not isinstance(f.value, Message):
            raise error(f.span, f"{f.name} is a message: write {f.name} {{ dim: ... }}")
        return Fields(f.value, f.name, frozenset({"dim"})).ints("dim", minimum=None)

    # ---- layers -----------------------------------------------------------------------------
    def layer(self, msg: Message, v1: bool) -> None:
        type_field = msg.one("type")
        if type_field is None:
            raise error(msg.span, "this layer has no type")
        type_name = str(getattr(type_field.value, "value", ""))
        if v1 and type_name in layers.V1_TYPES:
            type_name = layers.V1_TYPES[type_name]
        name_field = msg.one("name")
        name = str(getattr(name_field.value, "value", "")) if name_field else ""
        name = name or f"{type_name.lower()}{len(self.net.nodes)}"
        why = phases.excluded_by(msg, self.stages)
        if why:
            return self.leave_out(msg, name, type_name, why)
        if type_name in more_layers.REFUSED:
            raise error(type_field.value.span, f"layer {name!r} ({type_name}) is "
                        f"{more_layers.REFUSED[type_name]}; netc imports the network up to "
                        "such layers only: cut the prototxt before it")
        if type_name in phases.DATA_TYPES or type_name in phases.DROPPED_TYPES:
            fields = Fields(msg, "layer", DATA_FIELDS)
            info = layers.LayerInfo(name, type_name, type_field.span)
            if type_name in phases.DATA_TYPES:
                return self.data_layer(info, fields, msg)
            return self.drop_layer(info, fields)
        kind = KINDS.get(type_name)
        if kind is None and type_name not in SPECIAL:
            raise error(type_field.value.span, self.unknown_type(type_name))
        extra = {kind.param} if kind and kind.param else set()
        extra |= {f"{type_name.lower()}_param"} if type_name in SPECIAL else set()
        fields = Fields(msg, "layer", LAYER_FIELDS | extra)
        info = layers.LayerInfo(name, type_name, type_field.span)
        by_blob = type_name == "Scale" and len(msg.all("bottom")) == 2  # SE's: a KINDS join
        if type_name in SPECIAL and not by_blob:
            return getattr(self, type_name.lower() + "_layer")(info, fields)
        assert kind is not None
        bottoms = [self.bottom(blob, span) for blob, span in fields.strings("bottom")]
        tops = fields.strings("top")
        if type_name == "Convolution" and len(bottoms) > 1:
            return self.shared_convolution(info, fields, kind, bottoms, tops)
        if type_name == "Eltwise":
            bottoms = self.eltwise_bottoms(info, fields, bottoms)
        else:
            self.no_views(info, fields)
        want = kind.inputs
        if (want is not None and len(bottoms) != want) or (want is None and len(bottoms) < 1):
            count = want if want is not None else "at least 1"
            raise error(info.span, f"{info.what} takes {count} bottom(s); got {len(bottoms)}")
        if len(tops) != 1:
            raise error(info.span, f"{info.what} needs exactly one top; got {len(tops)}")
        mapped = self.map_layer(info, fields, kind, bottoms, tops[0][0])
        node = self.add_node(bottoms, mapped.calls, self.label(name), mapped.shape, info.span,
                             mapped.join, caffe_name=name)
        node.pending_scale = mapped.calls[-1].startswith("bn")
        self.params.read(fields, node, name, self.labels.make)
        self.blobs[tops[0][0]] = node
        if type_name == "Eltwise":
            self.keep_view(fields, tops[0][0])

    def leave_out(self, msg: Message, name: str, type_name: str, why: str) -> None:
        """A layer the TEST net does not have: listed, and its tops remembered, so that a
        bottom naming one can say why it names no blob."""
        self.net.dropped.append(f"{name} ({type_name}): {why}")
        rules = why.split("(its ")[-1].rstrip(")")
        for top in msg.all("top"):
            if not isinstance(top.value, Message):
                self.left_out.setdefault(str(top.value.value), []).append(
                    f"{name!r} ({type_name}) by its {rules}")

    def map_layer(self, info, fields: Fields, kind, bottoms: list[Node], top: str):
        """The Mapped of a layer read by its LayerKind; its top's coordinate map is kept
        (:mod:`.coord_maps`)."""
        params = layers.param_message(kind, info, fields.message_of(kind.param))
        names, shapes = [b for b, _ in fields.strings("bottom")], [b.shape for b in bottoms]
        if info.type == "Crop":
            return self.read_crop(info, fields, params, shapes, names, top)
        mapped = kind.mapping(info, params, shapes)
        self.track(info.type, params, names[0] if names else None, top)
        return mapped

    def label(self, caffe_name: str) -> str:
        label = self.labels.make(caffe_name)
        self.note_rename(caffe_name, label)
        return label

    @staticmethod
    def unknown_type(type_name: str) -> str:
        known = ", ".join(sorted(set(KINDS) | set(SPECIAL)))
        return f"unknown layer type {type_name!r}; netc imports {known}"

    def bottom(self, blob: str, span: Span) -> Node:
        node = self.blobs.get(blob)
        if node is None and blob in self.failed:
            raise _Skip(blob)
        if node is None and blob in self.gone:
            raise error(span, f"bottom {blob!r} comes from {self.gone[blob]}, which the deploy "
                              "net does not have")
        if node is None and blob in self.left_out:
            hint = phases.stage_hint(self.root.message, self.stages)
            raise error(span, f"bottom {blob!r} names no blob: the TEST net leaves out the "
                              f"layers that write it ({'; '.join(self.left_out[blob])}){hint}")
        if node is None:
            known = ", ".join(sorted(self.blobs)[:12]) or "none yet"
            raise error(span, f"bottom {blob!r} names no blob: no input or earlier top has that "
                              f"name (blobs so far: {known})")
        return node

    # ---- train_val: data layers and losses (compiler/caffe/phases.py) -----------------------
    def data_layer(self, info: layers.LayerInfo, fields: Fields, msg: Message) -> None:
        tops = fields.strings("top")
        if not tops:
            raise error(info.span, f"{info.what} has no top")
        first = not any(n.is_input for n in self.net.nodes)
        given = self.input_shapes.get(tops[0][0], self.input_shapes.get(None) if first else None)
        shape = list(given) if given else phases.data_shape(msg, info.type)
        if shape is None or len(shape) != 3 or not all(shape):
            raise error(info.span, f"{info.what} does not say the shape of its images (a "
                                   f"database holds them); give it with {phases.input_hint(msg)}")
        node = self.add_input(tops[0][0], tops[0][1], [1, *shape], info.span)
        node.options = phases.input_options(msg, shape[0])
        for top, _ in tops[1:]:
            self.gone[top] = f"the data layer {info.name!r} (its labels)"
        self.net.dropped.append(f"{info.name} ({info.type}): became the input {node.name}: "
                                f"{'x'.join(map(str, shape))}{node.options}")

    def drop_layer(self, info: layers.LayerInfo, fields: Fields) -> None:
        for top, _ in fields.strings("top"):
            self.gone[top] = f"the {info.type} layer {info.name!r}"
        self.net.dropped.append(f"{info.name} ({info.type}): a loss or a metric, not part of "
                                "a deploy net")

    def input_layer(self, info: layers.LayerInfo, fields: Fields) -> None:
        tops = fields.strings("top")
        param = Fields(fields.message_of("input_param") or Message((), info.span),
                       "input_param", frozenset({"shape"}))
        shapes = param.message.all("shape")
        if not tops:
            raise error(info.span, f"{info.what} needs a top")
        if len(shapes) not in (1, len(tops)):
            raise error(param.span, f"{info.what}: {len(tops)} tops need 1 or {len(tops)} "
                                    f"shape messages; got {len(shapes)}")
        for i, (top, span) in enumerate(tops):
            shape = shapes[i if len(shapes) > 1 else 0]
            self.add_input(top, span, self.shape_dims(shape), shape.span)

    def split_layer(self, info: layers.LayerInfo, fields: Fields) -> None:
        bottoms = fields.strings("bottom")
        if len(bottoms) != 1:
            raise error(info.span, f"{info.what} takes 1 bottom; got {len(bottoms)}")
        node = self.bottom(*bottoms[0])
        for top, _ in fields.strings("top"):
            self.blobs[top] = node
            self.coords[top] = self.coords.get(bottoms[0][0])
            if bottoms[0][0] in self.views:
                self.views[top] = self.views[bottoms[0][0]]

    def scale_layer(self, info: layers.LayerInfo, fields: Fields) -> None:
        """A Scale right after a BatchNorm (with a bias) completes netc's ``bn``; any other
        Scale with one bottom is netc's ``scale``, per channel (rule 3)."""
        bottoms, tops = fields.strings("bottom"), fields.strings("top")
        if len(bottoms) != 1 or len(tops) != 1:
            raise error(info.span, f"{info.what}: netc imports a Scale with one bottom and one "
                                   "top (a learned scale); a Scale by a second blob is not "
                                   "read")
        node = self.bottom(*bottoms[0])
        self.no_views(info, fields)
        params = Fields(fields.message_of("scale_param") or Message((), info.span),
                        f"{info.what} scale_param",
                        frozenset({"axis", "num_axes", "filler", "bias_term", "bias_filler"}))
        if params.int("axis", 1, minimum=None) != 1 or params.int("num_axes", 1,
                                                                   minimum=None) != 1:
            raise error(params.span, f"{info.what}: netc scales per channel (axis 1, "
                                     "num_axes 1) only")
        bias = params.bool("bias_term", False)
        self.track("Scale", None, bottoms[0][0], tops[0][0])
        if node.pending_scale and not node.consumers and bias:
            node.pending_scale = False
            node.comment = f"with Scale {info.name}"
            self.blobs[tops[0][0]] = node
            return
        new = self.add_node([node], [layers.call("scale", bias=None if bias else "false")],
                            self.label(info.name), node.shape, info.span, caffe_name=info.name)
        self.blobs[tops[0][0]] = new


def read_net(root: Message, default_name: str, input_shapes: dict | None = None,
             stages: frozenset[str] = frozenset(), crop_offsets: str = "caffe") -> ImportedNet:
    """The :class:`ImportedNet` of a parsed prototxt. Raises DiagnosticError.

    ``input_shapes`` (``--input``: C, H, W by input name, None for the first input) replace
    the file's input shapes, or give a data layer's that the file does not say; ``stages``
    are the NetState stages of include/exclude rules; ``crop_offsets`` (caffe or geometry)
    says how to place a Crop without ``crop_param`` (:mod:`.coord_maps`).
    """
    return NetReader(root, default_name, input_shapes, stages, crop_offsets).read()
