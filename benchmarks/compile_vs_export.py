"""``netc compile`` against ``torch.onnx.export`` of the same module, and ONNX Runtime on each file.

For each net (ResNet-50 by default; the 1,202-layer CIFAR ResNet on request):

1. a whole ``netc compile NET -o f.onnx`` process (median of 3 runs);
2. a whole process that imports torch, builds the same module (netc's seeded weights) and calls
   ``torch.onnx.export`` with the default exporter (dynamo, needs onnxscript) and the legacy
   TorchScript one (``dynamo=False``), both at opset 18 with a dynamic batch axis; the export
   call alone is timed too;
3. nodes and file sizes (the default exporter writes weights to a side ``.data`` file);
4. in one process, 2 threads each: ONNX Runtime (CPU) on every file and torch eager, batch 1,
   median of ``--repeat`` runs after warm-up, plus the largest difference from torch eager.

Every step runs in a fresh subprocess, so import costs are counted where a user pays them.
Results go to the ``compile_vs_export`` section of ``benchmarks/RESULTS.md``.

``--compile-time`` measures only the whole-process ``netc compile NET -o f.onnx`` (seeded
weights) of the first net, ``--turns`` times, each turn also timing a bare ``import onnx``
process right after it, so a burst of load from elsewhere hits both alike: the median and
spread of each, and the import's share turn by turn. ``import onnx`` is most of a compile's
fixed cost, and it depends on the installed ml_dtypes (which onnx imports): the section names
the version. It writes the ``compile_time`` section (about a minute).

    python benchmarks/compile_vs_export.py                  # ResNet-50, writes RESULTS.md
    python benchmarks/compile_vs_export.py resnet50 cifar_resnet1202   # both, about 4 min
    python benchmarks/compile_vs_export.py resnet50 --no-write
    python benchmarks/compile_vs_export.py resnet50 --compile-time --turns 15
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._results import machine, publish  # noqa: E402
from netc.runtime.files import atomic_write_bytes  # noqa: E402

# The default run takes about a minute on 2 cores; cifar_resnet1202 adds about three (the
# default exporter alone takes two): `python benchmarks/compile_vs_export.py resnet50
# cifar_resnet1202`.
NETS = ("resnet50",)


def _cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _child(code: str, timeout: float) -> tuple[dict | None, float, str]:
    """Run ``code`` in a fresh interpreter; (its last JSON line + CPU time, wall s, error)."""
    start, cpu = time.perf_counter(), _cpu_children()
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return None, time.perf_counter() - start, f"timed out after {timeout:.0f} s"
    wall = time.perf_counter() - start
    if done.returncode != 0:
        return None, wall, (done.stderr.strip().splitlines() or ["failed"])[-1][:120]
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    result = json.loads(lines[-1]) if lines else {}
    return {**result, "cpu_s": _cpu_children() - cpu}, wall, ""


def netc_compile(net: str, out: Path, weights: Path | None = None, runs: int = 3) -> dict:
    walls, cpus = [], []
    extra = ["--weights", str(weights)] if weights else []
    for _ in range(runs):
        start, cpu = time.perf_counter(), _cpu_children()
        subprocess.run([sys.executable, "-m", "netc.runtime.cli", "compile", net, "-o", str(out),
                        *extra], check=True, capture_output=True, cwd=ROOT)
        walls.append(time.perf_counter() - start)
        cpus.append(_cpu_children() - cpu)
    return {"process_s": statistics.median(walls), "cpu_s": statistics.median(cpus),
            "runs": walls}


IMPORT_ONNX = "import onnx"


def compile_time(net: str, out: Path, turns: int) -> dict:
    """``turns`` turns of a whole ``netc compile NET -o out`` process then an ``import onnx``
    process: each one's wall and CPU seconds."""
    compile_cmd = [sys.executable, "-m", "netc.runtime.cli", "compile", net, "-o", str(out)]
    import_cmd = [sys.executable, "-X", "importtime", "-c", IMPORT_ONNX]
    runs: dict[str, list] = {"compile": [], "compile_cpu": [], "import": [], "import_cpu": [],
                             "ml_dtypes_s": []}
    for _ in range(turns):
        for key, cmd in (("compile", compile_cmd), ("import", import_cmd)):
            start, cpu = time.perf_counter(), _cpu_children()
            done = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT)
            runs[key].append(time.perf_counter() - start)
            runs[key + "_cpu"].append(_cpu_children() - cpu)
        runs["ml_dtypes_s"].append(_import_time(done.stderr, "ml_dtypes"))
    return {"net": net, "turns": turns, "load": os.getloadavg()[0], **runs,
            "ml_dtypes": _version("ml_dtypes"), "onnx": _version("onnx")}


