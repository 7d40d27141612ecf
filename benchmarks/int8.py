"""int8 against fp32 in ONNX Runtime, turn by turn: ``netc compile --int8``'s model, and the
stock quantizer's, on the same inputs.

For each net (``resnet50_v1_5`` and ``mobilenet_v2``, netc's seeded weights: speed does not
depend on what the weights learned, and no trained ImageNet weights can be downloaded here):

- fp32: netc's ONNX file (batch norm folded), as ``netc compile`` writes it;
- int8 (netc): the same model through :func:`netc.runtime.int8.pipeline.compile_int8`, exactly
  what ``netc compile --int8 --calibrate samples`` does (QDQ, per-channel int8 weights, uint8
  activations, calibrated on scikit-image's sample pictures through netc's preprocessing);
- int8 (stock): ``quantize_static`` with ONNX Runtime's defaults and per-channel weights on the
  same calibration inputs, the configuration issue 22 measured (0.35 and 0.57 of fp32);
- batch 1 and 8, one thread and all threads, one ONNX Runtime CPU session per model and setting;
- **rotating turns**: every round runs each model once, round k starting with model k mod 3, and
  the ratios int8/fp32 are taken within a round (median, and the p10-p90 of the ratios).

Goals (issue 22): int8/fp32 <= 0.35 for resnet50_v1_5 and <= 0.50 for mobilenet_v2.
Results go to the ``int8`` section of ``benchmarks/RESULTS.md``.

``--accuracy`` measures instead what int8 costs nets netc trains here: LeNet-5 and the CIFAR
ResNet-20 trained with ``netc train`` on scikit-learn's digits (ResNet-20 sees them resized to
32x32, three channels, by netc train's own preprocessing), each quantized as ``netc compile
--int8 --calibrate digits`` does (400 training images) and checked on the 359 held-out digits:
top-1 accuracy of fp32 and int8 and their agreement (issue 22: within 0.5 points, >= 99%).
Results go to the ``int8_accuracy`` section.

    python benchmarks/int8.py                      # both nets, writes RESULTS.md (~3 min)
    python benchmarks/int8.py mobilenet_v2 --rounds 10 --no-write
    python benchmarks/int8.py --accuracy           # trains two nets (~3 min), writes RESULTS.md
    python benchmarks/int8.py mobilenet_v2 --variants --rounds 40   # what else ORT offers

``--variants`` times netc's int8 against the same quantizer with one setting changed: the
first conv or the depthwise convs left in float, per-tensor weights, uint8 weights, int8
activations (ONNX Runtime's default); section ``int8_variants``.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._results import machine, publish, q, rotating  # noqa: E402

GOALS = {"resnet50_v1_5": 0.35, "mobilenet_v2": 0.50}
CALIBRATION = 16  # calibration inputs, at most (samples has fewer than that after hold-out)
MODELS = ("fp32", "int8", "stock")
BUSY_NOTE = (": above the core count, other work shared the cores and the times are slow; the "
             "paired ratios are what to read")



def build(net: str) -> tuple[dict[str, bytes], str, tuple[int, ...]]:
    """The three models of ``net`` as bytes, the fidelity line, and the input shape."""
    from netc.compiler.frontend.loader import load
    from netc.compiler.lower_onnx.model import lower
    from netc.runtime.int8.calibration import load_calibration
    from netc.runtime.int8.pipeline import Int8Options, compile_int8

    graph = load(net)
    fp32 = lower(graph, None, seed=0)
    lines: list[str] = []
    int8, fid = compile_int8(graph, fp32, Int8Options("samples", CALIBRATION), say=lines.append)
    spec = next(iter(graph.inputs.values()))
    data = load_calibration("samples", spec, CALIBRATION)
    stock = stock_int8(fp32, data.calibrate)
    models = {"fp32": fp32.SerializeToString(), "int8": int8.SerializeToString(),
              "stock": stock}
    return models, fid.line(), spec.shape, conv_kinds(fp32)


def stock_int8(model, inputs, **options) -> bytes:
    """``quantize_static`` on ``inputs`` with ONNX Runtime's defaults (QDQ, int8 activations)
    and per-channel weights, or with ``options`` instead."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, quantize_static

    from netc.runtime.int8.quantize import quiet_logging

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter(inputs[i:i + 1] for i in range(len(inputs)))

        def get_next(self):
            x = next(self.items, None)
            return None if x is None else {model.graph.input[0].name: x}

    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "fp32.onnx", Path(tmp) / "stock.onnx"
        onnx.save(model, src)
        with quiet_logging():
            quantize_static(str(src), str(out), Reader(), **{"per_channel": True, **options})
        return out.read_bytes()


