"""The steps of ``netc compile SPEC --int8 --calibrate DATA``, in order.

1. the calibration and held-out inputs, prepared and checked (nothing is written on an error);
2. ``--keep-float`` names resolved to the nodes netc wrote for those layers;
3. ONNX Runtime's static quantizer on the fp32 model (batch norm already folded);
4. the int8 model checked with ``onnx.checker``, and the kept layers checked to be float;
5. the error of each layer on calibration inputs, then the fidelity line on held-out inputs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from netc.dsl.diagnostics import UserError

REPORT_BYTES = 1 << 30  # activations the per-layer report may hold (fp32, int8's both sides)
REPORT_MAX = 32  # inputs the per-layer report runs on, at most


@dataclass(frozen=True)
class Int8Options:
    """What the command line asked for."""

    calibrate: str
    count: int = 128
    keep_float: Sequence[str] = ()
    preprocess: bool = True
    threads: int | None = None


def compile_int8(graph, model, options: Int8Options, say: Callable[[str], None] = print):
    """``model`` (the fp32 ONNX lowering of ``graph``) quantized; the report goes to ``say``.
    Returns the int8 ``onnx.ModelProto`` and its :class:`~netc.runtime.int8.report.Fidelity`."""
    import onnx

    from netc.runtime.int8.calibration import load_calibration
    from netc.runtime.int8.quantize import (
        add_metadata,
        keep_float_nodes,
        quantize,
        quantized_nodes,
    )
    from netc.runtime.int8.report import fidelity, format_errors, layer_errors

    if len(graph.inputs) != 1:
        raise UserError(f"--int8: {graph.name} has {len(graph.inputs)} inputs; calibration "
                        "feeds nets with one input")
    spec = next(iter(graph.inputs.values()))
    keep = keep_float_nodes(model, graph, options.keep_float)
    data = load_calibration(options.calibrate, spec, options.count)
    say(f"calibrating on {data.describe()}")
    started = time.perf_counter()
    int8 = quantize(model, data.calibrate, keep, options.preprocess)
    onnx.checker.check_model(int8)
    quantized = quantized_nodes(int8)
    still = sorted(set(keep) & quantized)
    if still:  # the quantizer did not honour nodes_to_exclude: say so rather than write it
        raise UserError(f"--keep-float: ONNX Runtime's quantizer quantized {', '.join(still)}")
    ops = sum(n.op_type not in ("QuantizeLinear", "DequantizeLinear") for n in int8.graph.node)
    say(f"quantized in {time.perf_counter() - started:.1f} s: {len(quantized)} of {ops} "
        "nodes in int8 (QDQ)" + (f"; kept in float: {', '.join(keep)}" if keep else ""))
    n = _report_size(graph, len(data.calibrate))
    say("\n".join(format_errors(layer_errors(model, int8, data.calibrate[:n], options.threads),
                                n)))
    result = fidelity(model, int8, data.held_out, data.labels, options.threads)
    say(result.line())
    add_metadata(int8, data.source, keep)
    return int8, result


def _report_size(graph, available: int) -> int:
    """Inputs for the per-layer report: as many as fit REPORT_BYTES, 1 to REPORT_MAX."""
    import math

    per_input = 3 * 4 * sum(math.prod(n.shape) for n in graph.nodes.values() if n.shape)
    return max(1, min(available, REPORT_MAX, REPORT_BYTES // max(per_input, 1)))
