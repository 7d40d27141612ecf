"""Weight import: hand-written PyTorch references, mapped by structure, give the same outputs."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
import torch.nn as nn
from safetensors.numpy import load_file

from netc.compiler.frontend.loader import load
from netc.compiler.lower_torch.module import build_module
from netc.dsl.diagnostics import UserError
from netc.runtime.weights import import_weights, load_weights, map_by_structure, read_tensors


pytestmark = pytest.mark.usefixtures("one_torch_thread")

STAGE = """
def basic(ch, stride=1) =
  residual(conv(ch, 3, stride=stride, pad=1, bias=false) -> bn -> relu
           -> conv(ch, 3, pad=1, bias=false) -> bn, shortcut=project) -> relu
net stage {
  input image: 16x8x8
  image -> basic(32, stride=2) -> basic(32)
}
"""

INCEPTION = """
def inception(c1, r3, c3, r5, c5, pp) = concat[
  conv(c1, 1) -> relu,
  conv(r3, 1) -> relu -> conv(c3, 3, pad=1) -> relu,
  conv(r5, 1) -> relu -> conv(c5, 5, pad=2) -> relu,
  maxpool(3, stride=1, pad=1) -> conv(pp, 1) -> relu ]
net module3a {
  input image: 192x7x7
  image -> inception(64, 96, 128, 16, 32, 32) as inception_3a
}
"""


class BasicBlock(nn.Module):
    """torchvision's BasicBlock, written out by hand."""

    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                            nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        short = x if self.downsample is None else self.downsample(x)
        return self.relu(out + short)


class Inception(nn.Module):
    """GoogLeNet's inception module (Caffe's, with biases and ReLUs), by hand."""

    def __init__(self, cin, c1, r3, c3, r5, c5, pp):
        super().__init__()
        self.branch1 = nn.Sequential(nn.Conv2d(cin, c1, 1), nn.ReLU())
        self.branch2 = nn.Sequential(nn.Conv2d(cin, r3, 1), nn.ReLU(),
                                     nn.Conv2d(r3, c3, 3, padding=1), nn.ReLU())
        self.branch3 = nn.Sequential(nn.Conv2d(cin, r5, 1), nn.ReLU(),
                                     nn.Conv2d(r5, c5, 5, padding=2), nn.ReLU())
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, 1, 1), nn.Conv2d(cin, pp, 1), nn.ReLU())

    def forward(self, x):
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


def randomise(module: nn.Module, seed: int) -> None:
    """Random weights, biases and batch-norm statistics, so nothing matches by accident."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if t.is_floating_point():
                values = torch.rand(t.shape, generator=gen) * 0.5 + 0.5 if "var" in name \
                    else torch.randn(t.shape, generator=gen) * 0.2
                t.copy_(values)


def spec_file(tmp_path, text, name):
    path = tmp_path / f"{name}.net"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("case", ["stage", "inception"])
def test_reference_weights_through_weights_import_give_equal_outputs(case, tmp_path, cli):
    if case == "stage":
        spec = spec_file(tmp_path, STAGE, "stage")
        ref = nn.Sequential(BasicBlock(16, 32, 2), BasicBlock(32, 32))
        x = torch.randn(4, 16, 8, 8)
    else:
        spec = spec_file(tmp_path, INCEPTION, "inception")
        ref = Inception(192, 64, 96, 128, 16, 32, 32)
        x = torch.randn(2, 192, 7, 7)
    randomise(ref, 1)
    torch.save(ref.state_dict(), tmp_path / "ref.pth")
    out = tmp_path / "mapped.safetensors"
    result = cli("weights", "import", spec, tmp_path / "ref.pth", "-o", out)
    assert result.code == 0, result.err
    module = build_module(load(spec), seed=9)
    module.load_named(load_weights(load(spec), out))
    for mode in ("eval", "train"):
        getattr(ref, mode)()
        getattr(module, mode)()
        with torch.no_grad():
            want, got = ref(x), module(x)
        torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    if case == "stage":  # the projection shortcut got torchvision's downsample weights
        sd = ref.state_dict()
        mapped = load_file(str(out))
        np.testing.assert_array_equal(mapped["basic1.shortcut.conv1.weight"],
                                      sd["0.downsample.0.weight"].numpy())


def test_a_wrong_shape_is_refused_with_the_first_mismatch(tmp_path, cli):
    spec = spec_file(tmp_path, STAGE, "stage")
    ref = nn.Sequential(BasicBlock(16, 32, 2), BasicBlock(32, 32))
    state = ref.state_dict()
    state["1.conv2.weight"] = torch.zeros(32, 32, 1, 1)  # a 1x1 where the spec has a 3x3
    torch.save(state, tmp_path / "bad.pth")
    out = tmp_path / "out.safetensors"
    result = cli("weights", "import", spec, tmp_path / "bad.pth", "-o", out)
    assert result.code == 1
    assert "layer 9 of 10 (in graph order)" in result.err
    assert "spec: basic2.conv2 (conv): weight 32x32x3x3" in result.err
    assert "file: 1.conv2: weight 32x32x1x1" in result.err
    assert "Traceback" not in result.err
    assert not out.exists()  # nothing half-written


def test_a_missing_layer_and_an_extra_tensor_are_reported(tmp_path):
    graph = load(spec_file(tmp_path, STAGE, "stage"))
    state = {k: v.numpy() for k, v in
             nn.Sequential(BasicBlock(16, 32, 2), BasicBlock(32, 32)).state_dict().items()}
    fewer = {k: v for k, v in state.items() if not k.startswith("1.bn2.")}
    with pytest.raises(UserError, match=r"layer 10 of 10 \(in graph order\) has no partner"
                                        r"(.|\n)*spec: basic2.bn2 \(bn\)(.|\n)*the spec has 10 "
                                        r"parameterised layers, the file 9"):
        map_by_structure(graph, fewer)
    more = dict(state)
    more["0.conv1.bias"] = np.zeros(32, np.float32)
    with pytest.raises(UserError, match=r"layer 1 of 10 \(in graph order\) has no partner"
                                        r"(.|\n)*spec: basic1.conv1 \(conv\): weight 32x16x3x3"
                                        r"\n  file: 0.conv1: weight 32x16x3x3, bias 32"):
        map_by_structure(graph, more)


class Sneaky:
    """An object that runs code when unpickled: it creates a file."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(self.path),))