def variant_models(net: str) -> tuple[dict[str, bytes], tuple[int, ...]]:
    """fp32, netc's int8, and what else ONNX Runtime offers, each changing one thing."""
    from onnxruntime.quantization import QuantType

    from netc.compiler.frontend.loader import load
    from netc.compiler.lower_onnx.model import lower
    from netc.runtime.int8.calibration import load_calibration

    graph = load(net)
    fp32 = lower(graph, None, seed=0)
    spec = next(iter(graph.inputs.values()))
    x = load_calibration("samples", spec, CALIBRATION).calibrate
    kinds = conv_kinds(fp32)
    convs = [n.name for n in fp32.graph.node if n.op_type == "Conv"]
    netc = {"activation_type": QuantType.QUInt8, "weight_type": QuantType.QInt8}
    changes = {
        "int8 (netc)": {},
        "first conv float": {"nodes_to_exclude": [n for n in convs if kinds[n] == "first conv"]},
        "depthwise float": {"nodes_to_exclude": [n for n in convs if kinds[n] == "depthwise"]},
        "per-tensor weights": {"per_channel": False},
        "uint8 weights": {"weight_type": QuantType.QUInt8},
        "int8 activations (stock)": {"activation_type": QuantType.QInt8},
    }
    models = {"fp32": fp32.SerializeToString()}
    for name, change in changes.items():
        models[name] = stock_int8(fp32, x, **{**netc, **change})
    return models, spec.shape


def variants(net: str, rounds: int, warmup: int) -> list[str]:
    """Each variant's time over fp32's, all taking turns, one thread, batch 1."""
    models, shape = variant_models(net)
    times = time_turns(models, shape, 1, 1, rounds, warmup)
    lines = [f"| {net}, 1 thread, batch 1 | ms | /fp32 (p10-p90) |", "| --- | --- | --- |"]
    for name, t in times.items():
        ratios = [a / b for a, b in zip(t, times["fp32"])]
        lines.append(f"| {name} | {1000 * statistics.median(t):.2f} | "
                     f"{statistics.median(ratios):.3f} ({q(ratios, 0.1):.2f}-"
                     f"{q(ratios, 0.9):.2f}) |")
        print(lines[-1], flush=True)
    return lines


def _command() -> str:
    """The command line that made a section, as RESULTS.md shows it."""
    return " ".join(["python benchmarks/int8.py", *sys.argv[1:]])


def write_variants(lines: list[str], write: bool) -> None:
    text = "\n".join([
        "## int8 variants ONNX Runtime offers (`benchmarks/int8.py --variants`)", "",
        f"`{_command()}` on {machine()} (load average {os.getloadavg()[0]:.1f}): "
        "netc's int8 (QDQ, per-channel int8 weights, uint8 activations) with one thing "
        "changed at a time, all models taking turns with fp32, same calibration (`samples`).",
        "", *lines])
    publish("int8_variants", text, write)


