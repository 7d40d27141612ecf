"""Attribution: saliency, deconvnet and guided backprop as rules at ReLUs in the torch lowering.

Outside numbers: Captum's tests of ``BasicModel_ConvNet_One_Conv`` (conv 1→2, 3×3, weights 1,
bias [−50, −75]; ReLU; fc 8→4 with weights [1]*5 + [−1]*3, bias 0; ReLU), input arange(16) as
1×1×4×4, target 0: ``tests/attr/test_deconvolution.py`` and ``test_guided_backprop.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from netc.compiler.frontend.loader import load
from netc.compiler.lower_torch.module import build_module
from netc.compiler.lower_torch.attribution import METHODS, backward_rule
from netc.runtime.views.attribution import attribute

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CAPTUM_NET = """
net one_conv {
  input x: 1x4x4
  x -> conv(2, 3) as conv1 -> relu as relu1 -> flatten -> fc(4) as fc1 -> relu as relu2
}
"""
CAPTUM_WEIGHTS = {
    "conv1.weight": np.ones((2, 1, 3, 3), np.float32),
    "conv1.bias": np.array([-50.0, -75.0], np.float32),
    "fc1.weight": np.concatenate([np.ones((4, 5)), -np.ones((4, 3))], 1).astype(np.float32),
    "fc1.bias": np.zeros(4, np.float32),
}
CAPTUM_DECONV = [[2, 3, 3, 1], [3, 5, 5, 2], [3, 5, 5, 2], [1, 2, 2, 1]]
CAPTUM_GUIDED = [[0, 1, 1, 1], [1, 3, 3, 2], [1, 3, 3, 2], [1, 2, 2, 1]]


def _net(tmp_path, text, weights=None, name="n.net"):
    path = tmp_path / name
    path.write_text(text)
    graph = load(str(path))
    return path, graph, build_module(graph, weights).eval()


@pytest.mark.parametrize("layer", ["relu2", "fc1"])
def test_captum_one_conv_deconvnet_and_guided(tmp_path, layer):
    _, _, net = _net(tmp_path, CAPTUM_NET, CAPTUM_WEIGHTS)
    x = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    deconv = attribute(net, x, layer, "deconvnet", channel=0)
    guided = attribute(net, x, layer, "guided", channel=0)
    np.testing.assert_allclose(deconv.map[0], CAPTUM_DECONV, atol=1e-6)
    np.testing.assert_allclose(guided.map[0], CAPTUM_GUIDED, atol=1e-6)
    assert deconv.value == 54.0  # conv windows 4, 31, 40 (ch 0) and 6, 15 (ch 1): 75 − 21
    assert net.relu_rule is None  # the rule is off again after the attribution


def test_saliency_is_the_true_gradient(tmp_path):
    """With the saliency rule the module's backward is torch's own ReLU gradient."""
    _, _, net = _net(tmp_path, """
net n { input x: 3x12x12
  x -> conv(4, 3, pad=1) -> relu -> maxpool(2) -> conv(6, 3) -> relu as r -> flatten -> fc(5) }
""")
    x = torch.randn(1, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    a = attribute(net, x[0].numpy(), "r", "saliency")  # the most active channel
    plain = x.clone().requires_grad_(True)
    net(plain, taps=["r"])["r"][0, a.channel].max().backward()
    np.testing.assert_allclose(a.map, plain.grad[0].numpy(), rtol=1e-6, atol=1e-7)
    assert np.abs(a.map).max() > 0


def test_methods_agree_with_no_relu_on_the_path(tmp_path):
    """tanh, sigmoid and max-pool only: the three rules have nothing to differ on. The ReLU
    after fc1 is not on the way back from fc1."""
    _, _, net = _net(tmp_path, """
net n { input x: 3x16x16
  x -> conv(4, 3, pad=1) -> tanh -> maxpool(2) -> conv(5, 3) -> sigmoid -> flatten
    -> fc(6) as fc1 -> relu }
""")
    x = np.random.default_rng(0).normal(size=(3, 16, 16)).astype(np.float32)
    maps = [attribute(net, x, "fc1", m, channel=3).map for m in METHODS]
    assert np.abs(maps[0]).max() > 0
    for other in maps[1:]:
        np.testing.assert_array_equal(maps[0], other)


def test_guided_is_non_negative_where_it_meets_a_relu_input(tmp_path):
    """A ReLU right after the input: guided backprop's signal there is ≥ 0, and 0 where the
    input is ≤ 0; deconvnet's is ≥ 0 but ignores the input's sign; saliency keeps signs."""
    _, _, net = _net(tmp_path, """
