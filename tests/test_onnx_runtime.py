"""The ONNX Runtime side: sessions and providers, images, ``netc run`` and ``netc bench``."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

from netc.compiler.ir import InputSpec
from netc.runtime.images import Preprocess, load_batch, prepare
from netc.runtime.ort import nvidia_driver_present, open_session, usable_providers
from netc.dsl.diagnostics import UserError


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Three sample photographs that ship with scikit-image, as files of two formats."""
    import skimage.data

    folder = tmp_path_factory.mktemp("images")
    paths = []
    for name, ext in (("astronaut", "png"), ("coffee", "jpg"), ("camera", "png")):
        path = folder / f"{name}.{ext}"
        Image.fromarray(getattr(skimage.data, name)()).save(path)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from netc.runtime.cli import main

    path = tmp_path_factory.mktemp("model") / "allcnn.onnx"
    assert main(["compile", "allcnn_c", "-o", str(path)]) == 0
    return path


# -- images -------------------------------------------------------------------------------------

def test_pixels_are_scaled_reordered_and_normalised():
    img = Image.new("RGB", (50, 40), (10, 20, 30))
    spec = InputSpec("image", (3, 8, 8), mean=(0.1, 0.2, 0.3), std=(0.5, 0.5, 0.5))
    x = prepare(img, Preprocess.from_spec(spec))
    assert x.shape == (3, 8, 8) and x.dtype == np.float32
    want = (np.array([10, 20, 30]) / 255 - [0.1, 0.2, 0.3]) / 0.5
    np.testing.assert_allclose(x[:, 4, 4], want, rtol=1e-6)
    caffe = Preprocess((3, 8, 8), mean=(104.0, 117.0, 123.0), scale=255.0, layout="bgr")
    np.testing.assert_allclose(prepare(img, caffe)[:, 0, 0], [30 - 104, 20 - 117, 10 - 123],
                               atol=1e-4)


def test_resize_then_centre_crop():
    # 40 wide, 20 high: black left half, white right half. Crop 1.0 to 10x10 keeps the middle.
    img = Image.fromarray(np.repeat([[0] * 20 + [255] * 20], 20, axis=0).astype(np.uint8))
    x = prepare(img, Preprocess.from_spec({"shape": [1, 10, 10]}, crop=1.0))
    assert x.shape == (1, 10, 10)
    assert (x[0, :, 0] == 0).all() and (x[0, :, -1] == 1).all()
    np.testing.assert_allclose(x[0, :, ::-1], 1 - x[0], atol=1e-6)  # symmetric about the middle
    # The ImageNet habit: 256 -> 224 means the crop is 0.875 of the shorter side.
    big = Image.new("RGB", (512, 256))
    assert prepare(big, Preprocess((3, 224, 224))).shape == (3, 224, 224)


