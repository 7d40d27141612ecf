"""The process group of a run under ``torchrun``: ranks, the device, and the collectives.

One process (``WORLD_SIZE`` unset or 1) needs none of it, and every method is then a no-op, so
the training loop reads the same either way. Under ``torchrun --nproc_per_node N`` the group is
started with gloo on CPU and nccl on GPU; each rank takes ``cuda:LOCAL_RANK`` when the device
is CUDA.
"""

from __future__ import annotations

import os

from netc.dsl.diagnostics import UserError


class Dist:
    """The process group, when run under torchrun (WORLD_SIZE > 1); rank 0 is the main
    process, the only one that writes files and prints."""

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
        """Whether this is rank 0, the process that writes files and prints."""
        return self.rank == 0

    def all_sum(self, values: list[float]) -> list[float]:
        """``values`` summed over every rank, element by element."""
        if self.world == 1:
            return values
        import torch
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()

    def gather(self, obj) -> list:
        """Every rank's ``obj``, in rank order (a collective: every rank must call it)."""
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
        """End the process group this object started. The caller drops its
        DistributedDataParallel wrapper first: the wrapper's reducer holds the group, and where
        a reference cycle keeps it until interpreter shutdown, gloo's threads are torn down
        then and the process aborts ("terminate called without an active exception") after
        all its work is done. Collecting here frees it while Python is still whole."""
        if self.started:
            import gc

            import torch.distributed as dist

            gc.collect()
            dist.destroy_process_group()
