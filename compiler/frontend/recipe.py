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

>>> import tempfile, pathlib
>>> f = pathlib.Path(tempfile.mkdtemp()) / "t.recipe"
>>> _ = f.write_text('recipe t { net vgg16  loss = content(conv4_2) + 1e3 * style(conv1_1) }')
>>> plan = load_recipe(str(f))
>>> [(t.kind, t.weight, t.layers) for t in plan.terms]
[('content', 1.0, ('conv4_2',)), ('style', 1000.0, ('conv1_1',))]
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from netc.compiler.frontend.arithmetic import ARITHMETIC as _ARITH
from netc.compiler.frontend.arithmetic import is_num as _is_num
from netc.compiler.ir import Graph
from netc.compiler.ops.domains import (
    NON_NEGATIVE_NUMBER,
    POSITIVE_NUMBER,
    Domain,
    between,
)
from netc.dsl import ast
from netc.dsl.diagnostics import Diagnostic, DiagnosticError, Span, UserError
from netc.dsl.parser import parse


@dataclass(frozen=True, slots=True)
class TermDef:
    """A loss term the language knows: how many layers it takes and its options with defaults.

    ``layers`` is ``"one"``, ``"many"`` or ``"none"`` (an image-space regulariser); ``first`` is
    the option a single positional number sets (``tv(2)`` sets ``beta``).
    """

    layers: str
    options: dict[str, Any]
    first: str | None = None
    doc: str = ""


# The terms, with the defaults of their sources (see runtime/recipes/losses.py for formulas).
TERMS: dict[str, TermDef] = {
    "content": TermDef("one", {}, doc="½ Σ (F − P)² against the content image (Gatys)"),
    "style": TermDef("many", {"weights": None},
                     doc="Σ w_l/(4 N² M²) Σ (G − A)² against the style images (Gatys)"),
    "code": TermDef("one", {}, doc="‖Φ(x) − Φ₀‖² / ‖Φ₀‖² against the content image's code "
                                   "(Mahendran-Vedaldi)"),
    "activation": TermDef("one", {"channel": None},
                          doc="½‖a‖², to be maximised: write it with a minus sign (DeepDream)"),
    "alpha_norm": TermDef("none", {"alpha": 6, "bound": 80.0}, first="alpha",
                          doc="mean over pixels of (‖x_p‖ / B)^α (Mahendran-Vedaldi 2016)"),
    "tv": TermDef("none", {"beta": 2, "bound": 80.0}, first="beta",
                  doc="mean over pixels of (‖∇x_p‖² / V²)^(β/2), V = B/6.5 (Mahendran-Vedaldi)"),
}

# Optimisers and their options with defaults. Learning rates and steps are in pixel units of
# [0, 1] images, except dream's ``step``, which is in 0-255 units as in google/deepdream.
OPTIMIZERS: dict[str, dict[str, Any]] = {
    "lbfgs": {"steps": 300, "history": 100, "line_search": False},
    # The schedule multiplies lr by gamma at each milestone step (Mahendran-Vedaldi divide it
    # by 10 twice); jitter rolls the image by up to that many pixels before each step.
    "adam": {"steps": 300, "lr": 0.02, "milestones": (), "gamma": 0.1, "jitter": 0},
    "dream": {"steps": 10, "step": 1.5, "jitter": 32, "octaves": 4, "octave_scale": 1.4},
}

# What each optimiser option accepts ("int" or "float", and its domain), checked where the
# value is written (or named on --set): a negative jitter or a zero octave_scale would reach
# torch and numpy as nonsense or a crash.
MAX_STEPS = 1_000_000
OPTION_DOMAINS: dict[str, tuple[str, Domain]] = {
    "steps": ("int", between(1, MAX_STEPS, text=f"a whole number of steps in 1..{MAX_STEPS:,}")),
    "history": ("int", between(1, 10_000, text="a history length in 1..10,000")),
    "lr": ("float", POSITIVE_NUMBER),
    "gamma": ("float", POSITIVE_NUMBER),
    "jitter": ("int", between(0, 4096, text="a number of pixels in 0..4096")),
    "step": ("float", POSITIVE_NUMBER),
    "octaves": ("int", between(1, 32, text="a number of octaves in 1..32")),
    "octave_scale": ("float", between(1, 16, text="a scale in [1, 16] (1.4 in DeepDream)")),
}
MAX_IMAGE_SIDE = 65_536
SETTING_DOMAINS: dict[str, Domain] = {
    "size": between(1, MAX_IMAGE_SIDE, text=f"a side in 1..{MAX_IMAGE_SIDE:,} pixels"),
    "tile": between(0, MAX_IMAGE_SIDE, text=f"0 (no tiles) or a tile side in 32.."
                                            f"{MAX_IMAGE_SIDE:,} pixels"),
    "seed": between(0, 2**63 - 1, text="a non-negative integer below 2**63"),
}
# Term options: alpha_norm(alpha, bound), tv(beta, bound), activation(channel).
TERM_OPTION_DOMAINS: dict[str, Domain] = {
    "alpha": POSITIVE_NUMBER, "beta": POSITIVE_NUMBER, "bound": POSITIVE_NUMBER,
}

