"""The rest of Caffe's layers (issue 21): SENet's Axpy and Scale by a second blob, SSD's Normalize
and Permute, and the public files that use them.

Each layer runs through netc's torch module and its ONNX model in ONNX Runtime, against numpy
written from the Caffe fork's layer code (axpy_layer.cpp, scale_layer.cpp, normalize_layer.cpp,
permute_layer.cpp). The files (tests/caffe/SOURCES.md) must import with Caffe's parameter count:
the sum of the learnable blobs' sizes, counted here from the prototxt itself by
:func:`caffe_count`, which knows nothing of netc.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from netc.compiler.analyses.summary import summarize
from netc.compiler.frontend.loader import load
from netc.compiler.importers.caffe import import_prototxt_text
from netc.compiler.lower_onnx.model import lower
from netc.compiler.lower_torch.module import build_module
from netc.compiler.numerics.seeded_weights import init_weights
from netc.dsl.diagnostics import DiagnosticError
from tests.test_onnx_zoo import sane_weights

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FILES = Path(__file__).resolve().parent / "caffe"
RNG = np.random.default_rng(21)


# ---- running a small net both ways ------------------------------------------------------------
def header(**inputs: tuple[int, ...]) -> str:
    lines = ['name: "t"']
    for name, dims in inputs.items():
        lines.append(f'input: "{name}"')
        lines += [f"input_dim: {d}" for d in dims]
    return "\n".join(lines) + "\n"


def layer(name, kind, bottoms, body=""):
    lines = [f'layer {{ name: "{name}" type: "{kind}"']
    lines += [f'  bottom: "{b}"' for b in bottoms] + [f'  top: "{name}"', f"  {body}", "}"]
    return "\n".join(lines) + "\n"


def imported(tmp_path, text):
    path = tmp_path / "t.prototxt"
    path.write_text(text)
    return import_prototxt_text(text, str(path)), load(str(path))


def run_both(graph, feeds: list[np.ndarray], weights=None) -> tuple[np.ndarray, np.ndarray]:
    """The last output by the torch module and by ONNX Runtime, at the oldest and newest opsets
    (ReduceSumSquare's axes move from an attribute to an input at 18)."""
    weights = weights or init_weights(graph, seed=3)
    module = build_module(graph, weights).eval()
    with torch.no_grad():
        outs = module(*(torch.from_numpy(f) for f in feeds))
    ref = (outs[-1] if isinstance(outs, (tuple, list)) else outs).numpy()
    for opset in (13, 18):
        model = lower(graph, weights, opset=opset)
        session = ort.InferenceSession(model.SerializeToString(),
                                       providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        got = session.run(None, dict(zip(names, feeds)))[-1]
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())
    return ref, weights


def normal(*shape) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


# ---- Axpy -----------------------------------------------------------------------------------
def test_axpy_is_a_per_channel_scale_plus_y(tmp_path):
    text = header(a=(2, 6, 1, 1), x=(2, 6, 5, 7), y=(2, 6, 5, 7)) + \
        layer("se", "Axpy", ("a", "x", "y"))
    spec, graph = imported(tmp_path, text)
    assert "axpy[a, x, y] as se" in spec
    a, x, y = normal(2, 6, 1, 1), normal(2, 6, 5, 7), normal(2, 6, 5, 7)
    out, _ = run_both(graph, [a, x, y])
    # axpy_layer.cpp: top = y; then caffe_axpy(H·W, a[n·C + c], x[n, c], top[n, c])
    want = y.copy()
    for n in range(2):
        for c in range(6):
            want[n, c] += a.reshape(-1)[n * 6 + c] * x[n, c]
    np.testing.assert_allclose(out, want, rtol=1e-6, atol=1e-6)


def test_axpy_refuses_what_its_layer_checks(tmp_path):
    for dims, message in (((2, 6, 2, 1), "a (bottom 1) is 6x2x1"),
                          ((2, 5, 1, 1), "a (bottom 1) is 5x1x1")):
        text = header(a=dims, x=(2, 6, 5, 7), y=(2, 6, 5, 7)) + \
            layer("se", "Axpy", ("a", "x", "y"))
        with pytest.raises(DiagnosticError, match=re.escape(message)):
            imported(tmp_path, text)
    text = header(a=(2, 6, 1, 1), x=(2, 6, 5, 7), y=(2, 6, 5, 6)) + \
        layer("se", "Axpy", ("a", "x", "y"))
    with pytest.raises(DiagnosticError, match="x .bottom 2. is 6x5x7 and y .bottom 3. is 6x5x6"):
        imported(tmp_path, text)


# ---- Scale by a second blob -------------------------------------------------------------------
# How a file makes its N x C gate from N x C x 1 x 1: a Reshape (SE-BN-Inception), or a flat
# vector as an InnerProduct gives (shicai/SENet-Caffe's se_resnet_50_v1_deploy.prototxt).
GATES = {
    "reshape": (layer("g_flat", "Reshape", ("g",), "reshape_param { shape { dim: 0 dim: 0 } }"),
                "mul[x, g -> reshape([6]) as g_flat] as sc"),
    "flatten": (layer("g_flat", "Flatten", ("g",)), "mul[x, g -> flatten as g_flat] as sc"),
}


def se_scale(body="scale_param { axis: 0 bias_term: false }", gate="reshape") -> str:
    """The excitation of an SE block: a gate of N x C, then Scale axis 0 by it."""
    return (header(x=(2, 6, 5, 7), g=(2, 6, 1, 1)) + GATES[gate][0]
            + layer("sc", "Scale", ("x", "g_flat"), body))


@pytest.mark.parametrize("gate", sorted(GATES))
def test_scale_by_a_second_blob_weighs_each_sample_and_channel(tmp_path, gate):
    spec, graph = imported(tmp_path, se_scale(gate=gate))
    assert GATES[gate][1] in spec
    x, g = normal(2, 6, 5, 7), normal(2, 6, 1, 1)
    out, _ = run_both(graph, [x, g])
    # scale_layer.cpp with two bottoms, axis 0: outer_dim 1, scale_dim N·C, inner_dim H·W
    s = g.reshape(-1)
    want = np.stack([x.reshape(12, 35)[i] * s[i] for i in range(12)]).reshape(2, 6, 5, 7)
    np.testing.assert_allclose(out, want, rtol=1e-6, atol=1e-6)
    assert summarize(graph).params == 0  # the scale is a blob, not a learned weight


@pytest.mark.parametrize("body, message", [
    ("scale_param { axis: 1 }", "along axis 1"),
    ("scale_param { axis: 0 bias_term: true }", "with bias_term learns a bias"),
    ("scale_param { axis: 0 offset: 1 }", "unknown parameter 'offset'"),
])
def test_scale_by_a_second_blob_refuses_what_netc_cannot_keep(tmp_path, body, message):
    with pytest.raises(DiagnosticError, match=message):
        imported(tmp_path, se_scale(body))


# ---- Normalize --------------------------------------------------------------------------------
def caffe_normalize(x, scale, across_spatial, eps=1e-10):
    """normalize_layer.cpp's Forward_cpu: the norm with eps inside the square root (across the
    map: √(Σx² + eps); per position: eps is the gemv's starting value, √(eps + Σ_c x²)), then
    the scale, one per channel or one for all."""
    out = np.empty_like(x, dtype=np.float64)
    for n in range(x.shape[0]):
        xn = x[n].astype(np.float64)
        if across_spatial:
            norm = np.sqrt(np.sum(xn * xn) + eps)
        else:
            norm = np.sqrt(eps + np.sum(xn * xn, axis=0, keepdims=True))
        y = xn / norm
        out[n] = y * (scale[0] if scale.size == 1 else scale[:, None, None])
    return out


@pytest.mark.parametrize("across, shared", [(False, False), (True, True), (False, True),
                                            (True, False)])
def test_normalize_is_ssds_l2_norm_with_its_scale(tmp_path, across, shared):
    body = (f"norm_param {{ across_spatial: {str(across).lower()} "
            f"channel_shared: {str(shared).lower()} "
            "scale_filler { type: \"constant\" value: 20 } }")
    spec, graph = imported(tmp_path, header(data=(2, 6, 5, 7))
                           + layer("n", "Normalize", ("data",), body))
    assert "init=20.0" in spec and ("across_spatial=false" in spec) != across
    assert summarize(graph).params == (1 if shared else 6)
    weights = init_weights(graph, seed=3)
    np.testing.assert_array_equal(weights["n.weight"], np.full(1 if shared else 6, 20.0))
    weights["n.weight"] = RNG.uniform(5, 25, weights["n.weight"].shape).astype(np.float32)
    x = normal(2, 6, 5, 7)
    out, _ = run_both(graph, [x], weights)
    want = caffe_normalize(x, weights["n.weight"], across)
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)


