"""A thin recorder over ``onnx.helper``: op calls become nodes, arrays become initializers.

The ONNX lowering of every op (``OpDef.to_onnx`` in :mod:`netc.compiler.ops`) writes through a
:class:`Tape`, so an op never builds protobufs by hand::

    >>> import numpy as np
    >>> tape = Tape()
    >>> w = tape.initializer("fc.weight", np.ones((2, 3), np.float32))
    >>> tape.op("Gemm", ["x", w], name="fc", transB=1)
    'fc'
    >>> model = tape.finish("tiny", inputs={"x": (3,)}, outputs={"fc": (2,)})
    >>> [n.op_type for n in model.graph.node], model.graph.output[0].name
    (['Gemm'], 'fc')

:meth:`Tape.finish` assembles the ``ModelProto`` with a dynamic batch axis, runs
``onnx.checker.check_model(full_check=True)`` and ONNX shape inference, and compares every
inferred shape with the shape the IR expects; a disagreement is a compiler bug and raises
:class:`LoweringError` naming the value and both shapes. (The checks run on the model with its
large weights declared as typed inputs, which is the same graph without copying 100 MB twice;
the tests run the full check on the finished files as well.)

A :class:`FunctionTape` records the body of an ONNX model-local function: its initializers
become function inputs (functions cannot own initializers) and its constants ``Constant`` nodes,
so the same ``to_onnx`` code lowers an op inside or outside a function.

**Target opset.** A tape emits one opset, 13 to 18 (``Tape(opset=13)``; ``netc compile
--opset N``), directly rather than through ONNX's version converter (which cannot take Relu down
from 18). Op faces write each node once, in the *attribute form*: ``tape.op("ReduceMean", [x],
name=n, axes=[2, 3], keepdims=0)``. :meth:`Tape.op` reads the target opset's schema
(``onnx.defs``) and, where that schema takes the value as an input instead (ReduceMean's
``axes`` from opset 18, ReduceSum's and Squeeze's from 13, Split's ``split``, Pad's ``pads``,
Clip's ``min``/``max``), stores it as a constant named ``<node>.<key>`` and passes it in the
schema's input position. An ONNX op the target opset lacks, or an attribute it does not know,
is a :class:`LoweringError` naming both: an op face that writes a newer ONNX op asks
:meth:`Tape.has` and writes its older form itself (the ``hardswish`` op writes HardSwish from
opset 14, and x · HardSigmoid(x) below)::

    >>> tape = Tape(opset=13)
    >>> tape.has("HardSwish"), Tape(opset=18).has("HardSwish")
    (False, True)
    >>> tape.op("ReduceMean", ["x"], name="m", axes=[2, 3])
    'm'
    >>> Tape(opset=18).op("ReduceMean", ["x"], name="m", axes=[2, 3])
    'm'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache

import numpy as np
import onnx
from netc.compiler.lower_onnx.rewrite import tidy
from onnx import helper, numpy_helper

OPSET = 18  # the default target opset
MIN_OPSET = 13  # the oldest target opset (--opset)
BATCH = "batch"  # the name of the dynamic batch axis of every input and output
DOMAIN = "netc"  # the domain of model-local functions

Shape = tuple[int, ...]
_SMALL = 64  # initializers up to this many elements stay in the checked skeleton


class LoweringError(Exception):
    """The ONNX model disagrees with the IR: a bug in netc, never a user's mistake."""


