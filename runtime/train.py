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
- **Distributed**: under ``torchrun --nproc_per_node N`` the same call trains with
  DistributedDataParallel (gloo on CPU, nccl on GPU): each process takes every N-th example of
  the epoch's order (``batch_size`` is per process), gradients are averaged by DDP, batch-norm
  statistics are copied from rank 0 after each epoch, and only rank 0 writes files and prints.
  Every rank draws the same gates for a step, so all skip the same residual bodies and join
  inputs; the skipped layers' parameters get zero gradients (``compiler/torch_gates.py``), so
  DDP runs without ``find_unused_parameters``.

The learning rate is a function of the position in training (``lr_at``), so a resumed run
needs no scheduler state.
"""

from __future__ import annotations

import math
import os
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from netc.compiler.ir import Graph
from netc.dsl.diagnostics import UserError

CHECKPOINT_FORMAT = "netc-train-1"


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
    init: str | None = None  # start from these weights (.safetensors, by name)
    progress: bool = True
    device: str | None = None  # cpu, cuda, cuda:1; default: cuda when present
    threads: int | None = None  # CPU threads for torch (default: netc.runtime.threads chooses)

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
class EpochStats:
    epoch: int
    lr: float
    train_loss: float
    train_acc: float
    test_loss: float
    test_acc: float
    seconds: float


@dataclass
class TrainResult:
    module: object  # the trained NetModule (on its device)
    history: list[EpochStats]
    checkpoint: Path
    output: Path | None


@dataclass
class _Position:
    """Where a run is: the epoch, the next step in it, and the epoch's running sums."""

    epoch: int = 0
    step: int = 0
    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0
    history: list[dict] = field(default_factory=list)


def lr_at(cfg: TrainConfig, progress: float) -> float:
    """The learning rate at ``progress`` ∈ [0, 1) of the run."""
    if cfg.schedule == "cosine":
        return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * progress))
    if cfg.schedule == "step":
        return cfg.lr * cfg.gamma ** sum(progress >= m for m in cfg.milestones)
    return cfg.lr


def classifier_head(graph: Graph) -> str:
    """The node whose output is the logits: the first output, or the input of its
    softmax / log-softmax (cross-entropy applies its own)."""
    node = graph[graph.outputs[0]]
    if node.op in ("softmax", "log_softmax"):
        node = graph[node.inputs[0]]
    if len(node.shape) != 1:
        raise UserError(f"netc train needs a classifier: {graph.name}'s output {node.name} is a "
                        f"{'x'.join(map(str, node.shape))} feature map, not a vector of scores")
    return node.name


def auxiliary_heads(graph: Graph) -> dict[str, float]:
    """The logits node of each ``training output`` (auxiliary classifier) -> its loss weight:
    GoogLeNet's total loss adds each auxiliary loss "weighted by 0.3" (Szegedy et al. §5)."""
    outs = graph.options.training_outputs
    weights = graph.options.training_output_weights
    heads = {}
    for name, node in outs.items():
        n = graph[node]
        if n.op in ("softmax", "log_softmax"):
            n = graph[n.inputs[0]]
        heads[n.name] = float(weights.get(name, 0.3))
    return heads


class _Dist:
    """The process group, when run under torchrun (WORLD_SIZE > 1)."""

    def __init__(self, device_name: str | None):
        import torch

        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if device_name is None:
            device_name = f"cuda:{local}" if torch.cuda.is_available() else "cpu"
        elif device_name == "cuda" and self.world > 1:
            device_name = f"cuda:{local}"
        self.device = torch.device(device_name)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise UserError("--device cuda: no CUDA device is available")
        self.started = False
        if self.world > 1:
            import torch.distributed as dist

            if not dist.is_initialized():
                backend = "nccl" if self.device.type == "cuda" else "gloo"
                if self.device.type == "cuda":
                    torch.cuda.set_device(self.device)
                dist.init_process_group(backend)
                self.started = True

    @property
    def main(self) -> bool:
        return self.rank == 0

    def all_sum(self, values: list[float]) -> list[float]:
        if self.world == 1:
            return values
        import torch
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()

    def gather(self, obj) -> list:
        if self.world == 1:
            return [obj]
        import torch.distributed as dist

        out = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def sync_buffers(self, module) -> None:
        """Copy rank 0's buffers (batch-norm statistics) to every rank."""
        if self.world == 1:
            return
        import torch.distributed as dist

        for b in module.buffers():
            dist.broadcast(b, 0)

    def close(self) -> None:
        if self.started:
            import torch.distributed as dist

            dist.destroy_process_group()


