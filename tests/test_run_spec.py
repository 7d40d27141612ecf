"""``netc run``: a SPEC wherever an .onnx is accepted, warnings on random weights, the shipped
ImageNet-1k names for the zoo's ImageNet nets, and no top-k of an output that is no vector."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from netc.compiler.frontend.loader import load
from netc.compiler.lower_onnx.model import class_names
from netc.compiler.numerics.seeded_weights import init_weights
from netc.runtime.labels import parse_labels, shipped


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    import skimage.data

    path = tmp_path_factory.mktemp("img") / "coffee.png"
    Image.fromarray(skimage.data.coffee()).save(path)
    return path


def test_shipped_imagenet_names_are_in_torchvision_order():
    names = shipped("imagenet1k")
    assert len(names) == 1000
    # Spot checks against the index order of torchvision's and Caffe's ImageNet models.
    assert names[0] == "tench" and names[1] == "goldfish" and names[207] == "golden_retriever"
    assert names[281] == "tabby" and names[504] == "coffee_mug" and names[999] == "toilet_tissue"
    assert names[134] == names[517] == "crane"  # the bird and the machine, as in the source


def test_labels_files_are_plain_or_numbered():
    assert parse_labels("cat\ndog\n\n") == ["cat", "dog"]
    assert parse_labels("0, cat\n1, dog\n") == ["cat", "dog"]
    assert parse_labels("1, cat\n0, dog\n") == ["1, cat", "0, dog"]  # not in order: names


def test_zoo_imagenet_nets_get_the_imagenet_names(tmp_path):
    assert class_names(load("resnet18")) == "imagenet1k"
    assert class_names(load("vgg16")) == "imagenet1k"
    assert class_names(load("resnet18", {"classes": 10})) is None
    assert class_names(load("cifar_resnet20")) is None
    own = tmp_path / "mine.net"
    own.write_text("net mine { input image: 3x8x8\n image -> flatten -> fc(1000) }\n")
    assert class_names(load(str(own))) is None  # a user's net may mean other classes


def test_run_a_zoo_spec_warns_and_names_imagenet_classes(cli, image):
    r = cli("run", "resnet18", image, "--topk", "3", "--json", "-")
    assert r.code == 0, r.err
    assert "warning: resnet18 has random weights" in r.err and "--weights" in r.err
    top = json.loads(r.out)["results"][0]["top"]
    names = shipped("imagenet1k")
    assert [t["label"] for t in top] == [names[t["index"]] for t in top]


def test_run_a_spec_with_weights_matches_its_compiled_file(cli, image, tmp_path):
    from safetensors.numpy import save_file

    weights = tmp_path / "w.safetensors"
    save_file(init_weights(load("allcnn_c"), seed=7), str(weights))
    r = cli("run", "allcnn_c", image, "--weights", weights, "--json", "-")
    assert r.code == 0, r.err
    assert "random weights" not in r.err
    assert cli("compile", "allcnn_c", "-o", tmp_path / "a.onnx", "--weights", weights).code == 0
    f = cli("run", tmp_path / "a.onnx", image, "--json", "-")
    assert f.code == 0 and "random weights" not in f.err
    got, want = (json.loads(x.out)["results"][0]["top"] for x in (r, f))
    assert [t["index"] for t in got] == [t["index"] for t in want]
    np.testing.assert_allclose([t["score"] for t in got], [t["score"] for t in want], rtol=1e-6)
    assert "label" not in got[0]  # CIFAR-10 classes: no shipped names


def test_compiled_random_file_warns_and_flags_for_a_file_are_refused(cli, image, tmp_path):
    assert cli("compile", "lenet5", "-o", tmp_path / "l.onnx").code == 0
    r = cli("run", tmp_path / "l.onnx", image)
    assert r.code == 0 and "has random weights" in r.err and "compile it with --weights" in r.err
    r = cli("run", tmp_path / "l.onnx", image, "--weights", tmp_path / "w.safetensors")
    assert r.code == 1 and "--weights and --set apply to a SPEC" in r.err


def test_top_k_of_a_feature_map_is_refused(cli, image, tmp_path):
    spec = tmp_path / "seg.net"
    spec.write_text("net seg { input image: 3x32x32\n  output mask = image -> conv(2, 3, pad=1) }\n")
    r = cli("run", spec, image)
    assert r.code == 1 and "is 2x32x32 per image, not a vector of class scores" in r.err
    assert "class" not in r.out
    assert cli("compile", spec, "-o", tmp_path / "seg.onnx").code == 0
    r = cli("run", tmp_path / "seg.onnx", image)
    assert r.code == 1 and "not a vector of class scores" in r.err and "Traceback" not in r.err


def test_one_score_per_image_is_no_class_vector(cli, image, tmp_path):
    spec = tmp_path / "score.net"
    spec.write_text("net score { input image: 3x8x8\n  image -> flatten -> fc(1) }\n")
    r = cli("run", spec, image)
    assert r.code == 1 and "is one number per image, not a vector of class scores" in r.err
