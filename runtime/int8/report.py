"""What int8 costs: each layer's quantization error, and the whole net against its fp32 self.

Per layer (:func:`layer_errors`), with ONNX Runtime's own debugging tools
(``onnxruntime.quantization.qdq_loss_debug``): both models run on calibration inputs with every
intermediate tensor as an output, and for each quantized tensor three signal-to-quantization-
noise ratios (SQNR, dB; higher is better, +6 dB per bit) are read:

- *weights*: the layer's float weights against their int8 values;
- *output*: the layer's output before and after its own QuantizeLinear/DequantizeLinear pair,
  the error this layer's rounding adds by itself;
- *vs fp32*: the int8 model's value against the fp32 model's, the error accumulated up to here.

The layers with the lowest own SQNR are the ones to try in float (``--keep-float``).

For the whole net (:func:`fidelity`): top-1 agreement and the cosine of the outputs between the
fp32 and the int8 model on held-out inputs, and each one's accuracy where the data has labels.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

RUN_BATCH = 32  # inputs per session run


@dataclass(frozen=True)
class LayerError:
    """One quantized tensor's SQNRs in dB (None where it does not apply)."""

    layer: str  # the layer whose output it is (netc's node and tensor names agree)
    op: str  # its ONNX op type in the fp32 model
    output_db: float
    vs_fp32_db: float | None
    weight_db: float | None


@dataclass(frozen=True)
class Fidelity:
    """The int8 model against the fp32 model on held-out inputs."""

    count: int
    agreement: float  # fraction of inputs whose top-1 class is the same
    cosine: float  # mean over inputs of the cosine between the two outputs
    worst_cosine: float
    accuracy: tuple[float, float] | None  # (fp32, int8) top-1 accuracy, where there are labels

    def line(self) -> str:
        text = (f"int8 vs fp32 on {self.count} held-out inputs: top-1 agreement "
                f"{100 * self.agreement:.2f}%, output cosine {self.cosine:.5f} (mean; lowest "
                f"{self.worst_cosine:.4f})")
        if self.accuracy:
            fp32, int8 = self.accuracy
            text += (f"; top-1 accuracy fp32 {100 * fp32:.2f}%, int8 {100 * int8:.2f}% "
                     f"({100 * (int8 - fp32):+.2f} points)")
        return text


def outputs(model, inputs: np.ndarray, threads: int | None = None) -> np.ndarray:
    """The first output of ``model`` (a ModelProto) for ``inputs``, flattened per input."""
    from netc.runtime.ort import open_session

    session = open_session(model.SerializeToString(), "cpu", threads)
    name = session.inputs[0].name
    parts = [session.run({name: inputs[i:i + RUN_BATCH]})[0] for i in range(0, len(inputs),
                                                                          RUN_BATCH)]
    return np.concatenate(parts).reshape(len(inputs), -1).astype(np.float64)


def fidelity(fp32_model, int8_model, held_out: np.ndarray, labels: np.ndarray | None,
             threads: int | None = None) -> Fidelity:
    """How closely ``int8_model`` follows ``fp32_model`` on ``held_out`` (see Fidelity)."""
    ref = outputs(fp32_model, held_out, threads)
    got = outputs(int8_model, held_out, threads)
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1)
    cosine = np.einsum("ij,ij->i", ref, got) / np.maximum(norms, np.finfo(np.float64).tiny)
    top_ref, top_got = ref.argmax(1), got.argmax(1)
    accuracy = None
    if labels is not None and ref.shape[1] > int(labels.max()):
        accuracy = (float((top_ref == labels).mean()), float((top_got == labels).mean()))
    return Fidelity(len(held_out), float((top_ref == top_got).mean()), float(cosine.mean()),
                    float(cosine.min()), accuracy)


def layer_errors(fp32_model, int8_model, inputs: np.ndarray,
                 threads: int | None = None) -> list[LayerError]:
    """Each quantized tensor's SQNRs on ``inputs``, in the fp32 model's node order."""
    import onnx
    from onnxruntime.quantization.qdq_loss_debug import (
        compute_activation_error,
        compute_weight_error,
        create_activation_matching,
        create_weight_matching,
        modify_model_output_intermediate_tensors,
    )

    from netc.runtime.int8.quantize import quiet_logging

    with tempfile.TemporaryDirectory(prefix="netc-int8-report-") as tmp:
        paths = {}
        for key, model in (("fp32", fp32_model), ("int8", int8_model)):
            plain, augmented = Path(tmp) / f"{key}.onnx", Path(tmp) / f"{key}.all.onnx"
            onnx.save(model, plain)
            modify_model_output_intermediate_tensors(str(plain), str(augmented))
            paths[key] = plain
            paths[key + "_all"] = onnx.load(str(augmented))
        with quiet_logging():  # it logs an error for each bias it cannot pair, and goes on
            weights = compute_weight_error(create_weight_matching(str(paths["fp32"]),
                                                                  str(paths["int8"])), sqnr)
    matched = create_activation_matching(_intermediates(paths["int8_all"], inputs, threads),
                                         _intermediates(paths["fp32_all"], inputs, threads))
    producer = {o: n for n in fp32_model.graph.node for o in n.output}
    fused = _apply_removed_activations(matched, producer, int8_model, fp32_model)
    errors = compute_activation_error(matched, sqnr)
    weight_of = {i: n.name for n in fp32_model.graph.node for i in n.input[1:]}
    weight_db = {weight_of[w]: db for w, db in weights.items() if w in weight_of}
    order = {n.name: k for k, n in enumerate(fp32_model.graph.node)}
    rows = []
    for tensor, err in errors.items():
        node = producer.get(tensor)
        if node is None:
            rows.append(LayerError(tensor, "input", err["qdq_err"], err.get("xmodel_err"), None))
            continue
        layer, op = node.name, node.op_type
        if tensor in fused:  # one row for conv + activation, under the conv's name
            layer, op = fused[tensor].name, f"{fused[tensor].op_type}+{node.op_type}"
        rows.append(LayerError(layer, op, err["qdq_err"], err.get("xmodel_err"),
                               weight_db.get(layer)))
    return sorted(rows, key=lambda r: order.get(r.layer, -1))


