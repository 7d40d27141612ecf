"""A net's summary as data (:class:`Summary`, one :class:`SummaryRow` per layer) and as text.

These are the public records of :meth:`netc.Net.summary`: plain frozen dataclasses, so
``dataclasses.asdict(summary)`` is a JSON-ready dict. They are built from the compiler's
analysis (:mod:`netc.compiler.analyses.summary`) and keep their own field names, so the
analysis can change without changing what users read. :meth:`Summary.text` is the table that
``netc summary`` prints, drawn by the same code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the compiler's records, imported where they are converted
    from netc.compiler.analyses import summary as analysis

Shape = tuple[int, ...]


@dataclass(frozen=True, slots=True)
class SummaryRow:
    """One layer (or, in a folded summary, one group of layers) of a net.

    ``shape`` is the output's shape for one sample (CxHxW or a vector); ``params`` the learnable
    weights; ``macs`` the multiply-accumulates for one sample; ``receptive_field`` the input
    pixels (height) one output value sees, None past a flatten. ``kernel``, ``stride`` and
    ``dilation`` are (height, width) for windowed ops, None for the others. ``inputs`` names
    what the layer reads where that is not just the row above (joins, branches: Keras's
    "connected to"); ``notes`` says more about some layers (survival probability, columns).
    """

    name: str
    op: str
    shape: Shape
    params: int
    macs: int
    receptive_field: int | None
    kernel: tuple[int, int] | None = None
    stride: tuple[int, int] | None = None
    dilation: tuple[int, int] | None = None
    inputs: tuple[str, ...] = ()
    notes: str = ""


@dataclass(frozen=True, slots=True)
class Summary:
    """A net's layers and totals, as ``netc summary`` shows them.

    Totals count the layers inference runs: ``params`` (learnable), ``non_trainable`` (batch
    norm's running statistics, Keras's count), ``macs`` and ``activation_bytes`` (float32, one
    sample). Layers that only training-only outputs need (auxiliary heads) are counted apart,
    in ``training_params`` and ``training_macs``. ``str(summary)`` is the table.
    """

    name: str
    rows: tuple[SummaryRow, ...]
    inputs: dict[str, Shape]
    outputs: dict[str, Shape]
    params: int
    non_trainable: int
    macs: int
    activation_bytes: int
    training_params: int = 0
    training_macs: int = 0

    def text(self, width: int | None = 100) -> str:
        """The table ``netc summary`` prints, fitted to ``width`` columns by shortening long
        names from the left; ``width=None`` prints every name whole (``netc summary --wide``).
        """
        from netc.runtime.commands.summary import render

        if width is not None and (isinstance(width, bool) or not isinstance(width, int)
                                  or width < 1):
            from netc.dsl.diagnostics import UserError

            raise UserError(f"width must be a positive integer or None; got {width!r}")
        totals, rows = _to_analysis(self)
        return render(totals, rows, width)

    def __str__(self) -> str:
        return self.text()


def from_analysis(totals: analysis.Summary, rows: list[analysis.Row] | None = None) -> Summary:
    """The public record of the compiler's summary; ``rows`` replaces its rows (folded ones)."""
    return Summary(
        name=totals.name,
        rows=tuple(_row(r) for r in (totals.rows if rows is None else rows)),
        inputs=dict(totals.inputs),
        outputs=dict(totals.outputs),
        params=totals.params,
        non_trainable=totals.buffers,
        macs=totals.macs,
        activation_bytes=totals.activation_bytes,
        training_params=totals.training_params,
        training_macs=totals.training_macs,
    )


def _row(r: analysis.Row) -> SummaryRow:
    return SummaryRow(r.name, r.op, tuple(r.shape), r.params, r.macs, r.rf,
                      _pair(r.kernel), _pair(r.stride), _pair(r.dilation), tuple(r.inputs),
                      r.extra)


def _pair(value: tuple[int, ...] | None) -> tuple[int, int] | None:
    return None if value is None else (value[0], value[1])


def _to_analysis(s: Summary) -> tuple[analysis.Summary, list[analysis.Row]]:
    """The compiler's records again, for the table renderer the command line uses."""
    from netc.compiler.analyses.summary import Row
    from netc.compiler.analyses.summary import Summary as Totals

    rows = [Row(r.name, r.op, r.shape, r.params, r.macs, r.receptive_field, r.notes,
                r.kernel, r.stride, r.dilation, r.inputs) for r in s.rows]
    totals = Totals(s.name, tuple(rows), s.inputs, s.outputs, s.params, s.macs,
                    s.activation_bytes, training_params=s.training_params,
                    training_macs=s.training_macs, buffers=s.non_trainable)
    return totals, rows
