"""``netc summary SPEC``: one row per node (name, op, shape, window, params, MACs, receptive
field, what a join reads, one name a line), fitted to 100 columns.

Long names are shortened from the left (``…layer3.5.conv2``: the end of a name is the part that
tells rows apart); ``--wide`` prints every name whole (names are what users copy into recipes
and ``--outputs``; ``--json`` has them too). The receptive field is the number however large
(ResNet-50's last conv sees 483 pixels of a 224 image: how far past the image a field
reaches is what it tells).
"""

from __future__ import annotations

import json

from netc.runtime.commands.common import add_spec_arguments, load_graph
from netc.runtime.commands.options import add_depth, check_depth

WIDTH = 100  # the default table width, in columns
_HEADER = ("name", "op", "output", "k/s", "params", "MACs", "RF", "connected to", "notes")
_LEFT = {0, 1, 7, 8}  # left-aligned columns
_GAP = 2  # spaces between columns


def add_arguments(p):
    add_spec_arguments(p)
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    add_depth(p, "fold the table to N levels of the name hierarchy")
    p.add_argument("--wide", action="store_true",
                   help=f"print every name whole instead of fitting {WIDTH} columns")


def run(args) -> int:
    from netc.compiler.analyses.summary import fold, summarize

    check_depth(args.depth)
    graph = load_graph(args)
    summary = summarize(graph)
    if args.json:
        print(json.dumps(summary.to_json(), indent=1))
        return 0
    rows = fold(summary, args.depth) if args.depth else summary.rows
    print(render(summary, rows, None if args.wide else WIDTH))
    return 0


def render(summary, rows, width: int | None) -> str:
    """The table as text; ``width`` None prints every cell whole."""
    from netc.compiler.analyses.summary import human, human_bytes, one_line

    cells = [[r.name, r.op, "x".join(map(str, r.shape)), _window(r), f"{r.params:,}",
              human(r.macs) if r.macs else "0", _rf(r.rf),
              [_relative(i, r.name) if width else i for i in r.inputs], r.extra]
             for r in rows]
    total = ["total", "", "", "", f"{summary.params:,}", human(summary.macs), "", [], ""]
    # Columns with nothing in them (no joins, no notes) are left out.
    keep = [i for i in range(len(_HEADER)) if i < 7 and i != 3 or any(c[i] for c in cells)]
    header = [_HEADER[i] for i in keep]
    cells = [[c[i] for i in keep] for c in cells]
    total = [total[i] for i in keep]
    join = keep.index(7) if 7 in keep else None
    widths = [max(_len(c[j]) for c in [header, *cells, total]) for j in range(len(keep))]
    cut = False
    if width is not None:
        cut = _fit(widths, width, join, keep.index(8) if 8 in keep else None)
    left = [j for j, i in enumerate(keep) if i in _LEFT]
    right = {1} | ({keep.index(8)} if 8 in keep else set())  # op and notes: cut on the right
    lines = [*_title(one_line(summary), width), *_lines(header, widths, left)]
    for c in cells:
        lines += _lines(c, widths, left, right)
    lines.append("─" * (sum(widths) + _GAP * (len(widths) - 1)))
    lines += _lines(total, widths, left)
    lines.append(f"params: {summary.params:,} trainable, {summary.buffers:,} non-trainable "
                 f"(batch-norm running statistics, Keras's count)")
    lines.append(f"activations for one sample: {human_bytes(summary.activation_bytes)} "
                 f"(float32); parameters: {human_bytes(4 * summary.params)}")
    notes = ["k/s: kernel/stride (d: dilation)",
             "RF: receptive field in input pixels (height)"]
    if cut:
        notes.append("names cut from the left (…): --wide prints them whole")
    lines += _wrap(notes, width or WIDTH)
    return "\n".join(lines)


def _title(text: str, width: int | None) -> list[str]:
    """The summary line, broken after a comma (never mid-word) where it is wider than ``width``."""
    lines = []
    while width and len(text) > width and ", " in text[:width]:
        cut = text.rindex(", ", 0, width) + 1
        lines.append(text[:cut])
        text = "  " + text[cut + 1:]
    return [*lines, text]


def _len(cell) -> int:
    return max(map(len, cell), default=0) if isinstance(cell, list) else len(cell)


def _wrap(parts: list[str], width: int) -> list[str]:
    """``parts`` joined by "; " into lines of at most ``width`` columns."""
    lines = [parts[0]]
    for p in parts[1:]:
        if len(lines[-1]) + 2 + len(p) <= width:
            lines[-1] += "; " + p
        else:
            lines.append(p)
    return lines


def _window(r) -> str:
    if r.kernel is None:
        return ""
    def one(v):
        return str(v[0]) if v[0] == v[1] else f"{v[0]}x{v[1]}"
    text = f"{one(r.kernel)}/{one(r.stride)}"
    if r.dilation and any(d != 1 for d in r.dilation):
        text += f" d{one(r.dilation)}"
    return text


def _rf(rf: int | None) -> str:
    return f"{rf:,}" if rf else "-"


def _relative(name: str, to: str) -> str:
    """``name`` without the scope it shares with ``to`` (a join reads its own scope's values):
    ``layer1.basic1.bn2`` seen from ``layer1.basic1.add`` is ``bn2``."""
    a, b = name.split("."), to.split(".")[:-1]
    k = 0
    while k < min(len(a) - 1, len(b)) and a[k] == b[k]:
        k += 1
    return ".".join(a[k:])


def _fit(widths: list[int], width: int, join: int | None, notes: int | None) -> bool:
    """Shrink the name, "connected to", op and notes columns (in place) until the table fits
    ``width``; return whether any was shrunk."""
    excess = sum(widths) + _GAP * (len(widths) - 1) - width
    if excess <= 0:
        return False
    # "connected to" gives way first, then the name; both stay readable if they can; then the
    # notes and the op (cut on the right), then both names again, down to a few letters.
    steps = ((join, 16), (0, 28), (join, 12), (0, 16), (1, 10), (notes, 8), (join, 6), (0, 8))
    for col, floor in steps:
        if col is None or excess <= 0:
            continue
        give = min(excess, max(0, widths[col] - floor))
        widths[col] -= give
        excess -= give
    return True


def _cut_right(text: str, w: int) -> str:
    return text if len(text) <= w else text[:w - 1] + "…"


def _cut(text: str, w: int) -> str:
    """``text`` in ``w`` columns, cut from the left at a dot where one is near: ``…3.conv2``."""
    if len(text) <= w:
        return text
    tail = text[len(text) - (w - 1):]
    dot = tail.find(".")
    if 0 <= dot < len(tail) // 2:  # start at a whole name part, if little is lost
        tail = tail[dot + 1:]
    return "…" + tail


def _lines(cells, widths, left, right=()) -> list[str]:
    """One row; a list cell ("connected to") puts one name a line, as Keras does."""
    extra = max((len(c) for c in cells if isinstance(c, list)), default=1)
    out = []
    for k in range(max(extra, 1)):
        parts = []
        for j, (c, w) in enumerate(zip(cells, widths)):
            if isinstance(c, list):
                c = _cut(c[k], w) if k < len(c) else ""
            elif k:
                c = ""
            elif j == 0:
                c = _cut(c, w)
            elif j in right:
                c = _cut_right(c, w)
            parts.append(c.ljust(w) if j in left else c.rjust(w))
        out.append((" " * _GAP).join(parts).rstrip())
    return out
