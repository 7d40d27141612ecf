"""The loop of a training run: steps, evaluation after each epoch, checkpoints, Ctrl-C.

:class:`Loop` runs the epochs of :func:`netc.runtime.train.train` from a
:class:`~netc.runtime.train_state.Position` (the start, or a checkpoint's): each step draws its
examples from a permutation fixed by ``(seed, epoch)`` and its stochastic-depth and drop-path
gates from ``(seed, step)``, so a resumed run repeats an uninterrupted one. The learning rate is
a function of the position in training (:func:`lr_at`), so a resumed run needs no scheduler
state. The first Ctrl-C or SIGTERM is deferred to the end of the step, then the checkpoint is
written; a second one stops at once and keeps the checkpoint there was.

A run whose loss or gradients turn NaN or infinite (a learning rate too high for the net) stops
before the bad step is applied, with one line naming the epoch and step: no weights are
written, and the last checkpoint, which holds finite weights (checked before each is written),
is kept.
"""

from __future__ import annotations

import math
import signal
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from netc.dsl.diagnostics import UserError
from netc.runtime.interrupts import DeferredInterrupt
from netc.runtime.train_state import Position, save_checkpoint


class Diverged(Exception):
    """A value of the run (the loss, the gradients, the weights) turned non-finite; ``where``
    overrides the epoch and step the message names."""

    def __init__(self, what: str, where: str | None = None):
        super().__init__(what)
        self.where = where


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
        self.check_finite(loss)  # before the step: the weights stay the last finite ones
        self.optimizer.step()
        correct = int((logits.detach().argmax(1) == y).sum())
        return float(loss.detach()) * len(idx), correct, len(idx)

    def check_finite(self, loss) -> None:
        """Raise :class:`Diverged` when the loss or the gradients are NaN or infinite (on any
        rank: the ranks agree, so every one stops at the same step)."""
        import torch

        grads = [p.grad for p in self.module.parameters() if p.grad is not None]
        norm = float(torch.nn.utils.get_total_norm(grads)) if grads else 0.0
        value = float(loss.detach())
        bad = not (math.isfinite(value) and math.isfinite(norm))
        if self.dist.world > 1:
            bad = self.dist.all_sum([float(bad)])[0] > 0
        if bad:
            raise Diverged(f"the loss or its gradients are not finite (loss {value:g}, "
                           f"gradient norm {norm:g})")

    def weights_finite(self) -> bool:
        """Whether every parameter and buffer of the module is finite."""
        import torch

        return all(bool(torch.isfinite(t).all()) for t in self.module.state_dict().values()
                   if t.is_floating_point())

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
        """Train from ``pos`` to the last epoch, writing ``checkpoint`` after each epoch and on
        an interruption (which is then re-raised). UserError when the run diverges."""
        bar = Progress(self.cfg.progress and self.dist.main, self.cfg.epochs, self.steps)
        signals = DeferredInterrupt()
        try:
            self.epochs(pos, checkpoint, bar, signals, interrupt_after)
        except KeyboardInterrupt as err:
            bar.end_epoch()
            signals.restore()
            # A deferred signal arrives between steps, where ``pos`` and the weights agree, so
            # a resumed run continues exactly; a second signal may cut a step in two, so the
            # checkpoint written before it is kept instead.
            where = f"interrupted at epoch {pos.epoch + 1}, step {pos.step}"
            if getattr(err, "deferred", False):
                self.save(checkpoint, pos, collective=False)
                said = f"checkpoint {checkpoint}"
            else:
                said = self.kept(checkpoint)
            if self.dist.main:
                self.log(f"{where}: {said}; continue with --resume")
            raise
        except Diverged as err:
            bar.end_epoch()
            where = err.where or f"at epoch {pos.epoch + 1}, step {pos.step + 1}"
            raise UserError(f"training stopped {where}: "
                            f"{err}; no weights were written, {self.kept(checkpoint)}; a lower "
                            f"--lr (now {self.cfg.lr:g}) may help") from None
        finally:
            signals.restore()
            bar.close()

    def epochs(self, pos: Position, checkpoint: Path, bar, signals, interrupt_after) -> None:
        """The epochs from ``pos`` on: steps, evaluation, a checkpoint after each."""
        cfg = self.cfg
        done = 0
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
                if interrupt_after is not None and done >= interrupt_after:
                    signals.hit = signals.hit or signal.SIGINT  # as a Ctrl-C after this step would
                _check_deferred(signals)
            self.dist.sync_buffers(self.module)
            loss_sum, correct, seen = self.dist.all_sum(
                [pos.loss_sum, float(pos.correct), float(pos.seen)])
            test_loss, test_acc = self.evaluate()
            if not (math.isfinite(test_loss) and self.weights_finite()):
                raise Diverged(f"the weights or the held-out loss ({test_loss:g}) are not "
                               "finite", where=f"after epoch {pos.epoch + 1}")
            stats = EpochStats(pos.epoch + 1, lr_at(cfg, pos.epoch / cfg.epochs),
                               loss_sum / seen, correct / seen, test_loss, test_acc,
                               time.perf_counter() - started)
            pos.next_epoch(asdict(stats))
            bar.end_epoch()
            if self.dist.main:
                self.log(_epoch_line(stats, cfg.epochs))
            self.save(checkpoint, pos, collective=True)
            _check_deferred(signals)  # one that came during the evaluation stops here

    def kept(self, checkpoint: Path) -> str:
        """What is left to resume from: the checkpoint there was, or none."""
        if checkpoint.is_file():
            return f"the last checkpoint, {checkpoint}, is kept"
        return "and there is no checkpoint yet (none is written before an epoch ends)"

    def save(self, path: Path, pos: Position, collective: bool) -> None:
        """Write the checkpoint (rank 0), atomically (:func:`save_checkpoint`)."""
        save_checkpoint(path, self, pos, collective)


def _check_deferred(signals: DeferredInterrupt) -> None:
    """Raise the deferred signal's exception, marked so the handler knows ``pos`` and the
    weights agree."""
    try:
        signals.check()
    except KeyboardInterrupt as err:
        err.deferred = True
        raise


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
