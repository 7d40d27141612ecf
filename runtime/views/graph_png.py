"""``netc draw --format png``: the layout of :mod:`netc.compiler.analyses.draw` painted with Pillow.

The same boxes, texts and edges as the SVG in its starting state (groups at ``--depth`` shut),
with Pillow's bundled font: no Cairo, no browser, nothing outside the wheels pip installs.
"""

from __future__ import annotations

from netc.compiler.analyses import draw
from netc.compiler.ir import Graph


def _bezier(p0, p1, p2, p3, steps: int = 24):
    pts = []
    for i in range(steps + 1):
        t = i / steps
        c = ((1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t * t, t ** 3)
        pts.append(tuple(sum(w * p[k] for w, p in zip(c, (p0, p1, p2, p3))) for k in (0, 1)))
    return pts


def _edge_points(start, end, bow: float):
    return _bezier(*draw.edge_controls(start, end, bow))


def _ascii(text: str) -> str:
    """Pillow's bundled font has no arrows or multiplication signs."""
    return text.replace("→", "->").replace("×", "x")


def to_png(graph: Graph, depth: int | None = None, scale: float = 1.5):
    """A PIL image of ``graph``'s drawing (groups at level ``depth`` and deeper shut)."""
    from PIL import Image, ImageDraw

    from netc.runtime.views.pictures import font

    model = draw.build_model(graph)
    shut = draw.initially_shut(model, depth)
    lay = draw.layout(model, shut)
    w, h = int((lay.width + draw.BOW) * scale) + 1, int(lay.height * scale) + 1
    if w * h > 120_000_000:
        from netc.dsl.diagnostics import UserError

        raise UserError(f"the drawing of {graph.name} would be {w}x{h} pixels; use --depth N "
                        "to shut its groups, or --format svg")
    img = Image.new("RGB", (w, h), "white")
    pen = ImageDraw.Draw(img)
    bold, small, times = font(round(11 * scale)), font(round(10 * scale)), font(round(13 * scale))

    def S(*v):
        return [round(a * scale) for a in v]

    groups = sorted((b for b in lay.boxes.values() if b.id.startswith("g-")),
                    key=lambda b: model.groups[b.id[2:]].depth)
    for b in groups:
        name = b.id[2:]
        title, sub = draw.group_lines(model, name)
        x0, y0, x1, y1 = S(b.x, b.y, b.x + b.w, b.y + b.h)
        if b.shut:
            pen.rounded_rectangle((x0, y0, x1, y1), radius=S(6)[0], fill="#e6ecfa",
                                  outline="#6b8cce", width=2)
            pen.text(S(b.x + 8, b.y + 5), draw.fit_text(title, 31), fill="#111", font=bold)
            pen.text(S(b.x + 8, b.y + 20), draw.fit_text(name, 36), fill="#333", font=small)
            pen.text(S(b.x + 8, b.y + 33), draw.group_totals(model, name), fill="#333", font=small)
            if b.times > 1:
                pen.text(S(b.x + b.w - 8, b.y + 44), f"x {b.times}", fill="#b02020",
                         font=times, anchor="rs")
        else:
            pen.rounded_rectangle((x0, y0, x1, y1), radius=S(6)[0], fill="#f3f6fc",
                                  outline="#6b8cce", width=1)
            pen.text(S(b.x + 8, b.y + 4), title, fill="#111", font=bold)
            pen.text(S(b.x + 8, b.y + 19), sub, fill="#333", font=small)
    for b in lay.boxes.values():
        if not b.id.startswith("n-"):
            continue
        name, op, _ = model.labels[b.id]
        pen.rounded_rectangle(S(b.x, b.y, b.x + b.w, b.y + b.h), radius=S(4)[0],
                              fill=draw.colour(model.ops[b.id]), outline="#555", width=1)
        pen.text(S(b.x + 6, b.y + 4), draw.fit_text(name, 26), fill="#111", font=bold)
        pen.text(S(b.x + 6, b.y + 20), _ascii(draw.fit_text(op, 30)), fill="#333", font=small)
    for start, end, bow in lay.edges:
        pts = [tuple(S(*p)) for p in _edge_points(start, end, bow)]
        pen.line(pts, fill="#445", width=max(1, round(scale)))
        ex, ey = pts[-1]
        a = round(5 * scale)
        pen.polygon([(ex, ey), (ex - a * 0.6, ey - a), (ex + a * 0.6, ey - a)], fill="#445")
    return img