def _import_time(importtime: str, module: str) -> float:
    """Seconds ``python -X importtime`` reports for ``module`` with what it imports."""
    for line in importtime.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) == 3 and parts[2] == module:
            return int(parts[1]) / 1e6
    return 0.0


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def _spread(xs: list[float]) -> str:
    """Median, and the range of the middle 80% of runs and the fastest run."""
    q = statistics.quantiles(xs, n=10, method="inclusive") if len(xs) > 1 else [xs[0]] * 9
    return (f"median {statistics.median(xs):.2f} s (p10-p90 {q[0]:.2f}-{q[-1]:.2f} s, "
            f"fastest {min(xs):.2f} s)")


def compile_time_markdown(r: dict) -> str:
    """The ``compile_time`` section of RESULTS.md."""
    share = [i / c for i, c in zip(r["import"], r["compile"])]
    cmd = (f"python benchmarks/compile_vs_export.py {r['net']} --compile-time "
           f"--turns {r['turns']}")
    goal = statistics.median(r["compile"]) < 1.2
    return "\n".join([
        f"## `netc compile {r['net']}` as a whole process (`{cmd}`)",
        "",
        f"Machine: {machine()}; onnx {r['onnx']}, ml_dtypes {r['ml_dtypes']}; load average "
        f"{r['load']:.1f} at the end. {r['turns']} turns, each a whole `netc compile "
        f"{r['net']} -o f.onnx` process (seeded weights, 97 MiB written) then a bare "
        "`python -c 'import onnx'` process.",
        "",
        "| process | wall | CPU (user + sys) |",
        "|---|---|---|",
        f"| `netc compile {r['net']}` | {_spread(r['compile'])} | "
        f"median {statistics.median(r['compile_cpu']):.2f} s |",
        f"| `import onnx` | {_spread(r['import'])} | "
        f"median {statistics.median(r['import_cpu']):.2f} s |",
        "",
        f"The `import onnx` process is {statistics.median(share):.2f} of a compile's wall time "
        "(median of the turns' ratios); of it, importing ml_dtypes (which onnx imports) took "
        f"{statistics.median(r['ml_dtypes_s']):.2f} s (median, `python -X importtime -c "
        "'import onnx'`): ml_dtypes 0.7.0 registers many more ufunc loops than 0.6.0 and "
        "imports much slower, so this figure depends on the version named above. Goal, a "
        f"whole compile under 1.2 s (median): {'yes' if goal else 'no'}.",
    ] + ([] if r["load"] < (os.cpu_count() or 1) else [
        "", f"The load average ({r['load']:.1f}) exceeded the {os.cpu_count()} cores: the wall "
        "times above are mostly waiting for a core, so the CPU column is the steadier figure; "
        "re-run on a quiet machine for the goal."]))


# The counterpart of the export call alone: lowering and writing, the graph and weights at hand.
LOWER = """
import json, time
from safetensors.numpy import load_file
from netc.compiler.frontend.loader import load
from netc.compiler.lower_onnx.model import lower
from netc.runtime.files import save_onnx as save
graph, weights = load({net!r}), load_file({weights!r})
times = []
for _ in range(3):
    t = time.perf_counter()
    save(lower(graph, weights), {out!r})
    times.append(time.perf_counter() - t)
print(json.dumps({{"call_s": sorted(times)[1]}}))
"""


def netc_call(net: str, out: Path, weights: Path) -> float | None:
    result, _, _ = _child(LOWER.format(net=net, out=str(out), weights=str(weights)), 600)
    return result["call_s"] if result else None


