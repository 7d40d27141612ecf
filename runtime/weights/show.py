"""The pairing table of ``netc weights import --show``: one row per tensor of the spec.

Each row says the spec's key, the file's key as stored (before any ``--rename``), the file's
shape and the spec's, and what was done to the tensor: ``reshape 1x1 (Linear as conv)`` for a
Linear paired with a 1x1 conv, ``reshape 1x1 (conv as Linear)`` for the reverse, ``squeezed``
or ``unsqueezed`` where only size-1 axes differ (never a transpose), ``renamed by rule N`` for a
key a ``--rename`` rule changed. A tensor taken as it is has ``-``. A spec layer's rows are
kept together, in graph order.
"""

from __future__ import annotations

from netc.runtime.weights.mapping import Mapped
from netc.runtime.weights.misfit import dims

HEADER = ("spec tensor", "file key", "file shape", "spec shape", "conversion")


def pairing_table(mapped: Mapped) -> str:
    """The table of ``mapped``'s rows (module docstring), columns aligned, with a header."""
    rows = [HEADER]
    for row in mapped.rows:
        shape = dims(row.shape) if row.shape != row.file_shape else "="
        rows.append((row.key, row.file_key, dims(row.file_shape), shape,
                     "; ".join(row.conversions) or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER) - 1)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths)) + "  " + r[-1]
                     for r in rows)


def conversions_line(mapped: Mapped) -> str | None:
    """One line counting the tensors that were reshaped or renamed; None when none was."""
    counts: dict[str, int] = {}
    for row in mapped.rows:
        for done in row.conversions:
            kind = "renamed by --rename" if done.startswith("renamed") else done
            counts[kind] = counts.get(kind, 0) + 1
    if not counts:
        return None
    return "converted: " + ", ".join(f"{n} {kind}" for kind, n in counts.items())