def test_an_unreadable_image_is_a_user_error(tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    with pytest.raises(UserError, match="cannot read image"):
        load_batch([bad], Preprocess((3, 8, 8)))


# -- sessions -----------------------------------------------------------------------------------

@pytest.mark.skipif(nvidia_driver_present(), reason="this machine has an NVIDIA driver")
def test_without_a_gpu_only_the_cpu_is_asked_for_and_nothing_alarming_is_printed(model, capfd):
    assert set(ort.get_available_providers()) >= {"CPUExecutionProvider"}
    assert usable_providers() == ["CPUExecutionProvider"]
    session = open_session(model)
    assert session.provider == "CPUExecutionProvider" and not session.on_gpu
    assert session.describe().startswith(f"ONNX Runtime {ort.__version__} on CPUExecutionProvider")
    with pytest.raises(UserError, match="the cuda provider does not load"):
        open_session(model, "cuda")
    err = capfd.readouterr().err
    assert "Failed to" not in err and "error" not in err.lower()


def test_a_missing_or_broken_model_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no such model file"):
        open_session(tmp_path / "none.onnx")
    (tmp_path / "bad.onnx").write_bytes(b"\x00garbage")
    with pytest.raises(UserError, match="ONNX Runtime cannot load"):
        open_session(tmp_path / "bad.onnx")


# -- netc run -----------------------------------------------------------------------------------

def test_run_reports_the_top_classes_as_json(cli, model, images, tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(f"class {i}" for i in range(10)))
    out = tmp_path / "r.json"
    r = cli("run", model, *images, "--topk", "3", "--batch", "2", "--labels", labels,
            "--json", out)
    assert r.code == 0, r.err
    result = json.loads(out.read_text())
    assert result["provider"] == "CPUExecutionProvider"
    assert [x["image"] for x in result["results"]] == [str(p) for p in images]
    # The same numbers as running the session by hand on the prepared batch.
    session = open_session(model)
    meta = json.loads(session.session.get_modelmeta().custom_metadata_map["netc.inputs"])
    prep = Preprocess.from_spec(meta["image"])
    scores = session.run({"image": load_batch(images, prep)})[0]
    for row, res in zip(scores, result["results"]):
        top = [t["index"] for t in res["top"]]
        assert top == list(np.argsort(-row, kind="stable")[:3])
        assert res["top"][0]["label"] == f"class {top[0]}"
        assert res["top"][0]["score"] == pytest.approx(float(row.max()), rel=1e-6)
        assert 0 < sum(t["prob"] for t in res["top"]) <= 1 + 1e-9


def test_run_prints_a_table_and_reports_bad_input(cli, model, images, tmp_path):
    r = cli("run", model, images[0], "--topk", "2")
    assert r.code == 0 and r.out.splitlines()[0].startswith("ONNX Runtime")
    assert len(r.out.splitlines()) == 4  # provider, image, two classes
    bad = tmp_path / "x.jpg"
    bad.write_bytes(b"nope")
    r = cli("run", model, bad)
    assert r.code == 1 and "cannot read image" in r.err and "Traceback" not in r.err
    r = cli("run", model, images[0], "--mean", "0.5,0.5")
    assert r.code == 1 and "--mean needs 3 numbers" in r.err


# -- netc bench ---------------------------------------------------------------------------------

def test_bench_times_every_backend_on_the_same_input(cli):
    r = cli("bench", "lenet5", "--repeat", "2", "--warmup", "1", "--batch", "2", "--no-compile",
            "--json")
    assert r.code == 0, r.err
    report = json.loads(r.out)
    rows = {row["backend"]: row for row in report["results"]}
    assert set(rows) == {"torch eager", "onnxruntime cpu"}
    assert rows["torch eager"]["max_diff"] == 0
    assert rows["onnxruntime cpu"]["max_diff"] < 1e-6
    for row in rows.values():
        assert row["latency_ms"] > 0 and row["throughput"] > 0
        assert row["spread_ms"][0] <= row["latency_ms"] <= row["spread_ms"][1]


def test_bench_backends_take_turns_in_rotating_order():
    from netc.runtime.commands.bench import _Timer

    calls = []
    fns = [lambda x, i=i: calls.append(i) for i in range(3)]
    times = _Timer.rounds(fns, None, 4)
    assert [len(t) for t in times] == [4, 4, 4]
    assert calls == [0, 1, 2, 1, 2, 0, 2, 0, 1, 0, 1, 2]


def test_bench_reports_paired_ratios(cli):
    r = cli("bench", "lenet5", "--repeat", "3", "--warmup", "0", "--batch", "2", "--json",
            "--no-compile")
    assert r.code == 0, r.err
    rows = {row["backend"]: row for row in json.loads(r.out)["results"]}
    assert rows["torch eager"]["vs_eager"] == 1.0
    assert rows["onnxruntime cpu"]["vs_eager"] > 0
    assert all(isinstance(row["busy"], bool) for row in rows.values())


def test_bench_says_it_is_still_compiling(monkeypatch, capsys):
    """torch.compile's first calls take tens of seconds on a CPU: bench says so meanwhile."""
    import time

    import torch

    from netc.runtime.commands import bench

    monkeypatch.setattr(bench, "TICK", 0.05)
    monkeypatch.setattr(torch, "compile", lambda module: module)
    result, fn = bench._compiled(lambda x: x, lambda f: (lambda x: time.sleep(0.2)), 1, [1])
    err = capsys.readouterr().err
    assert fn is not None and result.note.startswith("compiling took")
    assert "torch.compile: compiling" in err and "still compiling" in err
    assert "torch.compile: compiled in" in err
