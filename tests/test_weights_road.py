"""One road for weights: every ``--weights`` (and ``train --init``) goes through ``load_weights``.

- Every command the parser gives a weights flag reaches the loader (a new command without a
  row in ``ARGV`` fails here), and all of them get the same arrays from the same file.
- A FIFO, a directory and ``/dev/zero`` end each command in one line, exit 1, within seconds
  (real processes, so a hang is a timeout and not a stuck test run).
- A torchvision-layout ``.pth`` works wherever ``--weights`` is taken, as its ``netc weights
  import``-ed ``.safetensors`` does; one that cannot work names the command that maps it.
- The common options are declared once (``runtime/commands/options.py``) and a malformed value
  is argparse's error (exit 2) in every command that takes it.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from PIL import Image

import netc.runtime.weights as road
from netc.compiler.frontend.loader import load
from netc.compiler.lower_torch.module import build_module
from netc.dsl.diagnostics import UserError
from netc.runtime.cli import build_parser, main
from netc.runtime.weights import import_weights, load_weights
from torchvision_layout import BOTTLENECKS, resnet

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A small v1.5 bottleneck ResNet as a spec, its weights as a torchvision-layout .pth and
    as the .safetensors ``netc weights import`` makes of it, an image and a recipe."""
    d = tmp_path_factory.mktemp("road")
    spec = d / "mini.net"
    spec.write_text(BOTTLENECKS)
    graph = load(f"{spec}:mini_v15")
    state = build_module(graph, seed=4).state_dict()
    pth = d / "tv.pth"
    torch.save({resnet(k): v.clone() for k, v in state.items()}, pth)  # counters included
    ours = d / "ours.safetensors"
    import_weights(graph, pth, ours)
    image = d / "img.png"
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((40, 40, 3)) * 255).astype(np.uint8)).save(image)
    recipe = d / "r.recipe"
    recipe.write_text(f'recipe r {{\n  net "{spec}:mini_v15"\n  init noise\n  size 32\n'
                      '  optimizer adam(steps=1)\n  loss = -activation(conv1)\n}\n')
    want = {k: v.numpy() for k, v in state.items() if not k.endswith("num_batches_tracked")}
    return {"dir": d, "spec": f"{spec}:mini_v15", "v1": f"{spec}:mini_v1", "pth": pth,
            "ours": ours, "image": image, "recipe": recipe, "want": want}


# Each command with a weights flag, as a user would call it on files["spec"] with weights W.
ARGV = {
    ("compile",): lambda f, w: ["compile", f["spec"], "-o", f["dir"] / "m.onnx", "--weights", w],
    ("run",): lambda f, w: ["run", f["spec"], f["image"], "--weights", w],
    ("bench",): lambda f, w: ["bench", f["spec"], "--no-compile", "--threads", "1",
                              "--weights", w],
    ("explain",): lambda f, w: ["explain", f["spec"], f["image"], "--layer", "conv1",
                                "--weights", w, "-o", f["dir"] / "e.png"],
    ("embed",): lambda f, w: ["embed", f["spec"], "--images", "digits:20", "--layer", "conv1",
                              "--weights", w, "-o", f["dir"] / "t.png"],
    ("top-activations",): lambda f, w: ["top-activations", f["spec"], "--images", "digits:20",
                                        "--layer", "conv1", "--weights", w,
                                        "-o", f["dir"] / "a.png"],
    ("recipe",): lambda f, w: ["recipe", f["recipe"], "--weights", w, "-o", f["dir"] / "r.png"],
    ("fit",): lambda f, w: ["fit", f["spec"], "--data", "digits", "--weights", w,
                            "-o", f["dir"] / "f.safetensors"],
    ("probe",): lambda f, w: ["probe", f["spec"], "--layers", "conv1", "--weights", w],
    ("train",): lambda f, w: ["train", f["spec"], "--init", w, "--threads", "1",
                              "--epochs", "1", "--no-progress", "-o", f["dir"] / "t.safetensors",
                              "--checkpoint", f["dir"] / "t.ckpt.pt"],
    **{("eigenfaces", a): (lambda f, w, a=a: ["eigenfaces", a, "--weights", w, "-o",
                                              f["dir"] / "x.png"]
                           if a != "identify" else ["eigenfaces", a, "--weights", w])
       for a in ("detect", "identify", "reconstruct", "show")},
}
WHOLE_NET = {("compile",), ("run",), ("bench",), ("fit",), ("probe",), ("train",)}


