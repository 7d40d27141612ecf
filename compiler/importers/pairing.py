"""Pairing someone else's tensors with a spec's layers, by structure and names, in any key order.

A torchvision state dict names its tensors after its modules (``layer2.0.downsample.0.weight``);
a netc network names them after the spec (``layer2.basic1.shortcut.conv1.weight``). A
``.safetensors`` file does not even keep the state dict's order: its keys come back sorted
(``bn1`` before ``conv1``, ``classifier`` before ``features``). So pairing never trusts the order
the file stores its keys in. The rules:

1. The spec's side is its parameterised layers (conv, fc, bn, ...) in graph order, each with its
   tensors in the order its op declares them (``weight``, ``bias``, ``running_mean``, ...).
2. The file's side is a tree: keys are grouped by module path (``layer1.0.conv1``), paths split
   at dots. Children with numeric names (``features.0``, ``layer1.10``) keep numeric order, as
   ``nn.Sequential`` runs them. Children with other names (``conv1``, ``bn1``, ``downsample``,
   ``features``, ``classifier``) may come in any order.
3. The tree is laid out along the spec's layers by a depth-first search: at each position the
   named children are tried first where their name is a component of the spec layer's name
   (``conv1`` for ``layer1.bottleneck1.conv1``), then in natural order (``conv2`` before
   ``conv10``); a child fits when its layers, laid out recursively, have the spec's tensor
   counts and shapes. Shapes almost always decide (a conv weight is not a bn vector); names
   break the ties between layers of equal shape.
4. Inside a layer, tensors pair by their last name when both sides use the same names, else in
   the order stored.
5. An ordered source (a ``.caffemodel``, whose layers are in net order) is paired in its order.

Nothing here reads files: :mod:`netc.runtime.weights` does, and reports what does not fit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from netc.compiler.ir import Graph

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Layer:
    """One parameterised layer: its name (a node, or a key prefix) and its tensors in order."""

    name: str
    tensors: tuple[tuple[str, Shape], ...]  # (last name, shape)
    op: str = ""


def spec_layers(graph: Graph) -> list[Layer]:
    """The parameterised layers of ``graph`` in graph order (no random numbers drawn)."""
    rng = np.random.default_rng(0)
    layers = []
    for node in graph:
        if node.op == "input":
            continue
        ins = [graph[i].shape for i in node.inputs]
        arrays = node.opdef.init_weights(node.attrs, ins, node.shape, rng)
        if arrays:
            layers.append(Layer(node.name, tuple((k, tuple(a.shape)) for k, a in arrays.items()),
                                node.op))
    return layers


def file_groups(shapes: dict[str, Shape]) -> dict[str, Layer]:
    """The file's layers: keys grouped by module path (the part before the last dot)."""
    groups: dict[str, list[tuple[str, Shape]]] = {}
    for key, shape in shapes.items():
        prefix, _, last = key.rpartition(".")
        groups.setdefault(prefix, []).append((last, tuple(shape)))
    return {name: Layer(name, tuple(items)) for name, items in groups.items()}


