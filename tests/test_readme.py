"""The README's language examples are real specs: they parse, check and give the numbers."""

from __future__ import annotations

import re
from pathlib import Path

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


def test_error_example_is_what_netc_prints(cli, monkeypatch):
    example = blocks("### What a mistake looks like")
    spec, expected = example[0], example[1]
    shipped = README.parent / "examples" / "resnet_typo.net"
    assert shipped.read_text() == spec  # the README shows the file that ships
    monkeypatch.chdir(README.parent)
    result = cli("check", "examples/resnet_typo.net")
    assert result.code == 1
    assert result.err.strip() == expected.strip()
