"""``Graph.options``: a typed, frozen record of what a net declares, checked by ``verify``."""

from __future__ import annotations

import dataclasses

import pytest

from netc.compiler.frontend.loader import load
from netc.compiler.ir import IRError, NetOptions, verify
from netc.compiler.passes import deepest_column

DECLARED = """
net declared {
  input image: 3x8x8
  with droppath(local=0.1, global=0.25)
  with stochastic_depth(0.5, mode=row)
  x = image -> conv(4, 3, pad=1) -> relu
  training output aux = x -> gap -> flatten -> fc(10), weight=0.4
  output logits = x -> residual(conv(4, 3, pad=1)) -> gap -> flatten -> fc(10)
}
"""


@pytest.fixture
def declared(tmp_path):
    path = tmp_path / "declared.net"
    path.write_text(DECLARED)
    return load(str(path))


def test_every_declaration_is_a_named_field(declared):
    o = declared.options
    assert isinstance(o, NetOptions)
    assert o.output_names == ("logits",)
    assert o.training_outputs == {"aux": declared.resolve("aux")}
    assert o.training_output_weights == {"aux": 0.4}
    assert (o.droppath_local, o.droppath_global) == (0.1, 0.25)
    assert (o.stochastic_depth, o.stochastic_depth_mode) == (0.5, "row")
    verify(declared)


def test_a_net_that_declares_nothing_has_the_defaults(tmp_path):
    path = tmp_path / "plain.net"
    path.write_text("net plain {\n  input image: 3x8x8\n  image -> conv(4, 3) -> relu\n}\n")
    o = load(str(path)).options
    assert o.replace(output_names=()) == NetOptions()
    assert o.droppath_local is None and o.stochastic_depth is None
    assert o.stochastic_depth_mode == "batch" and o.training_outputs == {}


def test_options_are_frozen_and_changed_by_copy(declared):
    with pytest.raises(dataclasses.FrozenInstanceError):
        declared.options.droppath_local = 0.5
    changed = declared.options.replace(droppath_local=0.5)
    assert changed.droppath_local == 0.5 and declared.options.droppath_local == 0.1
    assert declared.copy().options is declared.options  # shared safely: nothing can change it
    plain = deepest_column(declared)
    assert plain.options.droppath_global is None and plain.options.stochastic_depth == 0.5


@pytest.mark.parametrize("change,problem", [
    (dict(output_names=("a", "b")), "2 output names for 1 outputs"),
    (dict(training_outputs={"aux": "nowhere"}), "training output 'aux' names no node"),
    (dict(training_output_weights={}), "weights do not name the training outputs"),
    (dict(droppath_local=1.5), "droppath_local is 1.5, not a probability"),
    (dict(stochastic_depth=-0.1), "stochastic_depth is -0.1, not a probability"),
    (dict(stochastic_depth_mode="sample"), "stochastic_depth_mode is 'sample'"),
])
def test_verify_finds_options_that_disagree_with_the_graph(declared, change, problem):
    broken = declared.copy(options=declared.options.replace(**change))
    with pytest.raises(IRError, match=problem):
        verify(broken)
