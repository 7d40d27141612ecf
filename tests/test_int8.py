"""``netc compile --int8``: valid QDQ ONNX that ONNX Runtime runs, close to fp32; --keep-float
leaves the named layers in float; bad calibration data is one error and no file; and trained
nets (LeNet-5 on digits, Caffe's own LeNet) keep their accuracy within half a point.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CAFFE = Path(__file__).resolve().parent.parent / ".." / "shared" / "reference" / "caffe"


def session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def outputs(path, x: np.ndarray) -> np.ndarray:
    s = session(path)
    return s.run(None, {s.get_inputs()[0].name: x})[0].reshape(len(x), -1)


def feeding(model: onnx.ModelProto) -> dict[str, onnx.NodeProto]:
    """Each value name -> the node that writes it."""
    return {o: n for n in model.graph.node for o in n.output}


def is_quantized(model: onnx.ModelProto, node_name: str) -> bool:
    """Whether any input of the node comes through a DequantizeLinear (a QDQ group)."""
    writer = feeding(model)
    node = next(n for n in model.graph.node if n.name == node_name)
    return any(writer[i].op_type == "DequantizeLinear" for i in node.input if i in writer)


def digits_inputs(n: int = 200) -> np.ndarray:
    """Held-out digits as lenet5 takes them, through netc train's own preprocessing."""
    from netc.compiler.frontend.loader import load
    from netc.runtime.data import load_dataset, make_batch

    spec = load("lenet5").inputs["image"]
    data = load_dataset("digits", spec.shape)
    return make_batch(data.test_x[:n], spec).numpy(), data.test_y[:n].numpy()


def test_int8_lenet5_is_valid_onnx_that_runs_close_to_fp32(tmp_path, cli):
    fp32, int8 = tmp_path / "fp32.onnx", tmp_path / "int8.onnx"
    assert cli("compile", "lenet5", "-o", fp32).code == 0
    r = cli("compile", "lenet5", "--int8", "--calibrate", "digits", "--calibrate-images", "64",
            "-o", int8)
    assert r.code == 0, r.err
    model = onnx.load(int8)
    onnx.checker.check_model(model, full_check=True)
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert all(is_quantized(model, name) for name in ("c1", "c3", "c5", "f6"))
    assert '"calibration": "digits"' in {p.key: p.value for p in model.metadata_props}["netc.int8"]
    # The report: a table of layers, and the fidelity line on held-out (not calibration) inputs.
    assert "int8 error per layer" in r.out and "c3" in r.out
    assert "int8 vs fp32 on 64 held-out inputs: top-1 agreement" in r.out
    x, _ = digits_inputs()
    a, b = outputs(fp32, x), outputs(int8, x)
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cosine.min() > 0.99, cosine.min()  # seeded weights: logits near ties, so no top-1 bar


def test_keep_float_leaves_the_named_layers_and_blocks_in_float(tmp_path, cli):
    out = tmp_path / "int8.onnx"
    r = cli("compile", "lenet5", "--int8", "--calibrate", "digits:40", "--keep-float", "c1,s2,f6",
            "-o", out)
    assert r.code == 0, r.err
    assert "; kept in float: c1, s2.pool, s2.coef, s2.tanh, f6" in r.out
    model = onnx.load(out)
    weights = {t.name: t for t in model.graph.initializer}
    for name in ("c1", "s2.pool", "s2.coef", "s2.tanh", "f6"):
        assert not is_quantized(model, name), name
    for name in ("c1.weight", "f6.weight"):
        assert weights[name].data_type == onnx.TensorProto.FLOAT, name
    assert is_quantized(model, "c3") and is_quantized(model, "c5")  # the rest still int8
    assert weights["c3.weight_quantized"].data_type == onnx.TensorProto.INT8


@pytest.mark.parametrize("names, message", [
    ("c33", "lenet5 has no layer or block of that name; did you mean c3"),
])
def test_keep_float_of_a_missing_layer_is_one_error(tmp_path, cli, names, message):
    out = tmp_path / "int8.onnx"
    r = cli("compile", "lenet5", "--int8", "--calibrate", "digits:40", "--keep-float", names,
            "-o", out)
    assert r.code == 1 and message in r.err and not out.exists()
    assert r.err.count("\n") == 1 and "Traceback" not in r.err


def test_a_folded_batch_norm_names_the_conv_it_went_into(tmp_path, cli):
    out = tmp_path / "m.onnx"
    r = cli("compile", "cifar_resnet20", "--int8", "--calibrate", "digits:20", "--keep-float",
            "bn1", "-o", out)
    assert r.code == 1 and "keep conv1 float instead" in r.err and not out.exists()


