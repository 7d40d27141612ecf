"""Training step time with stochastic depth / drop-path against the same net without them.

Huang et al. (Table 2) train a CIFAR-10 ResNet-110 with stochastic depth (p_L = 0.5) in 0.73 of
the time of constant depth, because a closed block's body is not computed; FractalNet's global
drop-path trains one column at a time. This measures what netc's training step costs:

- pairs (A / B): ``cifar_resnet110_sd`` / ``cifar_resnet110``, ``cifar_resnet1202_sd`` /
  ``cifar_resnet1202``, ``fractalnet`` (B=5, C=4, local 0.15 + global 0.5) / the same net with
  no drop-path;
- one SGD step (momentum 0.9, weight decay 5e-4): forward, cross-entropy, backward, update, on
  random CIFAR-shaped data, the gates seeded per step as ``netc train`` seeds them;
- the two sides alternate step by step in one process, A first on even turns and B first on odd
  ones, and each turn gives one ratio A/B; we report the median ratio and its p10–p90, so load
  from other jobs on the machine moves both sides of a turn alike;
- eager, and ``torch.compile`` (inductor) where asked: compile time (the first step) and the
  steady state, and the number of graphs dynamo made (a recompilation storm would show here).

    python benchmarks/droppath.py                               # eager, all pairs, RESULTS.md
    python benchmarks/droppath.py --pairs resnet110 --compile --turns 10 --no-write
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
    "resnet110": ("cifar_resnet110_sd", "cifar_resnet110", 64, 20),
    "resnet1202": ("cifar_resnet1202_sd", "cifar_resnet1202", 64, 3),
    "fractalnet": ("fractalnet", "fractalnet (no drop-path)", 32, 12),
}
GOALS = {"resnet110": 0.80, "fractalnet": 0.65}


def graph_of(name: str):
    from netc.compiler.frontend.loader import load

    if name.endswith("(no drop-path)"):
        graph = load(name.split()[0])
        graph.options = graph.options.replace(droppath_local=None, droppath_global=None)
        return graph
    return load(name)


class Side:
    """One network with its optimiser and a fixed batch; :meth:`step` times one SGD step."""

    def __init__(self, name: str, batch: int, compiled: str | bool):
        import torch

        from netc.compiler.lower_torch.module import build_module
        from netc.runtime.train import classifier_head

        self.name = name
        graph = graph_of(name)
        self.head = classifier_head(graph)
        self.module = build_module(graph, seed=0).train()
        self.model = torch.compile(self.module, backend=compiled) if compiled else self.module
        self.opt = torch.optim.SGD(self.module.parameters(), lr=0.01, momentum=0.9,
                                   weight_decay=5e-4)
        shape = next(iter(graph.inputs.values())).shape
        gen = torch.Generator().manual_seed(1)
        self.x = torch.randn((batch, *shape), generator=gen)
        self.y = torch.randint(0, graph[self.head].shape[0], (batch,), generator=gen)
        self.steps = 0
        self.first_s: float | None = None

    def step(self) -> float:
        import torch.nn.functional as F

        self.module.seed_gates(0, self.steps)
        start = time.perf_counter()
        logits = self.model(self.x, taps=[self.head])[self.head]
        loss = F.cross_entropy(logits, self.y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        took = time.perf_counter() - start
        self.steps += 1
        if self.first_s is None:
            self.first_s = took
        return took


def q(values, p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(p * (len(values) - 1))))]


def measure(pair: str, compiled: str | bool, turns: int, warmup: int, cap_s: float, log,
            batch: int | None = None) -> dict:
    """Alternate the pair's two sides turn by turn; the paired ratios and the times."""
    import torch._dynamo

    a_name, b_name, default_batch, _ = PAIRS[pair]
    batch = batch or default_batch
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()  # the graph count is per pair
    a, b = Side(a_name, batch, compiled), Side(b_name, batch, compiled)
    for i in range(warmup):  # compiling happens here, once per side
        for side in (a, b) if i % 2 == 0 else (b, a):
            took = side.step()
            if i == 0:
                log(f"  {side.name}: first step {took:.1f} s" + (" (compiling)" if compiled
                                                                 else ""))
    ta, tb, ratios = [], [], []
    started = time.perf_counter()
    for i in range(turns):
        if i % 2 == 0:
            x, y = a.step(), b.step()
        else:
            y, x = b.step(), a.step()
        ta.append(x)
        tb.append(y)
        ratios.append(x / y)
        if time.perf_counter() - started > cap_s:
            log(f"  time cap reached after {i + 1} turns")
            break
    graphs = int(counters["stats"]["unique_graphs"]) if compiled else None
    return {"pair": pair, "a": a_name, "b": b_name, "batch": batch, "compiled": compiled,
            "turns": len(ratios), "ratio": statistics.median(ratios),
            "p10": q(ratios, 0.1), "p90": q(ratios, 0.9),
            "a_s": statistics.median(ta), "b_s": statistics.median(tb),
            "a_first": a.first_s, "b_first": b.first_s, "graphs": graphs}


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


