"""The PyTorch lowering: shapes, parameter counts, names, taps, torch.compile, channels_last."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from netc.compiler.frontend.loader import load
from netc.compiler.lower_torch.module import build_module
from netc.compiler.analyses.summary import summarize
from netc.compiler.numerics.seeded_weights import init_weights
from netc.dsl.diagnostics import UserError

SPECS = Path(__file__).parent / "specs" / "torch_nets.net"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def spec(net: str) -> str:
    return f"{SPECS}:{net}"


@pytest.fixture(scope="module")
def resnet():
    return load(spec("cifar_resnet"))


@pytest.fixture(scope="module")
def fractal():
    return load("fractalnet")


def all_shapes(graph, module, batch=2):
    x = torch.randn(batch, *graph.inputs["image"].shape)
    with torch.no_grad():
        return module.eval()(x, taps=[n.name for n in graph])


@pytest.mark.parametrize("which", ["resnet", "fractal"])
def test_every_node_has_the_ir_shape_and_counts_match_the_summary(which, request):
    graph = request.getfixturevalue(which)
    module = build_module(graph, seed=1)
    feats = all_shapes(graph, module)
    assert set(feats) == set(graph.nodes)
    for node in graph:
        assert tuple(feats[node.name].shape) == (2, *node.shape), node.name
    n_params = sum(p.numel() for p in module.parameters())
    assert n_params == summarize(graph).params
    if which == "fractal":
        assert n_params == 76_128_714


def test_state_dict_keys_are_ir_names_and_hold_the_seeded_weights(resnet):
    module = build_module(resnet, seed=3)
    state = module.state_dict()
    weights = init_weights(resnet, seed=3)
    assert {k for k in state if not k.endswith("num_batches_tracked")} == set(weights)
    assert "stage2.cifar_basic1.conv1.weight" in state
    for key, arr in weights.items():
        np.testing.assert_array_equal(state[key].numpy(), arr)
    # Stateless ops are outside the module tree: only conv, bn and fc are submodules.
    leaves = {type(m).__name__ for _, m in module.named_modules() if not list(m.children())}
    assert leaves == {"Conv2d", "BatchNorm2d", "Linear"}


def test_same_seed_same_network_other_seed_other_network(resnet):
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        a = build_module(resnet, seed=0).eval()(x, taps=["conv1"])["conv1"]
        b = build_module(resnet, seed=0).eval()(x, taps=["conv1"])["conv1"]
        c = build_module(resnet, seed=1).eval()(x, taps=["conv1"])["conv1"]
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_taps_compute_only_the_backward_slice(resnet):
    module = build_module(resnet).eval()
    called = []
    for name in ("stage2.cifar_basic1.conv1", "stage3.cifar_basic1.conv1", "fc"):
        module.node_module(name).register_forward_hook(
            lambda mod, i, o, name=name: called.append(name))
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        feats = module(x, taps=["stage2.cifar_basic1.conv1", "relu1"])
    assert set(feats) == {"stage2.cifar_basic1.conv1", "relu1"}
    assert tuple(feats["stage2.cifar_basic1.conv1"].shape) == (1, 32, 16, 16)
    assert called == ["stage2.cifar_basic1.conv1"]  # stage 3 and the classifier never ran
    steps = module.plan(("stage2.cifar_basic1.conv1",))
    assert steps[-1].name == "stage2.cifar_basic1.conv1"
    assert not any(s.op in ("fc", "gap") for s in steps)
    assert len(steps) == 1 + 3 + 2 * 7 + 1  # input, stem, two blocks of stage 1, the conv


def test_taps_resolve_scope_aliases_and_suffixes(resnet):
    module = build_module(resnet).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        feats = module(x, taps=["stage2", "stage2.cifar_basic1.shortcut", "fc"])
        out = module(x)
    assert torch.equal(feats["fc"], out)
    assert tuple(feats["stage2"].shape) == (1, 32, 16, 16)
    # Option A: every other pixel, then zero channels after the 16 real ones.
    short = feats["stage2.cifar_basic1.shortcut"]
    stage1 = module(x, taps=["stage1"])["stage1"]
    assert torch.equal(short[:, :16], stage1[:, :, ::2, ::2])
    assert torch.count_nonzero(short[:, 16:]) == 0


def test_an_unknown_tap_is_a_user_error(resnet):
    module = build_module(resnet)
    with pytest.raises(UserError, match="no layer named 'conv9'"):
        module(torch.randn(1, 3, 32, 32), taps=["conv9"])
    with pytest.raises(UserError, match="it could be"):
        module(torch.randn(1, 3, 32, 32), taps=["conv2"])


def test_several_outputs_come_back_as_a_tuple(tmp_path):
    path = tmp_path / "two.net"
    path.write_text("net two {\n  input image: 3x8x8\n  a = image -> conv(4, 3, pad=1)\n"
                    "  output feat = a -> relu\n"
                    "  output logits = a -> gap -> flatten -> fc(5)\n}\n")
    graph = load(str(path))
    out = build_module(graph).eval()(torch.randn(2, 3, 8, 8))
    assert isinstance(out, tuple) and [tuple(o.shape) for o in out] == [(2, 4, 8, 8), (2, 5)]


def test_train_and_eval_reach_the_stateless_dropout():
    graph = load(spec("tiny"))
    module = build_module(graph)
    drop = module.node_module("dropout1")
    assert drop is not None and drop.training
    module.eval()
    assert not drop.training
    x = torch.randn(4, 1, 8, 8)
    assert torch.equal(module(x), module(x))  # eval: deterministic


def test_named_tensors_round_trip_and_a_wrong_shape(resnet):
    a = build_module(resnet, seed=5)
    b = build_module(resnet, seed=6)
    b.load_named(a.state_dict())
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k])
    bad = {k: v for k, v in a.state_dict().items()}
    bad["fc.weight"] = torch.zeros(3, 64)
    with pytest.raises(UserError, match=r"fc.weight has shape 3x64; cifar_resnet expects 10x64"):
        b.load_named(bad)


def test_channels_last_gives_the_same_numbers(resnet):
    module = build_module(resnet).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref = module(x, taps=["stage3", "fc"])
        module = module.to(memory_format=torch.channels_last)
        got = module(x.to(memory_format=torch.channels_last), taps=["stage3", "fc"])
    assert got["stage3"].is_contiguous(memory_format=torch.channels_last)
    for k in ref:
        torch.testing.assert_close(got[k], ref[k], rtol=1e-4, atol=1e-5)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # inside inductor
def test_torch_compile_traces_one_graph_and_agrees_with_eager():
    graph = load(spec("tiny"))
    module = build_module(graph).eval()
    compiled = torch.compile(module, fullgraph=True)  # fullgraph: no graph breaks allowed
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), module(x), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(compiled(x, taps=["mix"])["mix"],
                                   module(x, taps=["mix"])["mix"], rtol=1e-5, atol=1e-6)


RANDOM_JOINS = """
def fractal(C) = if C == 1 then conv(2, 3, pad=1) -> bn -> relu
                 else mean[fractal(C - 1) -> fractal(C - 1), fractal(1)]