def parser_paths(flags: set[str]) -> dict[tuple[str, ...], argparse.ArgumentParser]:
    """Every (sub)command whose parser has one of ``flags``, by its path of names."""
    found = {}

    def walk(parser, path):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, (*path, name))
            elif flags & set(action.option_strings):
                found[path] = parser
    walk(build_parser(), ())
    return found


class Reached(Exception):
    """Raised by the spy once a command has called the loader."""


def test_every_command_with_a_weights_flag_has_a_row_here():
    assert set(parser_paths({"--weights", "--init"})) == set(ARGV)


@pytest.mark.parametrize("command", sorted(ARGV), ids=" ".join)
def test_every_weights_flag_reaches_the_one_loader(command, files, monkeypatch):
    calls = []

    def spy(graph, path, **options):
        calls.append((graph.name, Path(path), options))
        raise Reached

    monkeypatch.setattr(road, "load_weights", spy)
    with pytest.raises(Reached):
        main([str(a) for a in ARGV[command](files, files["pth"])])
    assert calls and calls[0][1] == files["pth"]


@pytest.mark.parametrize("command", sorted(c for c in ARGV if c[0] != "eigenfaces"), ids=" ".join)
def test_the_same_file_gives_the_same_arrays_through_every_command(command, files, monkeypatch,
                                                                   capsys):
    got = []

    def spy(graph, path, **options):
        got.append(load_weights(graph, path, **options))
        raise Reached

    monkeypatch.setattr(road, "load_weights", spy)
    with pytest.raises(Reached):
        main([str(a) for a in ARGV[command](files, files["pth"])])
    arrays, want = got[0], files["want"]
    assert arrays and set(arrays) <= set(want)
    if command in WHOLE_NET:
        assert set(arrays) == set(want)
    for key, value in arrays.items():
        np.testing.assert_array_equal(value, want[key], err_msg=key)
    assert "layers paired with mini_v15's by structure (a PyTorch file)" in capsys.readouterr().err


def test_a_torchvision_pth_runs_as_its_imported_safetensors(files, cli):
    runs = [cli("run", files["spec"], files["image"], "--weights", w, "--json", "-")
            for w in (files["pth"], files["ours"])]
    assert [r.code for r in runs] == [0, 0], runs[0].err + runs[1].err
    first, second = (json.loads(r.out)["results"][0]["top"] for r in runs)
    assert first == second
    err = [line for line in runs[0].err.splitlines() if line]
    assert err == [f"{files['pth']}: 31 layers paired with mini_v15's by structure "
                   "(a PyTorch file)"]  # 15 convs, 15 batch norms, fc
    assert runs[1].err.strip() == ""  # the spec's own names: nothing to say
    models = []
    for w, name in ((files["pth"], "a.onnx"), (files["ours"], "b.onnx")):
        assert cli("compile", files["spec"], "-o", files["dir"] / name, "--weights", w).code == 0
        models.append({t.name: onnx.numpy_helper.to_array(t)
                       for t in onnx.load(str(files["dir"] / name)).graph.initializer})
    assert models[0].keys() == models[1].keys()
    for key in models[0]:
        np.testing.assert_array_equal(models[0][key], models[1][key])


