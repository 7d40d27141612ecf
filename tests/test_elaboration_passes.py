"""The passes every elaborated net goes through: each changes what it should, leaves an
already-clean graph alone, and never changes its input (``graph -> graph``, pure)."""

from __future__ import annotations

import pytest

from netc.compiler.frontend.loader import load
from netc.compiler.ir import Graph, InputSpec, Node, verify
from netc.compiler.ops import REGISTRY, Attrs
from netc.compiler.passes.assign_survival import assign_survival
from netc.compiler.passes.flatten_mean_joins import flatten_mean_joins

SHAPE = (4, 8, 8)


def _graph(*nodes: tuple[str, str, tuple[str, ...], Attrs], outputs=None, aliases=None) -> Graph:
    g = Graph("t", inputs={"x": InputSpec("x", SHAPE)})
    g.add(Node("x", "input", (), Attrs(), SHAPE))
    for name, op, inputs, attrs in nodes:
        g.add(Node(name, op, inputs, attrs, SHAPE))
    g.outputs = list(outputs or [nodes[-1][0]])
    g.aliases = dict(aliases or {})
    return g


def _mean(*columns, droppath=None) -> Attrs:
    return REGISTRY["mean"].bind([], {"droppath": droppath}).replace(columns=tuple(columns))


RELU = Attrs()


def _nested(**inner_mean) -> Graph:
    """FractalNet's C=3 rule before flattening: mean(mean(a, b), c), plus an alias of each."""
    return _graph(("a", "relu", ("x",), RELU), ("b", "relu", ("x",), RELU),
                  ("c", "relu", ("x",), RELU),
                  ("inner", "mean", ("a", "b"), inner_mean.get("attrs", _mean(3, 2))),
                  ("outer", "mean", ("inner", "c"), _mean(2, 1)),
                  aliases={"block.inner": "inner", "block": "outer"})


def test_flatten_merges_a_mean_read_only_by_a_mean():
    g = _nested()
    flat = flatten_mean_joins(g)
    verify(flat)
    assert "inner" not in flat.nodes and flat["outer"].inputs == ("a", "b", "c")
    assert flat["outer"].attrs["columns"] == (3, 2, 1)  # each input keeps its column
    assert flat.aliases == {"block": "outer"}
    assert "inner" in g.nodes and g["outer"].inputs == ("inner", "c")  # the input is unchanged


def test_flatten_collapses_a_chain_of_nested_joins_into_the_outermost():
    g = _graph(("a", "relu", ("x",), RELU), ("b", "relu", ("x",), RELU),
               ("c", "relu", ("x",), RELU), ("d", "relu", ("x",), RELU),
               ("m1", "mean", ("a", "b"), _mean(4, 3)), ("m2", "mean", ("m1", "c"), _mean(3, 2)),
               ("m3", "mean", ("m2", "d"), _mean(2, 1)))
    flat = flatten_mean_joins(g)
    assert list(flat.nodes) == ["x", "a", "b", "c", "d", "m3"]
    assert flat["m3"].inputs == ("a", "b", "c", "d") and flat["m3"].attrs["columns"] == (4, 3, 2, 1)


@pytest.mark.parametrize("why", ["read twice", "an output", "another droppath"])
def test_flatten_keeps_a_mean_that_must_stay_visible(why):
    g = _nested(attrs=_mean(3, 2, droppath=0.3)) if why == "another droppath" else _nested()
    if why == "read twice":
        g.add(Node("tap", "relu", ("inner",), RELU, SHAPE))
        g.outputs = ["outer", "tap"]
    if why == "an output":
        g.outputs = ["outer", "inner"]
    assert flatten_mean_joins(g) is g


def test_flatten_leaves_a_flat_graph_alone():
    g = _graph(("a", "relu", ("x",), RELU), ("b", "relu", ("x",), RELU),
               ("m", "mean", ("a", "b"), _mean(2, 1)))
    assert flatten_mean_joins(g) is g
    fractal = load("fractalnet")  # elaborated, so already flattened
    assert flatten_mean_joins(fractal) is fractal


RESIDUALS = """
net blocks {
  input image: 4x8x8
  image -> residual(conv(4, 3, pad=1)) * 3 -> residual(conv(4, 3, pad=1), survival=0.9)
}
"""


@pytest.fixture
def blocks(tmp_path):
    path = tmp_path / "blocks.net"
    path.write_text(RESIDUALS)
    return load(str(path))


def _survivals(g: Graph) -> list[tuple[float, str | None]]:
    return [(n.attrs["survival"], n.attrs.get("mode")) for n in g if n.op == "residual"]


def test_survival_decays_linearly_and_an_explicit_one_is_kept(blocks):
    declared = blocks.copy(options=blocks.options.replace(stochastic_depth=0.5,
                                                          stochastic_depth_mode="row"))
    out = assign_survival(declared)
    verify(out)
    # p_l = 1 - (l / L)(1 - p_L) for l = 1..3 of L = 4; block 4 wrote its own 0.9.
    assert _survivals(out) == [(0.875, "row"), (0.75, "row"), (0.625, "row"), (0.9, "row")]
    assert _survivals(declared) == [(1.0, None)] * 3 + [(0.9, None)]  # the input is unchanged


def test_survival_leaves_a_net_without_the_declaration_alone(blocks):
    assert blocks.options.stochastic_depth is None
    assert assign_survival(blocks) is blocks
