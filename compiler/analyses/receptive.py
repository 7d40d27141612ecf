"""Where a unit of a feature map looks in the input: receptive-field boxes on both axes.

The one receptive-field walk: the summary's RF column
(:func:`netc.compiler.analyses.summary.receptive_fields`) is its height's size and jump, and a
crop also needs where the field sits. Per axis, with ``start`` the input coordinate of the
centre of the first unit's field (Araujo et al., "Computing receptive fields of convolutional
neural networks", Distill 2019), a window op of kernel k, stride s, padding p and dilation d gives::

    rf_out    = rf_in + d·(k − 1)·jump_in
    jump_out  = jump_in · s
    start_out = start_in + (d·(k − 1)/2 − p) · jump_in

Pointwise ops keep all three; a join takes the largest field of its inputs, and the jump and
start of those of the output's spatial size: a broadcast input (SE's Cx1x1 gate) adds its
field but not its spacing. Unit (i, j) then looks at the input rows
start_h + i·jump_h ± (rf_h − 1)/2.
"""

from __future__ import annotations

from dataclasses import dataclass

from netc.compiler.ir import Graph


@dataclass(frozen=True, slots=True)
class Field:
    """The receptive field of a feature map's units, per axis (height, width)."""

    size: tuple[int, int]
    jump: tuple[int, int]
    start: tuple[float, float]

    def box(self, i: int, j: int) -> tuple[int, int, int, int]:
        """(top, left, bottom, right) input pixels of unit (i, j), bottom/right exclusive; may
        reach outside the image where the field covers padding."""
        out = []
        for pos, size, jump, start in zip((i, j), self.size, self.jump, self.start):
            lo = start + pos * jump - (size - 1) / 2
            out.append(int(round(lo)))
        top, left = out
        return top, left, top + self.size[0], left + self.size[1]


def rearranges(node, shapes: list[tuple[int, ...]]) -> bool:
    """Whether a node without a window moves values to other positions (a reshape of C×H×W
    to 1×C×HW): its channels and its height and width all differ from each input's, so a
    field measured in input rows means nothing past it."""
    if node.opdef.geometry(node.attrs, shapes) is not None:
        return False
    return all(len(s) == 3 and s[0] != node.shape[0] and s[1:] != node.shape[1:]
               for s in shapes) and bool(shapes)


def fields(graph: Graph) -> dict[str, Field | None]:
    """The :class:`Field` of every feature-map node (None for flat vectors)."""
    result: dict[str, Field | None] = {}
    for node in graph:
        if node.op == "input":
            result[node.name] = Field((1, 1), (1, 1), (0.0, 0.0)) if len(node.shape) == 3 \
                else None
            continue
        ins = [result[i] for i in node.inputs]
        shapes = [graph[i].shape for i in node.inputs]
        if len(node.shape) != 3 or not ins or any(f is None for f in ins) or \
                rearranges(node, shapes):
            result[node.name] = None
            continue
        # A broadcast input (SE's Cx1x1 gate) adds its field but not its spacing: the output's
        # units are spaced as the inputs of the output's own size.
        spaced = [g for g, sh in zip(ins, shapes) if sh[1:] == node.shape[1:]] or ins
        f = Field(tuple(max(g.size[a] for g in ins) for a in (0, 1)),
                  tuple(max(g.jump[a] for g in spaced) for a in (0, 1)),
                  max(spaced, key=lambda g: g.size).start)
        geo = node.opdef.geometry(node.attrs, shapes)
        if geo is not None:
            kernel, stride, dilation = geo
            pad = node.attrs.get("pad", (0, 0))  # gap and other windows without one: 0
            pad = pad if isinstance(pad, tuple) else (0, 0)
            size = tuple(r + d * (k - 1) * j for r, d, k, j in
                         zip(f.size, dilation, kernel, f.jump))
            start = tuple(st + (d * (k - 1) / 2 - p) * j for st, d, k, p, j in
                          zip(f.start, dilation, kernel, pad, f.jump))
            jump = tuple(j * s for j, s in zip(f.jump, stride))
            f = Field(size, jump, start)
        result[node.name] = f
    return result