class Tape:
    """Records ONNX nodes and initializers; value names are chosen by the caller.

    ``float_type`` is the element type of weights and float constants (float32, or float16
    for a half-precision model); arrays given to :meth:`initializer` are cast to it.
    """

    def __init__(self, float_type: type = np.float32, opset: int = OPSET):
        self.float_type = np.dtype(float_type)
        self.opset = opset
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: dict[str, np.ndarray] = {}  # made protos once, in finish()
        self.node_names: set[str] = set()
        self.shapes: dict[str, Shape] = {}  # per-sample IR shapes of values, set by the lowering
        self.declared: dict[str, Shape] = {}  # values given a value_info (see declare)

    @property
    def elem_type(self) -> int:
        return helper.np_dtype_to_tensor_dtype(self.float_type)

    def op(self, op_type: str, inputs: Sequence[str], name: str, output: str | None = None,
           domain: str = "", **attrs) -> str:
        """Record one node named ``name``; return its output value (``output``, else ``name``).

        ``attrs`` are the ONNX attributes in the attribute form (see the module docstring:
        values the target opset takes as inputs are moved there); ``None`` values are left
        out so a caller can pass optional ones unconditionally.
        """
        return self.node(op_type, inputs, [output or name], name, domain, **attrs)[0]

    def node(self, op_type: str, inputs: Sequence[str], outputs: Sequence[str], name: str,
             domain: str = "", **attrs) -> list[str]:
        """:meth:`op` for a node with several outputs (Split); returns ``outputs``."""
        if name in self.node_names:
            raise LoweringError(f"two ONNX nodes are named {name!r}")
        self.node_names.add(name)
        attrs = {k: v for k, v in attrs.items() if v is not None}
        inputs = list(inputs)
        if not domain:
            inputs, attrs = self._opset_form(op_type, inputs, name, attrs)
        self.nodes.append(helper.make_node(op_type, inputs, list(outputs), name=name,
                                           domain=domain, **attrs))
        return list(outputs)

    def has(self, op_type: str) -> bool:
        """Whether the target opset defines ``op_type`` (a face writing a newer op asks first)."""
        return _schema(op_type, self.opset) is not None

    def _opset_form(self, op_type: str, inputs: list[str], name: str,
                    attrs: dict) -> tuple[list[str], dict]:
        """Move attribute-form values that the target opset's schema takes as inputs."""
        schema = _schema(op_type, self.opset)
        if schema is None:
            first = next((v for v in range(self.opset + 1, 100) if _schema(op_type, v)), None)
            since = f" (it appears in opset {first})" if first else ""
            raise LoweringError(f"{name}: ONNX opset {self.opset} has no {op_type}{since}")
        formal = [i.name for i in schema.inputs]
        for key in [k for k in attrs if k not in schema.attributes]:
            if key not in formal:
                raise LoweringError(f"{name}: {op_type} in opset {self.opset} has no "
                                    f"attribute or input {key!r}")
            pos = formal.index(key)
            kind = schema.inputs[pos].type_str
            dtype = (helper.tensor_dtype_to_np_dtype(_TENSOR_TYPES[kind])
                     if kind in _TENSOR_TYPES else self.float_type)
            value = self.constant(f"{name}.{key}", np.asarray(attrs.pop(key), dtype=dtype))
            inputs += [""] * (pos + 1 - len(inputs))  # "" is an omitted optional input
            inputs[pos] = value
        return inputs, attrs

    def call(self, function: str, inputs: Sequence[str], name: str,
             outputs: Sequence[str]) -> list[str]:
        """Record a call of the model-local function ``function``; return its outputs."""
        if name in self.node_names:
            raise LoweringError(f"two ONNX nodes are named {name!r}")
        self.node_names.add(name)
        self.nodes.append(helper.make_node(function, list(inputs), list(outputs), name=name,
                                           domain=DOMAIN))
        return list(outputs)

    def declare(self, value: str, shape: Shape) -> None:
        """Give ``value`` a ``[batch, *shape]`` value_info. For ops whose ONNX shape inference
        loses the symbolic batch axis (Resize computes every axis from its scales, and
        batch·1 is unknown to it); inference still checks the other axes against it."""
        self.declared[value] = tuple(shape)

    def shape(self, value: str) -> Shape:
        """The per-sample shape of ``value`` (an op needing its input size, e.g. adaptive pool)."""
        return self.shapes[value]

    def initializer(self, name: str, array: np.ndarray) -> str:
        """Store a weight under ``name`` (float arrays cast to ``float_type``); return ``name``."""
        array = np.asarray(array)
        if array.dtype.kind == "f":
            array = array.astype(self.float_type, copy=False)
        self.initializers[name] = np.ascontiguousarray(array)
        return name

    def constant(self, name: str, array: np.ndarray) -> str:
        """A constant the lowering needs (slice bounds, pads): an initializer in a graph."""
        return self.initializer(name, array)

    def float_constant(self, name: str, value) -> str:
        """A float constant in the model's float type (a scale, a pooling matrix)."""
        return self.constant(name, np.asarray(value, dtype=self.float_type))

    # -- assembling ----------------------------------------------------------------------------
    def tidy(self, outputs: Sequence[str]) -> None:
        """Merge nested Concats and drop the nodes no value of ``outputs`` depends on
        (:mod:`netc.compiler.lower_onnx.rewrite`)."""
        self.nodes = tidy(self.nodes, outputs)

    def finish(self, name: str, inputs: Mapping[str, Shape], outputs: Mapping[str, Shape],
               expected: Mapping[str, Shape] | None = None,
               functions: Sequence[onnx.FunctionProto] = (), doc: str = "",
               metadata: Mapping[str, str] | None = None) -> onnx.ModelProto:
        """The checked model: inputs and outputs get a leading dynamic ``batch`` axis.

        The nodes are tidied first (:meth:`tidy`): no dead node, and no initializer that no
        node reads, is written. ``expected`` maps value names to their per-sample IR shapes
        (outputs are always checked); every one still computed must come out of ONNX shape
        inference as ``[batch, *shape]``.
        """
        self.tidy(list(outputs))
        functions = called(self.nodes, functions)
        made = {o for n in self.nodes for o in n.output}
        read = {i for n in self.nodes for i in n.input}
        weights = {n: a for n, a in self.initializers.items() if n in read}
        declared = [(n, s) for n, s in self.declared.items() if n in made and n not in outputs]

        def value(n: str, shape: Shape) -> onnx.ValueInfoProto:
            return helper.make_tensor_value_info(n, self.elem_type, [BATCH, *shape])

        def model(initializers, weight_inputs=(), value_info=()) -> onnx.ModelProto:
            graph = helper.make_graph(
                self.nodes, name,
                [value(n, s) for n, s in inputs.items()] + list(weight_inputs),
                [value(n, s) for n, s in outputs.items()],
                initializer=initializers, value_info=list(value_info))
            imports = [helper.make_opsetid("", self.opset)]
            if functions:
                imports.append(helper.make_opsetid(DOMAIN, 1))
            proto = helper.make_model(graph, opset_imports=imports, functions=list(functions),
                                      producer_name="netc", doc_string=doc)
            # The oldest IR version that holds the opset (7 for 13, 8 for 14-18), so runtimes
            # that need an old opset can read the file; model-local functions need IR 8.
            ir = helper.find_min_ir_version_for(imports, ignore_unknown=True)
            proto.ir_version = max(ir, 8) if functions else ir
            if metadata:
                helper.set_model_props(proto, dict(metadata))
            return proto

        # The checks run on a skeleton whose large weights are typed graph inputs instead of
        # initializers: the same nodes, names and shapes, without serialising every weight
        # twice more (ResNet-50 compiles in half the time). Small constants stay, since shape
        # inference reads their values (Slice bounds, Pad amounts). Only the skeleton has the
        # declared value_info (a Resize output's batch axis, for inference to carry on): in the
        # file, a value_info with a symbolic batch stops some consumers (tract), and ONNX
        # Runtime infers shapes itself.
        small, weight_inputs = [], []
        for n, array in weights.items():
            if array.size > _SMALL:
                elem = helper.np_dtype_to_tensor_dtype(array.dtype)
                weight_inputs.append(helper.make_tensor_value_info(n, elem, array.shape))
            else:
                small.append(numpy_helper.from_array(array, n))
        skeleton = model(small, weight_inputs, [value(n, s) for n, s in declared])
        try:
            onnx.checker.check_model(skeleton, full_check=True)
        except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as err:
            raise LoweringError(f"the ONNX model fails onnx.checker: {err}") from None
        inferred = onnx.shape_inference.infer_shapes(skeleton, strict_mode=True)
        expected = {k: v for k, v in (expected or {}).items() if k in made}
        check_shapes(inferred, {**expected, **outputs})
        final = model([])
        add_initializers(final.graph, weights)
        return final