net random_joins {
  input image: 2x6x6
  with droppath(local=0.15, global=0.5)
  with stochastic_depth(p_L=0.5)
  image -> fractal(2) -> residual(conv(2, 3, pad=1) -> bn) -> residual(conv(2, 3, pad=1))
        -> gap -> flatten -> fc(3)
}
"""


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # inside inductor
def test_torch_compile_traces_a_training_step_with_drop_path_and_stochastic_depth(tmp_path):
    # Drop-path and stochastic depth draw with tensors only, so a training step is one graph.
    path = tmp_path / "random_joins.net"
    path.write_text(RANDOM_JOINS)
    graph = load(str(path))
    assert {n.op for n in graph} >= {"mean", "residual"}
    # Under compile the gates stay tensors (every body computed, torch_gates.py): new draws
    # each step, and still one graph, no recompilation.
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    module = build_module(graph).train()
    compiled = torch.compile(module, fullgraph=True, backend="aot_eager")
    graphs = []
    for step in range(5):
        module.seed_gates(0, step)
        out = compiled(torch.randn(2, 2, 6, 6))
        out.sum().backward()
        graphs.append(counters["stats"]["unique_graphs"])
    assert all(p.grad is not None for p in module.parameters())
    # The second call recompiles once (the first filled the module's plan cache); new gates
    # in later steps compile nothing.
    assert graphs[1] <= 2 and graphs[-1] == graphs[1], graphs


def test_calibrated_batch_norm_keeps_a_deep_resnet_finite_in_eval_mode():
    """MEASURED.md: fresh deep CIFAR ResNets blow up in eval mode; calibration fixes that.
    (netc's own seeded weights start each residual body's last bn at γ = 0, which keeps them
    sane; here every γ is 1, as in weights from elsewhere.)"""
    from netc.compiler.numerics.seeded_weights import init_weights

    graph = load(spec("cifar_resnet"), {"n": 18})  # ResNet-110 with stochastic depth
    weights = {k: (np.ones_like(v) if k.endswith("bn2.weight") else v)
               for k, v in init_weights(graph, seed=0).items()}
    module = build_module(graph, weights).eval()
    x = torch.randn(8, 3, 32, 32)
    with torch.no_grad():
        fresh = module(x).abs().max().item()
    module.calibrate_batchnorm(x, passes=2)
    assert not module.training
    with torch.no_grad():
        calibrated = module(x).abs().max().item()
        assert torch.equal(module(x), module(x))  # still eval mode everywhere
    assert fresh > 1e4 and calibrated < 100
    bn = module.get_submodule("stage3.cifar_basic18.bn2")
    assert bn.momentum == 0.1 and not torch.all(bn.running_var == 1)


def test_a_label_that_clashes_with_nn_module_is_a_user_error(tmp_path):
    path = tmp_path / "clash.net"
    path.write_text("net clash {\n  input image: 3x8x8\n"
                    "  image -> conv(4, 3) as forward -> gap -> flatten\n}\n")
    with pytest.raises(UserError, match="'forward' is already taken"):
        build_module(load(str(path)))