def time_turns(models: dict[str, bytes], shape, batch: int, threads: int, rounds: int,
               warmup: int) -> dict[str, list[float]]:
    """Seconds per run of each model, rounds in rotating order, one session each."""
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    sessions = {k: ort.InferenceSession(v, options, providers=["CPUExecutionProvider"])
                for k, v in models.items()}
    x = np.random.default_rng(1).standard_normal((batch, *shape)).astype(np.float32)
    feeds = {k: {s.get_inputs()[0].name: x} for k, s in sessions.items()}
    return rotating({k: (lambda s=s, f=feeds[k]: s.run(None, f)) for k, s in sessions.items()},
                    rounds, warmup)


def conv_kinds(model) -> dict[str, str]:
    """Node name -> what it is (first conv, depthwise, 1x1, kxk conv, fc) for the fp32 model's
    convs and fcs, and for the activations ORT fuses into them (a fused node takes the
    activation's name)."""
    kinds = {}
    for n in model.graph.node:
        attrs = {a.name: a for a in n.attribute}
        if n.op_type == "Conv":
            group = attrs["group"].i if "group" in attrs else 1
            k = list(attrs["kernel_shape"].ints) if "kernel_shape" in attrs else [0]
            kinds[n.name] = "depthwise" if group > 1 else "1x1 conv" if k == [1, 1] else \
                "kxk conv"
        elif n.op_type == "Gemm":
            kinds[n.name] = "fc"
    first = next(n.name for n in model.graph.node if n.op_type == "Conv")
    kinds[first] = "first conv"
    writer = {o: n.name for n in model.graph.node for o in n.output}
    for n in model.graph.node:
        if n.op_type in ("Relu", "Clip") and writer.get(n.input[0]) in kinds:
            kinds[n.name] = kinds[writer[n.input[0]]]
    return kinds


