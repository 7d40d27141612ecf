"""The GPU path in one command: inference and a stochastic-depth training step on CUDA.

For ``resnet50_v1_5`` and ``mobilenet_v2`` at batch 1 and 64, with netc's seeded weights:

- ONNX Runtime's CUDA provider on netc's ONNX in float32 and in float16 (``netc compile
  --fp16``: netc's own half-precision lowering, weights and I/O in float16), and TensorRT's
  provider on both when it loads (a row saying it did not, when not); inputs bound on the
  device (``netc.runtime.ort``'s I/O binding);
- torch eager and ``torch.compile`` (inductor) of the same module, float32, in eval mode;
- every variant's logits checked against torch eager float32 (TF32 off, so the reference is
  true float32): the largest absolute difference over the largest absolute logit must stay
  within :data:`TOLERANCE` (float32 1e-3; float16 1e-2, about ten of float16's unit roundoffs
  2**-10, since 50 layers each round their output), and the top-1 classes must agree;
- a stochastic-depth training step: ``cifar_resnet110_sd`` against ``cifar_resnet110`` at
  batch 64, eager and compiled block by block, alternating turn by turn
  (:func:`benchmarks.droppath.measure`).

The variants of one (net, batch) alternate call by call, the order rotating each round, and
each is timed to ``torch.cuda.synchronize()``; the medians are reported. Results go to
RESULTS.md's ``gpu`` section.

    python benchmarks/gpu.py                       # on a CUDA machine, about 5 minutes
    python benchmarks/gpu.py --nets mobilenet_v2 --batches 1 --no-write
    python benchmarks/gpu.py --device cpu --nets lenet5 --batches 2 --backend aot_eager \\
        --no-sd --no-write                          # the same logic on the CPU (tests)

Without a CUDA GPU (and no ``--device cpu``) it prints one line saying so and exits 0.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._results import machine, publish, rotating  # noqa: E402

NETS = ("resnet50_v1_5", "mobilenet_v2")
BATCHES = (1, 64)
# Largest |difference| / largest |reference logit| allowed, by the precision of the variant.
TOLERANCE = {"float32": 1e-3, "float16": 1e-2}


def gpu_missing(device: str) -> str | None:
    """Why ``device`` cannot run here (one line), or None when it can."""
    if not device.startswith("cuda"):
        return None
    import torch

    if torch.version.cuda is None:
        return (f"benchmarks/gpu.py: torch {torch.__version__} is built without CUDA; no GPU "
                "figures measured")
    if not torch.cuda.is_available():
        return "benchmarks/gpu.py: no CUDA GPU on this machine; no GPU figures measured"
    return None


def agreement(out, ref, precision: str) -> dict:
    """How ``out`` (logits, any float type) agrees with ``ref`` (float32 logits): relative
    error (max |out - ref| / max |ref|), the share of top-1 classes that agree, and whether
    both are within the precision's tolerance (error <= TOLERANCE, every top-1 the same)."""
    out = np.asarray(out, dtype=np.float32).reshape(len(ref), -1)
    ref = np.asarray(ref, dtype=np.float32).reshape(len(ref), -1)
    scale = float(np.abs(ref).max()) or 1.0
    rel = float(np.abs(out - ref).max()) / scale
    top1 = float((out.argmax(1) == ref.argmax(1)).mean())
    finite = bool(np.isfinite(out).all())
    return {"rel": rel, "top1": top1, "tol": TOLERANCE[precision],
            "ok": finite and rel <= TOLERANCE[precision] and top1 == 1.0}


def onnx_models(graph) -> dict[str, bytes]:
    """netc's ONNX of ``graph`` (seeded weights, seed 0) in float32 and float16."""
    from netc.compiler.lower_onnx.model import lower

    return {p: lower(graph, fp16=p == "float16").SerializeToString()
            for p in ("float32", "float16")}


def variants(graph, x: np.ndarray, device: str, backend: str) -> tuple[dict, list[str]]:
    """name -> (precision, callable returning logits as numpy); and the lines saying which
    providers did not load."""
    import torch

    from netc.compiler.lower_torch.module import build_module
    from netc.dsl.diagnostics import UserError
    from netc.runtime.ort import open_session

    gpu = device.startswith("cuda")
    module = build_module(graph, seed=0).eval().to(device)
    compiled = torch.compile(module, backend=backend)
    xt = torch.from_numpy(x).to(device)
    sync = torch.cuda.synchronize if gpu else (lambda: None)

    def torch_run(fn):
        def run():
            with torch.no_grad():
                out = fn(xt)
            sync()
            return out
        return run

    fns = {"torch eager": ("float32", torch_run(module)),
           f"torch.compile ({backend})": ("float32", torch_run(compiled))}
    missing = []
    providers = ("cuda", "tensorrt") if gpu else ("cpu",)
    for precision, model in onnx_models(graph).items():
        for provider in providers:
            label = f"ONNX Runtime {provider} {precision}"
            try:
                session = open_session(model, provider)
            except UserError as err:
                missing.append(f"{label}: {err}")
                continue
            feeds = {session.inputs[0].name: x}
            if session.on_gpu:
                binding = session.bind(feeds)

                def run(s=session, b=binding):
                    s.session.run_with_iobinding(b)
                    return b.get_outputs()[0]  # left on the device, as torch's are
            else:
                def run(s=session, f=feeds):
                    return s.run(f)[0]
            fns[label] = (precision, run)
    return fns, missing


