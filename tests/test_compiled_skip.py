"""Compiled training that skips: ``NetModule.compile_blocks`` (compiler/lower_torch/blocks.py).

Small nets, and torch.compile's ``aot_eager`` backend (dynamo and AOTAutograd, no code
generation): inductor takes minutes on two cores, and what these tests check (which chains
are compiled and called, the gradients, the graph count) is dynamo's part; the benchmark
(benchmarks/droppath.py --compile) measures inductor.
"""

from __future__ import annotations

from collections import Counter

import pytest
import torch
import torch.nn.functional as F
from torch._dynamo.utils import counters

from netc.compiler.frontend.loader import load
from netc.compiler.lower_torch import blocks as torch_blocks
from netc.compiler.lower_torch.blocks import CHANNELS_LAST, NCHW, Chain, find_chains, in_layout
from netc.compiler.lower_torch.module import build_module
from tests.test_droppath_sd import FRACTAL  # the drop-path tests' small FractalNet

pytestmark = pytest.mark.usefixtures("one_torch_thread")

RESNET = """
def basic(ch, stride=1) =
  residual(conv(ch, 3, stride=stride, pad=1, bias=false) -> bn -> relu
           -> conv(ch, 3, pad=1, bias=false) -> bn, shortcut=pad_avg) -> relu
net small_sd {
  input image: 3x8x8
  with stochastic_depth(p_L=0.5)
  image -> conv(4, 3, pad=1, bias=false) -> bn -> relu -> basic(4) -> basic(4)
        -> basic(8, 2) -> basic(8) -> gap -> flatten -> fc(10) as fc
}
"""

# The FractalNet reference unit, dropout included: a trial's draws must not shift the step's.
DROPOUT = FRACTAL.replace("unit(ch) = conv(ch, 3, pad=1) -> bn", "unit(ch) = conv(ch, 3, pad=1) "
                          "-> dropout(0.3) -> bn").replace("small_fractal", "small_dropout")


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    root = tmp_path_factory.mktemp("specs")
    out = {}
    for name, text in (("small_sd", RESNET), ("small_fractal", FRACTAL),
                       ("small_dropout", DROPOUT)):
        (root / f"{name}.net").write_text(text)
        out[name] = load(str(root / f"{name}.net"))
    return out


def pair(graph):
    eager = build_module(graph, seed=0).train()
    blocks = build_module(graph, seed=0).train().compile_blocks(backend="aot_eager")
    return eager, blocks


def step(net, x, y, k):
    """One forward and backward with the gates of step ``k``: the loss, the gradients and
    the decisions the step made."""
    net.seed_gates(0, k)
    net.zero_grad(set_to_none=True)
    loss = F.cross_entropy(net(x), y)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in net.named_parameters()}
    return loss.detach(), grads


def closed_bodies(net, k) -> list[str]:
    """The residual joins whose bodies step ``k``'s gates close, and the drop-path joins with
    an input dropped (decided as the net decides, nothing computed)."""
    net.seed_gates(0, k)
    decisions, _ = net._gates.decide(net._gates.uniforms())
    return [n for n, d in decisions.items() if d is False or (isinstance(d, tuple)
                                                               and not all(d))]


@pytest.mark.parametrize("name", ["small_sd", "small_fractal"])
def test_compiled_blocks_give_eager_losses_gradients_and_statistics(graphs, name):
    eager, blocks = pair(graphs[name])
    gen = torch.Generator().manual_seed(3)
    x, y = torch.randn(6, 3, 8, 8, generator=gen), torch.randint(0, 10, (6,), generator=gen)
    skipped_any = False
    for k in range(6):
        le, ge = step(eager, x, y, k)
        lb, gb = step(blocks, x, y, k)
        torch.testing.assert_close(lb, le, rtol=1e-5, atol=1e-6)
        assert ge.keys() == gb.keys()
        for n in ge:
            torch.testing.assert_close(gb[n], ge[n], rtol=1e-4, atol=1e-6, msg=n)
        skipped_any |= any(bool((g == 0).all()) for n, g in ge.items() if "conv" in n)
    assert skipped_any  # some step dropped a body or a column (its weights' gradient is 0)
    for (n, a), b in zip(eager.state_dict().items(), blocks.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6, msg=n)  # running statistics


def test_residual_bodies_and_fractal_columns_are_chains(graphs):
    net = build_module(graphs["small_sd"])
    plan = net.plan(("fc",))
    chains = [[plan[i].name for i in c] for c in find_chains(plan, ("fc",), net._gated())]
    bodies = [c for c in chains if c[-1].endswith("bn2")]
    assert len(bodies) == 4 and all(len(c) == 5 for c in bodies)  # conv bn relu conv bn
    fractal = build_module(graphs["small_fractal"])
    plan = fractal.plan(("fc",))
    chains = find_chains(plan, ("fc",), fractal._gated())
    # Per block, each of the two fractal(C=2)s: its deepest column's two units (a chain of 6)
    # and its one unit (3); the block's own unit (3); then the head, gap -> flatten -> fc.
    assert sorted(len(c) for c in chains) == [3] * 7 + [6] * 4
    assert not any(plan[i].name in fractal._gated() for c in chains for i in c)


