"""The meaning of a recipe: a checked plan of an image optimisation over a net's named layers.

A recipe file is parsed by :mod:`netc.dsl.parser` like any spec; :func:`load_recipe` then checks one
``recipe`` item against the graph of its network, before any image is read or tensor made:

1. its parameters are bound (defaults, then ``--set NAME=VALUE``);
2. every setting is known and its value has the right kind (``size 256``, ``init noise``);
3. ``loss = ...`` is a weighted sum of known terms (``2 * content(conv4_2) - tv(2)``), each with
   known options, and every layer a term names is resolved with :meth:`Graph.resolve`;
4. the network has one image input.

Every mistake found is a located :class:`~netc.dsl.diagnostics.Diagnostic`; all are raised together.
Nothing here imports torch: ``netc recipe`` fails fast on a typo in a layer name.

The parts: :mod:`.recipe_values` (numbers, parameters, checks), :mod:`.recipe_settings`
(parameters and settings, the optimiser) and :mod:`.recipe_loss` (the loss terms); this module
holds the checked :class:`Plan` and puts them together.

>>> import tempfile, pathlib
>>> f = pathlib.Path(tempfile.mkdtemp()) / "t.recipe"
>>> _ = f.write_text('recipe t { net vgg16  loss = content(conv4_2) + 1e3 * style(conv1_1) }')
>>> plan = load_recipe(str(f))
>>> [(t.kind, t.weight, t.layers) for t in plan.terms]
[('content', 1.0, ('conv4_2',)), ('style', 1000.0, ('conv1_1',))]
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from netc.compiler.frontend.loader import load, run_deep, zoo_index
from netc.compiler.frontend.recipe_loss import LossTerms, Term
from netc.compiler.frontend.recipe_settings import (
    MAX_IMAGE_SIDE,
    MAX_STEPS,
    Optimizer,
    RecipeSettings,
)
from netc.compiler.frontend.recipe_values import RecipeValues
from netc.compiler.ir import Graph
from netc.compiler.ops import ShapeError
from netc.dsl import ast
from netc.dsl.diagnostics import SOURCES, Diagnostic, DiagnosticError, Span, UserError
from netc.dsl.parser import parse
from netc.dsl.sources import NotRegular, read_regular

# The recipe front end's public face (the command line and the engine import these from here).
__all__ = ["MAX_IMAGE_SIDE", "MAX_STEPS", "Optimizer", "Plan", "Term", "load_recipe",
           "prefix_graph", "read_recipe", "size_problem", "smallest_side"]

DEFAULT_CONTENT = "astronaut"
DEFAULT_STYLES = ("brick", "gravel")


@dataclass(frozen=True)
class Plan:
    """A checked recipe: everything the engine needs except the pixels and the weights."""

    name: str
    file: str
    spec: str
    graph: Graph = field(repr=False)
    terms: tuple[Term, ...]
    optimizer: Optimizer
    weights: str | None = None
    content: str | None = None
    styles: tuple[str, ...] = ()
    blend: tuple[float, ...] = ()
    image: str | None = None
    init: str = "noise"
    init_scale: float = 0.1
    size: int | None = None
    tile: int = 0
    seed: int = 0
    clip: bool = True
    # Where the recipe wrote each setting (size, tile, ...), for errors found later at run time.
    spans: dict[str, Span] = field(default_factory=dict, repr=False, compare=False)

    @property
    def taps(self) -> list[str]:
        """The IR nodes the loss reads, in graph order."""
        need = {n for t in self.terms for n in t.layers}
        return [n for n in self.graph.nodes if n in need]

    @property
    def input(self):
        """The network's one image input (its :class:`~netc.compiler.ir.InputSpec`)."""
        return next(iter(self.graph.inputs.values()))

    @property
    def fixed_size(self) -> bool:
        """True when a tapped layer sits past a flatten or tokens: the image must have the
        declared size (a vector's length and a sequence's tokens are fixed by it, and attention
        mixes every position, so a tile is not a part of the image)."""
        return any(len(n.shape) != 3 for n in self.graph.slice(self.taps))

    def prefix(self) -> Graph:
        """The network cut down to the nodes the loss needs: no weights past the last tap."""
        return prefix_graph(self.graph, self.taps)

    def needs(self, kind: str) -> bool:
        """Whether the loss has a term of ``kind`` (``content``, ``style``...)."""
        return any(t.kind == kind for t in self.terms)

    def replace(self, **changes) -> Plan:
        """A copy with ``changes``."""
        return replace(self, **changes)


def size_problem(plan: Plan, height: int, width: int) -> str | None:
    """Why the tapped layers cannot run on a ``height`` x ``width`` image, or None.

    The graph's shapes were checked at the declared input size; a recipe works at its own
    size (``size``, ``--size``, tiles, octaves), so the shape rules are applied again there.
    """
    c = plan.input.shape[0]
    shapes: dict[str, tuple[int, ...]] = {}
    for node in plan.graph.slice(plan.taps):
        if node.op == "input":
            shapes[node.name] = (c, height, width)
            continue
        ins = [shapes[i] for i in node.inputs]
        try:
            shapes[node.name] = tuple(node.opdef.infer_shape(node.attrs, ins))
        except ShapeError as err:
            return f"at {height}x{width} pixels, {node.name}: {err}"
    return None


