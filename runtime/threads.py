"""How many CPU threads torch uses, chosen once and said out loud (``netc train``, ``recipe``).

torch's default intra-op thread count is the number of physical cores (or ``OMP_NUM_THREADS``);
in a container it can count cores this process may not use, and OpenMP threads that outnumber
the free cores spin and wait: on a busy 2-core machine ``netc train`` ran 5x slower with the
default than with ``--threads 1``. The default stays deterministic (a CPU run with one
``--seed`` repeats bit for bit only with the same thread count), so it is torch's default capped
at the cores this process may run on; when the machine is already loaded past its cores the
printed line says so and suggests ``--threads 1``.
"""

from __future__ import annotations

import os

from netc.dsl.diagnostics import UserError


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def set_cpu_threads(requested: int | None) -> str:
    """Set torch's CPU threads (``requested``, else the default above); return a line that
    says how many and why."""
    import torch

    if requested is not None:
        if requested < 1:
            raise UserError(f"--threads must be at least 1; got {requested}")
        torch.set_num_threads(requested)
        return f"torch: {requested} CPU thread{'s' if requested != 1 else ''} (--threads)"
    cores = usable_cores()
    default = torch.get_num_threads()
    n = max(1, min(default, cores))
    torch.set_num_threads(n)
    why = "torch's default: the physical cores"
    if n < default:
        why += f", capped at the {cores} this process may use"
    line = f"torch: {n} CPU thread{'s' if n != 1 else ''} ({why}; --threads N to change)"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if n > 1 and load > cores:
        line += (f"\nnote: the machine is busy (load {load:.1f} on {cores} cores); "
                 "--threads 1 may run faster")
    return line