def test_a_closed_body_is_not_called(graphs):
    net = build_module(graphs["small_sd"]).train().compile_blocks(backend="aot_eager")
    x = torch.randn(2, 3, 8, 8)
    net(x)  # builds the plan with its chains
    calls = []
    plan = net._block_plans[("fc",)]
    for k, item in enumerate(plan):
        if isinstance(item, Chain):
            def run(v, item=item):
                calls.append(item.name)
                return item.run(v)
            plan = plan[:k] + (Chain(item.steps, run),) + plan[k + 1:]
    net._block_plans[("fc",)] = plan
    k = next(k for k in range(50) if closed_bodies(net, k))
    closed = closed_bodies(net, k)
    net.seed_gates(0, k)
    net(x)
    bodies = {item.name for item in plan if isinstance(item, Chain)
              and item.name.endswith("bn2")}
    residual_of = {n.inputs[0]: n.name for n in net.graph if n.name in net._gated()}
    for body in bodies:
        assert (body in calls) == (residual_of[body] not in closed), body


@pytest.mark.parametrize("name", ["small_sd", "small_fractal"])
def test_the_graph_count_stays_fixed_after_the_first_step_of_each_shape(graphs, name):
    torch._dynamo.reset()
    counters.clear()
    net = build_module(graphs[name], seed=0).train().compile_blocks(backend="aot_eager")
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)

    def train_step(x, k):
        net.seed_gates(0, k)
        loss = F.cross_entropy(net(x), torch.zeros(len(x), dtype=torch.long))
        opt.zero_grad()
        loss.backward()
        opt.step()

    def graphs_made() -> int:
        return int(counters["stats"]["unique_graphs"])

    # A compiled block makes its graph on its first call, so the first step of a shape is
    # one that drops nothing (after it, every chain has its training graph).
    everything = next(k for k in range(1000) if not closed_bodies(net, k))
    per_shape = []
    for batch in (4, 3):
        x = torch.randn(batch, 3, 8, 8)
        before = graphs_made()
        train_step(x, everything)
        per_shape.append(graphs_made() - before)
        for k in range(12):
            train_step(x, k)
        assert graphs_made() == before + per_shape[-1], f"batch {batch}: gates recompiled"
    # A new batch size compiles each graph once more (dynamic=False); chains of the same
    # layers and shapes share a graph, so there are fewer graphs than chains (small_sd: 6
    # chains, 5 graphs: its two 4-channel bodies share one).
    assert per_shape[0] == per_shape[1]
    assert 0 < per_shape[0] < len(net._blocks)