def train(graph: Graph, cfg: TrainConfig, log: Callable[[str], None] = print,
          interrupt_after: int | None = None) -> TrainResult:
    """Train ``graph`` as ``cfg`` says. ``interrupt_after`` (tests) raises KeyboardInterrupt
    after that many steps of this call, as a Ctrl-C would."""
    import torch
    from netc.compiler.lower_torch.module import build_module
    from netc.runtime.data import load_dataset

    cfg.validate()
    if len(graph.inputs) != 1:
        raise UserError(f"netc train needs a net with one input; {graph.name} has "
                        f"{len(graph.inputs)}")
    spec = next(iter(graph.inputs.values()))
    head = classifier_head(graph)
    for node in auxiliary_heads(graph):
        if graph[node].shape != graph[head].shape:
            raise UserError(f"netc train: the training output {node} gives "
                            f"{'x'.join(map(str, graph[node].shape))}; an auxiliary classifier "
                            f"must score the {graph[head].shape[0]} classes as {head} does")
    dist = _Dist(cfg.device)
    try:
        if dist.device.type == "cpu":  # torch's CPU threads, chosen and said once
            from netc.runtime.threads import set_cpu_threads

            line = set_cpu_threads(cfg.threads)
            if dist.rank == 0:
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

        torch.manual_seed(cfg.seed + dist.rank)
        module = build_module(graph, seed=cfg.seed)
        if cfg.init:
            # A superset is fine: the full FractalNet's weights start its deepest column.
            module.load_safetensors(cfg.init, allow_unused=True)
        module.to(dist.device)
        model = module
        if dist.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            ids = [dist.device.index] if dist.device.type == "cuda" else None
            model = DistributedDataParallel(module, device_ids=ids)
            # A 1x1 conv's weight gradient comes back with other (equivalent) strides for its
            # size-1 dimensions; DDP warns, though nothing is wrong.
            warnings.filterwarnings("ignore", message="Grad strides do not match bucket view")
        optimizer = _optimizer(module, cfg)
        pos = _Position()
        if cfg.resume:
            pos, saved = _load_checkpoint(checkpoint, graph, module, optimizer, dist)
            if dist.main:
                log(f"resuming {checkpoint} at epoch {pos.epoch + 1}, step {pos.step}")
                changed = [f"{k} {saved[k]!r} -> {v!r}" for k, v in _resume_keys(cfg).items()
                           if saved.get(k, v) != v]
                if changed:
                    log("note: the run continues with other settings than it started with ("
                        + ", ".join(changed) + "), so it will not repeat an uninterrupted run")
                if pos.epoch >= cfg.epochs:
                    log(f"the checkpoint has finished {pos.epoch} epochs; --epochs is "
                        f"{cfg.epochs}: nothing left to train")
        elif dist.main:
            log(data.describe())
        loop = _Loop(graph, cfg, data, spec, head, module, model, optimizer, dist, log)
        loop.run(pos, checkpoint, interrupt_after)
        if dist.main:
            from netc.runtime.weights_io import write_safetensors

            state = {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()
                     if not k.endswith("num_batches_tracked")}
            write_safetensors(output, state, {"netc_net": graph.name})
            log(f"weights written to {output}")
        history = [EpochStats(**h) for h in pos.history]
        return TrainResult(module, history, checkpoint, output if dist.main else None)
    finally:
        dist.close()


def _optimizer(module, cfg: TrainConfig):
    import torch

    params = list(module.parameters())
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                           weight_decay=cfg.weight_decay)


