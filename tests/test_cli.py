"""`netc check`, `netc summary` and `netc zoo` as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def test_check_ok_line(cli):
    r = cli("check", "vgg16")
    assert r.code == 0
    assert r.out.strip() == ("OK vgg16: 138,357,544 params, 15.47 G MACs, 3x224x224 -> 1000, "
                             "41 nodes")


def test_summary_table_has_every_node_and_totals(cli):
    r = cli("summary", "resnet18")
    assert r.code == 0
    assert "layer2.basic1.shortcut.conv1" in r.out
    assert "11,689,512" in r.out and "1.81 G" in r.out
    assert "activations for one sample" in r.out


def test_summary_json_schema(cli):
    r = cli("summary", "vgg16", "--json")
    data = json.loads(r.out)
    assert set(data) >= {"name", "inputs", "outputs", "params", "macs", "layers"}
    assert data["inputs"] == {"image": [3, 224, 224]}
    assert data["outputs"] == {"prob": [1000]}
    assert data["params"] == sum(layer["params"] for layer in data["layers"]) == 138_357_544
    conv = next(layer for layer in data["layers"] if layer["name"] == "conv1_1")
    assert conv == {**conv, "op": "conv", "shape": [64, 224, 224], "params": 1792,
                    "macs": 64 * 224 * 224 * 27, "rf": 3}


def test_summary_depth_folds_like_torchinfo(cli):
    r = cli("summary", "resnet34", "--depth", "1")
    names = [line.split()[0] for line in r.out.splitlines()[2:] if line.strip()]
    assert "layer1" in names and not any(n.startswith("layer1.") for n in names)
    assert "21,797,672" in r.out


def test_receptive_field_of_vgg16():
    from netc.compiler.frontend.loader import load
    from netc.compiler.analyses.summary import receptive_fields

    # Three 3x3 convs see 7x7 (the VGG paper's argument); pool5 of VGG-16 sees 212 pixels.
    rf = receptive_fields(load("vgg16"))
    assert rf["conv1_2"][0] == 5
    assert rf["pool5"][0] == 212


def test_zoo_lists_nets(cli):
    r = cli("zoo")
    assert "vgg16" in r.out and "resnet50" in r.out


def test_check_and_summary_do_not_import_torch_or_onnxruntime():
    code = (
        "import sys; from netc.runtime.cli import main\n"
        "assert main(['check', 'resnet50']) == 0\n"
        "assert main(['summary', 'fractalnet']) == 0\n"
        "bad = [m for m in ('torch', 'onnxruntime', 'onnx') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_netc_console_script_runs():
    proc = subprocess.run([sys.executable, "-m", "netc.runtime.cli", "check", "resnet50"],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("OK resnet50: 25,557,032 params")


def test_check_a_file_of_several_nets_checks_each(cli):
    from netc.compiler.frontend.loader import zoo_dir

    r = cli("check", zoo_dir() / "vgg.net")
    assert r.code == 0
    oks = [line.split(":")[0] for line in r.out.splitlines()]
    assert oks == ["OK vgg", "OK vgg11", "OK vgg11_lrn", "OK vgg13", "OK vgg16c", "OK vgg16",
                   "OK vgg19", "OK vgg11_bn", "OK vgg13_bn", "OK vgg16_bn", "OK vgg19_bn"]


def test_set_on_an_alias_names_the_alias(cli):
    r = cli("check", "vgg16", "--set", "colours=3")
    assert r.code == 1 and "net vgg16 has no parameter 'colours'" in r.err


def test_set_chooses_a_definition_by_name(cli):
    """A word set from outside means what it means in the spec: `resnet(bottleneck, 3, 4, 6,
    3)` is ResNet-50, and so is the generic net with its block set by name (torchvision's
    resnet50 has 25,557,032 parameters)."""
    r = cli("summary", "resnet", "--set", "block=bottleneck", "--set", "n2=3", "--set", "n3=4",
            "--set", "n4=6", "--set", "n5=3")
    assert r.code == 0 and "resnet: 25,557,032 params" in r.out
    # A word that names nothing: one error at the parameter, with the closest names (it was
    # one error at each of the seven uses of `block` in resnet.net).
    r = cli("check", "resnet", "--set", "block=bottlenek")
    assert r.code == 1 and r.err.count("error:") == 1
    assert ("resnet.net:40:12: error: block (set from outside) names no layer or definition: "
            "'bottlenek'; did you mean bottleneck, bottleneck_v15?") in r.err


def test_an_unwritable_output_is_an_error_not_a_traceback(tmp_path, cli):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    r = cli("compile", "lenet5", "-o", blocker / "lenet.onnx")
    assert r.code == 1 and "netc: error: cannot write" in r.err and "Traceback" not in r.err


def test_garbage_checkpoint_is_an_error_not_a_traceback(tmp_path, cli):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"junk\n" * 7)
    r = cli("weights", "import", "lenet5", junk, "-o", tmp_path / "w.safetensors")
    assert r.code == 1 and "cannot read" in r.err and "as a PyTorch file" in r.err
    assert not (tmp_path / "w.safetensors").exists()


@pytest.mark.parametrize("argv, message", [
    (["summary", "vgg16", "--depth", "0"], "--depth must be at least 1"),
    (["bench", "lenet5", "--batch", "0", "--no-compile"], "--batch must be at least 1"),
])
def test_bad_flags_are_errors_not_tracebacks(argv, message, tmp_path, cli):
    r = cli(*[a.format(tmp=tmp_path) for a in argv])
    assert r.code == 1 and message in r.err and "Traceback" not in r.err


@pytest.mark.parametrize("argv, flag", [
    (["compile", "lenet5", "-o", "{tmp}/l.onnx"], "--weights"),
    (["train", "lenet5", "--data", "digits", "-o", "{tmp}/w.safetensors"], "--init"),
])
def test_rename_without_the_weights_it_renames_is_a_command_line_error(argv, flag, tmp_path,
                                                                       capsys):
    """--rename rules rename a weights file's keys; without the file they would do nothing."""
    from netc.runtime.cli import main

    with pytest.raises(SystemExit) as exit_:  # argparse's one line, exit 2
        main([a.format(tmp=tmp_path) for a in argv] + ["--rename", "^module\\.="])
    assert exit_.value.code == 2
    assert f"--rename renames the keys of a {flag} file" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_zoo_shows_source_input_params_and_macs(cli):
    from netc.compiler.frontend.loader import load, zoo_index
    from netc.compiler.analyses.summary import human, summarize

    r = cli("zoo")
    assert r.code == 0
    rows = {line.split()[0]: line for line in r.out.splitlines()[1:-1]}
    assert set(rows) == set(zoo_index())
    for net in ("resnet50", "vgg16", "googlenet", "cifar_resnet110_sd"):
        s = summarize(load(net))
        assert f"{s.params:,}" in rows[net] and human(s.macs) in rows[net]
    assert "He et al. 2015" in rows["resnet50"] and "3x224x224" in rows["resnet50"]
    assert "Huang et al. 2016" in rows["cifar_resnet110_sd"]
    assert "1x32x32" in rows["lenet5"] and "LeCun" in rows["lenet5"]


