"""Differential tests on the zoo: ONNX Runtime (CPU) on our file against the torch module in
eval mode, same weights, same input, to ``atol = 1e-5·max|ref| + 1e-6``.

Each net runs once at batch 3 and once at batch 1 through the same file (the batch axis is
dynamic). Where a net ends in softmax the logits before it are compared too (an extra output),
since softmax of small random logits is nearly uniform and would hide errors. Some nets are also
compiled with batch norm left unfolded, or with model-local functions, and must give the same
numbers. Big ImageNet nets run once each. The rest of the zoo (VGG-13/16/19 with and without
bn, ResNet-34/101/152, ...) runs at batch 1 with ``NETC_FULL_ZOO=1`` (about two CPU-minutes
more than CI's budget allows).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from netc.compiler.frontend.loader import load, zoo_index
from netc.compiler.lower_onnx.model import lower
from netc.compiler.lower_torch.module import build_module
from netc.compiler.numerics.seeded_weights import init_weights
from tests.test_onnx_ops import run_ort

NETS = ["lenet5", "alexnet", "vgg11", "googlenet", "resnet18", "resnet50",
        "cifar_resnet110_sd", "fractalnet", "alexnet_tv", "allcnn_c", "cifar_resnet20"]
UNFOLDED = {"resnet18", "cifar_resnet110_sd", "fractalnet"}  # also compiled with --no-fold-bn
FUNCTIONS = {"googlenet", "cifar_resnet110_sd", "fractalnet"}  # also compiled with --functions


def sane_weights(graph, seed=0):
    """Seeded weights with batch-norm statistics a trained net could have.

    Fresh statistics (mean 0, variance 1) make deep nets blow up in eval mode (ResNet-110
    logits reach ~8e9, shared/reference/MEASURED.md); random moderate ones keep activations in
    range, and a small scale on the bn that ends each residual body keeps 50+ blocks stable.
    """
    weights = init_weights(graph, seed)
    rng = np.random.default_rng(seed + 1)
    users = graph.consumers()
    for node in graph:
        if node.op != "bn":
            continue
        c = node.shape[0]
        ends_body = any(graph[u].op == "residual" for u in users[node.name])
        lo, hi = (0.1, 0.3) if ends_body else (0.5, 1.0)
        weights[f"{node.name}.weight"] = rng.uniform(lo, hi, c).astype(np.float32)
        weights[f"{node.name}.bias"] = rng.normal(0, 0.1, c).astype(np.float32)
        weights[f"{node.name}.running_mean"] = rng.normal(0, 0.1, c).astype(np.float32)
        weights[f"{node.name}.running_var"] = rng.uniform(0.5, 1.5, c).astype(np.float32)
    return weights


def logits(graph) -> list[str]:
    """The input of a final softmax, as an extra output; none if the net ends otherwise."""
    last = graph[graph.outputs[0]]
    return [last.inputs[0]] if last.op in ("softmax", "log_softmax") else []


def assert_close(out, ref, what):
    err, top = float(np.abs(out - ref).max()), float(np.abs(ref).max())
    assert err <= 1e-5 * top + 1e-6, f"{what}: max diff {err:.3g} with max|ref| {top:.3g}"


@pytest.mark.parametrize("net", NETS)
def test_onnx_runtime_agrees_with_torch(net):
    if net not in zoo_index():
        pytest.skip(f"{net} is not in the zoo yet")
    torch.manual_seed(0)
    graph = load(net)
    weights = sane_weights(graph)
    names = [*graph.outputs, *logits(graph)]
    shape = next(iter(graph.inputs.values())).shape
    x = np.random.default_rng(2).standard_normal((3, *shape)).astype(np.float32)
    module = build_module(graph, weights).eval()
    with torch.no_grad():
        taps = module(torch.from_numpy(x), taps=names)
    refs = [taps[n].numpy() for n in names]
    assert np.isfinite(refs[-1]).all() and np.abs(refs[-1]).max() > 0

    variants = {"flat": {}}
    if net in UNFOLDED:
        variants["bn unfolded"] = {"fold_bn": False}
    if net in FUNCTIONS:
        variants["functions"] = {"functions": True}
    for label, options in variants.items():
        model = lower(graph, weights, outputs=names[1:], **options)
        for batch in ((3, 1) if label == "flat" else (3,)):
            outs = run_ort(model, x[:batch])
            for name, out, ref in zip(names, outs, refs):
                assert out.shape == ref[:batch].shape
                assert_close(out, ref[:batch], f"{net} {label} batch {batch} {name}")


# One skipped row in a normal run, one row per net with NETC_FULL_ZOO=1.
REST = (sorted(set(zoo_index()) - set(NETS)) if os.environ.get("NETC_FULL_ZOO") else
        [pytest.param("rest", marks=pytest.mark.skip(reason="set NETC_FULL_ZOO=1 to run"))])


@pytest.mark.parametrize("net", REST)
def test_the_rest_of_the_zoo_at_batch_1(net):
    graph = load(net)
    weights = sane_weights(graph)
    names = [*graph.outputs, *logits(graph)]
    x = np.random.default_rng(2).standard_normal((1, *next(iter(graph.inputs.values())).shape))
    x = x.astype(np.float32)
    with torch.no_grad():
        taps = build_module(graph, weights).eval()(torch.from_numpy(x), taps=names)
    outs = run_ort(lower(graph, weights, outputs=names[1:]), x)
    for name, out in zip(names, outs):
        assert_close(out, taps[name].numpy(), f"{net} {name}")


# -- nothing left for a simplifier -------------------------------------------------------------
# tests/test_zoo_seeded.py runs onnxslim on one net of each family; these are the nets where
# consumers' simplifiers found work: inception_v3 (nested Concats, 219 -> 215 nodes),
# eigenfaces (unfitted PCA's Sub of a zero mean), unet (crops and fit=crop concats). Every zoo
# net with NETC_FULL_ZOO=1.
SIMPLIFIED = (sorted(zoo_index()) if os.environ.get("NETC_FULL_ZOO") else
              ["inception_v3", "eigenfaces", "unet"])


@pytest.mark.parametrize("net", SIMPLIFIED)
def test_a_simplifier_finds_no_node_to_remove(net):
    onnxslim = pytest.importorskip("onnxslim")
    model = lower(load(net))
    slim = onnxslim.slim(model)
    assert len(slim.graph.node) == len(model.graph.node), (
        f"onnxslim: {len(model.graph.node)} -> {len(slim.graph.node)} nodes; gone: "
        f"{sorted({n.name for n in model.graph.node} - {n.name for n in slim.graph.node})[:8]}")


def test_inception_v3_writes_each_modules_concat_once():
    """Mixed_7b/7c's concat[concat[a, b], concat[c, d], e, f] is one six-input Concat."""
    model = lower(load("inception_v3"))
    made_by = {o: n for n in model.graph.node for o in n.output}
    for node in model.graph.node:
        if node.op_type == "Concat":
            assert all(made_by.get(i) is None or made_by[i].op_type != "Concat"
                       for i in node.input), node.name
    widths = sorted(len(n.input) for n in model.graph.node if n.op_type == "Concat")
    assert widths.count(6) == 2  # Mixed_7b and Mixed_7c
