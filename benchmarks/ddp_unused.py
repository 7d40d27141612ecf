"""DDP with skipped blocks: zero gradients through the output, or ``find_unused_parameters``.

When stochastic depth skips a body, its parameters take no part in the step. DDP then needs one
of two things: every parameter in the autograd graph anyway (netc adds a zero that depends on
each skipped parameter to the output, ``compiler/torch_gates.zero_touch``: they get zero
gradients), or ``find_unused_parameters=True`` (DDP walks the autograd graph after every
forward to find the parameters it does not reach). Run under torchrun with 2 CPU processes;
both variants train copies of one net in the same processes, alternating step by step, with
the same gates on every rank:

    OMP_NUM_THREADS=1 torchrun --standalone --nproc_per_node 2 benchmarks/ddp_unused.py \
        [NET [STEPS]] [--write]            # --write: the ddp_unused section of RESULTS.md

It prints the median step time of each, their paired ratio, and what the optimiser sees for a
skipped parameter (a zero gradient, or None).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


EXPLAIN = """netc uses the zero gradients: the optimiser then treats a skipped block as the
multiply-by-0 version did and as Huang et al.'s Lua code does (a zero gradient; momentum and
weight decay still act), one process and N processes follow the same rule, and DDP needs no
graph walk. With ``find_unused_parameters`` the skipped parameters keep no gradient (None), so
SGD leaves them alone for that step: another optimiser trajectory."""


def main() -> None:
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F
    from torch.nn.parallel import DistributedDataParallel as DDP

    from netc.compiler.frontend.loader import load
    from netc.compiler.lower_torch.module import build_module

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    args = [a for a in sys.argv[1:] if a != "--write"]
    net = args[0] if args else "cifar_resnet56"
    steps = int(args[1]) if len(args) > 1 else 12
    graph = load(net)
    from netc.compiler.passes.assign_survival import assign_survival

    # the zoo's 56-layer net, with stochastic depth
    graph = assign_survival(graph.copy(options=graph.options.replace(stochastic_depth=0.5)))
    variants = {}
    for name, find in (("zero gradients", False), ("find_unused_parameters", True)):
        module = build_module(graph, seed=0).train()
        module.zero_grads_for_skipped = not find
        model = DDP(module, find_unused_parameters=find)
        opt = torch.optim.SGD(module.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        variants[name] = (module, model, opt)
    gen = torch.Generator().manual_seed(rank)
    x = torch.randn(16, 3, 32, 32, generator=gen)
    y = torch.randint(0, 10, (16,), generator=gen)
    times = {k: [] for k in variants}
    none_grads = {}
    for step in range(steps + 1):
        order = list(variants) if step % 2 == 0 else list(reversed(variants))
        for name in order:
            module, model, opt = variants[name]
            module.seed_gates(0, step)
            start = time.perf_counter()
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            none_grads[name] = sum(p.grad is None for p in module.parameters())
            opt.step()
            if step > 0:  # the first step builds DDP's buckets
                times[name].append(time.perf_counter() - start)
    if rank == 0:
        a, b = times["zero gradients"], times["find_unused_parameters"]
        ratios = sorted(x / y for x, y in zip(a, b))
        lines = [f"`{net}` with stochastic depth (p_L = 0.5), 2 gloo ranks, batch 16 per rank, "
                 f"{steps} steps of each variant, alternating; load average "
                 f"{os.getloadavg()[0]:.1f} (shared cores).", ""]
        for name, ts in times.items():
            lines.append(f"- {name}: median step {statistics.median(ts) * 1000:.0f} ms; "
                         f"parameters without a gradient after the last backward: "
                         f"{none_grads[name]}")
        lines.append(f"- zero gradients / find_unused_parameters: median "
                     f"{statistics.median(ratios):.3f} (range {ratios[0]:.3f}–{ratios[-1]:.3f})")
        text = "\n".join(lines)
        print(text)
        if "--write" in sys.argv:
            from benchmarks._results import write_section

            write_section("ddp_unused", "## DDP with skipped blocks (`benchmarks/ddp_unused.py`)"
                          "\n\n" + text + "\n\n" + EXPLAIN)
    dist.destroy_process_group()


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
