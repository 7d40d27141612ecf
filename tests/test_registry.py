"""Every op in the registry has all its faces (STYLE lesson 1): adding an op touches one place,
and forgetting a face fails here rather than in a user's run."""

from __future__ import annotations

import pytest

from netc.compiler.ops import REGISTRY, OpDef

FACES = ("infer_shape", "to_torch", "to_onnx")


@pytest.mark.parametrize("name", sorted(REGISTRY))
@pytest.mark.parametrize("face", FACES)
def test_op_has_face(name, face):
    op = REGISTRY[name]
    assert getattr(type(op), face) is not getattr(OpDef, face), f"op {name!r} lacks {face}"


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_op_is_documented(name):
    op = REGISTRY[name]
    assert op.doc or type(op).__doc__, f"op {name!r} has no doc"
    assert op.signature().startswith(name)


def test_weight_layers_count_macs_and_others_do_not():
    from netc.compiler.ops import Attrs

    conv = REGISTRY["conv"].bind([8, 3], {})
    assert REGISTRY["conv"].macs(conv, [(4, 10, 10)], (8, 8, 8)) == 8 * 8 * 8 * 4 * 9
    assert REGISTRY["relu"].macs(Attrs(), [(4, 10, 10)], (4, 10, 10)) == 0


NUMERIC_KINDS = ("int", "float", "pair", "floats")


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_numeric_parameter_declares_its_domain(name):
    """A new op's parameter says which numbers it takes (netc.compiler.ops.domains), so a spec's
    out-of-range value is a located error, not a crash in a lowering."""
    missing = [p.name for p in REGISTRY[name].params
               if p.kind in NUMERIC_KINDS and p.domain is None]
    assert not missing, f"op {name!r}: parameters without a domain: {missing}"


@pytest.mark.parametrize("op, args, kwargs, param", [
    ("adaptive_avgpool", [0], {}, "size"),
    ("adaptive_avgpool", [[7, -1]], {}, "size"),
    ("bn", [], {"eps": -1}, "eps"),
    ("lrn", [0], {}, "size"),
    ("leaky_relu", [float("inf")], {}, "slope"),
    ("leaky_relu", [10**400], {}, "slope"),
    ("mean", [], {"droppath": 2}, "droppath"),
    ("dropout", [1], {}, "p"),
    ("conv", [10**12, 3], {}, "out"),
    ("conv", [8, 3], {"pad": -1}, "pad"),
    ("fc", [0], {}, "out"),
])
def test_values_outside_a_domain_are_refused_naming_the_parameter(op, args, kwargs, param):
    from netc.compiler.ops import ArgError

    with pytest.raises(ArgError) as err:
        REGISTRY[op].bind(args, kwargs)
    assert err.value.param == param
    assert f"parameter {param!r} must be" in str(err.value)


def test_domains_accept_their_edges():
    from netc.compiler.ops.domains import DROP_PROBABILITY, MAX_SIZE, POSITIVE, SURVIVAL, between

    assert POSITIVE.contains(1) and POSITIVE.contains(MAX_SIZE)
    assert not POSITIVE.contains(MAX_SIZE + 1)
    assert DROP_PROBABILITY.contains(0.0) and not DROP_PROBABILITY.contains(1.0)
    assert SURVIVAL.contains(1.0) and not SURVIVAL.contains(0.0)
    assert not between(0, None).contains(float("nan"))
    assert between(0, 1, hi_open=True).text == "in [0, 1)"
