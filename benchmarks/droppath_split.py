"""Where a training step's time goes, for benchmarks/droppath.py (``--split``, ``--profile``).

``--split``: CPU seconds of a ``cifar_resnet110`` step and of a ``cifar_resnet110_sd`` step
with its gates as drawn, all closed (what no gate skips: stem, shortcuts, joins, the ReLU after
each join, head, loss, zero gradients for the skipped, the optimizer step) and all open, with
the optimizer step alone, eager and compiled block by block, the sides alternating; and the
share of the residual bodies' *time* that the survivals keep, from each body structure's
trial (``compiler/lower_torch/blocks.py``: eager NCHW, eager channels-last, and as run).
``--profile``: torch.profiler's self CPU time per category of aten op, eager.
"""

from __future__ import annotations

import statistics
import time
from contextlib import contextmanager

from benchmarks._results import rotating

FORCED = {"as drawn": None, "all closed": False, "all open": True}


@contextmanager
def forced(module, value):
    """Every gate of ``module``'s next forwards ``value`` (None: as drawn): each residual body
    open or closed, each drop-path join keeping all its inputs (True) or none (False), local
    sampling."""
    if value is None:
        yield
        return
    decide = module._gates.decide

    def force(d):
        return tuple(value for _ in d) if isinstance(d, tuple) else value
    module._gates.decide = lambda u: ({n: force(d) for n, d in decide(u)[0].items()}, None)
    try:
        yield
    finally:
        del module._gates.decide


def split(sides: dict, turns: int, log) -> dict:
    """``sides``: {(mode, net): Side}, the plain and the stochastic-depth net per mode; the
    latter runs three ways (:data:`FORCED`). Returns {(mode, label): (step, optimizer)}, the
    median CPU seconds over ``turns`` turns in which every way runs once, order rotating."""
    runs = []
    for (mode, net), side in sides.items():
        for label, value in (FORCED.items() if side.module._gates else [("plain", None)]):
            runs.append(((mode, label), side, value))
    for _, side, value in runs:  # warm-up: compiling and every structure's trial
        with forced(side.module, True if value is None else value):
            side.step()
    cpu: dict = {key: ([], []) for key, _, _ in runs}

    def way(key, side, value):
        def run():
            with forced(side.module, value):
                side.step()
            cpu[key][0].append(side.cpu[-1])
            cpu[key][1].append(side.opt_cpu[-1])
        return run
    rotating({key: way(key, side, value) for key, side, value in runs}, turns, 0)
    out = {k: (statistics.median(a), statistics.median(b)) for k, (a, b) in cpu.items()}
    for k, (step, opt) in out.items():
        log(f"  {k[0]} {k[1]}: {step:.3f} s CPU a step, optimizer {opt * 1000:.1f} ms")
    return out


def kept_shares(module) -> tuple[dict[str, float], list[str]]:
    """The share of the residual bodies' time the survivals keep, per way of running a body
    (its structure's trial times: eager NCHW, eager channels-last, and the way it runs); and
    a line per body structure with those times."""
    graph = module.graph
    survival = {graph[name].inputs[0]: p for name, p in module._gates.residuals}
    kept: dict[str, float] = {}
    total: dict[str, float] = {}
    lines: dict[int, str] = {}
    for key, run in module._blocks.items():
        if key[-1] not in survival or not run.verdicts:
            continue
        (shape, *_), v = next(iter(run.verdicts.items()))
        lines.setdefault(id(v), _structure_line(shape, graph[key[-1]].shape, v))
        tag = _layout_tag(v.layout)
        ways = {"eager NCHW": v.times.get(("eager", "nchw")),
                "eager channels-last": v.times.get(("eager", "channels_last")),
                "as run": v.times[("compiled" if v.compiled else "eager", tag)]}
        for way, t in ways.items():
            if t is not None:
                kept[way] = kept.get(way, 0.0) + survival[key[-1]] * t
                total[way] = total.get(way, 0.0) + t
    return {way: kept[way] / total[way] for way in kept}, list(lines.values())


def _structure_line(shape, out, v) -> str:
    times = ", ".join(f"{kind} {tag.replace('_', '-')} {t * 1000:.1f} ms"
                      for (kind, tag), t in v.times.items())
    runs = ("compiled" if v.compiled else "eager") + f" {_layout_tag(v.layout)}"
    return (f"- body {'x'.join(map(str, shape))} → {'x'.join(map(str, out))}: {times} "
            f"(forward + backward, the shortest of 3); runs {runs.replace('_', '-')}")


def _layout_tag(layout) -> str:
    import torch

    return {torch.contiguous_format: "nchw", torch.channels_last: "channels_last"}.get(
        layout, "any")


def render_split(res: dict, shares: tuple, turns: int, batch: int) -> str:
    """The split as a table, with the body-time shares."""
    modes = list(dict.fromkeys(m for m, _ in res))
    lines = [f"Where the step goes (`--split {turns}`: CPU seconds a step, median of {turns} "
             f"turns, batch {batch}, one thread; the sides alternating):", "",
             "| | " + " | ".join(modes) + " |", "|---" * (len(modes) + 1) + "|"]
    labels = ["plain", *FORCED]
    names = {"plain": "`cifar_resnet110` step", "as drawn": "`cifar_resnet110_sd`, gates "
             "as drawn", "all closed": "`_sd`, every body closed (what no gate skips)",
             "all open": "`_sd`, every body open"}
    for label in labels:
        lines.append(f"| {names[label]} | " + " | ".join(
            f"{res[(m, label)][0]:.3f} s" for m in modes) + " |")
    lines.append("| optimizer step (in the plain step) | " + " | ".join(
        f"{res[(m, 'plain')][1] * 1000:.1f} ms" for m in modes) + " |")
    lines.append("| **A/B**: as drawn / plain | " + " | ".join(
        f"**{res[(m, 'as drawn')][0] / res[(m, 'plain')][0]:.3f}**" for m in modes) + " |")
    lines.append("| every body closed / plain | " + " | ".join(
        f"{res[(m, 'all closed')][0] / res[(m, 'plain')][0]:.3f}" for m in modes) + " |")
    if shares:
        kept, structures = shares
        lines += ["", "Share of the residual bodies' time the survivals keep (each body "
                  "structure's trial in `compile_blocks`, weighted by the survivals; their "
                  "MACs: 0.745): " + ", ".join(f"{w} **{s:.3f}**" for w, s in kept.items())
                  + ". The trials, one body of each structure (bodies of one stage have the "
                  "same MACs):", "", *structures]
    return "\n".join(lines)


CATEGORIES = (  # (label, substrings of aten op names), first match wins
    ("convolution backward", ("convolution_backward",)),
    ("convolution forward", ("convolution", "conv2d")),
    ("batch norm backward", ("batch_norm_backward",)),
    ("batch norm forward", ("batch_norm",)),
    ("ReLU forward and backward", ("relu", "clamp_min", "threshold_backward")),
)
OPTIMIZER = "optimizer step (all parameters, skipped ones too)"


def profile_pair(sides, steps: int, log) -> dict:
    """Self CPU time per category of aten op over ``steps`` eager steps of each of the two
    ``sides`` (benchmarks/droppath.py's ``Side``), with the wall time per step: where A's
    time share goes."""
    from torch.profiler import ProfilerActivity, profile

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