net n { input x: 2x14x14
  x -> relu -> conv(4, 3) -> relu -> maxpool(2) -> conv(3, 3) -> relu as top -> flatten -> fc(5) }
""")
    x = np.random.default_rng(2).normal(size=(2, 14, 14)).astype(np.float32)
    guided = attribute(net, x, "top", "guided").map
    deconv = attribute(net, x, "top", "deconvnet").map
    sal = attribute(net, x, "top", "saliency").map
    assert guided.min() >= 0 and guided.max() > 0
    assert np.all(guided[x <= 0] == 0)
    assert deconv.min() >= 0 and np.abs(deconv[x < 0]).max() > 0
    assert np.all(sal[x <= 0] == 0) and sal.min() < 0


def test_maxpool_goes_back_through_its_switches(tmp_path):
    """Zeiler–Fergus switches: a pooled unit's signal returns only to its window's argmax."""
    _, _, net = _net(tmp_path, "net n { input x: 1x4x4\n x -> maxpool(2) as pool }")
    x = np.random.default_rng(3).permutation(16).astype(np.float32).reshape(1, 4, 4)
    for m in METHODS:
        a = attribute(net, x, "pool", m, channel=0)
        i, j = a.position
        window = x[0, 2 * i:2 * i + 2, 2 * j:2 * j + 2]
        expect = np.zeros((4, 4), np.float32)
        di, dj = np.unravel_index(window.argmax(), window.shape)
        expect[2 * i + di, 2 * j + dj] = 1.0
        np.testing.assert_array_equal(a.map[0], expect)
        assert a.value == 15.0


def test_backward_rule_refuses_unknown_rules(tmp_path):
    _, _, net = _net(tmp_path, CAPTUM_NET, CAPTUM_WEIGHTS)
    with pytest.raises(ValueError):
        with backward_rule(net, "lrp"):
            pass


def _png(path, size=(20, 20)):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(path)
    return path


def test_cli_writes_the_map_beside_the_image(cli, tmp_path):
    spec, _, _ = _net(tmp_path, """
net small { input image: 3x32x32
  image -> conv(8, 3, pad=1) as conv1 -> relu -> maxpool(2) -> conv(8, 3, pad=1) as conv2
        -> relu -> gap -> flatten -> fc(4) as fc }
""")
    img = _png(tmp_path / "in.png", (40, 50))
    out = tmp_path / "explain.png"
    r = cli("explain", spec, img, "--layer", "conv2", "--channel", "3", "--method",
            "deconvnet", "--size", "64", "-o", out)
    assert r.code == 0, r.err
    assert "random weights" in r.err and "conv2 channel 3" in r.out
    with Image.open(out) as im:
        assert im.width >= 3 * 64 and im.height > 64
    r = cli("explain", spec, img, "--layer", "fc", "--method", "all", "-o", out)
    assert r.code == 0, r.err
    assert "deconvnet, guided, saliency" in r.out


@pytest.mark.parametrize("args, message", [
    (["--layer", "conv9"], "small has no layer named 'conv9'"),
    (["--layer", "image"], "that is the net's input"),
    (["--layer", "conv1", "--channel", "8"], "--channel 8: conv1 has 8 channels (0..7)"),
    (["--layer", "conv1", "--channel", "-1"], "--channel -1: conv1 has 8 channels"),
])
def test_cli_bad_layer_or_channel_is_one_line(cli, tmp_path, args, message):
    spec = tmp_path / "s.net"
    spec.write_text("net small { input image: 3x16x16\n image -> conv(8, 3) as conv1 -> relu }")
    r = cli("explain", spec, _png(tmp_path / "a.png"), *args, "-o", tmp_path / "o.png")
    assert r.code == 1
    assert r.err.startswith("netc: error: ") and message in r.err
    assert len(r.err.strip().splitlines()) == 1
    assert not (tmp_path / "o.png").exists()


def test_cli_not_an_image(cli, tmp_path):
    spec = tmp_path / "s.net"
    spec.write_text("net small { input image: 3x16x16\n image -> conv(8, 3) as conv1 -> relu }")
    bad = tmp_path / "notes.png"
    bad.write_text("not a picture")
    r = cli("explain", spec, bad, "--layer", "conv1", "-o", tmp_path / "o.png")
    assert r.code == 1 and "cannot read image" in r.err and "notes.png" in r.err
    r = cli("explain", spec, tmp_path / "missing.jpg", "--layer", "conv1")
    assert r.code == 1 and "no such file" in r.err
