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
   the order stored. Two shapes fit when they are equal, or equal once their size-1 axes are
   dropped: a ``Linear`` (out, in) is a 1x1 conv (out, in, 1, 1) and the reverse, ConvNeXt's
   ``layer_scale`` (C, 1, 1) is a (C,) vector, ViT's ``class_token`` (1, 1, D) a (1, D) one.
   Such a reshape moves no number; a transpose is never made.
5. Tensors a block module owns itself (``features.1.0.layer_scale`` beside its ``block.*``,
   ViT's ``class_token`` beside ``conv_proj``) are laid out anywhere among the module's children:
   torch stores them first whatever the forward does with them.
6. A module whose tensors are one spec layer's (``self_attention``'s ``in_proj_weight`` and
   ``in_proj_bias`` with its child ``out_proj``'s ``weight`` and ``bias``, for an attention op
   that owns all four) pairs with that layer whole, its keys taken relative to the module.
   Names must agree here, not only shapes: a bias-free conv and a PReLU kept in one module
   have a biased conv's shapes, and are still two layers.
7. Parallel lists: lists kept side by side (Res2Net's ``convs.0, convs.1, ...`` and
   ``bns.0, bns.1, ...``) may also be laid out zipped, ``convs.0, bns.0, convs.1, bns.1, ...``,
   as a spec interleaves them.
8. An ordered source (a ``.caffemodel``, whose layers are in net order) is paired in its order.

Nothing here reads files: :mod:`netc.runtime.weights` does, and reports what does not fit.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

from netc.compiler.ir import Graph

Shape = tuple[int, ...]
OWN = ""  # the child name under which a module's own tensors are laid out (rule 5)
MAX_ZIPPED = 4  # parallel lists zipped together at most (rule 7): subsets stay few


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
        if node.op == "input" or node.shares:  # a sharing layer's weights are its owner's
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


def squeezed(shape: Shape) -> Shape:
    """``shape`` without its size-1 axes."""
    return tuple(d for d in shape if d != 1)


def compatible(mine: Shape, theirs: Shape) -> bool:
    """Rule 4: equal shapes, or equal once size-1 axes are dropped (a reshape, no transpose)."""
    return tuple(mine) == tuple(theirs) or squeezed(mine) == squeezed(theirs)


def conversion(mine: Shape, theirs: Shape) -> str:
    """What a file tensor of shape ``theirs`` undergoes to become ``mine``: '' for nothing."""
    mine, theirs = tuple(mine), tuple(theirs)
    if mine == theirs:
        return ""
    if len(theirs) == 2 and len(mine) == 4 and mine[2:] == (1, 1):
        return "reshape 1x1 (Linear as conv)"
    if len(theirs) == 4 and len(mine) == 2 and theirs[2:] == (1, 1):
        return "reshape 1x1 (conv as Linear)"
    return "squeezed" if len(theirs) > len(mine) else "unsqueezed"


def tensor_pairs(mine: Layer, other: Layer):
    """Tensors of two layers paired by last name when the names agree, else in order."""
    names = [k for k, _ in mine.tensors]
    theirs = dict(other.tensors)
    if sorted(names) == sorted(theirs):
        return [((k, s), (k, theirs[k])) for k, s in mine.tensors]
    return list(zip(mine.tensors, other.tensors))


def fits(mine: Layer, other: Layer) -> bool:
    """Same number of tensors, and every paired shape compatible (rule 4)."""
    if len(mine.tensors) != len(other.tensors):
        return False
    return all(compatible(a[1], b[1]) for a, b in tensor_pairs(mine, other))


def _signature(tensors) -> tuple:
    """Names and shapes (size-1 axes dropped), whatever their order: what rule 6 compares."""
    return tuple(sorted((k, squeezed(s)) for k, s in tensors))