def bad_inputs(tmp_path: Path) -> dict[str, tuple[str, str]]:
    """--calibrate values that must fail, and a piece of each error."""
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.png").write_bytes(b"not a png at all")
    (broken / "b.png").write_bytes(b"nor this")
    one = tmp_path / "one"
    one.mkdir()
    from PIL import Image

    Image.new("L", (8, 8), 128).save(one / "x.png")
    shape = tmp_path / "shape.npy"
    np.save(shape, np.zeros((4, 3, 32, 32), np.float32))
    nan = tmp_path / "nan.npy"
    arr = np.zeros((4, 1, 32, 32), np.float32)
    arr[2, 0, 5, 5] = np.nan
    np.save(nan, arr)
    junk = tmp_path / "junk.npy"
    junk.write_bytes(b"\x93NUMPY garbage")
    return {
        "no images": (str(empty), "no images found (1 other file skipped)"),
        "unreadable": (str(broken), "a.png: not an image Pillow can read"),
        "one image": (str(one), "1 images; at least 2 are needed"),
        "wrong shape": (str(shape), "an array of shape 4x3x32x32; image takes Nx1x32x32"),
        "non-finite": (str(nan), "(input 2) has non-finite values"),
        "not npy": (str(junk), "not an .npy array numpy can read"),
        "missing": (str(tmp_path / "nowhere"), "no such folder"),
        "bad dataset": ("folder:" + str(tmp_path / "nowhere"), "no such folder"),
    }


@pytest.mark.parametrize("case", ["no images", "unreadable", "one image", "wrong shape",
                                  "non-finite", "not npy", "missing", "bad dataset"])
def test_bad_calibration_input_is_one_error_and_no_file(tmp_path, cli, case):
    data, message = bad_inputs(tmp_path)[case]
    out = tmp_path / "int8.onnx"
    r = cli("compile", "lenet5", "--int8", "--calibrate", data, "-o", out)
    assert r.code == 1, r.out
    assert message in r.err, r.err
    assert r.err.startswith("netc: error:") and r.err.count("\n") == 1
    if case in ("no images", "missing", "bad dataset"):  # the option the user gave, named
        assert r.err.startswith(f"netc: error: --calibrate {data}"), r.err
    assert not out.exists() and list(tmp_path.glob("*.onnx*")) == []


@pytest.mark.parametrize("argv, message", [
    (["--int8"], "--int8 needs --calibrate DATA"),
    (["--calibrate", "digits"], "--calibrate and --keep-float go with --int8"),
    (["--int8", "--calibrate", "digits", "--fp16"], "cannot be combined with --fp16"),
    (["--int8", "--calibrate", "digits", "--opset", "11"], "needs opset 13 or later"),
])
def test_int8_flags_that_do_not_go_together(tmp_path, cli, argv, message):
    out = tmp_path / "m.onnx"
    r = cli("compile", "lenet5", *argv, "-o", out)
    assert r.code == 1 and message in r.err and not out.exists()


def test_trained_lenet5_keeps_its_accuracy_in_int8(tmp_path, cli):
    """LeNet-5 trained on digits by netc train: int8 within 0.5 points of fp32's top-1 and
    agreeing on at least 99% of the held-out digits (the issue's bars)."""
    weights = tmp_path / "l5.safetensors"
    r = cli("train", "lenet5", "--data", "digits", "--epochs", "8", "--optimizer", "adam",
            "--lr", "0.003", "--threads", "1", "--no-progress", "-o", weights,
            "--checkpoint", tmp_path / "l5.ckpt")
    assert r.code == 0, r.err
    fp32, int8 = tmp_path / "fp32.onnx", tmp_path / "int8.onnx"
    assert cli("compile", "lenet5", "--weights", weights, "-o", fp32).code == 0
    r = cli("compile", "lenet5", "--weights", weights, "--int8", "--calibrate", "digits",
            "--calibrate-images", "400", "-o", int8)
    assert r.code == 0, r.err
    x, labels = digits_inputs(400)  # the held-out split: calibration used the training split
    a, b = outputs(fp32, x).argmax(1), outputs(int8, x).argmax(1)
    acc_fp32, acc_int8 = (a == labels).mean(), (b == labels).mean()
    assert acc_fp32 > 0.9, acc_fp32  # it did learn, so the comparison means something
    assert abs(acc_int8 - acc_fp32) <= 0.005, (acc_fp32, acc_int8)
    assert (a == b).mean() >= 0.99, (a == b).mean()


def caffe_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as the conformance README feeds Caffe's LeNet (layout A)."""
    import torch
    import torch.nn.functional as F
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.from_numpy((digits.images * 255 / 16).astype(np.float32))[:, None]
    x = F.interpolate(x, size=(20, 20), mode="bilinear", align_corners=False)
    return (F.pad(x, (4, 4, 4, 4)) * 0.00390625).numpy(), digits.target


@pytest.mark.skipif(not (CAFFE / "conformance" / "lenet_mnist").is_dir(),
                    reason="shared/reference/caffe is not here")
