"""The registry is the one place that knows an op (STYLE lesson 1, DESIGN "One registry").

Every op has all its faces, documents itself, declares the domain of each numeric parameter and
its seeded-statistics rule, and has a row in the per-op table (tests/test_onnx_ops.py); its
declared categories are checked against what it does. Forgetting any of it fails here rather
than in a user's run. And no code outside ``compiler/ops/`` lists op names: a category other
code needs is a declaration of the op.
"""

from __future__ import annotations

import ast
import doctest
import importlib
from pathlib import Path

import numpy as np
import pytest
import torch

from netc.compiler.ops import REGISTRY, ArgError, Attrs, OpDef, join_heads, keep_moments
from tests.test_onnx_ops import OPS, make_net

ROOT = Path(__file__).resolve().parents[1]
FACES = ("infer_shape", "to_torch", "to_onnx", "seeded_moments")
FAMILIES = {"conv", "fc", "pool", "norm", "dropout", "join", "activation", "other"}


def declares(op: OpDef, face: str) -> bool:
    return getattr(type(op), face) is not getattr(OpDef, face)


@pytest.mark.parametrize("name", sorted(REGISTRY))
@pytest.mark.parametrize("face", FACES)
def test_op_has_face(name, face):
    """``seeded_moments`` too: an op that forgot its seeded-statistics rule would leave every
    batch norm after it with the wrong statistics, silently (``keep_moments`` is a choice)."""
    assert declares(REGISTRY[name], face), f"op {name!r} lacks {face}"


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_op_is_documented(name):
    op = REGISTRY[name]
    assert op.doc or type(op).__doc__, f"op {name!r} has no doc"
    assert op.signature().startswith(name)


def test_every_op_has_a_row_in_the_per_op_table():
    """Each row's nets must contain their op (tests/test_onnx_ops.py checks that)."""
    assert sorted(set(REGISTRY) - set(OPS)) == []
    assert sorted(set(OPS) - set(REGISTRY)) == []


def test_weight_layers_count_macs_and_others_do_not():
    conv = REGISTRY["conv"].bind([8, 3], {})
    assert REGISTRY["conv"].macs(conv, [(4, 10, 10)], (8, 8, 8)) == 8 * 8 * 8 * 4 * 9
    assert REGISTRY["relu"].macs(Attrs(), [(4, 10, 10)], (4, 10, 10)) == 0


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_numeric_parameter_declares_its_domain(name):
    """A new op's parameter says which numbers it takes (netc.compiler.ops.domains), so a spec's
    out-of-range value is a located error, not a crash in a lowering."""
    missing = [p.name for p in REGISTRY[name].params
               if p.kind.domain is not None and p.domain is None]
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


@pytest.mark.parametrize("module", ["base", "params", "formulas", "domains"])
def test_the_registry_modules_examples_run(module):
    result = doctest.testmod(importlib.import_module(f"netc.compiler.ops.{module}"))
    assert result.attempted and not result.failed


# -- declared categories against what the ops do ----------------------------------------------

def test_every_op_with_several_inputs_is_written_as_a_join():
    """The spec gives an op several inputs only as ``name[a, b]``; residual is the one the
    elaborator makes itself, from ``residual(body, shortcut=...)``."""
    several = {n for n, op in REGISTRY.items() if op.max_inputs != 1} - {"residual"}
    assert set(join_heads()) == several
    assert join_heads()[:5] == ("concat", "add", "mean", "mul", "max")  # the error lists them


@pytest.mark.parametrize("name", [n for n, op in REGISTRY.items() if op.vanishes_at_eval])
def test_an_op_that_vanishes_at_eval_writes_no_onnx_node(tmp_path, name):
    from netc.compiler.lower_onnx.model import lower

    graph = make_net(tmp_path, "3x4x4", f"relu -> {name} -> tanh")
    assert [n.op_type for n in lower(graph).graph.node] == ["Relu", "Tanh"]


@pytest.mark.parametrize("name", [n for n, op in REGISTRY.items() if op.probability_output])
def test_a_probability_output_is_a_distribution_or_its_log(name):
    x = torch.randn(3, 10)
    y = REGISTRY[name].to_torch(REGISTRY[name].bind([], {}), [(10,)], (10,))(x).double()
    total = y.sum(1) if (y >= 0).all() else y.exp().sum(1)
    assert torch.allclose(total, torch.ones(3, dtype=torch.float64), atol=1e-6)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_the_family_is_one_the_pictures_know(name):
    assert REGISTRY[name].family in FAMILIES


@pytest.mark.parametrize("name", [n for n, op in REGISTRY.items() if declares(op, "numpy")])
def test_the_numpy_form_is_the_torch_module(name):
    """The numpy form gives the seeded statistics of activations: it must be the function."""
    op = REGISTRY[name]
    a = op.bind([], {})
    x = np.linspace(-12.0, 12.0, 97)
    want = op.to_torch(a, [(97,)], (97,))(torch.from_numpy(x)[None]).numpy()[0]
    np.testing.assert_allclose(op.numpy(a, x), want, rtol=1e-6, atol=1e-7)


def test_an_activation_gives_its_numpy_form_or_keeps_its_inputs_moments():
    lacking = [n for n, op in REGISTRY.items() if op.family == "activation"
               and not declares(op, "numpy") and type(op).seeded_moments is not keep_moments]
    assert lacking == []


# -- no op-name tables outside the registry ---------------------------------------------------

SCANNED = ("dsl", "compiler", "runtime", "netc")  # every folder but compiler/ops/: no exceptions


def op_tables(source: str, kinds: set[str], ops: set[str]) -> list[tuple[int, tuple]]:
    """The op-name tables of ``source``: (line, literals) of every tuple, list, set or dict
    whose string literals (at least two of them op names) are all node kinds of the IR.

    The rule tells a table from a coincidence by what the collection holds: a list of ops holds
    only ops (and maybe ``input``, the other node kind, as a colour table did), while a Caffe
    field list such as ``("power", "scale", "shift")`` or the input options ``("mean", "std",
    "scale", "layout")`` shares a word or two with the op names among words of their own.
    ``x in ("conv", "fc")`` is a tuple too, so membership tests are caught with the rest.
    """
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            items = node.elts
        elif isinstance(node, ast.Dict):
            items = [k for k in node.keys if k is not None]
        else:
            continue
        words = [i.value for i in items if isinstance(i, ast.Constant) and isinstance(i.value, str)]
        if sum(w in ops for w in words) >= 2 and all(w in kinds for w in words):
            found.append((node.lineno, tuple(words)))
    return sorted(found)


def test_the_table_finder_tells_a_table_from_a_coincidence():
    ops = {"conv", "fc", "mean", "scale", "power"}
    kinds = ops | {"input"}
    source = ('FOLD = ("conv", "fc")\nif op in ["conv", "fc"]: pass\n'
              'COLOURS = {"conv": 1, "input": 2, "fc": 3}\n'
              'FIELDS = {"power", "scale", "shift"}\nOPTIONS = ("mean", "std", "scale")\n'
              'ONE = ("conv",)\n')
    assert [line for line, _ in op_tables(source, kinds, ops)] == [1, 2, 3]


def test_no_op_name_tables_outside_the_registry():
    ops = set(REGISTRY)
    kinds = ops | {"input"}
    found = []
    for folder in SCANNED:
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel.startswith("compiler/ops/"):
                continue
            found += [f"{rel}:{line}: {words}"
                      for line, words in op_tables(path.read_text(), kinds, ops)]
    assert found == [], "declare a category on the ops instead:\n" + "\n".join(found)