EXPORT = """
import json, time
t0 = time.perf_counter()
import torch
t1 = time.perf_counter()
from netc.compiler.frontend.loader import load
from netc.compiler.lower_torch.module import build_module
from safetensors.numpy import load_file
graph = load({net!r})
net = build_module(graph, load_file({weights!r})).eval()


class Net(torch.nn.Module):  # NetModule.forward takes *inputs; exporters want named ones
    def __init__(self):
        super().__init__()
        self.net = net

    def forward(self, image):
        return self.net(image)


module = Net().eval()
x = torch.randn(1, *next(iter(graph.inputs.values())).shape)
t2 = time.perf_counter()
kw = dict(input_names=["image"], output_names=["out"], opset_version=18)
if {dynamo}:
    kw["dynamic_shapes"] = {{"image": {{0: torch.export.Dim("batch")}}}}
else:
    kw["dynamic_axes"] = {{"image": {{0: "batch"}}, "out": {{0: "batch"}}}}
torch.onnx.export(module, (x,), {out!r}, dynamo={dynamo}, **kw)
t3 = time.perf_counter()
print(json.dumps({{"import_s": t1 - t0, "build_s": t2 - t1, "export_s": t3 - t2}}))
"""


def torch_export(net: str, out: Path, weights: Path, dynamo: bool, timeout: float) -> dict:
    code = EXPORT.format(net=net, out=str(out), dynamo=dynamo, weights=str(weights))
    result, wall, error = _child(code, timeout)
    if result is None:
        return {"error": error}
    return {**result, "process_s": wall}


def describe(path: Path) -> dict:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    size = sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
    ops: dict[str, int] = {}
    for node in model.graph.node:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
    return {"nodes": len(model.graph.node), "bytes": size, "ops": ops,
            "opset": max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))}


INFERENCE = """
import json, statistics, time
import numpy as np, onnxruntime as ort, torch
torch.set_num_threads(2)
from netc.compiler.frontend.loader import load
from netc.compiler.lower_torch.module import build_module
from safetensors.numpy import load_file
graph = load({net!r})
module = build_module(graph, load_file({weights!r})).eval()
x = np.random.default_rng(0).standard_normal((1, *next(iter(graph.inputs.values())).shape))
x = x.astype(np.float32)

def eager():
    with torch.inference_mode():
        return module(torch.from_numpy(x)).numpy()


ref = eager()
fns, out = {{"torch eager": eager}}, {{}}
for label, path in {files!r}.items():
    so = ort.SessionOptions(); so.intra_op_num_threads = 2
    s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    fns[label] = lambda s=s, name=name: s.run(None, {{name: x}})[0]
    y = fns[label]()
    out[label] = {{"max_diff": float(np.abs(y - ref).max()), "max_ref": float(np.abs(ref).max())}}
out["torch eager"] = {{}}
# Round robin: each repetition runs every backend once, so a burst of load from elsewhere
# hits them all alike; the first backend rotates, since a fixed turn order alone moved a ratio
# by 15-20% (benchmarks/ort_turns.py measures the ratios turn by turn).
times = {{k: [] for k in fns}}
keys = list(fns)
for r in range({warmup} + {repeat}):
    for j in range(len(keys)):
        k = keys[(r + j) % len(keys)]; fn = fns[k]
        t = time.perf_counter(); fn(); dt = time.perf_counter() - t
        if r >= {warmup}:
            times[k].append(dt)
for k in fns:
    out[k]["ms"] = statistics.median(times[k]) * 1000
print(json.dumps(out))
"""


def inference(net: str, weights: Path, files: dict[str, str], repeat: int, warmup: int) -> dict:
    code = INFERENCE.format(net=net, files=files, repeat=repeat, warmup=warmup,
                            weights=str(weights))
    result, _, error = _child(code, 1800)
    return result if result is not None else {"error": error}


def bench_net(net: str, args, work: Path) -> dict:
    from safetensors.numpy import save_file

    from netc.compiler.frontend.loader import load
    from tests.test_onnx_zoo import sane_weights

    # One set of weights for every file and for torch eager, with batch-norm statistics a
    # trained net could have: fresh ones (mean 0, variance 1) overflow a 1,202-layer net.
    weights = work / f"{net}.safetensors"
    save_file(sane_weights(load(net)), str(weights))
    ours = work / f"{net}.onnx"
    row: dict = {"net": net, "load": os.getloadavg()[0]}
    row["netc seeded"] = netc_compile(net, work / f"{net}.seeded.onnx")
    row.update({"netc": netc_compile(net, ours, weights), "files": {"netc": str(ours)}})
    row["netc"].update(describe(ours))
    row["netc"]["call_s"] = netc_call(net, work / f"{net}.call.onnx", weights)
    for label, dynamo in (("default", True), ("legacy", False)):
        if label in args.skip:
            row[label] = {"error": "skipped"}
            continue
        out = work / label / f"{net}.onnx"
        out.parent.mkdir(exist_ok=True)
        print(f"  torch.onnx.export ({label}) of {net} ...", flush=True)
        row[label] = torch_export(net, out, weights, dynamo, args.timeout)
        if "error" not in row[label]:
            row[label].update(describe(out))
            row["files"][f"torch {label}"] = str(out)
    print(f"  inference of {net} ...", flush=True)
    row["inference"] = inference(net, weights, row["files"], args.repeat, args.warmup)
    return row


