"""Training step time with stochastic depth / drop-path against the same net without them.

Huang et al. (Table 2) train a CIFAR-10 ResNet-110 with stochastic depth (p_L = 0.5) in 0.73 of
the time of constant depth, because a closed block's body is not computed; FractalNet's global
drop-path trains one column at a time. This measures what netc's training step costs:

- pairs (A / B): ``cifar_resnet110_sd`` / ``cifar_resnet110``, ``cifar_resnet1202_sd`` /
  ``cifar_resnet1202``, ``fractalnet`` (B=5, C=4, local 0.15 + global 0.5) / the same net with
  no drop-path;
- one SGD step (momentum 0.9, weight decay 5e-4): forward, cross-entropy, backward, update, on
  random CIFAR-shaped data, the gates seeded per step as ``netc train`` seeds them;
- the sides of a run alternate step by step in one process, the order rotating each turn, and
  each turn gives one ratio per pair of sides; we report the median ratio and its p10–p90, so
  load from other jobs on the machine moves both sides of a turn alike;
- eager, and with ``--compile`` four sides in one run: A and B compiled block by block
  (``NetModule.compile_blocks``, what ``netc train --compile`` does: the gates in Python, each
  residual body and column its own graph) and A and B eager, giving A/B compiled, compiled /
  eager for each net, and A/B eager; ``--whole`` compiles the whole net instead (one graph,
  every body computed and multiplied by its gate). Compile time shows in the first step, and
  dynamo's graph count after the warm-up and at the end (a recompilation would show);
- ``--profile N``: torch.profiler over N eager steps of each ResNet-110 side, self time per op
  category, and the share of the bodies' *time* the survivals keep (each body shape timed).

    python benchmarks/droppath.py                        # eager ResNet-110, ~3 min, RESULTS.md
    python benchmarks/droppath.py --pairs resnet110 fractalnet --compile --no-eager --profile 4
    python benchmarks/droppath.py --pairs resnet110 --compile --turns 4 --no-write
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._results import machine, write_section  # noqa: E402
from netc.runtime.files import atomic_write_bytes  # noqa: E402

PAIRS = {  # name: (A, B, batch, default turns)
    "resnet110": ("cifar_resnet110_sd", "cifar_resnet110", 64, 10),
    "resnet1202": ("cifar_resnet1202_sd", "cifar_resnet1202", 64, 3),
    "fractalnet": ("fractalnet", "fractalnet (no drop-path)", 32, 12),
}
GOALS = {"resnet110": 0.80, "fractalnet": 0.65}
MODES = {"eager": "eager", "blocks": "compiled block by block",
         "whole": "torch.compile(net)"}


def graph_of(name: str):
    from netc.compiler.frontend.loader import load

    if name.endswith("(no drop-path)"):
        graph = load(name.split()[0])
        graph.options = graph.options.replace(droppath_local=None, droppath_global=None)
        return graph
    return load(name)


class Side:
    """One network with its optimiser and a fixed batch; :meth:`step` times one SGD step.

    ``mode``: eager, blocks (``NetModule.compile_blocks``: each chain its own compiled graph,
    the gates in Python) or whole (``torch.compile`` of the whole net: one graph, every body
    computed and multiplied by its gate)."""

    def __init__(self, name: str, batch: int, mode: str = "eager", backend: str = "inductor",
                 device: str = "cpu"):
        import torch

        from netc.compiler.lower_torch.module import build_module
        from netc.runtime.train import classifier_head

        self.name, self.mode = name, mode
        graph = graph_of(name)
        self.head = classifier_head(graph)
        self.module = build_module(graph, seed=0).train().to(device)
        self.model = self.module
        self.sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
        if mode == "blocks":
            self.module.compile_blocks(backend=backend)
        elif mode == "whole":
            self.model = torch.compile(self.module, backend=backend)
        self.opt = torch.optim.SGD(self.module.parameters(), lr=0.01, momentum=0.9,
                                   weight_decay=5e-4)
        shape = next(iter(graph.inputs.values())).shape
        gen = torch.Generator().manual_seed(1)
        self.x = torch.randn((batch, *shape), generator=gen).to(device)
        self.y = torch.randint(0, graph[self.head].shape[0], (batch,), generator=gen).to(device)
        self.steps = 0
        self.first_s: float | None = None
        self.cpu: list[float] = []  # the process's CPU seconds of each step

    def step(self) -> float:
        """One SGD step; returns its wall time and appends its CPU time to ``cpu`` (one
        thread: the CPU time leaves out the time other jobs held the core)."""
        import torch.nn.functional as F

        self.module.seed_gates(0, self.steps)
        self.sync()
        start, cpu = time.perf_counter(), time.process_time()
        logits = self.model(self.x, taps=[self.head])[self.head]
        loss = F.cross_entropy(logits, self.y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.sync()
        took = time.perf_counter() - start
        self.cpu.append(time.process_time() - cpu)
        self.steps += 1
        if self.first_s is None:
            self.first_s = took
        return took


def q(values, p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(p * (len(values) - 1))))]


def sides_of(pair: str, compiled: bool) -> tuple[list[tuple[str, str]], list[tuple]]:
    """The sides (net, mode) a pair's run alternates, and its ratios (side i / side j, goal).

    Eager: A / B. Compiled: A and B compiled block by block and eagerly, all four in one
    process (compiling once): A / B compiled (the pair's goal), each net compiled / eager
    (goal: no slower, ratio <= 1), and A / B eager again in the same turns."""
    a, b, _, _ = PAIRS[pair]
    if not compiled:
        return [(a, "eager"), (b, "eager")], [(0, 1, GOALS.get(pair))]
    sides = [(a, "blocks"), (b, "blocks"), (a, "eager"), (b, "eager")]
    return sides, [(0, 1, GOALS.get(pair)), (0, 2, 1.0), (1, 3, 1.0), (2, 3, None)]


def measure(pair: str, compiled: bool, turns: int, warmup: int, cap_s: float, log,
            batch: int | None = None, backend: str = "inductor", whole: bool = False,
            device: str = "cpu") -> list:
    """Alternate the pair's sides turn by turn (the order rotating), one row per ratio."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    batch = batch or PAIRS[pair][2]
    torch._dynamo.reset()
    counters.clear()  # the graph count is per pair
    specs, ratios = sides_of(pair, compiled)
    if whole:  # the whole net compiled: one graph per side, nothing skipped
        specs, ratios = [(n, "whole") for n, _ in specs[:2]], [(0, 1, GOALS.get(pair))]
    sides = [Side(n, batch, m, backend, device) for n, m in specs]
    for i in range(warmup):  # compiling happens here, once per side (and shape)
        for side in sides:
            took = side.step()
            if i == 0:
                log(f"  {side.name} ({side.mode}): first step {took:.1f} s")
    graphs_warm = int(counters["stats"]["unique_graphs"])
    for side in sides:
        side.cpu.clear()
    times = [[] for _ in sides]
    started = time.perf_counter()
    for i in range(turns):
        order = list(range(len(sides)))
        order = order[i % len(order):] + order[:i % len(order)]  # each side first in turn
        for k in order if i % 2 == 0 else order[::-1]:
            times[k].append(sides[k].step())
        if time.perf_counter() - started > cap_s:
            log(f"  time cap reached after {i + 1} turns")
            break
    graphs = int(counters["stats"]["unique_graphs"])
    rows = []
    for i, j, goal in ratios:
        r = [x / y for x, y in zip(times[i], times[j])]
        c = [x / y for x, y in zip(sides[i].cpu, sides[j].cpu)]
        rows.append({
            "cpu_ratio": statistics.median(c), "cpu_p10": q(c, 0.1), "cpu_p90": q(c, 0.9),
            "pair": pair, "a": sides[i].name, "b": sides[j].name, "a_mode": sides[i].mode,
            "b_mode": sides[j].mode, "batch": batch, "backend": backend, "turns": len(r),
            "ratio": statistics.median(r), "p10": q(r, 0.1), "p90": q(r, 0.9),
            "a_s": statistics.median(times[i]), "b_s": statistics.median(times[j]),
            "a_first": sides[i].first_s, "b_first": sides[j].first_s, "goal": goal,
            "graphs": (graphs_warm, graphs) if compiled or whole else None})
    return rows


def expected_share(module, draws: int = 2000) -> str:
    """What share of the forward multiply-accumulates a step runs on average: the gates of
    ``draws`` steps decided (nothing computed), the live nodes' MACs summed (netc summary's)."""
    import torch

    from netc.compiler.analyses.summary import summarize
    from netc.compiler.lower_torch.gates import live_nodes

    graph, gates = module.graph, module._gates
    macs = {row.name: row.macs for row in summarize(graph).rows}
    head = graph.outputs[0]
    steps = module.plan((head,))
    total = sum(macs.get(s.name, 0) for s in steps)
    gen = torch.Generator().manual_seed(5)
    run = 0
    for _ in range(draws):
        decisions, _ = gates.decide(torch.rand(gates.count, dtype=torch.float64, generator=gen))
        live = live_nodes(steps, (head,), decisions)
        run += sum(macs.get(s.name, 0) for s in steps if s.name in live)
    out = f"a step runs {run / draws / total:.3f} of the forward MACs on average ({draws} draws)"
    if gates.residuals:
        ps = [p for _, p in gates.residuals]
        out += f"; {sum(ps) / len(ps):.3f} of the residual bodies"
    return out


def render(rows, turns_note: str, profile: str = "") -> str:
    import torch

    loads = [r["load"] for r in rows if "load" in r] or [os.getloadavg()[0]]
    threads = rows[0].get("threads", torch.get_num_threads()) if rows else 1
    lines = [
        "## Stochastic depth and drop-path: training step time (`benchmarks/droppath.py`)",
        "",
        f"Machine: {machine()}, no GPU; torch {torch.__version__}, {threads} "
        f"thread(s); load average {min(loads):.1f}–{max(loads):.1f} after each pair (the 2 "
        "cores were shared with other jobs: single step times are noisy, the paired ratios "
        "much less). One SGD step (forward, cross-entropy, backward, update) on a fixed random "
        "batch; the sides of a run alternate step by step in one process (the order rotating "
        "each turn), and each turn gives one ratio A/B. *Compiled block by block* is "
        "`NetModule.compile_blocks()` (`netc train --compile`): each residual body, FractalNet "
        "column, stem and head its own `torch.compile` graph, the gates in Python; *graphs* "
        "counts dynamo's graphs after the warm-up steps and at the end (equal: no "
        "recompilation while the gates change). " + turns_note,
        "",
        "| A / B | batch | turns | ratio A/B (median) | p10–p90 | CPU-time ratio (p10–p90) |"
        " A step | B step | first step A / B | graphs | goal |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        goal = r.get("goal")
        verdict = "" if goal is None else (f"≤ {goal:.2f}: " + ("yes" if r["ratio"] <= goal
                                                                else "no"))
        graphs = "" if not r["graphs"] else f"{r['graphs'][0]} → {r['graphs'][1]}"
        lines.append(
            f"| `{r['a']}` {_mode(r['a_mode'], r)} / `{r['b']}` {_mode(r['b_mode'], r)} | "
            f"{r['batch']} | {r['turns']} | **{r['ratio']:.3f}** | {r['p10']:.3f}–{r['p90']:.3f}"
            f" | {_cpu(r)} | {r['a_s']:.2f} s | {r['b_s']:.2f} s | {r['a_first']:.1f} s / "
            f"{r['b_first']:.1f} s | {graphs} | {verdict} |")
    shares = {r["a"]: r["share"] for r in rows if r.get("share")}
    if shares:
        lines.append("")
        lines += [f"- `{a}`: {s}." for a, s in shares.items()]
    if profile:
        lines += ["", profile]
    return "\n".join(lines)


def _cpu(row) -> str:
    if "cpu_ratio" not in row:  # rows measured before CPU time was recorded
        return ""
    return f"{row['cpu_ratio']:.3f} ({row['cpu_p10']:.3f}–{row['cpu_p90']:.3f})"


def _mode(mode: str, row) -> str:
    backend = row.get("backend", "inductor")
    text = MODES[mode] + (f" ({backend})" if mode != "eager" and backend != "inductor" else "")
    return f"({text})"


# ---- where the eager step's time goes (--profile) ------------------------------------------
CATEGORIES = (  # (label, substrings of aten op names), first match wins
    ("convolution backward", ("convolution_backward",)),
    ("convolution forward", ("convolution", "conv2d")),
    ("batch norm backward", ("batch_norm_backward",)),
    ("batch norm forward", ("batch_norm",)),
    ("ReLU forward and backward", ("relu", "clamp_min", "threshold_backward")),
)
OPTIMIZER = "optimizer step (all parameters, skipped ones too)"


def profile_pair(pair: str, steps: int, batch: int | None, log) -> dict:
    """Self CPU time per category of aten op over ``steps`` eager steps of each side (the
    sides alternating), with the wall time per step: where A's time share goes."""
    from torch.profiler import ProfilerActivity, profile

    a_name, b_name, default_batch, _ = PAIRS[pair]
    sides = [Side(a_name, batch or default_batch), Side(b_name, batch or default_batch)]
    for side in sides:
        side.step()
    out = {}
    for side in sides:
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            wall = sum(side.step() for _ in range(steps))
        cats = dict.fromkeys([c for c, _ in CATEGORIES] + ["other ops", OPTIMIZER], 0.0)
        for ev in prof.key_averages():
            if ev.key.startswith("Optimizer.step"):  # its aten ops (add_, mul_) are "other"
                cats[OPTIMIZER] += ev.cpu_time_total / 1e6 / steps
                cats["other ops"] -= ev.cpu_time_total / 1e6 / steps
            if not ev.key.startswith("aten::"):
                continue
            label = next((c for c, subs in CATEGORIES if any(t in ev.key for t in subs)),
                         "other ops")
            cats[label] += ev.self_cpu_time_total / 1e6 / steps
        cats["outside aten ops (Python, autograd engine)"] = wall / steps - sum(cats.values())
        out[side.name] = {"wall": wall / steps, "cats": cats}
        log(f"  {side.name}: {wall / steps:.2f} s a step (profiled)")
    return out


def body_share(module, batch: int, repeats: int) -> tuple[float, float]:
    """The expected share of a step's *time* (not MACs) that stochastic depth keeps, from the
    forward+backward time of one body of each shape, weighted by the blocks' survivals; and
    the bodies' share of the plain step."""
    import torch

    from netc.compiler.lower_torch.blocks import Block, find_chains

    graph, gates = module.graph, module._gates
    steps = module.plan(tuple(graph.outputs))
    survival = {}
    for name, p in gates.residuals:
        survival[graph[name].inputs[0]] = p  # the body's last node -> its survival
    cost = {}
    spent = {}
    for chain in find_chains(steps, graph.outputs, module._gated()):
        last = steps[chain[-1]].name
        if last not in survival:
            continue
        first = graph[steps[chain[0]].name]
        key = (graph[first.inputs[0]].shape, graph[last].shape,
               tuple(steps[i].op for i in chain))
        if key not in cost:  # one body of each shape is timed
            block = Block([module.get_submodule_or_op(steps[i].name) for i in chain])
            x = torch.randn(batch, *graph[first.inputs[0]].shape, requires_grad=True)
            times = []
            for _ in range(repeats + 1):
                t = time.perf_counter()
                block(x).sum().backward()
                times.append(time.perf_counter() - t)
            cost[key] = statistics.median(times[1:])
        spent[last] = cost[key]
    kept = sum(survival[n] * t for n, t in spent.items())
    return kept / sum(spent.values()), sum(spent.values())


def render_profile(prof: dict, share: tuple[float, float], steps: int, batch: int) -> str:
    (a, pa), (b, pb) = prof.items()
    lines = [f"Where the eager step's time goes (`--profile`, {steps} profiled steps a side at "
             f"batch {batch}, torch.profiler self CPU time per step):", "",
             f"| category | `{a}` | `{b}` | A/B |", "|---|---|---|---|"]
    for cat in pa["cats"]:
        x, y = pa["cats"][cat], pb["cats"][cat]
        lines.append(f"| {cat} | {x:.3f} s | {y:.3f} s | {x / y:.3f} |" if y > 0 else
                     f"| {cat} | {x:.3f} s | {y:.3f} s | |")
    lines.append(f"| wall time a step | {pa['wall']:.3f} s | {pb['wall']:.3f} s | "
                 f"{pa['wall'] / pb['wall']:.3f} |")
    kept, bodies = share
    lines += ["", f"Timed alone (forward + backward, one body of each shape, the median of "
              f"repeats; {len(prof)} sides), the 54 residual bodies sum to {bodies:.2f} s "
              f"against the plain net's {pb['wall']:.2f} s profiled step, and their survivals "
              f"keep **{kept:.3f}** of the bodies' time."]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", nargs="+", choices=sorted(PAIRS), default=["resnet110"],
                    help="default resnet110 (a run of about 3 minutes; the other pairs' rows "
                         "stay in benchmarks/droppath.json until re-measured)")
    ap.add_argument("--compile", action="store_true",
                    help="the compile-pairs compiled block by block, against each other and "
                         "against eager (four sides in one run)")
    ap.add_argument("--whole", action="store_true",
                    help="instead, the whole net under torch.compile (one graph: no skipping)")
    ap.add_argument("--backend", default="inductor",
                    help="torch.compile backend (aot_eager: no code generation, compiles fast)")
    ap.add_argument("--no-eager", dest="eager", action="store_false",
                    help="only the compiled runs (with --compile)")
    ap.add_argument("--batch", type=int, help="batch size (default: per pair)")
    ap.add_argument("--merge", nargs="*", default=[], metavar="FILE",
                    help="rows saved by earlier runs (--json) to report with this run's")
    ap.add_argument("--compile-pairs", nargs="+", choices=sorted(PAIRS),
                    default=["resnet110", "fractalnet"],
                    help="the pairs measured compiled (1202 layers take long to compile)")
    ap.add_argument("--turns", type=int, help="turns per pair (default: per pair)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--cap", type=float, default=300.0, help="seconds of turns per pair")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--profile", type=int, metavar="STEPS", default=0,
                    help="also profile STEPS eager steps of each side of resnet110")
    ap.add_argument("--note", default="", help="a sentence for RESULTS.md")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--json", metavar="FILE", help="also write the raw figures")
    ap.add_argument("--from-json", metavar="FILE", help="only re-render figures saved before")
    args = ap.parse_args(argv)
    if args.from_json:
        saved = json.loads(Path(args.from_json).read_text())
        return _emit(render(saved["rows"], args.note, saved.get("profile", "")), args)

    import torch

    torch.set_num_threads(args.threads)
    saved = [json.loads(Path(f).read_text()) for f in args.merge]
    rows = [row for s in saved for row in s["rows"]]
    profile = next((s["profile"] for s in saved if s.get("profile")), "")
    log = lambda s: print(s, flush=True)  # noqa: E731
    for compiled in ([False] if args.eager else []) + ([True] if args.compile else []):
        for pair in args.pairs:
            if compiled and pair not in args.compile_pairs:
                continue
            turns = args.turns or PAIRS[pair][3]
            print(f"{pair} ({'compiled' if compiled else 'eager'}), {turns} turns", flush=True)
            new = measure(pair, compiled, turns, args.warmup, args.cap, log, args.batch,
                          args.backend, whole=compiled and args.whole)
            for row in new:
                print(f"  {row['a']} ({row['a_mode']}) / {row['b']} ({row['b_mode']}): ratio "
                      f"{row['ratio']:.3f} (p10–p90 {row['p10']:.3f}–{row['p90']:.3f}), CPU time "
                      f"{row['cpu_ratio']:.3f}; "
                      f"A {row['a_s']:.2f} s, B {row['b_s']:.2f} s", flush=True)
                row["threads"], row["load"] = args.threads, os.getloadavg()[0]
            rows += new
            _save(args.json, rows, profile)  # after every pair: a killed run keeps its rows
    if args.profile:
        from netc.compiler.lower_torch.module import build_module

        batch = args.batch or PAIRS["resnet110"][2]
        prof = profile_pair("resnet110", args.profile, batch, log)
        share = body_share(build_module(graph_of("cifar_resnet110_sd")), batch, 3)
        profile = render_profile(prof, share, args.profile, batch)
        _save(args.json, rows, profile)
    note, extra = args.note, ""
    if not args.no_write:  # the rows of earlier runs that this one did not re-measure
        rows, profile, note, extra = _stored(rows, profile, note)
    _shares(rows)
    return _emit(render(rows, note, profile) + extra, args)


