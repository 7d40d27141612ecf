"""Drop-path (FractalNet), stochastic depth (Huang et al.) and the deepest-column pass.

Statistical checks draw many mini-batches and accept the observed rate when it lies within
five standard errors of the declared one (a false failure has odds below one in a million).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from netc.compiler.ir import verify
from netc.compiler.frontend.loader import load
from netc.compiler.lower_torch.module import build_module
from netc.compiler.passes import deepest_column
from netc.compiler.analyses.summary import summarize
from netc.compiler.lower_torch.joins import MeanJoin, ResidualJoin


pytestmark = pytest.mark.usefixtures("one_torch_thread")

# A small fractal net: 2 blocks of C=3 columns, 4 channels, the paper's drop-path declaration.
FRACTAL = """
inline def unit(ch) = conv(ch, 3, pad=1) -> bn -> relu
def fractal(ch, C) =
  if C == 1 then unit(ch)
  else mean[ fractal(ch, C - 1) -> fractal(ch, C - 1), unit(ch) ]
net small_fractal(C=3) {
  input image: 3x8x8
  with droppath(local=0.15, global=0.5)
  image -> fractal(4, C) as block1 -> maxpool(2) -> fractal(4, C) as block2
        -> gap -> flatten -> fc(10) as fc
}
"""


def within(observed: float, expected: float, n: int, sigmas: float = 5.0) -> bool:
    se = math.sqrt(expected * (1 - expected) / n)
    return abs(observed - expected) <= sigmas * se + 1e-12


@pytest.fixture(scope="module")
def fractal(tmp_path_factory):
    path = tmp_path_factory.mktemp("specs") / "small_fractal.net"
    path.write_text(FRACTAL)
    return load(str(path))


def joins_of(module):
    return {n.name: module.node_module(n.name) for n in module.graph if n.op == "mean"}


def test_mean_join_averages_the_survivors_and_all_inputs_in_eval():
    join = MeanJoin(p=0.5, columns=(2, 1))
    join.record = True
    a, b = torch.full((1, 2), 2.0), torch.full((1, 2), 6.0)
    torch.manual_seed(0)
    seen = set()
    for _ in range(50):
        out = join(a, b)
        keep = tuple(join.last_keep.tolist())
        seen.add(keep)
        expected = {(True, True): 4.0, (True, False): 2.0, (False, True): 6.0}[keep]
        assert torch.all(out == expected)
    assert seen == {(True, True), (True, False), (False, True)}  # never (False, False)
    join.eval()
    assert torch.all(join(a, b) == 4.0)


def test_local_sampling_rate_and_never_all_dropped():
    torch.manual_seed(1)
    p, n_inputs, draws = 0.15, 3, 4000
    join = MeanJoin(p=p, columns=(3, 2, 1))
    join.record = True
    x = [torch.zeros(1, 1) for _ in range(n_inputs)]
    dropped = 0
    for _ in range(draws):
        join(*x)
        keep = join.last_keep
        assert keep.any()
        dropped += int((~keep).sum())
    # Each input is dropped with p, minus the chance that all were dropped and another was
    # restored: p - p^n / n.
    expected = p - p**n_inputs / n_inputs
    assert within(dropped / (draws * n_inputs), expected, draws * n_inputs)


def test_network_drop_path_global_keeps_one_column_local_keeps_one_input(fractal):
    torch.manual_seed(2)
    module = build_module(fractal, seed=0).train()
    joins = joins_of(module)
    # Per block: one join of columns (3, 2) inside, one of (3, 2, 1) where nested joins merged.
    assert sorted(j.columns for j in joins.values()) == [(3, 2), (3, 2), (3, 2, 1), (3, 2, 1)]
    assert all(j.p == 0.15 for j in joins.values())
    for j in joins.values():
        j.record = True
    x = torch.randn(2, 3, 8, 8)
    n_global = local_draws = local_drops = 0
    columns_seen = []
    draws = 400
    for _ in range(draws):
        with torch.no_grad():
            module(x)
        is_global, column = module.last_droppath_sample
        if bool(is_global):
            n_global += 1
            c = int(column)
            columns_seen.append(c)
            active = set()
            for j in joins.values():
                kept = [col for col, k in zip(j.columns, j.last_keep.tolist()) if k]
                assert kept in ([c], [])  # only the sampled column, at every join
                active.update(kept)
            assert active == {c}  # exactly one column is active in the whole network
        else:
            for j in joins.values():
                assert j.last_keep.any()  # local sampling never drops all inputs
                local_draws += len(j.columns)
                local_drops += int((~j.last_keep).sum())
    assert within(n_global / draws, 0.5, draws)
    for c in (1, 2, 3):  # the global column is uniform over the columns
        assert within(columns_seen.count(c) / len(columns_seen), 1 / 3, len(columns_seen))
    # An input of an n-input join is dropped with p - p^n / n (see the test above).
    sizes = [len(j.columns) for j in joins.values()]
    expected = sum(n * (0.15 - 0.15**n / n) for n in sizes) / sum(sizes)
    assert within(local_drops / local_draws, expected, local_draws)


def test_a_global_column_gives_the_column_network(fractal):
    """With global sampling on column C, the net computes exactly its deepest column."""
    module = build_module(fractal, seed=4).train()
    plain = build_module(deepest_column(fractal), weights=None, seed=4)
    plain.load_named(module.state_dict(), allow_unused=True)  # the full net's weights, by name
    plain.train()
    x = torch.randn(2, 3, 8, 8)
    # The network's uniforms end with (global or local, column): 0 < 0.5 is global, and
    # 0.9 picks column 1 + floor(0.9 * 3) = 3.
    u = torch.full((module._gates.count,), 0.5, dtype=torch.float64)
    u[-2:] = torch.tensor([0.0, 0.9])
    module._gates.uniforms = lambda: u
    ran = []
    hooks = [module.get_submodule(n.name).register_forward_hook(
        lambda m, i, o, name=n.name: ran.append(name)) for n in fractal if n.op == "conv"]
    out = module(x)
    torch.testing.assert_close(out, plain(x), rtol=1e-5, atol=1e-6)
    # Only the sampled column's convs ran: the deepest column's 2 * 2^(C-1) of the 14.
    assert sorted(ran) == sorted(n.name for n in deepest_column(fractal) if n.op == "conv")
    for h in hooks:
        h.remove()


def test_eval_mode_join_is_the_plain_mean(fractal):
    module = build_module(fractal, seed=0).eval()
    x = torch.randn(2, 3, 8, 8)
    join = next(n for n in fractal if n.op == "mean")
    with torch.no_grad():
        feats = module(x, taps=[join.name, *join.inputs])
    mean = sum(feats[i] for i in join.inputs) / len(join.inputs)
    torch.testing.assert_close(feats[join.name], mean)


def test_deepest_column_pass(fractal):
    plain = deepest_column(fractal)
    verify(plain)
    assert not any(n.op == "mean" for n in plain)
    assert sum(n.op == "conv" for n in plain) == 2 * 2 ** (3 - 1)
    assert plain.options.droppath_global is None and plain.options.droppath_local is None
    assert len(fractal) > len(plain)  # a pure function: the input graph is unchanged
    assert any(n.op == "mean" for n in fractal)
    # The zoo's FractalNet (B=5, C=4): a plain chain of 40 conv units.
    zoo = deepest_column(load("fractalnet"))
    convs = [n for n in zoo if n.op == "conv"]
    assert len(convs) == 40
    assert all(len(n.inputs) <= 1 for n in zoo)  # a plain chain
    assert summarize(zoo).params < summarize(load("fractalnet")).params


def test_column_deepest_on_the_command_line(cli):
    result = cli("summary", "fractalnet", "--column", "deepest", "--json")
    assert result.code == 0
    import json

    layers = json.loads(result.out)["layers"]
    assert sum(r["op"] == "conv" for r in layers) == 40
    bad = cli("check", "resnet18", "--column", "deepest")
    assert bad.code == 1 and "no FractalNet joins" in bad.err


# ---- stochastic depth -------------------------------------------------------------------

SD = """
net sd_pair {
  input image: 2x4x4
  with stochastic_depth(p_L=0.5)
  image -> residual(conv(2, 3, pad=1, bias=false) as body1) as block1
        -> residual(conv(2, 3, pad=1, bias=false) as body2) as block2
}
"""


@pytest.fixture(scope="module")
def sd_pair(tmp_path_factory):
    path = tmp_path_factory.mktemp("specs") / "sd_pair.net"
    path.write_text(SD)
    return load(str(path))


def test_survival_is_linear_in_depth_and_eval_scales_the_body(sd_pair):
    blocks = [n for n in sd_pair if n.op == "residual"]
    assert [round(n.attrs["survival"], 6) for n in blocks] == [0.75, 0.5]
    module = build_module(sd_pair, seed=0).eval()
    state = module.state_dict()
    assert list(state) == ["body1.weight", "body2.weight"]
    w1, w2 = state["body1.weight"], state["body2.weight"]
    x = torch.randn(3, 2, 4, 4)
    # By hand: h1 = x + 0.75 conv1(x); y = h1 + 0.5 conv2(h1).
    h1 = x + 0.75 * F.conv2d(x, w1, padding=1)
    y = h1 + 0.5 * F.conv2d(h1, w2, padding=1)
    with torch.no_grad():
        torch.testing.assert_close(module(x), y, rtol=1e-6, atol=1e-6)


def test_observed_survival_matches_p_l_and_a_closed_block_is_its_shortcut():
    graph = load("tests/specs/torch_nets.net:cifar_resnet", {"n": 1})
    module = build_module(graph, seed=0).train()
    blocks = [n for n in graph if n.op == "residual"]
    expected = [1 - (l / 3) * 0.5 for l in (1, 2, 3)]
    assert [n.attrs["survival"] for n in blocks] == pytest.approx(expected)
    gates = {n.name: module.node_module(n.name) for n in blocks}
    for g in gates.values():
        g.record = True
    survived = {n: 0 for n in gates}
    draws = 600
    x = torch.randn(1, 3, 32, 32)
    torch.manual_seed(7)
    names = [t for n in blocks for t in (n.name, *n.inputs)]
    for _ in range(draws):
        with torch.no_grad():
            feats = module(x, taps=names)
        for node in blocks:
            open_ = bool(gates[node.name].last_gate)
            survived[node.name] += open_
            body, short = (feats[i] for i in node.inputs)
            want = body + short if open_ else short
            torch.testing.assert_close(feats[node.name], want)
    for node, p in zip(blocks, expected):
        assert within(survived[node.name] / draws, p, draws), (node.name, survived, p)


def test_residual_join_formulas():
    join = ResidualJoin(0.3)
    body, short = torch.full((2,), 10.0), torch.full((2,), 1.0)
    join.eval()
    assert torch.allclose(join(body, short), torch.full((2,), 4.0))
    assert torch.equal(ResidualJoin(1.0).train()(body, short), torch.full((2,), 11.0))


ROW = SD.replace("stochastic_depth(p_L=0.5)", "stochastic_depth(p_L=0.5, mode=row)")


def test_per_sample_stochastic_depth_scales_kept_bodies_in_training_only(tmp_path):
    """mode=row (torchvision's StochasticDepth, as EfficientNet uses it): each example keeps a
    body with p_l, scaled by 1/p_l; eval mode is the plain sum, and so is the ONNX file."""
    path = tmp_path / "row.net"
    path.write_text(ROW)
    graph = load(str(path))
    blocks = [n for n in graph if n.op == "residual"]
    assert [(n.attrs["mode"], round(n.attrs["survival"], 6)) for n in blocks] == \
        [("row", 0.75), ("row", 0.5)]
    module = build_module(graph, seed=0)
    w1 = module.state_dict()["body1.weight"]
    x = torch.randn(4000, 2, 4, 4)
    with torch.no_grad():
        feats = module.train()(x, taps=["block1"])["block1"]
        body = F.conv2d(x, w1, padding=1)
        # Per example, block1 is x + body / 0.75 (kept) or x (dropped).
        kept = torch.isclose(feats, x + body / 0.75, atol=1e-5).flatten(1).all(1)
        dropped = torch.isclose(feats, x, atol=1e-6).flatten(1).all(1)
        assert bool((kept | dropped).all()) and not bool((kept & dropped).any())
        assert within(float(kept.float().mean()), 0.75, len(x))
        evaluated = module.eval()(x[:3], taps=["block1"])["block1"]
        torch.testing.assert_close(evaluated, x[:3] + body[:3], rtol=1e-6, atol=1e-6)
    import numpy as np

    from netc.compiler.lower_onnx.model import lower
    from netc.compiler.numerics.seeded_weights import init_weights
    from tests.test_onnx_ops import run_ort

    model = lower(graph, init_weights(graph, 0))
    assert not any(n.op_type == "Mul" for n in model.graph.node)
    with torch.no_grad():
        ref = module(x[:3]).numpy()
    np.testing.assert_allclose(run_ort(model, x[:3].numpy())[0], ref, rtol=1e-5, atol=1e-6)


def test_stochastic_depth_mode_must_be_batch_or_row(tmp_path):
    from netc.dsl.diagnostics import DiagnosticError

    path = tmp_path / "bad.net"
    path.write_text(SD.replace("p_L=0.5)", "p_L=0.5, mode=sample)"))
    with pytest.raises(DiagnosticError, match="mode must be batch .* or row"):
        load(str(path))


def test_skipping_keeps_what_a_tap_needs_and_gives_zero_gradients(sd_pair):
    """A closed block's body is not run unless a tap asks for it; its weights get a zero
    gradient (not None), as when the body was multiplied by 0."""
    module = build_module(sd_pair, seed=0).train()
    u = torch.tensor([0.9, 0.9], dtype=torch.float64)  # both closed: 0.9 >= 0.75 and 0.5
    module._gates.uniforms = lambda: u
    x = torch.randn(2, 2, 4, 4)
    out = module(x)
    torch.testing.assert_close(out, x)  # both blocks are their shortcut (identity)
    out.sum().backward()
    for p in module.parameters():
        assert p.grad is not None and torch.equal(p.grad, torch.zeros_like(p))
    feats = module(x, taps=["body2", "block2"])
    with torch.no_grad():
        torch.testing.assert_close(feats["body2"], F.conv2d(x, module.state_dict()["body2.weight"],
                                                            padding=1))
    torch.testing.assert_close(feats["block2"], x)
