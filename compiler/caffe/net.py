"""Reading a Caffe net: inputs, layers in file order, and the blobs that connect them.

The result is an :class:`ImportedNet`, a small graph of :class:`Node` s: each node is an input
or a short run of netc ops applied to the outputs of earlier nodes. Blobs are tracked by name:

1. A layer's bottom is the node that last wrote that blob. A layer whose top equals its bottom
   (ReLU, Dropout, BatchNorm, Scale "in place") makes a new node; later bottoms of that name
   see the new node, earlier ones keep the old.
2. ``Split`` copies a blob: each of its tops names the bottom's node; it adds no node.
3. ``BatchNorm`` followed by ``Scale`` on its output (and nothing else reading the BatchNorm
   output in between) is one netc ``bn``; a ``BatchNorm`` or a ``Scale`` on its own is an error,
   because netc's ``bn`` always has a learnable scale and shift.
4. Layers with ``include { phase: TRAIN }`` or ``exclude { phase: TEST }`` are not part of the
   deploy net and are skipped.

Every Caffe layer name becomes a unique netc label (:class:`Labels`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from compiler.caffe import layers
from compiler.caffe.fields import Fields, error
from compiler.caffe.textformat import Message
from dsl.diagnostics import Span

Shape = tuple[int, ...]

NET_FIELDS = frozenset({"name", "input", "input_dim", "input_shape", "force_backward", "state",
                        "debug_info", "layer", "layers"})
# Fields of a layer that concern training only; they do not change the architecture.
TRAINING_FIELDS = frozenset({"param", "blobs_lr", "weight_decay", "loss_weight",
                             "propagate_down", "blobs", "phase"})
LAYER_FIELDS = frozenset({"name", "type", "bottom", "top", "include", "exclude"}) | TRAINING_FIELDS

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

    @property
    def outputs(self) -> list[Node]:
        return [n for n in self.nodes if not n.is_input and n.consumers == 0]


class Labels:
    """Caffe names made into unique netc names: ``inception_3a/1x1`` -> ``inception_3a_1x1``."""

    def __init__(self):
        from compiler import ops

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


class NetReader:
    """Reads one parsed prototxt into an :class:`ImportedNet` (see the module docstring)."""

    # ``--input`` shapes (C, H, W) by input name, None for the first input; replace the file's.
    input_shapes: dict = {}

    def __init__(self, root: Message, default_name: str):
        self.root = Fields(root, "net", NET_FIELDS)
        self.labels = Labels()
        # The net's name lives apart from its labels: a layer may share it.
        self.net = ImportedNet(self.labels.make(self.root.string("name") or default_name,
                                                register=False))
        self.blobs: dict[str, Node] = {}

    def read(self) -> ImportedNet:
        self.header_inputs()
        for f in self.root.message.fields:
            if f.name in ("layer", "layers"):
                if not isinstance(f.value, Message):
                    raise error(f.span, f"{f.name} is a message: write {f.name} {{ ... }}")
                self.layer(f.value, v1=f.name == "layers")
        for node in self.net.nodes:
            if node.pending_scale:
                raise error(node.span, f"BatchNorm {node.caffe_name!r} is not followed by a "
                                       "Scale layer; netc's bn always learns a scale and shift, "
                                       "so it imports BatchNorm + Scale pairs only")
        if not self.net.outputs:
            raise error(self.root.span, "this net has no layers to import")
        return self.net

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
        sized = self.input_shapes.get(name, self.input_shapes.get(None) if not self.blobs else None)
        if sized is not None:  # --input: a shape "defined at runtime" (1x1 in the file)
            shape = tuple(sized)
        if any(d <= 0 for d in shape):
            raise error(dims_span, f"input {name!r}: dimensions must be positive; got {dims}")
        label = self.labels.make(name)
        node = self.add_node([], [], label, shape, span, caffe_name=name)
        self.note_rename(name, label)
        self.blobs[name] = node

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
        if self.skipped_by_phase(msg):
            return
        kind = layers.KINDS.get(type_name)
        if kind is None and type_name not in ("Input", "Split", "Scale"):
            raise error(type_field.value.span, self.unknown_type(type_name))
        extra = {kind.param} if kind and kind.param else set()
        extra |= {"input_param"} if type_name == "Input" else set()
        extra |= {"scale_param"} if type_name == "Scale" else set()
        fields = Fields(msg, "layer", LAYER_FIELDS | extra)
        name = fields.string("name") or f"{type_name.lower()}{len(self.net.nodes)}"
        info = layers.LayerInfo(name, type_name, type_field.span)
        if type_name == "Input":
            return self.input_layer(info, fields)
        if type_name == "Split":
            return self.split(info, fields)
        if type_name == "Scale":
            return self.scale(info, fields)
        assert kind is not None
        bottoms = [self.bottom(blob, span) for blob, span in fields.strings("bottom")]
        want = kind.inputs
        if (want is not None and len(bottoms) != want) or (want is None and len(bottoms) < 1):
            count = want if want is not None else "at least 1"
            raise error(info.span, f"{info.what} takes {count} bottom(s); got {len(bottoms)}")
        tops = fields.strings("top")
        if len(tops) != 1:
            raise error(info.span, f"{info.what} needs exactly one top; got {len(tops)}")
        params = layers.param_message(kind, info, fields.message_of(kind.param))
        mapped = kind.mapping(info, params, [b.shape for b in bottoms])
        label = self.labels.make(name)
        self.note_rename(name, label)
        node = self.add_node(bottoms, mapped.calls, label, mapped.shape, info.span, mapped.join,
                             caffe_name=name)
        node.pending_scale = type_name == "BatchNorm"
        self.blobs[tops[0][0]] = node

    @staticmethod
    def unknown_type(type_name: str) -> str:
        if type_name in layers.TRAINING_TYPES:
            return (f"layer type {type_name!r} belongs to training (data, loss or accuracy); "
                    "import the deploy prototxt")
        known = ", ".join(sorted(set(layers.KINDS) | {"Input", "Split", "Scale"}))
        return f"unknown layer type {type_name!r}; netc imports {known}"

    def bottom(self, blob: str, span: Span) -> Node:
        node = self.blobs.get(blob)
        if node is None:
            known = ", ".join(sorted(self.blobs)[:12]) or "none yet"
            raise error(span, f"bottom {blob!r} names no blob: no input or earlier top has that "
                              f"name (blobs so far: {known})")
        return node

    @staticmethod
    def skipped_by_phase(msg: Message) -> bool:
        """Whether the layer belongs to the TRAIN phase only (rule 4 of the module docstring)."""

        def phases(rule: str) -> set[str]:
            out = set()
            for f in msg.all(rule):
                if isinstance(f.value, Message):
                    rule_fields = Fields(f.value, rule, frozenset(
                        {"phase", "min_level", "max_level", "stage", "not_stage"}))
                    out.add(rule_fields.enum("phase", "", ("TRAIN", "TEST")))
            return out

        include, exclude = phases("include"), phases("exclude")
        return (bool(include) and "TEST" not in include and "" not in include) or \
            "TEST" in exclude

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

    def split(self, info: layers.LayerInfo, fields: Fields) -> None:
        bottoms = fields.strings("bottom")
        if len(bottoms) != 1:
            raise error(info.span, f"{info.what} takes 1 bottom; got {len(bottoms)}")
        node = self.bottom(*bottoms[0])
        for top, _ in fields.strings("top"):
            self.blobs[top] = node

    def scale(self, info: layers.LayerInfo, fields: Fields) -> None:
        bottoms, tops = fields.strings("bottom"), fields.strings("top")
        if len(bottoms) != 1 or len(tops) != 1:
            raise error(info.span, f"{info.what}: netc imports a Scale with one bottom and one "
                                   "top (the learned scale of a BatchNorm)")
        node = self.bottom(*bottoms[0])
        params = Fields(fields.message_of("scale_param") or Message((), info.span),
                        f"{info.what} scale_param",
                        frozenset({"axis", "num_axes", "filler", "bias_term", "bias_filler"}))
        if not node.pending_scale or node.consumers:
            raise error(info.span, f"{info.what}: netc imports Scale only right after a "
                                   "BatchNorm on the same blob (the pair becomes one bn)")
        if params.int("axis", 1, minimum=None) != 1 or params.int("num_axes", 1,
                                                                   minimum=None) != 1:
            raise error(params.span, f"{info.what}: netc's bn scales per channel (axis 1, "
                                     "num_axes 1) only")
        if not params.bool("bias_term", False):
            raise error(info.span, f"{info.what}: netc's bn always learns a shift; this Scale "
                                   "has no bias_term: true")
        node.pending_scale = False
        node.comment = f"with Scale {info.name}"
        self.blobs[tops[0][0]] = node


def read_net(root: Message, default_name: str, input_shapes: dict | None = None) -> ImportedNet:
    """The :class:`ImportedNet` of a parsed prototxt. Raises DiagnosticError."""
    reader = NetReader(root, default_name)
    reader.input_shapes = dict(input_shapes or {})
    return reader.read()
