"""Where a training run is, and the checkpoint that lets it continue exactly.

A checkpoint holds the weights, the optimizer state, the position in the epoch with the
epoch's running sums, the history, every rank's generator state and the settings a resumed run
must share with its start (:func:`resume_keys`). It is written atomically by rank 0 after every
epoch and when the run is interrupted, and read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from netc.dsl.diagnostics import UserError
from netc.dsl.sources import NotRegular, check_regular

CHECKPOINT_FORMAT = "netc-train-1"


@dataclass
class Position:
    """Where a run is: the epoch, the next step in it, and the epoch's running sums."""

    epoch: int = 0
    step: int = 0
    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0
    history: list[dict] = field(default_factory=list)

    def next_epoch(self, stats: dict) -> None:
        """Record a finished epoch's figures and start the next one."""
        self.history.append(stats)
        self.epoch, self.step, self.loss_sum, self.correct, self.seen = (
            self.epoch + 1, 0, 0.0, 0, 0)


def resume_keys(cfg) -> dict:
    """The settings a resumed run must share with its start to repeat an uninterrupted run."""
    keys = ("data", "batch_size", "seed", "optimizer", "epochs", "steps_per_epoch", "augment",
            "schedule", "lr")
    return {k: getattr(cfg, k) for k in keys}


def rng_state(device) -> dict:
    """This process's generator states (CPU, and the CUDA device's when it is one)."""
    import torch

    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def save_checkpoint(path: Path, run, pos: Position, collective: bool) -> None:
    """Write the checkpoint of ``run`` (a :class:`netc.runtime.train_loop.Loop`) at ``pos``,
    atomically, on rank 0. ``collective``: every rank is here, so the generator states of all
    ranks are gathered (else only rank 0's is kept)."""
    import torch

    from netc.runtime.files import atomic_path

    rng = [rng_state(run.dist.device)]
    if collective:
        rng = run.dist.gather(rng[0])
    if not run.dist.main:
        return
    state = {
        "format": CHECKPOINT_FORMAT,
        "net": run.graph.name,
        "model": run.module.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "position": {k: v for k, v in asdict(pos).items() if k != "history"},
        "history": pos.history,
        "rng": rng,
        "world": run.dist.world,
        "config": resume_keys(run.cfg),
    }
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        try:
            torch.save(state, f)
        except RuntimeError as err:
            # Through a file object, torch's writer wraps the OSError of a full disk in an
            # "unexpected pos" RuntimeError: the OSError is what atomic_path names the file with.
            if isinstance(err.__context__, OSError):
                raise err.__context__ from None
            raise UserError(f"cannot write checkpoint {path}: "
                            f"{str(err).splitlines()[0]}") from None


def load_checkpoint(path: Path, graph, module, optimizer, dist) -> tuple[Position, dict]:
    """Restore weights, optimizer and this rank's generators from ``path``; return the position
    and the settings the run was started with."""
    import torch

    if not path.exists():
        raise UserError(f"--resume: no checkpoint at {path}")
    try:
        check_regular(path)  # a FIFO would hang torch.load; a folder or device is no checkpoint
    except NotRegular as err:
        raise UserError(f"--resume: {err}") from None
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
    return (Position(**state["position"], history=list(state["history"])),
            dict(state.get("config", {})))
