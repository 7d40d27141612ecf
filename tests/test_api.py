"""``import netc``: the public API loads, checks, summarises and lowers specs as the command line
does, raises one exception type for every mistake, and stays small, typed and documented."""

from __future__ import annotations

import dataclasses
import doctest
import inspect
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import netc
import netc.api
import netc.summary
from netc.dsl.diagnostics import DiagnosticError, UserError

ROOT = Path(__file__).resolve().parents[1]
TINY = """
net tiny(classes=5) {
  input image: 3x8x8
  image -> conv(4, 3) as conv1 -> relu -> flatten -> fc(classes) as fc1
}
"""

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# -- the surface ------------------------------------------------------------------------------

def test_all_is_the_public_surface():
    # Adding a public name is a decision: make it here, in the README and in the docstrings.
    assert sorted(netc.__all__) == ["Diagnostic", "Net", "NetcError", "Span", "Summary",
                                    "SummaryRow", "__version__", "check", "load", "zoo"]
    assert all(hasattr(netc, name) for name in netc.__all__)
    public = {n for n, v in vars(netc).items()
              if not n.startswith("_") and not inspect.ismodule(v)}  # subpackages are not API
    assert public <= set(netc.__all__), public - set(netc.__all__)


def _public_callables():
    for name in netc.__all__:
        obj = getattr(netc, name)
        if inspect.isfunction(obj):
            yield name, obj
        elif inspect.isclass(obj):
            yield name, obj
            for attr, member in vars(obj).items():
                if attr.startswith("_"):
                    continue
                member = member.fget if isinstance(member, property) else member
                if inspect.isfunction(member):
                    yield f"{name}.{attr}", member


def test_every_public_name_is_documented_and_annotated():
    undocumented, unannotated = [], []
    for name, obj in _public_callables():
        if not (inspect.getdoc(obj) or "").strip():
            undocumented.append(name)
        if inspect.isfunction(obj):
            sig = inspect.signature(obj)
            if sig.return_annotation is inspect.Signature.empty:
                unannotated.append(f"{name} -> ?")
            unannotated += [f"{name}({p.name})" for p in sig.parameters.values()
                            if p.name != "self" and p.annotation is inspect.Parameter.empty]
    assert not undocumented and not unannotated, (undocumented, unannotated)


def test_py_typed_ships_with_the_package():
    assert (Path(netc.__file__).parent / "py.typed").is_file()