class _Loop:
    """One run's epochs: training steps, evaluation, checkpoints."""

    def __init__(self, graph, cfg, data, spec, head, module, model, optimizer, dist, log):
        self.graph, self.cfg, self.data, self.spec, self.head = graph, cfg, data, spec, head
        self.module, self.model, self.optimizer, self.dist, self.log = (
            module, model, optimizer, dist, log)
        n = len(data.train_y) // dist.world
        steps = max(1, n // cfg.batch_size) if n >= cfg.batch_size else 1
        if cfg.steps_per_epoch:
            steps = min(steps, cfg.steps_per_epoch)
        self.steps = steps
        self.per_rank = n

    def order(self, epoch: int):
        """This rank's examples for ``epoch``: a permutation fixed by (seed, epoch)."""
        import torch

        gen = torch.Generator().manual_seed(self.cfg.seed * 100_003 + epoch)
        perm = torch.randperm(len(self.data.train_y), generator=gen)
        return perm[: self.per_rank * self.dist.world][self.dist.rank:: self.dist.world]

    def step(self, idx, lr: float, number: int):
        """One SGD step on examples ``idx``; ``number`` counts steps from the start of the run
        and seeds the stochastic-depth and drop-path gates, the same on every rank."""
        import torch.nn.functional as F
        from netc.runtime.data import make_batch

        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.module.seed_gates(self.cfg.seed, number)
        x = make_batch(self.data.train_x[idx], self.spec, self.cfg.augment).to(self.dist.device)
        y = self.data.train_y[idx].to(self.dist.device)
        self.model.train()
        aux = auxiliary_heads(self.graph)  # training outputs: weight x their cross-entropy
        out = self.model(x, taps=[self.head, *aux])
        logits = out[self.head]
        loss = F.cross_entropy(logits, y)
        for node, weight in aux.items():
            loss = loss + weight * F.cross_entropy(out[node], y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        correct = int((logits.detach().argmax(1) == y).sum())
        return float(loss.detach()) * len(idx), correct, len(idx)

    def evaluate(self) -> tuple[float, float]:
        import torch
        import torch.nn.functional as F
        from netc.runtime.data import make_batch

        self.module.eval()
        n = len(self.data.test_y)
        mine = range(self.dist.rank, n, self.dist.world)
        loss_sum = correct = 0.0
        with torch.no_grad():
            for start in range(0, len(mine), 512):
                idx = torch.tensor(list(mine[start:start + 512]), dtype=torch.long)
                x = make_batch(self.data.test_x[idx], self.spec).to(self.dist.device)
                y = self.data.test_y[idx].to(self.dist.device)
                logits = self.module(x, taps=[self.head])[self.head]
                loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
                correct += int((logits.argmax(1) == y).sum())
        loss_sum, correct, total = self.dist.all_sum([loss_sum, correct, float(len(mine))])
        return loss_sum / max(total, 1), correct / max(total, 1)

    def run(self, pos: _Position, checkpoint: Path, interrupt_after: int | None) -> None:
        cfg = self.cfg
        done = 0
        bar = _Progress(cfg.progress and self.dist.main, cfg.epochs, self.steps)
        ctrl_c = _DeferredInterrupt()
        try:
            while pos.epoch < cfg.epochs:
                started = time.perf_counter()
                order = self.order(pos.epoch)
                bar.start_epoch(pos.epoch, pos.step)
                while pos.step < self.steps:
                    i = pos.step
                    idx = order[i * cfg.batch_size:(i + 1) * cfg.batch_size]
                    lr = lr_at(cfg, (pos.epoch + i / self.steps) / cfg.epochs)
                    loss_sum, correct, n = self.step(idx, lr, pos.epoch * self.steps + i)
                    pos.loss_sum += loss_sum
                    pos.correct += correct
                    pos.seen += n
                    pos.step += 1
                    done += 1
                    bar.advance(pos.loss_sum / pos.seen, pos.correct / pos.seen)
                    if ctrl_c.hit or (interrupt_after is not None and done >= interrupt_after):
                        raise KeyboardInterrupt
                self.dist.sync_buffers(self.module)
                loss_sum, correct, seen = self.dist.all_sum(
                    [pos.loss_sum, float(pos.correct), float(pos.seen)])
                test_loss, test_acc = self.evaluate()
                stats = EpochStats(pos.epoch + 1, lr_at(cfg, pos.epoch / cfg.epochs),
                                   loss_sum / seen, correct / seen, test_loss, test_acc,
                                   time.perf_counter() - started)
                pos.history.append(asdict(stats))
                pos.epoch, pos.step, pos.loss_sum, pos.correct, pos.seen = (
                    pos.epoch + 1, 0, 0.0, 0, 0)
                bar.end_epoch()
                if self.dist.main:
                    self.log(_epoch_line(stats, cfg.epochs))
                self.save(checkpoint, pos, collective=True)
        except KeyboardInterrupt:
            bar.end_epoch()
            # The first Ctrl-C is deferred to the end of the step, so ``pos`` and the weights
            # agree and a resumed run continues exactly; a second one stops at once.
            ctrl_c.restore()
            self.save(checkpoint, pos, collective=False)
            if self.dist.main:
                self.log(f"interrupted at epoch {pos.epoch + 1}, step {pos.step}: checkpoint "
                         f"{checkpoint}; continue with --resume")
            raise
        finally:
            ctrl_c.restore()
            bar.close()

    def save(self, path: Path, pos: _Position, collective: bool) -> None:
        """Write the checkpoint (rank 0), atomically. ``collective``: every rank is here, so
        the generator states of all ranks are gathered (else only rank 0's is kept)."""
        import torch
        from netc.runtime.files import atomic_path

        rng = [_rng_state(self.dist.device)]
        if collective:
            rng = self.dist.gather(rng[0])
        if not self.dist.main:
            return
        state = {
            "format": CHECKPOINT_FORMAT,
            "net": self.graph.name,
            "model": self.module.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "position": {k: v for k, v in asdict(pos).items() if k != "history"},
            "history": pos.history,
            "rng": rng,
            "world": self.dist.world,
            "config": _resume_keys(self.cfg),
        }
        with atomic_path(path) as tmp:
            torch.save(state, tmp)


class _DeferredInterrupt:
    """Turns the first SIGINT into a flag the loop checks after each step (main thread only)."""

    def __init__(self):
        import signal
        import threading

        self.hit = False
        self._old = None
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum, frame):
        if self.hit:
            raise KeyboardInterrupt
        self.hit = True

    def restore(self) -> None:
        if self._old is not None:
            import signal

            signal.signal(signal.SIGINT, self._old)
            self._old = None


def _rng_state(device) -> dict:
    import torch

    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _resume_keys(cfg: TrainConfig) -> dict:
    """The settings a resumed run must share with its start to repeat an uninterrupted run."""
    keys = ("data", "batch_size", "seed", "optimizer", "epochs", "steps_per_epoch", "augment",
            "schedule", "lr")
    return {k: getattr(cfg, k) for k in keys}


def _load_checkpoint(path: Path, graph, module, optimizer, dist) -> tuple[_Position, dict]:
    import torch

    if not path.is_file():
        raise UserError(f"--resume: no checkpoint at {path}")
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise UserError(f"cannot read checkpoint {path}: {str(err).splitlines()[0]}") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"{path} is not a netc training checkpoint")
    if state["net"] != graph.name:
        raise UserError(f"{path} is a checkpoint of {state['net']}, not of {graph.name}")
    try:
        module.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError) as err:
        raise UserError(f"{path} does not fit {graph.name}: {str(err).splitlines()[0]}") from None
    rng = state["rng"]
    mine = rng[dist.rank] if len(rng) == dist.world else rng[0]
    torch.set_rng_state(mine["cpu"])
    if "cuda" in mine and dist.device.type == "cuda":
        torch.cuda.set_rng_state(mine["cuda"], dist.device)
    return (_Position(**state["position"], history=list(state["history"])),
            dict(state.get("config", {})))


