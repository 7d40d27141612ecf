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
- each step's CPU time too (one thread: it leaves out the time other jobs held the core), and
  the ratio of CPU times beside the wall-time ratio;
- ``--split N`` (benchmarks/droppath_split.py): ResNet-110's step split in CPU time: gates as
  drawn, every body closed, every body open, the optimizer step; eager and (with
  ``--compile``) compiled; and the share of the bodies' time the survivals keep;
- ``--profile N``: torch.profiler over N eager steps of each ResNet-110 side, self time per op
  category, and the share of the bodies' *time* the survivals keep (each body shape timed).

    python benchmarks/droppath.py                        # eager ResNet-110, ~3 min, RESULTS.md
    python benchmarks/droppath.py --pairs resnet110 --compile --no-eager --turns 8 --split 4
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

from benchmarks._results import machine, publish, q  # noqa: E402
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
        self.opt_cpu: list[float] = []  # ... of each step's optimizer step

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
        opt = time.process_time()
        self.opt.step()
        self.opt_cpu.append(time.process_time() - opt)
        self.sync()
        took = time.perf_counter() - start
        self.cpu.append(time.process_time() - cpu)
        self.steps += 1
        if self.first_s is None:
            self.first_s = took
        return took



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

    from benchmarks.droppath_split import forced

    batch = batch or PAIRS[pair][2]
    torch._dynamo.reset()
    counters.clear()  # the graph count is per pair
    specs, ratios = sides_of(pair, compiled)
    if whole:  # the whole net compiled: one graph per side, nothing skipped
        specs, ratios = [(n, "whole") for n, _ in specs[:2]], [(0, 1, GOALS.get(pair))]
    sides = [Side(n, batch, m, backend, device) for n, m in specs]
    for i in range(warmup):  # compiling happens here, once per side (and shape)
        for side in sides:
            # The first step with every gate open: each chain is called, so every structure
            # is timed (blocks.Timed) and compiled in the warm-up, not in a timed turn.
            with forced(side.module, True if i == 0 else None):
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
    timed = range(warmup, warmup + len(times[0]))
    drawn = {i: timed_share(side, timed) for i, side in enumerate(sides) if side.module._gates}
    chosen = {i: verdicts(side.module) for i, side in enumerate(sides) if side.mode == "blocks"}
    rows = []
    for i, j, goal in ratios:
        r = [x / y for x, y in zip(times[i], times[j])]
        c = [x / y for x, y in zip(sides[i].cpu, sides[j].cpu)]
        rows.append({
            "cpu_ratio": statistics.median(c), "cpu_p10": q(c, 0.1), "cpu_p90": q(c, 0.9),
            "timed_share": drawn.get(i) if j not in drawn else None, "verdicts": chosen.get(i),
            "pair": pair, "a": sides[i].name, "b": sides[j].name, "a_mode": sides[i].mode,
            "b_mode": sides[j].mode, "batch": batch, "backend": backend, "turns": len(r),
            "ratio": statistics.median(r), "p10": q(r, 0.1), "p90": q(r, 0.9),
            "a_s": statistics.median(times[i]), "b_s": statistics.median(times[j]),
            "a_first": sides[i].first_s, "b_first": sides[j].first_s, "goal": goal,
            "graphs": (graphs_warm, graphs) if compiled or whole else None})
    return rows


def mac_share(module, draws) -> float:
    """The share of the forward multiply-accumulates that steps with these gate ``draws``
    (uniform vectors) run on average: decided as the net decides, nothing computed, the live
    nodes' MACs summed (netc summary's)."""
    from netc.compiler.analyses.summary import summarize
    from netc.compiler.lower_torch.gates import live_nodes

    graph, gates = module.graph, module._gates
    macs = {row.name: row.macs for row in summarize(graph).rows}
    head = graph.outputs[0]
    steps = module.plan((head,))
    total = sum(macs.get(s.name, 0) for s in steps)
    run = []
    for u in draws:
        live = live_nodes(steps, (head,), gates.decide(u)[0])
        run.append(sum(macs.get(s.name, 0) for s in steps if s.name in live) / total)
    return sum(run) / len(run)


def expected_share(module, draws: int = 2000) -> str:
    """What share of the forward MACs a step runs on average, over ``draws`` draws."""
    import torch

    gates = module._gates
    gen = torch.Generator().manual_seed(5)
    share = mac_share(module, (torch.rand(gates.count, dtype=torch.float64, generator=gen)
                               for _ in range(draws)))
    out = f"a step runs {share:.3f} of the forward MACs on average ({draws} draws)"
    if gates.residuals:
        ps = [p for _, p in gates.residuals]
        out += f"; {sum(ps) / len(ps):.3f} of the residual bodies"
    return out