INITS = ("noise", "content", "image")

# Setting name -> what its value must be (checked by _setting).
SETTINGS = ("net", "weights", "content", "style", "image", "init", "optimizer", "size", "tile",
            "seed", "clip")

DEFAULT_CONTENT = "astronaut"
DEFAULT_STYLES = ("brick", "gravel")


@dataclass(frozen=True, slots=True)
class Term:
    """One weighted term of the loss, its layers resolved to IR node names."""

    kind: str
    weight: float
    layers: tuple[str, ...]  # IR node names
    written: tuple[str, ...]  # the names as the recipe wrote them (for progress lines)
    layer_weights: tuple[float, ...]
    options: tuple[tuple[str, Any], ...]
    span: Span | None = None

    def option(self, name: str) -> Any:
        return dict(self.options)[name]

    @property
    def label(self) -> str:
        return self.kind if not self.written else f"{self.kind}({','.join(self.written)})"


@dataclass(frozen=True, slots=True)
class Optimizer:
    kind: str  # lbfgs | adam | dream
    options: tuple[tuple[str, Any], ...]

    def option(self, name: str) -> Any:
        return dict(self.options)[name]

    @property
    def steps(self) -> int:
        return int(self.option("steps"))

    def with_options(self, **changes) -> Optimizer:
        return Optimizer(self.kind, tuple({**dict(self.options), **changes}.items()))


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
        return next(iter(self.graph.inputs.values()))

    @property
    def fixed_size(self) -> bool:
        """True when a tapped layer sits past a flatten: the image must have the declared size."""
        return any(len(n.shape) == 1 for n in self.graph.slice(self.taps))

    def prefix(self) -> Graph:
        """The network cut down to the nodes the loss needs: no weights past the last tap."""
        return prefix_graph(self.graph, self.taps)

    def needs(self, kind: str) -> bool:
        return any(t.kind == kind for t in self.terms)

    def replace(self, **changes) -> Plan:
        return replace(self, **changes)


