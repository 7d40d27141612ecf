"""The Caffe importer layer by layer: each spelling of each parameter, joins, blobs, formats.

Each case is one Caffe layer on a 3x32x32 input; the test checks the netc text it becomes and
the shape netc then computes (the shape Caffe computes, worked out by hand in the table).
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netc.compiler.frontend.loader import load_text
from netc.compiler.importers.caffe import import_prototxt_text
from netc.compiler.ops.caffe_pool import caffe_pool_size as caffe_pool_out
from netc.compiler.ops.conv import window_out

HEADER = 'name: "t"\ninput: "data"\ninput_dim: 1\ninput_dim: 3\ninput_dim: 32\ninput_dim: 32\n'


def layer(name: str, type_: str, bottoms=("data",), top: str | None = None, body: str = "",
          v1: bool = False) -> str:
    kind = f"type: {type_}" if v1 else f'type: "{type_}"'
    lines = [f'name: "{name}"', kind] + [f'bottom: "{b}"' for b in bottoms]
    lines.append(f'top: "{top or name}"')
    return ("layers" if v1 else "layer") + " {\n  " + "\n  ".join(lines) + f"\n  {body}\n}}\n"


def imported(*layers: str, header: str = HEADER):
    text = import_prototxt_text(header + "".join(layers), "t.prototxt")
    return text, load_text(text, "t.net")


# (type, *_param body, the netc op text, the output shape)
CASES = [
    ("Convolution", "convolution_param { num_output: 8 kernel_size: 3 }", "conv(8, 3)",
     (8, 30, 30)),
    ("Convolution", "convolution_param { num_output: 8 kernel_h: 3 kernel_w: 5 pad_h: 1 "
     "pad_w: 2 stride_h: 2 stride_w: 1 }", "conv(8, [3, 5], stride=[2, 1], pad=[1, 2])",
     (8, 16, 32)),
    ("Convolution", "convolution_param { num_output: 8 kernel_size: 3 kernel_size: 5 "
     "stride: 2 stride: 1 pad: 0 pad: 1 }", "conv(8, [3, 5], stride=[2, 1], pad=[0, 1])",
     (8, 15, 30)),
    ("Convolution", "convolution_param { num_output: 8 kernel_size: 3 dilation: 2 }",
     "conv(8, 3, dilation=2)", (8, 28, 28)),
    ("Convolution", "convolution_param { num_output: 6 kernel_size: 1 group: 3 "
     "bias_term: false weight_filler { type: \"xavier\" } }",
     "conv(6, 1, groups=3, bias=false)", (6, 32, 32)),
    ("Pooling", "pooling_param { pool: MAX kernel_size: 3 stride: 2 }",
     "maxpool(3, stride=2, ceil=true)", (3, 16, 16)),  # ceil((32-3)/2)+1 = 16; floor: 15
    ("Pooling", "pooling_param { pool: AVE kernel_size: 2 stride: 2 }",
     "avgpool(2, ceil=true)", (3, 16, 16)),
    ("Pooling", "pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 1 }",
     "maxpool(3, stride=2, pad=1, ceil=true)", (3, 17, 17)),
    ("Pooling", "pooling_param { pool: MAX kernel_size: 3 stride: 2 round_mode: FLOOR }",
     "maxpool(3, stride=2)", (3, 15, 15)),
    ("Pooling", "pooling_param { pool: MAX kernel_size: 3 }",  # Caffe's stride defaults to 1
     "maxpool(3, stride=1, ceil=true)", (3, 30, 30)),
    ("Pooling", "pooling_param { pool: MAX kernel_h: 2 kernel_w: 4 stride_h: 2 stride_w: 4 }",
     "maxpool([2, 4], ceil=true)", (3, 16, 8)),
    ("Pooling", "pooling_param { pool: AVE global_pooling: true }", "gap", (3, 1, 1)),
    ("Pooling", "pooling_param { pool: MAX global_pooling: true }", "maxpool(32)", (3, 1, 1)),
    ("Pooling", "pooling_param { pool: 1 kernel_size: 2 stride: 2 }",  # an enum by number
     "avgpool(2, ceil=true)", (3, 16, 16)),
    ("ReLU", "", "relu", (3, 32, 32)),
    ("ReLU", "relu_param { negative_slope: 0.1 }", "leaky_relu(0.1)", (3, 32, 32)),
    ("Sigmoid", "", "sigmoid", (3, 32, 32)),
    ("TanH", "", "tanh", (3, 32, 32)),
    ("ELU", "elu_param { alpha: 0.5 }", "elu(0.5)", (3, 32, 32)),
    ("LRN", "lrn_param { local_size: 3 alpha: 0.0001 beta: 0.75 k: 2 }",
     "lrn(3, alpha=0.0001, beta=0.75, k=2.0)", (3, 32, 32)),
    ("LRN", "", "lrn(5, alpha=1.0, beta=0.75)", (3, 32, 32)),  # Caffe's alpha defaults to 1
    ("Dropout", "dropout_param { dropout_ratio: 0.3 }", "dropout(0.3)", (3, 32, 32)),
    ("Softmax", "", "softmax", (3, 32, 32)),
    ("InnerProduct", "inner_product_param { num_output: 10 }", "flatten -> fc(10)", (10,)),
    ("InnerProduct", "inner_product_param { num_output: 10 bias_term: false }",
     "flatten -> fc(10, bias=false)", (10,)),
    ("Flatten", "", "flatten", (3 * 32 * 32,)),
]


@pytest.mark.parametrize("type_, body, op, shape", CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_layer(type_, body, op, shape):
    text, graph = imported(layer("x", type_, body=body))
    assert f"output x = data -> {op} as x;" in text
    assert graph.nodes["x"].shape == shape


V1_TYPES = {"Convolution": "CONVOLUTION", "Pooling": "POOLING", "ReLU": "RELU",
            "LRN": "LRN", "Dropout": "DROPOUT", "Softmax": "SOFTMAX",
            "InnerProduct": "INNER_PRODUCT", "Flatten": "FLATTEN", "Sigmoid": "SIGMOID",
            "TanH": "TANH", "ELU": "ELU"}


@pytest.mark.parametrize("type_, body, op, shape", CASES[::3])
def test_the_v1_format_reads_the_same(type_, body, op, shape):
    text, graph = imported(layer("x", V1_TYPES[type_], body=body, v1=True))
    assert f"output x = data -> {op} as x;" in text


def test_input_layer_and_input_shape_are_inputs():
    body = 'input_param { shape: { dim: 2 dim: 3 dim: 16 dim: 8 } }'
    text, graph = imported(layer("data", "Input", bottoms=(), body=body),
                           layer("r", "ReLU"), header='name: "t"\n')
    assert "input data: 3x16x8" in text and graph.nodes["r"].shape == (3, 16, 8)
    header = 'input: "im" input_shape { dim: 1 dim: 1 dim: 9 dim: 9 }\n'
    text, graph = imported(layer("r", "ReLU", bottoms=("im",)), header=header)
    assert "input im: 1x9x9" in text and "net t {" in text


@pytest.mark.parametrize("operation, join", [("SUM", "add"), ("PROD", "mul"), ("MAX", "max"),
                                             ("", "add")])
def test_eltwise_becomes_a_join_of_named_branches(operation, join):
    conv = "convolution_param { num_output: 4 kernel_size: 1 }"
    coeff = "coeff: 1 coeff: 1" if operation != "PROD" else ""  # Caffe refuses coeff for PROD
    body = f"eltwise_param {{ operation: {operation} {coeff} }}" if operation else ""
    text, graph = imported(layer("a", "Convolution", body=conv),
                           layer("b", "Convolution", body=conv),
                           layer("add", "Eltwise", bottoms=("a", "b"), body=body))
    assert (f"output add_ = {join}[data -> conv(4, 1) as a, data -> conv(4, 1) as b] as add_;"
            in text)  # a label may not be a netc op's name: "add" would shadow the op
    assert graph.nodes["add_"].inputs == ("a", "b")


def test_concat_and_split_share_a_bound_value():
    conv = "convolution_param { num_output: 4 kernel_size: 1 }"
    text, graph = imported(layer("split", "Split", top="d1") .replace(
                               'top: "d1"', 'top: "d1"\n  top: "d2"'),
                           layer("a", "Convolution", bottoms=("d1",), body=conv),
                           layer("b", "Convolution", bottoms=("d2",), body=conv),
                           layer("cat", "Concat", bottoms=("a", "b"),
                                 body="concat_param { axis: 1 }"))
    assert "output cat = concat[data -> conv(4, 1) as a, data -> conv(4, 1) as b] as cat;" \
        in text
    assert graph.nodes["cat"].shape == (8, 32, 32)


def test_in_place_layers_split_a_blob_into_before_and_after():
    """A layer reading a blob before an in-place ReLU sees the conv; one after sees the ReLU."""
    conv = "convolution_param { num_output: 4 kernel_size: 3 pad: 1 }"
    pool = "pooling_param { pool: MAX kernel_size: 2 stride: 2 }"
    text, graph = imported(layer("c", "Convolution", body=conv),
                           layer("before", "Pooling", bottoms=("c",), body=pool),
                           layer("r", "ReLU", bottoms=("c",), top="c"),
                           layer("after", "Pooling", bottoms=("c",), body=pool),
                           layer("cat", "Concat", bottoms=("before", "after")))
    assert graph.nodes["before"].inputs == ("c",)
    assert graph.nodes["after"].inputs == ("r",)
    assert graph.nodes["r"].inputs == ("c",)
    assert "  c = data -> conv(4, 3, pad=1) as c;" in text  # read twice: bound once, by label


def test_batchnorm_and_scale_become_one_bn():
    bn = "batch_norm_param { use_global_stats: true eps: 0.001 }"
    text, graph = imported(layer("bn", "BatchNorm", top="data2", body=bn),
                           layer("sc", "Scale", bottoms=("data2",), top="data2",
                                 body="scale_param { bias_term: true }"),
                           layer("r", "ReLU", bottoms=("data2",), top="data2"))
    assert "-> bn(eps=0.001) as bn_  # with Scale sc" in text
    assert graph.nodes["r"].inputs == ("bn_",)


def test_layers_of_the_training_phase_are_skipped():
    train_only = layer("drop", "Dropout", body="include { phase: TRAIN }")
    train_data = layer("mnist", "Data", bottoms=(), body="include { phase: TRAIN }")
    text, graph = imported(train_data, layer("r", "ReLU"), train_only)
    assert "as drop" not in text and list(graph.outputs) == ["r"]
    assert "#   drop (Dropout): not in the TEST net (its include rules)" in text


def test_names_become_unique_valid_labels():
    text, graph = imported(layer("a/b", "ReLU", top="x"), layer("a_b", "ReLU", bottoms=("x",)),
                           layer("1x1", "ReLU", bottoms=("a_b",)))
    assert "-> relu as a_b -> relu as a_b_1 -> relu as _1x1;" in text
    assert "# Renamed to stay unique or valid: a_b -> a_b_1" in text


@given(size=st.integers(1, 40), kernel=st.integers(1, 7), stride=st.integers(1, 7),
       pad=st.integers(0, 3))
def test_caffe_and_netc_ceil_pooling_differ_only_when_stride_exceeds_kernel(size, kernel,
                                                                            stride, pad):
    """The rare case the importer reports: no padding and a stride longer than the window."""
    if 2 * pad > kernel or size + 2 * pad < kernel:
        return
    caffe = caffe_pool_out(size, kernel, stride, pad, ceil=True)
    if caffe != window_out(size, kernel, stride, pad, ceil=True):
        assert pad == 0 and stride > kernel