def called(nodes: Sequence[onnx.NodeProto],
           functions: Sequence[onnx.FunctionProto]) -> list[onnx.FunctionProto]:
    """The ``functions`` that ``nodes`` call, directly or through one another (a call that
    tidying dropped leaves its function unused), in their order."""
    by_name = {f.name: f for f in functions}
    todo = [n.op_type for n in nodes if n.domain == DOMAIN]
    used: set[str] = set()
    while todo:
        name = todo.pop()
        if name not in used:
            used.add(name)
            todo.extend(n.op_type for n in by_name[name].node if n.domain == DOMAIN)
    return [f for f in functions if f.name in used]


def add_initializers(graph: onnx.GraphProto, weights: Mapping[str, np.ndarray]) -> None:
    """Append each array to ``graph``'s initializers as raw little-endian data.

    Each weight is copied once into the proto (``helper.make_graph`` and ``make_model`` would
    copy all of them twice more, and ``numpy_helper.from_array`` once more through bytes).
    """
    for n, array in weights.items():
        tensor = graph.initializer.add()
        tensor.name = n
        tensor.data_type = helper.np_dtype_to_tensor_dtype(array.dtype)
        tensor.dims.extend(array.shape)
        tensor.raw_data = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()


_TENSOR_TYPES = {"tensor(int64)": onnx.TensorProto.INT64, "tensor(int32)": onnx.TensorProto.INT32,
                 "tensor(float)": onnx.TensorProto.FLOAT}


