"""The README's examples are real: its specs parse, check and give the numbers, and every
```python block runs as written."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from netc.compiler.frontend.loader import load
from netc.compiler.analyses.summary import summarize

README = Path(__file__).resolve().parents[1] / "README.md"


def blocks(after: str) -> list[str]:
    text = README.read_text()
    text = text[text.index(after):]
    return re.findall(r"```\n(.*?)```", text, re.DOTALL)


def test_tour_vgg16_is_configuration_d(tmp_path):
    spec = tmp_path / "vgg.net"
    spec.write_text(blocks("## A tour of the language")[0])
    s = summarize(load(str(spec)))
    assert s.params == 138_357_544 and s.outputs == {"prob": (1000,)}


def test_fractalnet_in_five_lines(tmp_path):
    rule = blocks("### FractalNet in five lines")[0]
    spec = tmp_path / "fractal.net"
    spec.write_text(rule + "\nnet f { input image: 3x32x32\n  image -> fractal(64, 4, 0.0) }\n")
    graph = load(str(spec))
    assert sum(n.op == "conv" for n in graph) == 15  # 2^C - 1 convs in one block


def test_tour_layernorm_from_reshape_power_and_scale(tmp_path):
    """The tour's LayerNorm over channels is numpy's, per position, with 2·C parameters."""
    import numpy as np
    import torch

    from netc.compiler.lower_torch.module import build_module

    spec = tmp_path / "ln.net"
    spec.write_text(blocks("### Reshape, power and scale")[0])
    graph = load(str(spec))
    s = summarize(graph)
    assert s.params == (3 * 16 * 96 + 96) + 2 * 96 + (96 * 192 + 192)
    module = build_module(graph).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        taps = module(x, taps=["stem", "norm"])
    stem, norm = taps["stem"].numpy(), taps["norm"].numpy()
    mean = stem.mean(axis=1, keepdims=True)
    ref = (stem - mean) / np.sqrt(((stem - mean) ** 2).mean(axis=1, keepdims=True) + 1e-6)
    assert np.abs(norm - ref).max() <= 1e-4  # scale starts at 1 and shift at 0


def test_error_example_is_what_netc_prints(cli, monkeypatch):
    example = blocks("### What a mistake looks like")
    spec, expected = example[0], example[1]
    shipped = README.parent / "examples" / "resnet_typo.net"
    assert shipped.read_text() == spec  # the README shows the file that ships
    monkeypatch.chdir(README.parent)
    result = cli("check", "examples/resnet_typo.net")
    assert result.code == 1
    assert result.err.strip() == expected.strip()


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)


def test_the_python_api_section_has_examples():
    text = README.read_text()
    section = text[text.index("## Python API"):]
    section = section[:section.index("\n## ", 4)]
    assert len(re.findall(r"```python\n", section)) >= 4


def printed_lines(block: str) -> list[str]:
    """The lines a block says it prints: ``print(x)  # TEXT`` with no backquote in TEXT (a
    comment with one, such as ``# `netc summary resnet18` ``, describes the output instead)."""
    return [m for m in re.findall(r"^\s*print\(.*\)\s+# (.*)$", block, re.MULTILINE)
            if "`" not in m]


def test_the_python_blocks_say_what_they_print():
    assert len([line for b in python_blocks() for line in printed_lines(b)]) >= 2


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_python_block_runs(index, tmp_path, monkeypatch, one_torch_thread, capsys):
    # In a fresh folder holding a copy of examples/, as a user's checkout would: the README's
    # relative paths and the files a block writes stay there.
    shutil.copytree(README.parent / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    block = python_blocks()[index]
    code = compile(block, f"README.md python block {index + 1}", "exec")
    exec(code, {"__name__": "__readme__"})
    out = capsys.readouterr().out.splitlines()
    # What a comment says is printed is printed (an `except` branch that runs, for one).
    assert [line for line in printed_lines(block) if line not in out] == []


def test_ci_runs_the_readme_test_command_in_a_fresh_venv():
    # .ci/run is "a fresh venv, then exactly the README's install and test commands".
    sh = re.findall(r"```sh\n(.*?)```", README.read_text(), re.DOTALL)[0]
    [command] = [line for line in sh.splitlines() if "'.[test]'" in line]
    ci = (README.parent / ".ci" / "run").read_text().splitlines()
    assert command.startswith("pip install torch==2.13.0 && ") and command in ci
    fresh = ci.index("rm -rf .venv")
    assert ci[fresh + 1] == "python3 -m venv .venv" and ci.index(command) > fresh