class _Checker:
    """Evaluates one recipe's settings and loss, collecting diagnostics."""

    def __init__(self, recipe: ast.Recipe, file: Path, overrides: dict[str, Any]):
        self.recipe = recipe
        self.file = file
        self.diags: list[Diagnostic] = []
        self.env: dict[str, Any] = {}
        self.optimizer_overrides: dict[str, Any] = {}
        self.bind_params(dict(overrides))

    def error(self, span: Span | None, message: str) -> None:
        self.diags.append(Diagnostic(span, message))

    def bind_params(self, overrides: dict[str, Any]) -> None:
        for p in self.recipe.params:
            if p.name in overrides:
                self.env[p.name] = overrides.pop(p.name)
            elif p.default is None:
                self.error(p.span, f"recipe parameter {p.name!r} needs a default value")
            else:
                self.env[p.name] = self.number_or_text(p.default)
        options = {k for opts in OPTIMIZERS.values() for k in opts}
        for name, value in overrides.items():
            if name in options:
                self.optimizer_overrides[name] = value  # --set steps=50 reaches the optimiser
            else:
                have = ", ".join(p.name for p in self.recipe.params) or "none"
                raise UserError(f"--set {name}: recipe {self.recipe.name} has no parameter "
                                f"{name!r} (its parameters: {have}; optimiser options: "
                                f"{', '.join(sorted(options))})")

    # ---- plain values: numbers, text, lists, parameters, arithmetic --------------------------
    def number_or_text(self, e: ast.Node, bare_names: bool = False) -> Any:
        """Evaluate a value; with ``bare_names`` an unknown bare name is its own text."""
        if isinstance(e, ast.Num | ast.Str):
            return e.value
        if isinstance(e, ast.Name):
            if e.id in self.env:
                return self.env[e.id]
            if e.id in ("true", "false"):
                return e.id == "true"
            if bare_names:
                return e.id
            known = list(self.env)
            close = difflib.get_close_matches(e.id, known, n=1)
            hint = f"; did you mean {close[0]}?" if close else \
                f" (the recipe's parameters: {', '.join(known) or 'none'})"
            self.error(e.span, f"unknown name {e.id!r}{hint}")
            return None
        if isinstance(e, ast.ListLit):
            return [self.number_or_text(i, bare_names) for i in e.items]
        if isinstance(e, ast.UnaryOp) and e.op in "+-":
            signs = 1
            while isinstance(e, ast.UnaryOp) and e.op in "+-":  # - - - x: a loop
                signs *= -1 if e.op == "-" else 1
                e = e.operand
            v = self.number_or_text(e)
            if v is not None and not _is_num(v):
                self.error(e.span, f"cannot negate {v!r}")
                return None
            return None if v is None else signs * v
        if isinstance(e, ast.BinOp) and e.op in _ARITH:
            spine = []  # a sum of many terms is a left spine: evaluated in a loop
            while isinstance(e, ast.BinOp) and e.op in _ARITH:
                spine.append(e)
                e = e.left
            a = self.number_or_text(e)
            for op in reversed(spine):
                a = self.arith(op, a, self.number_or_text(op.right))
            return a
        self.error(e.span, "expected a number, a name or a string here")
        return None

    def arith(self, e: ast.BinOp, a, b):
        """``a <op> b`` for numbers, or None after an error."""
        if not _is_num(a) or not _is_num(b):
            if a is not None and b is not None:
                self.error(e.span, f"{e.op!r} needs numbers")
            return None
        try:
            v = _ARITH[e.op](a, b)
        except ZeroDivisionError:
            self.error(e.span, "division by zero")
            return None
        except OverflowError:
            v = math.inf
        if not _is_num(v) or (isinstance(v, int) and abs(v) > 10**100):
            self.error(e.span, f"{e.op!r} gives a number too large to use")
            return None
        return v

    def checked(self, v, kind: str, domain: Domain, span: Span | None, what: str):
        """``v`` if it is a ``kind`` ("int"/"float") in ``domain``, else an error and None.

        ``span`` None: the value came from the command line (``what`` names the flag).
        """
        ok = _is_num(v) and (kind != "int" or isinstance(v, int)) and domain.contains(v)
        if ok:
            return v
        shown = repr(v) if isinstance(v, str) else v
        message = f"{what} must be {domain.text}; got {shown}"
        if span is None:
            raise UserError(message)
        self.error(span, message)
        return None

    def number(self, e: ast.Node, what: str, integer: bool = False, positive: bool = False,
               domain: Domain | None = None):
        v = self.number_or_text(e)
        if v is None:
            return None
        if domain is not None:
            return self.checked(v, "int" if integer else "float", domain, e.span, what)
        if not _is_num(v) or (integer and not isinstance(v, int)):
            self.error(e.span, f"{what} must be {'an integer' if integer else 'a number'}; "
                               f"got {v!r}")
            return None
        if positive and v <= 0:
            self.error(e.span, f"{what} must be positive; got {v}")
            return None
        return v

    # ---- settings ----------------------------------------------------------------------------
    def settings(self) -> tuple[dict[str, Any], ast.Node | None]:
        found: dict[str, Any] = {}
        seen: dict[str, Span] = {}
        loss = None
        for stmt in self.recipe.body:
            if isinstance(stmt, ast.RecipeLet):
                if stmt.name != "loss":
                    self.error(stmt.span, f"unknown definition {stmt.name!r}; a recipe defines "
                                          "only `loss = ...`")
                elif loss is not None:
                    self.error(stmt.span, "the loss is defined twice")
                else:
                    loss = stmt.value
                continue
            if stmt.name in seen:
                self.error(stmt.span, f"{stmt.name!r} is set twice (first at line "
                                      f"{seen[stmt.name].line})")
                continue
            seen[stmt.name] = stmt.span
            if stmt.name not in SETTINGS:
                close = difflib.get_close_matches(stmt.name, SETTINGS, n=1)
                hint = f"; did you mean {close[0]}?" if close else \
                    f"; settings are {', '.join(SETTINGS)}"
                self.error(stmt.span, f"unknown setting {stmt.name!r}{hint}")
                continue
            self.setting(stmt, found)
        return found, loss

    def setting(self, s: ast.RecipeSetting, found: dict[str, Any]) -> None:
        name, args = s.name, s.args
        allowed_kw = {"style": ("blend",)}.get(name, ())
        for kw in s.kwargs:
            if kw.name not in allowed_kw:
                self.error(kw.span, f"{name} takes no option {kw.name!r}")
        if name != "style" and len(args) != 1:
            self.error(s.span, f"{name} takes one value; got {len(args)}")
            return
        if name == "net":
            spec = self.number_or_text(args[0], bare_names=True)
            if isinstance(spec, str):
                found["net"] = (spec, args[0].span)
            else:
                self.error(args[0].span, "net names a zoo net or a spec file")
        elif name in ("weights", "content", "image"):
            v = self.number_or_text(args[0], bare_names=True)
            if not isinstance(v, str):
                self.error(args[0].span, f"{name} is a file name or a sample image name")
            else:
                found[name] = self.relative(v) if name == "weights" else v
        elif name == "style":
            styles = [self.number_or_text(a, bare_names=True) for a in args]
            if any(not isinstance(v, str) for v in styles):
                self.error(s.span, "style lists image files or sample image names")
            found["styles"] = tuple(styles)
            for kw in s.kwargs:
                if kw.name == "blend":
                    blend = self.number_or_text(kw.value)
                    if (not isinstance(blend, list) or len(blend) != len(args)
                            or not all(_is_num(b) and b >= 0 for b in blend) or not sum(blend)):
                        self.error(kw.value.span, f"blend must list {len(args)} non-negative "
                                                  "numbers, one per style image")
                    else:
                        found["blend"] = tuple(float(b) for b in blend)
        elif name == "init":
            self.init(args[0], found)
        elif name == "optimizer":
            self.optimizer(args[0], found)
        elif name in ("size", "tile", "seed"):
            v = self.number(args[0], name, integer=True, domain=SETTING_DOMAINS[name])
            if name == "tile" and v is not None and 0 < v < 32:
                self.error(args[0].span, f"tile must be 0 (no tiles) or at least 32 pixels; "
                                         f"got {v}")
                v = None
            if v is not None:
                found[name] = v
                found.setdefault("spans", {})[name] = args[0].span
        elif name == "clip":
            v = self.number_or_text(args[0], bare_names=True)
            if not isinstance(v, bool):
                self.error(args[0].span, "clip is true or false")
            else:
                found["clip"] = v

    def call_parts(self, e: ast.Node) -> tuple[str | None, tuple, tuple]:
        """``lbfgs`` or ``lbfgs(steps=3)`` -> ("lbfgs", args, kwargs)."""
        if isinstance(e, ast.Name):
            return e.id, (), ()
        if isinstance(e, ast.Call) and isinstance(e.func, ast.Name):
            return e.func.id, e.args, e.kwargs
        return None, (), ()

    def init(self, e: ast.Node, found: dict[str, Any]) -> None:
        kind, args, kwargs = self.call_parts(e)
        if kind not in INITS:
            self.error(e.span, f"init is one of {', '.join(INITS)}; noise(scale=0.1) sets the "
                               "noise's standard deviation")
            return
        found["init"] = kind
        for kw in kwargs:
            if kind == "noise" and kw.name == "scale":
                v = self.number(kw.value, "noise scale", domain=NON_NEGATIVE_NUMBER)
                if v is not None:
                    found["init_scale"] = float(v)
            else:
                self.error(kw.span, f"init {kind} takes no option {kw.name!r}")
        for a in args:
            self.error(a.span, "init options are named: noise(scale=0.1)")

    def optimizer(self, e: ast.Node, found: dict[str, Any]) -> None:
        kind, args, kwargs = self.call_parts(e)
        if kind not in OPTIMIZERS:
            self.error(e.span, f"optimizer is one of {', '.join(OPTIMIZERS)}")
            return
        options = dict(OPTIMIZERS[kind])
        for a in args:
            self.error(a.span, f"optimizer options are named: {kind}(steps=100)")
        for kw in kwargs:
            if kw.name not in options:
                self.error(kw.span, f"{kind} has no option {kw.name!r}; its options are "
                                    f"{', '.join(options)}")
                continue
            v = self.number_or_text(kw.value, bare_names=True)
            if kw.name == "milestones":
                if not isinstance(v, list) or not all(isinstance(m, int) and m > 0 for m in v):
                    self.error(kw.value.span, "milestones lists the steps at which the "
                                              "learning rate drops, such as [100, 300]")
                else:
                    options[kw.name] = tuple(v)
            elif kw.name == "line_search":
                if not isinstance(v, bool):
                    self.error(kw.value.span, f"{kind} option line_search is true or false")
                else:
                    options[kw.name] = v
            else:
                v = self.checked(v, *OPTION_DOMAINS[kw.name], kw.value.span,
                                 f"{kind} option {kw.name}")
                if v is not None:
                    options[kw.name] = v
        for name, value in self.optimizer_overrides.items():
            if name in options:
                options[name] = self.override(name, value)
        found["optimizer"] = Optimizer(kind, tuple(options.items()))

    def override(self, name: str, value):
        """An optimiser option from ``--set NAME=VALUE``, checked like one in the recipe."""
        if name == "milestones":
            raise UserError("--set milestones: write the milestones in the recipe")
        if name == "line_search":
            if not isinstance(value, bool):
                raise UserError(f"--set line_search must be true or false; got {value!r}")
            return value
        return self.checked(value, *OPTION_DOMAINS[name], None, f"--set {name}")

    def relative(self, path: str) -> str:
        """A file named in a recipe is relative to the recipe's folder."""
        p = Path(path).expanduser()
        return str(p if p.is_absolute() else self.file.parent / p)

    # ---- the loss: a weighted sum of terms --------------------------------------------------
    def linear(self, e: ast.Node) -> list[tuple[float, ast.Call]]:
        """``2 * content(l) - tv(2)`` -> [(2.0, content call), (-1.0, tv call)].

        A weight that is not a finite number (1e308 * 1e308) is an error at its term.
        """
        out = []
        for w, call in self.linear_terms(e):
            if not math.isfinite(w):
                self.error(call.span, f"the weight of this term is {w}; weights must be finite")
            else:
                out.append((w, call))
        return out

    def linear_terms(self, e: ast.Node) -> list[tuple[float, ast.Call]]:
        if isinstance(e, ast.BinOp) and e.op in ("+", "-"):
            parts = []  # a loss of many terms is a left spine of + and -: a loop
            while isinstance(e, ast.BinOp) and e.op in ("+", "-"):
                parts.append((-1.0 if e.op == "-" else 1.0, e.right))
                e = e.left
            out = self.linear_terms(e)
            for sign, part in reversed(parts):
                out += [(sign * w, t) for w, t in self.linear_terms(part)]
            return out
        if isinstance(e, ast.UnaryOp) and e.op in "+-":
            sign = 1.0
            while isinstance(e, ast.UnaryOp) and e.op in "+-":
                sign *= -1.0 if e.op == "-" else 1.0
                e = e.operand
            return [(sign * w, t) for w, t in self.linear_terms(e)]
        if isinstance(e, ast.Call) and isinstance(e.func, ast.Name):
            if e.func.id in TERMS:
                return [(1.0, e)]
            close = difflib.get_close_matches(e.func.id, TERMS, n=1)
            hint = f"; did you mean {close[0]}?" if close else f"; terms are {', '.join(TERMS)}"
            self.error(e.func.span, f"unknown loss term {e.func.id!r}{hint}")
            return []
        if isinstance(e, ast.Name) and e.id in TERMS:
            return [(1.0, ast.Call(e.span, e, (), ()))]  # `tv` alone: the defaults
        if isinstance(e, ast.BinOp) and e.op in ("*", "/"):
            left_is_term = _mentions_term(e.left)
            if e.op == "*" and not left_is_term:
                k, terms = self.number(e.left, "a term's weight"), self.linear_terms(e.right)
            elif not _mentions_term(e.right):
                k, terms = self.number(e.right, "a term's weight"), self.linear_terms(e.left)
                if k is not None and e.op == "/":
                    if k == 0:
                        self.error(e.right.span, "division by zero")
                        return []
                    k = 1.0 / k
            else:
                self.error(e.span, "a loss is a weighted sum of terms; two terms cannot be "
                                   "multiplied")
                return []
            return [] if k is None else [(float(k) * w, t) for w, t in terms]
        self.error(e.span, "a loss is a weighted sum of terms, such as "
                           "content(conv4_2) + 1e3 * style(conv1_1, conv2_1)")
        return []

    def term(self, weight: float, call: ast.Call, graph: Graph, net: str) -> Term | None:
        kind = call.func.id
        tdef = TERMS[kind]
        options = dict(tdef.options)
        layers, written = [], []
        if tdef.layers == "none":
            for a in call.args[1:]:
                self.error(a.span, f"{kind} takes at most one number ({tdef.first})")
            if call.args:
                v = self.number(call.args[0], f"{kind}'s {tdef.first}",
                                domain=TERM_OPTION_DOMAINS[tdef.first])
                options[tdef.first] = v if v is not None else options[tdef.first]
        for a in call.args if tdef.layers != "none" else ():
            name = a.id if isinstance(a, ast.Name) else a.value if isinstance(a, ast.Str) \
                else None
            if isinstance(a, ast.Name) and isinstance(self.env.get(a.id), str):
                name = self.env[a.id]  # a parameter naming a layer: code(layer), --set layer=
            if name is None:
                self.error(a.span, f"{kind} takes layer names, such as {kind}(conv4_2)")
                continue
            node = graph.resolve(name)
            if node is None:
                self.error(a.span, self.unknown_layer(name, graph, net))
                continue
            if graph[node].op == "input":
                self.error(a.span, f"{name!r} is the network's input, not a layer")
                continue
            layers.append(node)
            written.append(name)
        for kw in call.kwargs:
            if kw.name not in options:
                have = ", ".join(options) or "none"
                self.error(kw.span, f"{kind} has no option {kw.name!r} (its options: {have})")
                continue
            v = self.number_or_text(kw.value)
            if kw.name in TERM_OPTION_DOMAINS and v is not None:
                v = self.checked(v, "float", TERM_OPTION_DOMAINS[kw.name], kw.value.span,
                                 f"{kind}'s {kw.name}")
            options[kw.name] = v if v is not None else options[kw.name]
        if tdef.layers == "one" and len(call.args) != 1:
            self.error(call.span, f"{kind} takes one layer; got {len(call.args)}")
            return None
        if tdef.layers == "many" and not call.args:
            self.error(call.span, f"{kind} needs at least one layer")
            return None
        layer_weights = tuple(1.0 / len(layers) for _ in layers)  # w_l = 1/L (Gatys: 1/5)
        if kind == "style" and options["weights"] is not None:
            ws = options["weights"]
            if not isinstance(ws, list) or len(ws) != len(call.args) \
                    or not all(_is_num(w) for w in ws):
                self.error(call.span, f"style weights must list {len(call.args)} numbers, one "
                                      "per layer")
            else:
                layer_weights = tuple(float(w) for w in ws)
        options.pop("weights", None)
        if kind == "activation" and options["channel"] is not None and layers:
            c, channels = options["channel"], graph[layers[0]].shape[0]
            if not isinstance(c, int) or not 0 <= c < channels:
                self.error(call.span, f"channel must be an integer in 0..{channels - 1} "
                                      f"({written[0]} has {channels} channels); got {c!r}")
        if len(layers) != len(call.args) and tdef.layers != "none":
            return None
        return Term(kind, weight, tuple(layers), tuple(written), layer_weights,
                    tuple(options.items()), call.span)

    def unknown_layer(self, name: str, graph: Graph, net: str) -> str:
        many = graph.candidates(name)
        if many:
            return f"layer {name!r} is ambiguous in {net}: {', '.join(many[:6])}; " \
                   "write the full name as a string"
        short = sorted({n.rsplit(".", 1)[-1] for n in graph.nodes} | set(graph.aliases))
        close = difflib.get_close_matches(name, short, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else \
            f"; `netc summary {net}` lists its layers"
        return f"no layer {name!r} in {net}{hint}"


def size_problem(plan: Plan, height: int, width: int) -> str | None:
    """Why the tapped layers cannot run on a ``height`` x ``width`` image, or None.

    The graph's shapes were checked at the declared input size; a recipe works at its own
    size (``size``, ``--size``, tiles, octaves), so the shape rules are applied again there.
    """
    from netc.compiler.ops import ShapeError

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


def _mentions_term(e: ast.Node) -> bool:
    """Whether a loss sub-expression holds a term (by an explicit stack: sums can be long)."""
    stack = [e]
    while stack:
        e = stack.pop()
        if isinstance(e, ast.Call) and isinstance(e.func, ast.Name):
            return True  # a call in a loss is a term (an unknown one is reported by linear)
        if isinstance(e, ast.Name) and e.id in TERMS:
            return True
        if isinstance(e, ast.BinOp):
            stack += [e.left, e.right]
        elif isinstance(e, ast.UnaryOp):
            stack.append(e.operand)
    return False


def read_recipe(path: str) -> tuple[ast.Recipe, Path]:
    """Parse ``FILE`` or ``FILE:NAME`` and return the recipe item. Raises DiagnosticError."""
    file, name = Path(path), None
    if not file.exists() and ":" in path:
        head, _, name = path.rpartition(":")
        file = Path(head)
    from netc.dsl.sources import NotRegular, read_regular

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
    from netc.compiler.frontend.loader import run_deep

    return run_deep(lambda: _load_recipe(path, overrides))


def _load_recipe(path: str, overrides: dict[str, Any] | None) -> Plan:
    from netc.compiler.frontend.loader import load

    recipe, file = read_recipe(path)
    checker = _Checker(recipe, file, dict(overrides or {}))
    found, loss = checker.settings()
    if "net" not in found:
        checker.error(recipe.span, f"recipe {recipe.name} names no network (net vgg19)")
    if loss is None:
        checker.error(recipe.span, f"recipe {recipe.name} defines no loss "
                                   "(loss = content(conv4_2) + 1e3 * style(conv1_1))")
    weighted = checker.linear(loss) if loss is not None else []
    if "net" not in found:
        raise DiagnosticError(checker.diags)
    spec, spec_span = found.pop("net")
    spec = _spec_path(spec, file, recipe)
    try:
        graph = load(spec)
    except DiagnosticError as err:
        # Diagnostics inside the net's own file keep their place; a missing net points here.
        raise DiagnosticError([d if d.span else Diagnostic(spec_span, d.message, notes=d.notes)
                               for d in err.diagnostics]) from None
    terms = [checker.term(w, call, graph, graph.name) for w, call in weighted]
    images = [i for i in graph.inputs.values() if len(i.shape) == 3 and i.shape[0] in (1, 3)]
    if len(graph.inputs) != 1 or not images:
        checker.error(spec_span, f"{graph.name} must have one image input (1 or 3 channels) "
                                 "for a recipe")
    if weighted and not checker.diags and not any(t.layers for t in terms if t is not None):
        checker.error(loss.span, "the loss reads no layer of the network; add a term such as "
                                 "content(conv4_2) or activation(inception_4c)")
    if checker.diags:
        raise DiagnosticError(checker.diags)
    terms = tuple(t for t in terms if t is not None)
    optimizer = found.pop("optimizer", None) or Optimizer(
        "lbfgs", tuple({**OPTIMIZERS["lbfgs"], **{
            k: checker.override(k, v) for k, v in checker.optimizer_overrides.items()
            if k in OPTIMIZERS["lbfgs"]}
        }.items()))
    plan = Plan(recipe.name, str(file), spec, graph, terms, optimizer, **found)
    if plan.needs("content") or plan.needs("code") or plan.init == "content":
        plan = plan.replace(content=plan.content or DEFAULT_CONTENT)
    if plan.needs("style"):
        plan = plan.replace(styles=plan.styles or DEFAULT_STYLES)
    if plan.styles and not plan.blend:
        plan = plan.replace(blend=tuple(1.0 for _ in plan.styles))
    return plan


def _spec_path(spec: str, file: Path, recipe: ast.Recipe) -> str:
    """A net defined in the recipe's own file, a file beside it, or a zoo name (in that order)."""
    from netc.compiler.frontend.loader import zoo_index

    from netc.dsl.diagnostics import SOURCES

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