@dataclass
class _Tree:
    """A module path of the file: its own tensors (a layer) and its children by name.

    A zipped child (rule 7) is named ``convs|bns`` after the lists it stands for, and is
    ``virtual``, as are its rows; ``whole`` is the subtree as one layer (rule 6)."""

    path: str
    layer: Layer | None = None
    children: dict[str, _Tree] = field(default_factory=dict)
    size: int = 0  # how many layers the subtree holds
    virtual: bool = False
    whole: Layer | None = None
    least: int = 0  # the fewest spec layers the subtree can take

    def count(self) -> int:
        self.size = (self.layer is not None) + sum(
            c.count() for name, c in self.children.items() if "|" not in name)
        return self.size


def _tree(groups: dict[str, Layer]) -> _Tree:
    root = _Tree("")
    for path, layer in groups.items():
        node = root
        for part in path.split(".") if path else []:
            node = node.children.setdefault(part, _Tree(f"{node.path}.{part}".lstrip(".")))
        node.layer = layer
    _own_as_child(root)
    root.count()
    _zip_lists(root)
    return root


def _own_as_child(node: _Tree) -> None:
    """Rule 5: an inner module's own tensors become a child, laid out among the others."""
    for child in node.children.values():
        _own_as_child(child)
    if node.layer is not None and node.children:
        node.children = {OWN: _Tree(node.path, node.layer), **node.children}
        node.layer = None


def _zip_lists(node: _Tree) -> None:
    """Rule 7: for lists of equal indices side by side, a child that zips them."""
    for child in list(node.children.values()):
        _zip_lists(child)
    lists: dict[tuple[str, ...], list[str]] = {}
    for name, child in node.children.items():
        if name and not name.isdigit() and child.children and \
                all(k.isdigit() for k in child.children):
            lists.setdefault(tuple(sorted(child.children, key=int)), []).append(name)
    for indices, names in lists.items():
        for k in range(2, min(len(names), MAX_ZIPPED) + 1):
            for chosen in combinations(sorted(names), k):
                zipped = _Tree(node.path, virtual=True)
                for i in indices:
                    row = _Tree(node.path, virtual=True,
                                children={n: node.children[n].children[i] for n in chosen})
                    row.size = sum(c.size for c in row.children.values())
                    zipped.children[i] = row
                zipped.size = sum(node.children[n].size for n in chosen)
                node.children["|".join(chosen)] = zipped


def _flat(node: _Tree, prefix: str = "") -> list[tuple[str, Shape]]:
    """The subtree's tensors named relative to it (rule 6): own first, children in order."""
    out = [(f"{prefix}{k}", s) for k, s in node.layer.tensors] if node.layer else []
    for name in sorted(node.children, key=natural_key):
        if "|" not in name:
            out += _flat(node.children[name], prefix if name == OWN else f"{prefix}{name}.")
    return out


