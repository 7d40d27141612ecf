"""Training a compiled network on an image-classification data set (``netc train``).

The loop is plain PyTorch: the spec's :class:`~netc.compiler.lower_torch.module.NetModule` (with its
dropout, drop-path and stochastic depth acting in training mode), cross-entropy on the logits,
SGD with momentum or Adam, weight decay, a learning-rate schedule, and an evaluation on the
held-out split after every epoch.

What makes a run trustworthy:

- **Repeatable**: ``seed`` fixes the initial weights (netc's initialiser), the data order (one
  permutation per epoch, drawn from ``(seed, epoch)``), the drop-path and stochastic-depth gates
  (drawn from ``(seed, step)``, :meth:`~netc.compiler.lower_torch.module.NetModule.seed_gates`) and
  every
  other random draw in training (augmentation, dropout: torch's global generator, seeded once).
  On a CPU two runs with one seed give identical weights, bit for bit.
- **Resumable**: a checkpoint is written atomically after every epoch and when the run is
  interrupted (Ctrl-C): weights, optimizer state, position in the epoch, the running sums of the
  epoch, the history and the generator state. ``resume`` continues from it, and ends where an
  uninterrupted run would have.
- **Compiled** (``compile``, ``netc train --compile``): each residual body, FractalNet column,
  stem and head is its own ``torch.compile`` graph (:mod:`netc.compiler.lower_torch.blocks`)
  and the gates stay in Python, so a compiled step still skips what it drops.
- **Distributed**: under ``torchrun --nproc_per_node N`` the same call trains with
  DistributedDataParallel (gloo on CPU, nccl on GPU): each process takes every N-th example of
  the epoch's order (``batch_size`` is per process), gradients are averaged by DDP, batch-norm
  statistics are copied from rank 0 after each epoch, and only rank 0 writes files and prints.
  Every rank draws the same gates for a step, so all skip the same residual bodies and join
  inputs; the skipped layers' parameters get zero gradients
  (:mod:`netc.compiler.lower_torch.gates`), so DDP runs without ``find_unused_parameters``.

The run is laid out in four modules: this one (the configuration, the classifier heads, the
set-up), :mod:`netc.runtime.train_loop` (steps, evaluation, the learning-rate schedule),
:mod:`netc.runtime.train_state` (the position and its checkpoint) and
:mod:`netc.runtime.distributed` (the process group).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from netc.compiler.ir import Graph
from netc.compiler.ops.base import fmt_shape
from netc.dsl.diagnostics import UserError
from netc.runtime.distributed import Dist
from netc.runtime.train_loop import EpochStats, Loop, lr_at
from netc.runtime.train_state import Position, load_checkpoint, resume_keys

__all__ = ["TrainConfig", "TrainResult", "EpochStats", "train", "lr_at", "classifier_head",
           "auxiliary_heads"]


@dataclass
class TrainConfig:
    """Everything a run depends on. Defaults suit a small net on a small data set."""

    data: str = "digits"
    epochs: int = 10
    batch_size: int = 64
    optimizer: str = "sgd"  # sgd (with momentum) or adam
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    schedule: str = "cosine"  # cosine, step or constant
    milestones: tuple[float, ...] = (0.5, 0.75)  # step schedule: fractions of the run
    gamma: float = 0.1  # step schedule: factor at each milestone
    augment: bool = False
    holdout: float = 0.2
    seed: int = 0
    steps_per_epoch: int | None = None  # cap, for quick runs
    checkpoint: str | None = None  # default: <net>.ckpt.pt
    resume: bool = False
    output: str | None = None  # final weights (.safetensors); default: <net>.safetensors
    init: str | None = None  # start from these weights (any file load_weights reads)
    progress: bool = True
    device: str | None = None  # cpu, cuda, cuda:1; default: cuda when present
    threads: int | None = None  # CPU threads for torch (default: netc.runtime.threads chooses)
    compile: str | None = None  # torch.compile backend, block by block (NetModule.compile_blocks)

    def validate(self) -> None:
        if self.optimizer not in ("sgd", "adam"):
            raise UserError(f"--optimizer must be sgd or adam; got {self.optimizer!r}")
        if self.schedule not in ("cosine", "step", "constant"):
            raise UserError(f"--schedule must be cosine, step or constant; got {self.schedule!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise UserError("--epochs and --batch-size must be at least 1")
        if self.lr <= 0:
            raise UserError(f"--lr must be positive; got {self.lr}")
        if any(not 0 < m < 1 for m in self.milestones):
            raise UserError("--milestones are fractions of the run, between 0 and 1")
        if self.threads is not None and self.threads < 1:
            raise UserError(f"--threads must be at least 1; got {self.threads}")


@dataclass
class TrainResult:
    module: object  # the trained NetModule (on its device)
    history: list[EpochStats]
    checkpoint: Path
    output: Path | None


def classifier_head(graph: Graph) -> str:
    """The node whose output is the logits: the first output, or the input of its
    softmax / log-softmax (cross-entropy applies its own)."""
    node = _logits(graph, graph.outputs[0])
    if len(node.shape) != 1:
        raise UserError(f"netc train needs a classifier: {graph.name}'s output {node.name} is a "
                        f"{fmt_shape(node.shape)} feature map, not a vector of scores")
    return node.name


def auxiliary_heads(graph: Graph) -> dict[str, float]:
    """The logits node of each ``training output`` (auxiliary classifier) -> its loss weight:
    GoogLeNet's total loss adds each auxiliary loss "weighted by 0.3" (Szegedy et al. §5)."""
    outs = graph.options.training_outputs
    weights = graph.options.training_output_weights
    heads = {}
    for name, node in outs.items():
        heads[_logits(graph, node).name] = float(weights.get(name, 0.3))
    return heads


