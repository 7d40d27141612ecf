"""The loop of a training run: steps, evaluation after each epoch, checkpoints, Ctrl-C.

:class:`Loop` runs the epochs of :func:`netc.runtime.train.train` from a
:class:`~netc.runtime.train_state.Position` (the start, or a checkpoint's): each step draws its
examples from a permutation fixed by ``(seed, epoch)`` and its stochastic-depth and drop-path
gates from ``(seed, step)``, so a resumed run repeats an uninterrupted one. The learning rate is
a function of the position in training (:func:`lr_at`), so a resumed run needs no scheduler
state. The first Ctrl-C is deferred to the end of the step, then the checkpoint is written.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from netc.runtime.train_state import Position, save_checkpoint


@dataclass
class EpochStats:
    """One epoch's figures, as printed after it and kept in the run's history."""

    epoch: int
    lr: float
    train_loss: float
    train_acc: float
    test_loss: float
    test_acc: float
    seconds: float


def lr_at(cfg, progress: float) -> float:
    """The learning rate of a :class:`~netc.runtime.train.TrainConfig` at ``progress`` ∈
    [0, 1) of the run."""
    if cfg.schedule == "cosine":
        return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * progress))
    if cfg.schedule == "step":
        return cfg.lr * cfg.gamma ** sum(progress >= m for m in cfg.milestones)
    return cfg.lr


class Loop:
    """One run's epochs: training steps, evaluation, checkpoints.

    ``head`` is the logits node; ``aux`` maps each auxiliary head's logits node to its loss
    weight; ``model`` is ``module`` or its DistributedDataParallel wrapper.
    """

    def __init__(self, graph, cfg, data, spec, head, aux, module, model, optimizer, dist, log):
        self.graph, self.cfg, self.data, self.spec, self.head = graph, cfg, data, spec, head
        self.aux = aux
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
        out = self.model(x, taps=[self.head, *self.aux])
        logits = out[self.head]
        loss = F.cross_entropy(logits, y)
        for node, weight in self.aux.items():  # training outputs: weight x their cross-entropy
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

    def run(self, pos: Position, checkpoint: Path, interrupt_after: int | None) -> None:
        cfg = self.cfg
        done = 0
        bar = Progress(cfg.progress and self.dist.main, cfg.epochs, self.steps)
        ctrl_c = DeferredInterrupt()
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
                pos.next_epoch(asdict(stats))
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

    def save(self, path: Path, pos: Position, collective: bool) -> None:
        """Write the checkpoint (rank 0), atomically (:func:`save_checkpoint`)."""
        save_checkpoint(path, self, pos, collective)


class DeferredInterrupt:
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


def _epoch_line(s: EpochStats, epochs: int) -> str:
    return (f"epoch {s.epoch}/{epochs}  lr {s.lr:.4g}  train loss {s.train_loss:.4f} "
            f"acc {100 * s.train_acc:.2f}%  held-out loss {s.test_loss:.4f} "
            f"acc {100 * s.test_acc:.2f}%  ({s.seconds:.1f} s)")


class Progress:
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