def test_docstring_examples_run():
    for module in (netc.api, netc.summary, netc):
        result = doctest.testmod(module, globs={"netc": netc}, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0, module.__name__
    assert doctest.testmod(netc.api, globs={"netc": netc}).attempted >= 8


def test_import_netc_loads_neither_torch_nor_onnx():
    code = ("import sys, netc\n"
            "bad = [m for m in ('torch', 'onnx', 'onnxruntime', 'lark') if m in sys.modules]\n"
            "assert not bad, bad\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stderr


# -- loading ----------------------------------------------------------------------------------

def test_load_by_zoo_name_path_file_net_and_prototxt(tmp_path):
    assert netc.load("vgg16").summary().params == 138_357_544
    spec = tmp_path / "tiny.net"
    spec.write_text(TINY)
    by_path = netc.load(spec)
    assert (by_path.name, by_path.inputs, by_path.outputs) == ("tiny", {"image": (3, 8, 8)},
                                                               {"fc1": (5,)})
    assert netc.load(str(ROOT / "examples" / "readout.net") + ":direct").name == "direct"
    caffe = netc.load(ROOT / "tests" / "caffe" / "lenet_train_val.prototxt",
                      input_shape=(1, 28, 28))
    assert caffe.inputs == {"data": (1, 28, 28)} and caffe.outputs == {"ip2": (10,)}
    assert caffe.summary().params == 431_080


def test_keyword_arguments_set_net_parameters():
    assert netc.load("lenet5", classes=26).outputs == {"output": (26,)}
    # A Python list or tuple is the spec's list; DenseNet-121's blocks with 10 classes.
    a = netc.load("densenet", blocks=[6, 12, 24, 16], classes=10).summary()
    b = netc.load("densenet", blocks=(6, 12, 24, 16), classes=10).summary()
    assert a.params == b.params == 6_964_106
    resnet34 = netc.load("resnet", n2=3, n3=4, n4=6, n5=3)
    assert resnet34.summary().params == netc.load("resnet34").summary().params == 21_797_672
    # A word names what it names in the spec: the block definition, as resnet50 writes it.
    resnet50 = netc.load("resnet", block="bottleneck", n2=3, n3=4, n4=6, n5=3)
    assert resnet50.summary().params == netc.load("resnet50").summary().params == 25_557_032


def test_input_shape_replaces_the_declared_one():
    assert netc.load("resnet18", input_shape=(3, 320, 320)).inputs == {"image": (3, 320, 320)}
    named = netc.load("resnet18", input_shape={"image": [3, 96, 96]})
    assert named.summary().rows[0].shape == (3, 96, 96)


def _raises(call):
    with pytest.raises(netc.NetcError) as err:
        call()
    return err.value


MISTAKES = {  # what a user may get wrong -> words the one-line message must contain
    "unknown zoo name": (lambda: netc.load("resnet19"), "did you mean"),
    "empty spec": (lambda: netc.load(""), "SPEC is empty"),
    "spec of the wrong type": (lambda: netc.load(42), "got int"),
    "unknown parameter": (lambda: netc.load("lenet5", clases=3), "no parameter 'clases'"),
    "parameter of the wrong type": (lambda: netc.load("lenet5", classes={"a": 1}), "is a dict"),
    "parameter out of range": (lambda: netc.load("lenet5", classes=0), "positive integer"),
    "infinite parameter": (lambda: netc.load("lenet5", classes=float("inf")), "finite"),
    "shape of the wrong length": (lambda: netc.load("lenet5", input_shape=(32, 32)),
                                  "(channels, height, width)"),
    "shape that is not a tuple": (lambda: netc.load("lenet5", input_shape="1x32x32"),
                                  "(channels, height, width)"),
    "negative size": (lambda: netc.load("lenet5", input_shape=(1, -32, 32)), "positive"),
    "input that does not fit": (lambda: netc.load("lenet5", input_shape=(1, 8, 8)), "conv"),
    "unknown input name": (lambda: netc.load("lenet5", input_shape={"img": (1, 32, 32)}),
                           "no input 'img'"),
    "max_nodes of the wrong type": (lambda: netc.load("lenet5", max_nodes=2.5), "max_nodes"),
    "too many nodes": (lambda: netc.load("resnet50", max_nodes=10), "10"),
    "too little memory": (lambda: netc.load("vgg16", max_memory=2**20), "memory"),
    "file of several nets": (lambda: netc.load(ROOT / "examples" / "readout.net"),
                             "several nets"),
    "folder as a spec": (lambda: netc.load(ROOT / "examples"), "examples"),
    "unknown summary depth": (lambda: netc.load("lenet5").summary(depth=0), "depth"),
    "negative seed": (lambda: netc.load("lenet5").to_onnx(seed=-1), "seed"),
    "unknown extra output": (lambda: netc.load("lenet5").to_onnx(outputs=["c9"]), "c9"),
    "opset netc does not write": (lambda: netc.load("lenet5").to_onnx(opset=7), "opset"),
    "opset that is not a number": (lambda: netc.load("lenet5").to_onnx(opset="18"), "opset"),
    "extra output that is not a name": (lambda: netc.load("lenet5").to_onnx(outputs=[5]),
                                        "outputs"),
    "table width of 0": (lambda: netc.load("lenet5").summary().text(width=0), "width"),
    "weights of the wrong type": (lambda: netc.load("lenet5").to_torch(weights=3), "got int"),
    "weights file missing": (lambda: netc.load("lenet5").to_onnx(weights="nope.safetensors"),
                             "nope.safetensors"),
    "weights mapping missing a tensor": (lambda: netc.load("lenet5").to_onnx(weights={}),
                                         "no tensor for c1.weight"),
    "weights mapping not numbers": (
        lambda: netc.load("lenet5").to_torch(weights={"c1.weight": "x"}), "c1.weight"),
    "unknown tap": (lambda: _tap("c9"), "no layer named 'c9'"),
    "ONNX path under a file": (lambda: netc.load("lenet5").to_onnx(Path(__file__) / "x.onnx"),
                               "cannot write"),
    "weights in an unknown format": (lambda: netc.load("lenet5").import_weights(__file__),
                                     "not a weights file netc knows"),
}


def _tap(name):
    import torch

    netc.load("lenet5").to_torch()(torch.zeros(1, 1, 32, 32), taps=[name])


@pytest.mark.parametrize("mistake", sorted(MISTAKES))
def test_every_mistake_is_a_netc_error_with_records(mistake):
    call, words = MISTAKES[mistake]
    err = _raises(call)
    assert words in str(err), str(err)
    assert isinstance(err, (DiagnosticError, UserError))  # the command line's two kinds
    assert err.diagnostics and all(isinstance(d, netc.Diagnostic) for d in err.diagnostics)
    assert not isinstance(err, (ValueError, KeyError, TypeError))


def test_a_netc_error_pickles_with_its_records(tmp_path):
    # A library's exception crosses processes (multiprocessing, a worker pool) whole.
    import pickle

    spec = tmp_path / "bad.net"
    spec.write_text(TINY.replace("conv(4, 3)", "conv(4, 9)"))
    errors = [_raises(lambda: netc.load(spec)),
              _raises(lambda: netc.load("lenet5").summary(depth=0))]
    assert [type(e) for e in errors] == [DiagnosticError, UserError]  # both kinds
    for err in errors:
        back = pickle.loads(pickle.dumps(err))
        assert type(back) is type(err) and str(back) == str(err)
        assert back.diagnostics == err.diagnostics


# -- checking ---------------------------------------------------------------------------------

def test_check_returns_located_records(tmp_path):
    assert netc.check("resnet50") == []
    spec = tmp_path / "bad.net"
    spec.write_text(TINY.replace("conv(4, 3)", "conv(4, 9)"))
    [found] = netc.check(spec)
    assert (found.file, found.line, found.column) == (str(spec), 4, 12)
    assert "(8 + 2*0 - 9)/1 + 1" in found.message and found.severity == "error"
    text = str(found)  # what `netc check` prints: place, message, the line and a caret
    assert text.startswith(f"{spec}:4:12: error: ") and "^~~~" in text
    assert dataclasses.asdict(found)["span"]["line"] == 4


def test_check_of_a_file_checks_each_net_and_names_no_place_for_a_zoo_typo():
    assert netc.check(ROOT / "examples" / "readout.net") == []
    [typo] = netc.check("vgg61")
    assert (typo.file, typo.line, typo.column) == (None, None, None)
    assert "no such file or zoo net" in typo.message


def test_zoo_lists_every_loadable_net():
    names = netc.zoo()
    assert names == sorted(names) and {"lenet5", "vgg16", "resnet50", "fractalnet"} <= set(names)


# -- the summary ------------------------------------------------------------------------------

def test_summary_data_is_what_summary_json_prints(cli):
    data = dataclasses.asdict(netc.load("resnet18").summary())
    printed = json.loads(cli("summary", "resnet18", "--json").out)
    assert (data["params"], data["macs"], data["non_trainable"]) == \
        (printed["params"], printed["macs"], printed["non_trainable"]) == \
        (11_689_512, 1_814_073_344, 9_600)
    assert [r["name"] for r in data["rows"]] == [r["name"] for r in printed["layers"]]
    assert [r["receptive_field"] for r in data["rows"]] == [r["rf"] for r in printed["layers"]]
    json.dumps(data)  # plain data: numbers, strings, lists


@pytest.mark.parametrize("argv,kwargs", [(["resnet18"], {}), (["resnet18", "--depth", "1"],
                                                               {"depth": 1})])
def test_summary_text_is_what_netc_summary_prints(cli, argv, kwargs):
    printed = cli("summary", *argv).out
    assert str(netc.load("resnet18").summary(**kwargs)) + "\n" == printed
    wide = cli("summary", *argv, "--wide").out
    assert netc.load("resnet18").summary(**kwargs).text(width=None) + "\n" == wide


def test_summary_rows_hold_window_and_joins():
    rows = {r.name: r for r in netc.load("resnet18").summary().rows}
    conv1 = rows["conv1"]
    assert (conv1.op, conv1.shape, conv1.kernel, conv1.stride, conv1.receptive_field) == \
        ("conv", (64, 112, 112), (7, 7), (2, 2), 7)
    # A join names what it reads (the body's end and the shortcut), Keras's "connected to".
    assert rows["layer1.basic1.residual1"].inputs == ("layer1.basic1.bn2", "pool1")


# -- lowering ---------------------------------------------------------------------------------

def test_to_torch_seeds_weights_and_taps():
    import torch

    net = netc.load("lenet5")
    a, b = net.to_torch(seed=3).eval(), net.to_torch(seed=3).eval()
    x = torch.randn(2, 1, 32, 32)
    assert torch.equal(a(x), b(x))
    assert not torch.equal(a(x), net.to_torch(seed=4).eval()(x))
    taps = a(x, taps=["c3", "f6"])
    assert list(taps) == ["c3", "f6"] and taps["c3"].shape == (2, 16, 10, 10)
    assert set(a.state_dict()) == {f"{r.name}.{k}" for r in net.summary().rows if r.params
                                   for k in ("weight", "bias")}


def test_weights_from_a_file_or_a_mapping_give_the_same_module(tmp_path):
    import torch
    from safetensors.torch import save_file

    net = netc.load("lenet5")
    trained = net.to_torch(seed=7).eval()
    path = tmp_path / "lenet.safetensors"
    save_file(trained.state_dict(), str(path))
    x = torch.randn(1, 1, 32, 32)
    for weights in (path, str(path), trained.state_dict()):
        assert torch.equal(net.to_torch(weights=weights).eval()(x), trained(x))


def test_to_onnx_writes_the_model_and_runs_as_torch_does(tmp_path):
    import onnx
    import onnxruntime as ort
    import torch

    net = netc.load("resnet18", classes=10, input_shape=(3, 64, 64))
    module = net.to_torch(seed=5).eval()
    path = tmp_path / "r18.onnx"
    model = net.to_onnx(path, weights=module.state_dict())
    assert isinstance(model, onnx.ModelProto) and onnx.load(str(path)) == model
    x = torch.randn(1, 3, 64, 64)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    [got] = session.run(None, {"image": x.numpy()})
    np.testing.assert_allclose(got, module(x).detach().numpy(), rtol=1e-4, atol=1e-4)
    seeded = net.to_onnx(seed=5, opset=13, fold_bn=False)
    assert seeded.opset_import[0].version == 13
    assert any(n.op_type == "BatchNormalization" for n in seeded.graph.node)


def test_import_weights_maps_a_foreign_state_dict_by_structure(tmp_path):
    import torch
    from torch import nn

    spec = tmp_path / "tiny.net"
    spec.write_text(TINY)
    theirs = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(144, 5))
    pth = tmp_path / "theirs.pth"
    torch.save(theirs.state_dict(), pth)
    net = netc.load(spec)
    out = tmp_path / "tiny.safetensors"
    tensors = net.import_weights(pth, out)
    assert sorted(tensors) == ["conv1.bias", "conv1.weight", "fc1.bias", "fc1.weight"]
    x = torch.randn(2, 3, 8, 8)
    for weights in (tensors, out, pth):  # arrays, the written file, the .pth itself
        np.testing.assert_allclose(net.to_torch(weights=weights).eval()(x).detach().numpy(),
                                   theirs(x).detach().numpy(), rtol=1e-5, atol=1e-6)