def sqnr(reference, quantized) -> float:
    """Signal-to-quantization-noise ratio in dB of arrays (or lists of them, one per run): inf
    where they agree exactly, nan where the reference is all zeros (no signal to measure;
    qdq_loss_debug's own version reports 0 dB, the worst score, for both)."""
    ref, got = _flat(reference).astype(np.float64), _flat(quantized)
    signal, noise = float(np.linalg.norm(ref)), float(np.linalg.norm(ref - got))
    if signal == 0.0:
        return float("nan")
    return float("inf") if noise == 0.0 else 20.0 * math.log10(signal / noise)


def _flat(arrays) -> np.ndarray:
    if isinstance(arrays, (list, tuple)):
        return np.concatenate([np.ravel(a) for a in arrays])
    return np.ravel(arrays)


def _apply_removed_activations(matched: dict, producer: dict, int8_model, fp32_model) -> dict:
    """Where the quantizer dropped a Relu or Clip (its range does the clipping), the int8
    model's tensor of that name holds the conv's output before the activation; apply the
    activation to it, so the output SQNR measures rounding and not the activation's work.
    Returns {tensor: the node before the dropped activation}."""
    from onnx import numpy_helper

    writer = {o: n.op_type for n in int8_model.graph.node for o in n.output}
    constants = {t.name: numpy_helper.to_array(t) for t in fp32_model.graph.initializer}
    fused = {}
    for tensor, match in matched.items():
        node = producer.get(tensor)
        if node is None or node.op_type not in ("Relu", "Clip") or \
                writer.get(tensor) == node.op_type:
            continue
        low, high = 0.0, None
        if node.op_type == "Clip":
            bounds = [constants.get(i) for i in node.input[1:3]] + [None, None]
            low, high = (None if b is None else float(np.ravel(b)[0]) for b in bounds[:2])
        match["pre_qdq"] = [np.clip(a, low, high) for a in match["pre_qdq"]]
        if node.input[0] in producer:
            fused[tensor] = producer[node.input[0]]
    return fused


def _intermediates(model, inputs: np.ndarray, threads: int | None) -> dict[str, list]:
    """Every saved tensor of an augmented model (qdq_loss_debug's layout: name -> one array per
    run), run through netc's one ONNX Runtime session opener."""
    from netc.runtime.ort import open_session

    suffix = "_ReshapedSavedOutput"  # qdq_loss_debug's name for a saved tensor
    session = open_session(model.SerializeToString(), "cpu", threads)
    name = session.inputs[0].name
    names = [o.name for o in session.outputs]
    found: dict[str, list] = {}
    for i in range(0, len(inputs), RUN_BATCH):
        for out, value in zip(names, session.run({name: inputs[i:i + RUN_BATCH]})):
            if out.endswith(suffix):
                found.setdefault(out[:-len(suffix)], []).append(value)
    return found


def format_errors(rows: list[LayerError], count: int, show: int = 10) -> list[str]:
    """The ``show`` layers with the lowest own SQNR, worst first, as lines of a table."""
    if not rows:
        return ["no layer was quantized"]
    # Lowest first; a tensor with no signal (all zeros: nan) has nothing to lose, so last.
    worst = sorted(rows, key=lambda r: (math.isnan(r.output_db), r.output_db))[:show]
    width = max(len(r.layer) for r in worst)
    lines = [f"int8 error per layer on {count} calibration inputs, SQNR in dB (higher is "
             f"better), the {len(worst)} worst of {len(rows)}:",
             f"  {'layer':<{width}}  {'op':<18} {'weights':>8} {'output':>8} {'vs fp32':>8}"]
    for r in worst:
        lines.append(f"  {r.layer:<{width}}  {r.op:<18} {_db(r.weight_db):>8} "
                     f"{_db(r.output_db):>8} {_db(r.vs_fp32_db):>8}")
    return lines


def _db(value: float | None) -> str:
    if value is None:
        return "-"
    return "zero" if math.isnan(value) else "exact" if math.isinf(value) else f"{value:.1f}"