@lru_cache(maxsize=None)
def _schema(op_type: str, opset: int):
    """The schema of ``op_type`` that opset ``opset`` uses, or None if it has none yet."""
    try:
        return onnx.defs.get_schema(op_type, opset, "")
    except onnx.defs.SchemaError:
        return None


def check_shapes(model: onnx.ModelProto, expected: Mapping[str, Shape]) -> None:
    """Compare ONNX-inferred shapes of ``model``'s top-level values with ``expected``."""
    found: dict[str, list] = {}
    for info in list(model.graph.value_info) + list(model.graph.output):
        dims = info.type.tensor_type.shape.dim
        found[info.name] = [d.dim_param or d.dim_value for d in dims]
    for name, shape in expected.items():
        want = [BATCH, *shape]
        got = found.get(name)
        if got is None:
            raise LoweringError(f"ONNX shape inference found no shape for {name!r} "
                                f"(the IR says {'x'.join(map(str, shape))})")
        if got != want:
            raise LoweringError(f"{name}: ONNX shape inference gives {got}, the IR says {want}")


class FunctionTape(Tape):
    """Records the body of one model-local function; weights become function inputs.

    Value names inside the body are local (the caller strips the call's scope prefix).
    :meth:`initializer` stores the array in ``parent`` under ``prefix + name`` (its full
    name, so weights keep their state-dict names in the file) and returns the local input
    name; :attr:`weights` lists (local name, full name) in the order of the function inputs.
    """

    def __init__(self, parent: Tape, prefix: str):
        super().__init__(parent.float_type, parent.opset)
        self.parent = parent
        self.prefix = prefix
        self.weights: list[tuple[str, str]] = []

    def initializer(self, name: str, array: np.ndarray) -> str:
        self.parent.initializer(self.prefix + name, array)
        self.weights.append((name, self.prefix + name))
        return name

    def tidy(self, outputs: Sequence[str]) -> None:
        """:meth:`Tape.tidy`, and the weights no node reads any more are no function inputs."""
        super().tidy(outputs)
        read = {i for n in self.nodes for i in n.input}
        self.weights = [(local, full) for local, full in self.weights if local in read]

    def constant(self, name: str, array: np.ndarray) -> str:
        array = np.asarray(array)
        if array.dtype.kind == "f":
            array = array.astype(self.float_type, copy=False)
        tensor = numpy_helper.from_array(np.ascontiguousarray(array), name)
        return self.op("Constant", [], name=name, value=tensor)

    def body_key(self, inputs: Sequence[str], outputs: Sequence[str]) -> bytes:
        """Bytes that are equal for two calls whose functions would be identical."""
        proto = self.function("_", inputs, outputs)
        return proto.SerializeToString(deterministic=True)

    def function(self, name: str, inputs: Sequence[str], outputs: Sequence[str],
                 doc: str = "") -> onnx.FunctionProto:
        """The ``FunctionProto``: data ``inputs`` first, then the weights in recorded order."""
        imports = [helper.make_opsetid("", self.opset)]
        if any(n.domain == DOMAIN for n in self.nodes):  # it calls nested functions
            imports.append(helper.make_opsetid(DOMAIN, 1))
        return helper.make_function(
            DOMAIN, name, list(inputs) + [local for local, _ in self.weights], list(outputs),
            self.nodes, imports, doc_string=doc,
        )