def smallest_side(plan: Plan, limit: int = 4096) -> int:
    """The smallest square side the tapped layers can take (tiles narrower than it are merged
    into their neighbour, so no tile of a remainder reaches a conv it does not fit)."""
    for side in range(1, limit + 1):
        if size_problem(plan, side, side) is None:
            return side
    return limit


def prefix_graph(graph: Graph, taps: list[str]) -> Graph:
    """``graph`` keeping only the backward slice of ``taps``, which become its outputs.

    Node names are unchanged, so netc's seeded initial weights (drawn per node name) and a
    weights file's tensors (keyed by node name) mean the same in the prefix as in the whole net.
    """
    nodes = {n.name: n for n in graph.slice(taps)}
    aliases = {a: n for a, n in graph.aliases.items() if n in nodes}
    return graph.copy(nodes=nodes, outputs=list(taps), aliases=aliases)


def read_recipe(path: str) -> tuple[ast.Recipe, Path]:
    """Parse ``FILE`` or ``FILE:NAME`` and return the recipe item. Raises DiagnosticError."""
    file, name = Path(path), None
    if not file.exists() and ":" in path:
        head, _, name = path.rpartition(":")
        file = Path(head)
    try:
        text = read_regular(file).decode("utf-8")
    except NotRegular as e:
        raise UserError(f"cannot read recipe: {e}") from None
    except UnicodeDecodeError as e:
        raise UserError(f"cannot read recipe {file}: not UTF-8 text ({e.reason})") from None
    module = parse(text, str(file))
    recipes = [i for i in module.items if isinstance(i, ast.Recipe)]
    if name is not None:
        recipes = [r for r in recipes if r.name == name]
    if len(recipes) != 1:
        what = f"no recipe {name!r}" if name else \
            "no recipe" if not recipes else "several recipes; name one as FILE:NAME"
        raise DiagnosticError(Diagnostic(Span(str(file), 1, 1), f"{file} has {what}"))
    return recipes[0], file


def load_recipe(path: str, overrides: dict[str, Any] | None = None) -> Plan:
    """Parse, evaluate and check a recipe against its network. Raises DiagnosticError."""
    return run_deep(lambda: _load_recipe(path, overrides))


def _load_recipe(path: str, overrides: dict[str, Any] | None) -> Plan:
    recipe, file = read_recipe(path)
    values = RecipeValues()
    settings = RecipeSettings(values, recipe, file, dict(overrides or {}))
    found, loss = settings.settings()
    if "net" not in found:
        values.error(recipe.span, f"recipe {recipe.name} names no network (net vgg19)")
    if loss is None:
        values.error(recipe.span, f"recipe {recipe.name} defines no loss "
                                  "(loss = content(conv4_2) + 1e3 * style(conv1_1))")
    loss_terms = LossTerms(values)
    weighted = loss_terms.linear(loss) if loss is not None else []
    if "net" not in found:
        raise DiagnosticError(values.diags)
    spec, spec_span = found.pop("net")
    spec = _spec_path(spec, file, recipe)
    try:
        graph = load(spec)
    except DiagnosticError as err:
        # Diagnostics inside the net's own file keep their place; a missing net points here.
        raise DiagnosticError([d if d.span else Diagnostic(spec_span, d.message, notes=d.notes)
                               for d in err.diagnostics]) from None
    terms = [loss_terms.term(w, call, graph, graph.name) for w, call in weighted]
    images = [i for i in graph.inputs.values() if len(i.shape) == 3 and i.shape[0] in (1, 3)]
    if len(graph.inputs) != 1 or not images:
        values.error(spec_span, f"{graph.name} must have one image input (1 or 3 channels) "
                                "for a recipe")
    if weighted and not values.diags and not any(t.layers for t in terms if t is not None):
        values.error(loss.span, "the loss reads no layer of the network; add a term such as "
                                "content(conv4_2) or activation(inception_4c)")
    if values.diags:
        raise DiagnosticError(values.diags)
    optimizer = found.pop("optimizer", None) or settings.default_optimizer()
    plan = Plan(recipe.name, str(file), spec, graph, tuple(t for t in terms if t is not None),
                optimizer, **found)
    return _with_default_images(plan)


def _with_default_images(plan: Plan) -> Plan:
    """The sample images a plan uses when it names none, and equal blend weights."""
    if plan.needs("content") or plan.needs("code") or plan.init == "content":
        plan = plan.replace(content=plan.content or DEFAULT_CONTENT)
    if plan.needs("style"):
        plan = plan.replace(styles=plan.styles or DEFAULT_STYLES)
    if plan.styles and not plan.blend:
        plan = plan.replace(blend=tuple(1.0 for _ in plan.styles))
    return plan


def _spec_path(spec: str, file: Path, recipe: ast.Recipe) -> str:
    """A net defined in the recipe's own file, a file beside it, or a zoo name (in that order)."""
    own = [i for i in parse(SOURCES.texts[str(file)], str(file)).items
           if isinstance(i, (ast.Net, ast.NetAlias)) and i.name == spec]
    if own:
        return f"{file}:{spec}"
    beside = file.parent / spec
    if beside.exists() or (":" in spec and (file.parent / spec.rpartition(":")[0]).exists()):
        return str(beside)
    if spec in zoo_index() or Path(spec).exists():
        return spec
    return spec  # load() explains what is missing
