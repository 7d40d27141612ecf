"""A netc ONNX model to int8 with ONNX Runtime's own static quantizer, and netc's layer names.

netc does not write a quantizer: :func:`quantize` hands the float model (batch norm already
folded into the convs by the lowering) to ``onnxruntime.quantization.quantize_static``:

- QDQ format, weights int8 per output channel, MinMax ranges from the calibration inputs;
- activations **uint8**: ONNX Runtime's x86 kernels (VNNI's u8·s8 dot products) take uint8
  activations. With its default int8 activations, ORT 1.31 converts them at load time and
  leaves the convolutions next to the residual adds in float (15 of MobileNet-V2's 52, 20 of
  ResNet-50's 53, counted by ``benchmarks/int8.py``'s profile), and the model runs at 0.7-1.0
  of fp32's time instead of 0.3-0.6 (RESULTS.md, the "stock" column);
- ``quant_pre_process`` first (shape inference and ORT's basic graph optimisations), which
  keeps netc's node names.

netc names every ONNX node after its layer (``inverted_residual3.conv1``), so ``--keep-float``
takes layer names: a layer, or a block whose layers all stay float (``inverted_residual3``).
"""

from __future__ import annotations

import difflib
import logging
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from netc.dsl.diagnostics import UserError

CALIBRATION_BATCH = 16  # inputs per calibration run


def quantize(model, inputs: np.ndarray, keep_float: Sequence[str] = (),
             preprocess: bool = True):
    """``model`` (an fp32 ``onnx.ModelProto`` with one input) as a QDQ int8 model calibrated
    on ``inputs`` (float32 N×...), the nodes named in ``keep_float`` left in float."""
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(prefix="netc-int8-") as tmp:
        source, out = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        onnx.save(model, source)
        try:
            with quiet_logging():
                if preprocess:
                    quant_pre_process(str(source), str(Path(tmp) / "pre.onnx"))
                    source = Path(tmp) / "pre.onnx"
                    onnx.save(restore_initializers(onnx.load(str(source)), model), source)
                quantize_static(str(source), str(out), _reader(model, inputs),
                                quant_format=QuantFormat.QDQ, per_channel=True,
                                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                                nodes_to_exclude=list(keep_float))
        except Exception as err:  # ORT's own exception types; one line, not its traceback
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise UserError(f"ONNX Runtime's quantizer failed on {model.graph.name}: "
                            f"{first}") from None
        return onnx.load(str(out))


def restore_initializers(model, original):
    """``model`` (``original`` after ``quant_pre_process``) with netc's own initializer back
    at each node where the optimiser swapped in an equal one.

    ONNX Runtime's optimiser merges initializers that hold the same values (the zero biases of
    two convs) into one; the quantizer then quantizes it once, at one node's scale, for both,
    and a ``--keep-float`` conv would read its bias through the other conv's DequantizeLinear.
    netc wrote one tensor per layer under the layer's name; this gives each its own back."""
    from onnx import numpy_helper

    ours = {t.name: t for t in original.graph.initializer}
    theirs = {t.name: t for t in model.graph.initializer}
    before = {n.name: n for n in original.graph.node}
    for node in model.graph.node:
        was = before.get(node.name)
        if was is None or len(was.input) != len(node.input):
            continue
        for k, (now, then) in enumerate(zip(node.input, was.input)):
            if now == then or now not in theirs or then not in ours:
                continue
            if np.array_equal(numpy_helper.to_array(theirs[now]),
                              numpy_helper.to_array(ours[then])):
                if then not in theirs:
                    model.graph.initializer.append(ours[then])
                    theirs[then] = ours[then]
                node.input[k] = then
    used = {i for n in model.graph.node for i in n.input}
    kept = [t for t in model.graph.initializer if t.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    return model


def _reader(model, inputs: np.ndarray):
    """A CalibrationDataReader over ``inputs`` in batches (ONNX Runtime's reader protocol)."""
    from onnxruntime.quantization import CalibrationDataReader

    name = model.graph.input[0].name

    class Batches(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(range(0, len(inputs), CALIBRATION_BATCH))

        def get_next(self):
            start = next(self.batches, None)
            if start is None:
                return None
            return {name: np.ascontiguousarray(inputs[start:start + CALIBRATION_BATCH])}

    return Batches()


@contextmanager
def quiet_logging() -> Iterator[None]:
    """ONNX Runtime's quantizer logs advice through ``logging`` (warnings about pre-processing
    and opsets) that would read as netc's own; hold it back while it runs."""
    previous = logging.root.manager.disable
    logging.disable(logging.ERROR)  # its "errors" are notes it goes on after; failures raise
    try:
        yield
    finally:
        logging.disable(previous)


def keep_float_nodes(model, graph, names: Sequence[str]) -> list[str]:
    """The ONNX nodes of ``model`` that ``--keep-float`` names (layers or blocks of ``graph``,
    the IR it was lowered from); a one-line error for a name that has none."""
    nodes = [n.name for n in model.graph.node]
    chosen: list[str] = []
    for name in names:
        found = [n for n in nodes if n == name or n.startswith(name + ".")]
        if not found:
            raise UserError(_no_node(name, graph, nodes))
        chosen += [n for n in found if n not in chosen]
    return chosen


def _no_node(name: str, graph, nodes: list[str]) -> str:
    """Why ``name`` has no node in the ONNX model, with what to name instead."""
    if name in graph.nodes:
        node = graph.nodes[name]
        before = f"; keep {node.inputs[0]} float instead" if node.inputs else ""
        return (f"--keep-float {name}: the {node.op} layer {name} has no node of its own "
                f"in the ONNX model (folded into the layer before it, or nothing at "
                f"inference){before}")
    close = difflib.get_close_matches(name, nodes + list(graph.nodes), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return f"--keep-float {name}: {graph.name} has no layer or block of that name{hint}"


def quantized_nodes(model) -> set[str]:
    """Names of the nodes of a QDQ ``model`` that run in int8: those with a DequantizeLinear
    feeding one of their inputs (the quantizer's QDQ pairs mark what ORT fuses)."""
    dequantized = {o for n in model.graph.node if n.op_type == "DequantizeLinear"
                   for o in n.output}
    return {n.name for n in model.graph.node if n.op_type not in ("QuantizeLinear",
            "DequantizeLinear") and any(i in dequantized for i in n.input)}


def add_metadata(model, calibration: str, keep_float: Sequence[str]) -> None:
    """Record in ``model`` what it was calibrated on and what stayed float."""
    import json

    entry = model.metadata_props.add()
    entry.key = "netc.int8"
    entry.value = json.dumps({"calibration": calibration, "keep_float": list(keep_float),
                              "format": "QDQ, per-channel int8 weights, uint8 activations"})
