"""ONNX Runtime on netc's file against torch.onnx.export's files of the same net, turn by turn.

The README once said ONNX Runtime runs netc's ResNet-50 file faster than torch's own exports;
that came from timing the files one after the other. Here, in one process and on one input:

- netc's file (``netc.compiler.lower_onnx.model.lower``), and ``torch.onnx.export`` of the very same module
  (same weights) with the default (dynamo) exporter and the legacy (TorchScript) one, opset 18;
- ONNX Runtime's CPU provider on each, and torch eager, 2 threads each, batch 1;
- **rotating turns**: every round runs each backend once, round k starting with backend k mod n,
  and the ratios are taken within a round (median and p10–p90 of the per-round ratios);
- **one after the other**, for contrast: all runs of one backend, then all of the next.

Results go to the ``ort_turns`` section of ``benchmarks/RESULTS.md``.

    python benchmarks/ort_turns.py                  # resnet50, writes RESULTS.md
    python benchmarks/ort_turns.py --rounds 10 --no-write
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._results import machine, publish, q, rotating  # noqa: E402



def backends(net: str, work: Path, threads: int, skip_default: bool):
    """{label: callable} for torch eager and ORT on each file, and the node counts."""
    import warnings

    import numpy as np
    import onnx
    import onnxruntime as ort
    import torch

    from netc.compiler.frontend.loader import load
    from netc.compiler.lower_onnx.model import lower
    from netc.runtime.files import save_onnx as save
    from netc.compiler.lower_torch.module import build_module
    from netc.compiler.numerics.seeded_weights import init_weights

    graph = load(net)
    weights = init_weights(graph, seed=0)
    module = build_module(graph, weights).eval()
    shape = next(iter(graph.inputs.values())).shape
    x = np.random.default_rng(0).standard_normal((1, *shape)).astype(np.float32)
    files = {"netc": work / "netc.onnx"}
    save(lower(graph, weights), files["netc"])

    class Plain(torch.nn.Module):  # a forward of one tensor, as exporters expect
        def __init__(self):
            super().__init__()
            self.net = module

        def forward(self, image):
            return self.net(image)

    sample = torch.from_numpy(x)
    kinds = [("legacy", False)] + ([] if skip_default else [("default", True)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for label, dynamo in kinds:
            path = work / f"{label}.onnx"
            started = time.perf_counter()
            torch.onnx.export(Plain().eval(), (sample,), str(path), dynamo=dynamo,
                              opset_version=18, input_names=["image"],
                              dynamic_axes={"image": {0: "batch"}} if not dynamo else None)
            print(f"  torch.onnx.export ({label}): {time.perf_counter() - started:.1f} s",
                  flush=True)
            files[f"torch {label}"] = path

    def eager():
        with torch.inference_mode():
            return module(torch.from_numpy(x)).numpy()

    ref = eager()
    fns, nodes, diffs = {"torch eager": eager}, {}, {}
    for label, path in files.items():
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        s = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        name = s.get_inputs()[0].name
        fns[f"ORT {label}"] = lambda s=s, name=name: s.run(None, {name: x})[0]
        nodes[f"ORT {label}"] = len(onnx.load(str(path), load_external_data=False).graph.node)
        diffs[f"ORT {label}"] = float(np.abs(fns[f"ORT {label}"]() - ref).max())
    return fns, nodes, diffs


def one_after_another(fns: dict, rounds: int, warmup: int) -> dict[str, float]:
    out = {}
    for k, fn in fns.items():
        for _ in range(warmup):
            fn()
        runs = []
        for _ in range(rounds):
            start = time.perf_counter()
            fn()
            runs.append(time.perf_counter() - start)
        out[k] = statistics.median(runs)
    return out


def render(net, threads, times, seq, nodes, diffs, rounds) -> str:
    import onnxruntime
    import torch

    base = "ORT netc"
    lines = [
        "## ONNX Runtime on netc's file and on torch's exports, turn by turn "
        "(`benchmarks/ort_turns.py`)",
        "",
        f"Machine: {machine()}, no GPU; torch {torch.__version__}, onnxruntime "
        f"{onnxruntime.__version__}; {threads} threads for every backend; load average "
        f"{os.getloadavg()[0]:.1f} at the end (the cores were shared with other jobs). `{net}`, "
        f"netc's seeded weights in every file, batch 1, {rounds} rounds; each round runs every "
        "backend once, the first one rotating, and a ratio is taken within a round.",
        "",
        "| backend | nodes | median | ratio to ORT on netc's file (median, p10–p90) | "
        "one after the other: median, ratio | max diff from eager |",
        "|---|---|---|---|---|---|",
    ]
    for k, ts in times.items():
        ratios = [a / b for a, b in zip(ts, times[base])]
        seq_ratio = seq[k] / seq[base]
        lines.append(
            f"| {k} | {nodes.get(k, '-')} | {statistics.median(ts) * 1000:.1f} ms | "
            f"{statistics.median(ratios):.3f} ({q(ratios, 0.1):.3f}–{q(ratios, 0.9):.3f}) | "
            f"{seq[k] * 1000:.1f} ms, {seq_ratio:.3f} | "
            f"{diffs[k]:.1e} |" if k in diffs else
            f"| {k} | - | {statistics.median(ts) * 1000:.1f} ms | "
            f"{statistics.median(ratios):.3f} ({q(ratios, 0.1):.3f}–{q(ratios, 0.9):.3f}) | "
            f"{seq[k] * 1000:.1f} ms, {seq_ratio:.3f} | 0 |")
    verdicts = []
    for k in times:
        if k.startswith("ORT torch"):
            ratios = [a / b for a, b in zip(times[k], times[base])]
            med, lo, hi = statistics.median(ratios), q(ratios, 0.1), q(ratios, 0.9)
            if 0.95 <= med <= 1.05:
                verdict = "equal within noise"
            else:
                verdict = "netc's file faster" if med > 1 else "torch's file faster"
                if lo <= 1.0 <= hi:
                    verdict += ", but the spread includes 1 (not a firm difference)"
            verdicts.append(f"{k} / ORT netc = {med:.3f} (p10–p90 {lo:.3f}–{hi:.3f}): {verdict}")
    lines += ["", "- " + "\n- ".join(verdicts)] if verdicts else []
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("net", nargs="?", default="resnet50")
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-default", action="store_true",
                    help="only the legacy exporter (the default one needs onnxscript)")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{args.net}: exporting", flush=True)
        fns, nodes, diffs = backends(args.net, Path(tmp), args.threads, args.skip_default)
        print("rotating turns", flush=True)
        times = rotating(fns, args.rounds, args.warmup)
        print("one after the other", flush=True)
        seq = one_after_another(fns, args.rounds, args.warmup)
    text = render(args.net, args.threads, times, seq, nodes, diffs, args.rounds)
    publish("ort_turns", text, not args.no_write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