def render(rows, turns_note: str) -> str:
    import torch

    loads = [r["load"] for r in rows if "load" in r] or [os.getloadavg()[0]]
    threads = rows[0].get("threads", torch.get_num_threads()) if rows else 1
    lines = [
        "## Stochastic depth and drop-path: training step time (`benchmarks/droppath.py`)",
        "",
        f"Machine: {machine()}, no GPU; torch {torch.__version__}, {threads} "
        f"thread(s); load average {min(loads):.1f}–{max(loads):.1f} after each pair (the 2 "
        "cores were shared with other "
        "jobs: single step times are noisy, the paired ratios much less). One SGD step "
        "(forward, cross-entropy, backward, update) on a fixed random batch; the two sides "
        "alternate step by step in one process, and each turn gives one ratio A/B. "
        + turns_note,
        "",
        "| A / B | mode | batch | turns | ratio A/B (median) | p10–p90 | A step | B step |"
        " first step A / B | goal |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        mode = "eager" if not r["compiled"] else (
            "torch.compile" if r["compiled"] in (True, "inductor") else
            f"torch.compile({r['compiled']})")
        if r["graphs"] is not None:
            mode += f" ({r['graphs']} graphs for both sides)"
        goal = GOALS.get(r["pair"])
        verdict = "" if goal is None else (f"≤ {goal:.2f}: " + ("yes" if r["ratio"] <= goal
                                                                else "no"))
        lines.append(
            f"| `{r['a']}` / `{r['b']}` | {mode} | {r['batch']} | {r['turns']} | "
            f"{r['ratio']:.3f} | {r['p10']:.3f}–{r['p90']:.3f} | {r['a_s']:.2f} s | "
            f"{r['b_s']:.2f} s | {r['a_first']:.1f} s / {r['b_first']:.1f} s | {verdict} |")
    shares = {r["a"]: r["share"] for r in rows if r.get("share")}
    if shares:
        lines.append("")
        lines += [f"- `{a}`: {s}." for a, s in shares.items()]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", nargs="+", choices=sorted(PAIRS), default=list(PAIRS))
    ap.add_argument("--compile", action="store_true", help="also measure torch.compile")
    ap.add_argument("--backend", default="inductor",
                    help="torch.compile backend (aot_eager: no code generation, compiles fast)")
    ap.add_argument("--no-eager", dest="eager", action="store_false",
                    help="only torch.compile (with --compile)")
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
    ap.add_argument("--note", default="", help="a sentence for RESULTS.md")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--json", metavar="FILE", help="also write the raw figures")
    ap.add_argument("--from-json", metavar="FILE", help="only re-render figures saved before")
    args = ap.parse_args(argv)
    if args.from_json:
        text = render(json.loads(Path(args.from_json).read_text()), args.note)
        print(text)
        if not args.no_write:
            write_section("droppath", text)
        return 0

    import torch

    torch.set_num_threads(args.threads)
    rows = [row for f in args.merge for row in json.loads(Path(f).read_text())]
    modes = ([False] if args.eager else []) + ([args.backend] if args.compile else [])
    for compiled in modes:
        for pair in args.pairs:
            if compiled and pair not in args.compile_pairs:
                continue
            turns = args.turns or PAIRS[pair][3]
            print(f"{pair} ({'torch.compile' if compiled else 'eager'}), {turns} turns",
                  flush=True)
            row = measure(pair, compiled, turns, args.warmup, args.cap,
                          lambda s: print(s, flush=True), args.batch)
            print(f"  ratio {row['ratio']:.3f} (p10–p90 {row['p10']:.3f}–{row['p90']:.3f}); "
                  f"A {row['a_s']:.2f} s, B {row['b_s']:.2f} s", flush=True)
            row["threads"], row["load"] = args.threads, os.getloadavg()[0]
            rows.append(row)
            if args.json:  # after every pair, so a capped or killed run keeps what it measured
                atomic_write_bytes(args.json, json.dumps(rows, indent=1).encode())
    from netc.compiler.lower_torch.module import build_module

    shares = {}
    for row in rows:  # the same draws for every row of a net, also for rows merged from files
        if row["a"] not in shares:
            shares[row["a"]] = expected_share(build_module(graph_of(row["a"])))
        row["share"] = shares[row["a"]]
    text = render(rows, args.note)
    print(text)
    if not args.no_write:
        write_section("droppath", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
