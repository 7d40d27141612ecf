"""``netc compile --opset N``: the tape writes each node in the target opset's own form.

Unit cases drive :meth:`netc.compiler.lower_onnx.tape.Tape.op` with ops whose ONNX form changed between
opsets 13 and 18 (ReduceMean's ``axes`` became an input in 18, ReduceSum's in 13, Split's
``split``, Pad's ``pads``, Clip's bounds) and check onnx.checker and ONNX Runtime at both ends.
Zoo nets are compiled at opsets 13 and 18: both files pass the full checker and ONNX Runtime
gives the same numbers on the same weights (to ``1e-5·max|ref| + 1e-6``). The default run covers
one net of each family; ``NETC_FULL_ZOO=1`` runs every zoo net. Every op's own nodes are run at
every opset from 13 to 18 by the per-op table (tests/test_onnx_ops.py), and the README's decoder
tour (upsample, crop, concat with fit=crop) is compiled by the command line at each.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from netc.compiler.frontend.loader import load, zoo_index
from netc.compiler.lower_onnx.model import lower
from netc.compiler.lower_onnx.tape import MIN_OPSET, OPSET, LoweringError, Tape
from netc.compiler.lower_torch.module import build_module
from netc.compiler.numerics.seeded_weights import init_weights
from netc.dsl.diagnostics import UserError
from tests.test_onnx_ops import run_ort
from tests.test_onnx_zoo import assert_close, logits, sane_weights

X = np.random.default_rng(0).standard_normal((2, 4, 6, 6)).astype(np.float32)


def one_node(opset: int, op_type: str, shape, n_out: int = 1, **attrs) -> onnx.ModelProto:
    tape = Tape(opset=opset)
    outs = [f"y{i}" for i in range(n_out)]
    tape.node(op_type, ["x"], outs, name="n", **attrs)
    return tape.finish("t", {"x": (4, 6, 6)}, {o: s for o, s in zip(outs, shape)})


CASES = {  # op, per-sample output shapes, attribute-form attributes, numpy reference
    "ReduceMean": ([(4, 1, 1)], {"axes": [2, 3], "keepdims": 1},
                   lambda x: [x.mean(axis=(2, 3), keepdims=True)]),
    "ReduceSum": ([(6, 6)], {"axes": [1], "keepdims": 0}, lambda x: [x.sum(axis=1)]),
    "Split": ([(1, 6, 6), (3, 6, 6)], {"axis": 1, "split": [1, 3]},
              lambda x: [x[:, :1], x[:, 1:]]),
    "Pad": ([(4, 8, 10)], {"pads": [0, 0, 1, 2, 0, 0, 1, 2]},
            lambda x: [np.pad(x, [(0, 0), (0, 0), (1, 1), (2, 2)])]),
    "Clip": ([(4, 6, 6)], {"min": -0.5, "max": 0.5}, lambda x: [np.clip(x, -0.5, 0.5)]),
}


@pytest.mark.parametrize("op", sorted(CASES))
@pytest.mark.parametrize("opset", [13, 18])
def test_attribute_form_becomes_the_target_opsets_form(op, opset):
    shapes, attrs, ref = CASES[op]
    model = one_node(opset, op, shapes, len(shapes), **attrs)
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == opset
    node = model.graph.node[-1]
    schema = onnx.defs.get_schema(op, opset, "")
    # Every value is where this opset's schema wants it: attributes it knows, inputs otherwise.
    assert {a.name for a in node.attribute} <= set(schema.attributes)
    for out, want in zip(run_ort(model, X), ref(X)):
        np.testing.assert_allclose(out, want, rtol=1e-6, atol=1e-6)


def test_reduce_mean_axes_move_between_13_and_18():
    old, new = (one_node(v, "ReduceMean", [(4, 1, 1)], axes=[2, 3]).graph.node[-1]
                for v in (13, 18))
    assert [a.name for a in old.attribute] == ["axes"] and list(old.input) == ["x"]
    assert [a.name for a in new.attribute] == [] and list(new.input) == ["x", "n.axes"]


def test_an_op_the_opset_lacks_is_named():
    tape = Tape(opset=13)
    assert not tape.has("LayerNormalization") and Tape(opset=17).has("LayerNormalization")
    with pytest.raises(LoweringError, match="opset 13 has no GroupNormalization .it appears in "
                                            "opset 18"):
        tape.op("GroupNormalization", ["x", "s", "b"], name="gn", num_groups=2)
    with pytest.raises(LoweringError, match="Resize in opset 13 has no attribute or input 'axes'"):
        tape.op("Resize", ["x"], name="r", axes=[2, 3])


def test_opset_out_of_range_is_a_user_error(cli):
    with pytest.raises(UserError, match="opsets 13 to 18; got 19"):
        lower(load("lenet5"), opset=19)
    result = cli("compile", "lenet5", "-o", "/dev/null", "--opset", "12")
    assert result.code == 1 and "opsets 13 to 18; got 12" in result.err


def test_old_opsets_get_the_oldest_ir_version_that_holds_them():
    graph = load("lenet5")
    assert lower(graph, opset=13).ir_version == 7
    assert lower(graph, opset=18).ir_version == 8
    assert lower(load("googlenet"), opset=13, functions=True).ir_version == 8  # functions: IR 8


# One net of each family by default; every zoo net with NETC_FULL_ZOO=1.
FAMILIES = ["lenet5", "googlenet", "cifar_resnet110_sd", "fractalnet", "allcnn_c",
            "resnet18"]
# Small nets on the newer ops (HardSwish is opset 14: the op writes its older form below it).
FAMILIES += [n for n in ("mobilenet_v3_small", "shufflenet_v2_x1_0", "efficientnet_b0")
             if n in zoo_index()]
ZOO = sorted(zoo_index()) if os.environ.get("NETC_FULL_ZOO") else FAMILIES
SMALLER = {"fractalnet": {"C": 2}}  # the same joins with 6 convs instead of 40 (76 M weights)


@pytest.mark.parametrize("net", ZOO)
def test_zoo_net_at_opset_13_and_18_agrees(net):
    graph = load(net, SMALLER.get(net) if not os.environ.get("NETC_FULL_ZOO") else None)
    weights = sane_weights(graph)
    names = [*graph.outputs, *logits(graph)]
    x = np.random.default_rng(3).standard_normal((2, *next(iter(graph.inputs.values())).shape))
    outs = {}
    variants = [(13, False), (18, False)] + ([(13, True)] if net in ("googlenet",) else [])
    for opset, functions in variants:
        model = lower(graph, weights, outputs=names[1:], opset=opset, functions=functions)
        assert model.opset_import[0].version == opset
        onnx.checker.check_model(model, full_check=True)
        outs[opset, functions] = run_ort(model, x.astype(np.float32))
    ref = outs[18, False]
    for key, got in outs.items():
        for name, out, want in zip(names, got, ref):
            assert_close(out, want, f"{net} opset {key[0]} {name}")


def readme_decoder(tmp_path) -> str:
    """The README's decoder tour (upsample, crop, concat(fit=crop), se, shuffle) as a file."""
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = next(b for b in text.split("```")[1::2] if "net tour_decoder" in b)
    path = tmp_path / "tour.net"
    path.write_text(block)
    return f"{path}:tour_decoder"


@pytest.mark.parametrize("opset", range(MIN_OPSET, OPSET + 1))
def test_the_readme_decoder_compiles_and_runs_at_every_opset(cli, tmp_path, opset):
    """`netc compile tour.net:tour_decoder --opset 13` ended in a LoweringError (Resize's axes
    exist from opset 18 only); every opset now compiles, and ORT agrees with torch."""
    spec, out = readme_decoder(tmp_path), tmp_path / "d.onnx"
    result = cli("compile", spec, "-o", out, "--opset", opset)
    assert result.code == 0, result.err
    model = onnx.load(str(out))
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == opset
    assert not model.graph.value_info  # a symbolic batch there stopped tract
    graph = load(spec)
    x = np.random.default_rng(4).standard_normal((2, 3, 64, 64)).astype(np.float32)
    with torch.no_grad():
        ref = build_module(graph, init_weights(graph)).eval()(torch.from_numpy(x)).numpy()
    assert_close(run_ort(model, x)[0], ref, f"tour_decoder at opset {opset}")