def test_normalize_keeps_eps_inside_the_square_root(tmp_path):
    """A zero vector gives 0, not NaN; a tiny one is divided by √eps, not by its own norm."""
    body = "norm_param { across_spatial: false channel_shared: true eps: 0.01 }"
    spec, graph = imported(tmp_path, header(data=(1, 3, 2, 2))
                           + layer("n", "Normalize", ("data",), body))
    assert "normalize(across_spatial=false, eps=0.01)" in spec
    x = np.zeros((1, 3, 2, 2), np.float32)
    x[0, :, 0, 0] = 1e-3
    out, _ = run_both(graph, [x])
    np.testing.assert_allclose(out, caffe_normalize(x, np.ones(1), False, eps=0.01), rtol=1e-5)
    assert out[0, 0, 1, 1] == 0 and abs(out[0, 0, 0, 0] - 1e-3 / np.sqrt(0.01 + 3e-6)) < 1e-7


def test_normalize_writes_reducesumsquare_in_each_opsets_form(tmp_path):
    """ReduceSumSquare's axes are an attribute up to opset 17 and an input from 18."""
    _, graph = imported(tmp_path, header(data=(1, 4, 3, 3)) + layer(
        "n", "Normalize", ("data",), "norm_param { across_spatial: false }"))
    for opset, inputs, attrs in ((13, 1, ["axes", "keepdims"]), (17, 1, ["axes", "keepdims"]),
                                 (18, 2, ["keepdims"])):
        (node,) = [n for n in lower(graph, opset=opset).graph.node
                   if n.op_type == "ReduceSumSquare"]
        assert (len(node.input), sorted(a.name for a in node.attribute)) == (inputs, attrs)


