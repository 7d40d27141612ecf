"""Caffe files of the wild: train_val files, forks' layers and spellings, several errors a file.

The conformance cases (test_caffe_conformance.py) hold Caffe's own numbers for most layers;
here are the layer types they lack (Slice, Crop, ShuffleChannel, ConvolutionDepthwise, a Scale
without BatchNorm on a feature map), checked against numpy, and how a train_val file becomes
its deploy net.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from netc.compiler.importers.caffe import import_prototxt_text
from netc.compiler.frontend.loader import load
from netc.compiler.lower_torch.module import build_module

pytestmark = pytest.mark.usefixtures("one_torch_thread")

HERE = Path(__file__).resolve().parent
CAFFE = HERE / ".." / ".." / "shared" / "reference" / "caffe"
TRAIN_VAL = HERE / "caffe" / "lenet_train_val.prototxt"
HEADER = 'name: "t"\ninput: "data"\ninput_dim: 2\ninput_dim: 6\ninput_dim: 8\ninput_dim: 10\n'


def layer(name, kind, bottoms=("data",), tops=None, body=""):
    tops = tops or (name,)
    lines = [f'layer {{ name: "{name}" type: "{kind}"']
    lines += [f'  bottom: "{b}"' for b in bottoms] + [f'  top: "{t}"' for t in tops]
    return "\n".join(lines) + f"\n  {body}\n}}\n"


def imported(tmp_path, *layers, header=HEADER):
    path = tmp_path / "t.prototxt"
    path.write_text(header + "".join(layers))
    text = import_prototxt_text(path.read_text(), str(path))
    return text, load(str(path))


# ---- train_val --------------------------------------------------------------------------------
def test_train_val_imports_as_its_deploy_net(tmp_path, cli):
    r = cli("import", "caffe", TRAIN_VAL, "--input", "1x28x28", "-o", tmp_path / "lenet.net")
    assert r.code == 0, r.err
    for line in ("train_val: mnist (Data): not in the TEST net (its include rules)",
                 "train_val: mnist (Data): became the input data: 1x28x28, scale=0.99609375",
                 "train_val: accuracy (Accuracy): a loss or a metric",
                 "train_val: loss (SoftmaxWithLoss): a loss or a metric"):
        assert line in r.err
    ours = load(str(tmp_path / "lenet.net"))
    deploy = load(str(CAFFE / "lenet.prototxt"))
    assert [n.name for n in ours if n.op != "input"] == \
        [n.name for n in deploy if n.op not in ("input", "softmax")]
    for node in ours:
        assert node.shape == deploy[node.name].shape
    # Caffe's own weights (saved from the train/test net) load into both, by name.
    weights = CAFFE / "conformance" / "lenet_mnist" / "weights.caffemodel"
    for spec in (tmp_path / "lenet.net", CAFFE / "lenet.prototxt"):
        r = cli("weights", "import", spec, weights, "-o", tmp_path / f"{spec.stem}.safetensors")
        assert r.code == 0 and "by name" in r.out, r.err
    x = torch.rand(3, 1, 28, 28)
    a, b = build_module(ours), build_module(deploy)
    from netc.runtime.weights import load_weights

    a.load_named(load_weights(ours, tmp_path / "lenet.safetensors"))
    b.load_named(load_weights(deploy, tmp_path / "lenet.safetensors"))
    with torch.no_grad():
        assert torch.equal(a(x), b(x, taps=["ip2"])["ip2"])


def test_a_data_layer_without_a_size_needs_input(tmp_path, cli):
    r = cli("import", "caffe", TRAIN_VAL, "-o", tmp_path / "x.net")
    assert r.code == 1 and "--input CxHxW" in r.err and "lenet_train_val.prototxt:" in r.err
    assert not (tmp_path / "x.net").exists()
    with pytest.raises(SystemExit) as exit_:  # a malformed --input is argparse's error
        cli("import", "caffe", TRAIN_VAL, "--input", "1x28")
    assert exit_.value.code == 2


def test_data_layers_that_declare_their_shape_and_preparation(tmp_path):
    data = ('layer { name: "d" type: "ImageData" top: "data" top: "label"\n'
            '  transform_param { crop_size: 12 mean_value: 104 mean_value: 117 '
            'mean_value: 123 }\n  image_data_param { source: "list.txt" batch_size: 8 } }\n')
    text, graph = imported(tmp_path, data, layer("r", "ReLU"), header='name: "t"\n')
    assert "input data: 3x12x12, scale=255.0, mean=[104.0, 117.0, 123.0], layout=bgr" in text
    memory = ('layer { name: "d" type: "MemoryData" top: "data" top: "label"\n'
              '  memory_data_param { batch_size: 1 channels: 1 height: 9 width: 7 } }\n')
    text, graph = imported(tmp_path, memory, layer("r", "ReLU"), header='name: "t"\n')
    assert graph.inputs["data"].shape == (1, 9, 7)


def test_phase_level_and_stage_rules_choose_the_test_net(tmp_path):
    rules = [layer("a", "ReLU", body="include { phase: TEST }"),
             layer("b", "ReLU", bottoms=("a",), body="exclude { phase: TEST }"),
             layer("c", "ReLU", bottoms=("a",), body="include { stage: \"deploy\" }"),
             layer("d", "ReLU", bottoms=("a",), body="include { min_level: 1 }"),
             layer("e", "ReLU", bottoms=("a",), body="exclude { not_stage: \"train\" }")]
    text, graph = imported(tmp_path, *rules)
    assert set(graph.outputs) == {"a"}  # b, c, d and e are not in the TEST net
    path = tmp_path / "t.prototxt"
    staged = import_prototxt_text(path.read_text(), str(path), stages=frozenset({"deploy",
                                                                                "train"}))
    assert "as c" in staged and "as e" in staged and "as b" not in staged


# ---- forks' spellings and the layers people meet ----------------------------------------------
LAYERS = {  # a layer's text -> what netc writes and the shape Caffe computes
    "ceil_mode false": (layer("p", "Pooling", body="pooling_param { pool: MAX kernel_size: 3 "
                                                   "stride: 2 ceil_mode: false }"),
                        "maxpool(3, stride=2) as p", (6, 3, 4)),
    "ceil_mode true": (layer("p", "Pooling", body="pooling_param { pool: AVE kernel_size: 3 "
                                                  "stride: 2 ceil_mode: true }"),
                       "avgpool(3, stride=2, ceil=true) as p", (6, 4, 5)),
    "pool pad past half": (layer("p", "Pooling", body="pooling_param { pool: MAX kernel_size: 3 "
                                                      "stride: 2 pad: 2 }"),
                           "caffe_pool(3, stride=2, pad=2) as p", (6, 5, 6)),
    "lrn within": (layer("n", "LRN", body="lrn_param { norm_region: WITHIN_CHANNEL "
                                          "local_size: 3 alpha: 0.5 }"),
                   "lrn_within(3, alpha=0.5, beta=0.75) as n", (6, 8, 10)),
    "eltwise coeff": (layer("e", "Eltwise", bottoms=("data", "data"),
                            body="eltwise_param { coeff: 0.5 coeff: -1 }"),
                      "add[data -> power(scale=0.5) as e_coeff1, data -> power(scale=-1.0) as e_coeff2] as e",
                      (6, 8, 10)),
    "batchnorm alone": (layer("b", "BatchNorm", body="batch_norm_param { eps: 0.001 }"),
                        "standardize(eps=0.001) as b", (6, 8, 10)),
    "scale alone": (layer("s", "Scale", body="scale_param { bias_term: true }"),
                    "scale as s", (6, 8, 10)),
    "power": (layer("w", "Power", body="power_param { power: 2 shift: 1 }"),
              "power(power=2.0, shift=1.0) as w", (6, 8, 10)),
    "reshape": (layer("r", "Reshape", body="reshape_param { shape { dim: 0 dim: -1 dim: 20 } }"),
                "reshape([24, 20]) as r", (24, 20)),
    "mvn": (layer("m", "MVN", body="mvn_param { across_channels: true }"),
            "mvn(across_channels=true, eps=1e-09) as m", (6, 8, 10)),
    "interp": (layer("i", "Interp", body="interp_param { zoom_factor: 2 }"),
               "upsample(size=[15, 19], mode=bilinear, align_corners=true) as i", (6, 15, 19)),
    "deconvolution": (layer("d", "Deconvolution", body="convolution_param { num_output: 4 "
                                                       "kernel_size: 4 stride: 2 pad: 1 }"),
                      "deconv(4, 4, stride=2, pad=1) as d", (4, 16, 20)),
    "prelu": (layer("p", "PReLU", body="prelu_param { channel_shared: true }"),
              "prelu(shared=true) as p", (6, 8, 10)),
    "depthwise": (layer("c", "ConvolutionDepthwise", body="convolution_param { num_output: 6 "
                                                          "kernel_size: 3 pad: 1 }"),
                  "conv(6, 3, pad=1, groups=6) as c", (6, 8, 10)),
    "shuffle": (layer("s", "ShuffleChannel", body="shuffle_channel_param { group: 3 }"),
                "channel_shuffle(3) as s", (6, 8, 10)),
    "fc along an axis": (layer("f", "InnerProduct", body="inner_product_param { num_output: 5 "
                                                         "axis: 2 }"),
                         "fc_axis(5, axis=2) as f", (6, 5)),
}


@pytest.mark.parametrize("case", sorted(LAYERS))
def test_layer_types_of_the_wild(case, tmp_path):
    text, want, shape = LAYERS[case]
    spec, graph = imported(tmp_path, text)
    assert want in spec, spec
    assert graph.nodes[graph.outputs[-1]].shape == shape


def test_slice_crop_shuffle_and_depthwise_compute_what_caffe_does(tmp_path):
    """One net through the torch module against numpy written from Caffe's layer code."""
    net = [layer("sl", "Slice", tops=("a", "b"), body="slice_param { slice_point: 2 }"),
           layer("cut", "Crop", bottoms=("b", "a"),
                 body="crop_param { axis: 1 offset: 1 offset: 0 offset: 0 }"),
           layer("dw", "ConvolutionDepthwise", bottoms=("a",),
                 body="convolution_param { num_output: 2 kernel_size: 3 pad: 1 bias_term: "
                      "false }"),
           layer("sum", "Eltwise", bottoms=("cut", "dw")),
           layer("sh", "ShuffleChannel", bottoms=("data",), body="shuffle_channel_param { "
                                                                "group: 2 }")]
    _, graph = imported(tmp_path, *net)
    module = build_module(graph, seed=3).eval()
    x = torch.randn(2, 6, 8, 10)
    with torch.no_grad():
        out = dict(zip(graph.outputs, module(x)))
    xs = x.numpy()
    a, b = xs[:, :2], xs[:, 2:]
    k = module.state_dict()["dw.weight"].numpy()  # (2, 1, 3, 3)
    padded = np.pad(a, ((0, 0), (0, 0), (1, 1), (1, 1)))
    dw = np.zeros_like(a)
    for c in range(2):
        for i in range(3):
            for j in range(3):
                dw[:, c] += k[c, 0, i, j] * padded[:, c, i:i + 8, j:j + 10]
    np.testing.assert_allclose(out["sum"], b[:, 1:3] + dw, rtol=1e-5, atol=1e-5)
    shuffled = xs.reshape(2, 2, 3, 8, 10).transpose(0, 2, 1, 3, 4).reshape(2, 6, 8, 10)
    np.testing.assert_array_equal(out["sh"], shuffled)


def test_every_error_of_a_file_is_reported_in_file_order(tmp_path, cli):
    bad = [layer("c1", "Convolution", body="convolution_param { num_output: 4 kernal_size: 3 }"),
           layer("r1", "ReLU", bottoms=("c1",)),  # reads a failed layer: skipped quietly
           layer("w", "Warp"),
           layer("p", "Pooling", body="pooling_param { pool: MAX kernel_size: 2 }"),
           layer("det", "DetectionOutput", bottoms=("p",))]
    (tmp_path / "bad.prototxt").write_text(HEADER + "".join(bad))
    r = cli("import", "caffe", tmp_path / "bad.prototxt")
    assert r.code == 1
    errors = [line for line in r.err.splitlines() if ": error: " in line]
    assert len(errors) == 3, r.err
    assert "unknown parameter 'kernal_size'" in errors[0]
    assert "unknown layer type 'Warp'" in errors[1]
    assert "layer 'det' (DetectionOutput) is an SSD detection head" in errors[2]
    lines = [int(e.split(":")[1]) for e in errors]
    assert lines == sorted(lines) and "3 errors" in r.err