def test_a_pth_that_cannot_work_names_the_command_that_maps_it(files, cli):
    r = cli("run", files["v1"], files["image"], "--weights", files["pth"])  # v1 spec, v1.5 file
    assert r.code == 1 and "ResNet v1 vs v1.5" in r.err and "netc weights import" in r.err
    r = cli("compile", "lenet5", "-o", files["dir"] / "l.onnx", "--weights", files["pth"])
    assert r.code == 1 and "weights do not fit lenet5" in r.err
    assert "netc weights import SPEC" in r.err and "Traceback" not in r.err


def test_the_loader_checks_size_and_format_before_reading(tmp_path):
    graph = load("lenet5")
    huge = tmp_path / "huge.safetensors"
    with open(huge, "wb") as f:
        f.truncate(40 * 2**30)  # sparse: 40 GiB that take no disk
    started = time.perf_counter()
    with pytest.raises(UserError, match=r"^cannot read weights: .*huge.safetensors is 40.0 GiB, "
                                        r"more than 8x the 241.\d KiB of weights lenet5 has"):
        load_weights(graph, huge)
    assert time.perf_counter() - started < 5
    odd = tmp_path / "w.npz"
    odd.write_bytes(b"not weights at all")
    with pytest.raises(UserError, match="not a weights file netc knows"):
        load_weights(graph, odd)


def test_a_file_in_the_specs_names_is_read_lazily_and_checked_whole(files, monkeypatch):
    from netc.runtime.views.network import prefix_graph

    graph = load(files["spec"])
    read = []
    original = road.read._Safetensors.__getitem__

    def counting(self, key):
        read.append(key)
        return original(self, key)

    monkeypatch.setattr(road.read._Safetensors, "__getitem__", counting)
    part = load_weights(graph, files["ours"], layers=["conv1"])
    assert sorted(part) == sorted(read) == ["conv1.weight"]  # one tensor of the file's
    np.testing.assert_array_equal(part["conv1.weight"], files["want"]["conv1.weight"])
    stem = prefix_graph(graph, ["conv1"])  # a net the file has more tensors than
    with pytest.raises(UserError, match=r"does not fit mini_v15: not in the spec: bn1.bias, "):
        load_weights(stem, files["ours"])
    assert list(load_weights(stem, files["ours"], allow_unused=True)) == ["conv1.weight"]