def test_normalize_defaults_are_caffes(tmp_path):
    spec, graph = imported(tmp_path, header(data=(1, 4, 3, 3))
                           + layer("n", "Normalize", ("data",)))
    assert "-> normalize as n" in spec  # across_spatial, channel_shared, eps 1e-10, scale 1
    assert summarize(graph).params == 1


def test_normalize_refuses_a_scale_float32_cannot_hold_and_a_sequence(tmp_path, cli):
    """The scale is a float32 tensor: init=1e39 would be stored as inf, so it is refused as
    prelu's and layer_scale's initial values are; a token sequence is named as one."""
    path = tmp_path / "n.net"
    path.write_text("net n {\n  input image: 4x3x3\n  image -> normalize(init=1e39)\n}\n")
    r = cli("check", path)
    assert r.code == 1 and "Traceback" not in r.err
    assert r.err.startswith(f"{path}:3:") and ("normalize: parameter 'init' must be a finite "
                                               "float32 number") in r.err.splitlines()[0]
    path.write_text("net n {\n  input image: 4x3x3\n  image -> tokens -> normalize\n}\n")
    r = cli("check", path)
    assert r.code == 1 and r.err.startswith(f"{path}:3:") and (
        "normalize needs a CxHxW map or a flat vector; got a token sequence LxD 9x4 "
        "(transpose(0, 1) -> reshape([D, H, W]) makes a map of it)") in r.err.splitlines()[0]


