"""Every op in the registry has all its faces (STYLE lesson 1): adding an op touches one place,
and forgetting a face fails here rather than in a user's run."""

from __future__ import annotations

import pytest

from compiler.ops import REGISTRY, OpDef

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
    from compiler.ops import Attrs

    conv = REGISTRY["conv"].bind([8, 3], {})
    assert REGISTRY["conv"].macs(conv, [(4, 10, 10)], (8, 8, 8)) == 8 * 8 * 8 * 4 * 9
    assert REGISTRY["relu"].macs(Attrs(), [(4, 10, 10)], (4, 10, 10)) == 0
