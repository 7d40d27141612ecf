"""Every user mistake gives `file:line:col: error: ...` with the source line, and exit 1.

Each case is (spec text, line, column, a fragment of the message). The CLI runs in-process, so
a Python traceback would fail the test as an uncaught exception.
"""

from __future__ import annotations

import pytest

NET = "net n {{\n  input image: 3x32x32\n  {body}\n}}\n"


def net(body: str) -> str:
    return NET.format(body=body)


CASES = {
    # syntax
    "missing-brace": ("net n {\n  input image: 3x32x32\n  image -> relu\n", 3, 16,
                      "unexpected end of file; expected '}'"),
    "bad-character": (net("image -> conv(8, 3) @ relu"), 3, 23, "unexpected character '@'"),
    "missing-arrow": (net("image -> conv(8, 3) relu"), 3, 23, "missing '->'"),
    "missing-comma": (net("image -> conv(8 3)"), 3, 19, "unexpected '3'"),
    "unclosed-paren": (net("image -> conv(8, 3 -> relu"), 4, 1, "unexpected '}'; expected ')'"),
    "bad-shape": ("net n {\n  input image: 3 x 32\n}\n", 2, 16, "a shape such as 3x224x224"),
    "label-apart": ("def f(i) = conv(8, 3) as c {i}\nnet n { input x: 3x8x8\n x -> f(1) }\n",
                    1, 28, "unexpected '{i}'"),
    "label-bad-interpolation": (net("image -> relu as r{1 +}"), 3, 24, "cannot read {1 +}"),
    # names and arguments
    "unknown-layer": (net("image -> convv(8, 3)"), 3, 12, "unknown layer or definition 'convv'; did you mean conv"),
    "unknown-kwarg": (net("image -> conv(8, 3, strid=2)"), 3, 23, "conv has no parameter 'strid'"),
    "too-many-args": (net("image -> conv(8, 3, 1, 1, 1, 1, true, xavier, 9)"), 3, 12,
                      "at most 8 positional arguments"),
    "missing-arg": (net("image -> conv(8)"), 3, 12, "conv needs its parameter 'kernel'"),
    "wrong-type": (net("image -> conv(8.5, 3)"), 3, 17, "parameter 'out' must be an integer; got 8.5"),
    "bare-op-needs-args": (net("image -> conv"), 3, 12, "conv needs arguments"),
    "def-missing-arg": ("def two(ch, k) = conv(ch, k)\n" + net("image -> two(8)"), 4, 12,
                        "two needs its parameter 'k'"),
    "def-unknown-kwarg": ("def two(ch) = conv(ch, 3)\n" + net("image -> two(8, kk=1)"), 4, 12,
                          "two has no parameter 'kk'"),
    "def-shadows-op": ("def conv(a) = relu\n" + net("image -> relu"), 1, 1, "'conv' is a built-in"),
    "duplicate-def": ("def a = relu\ndef a = tanh\n" + net("image -> a"), 2, 1, "defined twice"),
    "duplicate-value": (net("x = image -> relu\n  x = image -> tanh"), 4, 3, "'x' is already defined"),
    "unknown-output": (net("image -> relu\n  output y"), 4, 3, "output 'y' is not a value"),
    "flow-into-value": (net("x = image -> relu\n  y = image -> x"), 4, 16, "'x' is a value"),
    "no-input": ("net n {\n  output y = relu\n}\n", 2, 14, "this chain has no input"),
    "net-without-input": ("net n {\n}\n", 1, 1, "declares no input"),
    "divide-by-zero": (net("image -> conv(8 // 0, 3)"), 3, 17, "division by zero"),
    "bad-shortcut": (net("image -> residual(relu, shortcut=projet)"), 3, 12,
                     "shortcut must be one of identity, pad, pad_avg, project, conv; got 'projet'"),
    "bad-dropout": (net("image -> dropout(1.5)"), 3, 20,
                    "dropout: parameter 'p' must be a probability in [0, 1); got 1.5"),
    "bad-groups": (net("image -> conv(8, 3, groups=3)"), 3, 23, "not divisible by groups=3"),
    "pool-ceil-asymmetric": (net("image -> maxpool(2, pad=same, ceil=true)"), 3, 33,
                             "ceil=true needs a symmetric pad"),
    "not-a-join": (net("image -> conv(8, 3)[relu, tanh]"), 3, 12, "need a join"),
    "unknown-declaration": (net("with dropblock(0.1)\n  image -> relu"), 3, 3,
                            "unknown declaration 'dropblock'"),
    "bad-probability": (net("with droppath(local=1.5)\n  image -> relu"), 3, 3,
                        "must be a probability"),
    "zero-input-shape": ("net n {\n  input image: 3x0x32\n  image -> relu\n}\n", 2, 3,
                         "input shape"),
    "range-of-blocks": ("def f(n) = relu for i in 1..n\n" + net("image -> f(relu)"), 1, 12,
                        "needs integers"),
    "alias-unknown-net": ("net a = vgh(1)\n", 1, 1, "no net 'vgh' to define 'a' from"),
    "alias-too-many": (net("image -> relu").replace("net n {", "net n(x=1) {") + "net m = n(1, 2)\n",
                       5, 1, "net n takes 1 parameters (x); got 2"),
    "alias-unknown-param": (net("image -> relu") + "net m = n(depth=3)\n", 5, 11,
                            "net n has no parameter 'depth'"),
    # shapes
    "conv-too-big": (net("image -> conv(8, 5) -> conv(8, 5) -> conv(8, 30)"), 3, 40,
                     "(24 + 2*0 - 30)/1 + 1"),
    "residual-mismatch": (net("image -> residual(conv(8, 3, stride=2, pad=1))"), 3, 12,
                          "residual: body gives 8x16x16, shortcut gives 3x32x32; declare shortcut=project or shortcut=pad"),
    "concat-mismatch": (net("image -> concat[conv(8, 3), conv(8, 1)]"), 3, 12,
                        "concat: spatial sizes differ: branch 1 8x30x30, branch 2 8x32x32"),
    "add-mismatch": (net("image -> add[conv(8, 1), conv(4, 1)]"), 3, 12,
                     "add: branch 2 gives 4x32x32, branch 1 gives 8x32x32"),
    "fc-unflattened": (net("image -> fc(10)"), 3, 12, "fc needs a flat input; got a 3x32x32 feature map"),
    "pool-on-flat": (net("image -> flatten -> maxpool(2)"), 3, 23, "maxpool needs a CxHxW feature map"),
    "pad-reduces": (net("image -> residual(conv(2, 1, stride=2), shortcut=pad)"), 3, 12,
                    "cannot reduce 3 channels to 2"),
    # growth
    "infinite-recursion": ("def f(n) = relu -> f(n + 1)\n" + net("image -> f(1)"), 1, 20,
                           "nest deeper than the limit of 64"),
    "repetition-bomb": (net("image -> relu * 1000000"), 3, 12, "grows past 100,000 nodes"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_located_diagnostic(case, tmp_path, cli):
    text, line, col, fragment = CASES[case]
    path = tmp_path / f"{case}.net"
    path.write_text(text)
    result = cli("check", path)
    assert result.code == 1
    assert "Traceback" not in result.err
    first = result.err.splitlines()[0]
    assert f"{case}.net:{line}:{col}: error:" in first, result.err
    assert fragment in result.err, result.err
    # the source line is quoted with a caret under the column
    lines = result.err.splitlines()
    assert lines[2].strip().startswith("^") and len(lines[2]) - len(lines[2].lstrip()) == col + 3


def test_there_are_many_distinct_cases():
    assert len(CASES) >= 25


def test_recursion_bomb_fractal_c40(tmp_path, cli):
    # The FractalNet rule with C = 40 would build 2^40 convs: refused at the node limit, with
    # the expansion path shortened.
    path = tmp_path / "bomb.net"
    path.write_text("""
def fractal(ch, C) =
  if C == 1 then conv(ch, 3, pad=1) -> relu
  else mean[ fractal(ch, C - 1) -> fractal(ch, C - 1), fractal(ch, 1) ]
net f { input image: 3x32x32
  image -> fractal(16, 40) }
""")
    result = cli("check", path, "--max-nodes", "20000")
    assert result.code == 1
    assert "grows past 20,000 nodes" in result.err
    assert "note: in fractal(ch=16, C=40) → mean → fractal(ch=16, C=39)" in result.err
    assert "more …" in result.err


def test_expansion_path_names_the_call(tmp_path, cli):
    path = tmp_path / "path.net"
    path.write_text("""
def fractal(ch, C) =
  if C == 1 then conv(ch, 5)
  else mean[ fractal(ch, C - 1) -> fractal(ch, C - 1), fractal(ch, 1) ]
net f { input image: 3x6x6
  image -> fractal(8, 3) }
""")
    result = cli("check", path)
    assert result.code == 1
    assert "path.net:3:18: error: conv: output height is -2: (2 + 2*0 - 5)/1 + 1" in result.err
    assert "note: in fractal(ch=8, C=3) → mean → fractal(ch=8, C=2) → mean → fractal(ch=8, C=1)" \
        in result.err


def test_several_independent_errors_are_all_reported(tmp_path, cli):
    path = tmp_path / "many.net"
    path.write_text(net("a = image -> convv(3, 3)\n  b = image -> fc(3)\n"
                        "  c = image -> conv(8, 99)\n  d = a -> relu"))
    result = cli("check", path)
    assert result.code == 1
    assert result.err.count("error:") == 3  # d depends on a failed value: no extra error
    assert "3 errors" in result.err


def test_include_cycle(tmp_path, cli):
    (tmp_path / "a.net").write_text('include "b.net"\nnet n { input x: 3x8x8\n x -> relu }\n')
    (tmp_path / "b.net").write_text('include "a.net"\n')
    result = cli("check", tmp_path / "a.net")
    assert result.code == 1
    assert "b.net:1:1: error: include cycle: a.net -> b.net -> a.net" in result.err


def test_missing_include(tmp_path, cli):
    (tmp_path / "a.net").write_text('include "nope.net"\nnet n { input x: 3x8x8\n x -> relu }\n')
    result = cli("check", tmp_path / "a.net")
    assert result.code == 1 and "a.net:1:1: error: cannot read" in result.err


def test_empty_file(tmp_path, cli):
    (tmp_path / "empty.net").write_text("")
    result = cli("check", tmp_path / "empty.net")
    assert result.code == 1 and "empty.net:1:1: error: this file defines no net" in result.err


def test_binary_garbage(tmp_path, cli):
    (tmp_path / "bin.net").write_bytes(bytes(range(128, 256)) * 4)
    result = cli("check", tmp_path / "bin.net")
    assert result.code == 1 and "bin.net:1:1: error:" in result.err


def test_unknown_zoo_name(cli):
    result = cli("check", "vgg61")
    assert result.code == 1 and "no such file or zoo net: 'vgg61'; did you mean" in result.err


def test_unknown_net_parameter(cli):
    result = cli("check", "vgg16", "--set", "colours=3")
    assert result.code == 1 and "net vgg16 has no parameter 'colours'" in result.err