def verdicts(module) -> str:
    """What ``compile_blocks``' trials chose for the module's chain structures."""
    from collections import Counter

    seen = {id(v): v for run in module._blocks.values() for v in run.verdicts.values()}
    ways = Counter(("compiled" if v.compiled else "eager") + " "
                   + {None: "(not 4-D)"}.get(v.layout, str(v.layout).removeprefix("torch."))
                   for v in seen.values())
    return f"{len(seen)} chain structures run " + ", ".join(
        f"{n} {w}" for w, n in sorted(ways.items())).replace("contiguous_format", "NCHW").replace(
        "channels_last", "channels-last")


def timed_share(side, steps) -> float:
    """The share of the forward MACs the timed ``steps`` (step numbers, as seeded) ran."""
    gates = side.module._gates

    def draw(k):
        gates.seed(0, k)
        return gates.uniforms()
    share = mac_share(side.module, [draw(k) for k in steps])
    gates._seeded = None
    return share


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
    timed = {f"`{r['a']}` ({MODES[r['a_mode']]})": (r["timed_share"], r["turns"]) for r in rows
             if r.get("timed_share")}
    if shares:
        lines.append("")
        lines += [f"- `{a}`: {s}." for a, s in shares.items()]
        lines += [f"- {a}: its {n} timed steps ran {s:.3f} of the forward MACs (their own "
                  "draws: few steps' draws vary about the average)." for a, (s, n) in
                  timed.items()]
    chosen = {f"`{r['a']}`": r["verdicts"] for r in rows if r.get("verdicts")}
    lines += [f"- {a} compiled block by block: {v} (each structure's trial on its first call)."
              for a, v in chosen.items()]
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
    ap.add_argument("--split", type=int, metavar="TURNS", default=0,
                    help="also split resnet110's step (CPU time: as drawn, every body closed, "
                         "every body open, the optimizer; eager, and compiled with --compile)")
    ap.add_argument("--profile", type=int, metavar="STEPS", default=0,
                    help="also profile STEPS eager steps of each side of resnet110")
    ap.add_argument("--note", default="", help="a sentence for RESULTS.md")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--json", metavar="FILE", help="also write the raw figures")
    ap.add_argument("--from-json", metavar="FILE", help="only re-render figures saved before")
    args = ap.parse_args(argv)
    if args.from_json:  # e.g. benchmarks/droppath.json, after its note was edited
        saved = json.loads(Path(args.from_json).read_text())
        rows = saved["rows"]
        _shares(rows)
        publish("droppath", render(rows, args.note or saved.get("note", ""),
                                   saved.get("profile", "")) + saved.get("extra", ""),
                not args.no_write)
        return 0

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
    if args.split or args.profile:
        profile = where_it_goes(args, log)
        _save(args.json, rows, profile)
    note, extra = args.note, ""
    if not args.no_write:  # the rows of earlier runs that this one did not re-measure
        rows, profile, note, extra = _stored(rows, profile, note)
    _shares(rows)
    publish("droppath", render(rows, note, profile) + extra, not args.no_write)
    return 0


def where_it_goes(args, log) -> str:
    """The ``--split`` and ``--profile`` texts (benchmarks/droppath_split.py)."""
    from benchmarks import droppath_split as ds

    from netc.compiler.lower_torch.module import build_module

    a, b, default_batch, _ = PAIRS["resnet110"]
    batch = args.batch or default_batch
    texts = []
    if args.split:
        modes = ["eager"] + (["blocks"] if args.compile else [])
        sides = {(MODES[m], net): Side(net, batch, m, args.backend) for m in modes
                 for net in (b, a)}
        res = ds.split(sides, args.split, log)
        compiled = sides.get((MODES["blocks"], a))
        shares = ds.kept_shares(compiled.module) if compiled else ()
        texts.append(ds.render_split(res, shares, args.split, batch))
    if args.profile:
        prof = ds.profile_pair([Side(a, batch), Side(b, batch)], args.profile, log)
        share = ds.body_share(build_module(graph_of(a)), batch, 3)
        texts.append(ds.render_profile(prof, share, args.profile, batch))
    return "\n\n".join(texts)


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


if __name__ == "__main__":
    raise SystemExit(main())