def versions() -> str:
    import onnx
    import onnxruntime
    import torch

    try:
        import onnxscript

        script = f", onnxscript {onnxscript.__version__}"
    except ImportError:
        script = ", onnxscript not installed (no default exporter)"
    return (f"torch {torch.__version__}, onnx {onnx.__version__}, "
            f"onnxruntime {onnxruntime.__version__}{script}")


def markdown(rows: list[dict]) -> str:
    def secs(d, key="process_s"):
        if key not in d:
            return f"n/a ({d.get('error', '')})"
        return f"{d[key]:.2f} s" + (f", CPU {d['cpu_s']:.2f} s" if "cpu_s" in d else "")

    lines = [
        "## ONNX: `netc compile` against `torch.onnx.export` (`python "
        f"benchmarks/compile_vs_export.py {' '.join(r['net'] for r in rows)}`)",
        "",
        f"Machine: {machine()}, no GPU; {versions()}; load average "
        f"{max(r.get('load', os.getloadavg()[0]) for r in rows):.1f} while measuring (other "
        "work shared the cores: CPU seconds are steadier than wall seconds). Whole processes "
        "(`import torch` included for torch), wall and CPU time; the export call alone in "
        "brackets. Inference: ONNX Runtime CPU provider and torch eager in one process, 2 "
        "threads each, batch 1, median latency of runs taken in turn.",
        "",
        "| net | netc compile (seeded weights) | netc compile --weights | default exporter | "
        "legacy exporter | nodes (netc / default / legacy) | file size (netc / default / legacy) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        def nodes(k):
            return str(r[k].get("nodes", "-"))

        def size(k):
            return f"{r[k]['bytes'] / 2**20:.1f} MiB" if "bytes" in r[k] else "-"

        def export(k):
            d = r[k]
            return f"{secs(d)} (call {d['export_s']:.2f} s)" if "export_s" in d else secs(d)
        seeded = secs(r["netc seeded"]) if "netc seeded" in r else "-"
        call = r["netc"].get("call_s")
        ours = secs(r["netc"]) + (f" (call {call:.2f} s)" if call else "")
        lines.append(f"| {r['net']} | {seeded} | {ours} | {export('default')} | "
                     f"{export('legacy')} | {nodes('netc')} / {nodes('default')} / "
                     f"{nodes('legacy')} | {size('netc')} / {size('default')} / "
                     f"{size('legacy')} |")
    lines += ["", "| net | torch eager | ORT on netc's file | ORT on default export | "
              "ORT on legacy export | max diff of netc's file (max output) |",
              "|---|---|---|---|---|---|"]
    for r in rows:
        inf = r["inference"]
        if "error" in inf:
            lines.append(f"| {r['net']} | inference failed: {inf['error']} | | | | |")
            continue

        def ms(k):
            return f"{inf[k]['ms']:.3g} ms" if k in inf else "-"
        diff = inf["netc"]
        lines.append(f"| {r['net']} | {ms('torch eager')} | {ms('netc')} | "
                     f"{ms('torch default')} | {ms('torch legacy')} | "
                     f"{diff['max_diff']:.1e} ({diff['max_ref']:.2g}) |")
    lines.append("")
    for r in rows:
        ours = r.get("netc seeded", r["netc"])
        parts = [f"**{r['net']}**: a seeded `netc compile` process takes {ours['process_s']:.2f} s "
                 f"(CPU {ours['cpu_s']:.2f} s)"]
        for k in ("default", "legacy"):
            if "process_s" in r[k]:
                parts.append(f"the {k} exporter's process takes "
                             f"{r[k]['process_s'] / ours['process_s']:.1f}x as long (its export "
                             f"call alone {r[k]['export_s'] / ours['process_s']:.1f}x) and "
                             f"{r[k]['cpu_s'] / ours['cpu_s']:.1f}x the CPU time")
        call = r["netc"].get("call_s")
        if call and "export_s" in r["default"] and "export_s" in r["legacy"]:
            parts.append(f"lowering and writing alone (graph and weights at hand) takes "
                         f"{call:.2f} s: the default export call takes "
                         f"{r['default']['export_s'] / call:.0f}x as long, the legacy one "
                         f"{r['legacy']['export_s'] / call:.1f}x")
        inf = r["inference"]
        if "netc" in inf:
            parts.append(f"ORT on our file takes {inf['netc']['ms'] / inf['torch eager']['ms']:.2f}"
                         " of torch eager's time")
        lines.append("- " + "; ".join(parts) + ".")
        lines.append("  " + _targets(r))
    lines += ["", "Besides importing onnx (section `compile_time`), most of a seeded ResNet-50 "
              "compile is drawing 25.6 M seeded normal numbers and their batch-norm statistics "
              "(`compiler/numerics/seeded_weights.py`, one generator per node, drawn in "
              "threads) and serialising and writing 97 MiB; lowering and checking 122 nodes is "
              "a small part, which is why ResNet-50 misses the 20x mark that a deep net, where "
              "torch's exporter pays per node, passes easily (`cifar_resnet1202`)."]
    lines += ["", "No GPU was lent to this task, so there are no CUDA figures "
              "(`netc bench resnet50` in fp32 and `--fp16` on the CUDA provider); `netc bench` "
              "measures them where ONNX Runtime's CUDA provider loads."]
    return "\n".join(lines)


def _targets(r: dict) -> str:
    """The issue's targets for one net, each with yes or no and the number it rests on."""
    ours, default, legacy = r.get("netc seeded", r["netc"]), r["default"], r["legacy"]
    out = []
    call = r["netc"].get("call_s")
    for name, d, goal in (("the default exporter", default, 20), ("the legacy one", legacy, 1)):
        if "process_s" not in d:
            continue
        ratios = [d["process_s"] / ours["process_s"], d["export_s"] / call if call else 0]
        ok = all(x >= goal for x in ratios) if goal > 1 else all(x > 1 for x in ratios)
        want = f"at least {goal}x faster than" if goal > 1 else "faster than"
        out.append(f"{want} {name}: {'yes' if ok else 'no'} (process against process "
                   f"{ratios[0]:.1f}x, call against call {ratios[1]:.1f}x, its call against "
                   f"our whole process {d['export_s'] / ours['process_s']:.1f}x)")
    if "nodes" in default:
        ok = r["netc"]["nodes"] <= default["nodes"]
        out.append(f"no more nodes than the default exporter: {'yes' if ok else 'no'} "
                   f"({r['netc']['nodes']} vs {default['nodes']})")
    inf = r["inference"]
    if "netc" in inf:
        ok = inf["netc"]["ms"] < inf["torch eager"]["ms"]
        out.append(f"ORT on our file faster than torch eager at batch 1: {'yes' if ok else 'no'}")
    return "Targets: " + "; ".join(out) + "."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("nets", nargs="*", default=list(NETS))
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=900, help="seconds per export")
    parser.add_argument("--skip", action="append", default=[], choices=("default", "legacy"))
    parser.add_argument("--no-write", dest="write", action="store_false")
    parser.add_argument("--json", metavar="FILE", help="also write the raw figures")
    parser.add_argument("--from-json", metavar="FILE", help="only re-render figures saved before")
    parser.add_argument("--compile-time", action="store_true",
                        help="only the whole-process compile time of the first net")
    parser.add_argument("--turns", type=int, default=15, help="turns of --compile-time")
    args = parser.parse_args()
    if args.compile_time:
        with tempfile.TemporaryDirectory() as tmp:
            text = compile_time_markdown(compile_time(args.nets[0], Path(tmp) / "f.onnx",
                                                      args.turns))
        publish("compile_time", text, args.write)
        return
    if args.from_json:
        rows = json.loads(Path(args.from_json).read_text())
    else:
        rows = []
        with tempfile.TemporaryDirectory() as tmp:
            for net in args.nets:
                print(f"{net}:", flush=True)
                rows.append(bench_net(net, args, Path(tmp)))
    if args.json:
        atomic_write_bytes(args.json, json.dumps(rows, indent=1).encode())
    publish("compile_vs_export", markdown(rows), args.write)


if __name__ == "__main__":
    main()