STORE = Path(__file__).with_name("droppath.json")


def _key(row) -> tuple:
    return (row["a"], row["a_mode"], row["b"], row["b_mode"], row["batch"])


def _stored(rows, profile: str, note: str):
    """This run's rows with the stored rows it did not re-measure (same nets, modes and
    batch), the profile and note (this run's, else the stored ones), and the stored extra
    text; all saved back to :data:`STORE`, so RESULTS.md keeps every pair's latest rows."""
    old = json.loads(STORE.read_text()) if STORE.exists() else {}
    new = {_key(r) for r in rows}
    merged = [r for r in old.get("rows", []) if _key(r) not in new] + rows
    profile = profile or old.get("profile", "")
    note = note or old.get("note", "")
    extra = old.get("extra", "")
    atomic_write_bytes(STORE, json.dumps({"rows": merged, "profile": profile, "note": note,
                                          "extra": extra}, indent=1).encode())
    return merged, profile, note, extra


def _shares(rows) -> None:
    from netc.compiler.lower_torch.module import build_module

    shares = {}
    for row in rows:  # the same draws for every row of a net, also for rows merged from files
        if row["a"] != PAIRS[row["pair"]][0]:
            continue  # a net without gates runs all its MACs
        if row["a"] not in shares:
            shares[row["a"]] = expected_share(build_module(graph_of(row["a"])))
        row["share"] = shares[row["a"]]


def _save(path, rows, profile) -> None:
    if path:
        atomic_write_bytes(path, json.dumps({"rows": rows, "profile": profile},
                                            indent=1).encode())


def _emit(text: str, args) -> int:
    print(text)
    if not args.no_write:
        write_section("droppath", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
