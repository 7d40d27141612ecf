"""Fitted layers inside nets: `netc fit` solves them (equal to scikit-learn's PCA and Ridge on
the same codes), the fitted net's torch module and its ONNX file agree, and mistakes are
located errors."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from safetensors.numpy import load_file, save_file
from sklearn.decomposition import PCA
from sklearn.linear_model import Ridge

from netc.compiler.frontend.loader import load
from netc.compiler.lower_onnx.model import lower
from netc.compiler.lower_torch.module import build_module
from netc.runtime.data import load_dataset
from netc.runtime.fit import fit_order, lfw_rows
from netc.runtime.weights import load_weights

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def unit(x):
    x = x - x.mean(1, keepdims=True)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def eigen_weights(tmp_path_factory):
    from netc.runtime.cli import main

    path = tmp_path_factory.mktemp("eigen") / "faces.safetensors"
    assert main(["fit", "eigenfaces", "--data", "lfw:0-79", "-o", str(path)]) == 0
    return path


def test_fitted_face_space_is_scikit_learns_pca_of_the_normalised_faces(eigen_weights):
    w = load_file(str(eigen_weights))
    faces = unit(lfw_rows("0-79").reshape(80, -1))
    ref = PCA(n_components=5, svd_solver="full").fit(faces)
    comps = w["face_space.components"].astype(np.float64)
    signs = np.sign(np.sum(comps * ref.components_, axis=1))
    np.testing.assert_allclose(comps * signs[:, None], ref.components_, atol=1e-5)
    np.testing.assert_allclose(w["face_space.mean"], ref.mean_, atol=1e-6)
    np.testing.assert_allclose(w["face_space.variance"], ref.explained_variance_, rtol=1e-5)
    # the three subspace layers are fitted from the same data: the same subspace
    for other in ("projection", "distance"):
        np.testing.assert_array_equal(w[f"{other}.components"], w["face_space.components"])


def test_fitted_eigenfaces_torch_and_onnx_runtime_agree(eigen_weights, tmp_path, cli):
    graph = load("eigenfaces")
    weights = load_weights(graph, eigen_weights)
    out = tmp_path / "eigenfaces.onnx"
    r = cli("compile", "eigenfaces", "--weights", str(eigen_weights), "-o", str(out))
    assert r.code == 0, r.err
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    ops = {n.op_type for n in lower(graph, weights).graph.node}
    assert {"Sub", "Gemm", "MatMul", "ReduceSumSquare", "Sqrt", "ReduceMean", "Div"} <= ops
    x = lfw_rows("0-199")[::7, None].astype(np.float32)  # faces and non-faces
    got = session.run(None, {"face": x})
    module = build_module(graph, weights).eval()
    with torch.no_grad():
        ref = [t.numpy() for t in module(torch.from_numpy(x))]
    assert [o.name for o in session.get_outputs()] == list(graph.options.output_names)
    for g, want in zip(got, ref):
        assert g.shape == want.shape
        assert np.abs(g - want).max() <= 1e-5 * np.abs(want).max() + 1e-6
    # the distance output is ‖x̂ − x‖ of the projection output, in normalised pixels
    xs = unit(x.reshape(len(x), -1).astype(np.float64))
    np.testing.assert_allclose(ref[2][:, 0], np.linalg.norm(ref[1] - xs, axis=1), atol=1e-5)


READOUT = Path(__file__).resolve().parents[1] / "examples" / "readout.net"
README = READOUT.parents[1] / "README.md"


def test_fc_is_fitted_after_the_pca_it_reads_and_equals_scikit_learn(tmp_path, cli):
    spec = READOUT
    graph = load(f"{spec}:readout")
    assert fit_order(graph) == [["codes"], ["scores"]]
    out = tmp_path / "w.safetensors"
    r = cli("fit", f"{spec}:readout", "--data", "digits", "-o", str(out))
    assert r.code == 0, r.err
    assert "ridge λ=2.5" in r.out
    w = load_file(str(out))
    data = load_dataset("digits", (1, 8, 8))
    x = data.train_x.flatten(1).numpy().astype(np.float64) / 255.0
    codes = PCA(n_components=20, svd_solver="full").fit(x)
    ours = (x - w["codes.mean"]) @ w["codes.components"].T.astype(np.float64)
    ref = Ridge(alpha=2.5).fit(ours, np.eye(10)[data.train_y.numpy()])
    np.testing.assert_allclose(w["scores.weight"], ref.coef_, atol=1e-4)
    np.testing.assert_allclose(w["scores.bias"], ref.intercept_, atol=1e-4)
    assert np.allclose(np.abs(w["codes.components"]), np.abs(codes.components_), atol=1e-5)
    # held out: a least-squares read-out of 20 principal components classifies digits
    module = build_module(graph, load_weights(graph, out)).eval()
    with torch.no_grad():
        pred = module(data.test_x.float() / 255.0).argmax(1)
    acc = float((pred == data.test_y).float().mean())
    assert acc > 0.9, acc  # measured 0.930


def test_plain_least_squares_read_out_reports_its_rank(tmp_path, cli):
    spec = READOUT
    out = tmp_path / "w.safetensors"
    r = cli("fit", f"{spec}:direct", "--data", "digits", "-o", str(out))
    assert r.code == 0, r.err
    # digits has pixels that are 0 in every training image: the problem is rank-deficient, and
    # the minimum-norm solution gives those pixels zero weight
    assert "least squares, rank" in r.out and "of 64" in r.out
    rank = int(r.out.split("rank ")[1].split()[0])
    assert rank < 64
    w = load_file(str(out))["scores.weight"]
    data = load_dataset("digits", (1, 8, 8))
    dead = data.train_x.flatten(1).numpy().max(0) == 0
    assert dead.any()
    np.testing.assert_allclose(w[:, dead], 0, atol=1e-6)


def test_fit_keeps_the_other_weights_given(tmp_path, cli):
    spec = tmp_path / "conv.net"
    spec.write_text("net c {\n input image: 1x8x8\n image -> conv(2, 3) -> flatten -> pca(4)\n}\n")
    graph = load(str(spec))
    given = {"conv1.weight": np.full((2, 1, 3, 3), 0.25, np.float32),
             "conv1.bias": np.array([1.0, -1.0], np.float32)}
    save_file(given, str(tmp_path / "conv.safetensors"))
    out = tmp_path / "w.safetensors"
    r = cli("fit", str(spec), "--data", "digits", "--weights", str(tmp_path / "conv.safetensors"),
            "-o", str(out))
    assert r.code == 0, r.err
    w = load_weights(graph, out)
    np.testing.assert_array_equal(w["conv1.weight"], given["conv1.weight"])
    comps = w["pca1.components"]
    np.testing.assert_allclose(comps @ comps.T, np.eye(4), atol=1e-5)


@pytest.mark.parametrize("body, message", [
    ("flatten -> fc(10, fit=ridge)", "fit=ridge needs its λ"),
    ("flatten -> fc(10, fit=ridge(-1))", "ridge takes one positive number"),
    ("flatten -> fc(10, fit=sgd)", "fit must be lstsq or ridge"),
    ("flatten -> fc(10, fit=lstsq(2))", "lstsq takes one cut-off"),
    ("flatten -> pca(0)", "'k' must be a positive integer"),
    ("flatten -> pca(65)", "the input has only 64 values"),
    ("pca(5)", "pca needs a flat input"),
    ("pca_distance(3)", "add flatten before it"),
    ("unitnorm(eps=0)", "eps"),
])
def test_mistakes_in_fitted_layers_are_located(tmp_path, cli, body, message):
    spec = tmp_path / "bad.net"
    spec.write_text(f"net bad {{\n  input image: 1x8x8\n  image -> {body}\n}}\n")
    r = cli("check", str(spec))
    assert r.code == 1
    assert f"{spec}:3:" in r.err and message in r.err, r.err
    assert "Traceback" not in r.err


@pytest.mark.parametrize("args, message", [
    (["lenet5", "--data", "digits"], "has no fitted layers"),
    (["eigenfaces", "--data", "lfw:5-500"], "rows must lie in 0-199"),
    (["eigenfaces", "--data", "lfw:x"], "expected rows as A-B"),
    (["eigenfaces", "--data", "nothing"], "expected digits, lfw"),
])
def test_fit_command_errors_write_nothing(tmp_path, cli, args, message):
    out = tmp_path / "w.safetensors"
    r = cli("fit", *args, "-o", str(out))
    assert r.code == 1 and message in r.err, r.err
    assert not out.exists()


def test_a_fitted_fc_needs_labels_that_match(tmp_path, cli):
    spec = tmp_path / "f.net"
    spec.write_text("net f {\n input image: 1x25x25\n image -> flatten -> fc(3, fit=lstsq)\n}\n"
                    "net g {\n input image: 1x8x8\n image -> flatten -> fc(3, fit=lstsq)\n}\n")
    r = cli("fit", f"{spec}:f", "--data", "lfw", "-o", str(tmp_path / "w.safetensors"))
    assert r.code == 1 and "needs class labels" in r.err
    r = cli("fit", f"{spec}:g", "--data", "digits", "-o", str(tmp_path / "w.safetensors"))
    assert r.code == 1 and "cannot be fitted to 10 classes" in r.err


def test_the_readme_spec_is_the_zoo_eigenfaces(tmp_path):
    from netc.compiler.analyses.summary import summarize

    text = README.read_text()
    text = text[text.index("## Fitted layers"):]
    spec = tmp_path / "e.net"
    spec.write_text(re.findall(r"```\n(.*?)```", text, re.DOTALL)[0])
    ours, zoo = load(str(spec)), load("eigenfaces")
    assert [(n.name, n.op, n.shape) for n in ours] == [(n.name, n.op, n.shape) for n in zoo]
    assert summarize(ours).params == summarize(zoo).params == 11_250


def test_a_fit_that_cannot_fit_in_memory_is_refused(tmp_path, cli):
    spec = tmp_path / "big.net"
    spec.write_text("net big {\n input image: 3x128x128\n image -> flatten -> pca(2)\n}\n")
    out = tmp_path / "w.safetensors"
    r = cli("fit", str(spec), "--data", "digits", "-o", str(out))
    assert r.code == 1 and "49,152 values" in r.err and "GiB" in r.err, r.err
    assert not out.exists()


def test_fitted_read_out_net_torch_and_onnx_runtime_agree(tmp_path, cli):
    out = tmp_path / "w.safetensors"
    assert cli("fit", f"{READOUT}:readout", "--data", "digits", "-o", str(out)).code == 0
    graph = load(f"{READOUT}:readout")
    weights = load_weights(graph, out)
    x = (load_dataset("digits", (1, 8, 8)).test_x[:50].float() / 255.0).numpy()
    session = ort.InferenceSession(lower(graph, weights).SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"image": x})
    with torch.no_grad():
        want = build_module(graph, weights).eval()(torch.from_numpy(x)).numpy()
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max() + 1e-6


def test_training_leaves_a_fitted_subspace_as_solved(tmp_path, cli):
    from netc.runtime.train import TrainConfig, train

    spec = tmp_path / "t.net"
    spec.write_text("net t {\n input image: 1x8x8\n image -> flatten -> pca(10) -> fc(10)\n}\n")
    fitted = tmp_path / "fitted.safetensors"
    assert cli("fit", str(spec), "--data", "digits", "-o", str(fitted)).code == 0
    out = tmp_path / "trained.safetensors"
    cfg = TrainConfig(epochs=1, optimizer="adam", lr=0.01, progress=False, init=str(fitted),
                      output=str(out), checkpoint=str(tmp_path / "c.pt"))
    train(load(str(spec)), cfg, log=lambda line: None)
    before, after = load_file(str(fitted)), load_file(str(out))
    for key in ("pca1.components", "pca1.mean", "pca1.variance"):
        np.testing.assert_array_equal(after[key], before[key])
    assert not np.array_equal(after["fc1.weight"], before["fc1.weight"])