def natural_key(text: str):
    """``conv2`` before ``conv10``: digit runs compare as numbers."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def tensor_pairs(mine: Layer, other: Layer):
    """Tensors of two layers paired by last name when the names agree, else in order."""
    names = [k for k, _ in mine.tensors]
    theirs = dict(other.tensors)
    if sorted(names) == sorted(theirs):
        return [((k, s), (k, theirs[k])) for k, s in mine.tensors]
    return list(zip(mine.tensors, other.tensors))


def fits(mine: Layer, other: Layer) -> bool:
    """Same number of tensors, and every paired shape equal."""
    if len(mine.tensors) != len(other.tensors):
        return False
    return all(a[1] == b[1] for a, b in tensor_pairs(mine, other))


@dataclass
class _Tree:
    """A module path of the file: its own tensors (a layer) and its children by name."""

    path: str
    layer: Layer | None = None
    children: dict[str, _Tree] = field(default_factory=dict)
    size: int = 0  # how many layers the subtree holds

    def count(self) -> int:
        self.size = (self.layer is not None) + sum(c.count() for c in self.children.values())
        return self.size


def _tree(groups: dict[str, Layer]) -> _Tree:
    root = _Tree("")
    for path, layer in groups.items():
        node = root
        for part in path.split(".") if path else []:
            node = node.children.setdefault(part, _Tree(f"{node.path}.{part}".lstrip(".")))
        node.layer = layer
    root.count()
    return root


@dataclass
class Failure:
    """The deepest point the search reached: spec layer ``index`` found no partner."""

    index: int = -1
    candidate: Layer | None = None


class PairingError(Exception):
    """No layout of the file fits the spec; ``failure`` says where it stopped."""

    def __init__(self, failure: Failure, budget_spent: bool = False):
        super().__init__("no pairing")
        self.failure = failure
        self.budget_spent = budget_spent


class _Search:
    """Rule 3 of the module docstring, with a step budget so that no file can make it hang."""

    BUDGET = 200_000

    def __init__(self, ours: list[Layer], prune: bool = True, budget: int = BUDGET):
        self.ours = ours
        self.prune = prune
        self.budget = budget
        self.steps = 0
        self.failure = Failure()
        self.dead: set[tuple[int, int]] = set()  # (id of a subtree, position) known not to fit
        self.dead_rest: set[tuple[int, frozenset, int]] = set()  # (node, children left, position)

    def note(self, pos: int, candidate: Layer | None) -> None:
        if pos > self.failure.index:
            self.failure = Failure(pos, candidate)

    def place(self, node: _Tree, pos: int) -> list[tuple[Layer, Layer]] | None:
        """``node``'s layers laid out on ``ours[pos:pos + node.size]``, or None."""
        key = (id(node), pos)
        if key in self.dead:
            return None
        self.steps += 1
        if self.steps > self.budget:
            raise PairingError(self.failure, budget_spent=True)
        out: list[tuple[Layer, Layer]] = []
        if node.layer is not None:  # a module's own tensors come before its children's
            if pos >= len(self.ours) or not fits(self.ours[pos], node.layer):
                self.note(pos, node.layer)
                self.dead.add(key)
                return None
            out.append((self.ours[pos], node.layer))
            pos += 1
        rest = self.children(node, pos, list(node.children.items()))
        if rest is None:
            self.dead.add(key)
            return None
        return out + rest

    def children(self, node: _Tree, pos: int, left: list[tuple[str, _Tree]]):
        if not left:
            return []
        key = (id(node), frozenset(name for name, _ in left), pos)
        if key in self.dead_rest:
            return None
        numeric = sorted((c for c in left if c[0].isdigit()), key=lambda c: int(c[0]))
        named = [c for c in left if not c[0].isdigit()]
        parts = set(self.ours[pos].name.split(".")) if pos < len(self.ours) else set()
        named.sort(key=lambda c: (c[0] not in parts, natural_key(c[0])))
        # Numeric children run in numeric order: only the smallest one left may come next.
        candidates = named + numeric[:1]
        for name, child in candidates:
            if pos + child.size > len(self.ours):
                self.note(pos, _first_layer(child))
                continue
            head = self.place(child, pos)
            if head is None:
                continue
            tail = self.children(node, pos + child.size, [c for c in left if c[0] != name])
            if tail is not None:
                return head + tail
        self.dead_rest.add(key)
        return None


def _first_layer(node: _Tree) -> Layer | None:
    if node.layer is not None:
        return node.layer
    for child in node.children.values():
        found = _first_layer(child)
        if found is not None:
            return found
    return None


def pair_tree(ours: list[Layer], groups: dict[str, Layer]) -> list[tuple[Layer, Layer]]:
    """Rules 2-3: the file's groups laid out along ``ours``. Raises :class:`PairingError`."""
    root = _tree(groups)
    found = _Search(ours).place(root, 0)
    if found is None or len(found) != len(ours):
        # Pruning by digests finds a fit fast but stops early where none exists: search again
        # without it (on a small budget) to find how far the file does fit, for the report.
        search = _Search(ours, prune=False, budget=20_000)
        try:
            placed = search.place(root, 0)
        except PairingError:
            placed = None
        if placed is not None and len(placed) < len(ours):  # the file ends early
            raise PairingError(Failure(len(placed), None))
        raise PairingError(search.failure)
    return found


def pair_in_order(ours: list[Layer], theirs: list[Layer]) -> list[tuple[Layer, Layer]]:
    """Rule 5: layer i with layer i. Raises :class:`PairingError` at the first misfit.

    No other order is tried: a caffemodel's layer names say nothing of netc's structure, and
    where two layers have equal shapes (a bottleneck's last 1x1 and its projection) another
    order could fit and compute something else.
    """
    for i, (mine, other) in enumerate(zip(ours, theirs)):
        if not fits(mine, other):
            raise PairingError(Failure(i, other))
    if len(ours) != len(theirs):
        n = min(len(ours), len(theirs))
        raise PairingError(Failure(n, theirs[n] if n < len(theirs) else None))
    return list(zip(ours, theirs))
