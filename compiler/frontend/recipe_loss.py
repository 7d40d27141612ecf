"""A recipe's loss: a weighted sum of known terms, each over layers of the network.

Rules:

1. ``loss = ...`` is a weighted sum: terms added and subtracted, each multiplied or divided by
   a number (``2 * content(conv4_2) - tv(2) / 10``); two terms cannot be multiplied, and every
   weight is finite.
2. A term is one of :data:`TERMS`. ``content``, ``code`` and ``activation`` take one layer,
   ``style`` one or more, ``alpha_norm`` and ``tv`` none (one number sets their first option);
   a bare ``tv`` is the term with its defaults.
3. A layer is named as the summary names it (or by a unique suffix, or a parameter holding the
   name) and is resolved with :meth:`netc.compiler.ir.Graph.resolve`; the network's input is no
   layer. An unknown or ambiguous name is an error with the candidates.
4. Options are the term's own (:data:`TERMS`), checked against their domains; ``style``'s
   ``weights`` list one number per layer (default 1/L each); ``activation``'s ``channel`` is a
   channel of its layer.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import Any

from netc.compiler.frontend.arithmetic import is_num
from netc.compiler.frontend.recipe_values import SIGNS, RecipeValues
from netc.compiler.ir import Graph
from netc.compiler.ops.domains import POSITIVE_NUMBER, Domain
from netc.dsl import ast
from netc.dsl.diagnostics import Span
from netc.dsl.nesting import unwind


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

# Term options: alpha_norm(alpha, bound), tv(beta, bound), activation(channel).
TERM_OPTION_DOMAINS: dict[str, Domain] = {
    "alpha": POSITIVE_NUMBER, "beta": POSITIVE_NUMBER, "bound": POSITIVE_NUMBER,
}


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
        """The value of option ``name``."""
        return dict(self.options)[name]

    @property
    def label(self) -> str:
        """How progress lines name the term: ``style(conv1_1,conv2_1)``."""
        return self.kind if not self.written else f"{self.kind}({','.join(self.written)})"


class LossTerms:
    """Reads a loss expression into terms (rules in the module docstring)."""

    def __init__(self, values: RecipeValues):
        self.values = values
        self.error = values.error

    # ---- the weighted sum (rule 1) ----------------------------------------------------------
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
        """The (weight, term call) pairs of a loss sub-expression, weights not yet checked."""
        if isinstance(e, ast.BinOp) and e.op in SIGNS:
            first, parts = unwind(e, SIGNS)  # a loss of many terms is a left spine: a loop
            out = self.linear_terms(first)
            for part in parts:
                sign = -1.0 if part.op == "-" else 1.0
                out += [(sign * w, t) for w, t in self.linear_terms(part.right)]
            return out
        if isinstance(e, ast.UnaryOp) and e.op in SIGNS:
            e, signs = unwind(e, SIGNS)
            sign = (-1.0) ** sum(s.op == "-" for s in signs)
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
            return self.scaled(e)
        self.error(e.span, "a loss is a weighted sum of terms, such as "
                           "content(conv4_2) + 1e3 * style(conv1_1, conv2_1)")
        return []

    def scaled(self, e: ast.BinOp) -> list[tuple[float, ast.Call]]:
        """``k * terms``, ``terms * k`` or ``terms / k``."""
        if e.op == "*" and not _mentions_term(e.left):
            k, terms = self.values.number(e.left, "a term's weight"), self.linear_terms(e.right)
        elif not _mentions_term(e.right):
            k, terms = self.values.number(e.right, "a term's weight"), self.linear_terms(e.left)
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

    # ---- one term (rules 2-4) ---------------------------------------------------------------
    def term(self, weight: float, call: ast.Call, graph: Graph, net: str) -> Term | None:
        """The term of ``call`` over ``graph`` (net ``net``), or None after an error."""
        kind = call.func.id
        tdef = TERMS[kind]
        options = dict(tdef.options)
        if tdef.layers == "none":
            self.first_option(kind, tdef, call, options)
            layers, written = [], []
        else:
            layers, written = self.layers(kind, call, graph, net)
        self.named_options(kind, call, options)
        if tdef.layers == "one" and len(call.args) != 1:
            self.error(call.span, f"{kind} takes one layer; got {len(call.args)}")
            return None
        if tdef.layers == "many" and not call.args:
            self.error(call.span, f"{kind} needs at least one layer")
            return None
        layer_weights = self.layer_weights(kind, call, layers, options)
        if kind == "activation" and options["channel"] is not None and layers:
            c, channels = options["channel"], graph[layers[0]].shape[0]
            if not isinstance(c, int) or not 0 <= c < channels:
                self.error(call.span, f"channel must be an integer in 0..{channels - 1} "
                                      f"({written[0]} has {channels} channels); got {c!r}")
        if len(layers) != len(call.args) and tdef.layers != "none":
            return None
        return Term(kind, weight, tuple(layers), tuple(written), layer_weights,
                    tuple(options.items()), call.span)

    def first_option(self, kind: str, tdef: TermDef, call: ast.Call,
                     options: dict[str, Any]) -> None:
        """``tv(2)``: the one number an image-space term takes sets its first option."""
        for a in call.args[1:]:
            self.error(a.span, f"{kind} takes at most one number ({tdef.first})")
        if call.args:
            v = self.values.number(call.args[0], f"{kind}'s {tdef.first}",
                                   domain=TERM_OPTION_DOMAINS[tdef.first])
            options[tdef.first] = v if v is not None else options[tdef.first]

    def layers(self, kind: str, call: ast.Call, graph: Graph,
               net: str) -> tuple[list[str], list[str]]:
        """The IR nodes the call's layer names resolve to, and the names as written (rule 3)."""
        layers, written = [], []
        env = self.values.env
        for a in call.args:
            name = a.id if isinstance(a, ast.Name) else a.value if isinstance(a, ast.Str) \
                else None
            if isinstance(a, ast.Name) and isinstance(env.get(a.id), str):
                name = env[a.id]  # a parameter naming a layer: code(layer), --set layer=
            if name is None:
                self.error(a.span, f"{kind} takes layer names, such as {kind}(conv4_2)")
                continue
            node = graph.resolve(name)
            if node is None:
                self.error(a.span, unknown_layer(name, graph, net))
                continue
            if graph[node].op == "input":
                self.error(a.span, f"{name!r} is the network's input, not a layer")
                continue
            layers.append(node)
            written.append(name)
        return layers, written

    def named_options(self, kind: str, call: ast.Call, options: dict[str, Any]) -> None:
        """``style(..., weights=[...])``, ``tv(beta=2)``: the term's own options (rule 4)."""
        for kw in call.kwargs:
            if kw.name not in options:
                have = ", ".join(options) or "none"
                self.error(kw.span, f"{kind} has no option {kw.name!r} (its options: {have})")
                continue
            v = self.values.number_or_text(kw.value)
            if kw.name in TERM_OPTION_DOMAINS and v is not None:
                v = self.values.checked(v, "float", TERM_OPTION_DOMAINS[kw.name], kw.value.span,
                                        f"{kind}'s {kw.name}")
            options[kw.name] = v if v is not None else options[kw.name]

    def layer_weights(self, kind: str, call: ast.Call, layers: list[str],
                      options: dict[str, Any]) -> tuple[float, ...]:
        """Each layer's share of the term: ``style``'s ``weights``, else 1/L (Gatys: 1/5)."""
        layer_weights = tuple(1.0 / len(layers) for _ in layers)
        if kind == "style" and options["weights"] is not None:
            ws = options["weights"]
            if not isinstance(ws, list) or len(ws) != len(call.args) \
                    or not all(is_num(w) for w in ws):
                self.error(call.span, f"style weights must list {len(call.args)} numbers, one "
                                      "per layer")
            else:
                layer_weights = tuple(float(w) for w in ws)
        options.pop("weights", None)
        return layer_weights


def unknown_layer(name: str, graph: Graph, net: str) -> str:
    """Why ``name`` names no layer of ``graph``: ambiguous (with candidates) or unknown."""
    many = graph.candidates(name)
    if many:
        return f"layer {name!r} is ambiguous in {net}: {', '.join(many[:6])}; " \
               "write the full name as a string"
    short = sorted({n.rsplit(".", 1)[-1] for n in graph.nodes} | set(graph.aliases))
    close = difflib.get_close_matches(name, short, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else \
        f"; `netc summary {net}` lists its layers"
    return f"no layer {name!r} in {net}{hint}"


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