def _logits(graph: Graph, name: str):
    """Node ``name``, or the input of it when it turns logits into (log-)probabilities
    (the op's ``probability_output`` flag): cross-entropy applies its own softmax."""
    node = graph[name]
    return graph[node.inputs[0]] if node.op != "input" and node.opdef.probability_output else node


def train(graph: Graph, cfg: TrainConfig, log: Callable[[str], None] = print,
          interrupt_after: int | None = None) -> TrainResult:
    """Train ``graph`` as ``cfg`` says. ``interrupt_after`` (tests) raises KeyboardInterrupt
    after that many steps of this call, as a Ctrl-C would."""
    from netc.runtime.data import load_dataset

    cfg.validate()
    spec, head, aux = _check_net(graph)
    dist = Dist(cfg.device)
    try:
        if dist.device.type == "cpu":  # torch's CPU threads, chosen and said once
            from netc.runtime.threads import set_cpu_threads

            line = set_cpu_threads(cfg.threads)
            if dist.main:
                log(line)
        data = load_dataset(cfg.data, spec.shape, cfg.holdout)
        n_classes = graph[head].shape[0]
        if len(data.classes) != n_classes:
            raise UserError(f"{data.name} has {len(data.classes)} classes but {graph.name} "
                            f"scores {n_classes}; add --set classes={len(data.classes)}")
        checkpoint = Path(cfg.checkpoint or f"{graph.name}.ckpt.pt")
        output = Path(cfg.output or f"{graph.name}.safetensors")
        if output.suffix != ".safetensors":
            raise UserError(f"{output}: the trained weights are written as .safetensors")
        module, model = _modules(graph, cfg, dist)
        optimizer = _optimizer(module, cfg)
        pos = Position()
        if cfg.resume:
            pos = _resume(checkpoint, graph, cfg, module, optimizer, dist, log)
        elif dist.main:
            log(data.describe())
        loop = Loop(graph, cfg, data, spec, head, aux, module, model, optimizer, dist, log)
        loop.run(pos, checkpoint, interrupt_after)
        if dist.main:
            from netc.runtime.weights import write_safetensors

            state = {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}
            write_safetensors(output, state, {"netc_net": graph.name})  # drops the counters
            log(f"weights written to {output}")
        history = [EpochStats(**h) for h in pos.history]
        return TrainResult(module, history, checkpoint, output if dist.main else None)
    finally:
        model = loop = None  # the DDP wrapper (and the loop holding it) goes before its group
        dist.close()


def _check_net(graph: Graph):
    """The input spec, the logits node and the auxiliary heads of a net ``netc train`` can
    train: one input, a classifier, auxiliary classifiers that score the same classes."""
    if len(graph.inputs) != 1:
        raise UserError(f"netc train needs a net with one input; {graph.name} has "
                        f"{len(graph.inputs)}")
    head = classifier_head(graph)
    aux = auxiliary_heads(graph)
    for node in aux:
        if graph[node].shape != graph[head].shape:
            raise UserError(f"netc train: the training output {node} gives "
                            f"{fmt_shape(graph[node].shape)}; an auxiliary classifier "
                            f"must score the {graph[head].shape[0]} classes as {head} does")
    return next(iter(graph.inputs.values())), head, aux


def _modules(graph: Graph, cfg: TrainConfig, dist: Dist):
    """The module (seeded, or started from ``cfg.init``) on the run's device, and the model
    the steps call: the module itself, or its DistributedDataParallel wrapper."""
    import torch

    from netc.compiler.lower_torch.module import build_module

    torch.manual_seed(cfg.seed + dist.rank)
    module = build_module(graph, seed=cfg.seed)
    if cfg.init:
        from netc.runtime.weights import load_weights

        # A superset is fine: the full FractalNet's weights start its deepest column.
        module.load_named(load_weights(graph, cfg.init, allow_unused=True), cfg.init)
    module.to(dist.device)
    if cfg.compile:
        # Block by block, not torch.compile(module): one graph would compute every dropped
        # body and column (lower_torch/gates.py); compiled blocks leave the skipping to Python.
        module.compile_blocks(backend=cfg.compile)
    if dist.world == 1:
        return module, module
    from torch.nn.parallel import DistributedDataParallel

    ids = [dist.device.index] if dist.device.type == "cuda" else None
    # A 1x1 conv's weight gradient comes back with other (equivalent) strides for its size-1
    # dimensions; DDP warns, though nothing is wrong.
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view")
    return module, DistributedDataParallel(module, device_ids=ids)


def _resume(checkpoint: Path, graph, cfg: TrainConfig, module, optimizer, dist: Dist,
            log) -> Position:
    """The position of the checkpoint, restored into ``module`` and ``optimizer``; says where
    the run continues and which settings changed since it started."""
    pos, saved = load_checkpoint(checkpoint, graph, module, optimizer, dist)
    if dist.main:
        log(f"resuming {checkpoint} at epoch {pos.epoch + 1}, step {pos.step}")
        changed = [f"{k} {saved[k]!r} -> {v!r}" for k, v in resume_keys(cfg).items()
                   if saved.get(k, v) != v]
        if changed:
            log("note: the run continues with other settings than it started with ("
                + ", ".join(changed) + "), so it will not repeat an uninterrupted run")
        if pos.epoch >= cfg.epochs:
            log(f"the checkpoint has finished {pos.epoch} epochs; --epochs is "
                f"{cfg.epochs}: nothing left to train")
    return pos


def _optimizer(module, cfg: TrainConfig):
    import torch

    params = list(module.parameters())
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                           weight_decay=cfg.weight_decay)
