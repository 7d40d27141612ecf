"""Caffe's own outputs: every case of shared/reference/caffe/conformance/ through netc.

Each case (its README lists them) is a Caffe net with the weights Caffe saved, an input and the
output Caffe computed. Here each one goes the way a user goes: ``netc weights import
model.prototxt weights.caffemodel -o W.safetensors``, then ``netc compile model.prototxt
--weights W.safetensors`` run by ONNX Runtime, and the torch module with the same file; both
must give Caffe's output to 1e-4·max|ref| (the README's bar; its own float64 recomputation
errs by at most 2.3e-5 absolute). The trained LeNet must classify scikit-learn's digits as the
README says.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from netc.compiler.frontend.loader import load
from netc.compiler.lower_torch.module import build_module

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROOT = Path(__file__).resolve().parent.parent / ".." / "shared" / "reference" / "caffe"
CONF = ROOT / "conformance"
CASES = sorted(p.name for p in CONF.iterdir() if p.is_dir() and p.name != "lenet_mnist") \
    if CONF.is_dir() else []
TOLERANCE = 1e-4  # of max|ref|, README's bar for every case


def test_all_22_cases_are_found():
    assert len(CASES) == 22, CASES


def inputs_of(case: Path) -> list[np.ndarray]:
    if (case / "input.npy").exists():
        return [np.load(case / "input.npy")]
    return [np.load(case / f"input_{i}.npy") for i in range(2)]


def check(out: np.ndarray, ref: np.ndarray, what: str) -> None:
    out = out.reshape(ref.shape)
    err = np.abs(out - ref).max()
    assert err <= TOLERANCE * np.abs(ref).max(), f"{what}: max error {err:.3g}"


@pytest.mark.parametrize("name", CASES)
def test_caffe_case_through_weights_import_onnx_runtime_and_torch(name, tmp_path, cli):
    case = CONF / name
    proto = case / "model.prototxt"
    ref = np.load(case / "expected.npy")
    xs = inputs_of(case)
    weights = tmp_path / "w.safetensors"
    compile_args = []
    if (case / "weights.caffemodel").exists():
        r = cli("weights", "import", proto, case / "weights.caffemodel", "-o", weights)
        assert r.code == 0, r.err
        compile_args = ["--weights", weights]
    r = cli("compile", proto, "-o", tmp_path / "m.onnx", *compile_args)
    assert r.code == 0, r.err
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    feeds = {i.name: x for i, x in zip(session.get_inputs(), xs)}
    outs = session.run(None, feeds)
    check(outs[-1], ref, "ONNX Runtime")  # Caffe's reference is the net's last top
    graph = load(str(proto))

    module = build_module(graph, seed=0)
    if compile_args:
        from netc.runtime.weights import load_weights

        module.load_named(load_weights(graph, weights))
    module.eval()
    with torch.no_grad():
        got = module(*[torch.from_numpy(x) for x in xs])
    got = got[-1] if isinstance(got, (tuple, list)) else got
    check(got.numpy(), ref, "torch")


def digits_layout_a():
    """README's preprocessing A: 0..255, bilinear 8->20 (half-pixel), zero-pad 4, x 1/256."""
    import torch.nn.functional as F
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.from_numpy((digits.images * 255 / 16).astype(np.float32))[:, None]
    x = F.interpolate(x, size=(20, 20), mode="bilinear", align_corners=False)
    return (F.pad(x, (4, 4, 4, 4)) * 0.00390625).numpy(), digits.target


def test_caffe_trained_lenet_classifies_sklearn_digits(tmp_path, cli):
    """The caffemodel of Caffe's MNIST example, read by netc: 1529 of 1797 digits right with
    the README's layout A (0.8509), the count the README measured with its own reader."""
    model = tmp_path / "lenet.onnx"
    r = cli("compile", ROOT / "lenet.prototxt", "--weights",
            CONF / "lenet_mnist" / "weights.caffemodel", "-o", model)
    assert r.code == 0, r.err
    x, labels = digits_layout_a()
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    prob = session.run(None, {session.get_inputs()[0].name: x})[0]
    right = int((prob.argmax(1) == labels).sum())
    assert abs(right - 1529) <= 3, right  # "to within a few images"
    assert right / len(labels) >= 0.84  # the README's bar for a correct reader
