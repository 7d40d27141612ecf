"""The network graph as a picture, straight from the IR: a layout, and a standalone SVG.

No Graphviz: the layout is netc's own, computed from the graph and its scopes.

- **Groups.** Every scope of the hierarchical names (a definition call such as
  ``layer2.basic1`` or ``inception_4c``, or a labelled group such as ``layer2``) is a group,
  drawn as a box around its members, with the call as written and the group's parameter and
  MAC totals. A group is open (its members shown) or shut (one box); clicking toggles it.
- **Columns per group.** Inside a group every member (a node, or a child group treated as one
  block) gets a column: it continues the column of its first predecessor unless that column
  already went on to another member, in which case it opens a new one. So parallel branches
  (inception's four paths, a FractalNet join's columns, a projection shortcut) stand side by
  side and a chain stays one column. A column is as wide as its widest member; down a column a
  member starts just below the lowest of its predecessors; in a side column it then moves
  down to just above its first successor (``row`` keeps the longest-path rank). Shutting a
  group shrinks it, and what is below and beside it closes up.
- **Repeats.** Consecutive sibling calls with the same arguments (ResNet's ``basic(ch=256,
  stride=1)`` five times) are drawn once with "× n" when all of them are shut.
- **Edges** run from the bottom of the producing box to the top of the consuming one; an edge
  whose straight line would cross boxes (a residual shortcut) bows out to the right of them.

The SVG carries a small script that redoes the grid arithmetic (the same as
:func:`layout` here) when a group is clicked; without script (an ``<img>`` tag) it shows the
state given by ``depth``. :func:`layout` is also what ``netc.runtime.views.graph_png`` rasterises.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from netc.compiler.analyses.summary import human, summarize
from netc.compiler.ir import Graph
from netc.compiler.ops import REGISTRY

NODE_W, NODE_H = 176, 38      # a node's box
SHUT_W, SHUT_H = 220, 50      # a shut group's box
PAD, HEAD = 8, 34             # an open group's inner margin and header height (two lines)
GAP_X, GAP_Y = 26, 24         # between columns, between rows
BOW = 130                     # room on the right for bowed edges


@dataclass
class Group:
    """One scope: its members (``n-`` nodes and ``g-`` groups) on a grid."""

    name: str
    title: str                     # the call as written, or the scope's name
    depth: int                     # 1 for top-level scopes, 0 for the net itself
    members: list[str] = field(default_factory=list)
    row: dict[str, int] = field(default_factory=dict)
    col: dict[str, int] = field(default_factory=dict)
    runs: list[list[str]] = field(default_factory=list)
    preds: dict[str, list[str]] = field(default_factory=dict)  # member -> members feeding it
    succs: dict[str, list[str]] = field(default_factory=dict)  # member -> members it feeds
    params: int = 0
    macs: int = 0
    nodes: int = 0
    min_width: float = 0.0         # wide enough for its header


@dataclass
class Model:
    """Everything about the picture that does not depend on which groups are open."""

    name: str
    groups: dict[str, Group]        # by scope name; "" is the net
    parent: dict[str, str]          # member id -> scope name of its group
    labels: dict[str, tuple[str, str, str]]  # node id -> (name shown, op line, tooltip)
    ops: dict[str, str]             # node id -> op (for colours)
    edges: list[tuple[str, str]]    # node ids, producer -> consumer
    run_of: dict[str, list[str]]    # group id -> the run it belongs to (first member first)
    calls: set[str]                 # scopes that are definition calls


def _scope(name: str) -> str:
    return name.rpartition(".")[0]


def build_model(graph: Graph) -> Model:
    """Groups, members, grid rows and columns, and runs of repeated calls for ``graph``."""
    summary = {r.name: r for r in summarize(graph).rows}
    groups: dict[str, Group] = {"": Group("", graph.name, 0)}
    parent: dict[str, str] = {}

    def ensure(scope: str) -> None:
        if scope in groups:
            return
        ensure(_scope(scope))
        groups[scope] = Group(scope, graph.calls.get(scope, scope.rpartition(".")[2]),
                              scope.count(".") + 1)
        groups[_scope(scope)].members.append("g-" + scope)
        parent["g-" + scope] = _scope(scope)

    labels, ops = {}, {}
    for node in graph:
        ensure(_scope(node.name))
        nid = "n-" + node.name
        groups[_scope(node.name)].members.append(nid)
        parent[nid] = _scope(node.name)
        row = summary[node.name]
        labels[nid] = _node_label(node, row)
        ops[nid] = node.op
        scope = node.name
        while scope:
            scope = _scope(scope)
            g = groups[scope]
            g.params += row.params
            g.macs += row.macs
            g.nodes += 1
    edges = [("n-" + i, "n-" + node.name) for node in graph for i in node.inputs]
    model = Model(graph.name, groups, parent, labels, ops, edges, {}, set(graph.calls))
    for g in groups.values():
        title, sub = group_lines(model, g.name)
        g.min_width = 16 + max(text_width(title, bold=True), text_width(sub, size=10))
    member_edges = _member_edges(model)
    for g in groups.values():
        _grid(model, g, member_edges[g.name])
    return model


def _node_label(node, row) -> tuple[str, str, str]:
    local = node.name.rpartition(".")[2]
    a = node.attrs
    op = node.op
    if "kernel" in a and isinstance(a.get("kernel"), tuple):
        k = a["kernel"]
        op += f" {k[0]}x{k[1]}" if k[0] != k[1] else f" {k[0]}x{k[0]}"
        s = a.get("stride")
        if isinstance(s, tuple) and max(s) > 1:
            op += f"/{s[0]}"
    shape = "x".join(map(str, node.shape))
    tip = f"{node.name}: {node.op} -> {shape}"
    if row.params:
        tip += f", {row.params:,} params"
    if row.macs:
        tip += f", {human(row.macs)} MACs"
    return local, f"{op} → {shape}", tip


def _chain(model: Model, node_id: str) -> list[str]:
    """``node_id`` and its enclosing group ids, innermost first (the net itself excluded)."""
    chain = [node_id]
    while model.parent.get(chain[-1]):
        chain.append("g-" + model.parent[chain[-1]])
    return chain


def _member_edges(model: Model) -> dict[str, list[tuple[str, str]]]:
    """Per group, the edges between its members: an edge u -> v belongs to the innermost group
    holding both ends, between the members that contain them."""
    out: dict[str, list[tuple[str, str]]] = {n: [] for n in model.groups}
    for u, v in model.edges:
        # The member of each enclosing group that holds v, by group name.
        holder = {model.parent[w]: w for w in _chain(model, v)}
        for m in _chain(model, u):
            w = holder.get(model.parent[m])
            if w is not None:
                if m != w:
                    out[model.parent[m]].append((m, w))
                break
    return out


def _grid(model: Model, g: Group, edges: list[tuple[str, str]]) -> None:
    """Rows (longest path), columns (continue the first predecessor's), runs of repeats."""
    preds: dict[str, list[str]] = {m: [] for m in g.members}
    for mu, mv in edges:
        if mu not in preds[mv]:
            preds[mv].append(mu)
    # Members are in node order (a group first appears at its first node), which is
    # topological for the member graph: a scope's nodes are contiguous in dependence.
    claimed: set[str] = set()
    next_col = 0
    for m in g.members:
        ps = g.preds[m] = [p for p in preds[m] if p in g.row]
        g.row[m] = 1 + max((g.row[p] for p in ps), default=-1)
        if ps and ps[0] not in claimed:
            claimed.add(ps[0])
            g.col[m] = g.col[ps[0]]
        else:
            g.col[m] = next_col
            next_col += 1
    succs: dict[str, list[str]] = {m: [] for m in g.members}
    for m, ps in preds.items():
        for p in ps:
            succs[p].append(m)
    g.succs = {m: [] for m in g.members}
    for n in g.members:
        for p in g.preds[n]:
            g.succs[p].append(n)
    # A run: calls with the same text, each the only successor of the one before.
    run: list[str] = []
    for m in g.members + [""]:
        is_call = m.startswith("g-") and m[2:] in model.calls
        prev = run[-1] if run else None
        if (is_call and prev is not None and preds[m] == [prev] and succs[prev] == [m]
                and model.groups[prev[2:]].title == model.groups[m[2:]].title):
            run.append(m)
            continue
        if len(run) > 1:
            g.runs.append(run)
            for r in run:
                model.run_of[r] = run
        run = [m] if is_call else []


def initially_shut(model: Model, depth: int | None) -> set[str]:
    """Groups shut at the start: those at level ``depth`` and deeper (``None``: none)."""
    if depth is None:
        return set()
    return {n for n, g in model.groups.items() if n and g.depth >= depth}


@dataclass
class Box:
    """A visible box in absolute coordinates."""

    id: str
    x: float
    y: float
    w: float
    h: float
    shut: bool = False
    times: int = 1     # "× n" on a shut run's first box


@dataclass
class Layout:
    width: float
    height: float
    boxes: dict[str, Box]           # visible nodes (n-) and groups (g-, open or shut)
    offsets: dict[str, tuple[float, float]]  # member id -> position inside its group
    edges: list[tuple[tuple[float, float], tuple[float, float], float]]  # from, to, bow


def _hidden(model: Model, shut: set[str], m: str) -> bool:
    """A run member other than the first, while the whole run is shut."""
    run = model.run_of.get(m)
    return bool(run) and run[0] != m and all(r[2:] in shut for r in run)


def layout(model: Model, shut: set[str]) -> Layout:
    """Positions of every visible box with the groups in ``shut`` shut (the script in the SVG
    repeats this arithmetic in the browser)."""
    grid = _Grid(model, shut)
    width, height = grid.lay(model.groups[""])
    boxes: dict[str, Box] = {}
    grid.place(model.groups[""], 0.0, 0.0, boxes)
    return Layout(width, height, boxes, grid.offsets, _edges(model, shut, boxes))


class _Grid:
    """The sizes and in-group offsets of the members of every group, for one set of shut
    groups: :meth:`lay` measures a group from the inside out, :meth:`place` makes its boxes."""

    def __init__(self, model: Model, shut: set[str]):
        self.model, self.shut = model, shut
        self.sizes: dict[str, tuple[float, float]] = {}
        self.offsets: dict[str, tuple[float, float]] = {}

    def size(self, m: str) -> tuple[float, float]:
        """The box of member ``m``: a node, a hidden run member, a shut or an open group."""
        if m.startswith("n-"):
            return NODE_W, NODE_H
        if _hidden(self.model, self.shut, m):
            return 0.0, 0.0
        if m[2:] in self.shut:
            return SHUT_W, SHUT_H
        return self.lay(self.model.groups[m[2:]])

    def lay(self, g: Group) -> tuple[float, float]:
        """Size ``g``'s members, set their offsets inside it, and return its own size."""
        sizes = self.sizes
        # Columns share a width; down a column, each member starts below the lowest of its
        # predecessors, so a short branch beside a tall one stays compact.
        cols: dict[int, float] = {}
        for m in g.members:
            w, h = sizes[m] = self.size(m)
            cols[g.col[m]] = max(cols.get(g.col[m], 0.0), w)
        xs, x = {}, 0.0
        for c in sorted(cols):
            xs[c] = x
            if cols[c]:
                x += cols[c] + GAP_X
        ys, bottom = self._rows(g)
        top = HEAD + PAD if g.name else PAD
        for m in g.members:
            w, h = sizes[m]
            self.offsets[m] = (PAD + xs[g.col[m]] + (cols[g.col[m]] - w) / 2, top + ys[m])
        return (max(max(x - GAP_X, 0) + 2 * PAD, g.min_width), bottom + top + PAD)

    def _rows(self, g: Group) -> tuple[dict[str, float], float]:
        """The top of each member inside ``g`` (its members already sized), and the bottom of
        the lowest."""
        sizes = self.sizes

        def below(p: str) -> float:  # where a member under ``p`` may start
            return sizes[p][1] + GAP_Y if sizes[p][1] else 0.0

        ys: dict[str, float] = {}
        bottom = 0.0
        for m in g.members:
            ys[m] = max((ys[p] + below(p) for p in g.preds[m]), default=0.0)
            bottom = max(bottom, ys[m] + sizes[m][1])
        # Then each member of a side column (not the first) moves down to just above the
        # first member it feeds, so a short branch sits next to its join and its long edge is a
        # straight drop from the fork.
        for m in reversed(g.members):
            under = [ys[n] for n in g.succs[m]]
            if under and g.col[m]:
                ys[m] = max(ys[m], min(under) - below(m))
        return ys, bottom

    def place(self, g: Group, ox: float, oy: float, boxes: dict[str, Box]) -> None:
        """Add the visible boxes of ``g``'s members, ``g`` being at (ox, oy), to ``boxes``."""
        model, shut = self.model, self.shut
        for m in g.members:
            w, h = self.sizes[m]
            if not w:
                continue
            x, y = ox + self.offsets[m][0], oy + self.offsets[m][1]
            is_shut = m.startswith("g-") and m[2:] in shut
            run = model.run_of.get(m)
            times = len(run) if is_shut and run and run[0] == m and all(
                r[2:] in shut for r in run) else 1
            boxes[m] = Box(m, x, y, w, h, is_shut, times)
            if m.startswith("g-") and not is_shut:
                self.place(model.groups[m[2:]], x, y, boxes)


def _edges(model: Model, shut: set[str], boxes: dict[str, Box]) -> list:
    """One edge per pair of visible boxes that a graph edge joins, bowed round boxes in the
    way."""
    edges = []
    seen = set()
    stops = _stops(boxes)
    for u, v in model.edges:
        a, b = _visible(model, shut, u), _visible(model, shut, v)
        if a == b or (a, b) in seen:
            continue
        seen.add((a, b))
        ba, bb = boxes[a], boxes[b]
        start = (ba.x + ba.w / 2, ba.y + ba.h)
        end = (bb.x + bb.w / 2, bb.y)
        edges.append((start, end, _bow(stops, start, end)))
    return edges


def _stops(boxes: dict[str, Box]) -> tuple[list[float], list[Box]]:
    """The node and shut-group boxes (what an edge must not cross), sorted by their top."""
    solid = sorted((b for b in boxes.values() if b.id.startswith("n-") or b.shut),
                   key=lambda b: b.y)
    return [b.y for b in solid], solid


def _bow(stops, start, end) -> float:
    """For a near-vertical edge whose straight line would cross boxes (a shortcut), the x of
    the control points that take it round their right side (a cubic's middle is at
    (x1 + x2)/8 + 3/4 of it); 0 for an edge that needs no bow."""
    import bisect

    ys, solid = stops
    (x1, y1), (x2, y2) = start, end
    if abs(x1 - x2) > NODE_W / 2:
        return 0.0
    right = None
    for i in range(bisect.bisect_right(ys, y1), len(ys)):
        b = solid[i]
        cy = b.y + b.h / 2
        if b.y >= y2 - 1:
            break
        x = x1 + (cy - y1) / (y2 - y1) * (x2 - x1)
        if b.x - 2 < x < b.x + b.w + 2:
            right = max(right if right is not None else b.x + b.w, b.x + b.w)
    return 0.0 if right is None else (right + 12 - (x1 + x2) / 8) / 0.75


def _visible(model: Model, shut: set[str], node_id: str) -> str:
    """The box that shows ``node_id``: itself, or its outermost shut group (a hidden run
    member's run head)."""
    chain = []
    m = node_id
    while m in model.parent and model.parent[m]:
        m = "g-" + model.parent[m]
        chain.append(m)
    for g in reversed(chain):
        if g[2:] in shut:
            run = model.run_of.get(g)
            if run and _hidden(model, shut, g):
                return run[0]
            return g
    return node_id


def edge_controls(start, end, bow: float):
    """The four control points of an edge's cubic Bézier (bowed out to x = ``bow`` if set)."""
    (x1, y1), (x2, y2) = start, end
    if bow:
        return start, (bow, y1 + 30), (bow, y2 - 30), end
    dy = max((y2 - y1) / 2, 12)
    return start, (x1, y1 + dy), (x2, y2 - dy), end


def edge_path(start, end, bow: float) -> str:
    """SVG path data of one edge."""
    p = edge_controls(start, end, bow)
    return "M{:.1f},{:.1f} C{:.1f},{:.1f} {:.1f},{:.1f} {:.1f},{:.1f}".format(
        *(c for point in p for c in point))


# Box colours by the family each op declares (OpDef.family); activations and the rest are pink.
FAMILY_COLOURS = {"conv": "#cfe2ff", "fc": "#ffe0b3", "pool": "#d1f0d6", "norm": "#ececec",
                  "dropout": "#f4f4f4", "join": "#fff1a8"}
INPUT_COLOUR, OTHER_COLOUR = "#e0e0e0", "#fbe3f0"


def colour(op: str) -> str:
    """The fill of a node's box, from its op's declared family (a graph input is grey)."""
    if op == "input":
        return INPUT_COLOUR
    return FAMILY_COLOURS.get(REGISTRY[op].family, OTHER_COLOUR)


def text_width(text: str, size: int = 11, bold: bool = False) -> float:
    """A width estimate for DejaVu Sans (what browsers here and Pillow's font are close to)."""
    return len(text) * size * (0.64 if bold else 0.58)


def group_lines(model: Model, name: str) -> tuple[str, str]:
    g = model.groups[name]
    sub = f"{name} · {g.params:,} params · {human(g.macs) if g.macs else 0} MACs"
    return g.title, sub


def group_totals(model: Model, name: str) -> str:
    """``1.51 M params · 295.44 M MACs``: a shut group's third line."""
    g = model.groups[name]
    return f"{human(g.params) if g.params else 0} params · " \
           f"{human(g.macs) if g.macs else 0} MACs"


def fit_text(text: str, n: int) -> str:
    """``text`` cut to ``n`` characters with an ellipsis (box widths are fixed)."""
    return text if len(text) <= n else text[:n - 1] + "…"