def _epoch_line(s: EpochStats, epochs: int) -> str:
    return (f"epoch {s.epoch}/{epochs}  lr {s.lr:.4g}  train loss {s.train_loss:.4f} "
            f"acc {100 * s.train_acc:.2f}%  held-out loss {s.test_loss:.4f} "
            f"acc {100 * s.test_acc:.2f}%  ({s.seconds:.1f} s)")


class _Progress:
    """A rich progress bar on stderr (only on a terminal, only on rank 0)."""

    def __init__(self, enabled: bool, epochs: int, steps: int):
        self.bar = None
        self.task = None
        self.epochs, self.steps = epochs, steps
        if enabled and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                MofNCompleteColumn(), TextColumn("{task.fields[stats]}"),
                                TimeRemainingColumn(), console=Console(stderr=True),
                                transient=True)
            self.bar.start()

    def start_epoch(self, epoch: int, step: int) -> None:
        if self.bar is not None:
            self.task = self.bar.add_task(f"epoch {epoch + 1}/{self.epochs}", total=self.steps,
                                          completed=step, stats="")

    def advance(self, loss: float, acc: float) -> None:
        if self.task is not None:
            self.bar.update(self.task, advance=1,
                            stats=f"loss {loss:.4f} acc {100 * acc:.1f}%")

    def end_epoch(self) -> None:
        if self.task is not None:
            self.bar.remove_task(self.task)
            self.task = None

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