@pytest.mark.parametrize("body", ["leaky_relu(1e39)", "elu(-1e39)", "power(2, scale=1e39)",
                                  "power(shift=-4e38)", "lrn_within(alpha=1e39)",
                                  "lrn(3, beta=1e39)"])
def test_a_value_the_float32_file_cannot_hold_is_refused(tmp_path, body):
    """Slopes, scales and exponents are float32 in torch and in the ONNX file: past 3.4e38 they
    would be inf there, so the spec is refused, as prelu's and normalize's initial values are."""
    path = tmp_path / "f.net"
    path.write_text(f"net f {{\n  input image: 4x5x5\n  image -> {body}\n}}\n")
    with pytest.raises(DiagnosticError, match="must be a finite float32 number; got "):
        load(str(path))


def test_normalize_takes_its_scale_from_a_caffemodel(tmp_path, cli):
    """SSD's trained scale (one blob of C values) lands in ``normalize``'s ``weight`` by the
    layer's name, and the net then computes what Caffe's layer does with it."""
    from safetensors.numpy import load_file

    from netc.compiler.importers.caffe.caffemodel import CaffeLayer, CaffeModel, write_caffemodel

    body = ("norm_param { across_spatial: false channel_shared: false "
            "scale_filler { type: \"constant\" value: 20 } }")
    (tmp_path / "n.prototxt").write_text(header(data=(1, 6, 5, 7))
                                         + layer("conv4_3_norm", "Normalize", ("data",), body))
    scale = RNG.uniform(5, 25, 6).astype(np.float32)
    write_caffemodel(tmp_path / "n.caffemodel", CaffeModel("n", [
        CaffeLayer("conv4_3_norm", "Normalize", ["data"], ["conv4_3_norm"], [scale], None)]))
    r = cli("weights", "import", tmp_path / "n.prototxt", tmp_path / "n.caffemodel",
            "-o", tmp_path / "n.safetensors")
    assert r.code == 0, r.err
    weights = load_file(str(tmp_path / "n.safetensors"))
    np.testing.assert_array_equal(weights["conv4_3_norm.weight"], scale)
    x = normal(1, 6, 5, 7)
    out, _ = run_both(load(str(tmp_path / "n.prototxt")), [x], dict(weights))
    np.testing.assert_allclose(out, caffe_normalize(x, scale, False), rtol=1e-5, atol=1e-6)


# ---- Permute ----------------------------------------------------------------------------------
@pytest.mark.parametrize("orders, caffe_order, written", [
    ((0, 2, 3, 1), (0, 2, 3, 1), "permute([1, 2, 0])"),  # SSD's, before each head's Flatten
    ((0, 3), (0, 3, 1, 2), "permute([2, 0, 1])"),  # the axes order does not name follow
    ((0, 1, 2, 3), (0, 1, 2, 3), "permute([0, 1, 2])"),
])
def test_permute_orders_the_axes_as_caffe_does(tmp_path, orders, caffe_order, written):
    body = "permute_param { " + " ".join(f"order: {o}" for o in orders) + " }"
    spec, graph = imported(tmp_path, header(data=(2, 6, 5, 7))
                           + layer("p", "Permute", ("data",), body)
                           + layer("f", "Flatten", ("p",)))
    assert f"{written} as p" in spec
    x = normal(2, 6, 5, 7)
    out, _ = run_both(graph, [x])
    # permute_layer.cpp: top[i] = bottom[old_idx], the top's axis j being the bottom's order[j]
    np.testing.assert_array_equal(out, np.transpose(x, caffe_order).reshape(2, -1))


