"""``netc bench SPEC``: one network, one set of weights, one input, timed on every backend.

Backends, in one process: torch eager, torch eager + ``torch.compile`` (where it compiles), and
ONNX Runtime on every provider that loads here. For each: latency at batch 1 (median and the
10th-90th percentile spread over ``--repeat`` runs after ``--warmup`` runs), throughput at
``--batch`` (images per second from the median batch time), peak resident memory while that
backend warmed up, the largest difference of its output from torch eager's, and its time
relative to eager (the median of the ratios of runs taken in the same turn). Printed as a table,
or as JSON with ``--json``. ``--int8 DATA`` adds a row for the int8 model ``netc compile --int8``
writes (calibrated on DATA, or an int8 ``.onnx`` file given directly) on ONNX Runtime's CPU
provider, with its time relative to the fp32 model's on the same provider, paired the same way.

The backends take turns: every timed round runs each backend once, in an order that rotates
from round to round, so load from other work on the machine falls on all of them alike (run one
after the other, the turn position alone moved a ratio by 15-20% on a shared machine,
shared/reference/MEASURED.md). A backend whose p90 is more than 1.5x its p10 gets a warning: the
machine was busy, so read the paired ratios rather than the times. ``torch.compile`` reports
progress while it compiles (it takes tens of seconds on a CPU).

Threads are pinned to the same number for every CPU backend, so ratios compare the engines and
not their defaults.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from dataclasses import asdict, dataclass

import numpy as np
from netc.dsl.diagnostics import UserError
from netc.runtime.commands.common import add_spec_arguments, load_graph
from netc.runtime.commands.options import (
    add_seed,
    add_threads,
    add_weights,
    bounded_int,
    non_negative_int,
    positive_int,
)


def add_arguments(p):
    add_spec_arguments(p)
    p.add_argument("--batch", type=bounded_int, default=16,
                   help="batch size for throughput (default 16)")
    p.add_argument("--repeat", type=positive_int, default=20, help="timed runs per measurement")
    p.add_argument("--warmup", type=non_negative_int, default=3, help="untimed runs first")
    add_threads(p, "all cores, the same number for every backend")
    add_weights(p)
    add_seed(p)
    p.add_argument("--fp16", action="store_true", help="half precision on GPU backends")
    p.add_argument("--no-compile", dest="compile", action="store_false",
                   help="skip torch.compile (its first call compiles, which takes a while)")
    p.add_argument("--provider", choices=("tensorrt", "cuda", "cpu"), action="append",
                   help="ONNX Runtime provider(s) to time (default: every one that loads)")
    p.add_argument("--int8", metavar="DATA",
                   help="add an int8 row (ONNX Runtime, CPU): the model quantized as netc "
                        "compile --int8 does, calibrated on DATA (digits, a folder, samples, an "
                        ".npy; see netc compile --help), or an int8 .onnx file")
    p.add_argument("--json", action="store_true", help="print the results as JSON")


@dataclass
class Result:
    """One backend's figures; times in milliseconds, memory in MiB."""

    backend: str
    latency_ms: float | None = None
    spread_ms: tuple[float, float] | None = None  # 10th and 90th percentile
    throughput: float | None = None  # images per second at the large batch
    peak_mib: float | None = None
    max_diff: float | None = None  # largest |output − torch eager output| at batch 1
    vs_eager: float | None = None  # median over rounds of (this latency / eager's, same round)
    vs_fp32: float | None = None  # int8 row: the same against ONNX Runtime fp32 on the CPU
    busy: bool = False  # p90 > BUSY x p10: the machine was busy while it ran
    note: str = ""


BUSY = 1.5  # p90 / p10 above this: other work disturbed the timing
TICK = 10.0  # seconds between "still compiling" lines