def test_caffe_trained_lenet_keeps_its_accuracy_in_int8(tmp_path, cli):
    """Caffe's own MNIST LeNet, calibrated on an .npy of 1,000 digits fed as its README says,
    checked on the other 797."""
    x, labels = caffe_digits()
    np.save(tmp_path / "calib.npy", x[:1000])
    fp32, int8 = tmp_path / "fp32.onnx", tmp_path / "int8.onnx"
    caffemodel = CAFFE / "conformance" / "lenet_mnist" / "weights.caffemodel"
    prototxt = CAFFE / "lenet.prototxt"
    assert cli("compile", prototxt, "--weights", caffemodel, "-o", fp32).code == 0
    r = cli("compile", prototxt, "--weights", caffemodel, "--int8", "--calibrate",
            tmp_path / "calib.npy", "--calibrate-images", "1000", "-o", int8)
    assert r.code == 0, r.err
    held, truth = x[1000:], labels[1000:]
    a, b = outputs(fp32, held).argmax(1), outputs(int8, held).argmax(1)
    acc_fp32, acc_int8 = (a == truth).mean(), (b == truth).mean()
    assert acc_fp32 > 0.8, acc_fp32  # the README's reader bar is 0.84 over all 1,797
    assert abs(acc_int8 - acc_fp32) <= 0.005, (acc_fp32, acc_int8)
    assert (a == b).mean() >= 0.99, (a == b).mean()


def test_bench_shows_the_int8_row_beside_fp32(cli):
    import json

    r = cli("bench", "lenet5", "--int8", "digits:40", "--no-compile", "--repeat", "3",
            "--warmup", "1", "--batch", "2", "--threads", "1", "--json")
    assert r.code == 0, r.err
    rows = {row["backend"]: row for row in json.loads(r.out)["results"]}
    assert {"onnxruntime cpu", "onnxruntime cpu int8"} <= set(rows)
    int8 = rows["onnxruntime cpu int8"]
    assert int8["latency_ms"] > 0 and int8["vs_fp32"] > 0
    assert "int8 vs fp32 on" in r.err  # the quantizer's report, kept off --json's stdout


def test_sqnr_says_exact_and_no_signal_instead_of_zero_db():
    from netc.runtime.int8.report import sqnr

    x = np.linspace(-1, 1, 101)
    assert np.isinf(sqnr(x, x)) and np.isnan(sqnr(np.zeros(5), np.zeros(5)))
    assert sqnr([x, x], [x + 0.01, x + 0.01]) == pytest.approx(
        20 * np.log10(np.linalg.norm(x) / np.linalg.norm(np.full(101, 0.01))))


def test_report_rows_of_a_conv_with_its_relu_measure_rounding_not_the_relu(cli, tmp_path):
    """The quantizer drops a Relu after a conv (the uint8 range clips); the report shows one
    row, Conv+Relu under the conv's name, whose output SQNR is that of rounding (tens of dB),
    not of the negative values the Relu removes (about 3 dB)."""
    r = cli("compile", "cifar_resnet20", "--int8", "--calibrate", "digits:40", "-o",
            tmp_path / "r20.onnx")
    assert r.code == 0, r.err
    table = r.out.split("vs fp32\n")[1].split("\nint8 vs fp32")[0].splitlines()
    rows = [line.split() for line in table]
    assert any(row[1] == "Conv+Relu" for row in rows), table
    assert not any(row[0].endswith("relu1") for row in rows), table
    output_db = [float(row[3]) for row in rows if row[3] not in ("zero", "exact")]
    assert output_db and min(output_db) > 20, table


@pytest.mark.parametrize("form", ["folder:", ""])
def test_image_folders_calibrate_as_netc_train_and_netc_run_read_them(tmp_path, cli, form):
    """``folder:DIR`` (netc train's class folders) and a plain folder (netc run's images) both
    calibrate, and the class folders give the fidelity line its accuracies."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (tmp_path / "data" / label).mkdir(parents=True)
        for i in range(6):
            pixels = rng.integers(0, 256, (12, 12), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "data" / label / f"{i}.png")
    out = tmp_path / "int8.onnx"
    r = cli("compile", "lenet5", "--set", "classes=2", "--int8", "--calibrate",
            f"{form}{tmp_path / 'data'}", "-o", out)
    assert r.code == 0, r.err
    assert "10 calibration and 2 held-out inputs of 1x32x32" in r.out  # a fifth held out
    assert "top-1 accuracy fp32" in r.out and out.exists()


def test_keep_float_of_the_first_conv_keeps_its_own_bias(tmp_path, cli):
    """quant_pre_process merges equal initializers (c1's and s2.coef's zero biases); netc
    gives each layer its own back, so c1 stays wholly float and keeps its names."""
    out = tmp_path / "int8.onnx"
    r = cli("compile", "lenet5", "--int8", "--calibrate", "digits:40", "--keep-float", "c1",
            "-o", out)
    assert r.code == 0, r.err
    model = onnx.load(out)
    c1 = next(n for n in model.graph.node if n.name == "c1")
    assert list(c1.input) == ["image", "c1.weight", "c1.bias"]
    assert not is_quantized(model, "c1") and is_quantized(model, "s2.coef")
    assert "ERROR" not in r.err and r.err == ""