def test_zoo_spec_prints_a_file_that_checks(cli, tmp_path):
    r = cli("zoo", "resnet18", "--spec")
    assert r.code == 0 and "net resnet18" in r.out
    (tmp_path / "mine.net").write_text(r.out)
    c = cli("check", f"{tmp_path / 'mine.net'}:resnet18")
    assert c.code == 0 and "11,689,512 params" in c.out
    bad = cli("zoo", "resnet81")
    assert bad.code == 1 and "did you mean resnet18" in bad.err


def test_version(capsys):
    import re
    from pathlib import Path

    from netc.runtime import __version__
    from netc.runtime.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"netc {__version__}"
    pyproject = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    assert re.search(r'version = \{attr = "netc.runtime.__version__"\}', pyproject)


def test_a_negative_seed_is_a_command_line_error(tmp_path, capsys):
    from netc.runtime.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["compile", "lenet5", "-o", str(tmp_path / "l.onnx"), "--seed", "-5"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "argument --seed: expected a non-negative integer" in err


def test_the_runtime_docstring_examples_run():
    """Every ``>>>`` example under runtime/ (the options, the weights road, the recipe cost,
    ...) runs and gives what it shows; none was run by a test before."""
    import doctest
    import importlib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    found = []
    for path in sorted((root / "runtime").rglob("*.py")):
        if ">>>" not in path.read_text():
            continue
        name = ".".join(("netc", *path.relative_to(root).with_suffix("").parts))
        result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
        assert not result.failed, (name, result)
        if result.attempted:  # ort.py's examples need a model file: all +SKIP
            found.append(name)
    assert "netc.runtime.commands.options" in found and "netc.runtime.weights.load" in found