def test_netc_train_compile_trains_and_an_unknown_backend_is_one_line(graphs, tmp_path, capsys):
    from netc.runtime.cli import main

    spec = tmp_path / "small_sd.net"
    spec.write_text(RESNET.replace("3x8x8", "1x8x8"))
    out = tmp_path / "w.safetensors"
    args = [str(spec), "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "8",
            "--no-progress", "-o", str(out), "--checkpoint", str(tmp_path / "c.pt")]
    assert main(["train", *args, "--compile", "aot_eager"]) == 0
    assert out.exists()
    assert main(["train", *args, "--compile", "no_such_backend"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no backend 'no_such_backend'" in err[0]


def test_to_torch_compile_compiles_block_by_block(graphs, tmp_path):
    import netc

    spec = tmp_path / "small_sd.net"
    spec.write_text(RESNET)
    module = netc.load(str(spec)).to_torch(compile="aot_eager").train()
    module(torch.randn(2, 3, 8, 8))
    assert module._compile["backend"] == "aot_eager" and module._blocks
    assert netc.load(str(spec)).to_torch()._compile is None


def fake_trials(monkeypatch, compiled_s: float, channels_last_s: float):
    """Trials that still run every candidate (what they restore is real) but report these
    times: eager NCHW 1 s, eager channels-last and compiled as given."""
    def shortest(candidates, device):
        for run in candidates.values():
            run()
        return {k: {"nchw": 1.0, "channels_last": channels_last_s}[k[1]] if k[0] == "eager"
                else compiled_s for k in candidates}
    monkeypatch.setattr(torch_blocks, "_shortest", shortest)


@pytest.mark.parametrize("compiled_s,channels_last_s", [(0.5, 0.9), (2.0, 0.9), (2.0, 1.1)])
def test_a_chain_runs_what_its_trial_timed_faster(graphs, monkeypatch, compiled_s,
                                                  channels_last_s):
    fake_trials(monkeypatch, compiled_s, channels_last_s)
    net = build_module(graphs["small_sd"], seed=0).train().compile_blocks(backend="aot_eager")
    x = torch.randn(4, 3, 8, 8)
    net.seed_gates(0, next(k for k in range(1000) if not closed_bodies(net, k)))
    net(x)  # every chain called: every structure's trial
    layout = CHANNELS_LAST if channels_last_s < 1.0 else NCHW
    calls = Counter()
    runners = [item.run for item in net._block_plans[("fc",)] if isinstance(item, Chain)]
    for run in runners:
        for name, fn in (("eager", run.block), ("compiled", run.compiled(layout))):
            wrapped = counted(fn, name, calls, layout)
            if name == "eager":
                run.block = wrapped
            else:
                run._compiled[layout] = wrapped
    for k in range(3):
        net.seed_gates(0, k)
        net(x)
    faster = "compiled" if compiled_s < min(1.0, channels_last_s) else "eager"
    assert calls[faster] > 0 and calls["eager" if faster == "compiled" else "compiled"] == 0
    assert calls["wrong layout"] == 0
    verdicts = {id(v): v for run in runners for v in run.verdicts.values()}.values()
    assert all(v.layout is layout and v.compiled == (faster == "compiled") for v in verdicts)


def counted(fn, name, calls, layout):
    def run(x):
        calls[name] += 1
        calls["wrong layout"] += x.dim() == 4 and not x.is_contiguous(memory_format=layout)
        return fn(x)
    run.parameters = getattr(fn, "parameters", None)
    run.training = True
    return run


@pytest.mark.parametrize("name,compiled_s,channels_last_s", [
    ("small_dropout", 2.0, 1.1), ("small_fractal", 0.5, 0.9)])
def test_a_trial_leaves_the_step_as_it_was(graphs, monkeypatch, name, compiled_s,
                                           channels_last_s):
    """Running statistics and dropout's draws as in eager (a trial restores them), and no
    gradient written by a trial: the verdict eager NCHW gives eager's numbers exactly, the
    verdict compiled channels-last within rounding. (aot_eager draws dropout otherwise than
    eager, so the compiled case has none; inductor draws it as eager, ``fallback_random``.)"""
    fake_trials(monkeypatch, compiled_s, channels_last_s)
    eager, blocks = pair(graphs[name])
    gen = torch.Generator().manual_seed(3)
    x, y = torch.randn(6, 3, 8, 8, generator=gen), torch.randint(0, 10, (6,), generator=gen)
    exact = compiled_s > 1
    tol = {"rtol": 0, "atol": 0} if exact else {"rtol": 1e-4, "atol": 1e-6}
    for k in range(3):
        torch.manual_seed(k)
        le, ge = step(eager, x, y, k)
        torch.manual_seed(k)
        lb, gb = step(blocks, x, y, k)
        torch.testing.assert_close(lb, le, **tol)
        for n in ge:
            torch.testing.assert_close(gb[n], ge[n], **tol, msg=n)
    for (n, a), b in zip(eager.state_dict().items(), blocks.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6, msg=n)


def test_in_layout_gives_the_canonical_strides_of_a_layout():
    x = torch.randn(2, 8, 1, 1).clone(memory_format=CHANNELS_LAST)
    assert x.stride() == (8, 1, 8, 8)
    assert in_layout(x, NCHW).stride() == (8, 1, 1, 1)  # size-1 dimensions' strides too
    assert in_layout(x, CHANNELS_LAST) is x
    y = torch.randn(2, 8, 4, 4)
    assert in_layout(y, NCHW) is y and in_layout(y, None) is y
    z = in_layout(y, CHANNELS_LAST)
    assert z.stride() == (128, 1, 32, 8) and torch.equal(z, y)
    assert in_layout(torch.randn(2, 8), CHANNELS_LAST).stride() == (8, 1)


WORKER = """
import os, sys
import torch
from netc.compiler.frontend.loader import load
from netc.runtime.train import TrainConfig, train
torch.set_num_threads(1)
out, spec = sys.argv[1], sys.argv[2]
cfg = TrainConfig(data="digits", epochs=1, batch_size=8, steps_per_epoch=4, lr=0.1, seed=3,
                  augment=False, output=os.path.join(out, "final.safetensors"), progress=False,
                  compile="aot_eager")
result = train(load(spec), cfg, log=lambda line: None)
torch.save(result.module.state_dict(), os.path.join(out, f"rank{os.environ['RANK']}.pt"))
"""


def test_compiled_training_under_torchrun_runs_its_trials_and_keeps_the_ranks_equal(tmp_path):
    """``netc train --compile`` on two processes: each chain's trial runs inside
    DistributedDataParallel's forward (on each rank, which may choose differently), and the
    ranks still end with the same weights. (That a trial writes no ``.grad`` is
    test_a_trial_leaves_the_step_as_it_was's.)"""
    import os
    import subprocess
    import sys

    spec = tmp_path / "small_sd.net"
    spec.write_text(RESNET.replace("3x8x8", "1x8x8"))
    (tmp_path / "worker.py").write_text(WORKER)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           "2", str(tmp_path / "worker.py"), str(tmp_path), str(spec)]
    proc = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert rank0.keys() == rank1.keys()
    for k in rank0:
        assert torch.equal(rank0[k], rank1[k]), k
