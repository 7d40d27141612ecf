"""Grammar-level fuzzing: programs built from the language's own constructs, with hostile values.

Hypothesis writes definitions and nets from netc's grammar (calls of every registered op with
any arguments, chains, joins, labels with interpolation, ``for``, ``if``, arithmetic, ``not``,
lists, parameters with defaults that call definitions) and token soup from its terminals. Every
program must load to a verified graph or raise DiagnosticError whose every diagnostic has a
place in the file and renders; anything else (a RecursionError, a ZeroDivisionError, a
TypeError, an OverflowError) is a bug.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netc.compiler.ir import verify
from netc.compiler.frontend.loader import load
from netc.compiler.ops import REGISTRY
from netc.dsl.diagnostics import DiagnosticError, render
from netc.dsl.parser import parse

OPS = sorted(REGISTRY)
PARAMS = sorted({p.name for op in REGISTRY.values() for p in op.params} | {"shortcut", "body"})
DEFS = ["f", "g", "h"]
NAMES = OPS + DEFS + ["image", "x", "i", "n", "k", "true", "false", "project", "identity",
                      "residual", "concat", "mean", "undefined_name"]
INTS = st.sampled_from([0, 1, 2, 3, 7, 64, -1, 2**31 - 1, 2**31, 10**12, 10**30])
FLOATS = st.sampled_from(["0.0", "0.5", "1.0", "1e-320", "1e308", "2.5", "1e5"])

LAYERS = ["relu", "tanh", "bn", "conv(8, 3, pad=1)", "conv(4, 1)", "maxpool(2)", "gap",
          "avgpool(3, stride=1, pad=1)", "dropout(0.5)", "identity", "f", "g(2)", "h(n=1)",
          "residual(conv(8, 3, pad=1) -> bn, shortcut=project)", "lrn", "sigmoid"]
# Mostly layers, so that many programs get far into elaboration; hostile values in between.
atoms = st.one_of(
    st.sampled_from(LAYERS), st.sampled_from(LAYERS), st.sampled_from(LAYERS),
    st.sampled_from(NAMES),
    INTS.map(str),
    FLOATS,
    st.sampled_from(['"relu"', '""', '"a b"']),
)


def _extend(inner):
    args = st.lists(st.one_of(inner, st.tuples(st.sampled_from(PARAMS), inner).map(
        lambda kv: f"{kv[0]}={kv[1]}")), max_size=4).map(", ".join)
    return st.one_of(
        st.tuples(st.sampled_from(OPS + DEFS + ["residual"]), args).map(
            lambda t: f"{t[0]}({t[1]})"),
        st.tuples(inner, inner).map(lambda t: f"{t[0]} -> {t[1]}"),
        st.tuples(inner, inner).map(lambda t: f"{t[0]} -> {t[1]}"),
        st.tuples(st.sampled_from(["concat", "add", "mean", "max", "mul", "mean(droppath=0.2)"]),
                  st.lists(inner, max_size=3)).map(lambda t: f"{t[0]}[{', '.join(t[1])}]"),
        st.tuples(inner, st.sampled_from(["a", "b{i}", "c{n}_{i}", "d{k}", "e{1 + 1}"])).map(
            lambda t: f"({t[0]}) as {t[1]}"),
        st.tuples(inner, INTS, INTS).map(lambda t: f"({t[0]}) for i in {t[1] % 5}..{t[2] % 7}"),
        st.tuples(inner, st.sampled_from(["+", "-", "*", "/", "//", "%", "==", "<", "and", "or"]),
                  inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        inner.map(lambda e: f"not {e}"),
        inner.map(lambda e: f"-{e}"),
        st.tuples(inner, inner, inner).map(lambda t: f"if {t[0]} then {t[1]} else {t[2]}"),
        st.lists(inner, max_size=3).map(lambda items: f"[{', '.join(items)}]"),
        inner.map(lambda e: f"({e})"),
        st.tuples(inner, INTS).map(lambda t: f"({t[0]}) * {t[1] % 4}"),
    )


exprs = st.recursive(atoms, _extend, max_leaves=12)


@st.composite
def programs(draw):
    lines = []
    for name in draw(st.lists(st.sampled_from(DEFS), max_size=3, unique=True)):
        params = draw(st.lists(st.tuples(st.sampled_from(["n", "k", "x", "n"]),
                                         st.one_of(st.none(), exprs)), max_size=2))
        text = ", ".join(p if d is None else f"{p} = {d}" for p, d in params)
        inline = draw(st.sampled_from(["", "inline "]))
        lines.append(f"{inline}def {name}({text}) = {draw(exprs)}")
    shape = draw(st.sampled_from(["3x32x32", "3x32x32", "1x8x8", "3x16x16", "3x1x1", "1x3x8x8",
                                  "3x0x4"]))
    body = [f"x = image -> {draw(exprs)}", f"image -> {draw(exprs)}"]
    if draw(st.booleans()):
        body.append(f"output y = {draw(exprs)}")
    lines.append("net n {\n  input image: " + shape + "\n  " + "\n  ".join(body) + "\n}")
    return "\n".join(lines) + "\n"


def _check(tmp_path, text):
    path = tmp_path / "fuzz.net"
    path.write_text(text)
    lines = text.count("\n") + 1
    try:
        graph = load(str(path), max_nodes=3000)
    except DiagnosticError as err:
        assert err.diagnostics
        for d in err.diagnostics:
            assert d.span is not None, d.message
            assert 1 <= d.span.line <= lines and d.span.col >= 1, (d.span, d.message)
        render(err.diagnostics)  # never raises
        return
    verify(graph)


@settings(max_examples=250, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(text=programs())
def test_grammar_programs_load_or_are_diagnosed(tmp_path, text):
    _check(tmp_path, text)


TOKENS = ["net", "def", "inline", "include", "input", "output", "with", "if", "then", "else",
          "for", "in", "as", "not", "and", "or", "->", "(", ")", "[", "]", "{", "}", ",", "=",
          ":", ";", "..", "+", "-", "*", "//", "%", "==", "<", "3x32x32", "1", "0", "2.5",
          '"s"', "relu", "conv", "image", "x", "n", "concat", "\n", "\r", "#c\n", "\t"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=60))
def test_token_soup_parses_or_is_diagnosed(tokens):
    text = " ".join(tokens)
    try:
        parse(text, "soup.net")
    except DiagnosticError as err:
        for d in err.diagnostics:
            assert d.span is not None and d.span.line >= 1 and d.span.col >= 1
        render(err.diagnostics)