def _prepare(node: _Tree, spec_sigs: set) -> None:
    """Each subtree's ``whole`` layer where some spec layer could take it, and ``least``."""
    for child in node.children.values():
        _prepare(child, spec_sigs)
    if node.size > 1 and not node.virtual:
        tensors = tuple(_flat(node))
        if _signature(tensors) in spec_sigs:
            node.whole = Layer(node.path, tensors)
    real = [c for name, c in node.children.items() if "|" not in name]
    node.least = 1 if node.whole is not None else \
        (node.layer is not None) + sum(c.least for c in real)


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
    """Rules 3 and 5-7 of the module docstring, with a step budget so that no file can make it
    hang."""

    BUDGET = 200_000

    def __init__(self, ours: list[Layer], budget: int = BUDGET):
        self.ours = ours
        self.budget = budget
        self.steps = 0
        self.failure = Failure()
        self.dead: set[tuple[int, int]] = set()  # (id of a subtree, position) known not to fit
        self.dead_rest: set[tuple[int, frozenset, int]] = set()  # (node, children left, position)

    def note(self, pos: int, candidate: Layer | None) -> None:
        if pos > self.failure.index:
            self.failure = Failure(pos, candidate)

    def place(self, node: _Tree, pos: int) -> list[tuple[Layer, Layer]] | None:
        """``node``'s layers laid out from ``ours[pos]`` on, or None."""
        key = (id(node), pos)
        if key in self.dead:
            return None
        self.steps += 1
        if self.steps > self.budget:
            raise PairingError(self.failure, budget_spent=True)
        if node.whole is not None and pos < len(self.ours) and \
                _signature(self.ours[pos].tensors) == _signature(node.whole.tensors):
            return [(self.ours[pos], node.whole)]
        out: list[tuple[Layer, Layer]] = []
        if node.layer is not None:  # a leaf module: its own tensors
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

    def candidates(self, pos: int, left: list[tuple[str, _Tree]]) -> list[tuple[str, _Tree]]:
        """Who may come next: any named child (its own tensors first, then by the spec
        layer's name), or the smallest numeric one."""
        numeric = sorted((c for c in left if c[0].isdigit()), key=lambda c: int(c[0]))
        named = [c for c in left if not c[0].isdigit()]
        parts = set(self.ours[pos].name.split(".")) if pos < len(self.ours) else set()
        named.sort(key=lambda c: (c[0] != OWN, not set(c[0].split("|")) & parts, "|" in c[0],
                                  natural_key(c[0])))
        return named + numeric[:1]

    def children(self, node: _Tree, pos: int, left: list[tuple[str, _Tree]]):
        if not left:
            return []
        key = (id(node), frozenset(name for name, _ in left), pos)
        if key in self.dead_rest:
            return None
        for name, child in self.candidates(pos, left):
            if pos + child.least > len(self.ours):
                self.note(pos, _first_layer(child))
                continue
            head = self.place(child, pos)
            if head is None:
                continue
            taken = set(name.split("|"))  # a zipped child takes the lists it zips
            rest = [c for c in left if not set(c[0].split("|")) & taken]
            tail = self.children(node, pos + len(head), rest)
            if tail is not None:
                return head + tail
        self.dead_rest.add(key)
        return None


def _first_layer(node: _Tree) -> Layer | None:
    if node.layer is not None:
        return node.layer
    for name, child in node.children.items():
        found = _first_layer(child) if "|" not in name else None
        if found is not None:
            return found
    return None


def pair_tree(ours: list[Layer], groups: dict[str, Layer]) -> list[tuple[Layer, Layer]]:
    """Rules 2-7: the file's groups laid out along ``ours``. Raises :class:`PairingError`."""
    root = _tree(groups)
    _prepare(root, {_signature(l.tensors) for l in ours if len(l.tensors) > 1})
    search = _Search(ours)
    found = search.place(root, 0)
    if found is None or len(found) != len(ours):
        if found is not None:  # the file ends early, or has layers left over
            raise PairingError(Failure(min(len(found), len(ours)), None))
        raise PairingError(search.failure)
    return found


def pair_in_order(ours: list[Layer], theirs: list[Layer]) -> list[tuple[Layer, Layer]]:
    """Rule 8: layer i with layer i. Raises :class:`PairingError` at the first misfit.

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


def nearest(mine: Layer, theirs: list[Layer], n: int = 3) -> list[Layer]:
    """The ``n`` file layers most like ``mine``: as many tensors, then shapes that fit, then
    as many numbers, then the name (for a report of a layer that found no partner)."""
    sizes = sorted(int(np.prod(s, dtype=np.int64)) for _, s in mine.tensors)

    def score(other: Layer):
        fitting = sum(compatible(a[1], b[1]) for a, b in zip(mine.tensors, other.tensors))
        numbers = sorted(int(np.prod(s, dtype=np.int64)) for _, s in other.tensors)
        name = difflib.SequenceMatcher(None, mine.name, other.name).ratio()
        return (len(other.tensors) == len(mine.tensors), fitting, numbers == sizes, name)

    return sorted(theirs, key=score, reverse=True)[:n]
