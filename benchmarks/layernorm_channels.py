"""Layer norm over the channels of a CxHxW map in ONNX Runtime: the two forms netc writes.

``LayerNormalization`` (opset 17) normalises the axes from ``axis`` to the end, so a norm over
axis 1 of NCHW (ConvNeXt's LayerNorm2d, netc's ``layernorm``) is either

- **round trip** (opset 17 on): Transpose to NHWC, LayerNormalization over the last axis,
  Transpose back: three nodes, ORT's fused kernel;
- **reductions** (below 17): ReduceMean over axis 1, Sub, Mul, ReduceMean, Add, Sqrt, Div,
  Mul, Add: nine nodes, no transposes.

Both are netc's own (``netc.compiler.ops.layernorm``: ``layer_normalization`` and
``expanded``, on the node of ``layernorm(eps=1e-6)``), at opset 17, on the channel maps of
ConvNeXt-T (the stem's and downsamples' 96x56x56, 192x28x28, 384x14x14; the head's 768x1x1)
and 768x7x7, batch 8, one ORT thread, in rotating turns (``benchmarks/_results.rotating``): the
ratio of each round is taken within the round, so load from elsewhere falls on both forms
alike. The lowering writes the reductions (the faster form on the large maps); the
``layernorm_channels`` section of ``benchmarks/RESULTS.md`` is written with the command.

    python benchmarks/layernorm_channels.py                 # 6 s (load 2), writes RESULTS.md
    python benchmarks/layernorm_channels.py --rounds 10 --no-write
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._results import machine, publish, rotating  # noqa: E402

SHAPES = ((96, 56, 56), (192, 28, 28), (384, 14, 14), (768, 7, 7), (768, 1, 1))
BATCH = 8


def sessions(shape):
    """{form: callable running ORT on that form of netc's layernorm}, node counts, and the
    largest difference between the forms' outputs."""
    import numpy as np
    import onnxruntime as ort

    from netc.compiler.frontend.loader import load_text
    from netc.compiler.lower_onnx.tape import Tape
    from netc.compiler.numerics.seeded_weights import init_weights
    from netc.compiler.ops.layernorm import expanded, layer_normalization

    c, h, w = shape
    graph = load_text(f"net ln {{\n  input image: {c}x{h}x{w}\n  image -> layernorm(eps=1e-6)\n}}\n",
                      f"ln_{c}.net")
    node = graph[graph.outputs[0]]
    weights = init_weights(graph, seed=0)
    rng = np.random.default_rng(1)  # trained-like γ and β: a fresh net's 1 and 0 write no Mul/Add
    for key in (f"{node.name}.weight", f"{node.name}.bias"):
        weights[key] = (weights[key] + rng.normal(0, 0.2, c)).astype(np.float32)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    x = np.random.default_rng(0).standard_normal((BATCH, c, h, w)).astype(np.float32)
    runs, nodes, outs = {}, {}, {}
    for form, write in (("round trip", layer_normalization), ("reductions", expanded)):
        tape = Tape(opset=17)
        tape.shapes["image"] = shape
        out = write(tape, node, "image", weights, True)
        model = tape.finish("ln", {"image": shape}, {out: shape})
        nodes[form] = len(model.graph.node)
        session = ort.InferenceSession(model.SerializeToString(), options,
                                       providers=["CPUExecutionProvider"])
        outs[form] = session.run(None, {"image": x})[0]
        runs[form] = (lambda s=session: s.run(None, {"image": x}))
    diff = float(np.abs(outs["round trip"] - outs["reductions"]).max())
    return runs, nodes, diff


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    lines = []
    for shape in SHAPES:
        runs, nodes, diff = sessions(shape)
        times = rotating(runs, args.rounds, warmup=3)
        ratios = [r / t for r, t in zip(times["reductions"], times["round trip"])]
        ms = {k: 1000 * statistics.median(v) for k, v in times.items()}
        dims = "x".join(map(str, shape))
        lines.append(f"| {dims} | {ms['round trip']:.2f} ({nodes['round trip']}) | "
                     f"{ms['reductions']:.2f} ({nodes['reductions']}) | "
                     f"{statistics.median(ratios):.2f} | {diff:.1e} |")
        print(lines[-1], flush=True)
    command = "python benchmarks/layernorm_channels.py" + (
        f" --rounds {args.rounds}" if args.rounds != 200 else "")
    text = "\n".join([
        "## layernorm over channels: Transpose round trip or reductions (ONNX Runtime)",
        "",
        f"`{command}` ({machine()}; ONNX Runtime CPU, 1 thread, batch {BATCH}, "
        f"{args.rounds} rotating rounds, opset 17). netc's `layernorm(eps=1e-6)` on a CxHxW "
        "map in its two ONNX forms: Transpose, LayerNormalization, Transpose (round trip) and "
        "reductions over axis 1 (what netc writes); median ms per run (nodes), the median of "
        "the per-round ratios "
        "reductions/round trip (above 1: the round trip is faster), and the largest "
        "difference between the two outputs.",
        "",
        "| CxHxW | round trip ms (nodes) | reductions ms (nodes) | ratio | max diff |",
        "| --- | --- | --- | --- | --- |",
        *lines,
    ])
    publish("layernorm_channels", text, not args.no_write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