@pytest.mark.parametrize("orders, message", [
    ((1, 0, 2, 3), "moves the batch axis"),
    ((0, 4), "must name distinct axes"),
    ((0, 2, 2), "must name distinct axes"),
])
def test_permute_refuses_an_order_netc_cannot_keep(tmp_path, orders, message):
    body = "permute_param { " + " ".join(f"order: {o}" for o in orders) + " }"
    with pytest.raises(DiagnosticError, match=message):
        imported(tmp_path, header(data=(2, 6, 5, 7)) + layer("p", "Permute", ("data",), body))


# ---- the files ----------------------------------------------------------------------------------
def caffe_count(text: str) -> int:
    """Caffe's parameter count of a deploy prototxt, from its text alone: conv weights
    (out · in/group · kh · kw) and biases, InnerProduct on a 1x1 map, the Scale after each
    BatchNorm (γ and β), Normalize's scale. Only channel counts are tracked (the files' one
    InnerProduct reads a 7x7 average pool of a 7x7 map, which the test checks)."""
    channels: dict[str, int] = {}
    total = 0
    for m in re.finditer(r"input_shape \{\s*dim: \d+\s*dim: (\d+)|dim: 1 \n\s*dim: (\d+) \n",
                         text):
        channels["data"] = int(m.group(1) or m.group(2))
    for block in re.findall(r"^layer \{.*?^\}", text, flags=re.S | re.M):
        kind = re.search(r'type: "(\w+)"', block).group(1)
        if kind == "Input":  # its shape was read above
            continue
        bottoms = re.findall(r'bottom: "([^"]+)"', block)
        top = re.search(r'top: "([^"]+)"', block).group(1)
        number = {k: int(v) for k, v in re.findall(r"(num_output|kernel_size|group): (\d+)",
                                                   block)}
        c = channels.get(bottoms[0]) if bottoms else None
        if kind == "Convolution":
            out, k, g = number["num_output"], number["kernel_size"], number.get("group", 1)
            total += out * (c // g) * k * k + (0 if "bias_term: false" in block else out)
            c = out
        elif kind == "InnerProduct":
            total += number["num_output"] * (c + 1)
            c = number["num_output"]
        elif kind == "Scale" and len(bottoms) == 1:
            total += c * (2 if "bias_term: true" in block else 1)
        elif kind == "Normalize":
            total += 1 if "channel_shared: false" not in block else c
        elif kind == "Concat":
            c = sum(channels[b] for b in bottoms)
        channels[top] = c
    return total


def cut_detection_head(text: str) -> str:
    """SSD's deploy file up to its detection head, as netc's refusal of PriorBox asks: the
    PriorBox layers and their Concat, the confidences' Reshape/Softmax(axis 2)/Flatten, and
    DetectionOutput go; the loc and conf heads' Concats are the outputs. No learned layer goes."""
    drop = ("PriorBox", "DetectionOutput")
    kept = []
    for block in re.split(r"(?=^layer \{)", text, flags=re.M):
        name = re.search(r'name: "([^"]+)"', block)
        if any(f'type: "{d}"' in block for d in drop) or (
                name and name.group(1) in ("mbox_priorbox", "mbox_conf_reshape",
                                           "mbox_conf_softmax", "mbox_conf_flatten")):
            continue
        kept.append(block)
    return "".join(kept)


@pytest.mark.parametrize("name", ["SE-ResNet-50", "SE-ResNeXt-50", "SE-BN-Inception"])
def test_the_senet_authors_files_import_with_caffes_count(name):
    text = (FILES / f"{name}.prototxt").read_text()
    graph = load(str(FILES / f"{name}.prototxt"))
    assert summarize(graph).params == caffe_count(text)
    assert graph[graph.outputs[0]].shape == (1000,)
    ops = [n.op for n in graph]
    # Axpy in the ResNets, a Scale by the N x C gate (axis 0) in SE-BN-Inception
    assert ops.count("axpy") == text.count('type: "Axpy"')
    assert ops.count("mul") == text.count("axis: 0")
    assert ops.count("axpy") + ops.count("mul") == {"SE-BN-Inception": 10}.get(name, 16)
    if name == "SE-ResNet-50":
        # The README's "107 M" caffemodel: these float32 values and the batch-norm statistics
        assert caffe_count(text) == 28_088_024
    pool5 = next(n for n in graph if n.name == "pool5_7x7_s1")
    assert pool5.shape[1:] == (1, 1)  # caffe_count's premise for the InnerProduct


def test_ssd_imports_up_to_its_detection_head_with_caffes_count(tmp_path):
    text = (FILES / "SSD_300x300_deploy.prototxt").read_text()
    with pytest.raises(DiagnosticError, match="PriorBox. is an SSD detection head"):
        load(str(FILES / "SSD_300x300_deploy.prototxt"))
    cut = tmp_path / "ssd.prototxt"
    cut.write_text(cut_detection_head(text))
    graph = load(str(cut))
    assert summarize(graph).params == caffe_count(text)
    assert [n.op for n in graph].count("permute") == 12 == text.count('type: "Permute"')
    norm = next(n for n in graph if n.op == "normalize")
    assert (norm.shape, norm.attrs.across_spatial, norm.attrs.init) == ((512, 38, 38), False, 20)
    # 8732 boxes: 4 coordinates each, 21 class scores each
    assert [graph[o].shape for o in graph.outputs] == [(8732 * 4,), (8732 * 21,)]


@pytest.mark.parametrize("name", ["SE-ResNet-50", "SE-BN-Inception"])
def test_the_senet_files_run_the_same_in_torch_and_onnx_runtime(name):
    """Each whole file at full size, on seeded weights with moderate batch-norm statistics
    (tests/test_onnx_zoo.py's): Axpy, and the excitation's Reshape to N x C with the Scale by
    it (a broadcast ``mul``), agree between the two lowerings; the logits are compared."""
    graph = load(str(FILES / f"{name}.prototxt"))
    x = normal(1, 3, 224, 224)
    weights = sane_weights(graph, seed=5)
    module = build_module(graph, weights).eval()
    with torch.no_grad():
        ref = module(torch.from_numpy(x), taps="classifier")["classifier"].numpy()
    session = ort.InferenceSession(lower(graph, weights, outputs=["classifier"])
                                   .SerializeToString(), providers=["CPUExecutionProvider"])
    out = session.run(["classifier"], {session.get_inputs()[0].name: x})[0]
    assert ref.shape == (1, 1000) and ref.std() > 0.01  # not a constant
    assert np.abs(out - ref).max() <= 1e-5 * np.abs(ref).max() + 1e-6


@pytest.mark.parametrize("body, where, message", [
    ('layer { name: "n" type: "Normalize" bottom: "data" top: "n"\n'
     "  norm_param { eps: -0.5 } }", (8, 16), "eps must not be negative; got -0.5"),
    ('layer { name: "n" type: "Normalize" bottom: "data" top: "n"\n'
     "  norm_param { scale_filler: 20 } }", (8, 16), "scale_filler is a message"),
    ('layer { name: "p" type: "Permute" bottom: "data" top: "p"\n'
     "  permute_param { order: 0 order: -1 } }", (8, 35), "order must be at least 0"),
    ('layer { name: "a" type: "Axpy" bottom: "data" bottom: "data" top: "a" }',
     (7, 19), "takes 3 bottom(s); got 2"),
])
def test_a_bad_layer_is_one_located_error(tmp_path, cli, body, where, message):
    path = tmp_path / "bad.prototxt"
    path.write_text(header(data=(1, 4, 3, 3)) + body + "\n")
    r = cli("check", path)
    assert r.code == 1 and "Traceback" not in r.err
    errors = [line for line in r.err.splitlines() if ": error: " in line]
    assert len(errors) == 1 and message in errors[0], r.err
    assert errors[0].split(": error: ")[0].endswith(f"bad.prototxt:{where[0]}:{where[1]}")
