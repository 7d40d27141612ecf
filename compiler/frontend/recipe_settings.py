"""A recipe's parameters and settings: which network, which images, how to start and optimise.

Rules:

1. Parameters take their defaults, then ``--set NAME=VALUE``; a ``--set`` that names an
   optimiser option (``--set steps=50``) reaches the optimiser, any other unknown name is an
   error listing what the recipe takes.
2. Each setting is known (:data:`SETTINGS`, with the closest one as a hint), given once, and
   takes one value (``style`` takes several, and ``blend=[...]``, one weight per image).
3. ``net`` names a zoo net or a spec file; ``weights``, ``content`` and ``image`` a file or a
   sample image (``weights`` relative to the recipe's folder); ``init`` is one of
   :data:`INITS` (``noise(scale=0.1)``); ``size``, ``tile`` and ``seed`` are integers in their
   domains; ``clip`` is true or false.
4. ``optimizer`` is one of :data:`OPTIMIZERS` with named options checked against
   :data:`OPTION_DOMAINS`; ``--set`` options override the recipe's.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netc.compiler.frontend.arithmetic import is_num
from netc.compiler.frontend.recipe_values import RecipeValues
from netc.compiler.ops.domains import NON_NEGATIVE_NUMBER, POSITIVE_NUMBER, Domain, between
from netc.dsl import ast
from netc.dsl.diagnostics import Span, UserError

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

INITS = ("noise", "content", "image")

# The settings a recipe may write (each checked by its RecipeSettings method).
SETTINGS = ("net", "weights", "content", "style", "image", "init", "optimizer", "size", "tile",
            "seed", "clip")


@dataclass(frozen=True, slots=True)
class Optimizer:
    """The optimiser a recipe runs, with every option given a value."""

    kind: str  # lbfgs | adam | dream
    options: tuple[tuple[str, Any], ...]

    def option(self, name: str) -> Any:
        """The value of option ``name``."""
        return dict(self.options)[name]

    @property
    def steps(self) -> int:
        """How many optimisation steps to take."""
        return int(self.option("steps"))

    def with_options(self, **changes) -> Optimizer:
        """A copy with some options changed."""
        return Optimizer(self.kind, tuple({**dict(self.options), **changes}.items()))


class RecipeSettings:
    """Binds a recipe's parameters and checks its settings (rules in the module docstring)."""

    def __init__(self, values: RecipeValues, recipe: ast.Recipe, file: Path,
                 overrides: dict[str, Any]):
        self.values = values
        self.error = values.error
        self.recipe = recipe
        self.file = file
        self.optimizer_overrides: dict[str, Any] = {}
        self._checks = {
            "net": self.net, "weights": self.file_name, "content": self.file_name,
            "image": self.file_name, "style": self.style, "init": self.init,
            "optimizer": self.optimizer, "size": self.integer, "tile": self.integer,
            "seed": self.integer, "clip": self.clip,
        }
        self.bind_params(dict(overrides))

    def bind_params(self, overrides: dict[str, Any]) -> None:
        """Parameters from ``--set`` or their defaults (rule 1)."""
        env = self.values.env
        for p in self.recipe.params:
            if p.name in overrides:
                env[p.name] = overrides.pop(p.name)
            elif p.default is None:
                self.error(p.span, f"recipe parameter {p.name!r} needs a default value")
            else:
                env[p.name] = self.values.number_or_text(p.default)
        options = {k for opts in OPTIMIZERS.values() for k in opts}
        for name, value in overrides.items():
            if name in options:
                self.optimizer_overrides[name] = value  # --set steps=50 reaches the optimiser
            else:
                have = ", ".join(p.name for p in self.recipe.params) or "none"
                raise UserError(f"--set {name}: recipe {self.recipe.name} has no parameter "
                                f"{name!r} (its parameters: {have}; optimiser options: "
                                f"{', '.join(sorted(options))})")

    def settings(self) -> tuple[dict[str, Any], ast.Node | None]:
        """The settings found (name -> checked value) and the loss expression (or None)."""
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
        """Check one known setting and record its value in ``found`` (rules 2-4)."""
        allowed_kw = {"style": ("blend",)}.get(s.name, ())
        for kw in s.kwargs:
            if kw.name not in allowed_kw:
                self.error(kw.span, f"{s.name} takes no option {kw.name!r}")
        if s.name != "style" and len(s.args) != 1:
            self.error(s.span, f"{s.name} takes one value; got {len(s.args)}")
            return
        self._checks[s.name](s, found)

    # ---- one method per setting -------------------------------------------------------------
    def net(self, s: ast.RecipeSetting, found: dict[str, Any]) -> None:
        """``net vgg19``: a zoo net or a spec file, kept with where it is written."""
        spec = self.values.number_or_text(s.args[0], bare_names=True)
        if isinstance(spec, str):
            found["net"] = (spec, s.args[0].span)
        else:
            self.error(s.args[0].span, "net names a zoo net or a spec file")

    def file_name(self, s: ast.RecipeSetting, found: dict[str, Any]) -> None:
        """``weights``, ``content`` or ``image``: a file or a sample image's name."""
        v = self.values.number_or_text(s.args[0], bare_names=True)
        if not isinstance(v, str):
            self.error(s.args[0].span, f"{s.name} is a file name or a sample image name")
        else:
            found[s.name] = self.relative(v) if s.name == "weights" else v

    def style(self, s: ast.RecipeSetting, found: dict[str, Any]) -> None:
        """``style a, b, blend=[1, 2]``: style images and their weights."""
        styles = [self.values.number_or_text(a, bare_names=True) for a in s.args]
        if any(not isinstance(v, str) for v in styles):
            self.error(s.span, "style lists image files or sample image names")
        found["styles"] = tuple(styles)
        for kw in s.kwargs:
            if kw.name == "blend":
                blend = self.values.number_or_text(kw.value)
                if (not isinstance(blend, list) or len(blend) != len(s.args)
                        or not all(is_num(b) and b >= 0 for b in blend) or not sum(blend)):
                    self.error(kw.value.span, f"blend must list {len(s.args)} non-negative "
                                              "numbers, one per style image")
                else:
                    found["blend"] = tuple(float(b) for b in blend)

    def integer(self, s: ast.RecipeSetting, found: dict[str, Any]) -> None:
        """``size``, ``tile`` or ``seed``: an integer in its domain."""
        name, arg = s.name, s.args[0]
        v = self.values.number(arg, name, integer=True, domain=SETTING_DOMAINS[name])
        if name == "tile" and v is not None and 0 < v < 32:
            self.error(arg.span, f"tile must be 0 (no tiles) or at least 32 pixels; got {v}")
            v = None
        if v is not None:
            found[name] = v
            found.setdefault("spans", {})[name] = arg.span

    def clip(self, s: ast.RecipeSetting, found: dict[str, Any]) -> None:
        """``clip true``: whether pixels are kept in [0, 1]."""
        v = self.values.number_or_text(s.args[0], bare_names=True)
        if not isinstance(v, bool):
            self.error(s.args[0].span, "clip is true or false")
        else:
            found["clip"] = v

    def init(self, s: ast.RecipeSetting, found: dict[str, Any]) -> None:
        """``init noise(scale=0.1)``: where the optimisation starts."""
        e = s.args[0]
        kind, args, kwargs = _call_parts(e)
        if kind not in INITS:
            self.error(e.span, f"init is one of {', '.join(INITS)}; noise(scale=0.1) sets the "
                               "noise's standard deviation")
            return
        found["init"] = kind
        for kw in kwargs:
            if kind == "noise" and kw.name == "scale":
                v = self.values.number(kw.value, "noise scale", domain=NON_NEGATIVE_NUMBER)
                if v is not None:
                    found["init_scale"] = float(v)
            else:
                self.error(kw.span, f"init {kind} takes no option {kw.name!r}")
        for a in args:
            self.error(a.span, "init options are named: noise(scale=0.1)")

    def optimizer(self, s: ast.RecipeSetting, found: dict[str, Any]) -> None:
        """``optimizer adam(lr=0.05)``: the optimiser and its options (rule 4)."""
        e = s.args[0]
        kind, args, kwargs = _call_parts(e)
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
            v = self.optimizer_option(kind, kw)
            if v is not None:
                options[kw.name] = v
        found["optimizer"] = self.with_overrides(kind, options)

    def optimizer_option(self, kind: str, kw: ast.Kwarg) -> Any:
        """One optimiser option as written in the recipe, checked; None after an error."""
        v = self.values.number_or_text(kw.value, bare_names=True)
        if kw.name == "milestones":
            if not isinstance(v, list) or not all(isinstance(m, int) and m > 0 for m in v):
                self.error(kw.value.span, "milestones lists the steps at which the "
                                          "learning rate drops, such as [100, 300]")
                return None
            return tuple(v)
        if kw.name == "line_search":
            if not isinstance(v, bool):
                self.error(kw.value.span, f"{kind} option line_search is true or false")
                return None
            return v
        return self.values.checked(v, *OPTION_DOMAINS[kw.name], kw.value.span,
                                   f"{kind} option {kw.name}")

    def with_overrides(self, kind: str, options: dict[str, Any]) -> Optimizer:
        """The optimiser ``kind`` with ``options``, then the ``--set`` options it has."""
        for name, value in self.optimizer_overrides.items():
            if name in options:
                options[name] = self.override(name, value)
        return Optimizer(kind, tuple(options.items()))

    def default_optimizer(self) -> Optimizer:
        """L-BFGS with its defaults and the ``--set`` options, for a recipe that names none."""
        return self.with_overrides("lbfgs", dict(OPTIMIZERS["lbfgs"]))

    def override(self, name: str, value):
        """An optimiser option from ``--set NAME=VALUE``, checked like one in the recipe."""
        if name == "milestones":
            raise UserError("--set milestones: write the milestones in the recipe")
        if name == "line_search":
            if not isinstance(value, bool):
                raise UserError(f"--set line_search must be true or false; got {value!r}")
            return value
        return self.values.checked(value, *OPTION_DOMAINS[name], None, f"--set {name}")

    def relative(self, path: str) -> str:
        """A file named in a recipe is relative to the recipe's folder."""
        p = Path(path).expanduser()
        return str(p if p.is_absolute() else self.file.parent / p)


def _call_parts(e: ast.Node) -> tuple[str | None, tuple, tuple]:
    """``lbfgs`` or ``lbfgs(steps=3)`` -> ("lbfgs", args, kwargs)."""
    if isinstance(e, ast.Name):
        return e.id, (), ()
    if isinstance(e, ast.Call) and isinstance(e.func, ast.Name):
        return e.func.id, e.args, e.kwargs
    return None, (), ()