def test_a_pickle_that_is_not_plain_tensors_is_refused_without_loading(tmp_path):
    marker = tmp_path / "code-ran"
    evil = tmp_path / "evil.pth"
    torch.save({"conv.weight": torch.zeros(2), "payload": Sneaky(str(marker))}, evil)
    with pytest.raises(UserError, match="not a plain tensor file and was refused"):
        read_tensors(evil)
    assert not marker.exists()
    # The same file, unpickled without weights_only, would have run the payload.
    torch.load(evil, weights_only=False)
    assert marker.exists()
    # A bare pickle (not torch's zip format) is refused too.
    raw = tmp_path / "raw.pt"
    raw.write_bytes(pickle.dumps(Sneaky(str(tmp_path / "raw-ran"))))
    with pytest.raises(UserError):
        read_tensors(raw)
    assert not (tmp_path / "raw-ran").exists()


def test_a_pth_of_odd_containers_is_one_line_not_a_traceback(tmp_path):
    """Tensors under numbers have no names; a wrapper that holds itself ends the unwrapping
    (both were an AttributeError and a RecursionError)."""
    torch.save({1: torch.zeros(3)}, tmp_path / "numbers.pth")
    with pytest.raises(UserError, match="numbers.pth holds no tensors under names"):
        read_tensors(tmp_path / "numbers.pth")
    loop: dict = {}
    loop["state_dict"] = loop
    torch.save(loop, tmp_path / "loop.pth")
    with pytest.raises(UserError, match="loop.pth holds no state dict"):
        read_tensors(tmp_path / "loop.pth")
    torch.save({"model": {"state_dict": {"a.weight": torch.ones(2)}}}, tmp_path / "deep.pth")
    assert list(read_tensors(tmp_path / "deep.pth")) == ["a.weight"]


def test_netc_named_files_and_checkpoint_wrappers(tmp_path):
    graph = load(spec_file(tmp_path, STAGE, "stage"))
    module = build_module(graph, seed=2)
    torch.save({"epoch": 3, "model": module.state_dict()}, tmp_path / "ckpt.pt")
    mapped = import_weights(graph, tmp_path / "ckpt.pt", tmp_path / "w.safetensors")
    for k, v in mapped.tensors.items():
        np.testing.assert_array_equal(v, module.state_dict()[k].numpy())
    assert read_tensors(tmp_path / "w.safetensors").keys() == mapped.tensors.keys()
    with pytest.raises(UserError, match="cannot read weights: .*nope.pth: No such file"):
        read_tensors(tmp_path / "nope.pth")
    with pytest.raises(UserError, match="is a .safetensors file|output of weights import"):
        import_weights(graph, tmp_path / "ckpt.pt", tmp_path / "w.pt")


def test_a_reshape_is_said_in_one_line_without_show(tmp_path, cli):
    """``converted: ...``: ``weights import`` without ``--show``, and the line of an on-the-fly
    pairing (every ``--weights``), count what was reshaped (no test read either line before)."""
    spec = tmp_path / "c.net"
    spec.write_text("net n {\n  input image: 4x4x4\n  image -> conv(8, 1)\n}\n")
    linear = nn.Linear(4, 8)
    torch.save(linear.state_dict(), tmp_path / "lin.pth")
    said = "converted: 1 reshape 1x1 (Linear as conv)"
    result = cli("weights", "import", spec, tmp_path / "lin.pth", "-o", tmp_path / "w.safetensors")
    assert result.code == 0 and result.out.splitlines()[0] == said, result.out
    lines = []
    weights = load_weights(load(str(spec)), tmp_path / "lin.pth", say=lines.append)
    assert lines == [f"{tmp_path / 'lin.pth'}: 1 layers paired with n's by structure "
                     f"(a PyTorch file); {said}"]
    np.testing.assert_array_equal(weights["conv1.weight"][:, :, 0, 0],
                                  linear.weight.detach().numpy())