def run(args) -> int:
    for flag in ("batch", "repeat"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            raise UserError(f"--{flag} must be at least 1; got {getattr(args, flag)}")
    if args.warmup is not None and args.warmup < 0:
        raise UserError(f"--warmup must not be negative; got {args.warmup}")
    import torch
    from netc.compiler.lower_onnx.model import lower
    from netc.compiler.lower_torch.module import build_module
    from netc.compiler.numerics.seeded_weights import init_weights

    threads = args.threads or os.cpu_count()
    torch.set_num_threads(threads)
    graph = load_graph(args)
    if args.weights:
        from netc.runtime.weights import load_weights

        weights = load_weights(graph, args.weights)
    else:
        weights = init_weights(graph, args.seed)
    shape = next(iter(graph.inputs.values())).shape
    rng = np.random.default_rng(args.seed)
    x1 = rng.standard_normal((1, *shape)).astype(np.float32)
    xb = rng.standard_normal((args.batch, *shape)).astype(np.float32)
    module = build_module(graph, weights).eval()
    timer = _Timer(args.warmup, args.repeat)

    # torch runs where ONNX Runtime's best provider runs: on the GPU when torch sees one.
    device = "cuda" if torch.cuda.is_available() else "cpu"
    half = args.fp16 and device == "cuda"
    module = module.to(device, torch.float16 if half else torch.float32)

    def torch_fn(fn):
        def call(x):  # the copy back to the host also waits for the GPU
            with torch.inference_mode():
                t = torch.from_numpy(x).to(device, torch.float16 if half else torch.float32)
                return _first(fn(t)).float().cpu().numpy()
        return call

    eager = torch_fn(module)
    reference = eager(x1)
    suffix = f" ({device}{', fp16' if half else ''})" if device != "cpu" else ""
    backends: list[tuple[Result, object]] = [(Result(f"torch eager{suffix}"), eager)]
    if args.compile:
        backends.append(_compiled(module, torch_fn, x1, xb))
    from netc.runtime.ort import PROVIDERS, open_session, usable_providers

    providers = [PROVIDERS[p] for p in args.provider] if args.provider else usable_providers()
    short = {v: k for k, v in PROVIDERS.items()}
    for provider in providers:
        gpu = provider != "CPUExecutionProvider"
        half = args.fp16 and gpu
        model = lower(graph, weights, fp16=half).SerializeToString()
        session = open_session(model, short[provider], threads)
        name = session.session.get_inputs()[0].name
        label = f"onnxruntime {short[provider]}{' fp16' if half else ''}"
        if gpu:
            b1, bb = session.bind({name: x1}), session.bind({name: xb})

            def fn(x, _s=session, _b={id(x1): b1, id(xb): bb}):
                _s.session.run_with_iobinding(_b[id(x)])
                return _b[id(x)].copy_outputs_to_cpu()[0]
        else:
            def fn(x, _s=session, _n=name):
                return _s.session.run(None, {_n: x})[0]
        backends.append((Result(label), fn))
    if args.int8:
        backends.append(_int8_backend(graph, weights, args, threads))
    results = timer.measure(backends, x1, xb, reference)
    _pair_int8(results, timer.latencies)
    for r in results:
        if r.busy:  # on stderr: --json's stdout stays JSON
            import sys

            print(f"warning: {r.backend}: p10-p90 {r.spread_ms[0]:.2f}-{r.spread_ms[1]:.2f} ms "
                  f"(p90 {r.spread_ms[1] / r.spread_ms[0]:.1f}x p10): the machine was busy; "
                  "compare the paired ratios, or rerun on a quiet machine", file=sys.stderr)
    _report(graph.name, results, args, threads)
    return 0


INT8_CALIBRATION = 32  # calibration inputs for bench's int8 row: its speed, not its accuracy


def _int8_backend(graph, weights, args, threads):
    """The int8 row: an int8 .onnx file, or the model quantized here as netc compile does."""
    import sys

    from netc.compiler.lower_onnx.model import lower
    from netc.runtime.files import read_file
    from netc.runtime.ort import open_session

    if args.int8.lower().endswith(".onnx"):
        model = read_file(args.int8, "--int8", limit=4 << 30)
    else:
        from netc.runtime.int8.pipeline import Int8Options, compile_int8

        options = Int8Options(args.int8, INT8_CALIBRATION, threads=threads)
        model = compile_int8(graph, lower(graph, weights), options,
                             say=lambda line: print(line, file=sys.stderr))[0]
        model = model.SerializeToString()
    session = open_session(model, "cpu", threads)
    name = session.session.get_inputs()[0].name

    def fn(x, _s=session, _n=name):
        return _s.session.run(None, {_n: x})[0]
    return Result(INT8_ROW), fn


INT8_ROW = "onnxruntime cpu int8"


def _pair_int8(results: list[Result], latencies: dict[str, list[float]]) -> None:
    """The int8 row's time over fp32 ONNX Runtime's on the CPU, median of same-round ratios."""
    fp32 = latencies.get("onnxruntime cpu")
    for r in results:
        if r.backend == INT8_ROW and fp32 and r.backend in latencies:
            r.vs_fp32 = statistics.median(a / b for a, b in zip(latencies[r.backend], fp32))


def _first(y):
    return y[0] if isinstance(y, (tuple, list)) else y


def _compiled(module, torch_fn, x1, xb) -> tuple[Result, object | None]:
    """torch.compile where it works: a failure is a row with its reason, not a crash. The first
    calls compile (once per batch size); a line on stderr every TICK s says it is still going."""
    import sys
    import threading

    import torch

    started = time.perf_counter()
    print("torch.compile: compiling (batch 1, then batch {})...".format(len(xb)), file=sys.stderr,
          flush=True)
    done = threading.Event()

    def tick():
        while not done.wait(TICK):
            print(f"torch.compile: still compiling ({time.perf_counter() - started:.0f} s)",
                  file=sys.stderr, flush=True)

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    try:
        fn = torch_fn(torch.compile(module))
        fn(x1)
        fn(xb)
    except Exception as err:  # inductor needs a C++ compiler; some ops do not trace
        reason = str(err).strip().splitlines()[0][:80] if str(err).strip() else type(err).__name__
        return Result("torch.compile", note=f"not available: {reason}"), None
    finally:
        done.set()
        ticker.join()
    took = time.perf_counter() - started
    print(f"torch.compile: compiled in {took:.1f} s", file=sys.stderr, flush=True)
    return Result("torch.compile", note=f"compiling took {took:.1f} s"), fn


class _Timer:
    """Warm-up runs, then ``repeat`` rounds in which every backend runs once, in rotating order;
    peak memory from the kernel's high-water mark during each backend's warm-up."""

    def __init__(self, warmup: int, repeat: int):
        self.warmup, self.repeat = max(warmup, 0), max(repeat, 1)
        self.latencies: dict[str, list[float]] = {}  # backend -> batch-1 times, by round

    def measure(self, backends, x1, xb, reference) -> list[Result]:
        live = [(r, fn) for r, fn in backends if fn is not None]
        for r, fn in live:
            _reset_peak()
            out = fn(x1)
            r.max_diff = float(np.abs(out.astype(np.float32) - reference).max())
            for _ in range(self.warmup):
                fn(x1)
                fn(xb)
            r.peak_mib = _peak_mib()
        fns = [fn for _, fn in live]
        lat = self.rounds(fns, x1, self.repeat)
        batch = self.rounds(fns, xb, max(self.repeat // 2, 3))
        for i, (r, _) in enumerate(live):
            p10, p90 = np.percentile(lat[i], [10, 90])
            r.latency_ms = statistics.median(lat[i])
            r.spread_ms = (float(p10), float(p90))
            r.throughput = len(xb) * 1000.0 / statistics.median(batch[i])
            r.vs_eager = statistics.median(a / b for a, b in zip(lat[i], lat[0]))
            r.busy = bool(p90 > BUSY * p10)
            self.latencies[r.backend] = lat[i]
        return [r for r, _ in backends]

    @staticmethod
    def rounds(fns, x, repeat: int) -> list[list[float]]:
        """Times in ms, ``out[backend][round]``; round k starts with backend k mod n."""
        out: list[list[float]] = [[] for _ in fns]
        n = len(fns)
        for k in range(repeat):
            for j in range(n):
                i = (k + j) % n
                start = time.perf_counter()
                fns[i](x)
                out[i].append((time.perf_counter() - start) * 1000.0)
        return out


def _reset_peak() -> None:
    """Reset the process's peak RSS (Linux: writing 5 to clear_refs); ignored elsewhere."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _peak_mib() -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def _report(name: str, results: list[Result], args, threads: int) -> None:
    import onnxruntime
    import torch

    head = {"net": name, "batch": args.batch, "repeat": args.repeat, "warmup": args.warmup,
            "threads": threads, "torch": torch.__version__, "onnxruntime": onnxruntime.__version__}
    if args.json:
        print(json.dumps({**head, "results": [asdict(r) for r in results]}, indent=1))
        return
    from rich.console import Console
    from rich.table import Table

    title = (f"{name}: batch 1 latency and batch {args.batch} throughput, {threads} threads, "
             f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}")
    table = Table(title=title, title_justify="left", box=None, pad_edge=False)
    for col in ("backend", "latency (ms)", "p10-p90 (ms)", "images/s", "peak RSS",
                "max |diff|", ""):
        table.add_column(col, justify="left" if col in ("backend", "") else "right")
    for r in results:
        if r.latency_ms is None:
            table.add_row(r.backend, "-", "-", "-", "-", "-", r.note)
            continue
        speed = (f"  {r.vs_eager:.3g} of eager's time (paired)" if r is not results[0] else "")
        speed += (f"; {r.vs_fp32:.3g} of onnxruntime cpu's" if r.vs_fp32 is not None else "")
        speed += "  (busy machine)" if r.busy else ""
        spread = f"{r.spread_ms[0]:.2f}-{r.spread_ms[1]:.2f}"
        table.add_row(r.backend, f"{r.latency_ms:.2f}", spread,
                      f"{r.throughput:.1f}", f"{r.peak_mib:.0f} MiB" if r.peak_mib else "-",
                      f"{r.max_diff:.1e}", (r.note + speed).strip())
    Console(width=140).print(table)