def op_profile(models: dict[str, bytes], kinds: dict[str, str], shape, runs: int
               ) -> dict[str, dict[str, float]]:
    """ONNX Runtime's own profiler, one thread, batch 1, the models taking turns run by run (so
    load from other work falls on all alike): ms per run by kind of node."""

    import numpy as np
    import onnxruntime as ort

    x = np.random.default_rng(1).standard_normal((1, *shape)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        sessions = {}
        for key, model in models.items():
            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            options.enable_profiling = True
            options.profile_file_prefix = str(Path(tmp) / key)
            sessions[key] = ort.InferenceSession(model, options,
                                                 providers=["CPUExecutionProvider"])
        feeds = {k: {s.get_inputs()[0].name: x} for k, s in sessions.items()}
        names = list(sessions)
        for r in range(runs + 1):  # the first round warms up; it is counted like the others
            for j in range(len(names)):
                key = names[(r + j) % len(names)]
                sessions[key].run(None, feeds[key])
        return {key: _kernel_times(Path(s.end_profiling()), kinds, runs + 1)
                for key, s in sessions.items()}


def _kernel_times(profile: Path, kinds: dict[str, str], runs: int) -> dict[str, float]:
    """ms per run by kind of node, and the count of float conv kernels per run."""
    import json

    totals: dict[str, float] = {}
    for e in json.loads(profile.read_text()):
        if e.get("cat") != "Node" or not e["name"].endswith("_kernel_time"):
            continue
        if e["args"]["op_name"] in FLOAT_CONVS:
            totals[FLOAT_COUNT] = totals.get(FLOAT_COUNT, 0.0) + 1.0 / runs
        # ORT renames what it fuses: conv_nchwc (fp32), conv_token_7 (QDQ groups)
        name = re.sub(r"(_nchwc|_token_\d+)$", "", e["name"].removesuffix("_kernel_time"))
        kind = kinds.get(name, "other (Q/DQ, add, transpose, pool)")
        totals[kind] = totals.get(kind, 0.0) + e["dur"] / 1000.0 / runs
    return totals


FLOAT_CONVS = ("Conv", "FusedConv")  # ONNX Runtime's float conv kernels (NCHWc's included)
FLOAT_COUNT = "convs run in float (count)"


def profile_lines(net: str, profile: dict[str, dict[str, float]]) -> list[str]:
    kinds = sorted({k for t in profile.values() for k in t} - {FLOAT_COUNT},
                   key=lambda k: -profile["fp32"].get(k, 0.0))
    lines = [f"| {net}: ms per run (1 thread, batch 1) | " + " | ".join(MODELS)
             + " | int8/fp32 |", "|" + " --- |" * (len(MODELS) + 2)]
    for kind in kinds:
        ms = [profile[m].get(kind, 0.0) for m in MODELS]
        ratio = f"{ms[1] / ms[0]:.2f}" if ms[0] > 0.005 else "-"
        lines.append(f"| {kind} | " + " | ".join(f"{v:.2f}" for v in ms) + f" | {ratio} |")
    counts = [round(profile[m].get(FLOAT_COUNT, 0.0)) for m in MODELS]
    lines.append(f"| {FLOAT_COUNT} | " + " | ".join(map(str, counts)) + " | |")
    return lines


def row(net: str, batch: int, threads: int, times: dict[str, list[float]]) -> str:
    """One line of the table: medians in ms, paired ratios with their p10-p90."""
    cells = [net, str(batch), str(threads)]
    cells += [f"{1000 * statistics.median(times[k]):.2f}" for k in MODELS]
    for k in ("int8", "stock"):
        ratios = [a / b for a, b in zip(times[k], times["fp32"])]
        cells.append(f"**{statistics.median(ratios):.3f}** ({q(ratios, 0.1):.2f}-"
                     f"{q(ratios, 0.9):.2f})" if k == "int8" else
                     f"{statistics.median(ratios):.3f}")
    ratio = statistics.median(a / b for a, b in zip(times["int8"], times["fp32"]))
    cells.append(f"<= {GOALS[net]:.2f}: {'met' if ratio <= GOALS[net] else 'missed'}")
    return "| " + " | ".join(cells) + " |"


TRAINED = {  # net -> netc train's arguments (short runs that reach > 95% on held-out digits)
    "lenet5": ["--epochs", "8", "--optimizer", "adam", "--lr", "0.003", "--threads", "1"],
    "cifar_resnet20": ["--epochs", "4", "--batch-size", "16", "--optimizer", "adam", "--lr",
                       "0.003", "--threads", "1"],
}


def accuracy(nets: dict[str, list[str]]) -> list[str]:
    """Train each net on digits with netc train, quantize it as netc compile --int8 does, and
    return one table row per net."""
    from netc.compiler.frontend.loader import load
    from netc.compiler.lower_onnx.model import lower
    from netc.runtime.cli import main as netc
    from netc.runtime.int8.pipeline import Int8Options, compile_int8
    from netc.runtime.weights import load_weights

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for net, train_args in nets.items():
            weights = Path(tmp) / f"{net}.safetensors"
            started = time.perf_counter()
            code = netc(["train", net, "--data", "digits", *train_args, "--no-progress",
                         "-o", str(weights), "--checkpoint", str(Path(tmp) / f"{net}.ckpt")])
            if code:
                raise SystemExit(f"netc train {net} failed ({code})")
            trained = time.perf_counter() - started
            graph = load(net)
            fp32 = lower(graph, load_weights(graph, str(weights)))
            _, fid = compile_int8(graph, fp32, Int8Options("digits", 400), say=print)
            fp, i8 = fid.accuracy
            rows.append(f"| {net} | `{' '.join(train_args)}` ({trained:.0f} s) | {fid.count} | "
                        f"{100 * fp:.2f}% | {100 * i8:.2f}% | {100 * (i8 - fp):+.2f} | "
                        f"{100 * fid.agreement:.2f}% | {fid.cosine:.5f} |")
            print(rows[-1], flush=True)
    return rows


def write_accuracy(rows: list[str], write: bool) -> None:
    text = "\n".join([
        "## int8 accuracy of nets netc trains (`benchmarks/int8.py --accuracy`)", "",
        f"`{_command()}` on {machine()}: `netc train NET --data digits ARGS`, then the "
        "model quantized as `netc compile --int8 --calibrate digits --calibrate-images 400` "
        "does (calibrated on training digits) and checked against fp32 on the held-out digits. "
        "Goal (issue 22): within 0.5 points of fp32, agreement >= 99%.", "",
        "| net | netc train args (time) | held-out | fp32 top-1 | int8 top-1 | points | "
        "agreement | output cosine |", "|" + " --- |" * 8, *rows])
    publish("int8_accuracy", text, write)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("nets", nargs="*", default=list(GOALS), metavar="NET",
                    help=f"nets to time (default: {' '.join(GOALS)})")
    ap.add_argument("--rounds", type=int, default=20, help="rounds at batch 1 (half at 8)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--profile", type=int, default=20, metavar="RUNS",
                    help="runs under ONNX Runtime's profiler, for the time by kind of node")
    ap.add_argument("--no-write", action="store_true", help="print, leave RESULTS.md alone")
    ap.add_argument("--variants", action="store_true",
                    help="time what else ONNX Runtime offers against netc's int8 (batch 1, "
                         "one thread)")
    ap.add_argument("--accuracy", action="store_true",
                    help="train LeNet-5 and ResNet-20 on digits; int8 accuracy against fp32")
    args = ap.parse_args()
    if not set(args.nets) <= set(GOALS):
        ap.error(f"nets are {', '.join(GOALS)}; got {' '.join(args.nets)}")
    if args.accuracy:
        write_accuracy(accuracy(TRAINED), not args.no_write)
        return
    if args.variants:
        write_variants([line for net in args.nets for line in
                        ["", *variants(net, args.rounds, args.warmup)]][1:], not args.no_write)
        return
    cores = os.cpu_count() or 1
    lines = ["| net | batch | threads | fp32 ms | int8 ms | stock int8 ms | int8/fp32 "
             "(p10-p90) | stock/fp32 | goal |", "|" + " --- |" * 9]
    fidelity: list[str] = []
    profiles: list[str] = []
    load_before = os.getloadavg()[0]
    for net in args.nets:
        started = time.perf_counter()
        models, fid, shape, kinds = build(net)
        fidelity.append(f"- {net}: {fid} (built in {time.perf_counter() - started:.0f} s)")
        print(fidelity[-1], flush=True)
        for threads in sorted({1, cores}):
            for batch in (1, 8):
                rounds = args.rounds if batch == 1 else max(3, args.rounds // 2)
                times = time_turns(models, shape, batch, threads, rounds, args.warmup)
                lines.append(row(net, batch, threads, times))
                print(lines[-1], flush=True)
        profiles += ["", *profile_lines(net, op_profile(models, kinds, shape, args.profile))]
        print("\n".join(profiles), flush=True)
    import onnxruntime

    load_after = max(load_before, os.getloadavg()[0])
    text = "\n".join([
        "## int8 against fp32 in ONNX Runtime (`benchmarks/int8.py`)", "",
        f"`{_command()}` on {machine()} (load average {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after{BUSY_NOTE if load_after > cores else ''}), "
        f"ONNX Runtime {onnxruntime.__version__}, CPU provider; "
        "seeded weights (speed does not depend on what the weights learned). int8 is "
        "`netc compile --int8 --calibrate samples` (QDQ, per-channel int8 weights, uint8 "
        "activations); stock is `quantize_static(per_channel=True)` with ONNX Runtime's "
        "defaults (int8 activations). Times are medians; ratios are medians of same-round "
        "ratios, the three models taking turns in rotating order.", "",
        *lines, "", "Where the time goes: ONNX Runtime's profiler, kernel time by kind of node "
        "(fused activations counted with their conv):", *profiles, "",
        "Fidelity on held-out sample pictures (seeded weights, so agreement of "
        "near-tied classes says little; the cosine is the figure to read):", "", *fidelity])
    publish("int8", text, not args.no_write)


if __name__ == "__main__":
    main()