def test_a_bfloat16_safetensors_reads_the_same_without_onnx(tmp_path):
    """numpy knows bfloat16 only once ml_dtypes is imported, which onnx does: the reader must
    not depend on whether the command imported onnx first (explain, recipe and embed do not)."""
    from safetensors.torch import save_file

    graph = load("lenet5")
    state = {k: v.to(torch.bfloat16) for k, v in build_module(graph, seed=1).state_dict().items()}
    path = tmp_path / "half.safetensors"
    save_file(state, str(path))
    code = ("import sys\n"
            "import numpy as np\n"
            "from netc.compiler.frontend.loader import load\n"
            "from netc.runtime.weights import load_weights\n"
            "w = load_weights(load('lenet5'), sys.argv[1])\n"
            "assert 'onnx' not in sys.modules\n"
            "np.savez(sys.argv[2], **w)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(path), str(tmp_path / "got.npz")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    got = np.load(tmp_path / "got.npz")
    assert sorted(got.files) == sorted(state)
    for key, value in state.items():
        assert got[key].dtype == np.float32
        np.testing.assert_array_equal(got[key], value.float().numpy(), err_msg=key)


# ---- a FIFO, a directory, /dev/zero: one line, exit 1, within seconds ------------------------
# Runs each argv in turn in one process, timing the command alone (imports come first).
DRIVER = """
import contextlib, io, json, sys, time
import onnxruntime, sklearn.datasets, skimage, torch
from netc.compiler.lower_torch.module import build_module
from netc.runtime.cli import main
results = []
for argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    results.append({"code": code, "err": err.getvalue(), "seconds": time.perf_counter() - start})
print(json.dumps(results))
"""
HOSTILE = {
    "explain": lambda d, w: ["explain", "lenet5", d / "img.png", "--layer", "c1", "--weights", w,
                             "-o", d / "e.png"],
    "embed": lambda d, w: ["embed", "lenet5", "--images", "digits:20", "--layer", "c1",
                           "--weights", w, "-o", d / "t.png"],
    "top-activations": lambda d, w: ["top-activations", "lenet5", "--images", "digits:20",
                                     "--layer", "c1", "--units", "0-3", "--weights", w,
                                     "-o", d / "a.png"],
    "recipe": lambda d, w: ["recipe", d / "r.recipe", "--weights", w, "-o", d / "r.png"],
    "run": lambda d, w: ["run", "lenet5", d / "img.png", "--weights", w],
}


def test_a_fifo_a_directory_and_dev_zero_end_every_command_in_one_line(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "folder").mkdir()
    Image.new("RGB", (32, 32), (90, 120, 30)).save(tmp_path / "img.png")
    (tmp_path / "r.recipe").write_text(
        'net small {\n  input image: 3x32x32\n  image -> conv(4, 3) as c1 -> relu as r1\n}\n'
        'recipe r {\n  net small\n  init noise\n  optimizer adam(steps=1)\n'
        '  loss = -activation(r1)\n}\n')
    kinds = {"fifo": ("a FIFO (named pipe)", tmp_path / "fifo"),
             "folder": ("a directory", tmp_path / "folder"),
             "/dev/zero": ("a device", "/dev/zero")}
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = {}
    for name, argv in HOSTILE.items():  # one process per command, started together
        cases = [[str(a) for a in argv(tmp_path, path)] for _, path in kinds.values()]
        procs[name] = subprocess.Popen([sys.executable, "-c", DRIVER, json.dumps(cases)],
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                       env=env, cwd=tmp_path)
    for name, proc in procs.items():
        try:
            out, err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail(f"netc {name} --weights hung on one of {list(kinds)}")
        assert proc.returncode == 0, err
        for (kind, (what, path)), r in zip(kinds.items(), json.loads(out), strict=True):
            lines = [line for line in r["err"].splitlines() if line.strip()]
            assert r["code"] == 1, (name, kind, r)
            assert lines == [f"netc: error: cannot read weights: {path} is {what}, not a file"], \
                (name, kind, lines)
            assert r["seconds"] < 10, (name, kind, r["seconds"])


# ---- the common options: declared once, refused by argparse --------------------------------------
COMMON = ("--seed", "--weights", "--init", "--input", "--set", "--threads", "--max-memory", "-o",
          "--output")


def test_each_common_option_is_declared_in_one_place():
    """No ``add_argument`` outside runtime/commands/options.py names a common option."""
    found = []
    for path in sorted((ROOT / "runtime").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument":
                names = {a.value for a in node.args if isinstance(a, ast.Constant)}
                if names & set(COMMON):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert {f.split(":")[0] for f in found} == {"runtime/commands/options.py"}, found


BAD = [("--seed", "-1", "expected a non-negative integer"),
       ("--threads", "0", "expected a positive integer"),
       ("--max-memory", "inf", "--max-memory"),
       ("--set", "depth=nan", "depth: 'nan' is not a finite number"),
       ("--input", "3x0x4", "expected CxHxW")]


@pytest.mark.parametrize("flag, value, message", BAD, ids=[b[0] for b in BAD])
def test_a_malformed_common_option_is_argparses_error_in_every_command(flag, value, message,
                                                                      capsys):
    paths = parser_paths({flag})
    assert paths
    for path in paths:
        with pytest.raises(SystemExit) as exit_:
            main([*path, flag, value])
        err = capsys.readouterr().err.splitlines()
        assert exit_.value.code == 2, path
        assert err[-1].startswith(f"netc {' '.join(path)}: error: argument {flag}"), err[-1]
        assert message in err[-1], (path, err[-1])