def measure_net(net: str, batch: int, device: str, backend: str, rounds: int) -> dict:
    """One (net, batch): every variant's median time, and its agreement with torch eager."""
    import torch

    from netc.compiler.frontend.loader import load

    torch.backends.cudnn.allow_tf32 = False  # the reference is float32, not TF32
    torch.backends.cuda.matmul.allow_tf32 = False
    graph = load(net)
    shape = next(iter(graph.inputs.values())).shape
    x = np.random.default_rng(0).standard_normal((batch, *shape)).astype(np.float32)
    fns, missing = variants(graph, x, device, backend)
    ref = to_numpy(fns["torch eager"][1]())
    checks = {name: agreement(to_numpy(fn()), ref, p) for name, (p, fn) in fns.items()}
    times = rotating({k: fn for k, (_, fn) in fns.items()}, rounds, warmup=3)
    return {"net": net, "batch": batch, "missing": missing,
            "rows": [{"variant": k, "precision": p, "ms": 1e3 * statistics.median(times[k]),
                      **checks[k]} for k, (p, _) in fns.items()]}


def to_numpy(out) -> np.ndarray:
    if hasattr(out, "detach"):  # a torch tensor
        out = out.detach().float().cpu().numpy()
    elif hasattr(out, "numpy"):  # an ONNX Runtime OrtValue on the device
        out = out.numpy()
    return np.asarray(out, dtype=np.float32)


def render(results: list[dict], sd_rows: list[dict], device_name: str) -> str:
    import torch

    lines = ["## The GPU path (`benchmarks/gpu.py`)", "",
             f"Device: {device_name}; host {machine()}; torch {torch.__version__}. Median time "
             "per call, the variants of a (net, batch) alternating call by call; agreement with "
             "torch eager float32 (TF32 off): max |difference| / max |logit|, within "
             f"{TOLERANCE['float32']:g} (float32) or {TOLERANCE['float16']:g} (float16), and "
             "top-1 the same for every image. Command: `python benchmarks/gpu.py`.", "",
             "| net | batch | variant | time | images/s | rel. error | top-1 agree | within "
             "tolerance |", "|---|---|---|---|---|---|---|---|"]
    for res in results:
        for r in res["rows"]:
            lines.append(f"| `{res['net']}` | {res['batch']} | {r['variant']} | "
                         f"{r['ms']:.2f} ms | {1e3 * res['batch'] / r['ms']:,.0f} | "
                         f"{r['rel']:.1e} | {r['top1']:.3f} | "
                         f"{'yes' if r['ok'] else '**no**'} (≤ {r['tol']:g}) |")
    missing = sorted({m for res in results for m in res["missing"]})
    if missing:
        lines += ["", "Did not load: " + "; ".join(missing) + "."]
    if sd_rows:
        lines += ["", "Stochastic-depth training step (`cifar_resnet110_sd` / "
                  "`cifar_resnet110`, SGD, alternating step by step):", "",
                  "| A / B | batch | turns | ratio A/B (median) | A step | B step |",
                  "|---|---|---|---|---|---|"]
        for r in sd_rows:
            lines.append(f"| `{r['a']}` ({r['a_mode']}) / `{r['b']}` ({r['b_mode']}) | "
                         f"{r['batch']} | {r['turns']} | {r['ratio']:.3f} | "
                         f"{1e3 * r['a_s']:.1f} ms | {1e3 * r['b_s']:.1f} ms |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nets", nargs="+", default=list(NETS))
    ap.add_argument("--batches", nargs="+", type=int, default=list(BATCHES))
    ap.add_argument("--device", default="cuda", help="cuda (default), or cpu to try the logic")
    ap.add_argument("--backend", default="inductor", help="torch.compile backend")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--no-sd", dest="sd", action="store_false",
                    help="skip the stochastic-depth training step")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    why = gpu_missing(args.device)
    if why:
        print(why)
        return 0
    import torch

    results = []
    for net in args.nets:
        for batch in args.batches:
            print(f"{net}, batch {batch}", flush=True)
            results.append(measure_net(net, batch, args.device, args.backend, args.rounds))
            for r in results[-1]["rows"]:
                print(f"  {r['variant']}: {r['ms']:.2f} ms, rel. error {r['rel']:.1e}"
                      f"{'' if r['ok'] else ' (OUT OF TOLERANCE)'}", flush=True)
    sd_rows = []
    if args.sd:
        from benchmarks.droppath import measure

        sd_rows = measure("resnet110", True, 20, 2, 120.0, lambda s: print(s, flush=True),
                          64, args.backend, device=args.device)
    name = (torch.cuda.get_device_name() if args.device.startswith("cuda") else
            f"CPU ({args.device})")
    text = render(results, sd_rows, name)
    publish("gpu", text, not args.no_write and args.device.startswith("cuda"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
