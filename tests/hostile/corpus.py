"""The hostile corpus: broken and extreme inputs for every class of issue 10, generated.

A case is the dict :func:`hostile.base.case` makes. The commands added since issue 10 (their
options at their edges, every file they read) are in :mod:`hostile.commands`; weights files,
images and data folders that lie, in :mod:`hostile.inputs`.

Cases come from tables and from the registry itself: every numeric parameter of every op gets
values outside its declared domain, so a new op is covered the day it is registered.
"""

from __future__ import annotations

import base64
import struct
import zlib

from netc.compiler.ops import REGISTRY
from netc.compiler.ops.domains import MAX_SIZE

from hostile import commands, inputs, makers, reach
from hostile.base import case, net


# ---- 1. the parser and deep or long input -----------------------------------------------------
def parser_cases(full: bool):
    n = 100_000 if full else 5_000
    yield case(f"chain-{n}", "parse", "net n { input image: 3x8x8\n image" + " -> relu" * n
               + "\n}", codes=(0, 1), located=False, slow=False, limit=40)
    yield case("chain-100k-one-line", "parse", "net n { input image: 3x8x8\n image"
               + " -> relu" * 100_000 + "\n}", codes=(0, 1), located=False, slow=True, limit=60)
    yield case("chain-past-max-nodes", "parse", "net n { input image: 3x8x8\n image"
               + " -> relu" * 3000 + "\n}", argv=["check", "spec.net", "--max-nodes", "1000"],
               fragment="grows past 1,000 nodes")
    for depth in (490, 10_000):
        yield case(f"parens-{depth}", "parse",
                   net("image -> " + "(" * depth + "relu" + ")" * depth), codes=(0,),
                   located=False)
    yield case("sum-5000", "parse", net("image -> conv(" + " + ".join(["1"] * 5000) + ", 1)"),
               codes=(0,), located=False)
    yield case("product-2000", "parse", net("image -> conv(" + " * ".join(["1"] * 2000) + ", 1)"),
               codes=(0,), located=False)
    yield case("not-20000", "parse", net("image -> (if " + "not " * 20000 + "true then relu "
                                         "else tanh)"), codes=(0,), located=False)
    yield case("minus-5000", "parse", net("image -> conv(" + "-" * 5000 + "8, 3)"),
               codes=(0, 1), located=False)
    yield case("else-if-3000", "parse", net("image -> (" + "".join(
        f"if {i} == 2999 then conv({i % 7 + 1}, 1) else " for i in range(3000)) + "relu)"),
        codes=(0,), located=False)
    for depth in (490, 2000):
        yield case(f"concat-nested-{depth}", "parse",
                   net("image -> " + "concat[" * depth + "relu" + "]" * depth),
                   fragment="nest deeper than")
        yield case(f"joins-nested-{depth}", "parse",
                   net("image -> " + "max[relu, " * depth + "relu" + "]" * depth),
                   fragment="nest deeper than")
        yield case(f"calls-nested-{depth}", "parse",
                   net("image -> conv(" + "max(" * depth + "8" + ")" * depth + ", 3)"),
                   fragment="nest deeper than")
        yield case(f"lists-nested-{depth}", "parse",
                   net("image -> adaptive_avgpool(" + "[" * depth + "1" + "]" * depth + ")"),
                   fragment="nest deeper than")
        yield case(f"labels-chained-{depth}", "parse",
                   net("image -> relu" + "".join(f" as l{i}" for i in range(depth))),
                   codes=(0, 1), located=False)
    yield case("label-long-sum", "parse",
               net("image -> relu as r{" + "+".join(["1"] * 3000) + "}"), codes=(0,),
               located=False)
    k = 1200 if not full else 3000
    files = {f"inc{i}.net": {"text": f'include "inc{i + 1}.net"\n'} for i in range(k)}
    files[f"inc{k}.net"] = {"text": "def leaf = relu\n"}
    yield case(f"include-chain-{k}", "parse", 'include "inc0.net"\n' + net("image -> leaf"),
               files=files, codes=(0,), located=False)
    yield case("include-cycle", "parse", 'include "b.net"\n' + net("image -> relu"),
               files={"b.net": {"text": 'include "spec.net"\n'}}, fragment="include cycle")
    yield case("long-line", "parse", net("image -> " + "relu -> " * 20_000 + "@"),
               fragment="unexpected character '@'")
    yield case("million-char-line", "parse", net("image -> relu # " + "x" * 1_000_000 + "\n  @"),
               fragment="unexpected character")
    yield case("cr-only", "parse", "net n {\r  input image: 3x32x32\r  image -> convv(8, 3)\r}\r",
               fragment="spec.net:3:12: error: unknown layer")
    yield case("crlf", "parse", "net n {\r\n  input image: 3x32x32\r\n  image -> convv(8)\r\n}\r\n",
               fragment="spec.net:3:12:")
    yield case("nul-byte", "parse", net("image -> re\x00lu"), fragment="spec.net:3:14: error: "
                                                                       "this is not a text file")
    yield case("binary", "parse", files={"spec.net": {"b64": base64.b64encode(
        bytes(range(256)) * 40).decode()}}, fragment="not a UTF-8 text file")
    yield case("empty-file", "parse", "", fragment="defines no net")
    yield case("only-comments", "parse", "# nothing\n# here\n", fragment="defines no net")
    yield case("huge-int-literal", "parse", net("image -> conv(" + "9" * 5000 + ", 3)"),
               fragment="5,000 digits")
    yield case("huge-float-literal", "parse", net("image -> leaky_relu(1e999)"),
               fragment="too large to be a number")
    yield case("huge-shape-digits", "parse", "net n {\n  input image: 3x" + "9" * 500
               + "x9\n  image -> relu\n}\n", fragment="too many digits")
    yield case("unclosed-brace", "parse", "net n {\n input image: 3x8x8\n image -> relu\n",
               fragment="unexpected end of file")
    yield case("long-string-token", "parse", net('image -> relu "' + "s" * 200_000 + '" relu'),
               codes=(1,))
    yield case("tokens-soup", "parse", "net net def def -> -> ( ] [ ) , = = :: x 3x3x",
               codes=(1,))


# ---- 2. elaboration recursion ----------------------------------------------------------------
def recursion_cases(full: bool):
    # Defaults are evaluated when a block is applied (they may read in_channels), and a
    # default naming a block does not apply it: these recurse because the body applies it.
    yield case("default-calls-itself", "recursion", "def f(x = f()) = x\n"
               + net("image -> f"), fragment="the limit of 64")
    yield case("defaults-call-each-other", "recursion", "def f(x = g()) = x\n"
               "def g(y = f()) = y\n" + net("image -> f"), fragment="the limit of 64")
    yield case("default-calls-itself-with-args", "recursion", "def f(n, x = f(n + 1)) = x\n"
               + net("image -> f(1)"), fragment="nest deeper")
    deep = "def f(n) = if n == 0 then relu else relu -> f(n - 1)\n"
    yield case("finite-recursion-past-64", "recursion", deep + net("image -> f(100)"),
               fragment="raise it with --max-depth")
    yield case("finite-recursion-with-max-depth", "recursion", deep + net("image -> f(100)"),
               argv=["check", "spec.net", "--max-depth", "200"], codes=(0,), located=False)
    yield case("recursion-1500-with-max-depth", "recursion", deep + net("image -> f(1500)"),
               argv=["check", "spec.net", "--max-depth", "2000"], codes=(0,), located=False,
               limit=40)
    yield case("infinite-recursion-max-depth-2000", "recursion",
               "def f(n) = relu -> f(n + 1)\n" + net("image -> f(0)"),
               argv=["check", "spec.net", "--max-depth", "2000"], fragment="the limit of 2000",
               limit=40)
    yield case("max-depth-too-large", "recursion", net("image -> relu"),
               argv=["check", "spec.net", "--max-depth", "2001"], fragment="--max-depth",
               located=False)
    yield case("self-definition", "recursion", "def f = f\n" + net("image -> f"),
               fragment="nest deeper")
    yield case("mutual-definitions", "recursion", "def f = g\ndef g = relu -> f\n"
               + net("image -> f"), fragment="nest deeper")


# ---- 3. arguments outside their domains, from the registry ------------------------------------
def _valid(p):
    """A value inside ``p``'s domain (for the parameters not under test)."""
    if p.kind == "enum":
        return p.choices[0]
    if p.kind == "bool":
        return "true"
    if p.kind == "block":
        return "relu"
    d = p.accepts
    lo = 1 if d is None or d.lo is None else d.lo
    if p.kind == "float":
        return repr(float(lo) if not d.lo_open else float(lo) + 0.5)
    if p.kind == "floats":
        return "[1.0]"
    value = int(lo) + (1 if d is not None and d.lo_open else 0)
    return str(max(value, 1) if d is not None and d.lo is not None and d.lo > 0 else value)


def _invalid(p):
    """Values just outside ``p``'s domain, and values of the wrong kind."""
    d = p.accepts
    out = []
    if d is not None and d.lo is not None:
        lo = d.lo
        out.append(str(lo if d.lo_open else lo - 1) if p.kind in ("int", "pair")
                   else repr(float(lo) if d.lo_open else float(lo) - 0.5))
    if d is not None and d.hi is not None:
        hi = d.hi
        out.append(str(int(hi) + 1) if p.kind in ("int", "pair")
                   else repr(float(hi) if d.hi_open else float(hi) + 0.5))
    if p.kind in ("int", "pair"):
        out += ["2.5", '"x"', str(10**30)]
    if p.kind == "pair":
        out += ["[7, -1]", "[1, 2, 3]"]
    if p.kind in ("float",):
        out += ['"x"', "[1, 2]", "1e308 * 10"]
    if p.kind == "enum":
        out.append("not_a_choice")
    return [v for v in dict.fromkeys(out) if v]


def registry_cases(full: bool):
    for name in sorted(REGISTRY):
        op = REGISTRY[name]
        if name in ("residual",):
            continue
        for p in op.params:
            if p.kind not in ("int", "float", "pair", "floats", "enum"):
                continue
            for bad in _invalid(p):
                args = [f"{q.name}={_valid(q) if q is not p else bad}" for q in op.params
                        if q.required or q is p]
                call = f"{name}({', '.join(args)})"
                if op.max_inputs is None or op.max_inputs > 1:
                    call += "[relu, relu]"
                slug = "".join(c if c.isalnum() else "_" for c in bad)[:20]
                yield case(f"domain-{name}-{p.name}-{slug}", "arguments",
                           net(f"image -> {call}"), fragment=f"{p.name}")


def argument_cases(full: bool):
    yield case("adaptive-zero", "arguments", net("image -> adaptive_avgpool(0)"),
               fragment="'size' must be a positive integer")
    yield case("adaptive-negative", "arguments", net("image -> adaptive_avgpool([7, -1])"),
               fragment="spec.net:3:29:")
    yield case("input-scale-list", "arguments", "net n {\n  input image: 3x32x32, scale=[1, 2]"
               "\n  image -> relu\n}\n", fragment="scale must be a positive number")
    yield case("input-std-zero", "arguments", "net n {\n  input image: 3x32x32, std=0\n"
               "  image -> relu\n}\n", fragment="std must be positive")
    yield case("input-mean-count", "arguments", "net n {\n  input image: 3x32x32, mean=[1, 2]"
               "\n  image -> relu\n}\n", fragment="3 finite numbers")
    yield case("input-option-twice", "arguments", "net n {\n  input image: 3x32x32, scale=1,"
               " scale=2\n  image -> relu\n}\n", fragment="given twice")
    yield case("dropout-2", "arguments", net("image -> dropout(2)"), fragment="probability")
    yield case("mean-droppath-2", "arguments", net("image -> mean(droppath=2)[relu, tanh]"),
               fragment="'droppath' must be a probability")
    yield case("bn-eps-negative", "arguments", net("image -> bn(eps=-1)"), fragment="'eps'")
    yield case("lrn-zero", "arguments", net("image -> lrn(0)"), fragment="'size'")
    yield case("leaky-inf", "arguments", net("image -> leaky_relu(1e308 * 10)"),
               fragment="not finite")
    yield case("duplicate-def-params", "arguments", "def f(a, a) = relu\n"
               + net("image -> f(1, 2)"), fragment="'a' is declared twice")
    yield case("duplicate-net-params", "arguments", "net n(a=1, a=2) {\n  input image: 3x8x8\n"
               "  image -> relu\n}\n", fragment="'a' is declared twice")
    yield case("label-undefined", "arguments", net("image -> relu as r{k}"),
               fragment="'k' in this label")
    yield case("residual-survival-2", "arguments",
               net("image -> residual(relu, survival=2)"), fragment="survival")
    yield case("droppath-declaration", "arguments",
               net("with droppath(local=1.5)\n  image -> relu"), fragment="probability")
    yield case("repeat-negative", "arguments", net("image -> relu * -1"),
               fragment="cannot repeat")
    yield case("for-floats", "arguments", net("image -> (relu for i in 1..2.5)"),
               fragment="needs integers")
    yield case("division-by-zero", "arguments", net("image -> conv(8 // 0, 3)"),
               fragment="division by zero")
    yield case("set-unknown", "arguments", net("image -> relu"),
               argv=["check", "spec.net", "--set", "zz=1"], located=False, fragment="zz")
    yield case("set-inf", "arguments", "net n(c=8) {\n  input image: 3x8x8\n"
               "  image -> conv(c, 1)\n}\n", argv=["check", "spec.net", "--set", "c=inf"],
               codes=(2,), located=False, fragment="not a finite number")
    yield case("set-malformed", "arguments", net("image -> relu"),
               argv=["check", "spec.net", "--set", "=1"], codes=(2,), located=False,
               fragment="NAME=VALUE")


# ---- 4. sizes nobody can build ---------------------------------------------------------------
def size_cases(full: bool):
    yield case("conv-10e12", "sizes", net("image -> conv(1000000000000, 3)"),
               fragment="1000000000000")
    yield case("conv-max-size", "sizes", net(f"image -> conv({MAX_SIZE}, 3)"),
               fragment="--max-memory")
    yield case("huge-input-fc", "sizes", "net n {\n  input image: 1x100000x100000\n"
               "  image -> flatten -> fc(10)\n}\n", fragment="10,000,000,000")
    yield case("huge-input-gap-fc", "sizes", "net n {\n  input image: 3x40000x40000\n"
               "  image -> conv(64, 3) -> gap -> flatten -> fc(10)\n}\n",
               fragment="--max-memory")
    yield case("input-axis-past-int32", "sizes", "net n {\n  input image: 3x3000000000x1\n"
               "  image -> relu\n}\n", fragment="2,147,483,647")
    yield case("set-classes-1e11", "sizes", "net n(classes=10) {\n  input image: 3x8x8\n"
               "  image -> flatten -> fc(classes)\n}\n",
               argv=["check", "spec.net", "--set", "classes=100000000000"],
               fragment="100000000000")
    yield case("max-memory-small", "sizes", None, argv=["check", "vgg16", "--max-memory", "1M"],
               fragment="more than --max-memory 1.0 MiB")
    yield case("compile-refused-before-weights", "sizes", None,
               argv=["compile", "vgg16", "--max-memory", "10M", "-o", "vgg.onnx"],
               fragment="--max-memory", outputs=["vgg.onnx"])
    yield case("concat-wide", "sizes", net("image -> concat[" + ", ".join(
        ["conv(1000000000, 1)"] * 3) + "]"), fragment="2,147,483,647")
    proto = ('name: "big"\ninput: "data"\ninput_dim: 1\ninput_dim: 3\ninput_dim: 8\n'
             'input_dim: 8\nlayer {\n  name: "fc"\n  type: "InnerProduct"\n  bottom: "data"\n'
             '  top: "fc"\n  inner_product_param { num_output: %s }\n}\n')
    for value in ("1e20", "100000000000000000000", "-5", "0"):
        yield case(f"caffe-num-output-{value[:6]}", "sizes",
                   files={"big.prototxt": {"text": proto % value}},
                   argv=["check", "big.prototxt"], codes=(1,))
        yield case(f"caffe-import-num-output-{value[:6]}", "sizes",
                   files={"big.prototxt": {"text": proto % value}},
                   argv=["import", "caffe", "big.prototxt", "-o", "big.net"], codes=(1,),
                   outputs=["big.net"])
    nested = "layer { " * 3000 + "}" * 3000
    yield case("caffe-deep-messages", "sizes", files={"deep.prototxt": {"text": nested}},
               argv=["check", "deep.prototxt"], codes=(1,))


# ---- 5. files that are not regular files -----------------------------------------------------
def _png(width: int, height: int, rows: int | None = None) -> bytes:
    """An RGB PNG of ``width`` x ``height`` grey pixels; a bomb's header claims more rows than
    its data holds (``rows``), as a 100-byte file claiming 60000x60000 does."""
    chunk = makers.png_chunk
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    raw = (b"\x00" + b"\x80" * (3 * width)) * (height if rows is None else rows)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


TINY_RECIPE = ('net small {\n  input image: 3x32x32\n  image -> conv(4, 3) as c1 -> relu as r1'
               ' -> maxpool(2) as p1 -> conv(4, 3) as c2\n}\n'
               'recipe r {\n  net small\n  content "c.png"\n  init content\n'
               '  optimizer adam(steps=2)\n  loss = content(c2)\n}\n')


def file_cases(full: bool):
    ok = net("image -> relu")
    yield case("include-dev-zero", "files", 'include "/dev/zero"\n' + ok, fragment="a device")
    yield case("include-fifo", "files", 'include "pipe.net"\n' + ok,
               files={"pipe.net": {"fifo": True}}, fragment="FIFO")
    yield case("include-symlink-loop", "files", 'include "loop1.net"\n' + ok,
               files={"loop1.net": {"symlink": "loop2.net"}, "loop2.net": {"symlink": "loop1.net"}},
               fragment="symbolic links")
    yield case("include-directory", "files", 'include "sub"\n' + ok, files={"sub": {"dir": True}},
               fragment="a directory")
    yield case("include-empty-name", "files", 'include ""\n' + ok, fragment="empty file name")
    yield case("include-missing", "files", 'include "nothere.net"\n' + ok,
               fragment="No such file")
    yield case("include-huge", "files", 'include "big.net"\n' + ok,
               files={"big.net": {"zeros": 17 * 2**20}}, fragment="bytes")
    yield case("spec-empty-string", "files", None, argv=["check", ""], located=False,
               fragment="SPEC is empty")
    yield case("spec-directory", "files", None, argv=["check", "sub"],
               files={"sub": {"dir": True}}, located=False, fragment="directory")
    yield case("spec-fifo", "files", None, argv=["check", "pipe.net"],
               files={"pipe.net": {"fifo": True}}, located=False, fragment="FIFO")
    yield case("spec-dev-zero", "files", None, argv=["check", "/dev/zero"], located=False,
               fragment="device")
    yield case("spec-symlink-loop", "files", None, argv=["check", "loop1.net"],
               files={"loop1.net": {"symlink": "loop2.net"}, "loop2.net": {"symlink": "loop1.net"}},
               located=False, fragment="symlink")
    yield case("prototxt-fifo", "files", None, argv=["check", "pipe.prototxt"],
               files={"pipe.prototxt": {"fifo": True}}, located=False, fragment="FIFO")
    good = net("image -> conv(4, 3)")
    yield case("compile-onto-fifo", "files", good, argv=["compile", "spec.net", "-o", "out.onnx"],
               files={"out.onnx": {"fifo": True}}, located=False, fragment="FIFO",
               outputs=["out.onnx"])
    yield case("compile-onto-readonly", "files", good,
               argv=["compile", "spec.net", "-o", "out.onnx"],
               files={"out.onnx": {"text": "keep me", "readonly": True}}, located=False,
               fragment="read-only", outputs=["out.onnx"])
    yield case("compile-onto-directory", "files", good,
               argv=["compile", "spec.net", "-o", "out.onnx"], files={"out.onnx": {"dir": True}},
               located=False, fragment="directory", outputs=["out.onnx"])
    yield case("compile-error-keeps-output", "files", net("image -> conv(0, 3)"),
               argv=["compile", "spec.net", "-o", "out.onnx"],
               files={"out.onnx": {"text": "previous model"}}, outputs=["out.onnx"])
    yield case("import-onto-fifo", "files", None,
               argv=["import", "caffe", "a.prototxt", "-o", "out.net"],
               files={"a.prototxt": {"text": 'name: "a"\ninput: "data"\ninput_dim: 1\n'
                                             'input_dim: 3\ninput_dim: 8\ninput_dim: 8\n'},
                      "out.net": {"fifo": True}}, located=False, codes=(1,),
               outputs=["out.net"])
    bomb = base64.b64encode(_png(60000, 60000, rows=1)).decode()
    yield case("recipe-png-bomb", "files", None,
               argv=["recipe", "r.recipe", "-o", "out.png"],
               files={"r.recipe": {"text": TINY_RECIPE}, "c.png": {"b64": bomb}},
               located=False, fragment="decompression bomb", outputs=["out.png"])
    yield case("recipe-image-fifo", "files", None, argv=["recipe", "r.recipe", "-o", "out.png"],
               files={"r.recipe": {"text": TINY_RECIPE}, "c.png": {"fifo": True}},
               located=False, fragment="FIFO", outputs=["out.png"])
    yield case("recipe-image-garbage", "files", None,
               argv=["recipe", "r.recipe", "-o", "out.png"],
               files={"r.recipe": {"text": TINY_RECIPE}, "c.png": {"text": "not a png"}},
               located=False, fragment="not an image", outputs=["out.png"])
    yield case("recipe-output-fifo", "files", None, argv=["recipe", "r.recipe", "-o", "out.png"],
               files={"r.recipe": {"text": TINY_RECIPE}, "c.png": {"b64": base64.b64encode(
                   _png(8, 8)).decode()}, "out.png": {"fifo": True}}, located=False,
               fragment="FIFO", outputs=["out.png"])
    yield case("recipe-file-fifo", "files", None, argv=["recipe", "r.recipe"],
               files={"r.recipe": {"fifo": True}}, located=False, fragment="FIFO")


# ---- 6. recipe values and command-line flags -------------------------------------------------
def _recipe(lines: str) -> str:
    return TINY_RECIPE.replace("  optimizer adam(steps=2)\n", lines)


RECIPE_BAD = {
    "tile-negative": ("  tile -5\n", "tile must be"),
    "tile-small": ("  tile 5\n", "at least 32"),
    "jitter-negative": ("  optimizer adam(steps=2, jitter=-5)\n", "jitter must be"),
    "adam-lr-negative": ("  optimizer adam(lr=-1)\n", "lr must be"),
    "adam-gamma-zero": ("  optimizer adam(gamma=0)\n", "gamma must be"),
    "octave-scale-zero": ("  optimizer dream(octave_scale=0)\n", "octave_scale must be"),
    "octaves-zero": ("  optimizer dream(octaves=0)\n", "octaves must be"),
    "dream-step-zero": ("  optimizer dream(step=0)\n", "step must be"),
    "history-zero": ("  optimizer lbfgs(history=0)\n", "history must be"),
    "steps-zero": ("  optimizer lbfgs(steps=0)\n", "steps must be"),
    "steps-huge": ("  optimizer lbfgs(steps=10000000000)\n", "steps must be"),
    "line-search-number": ("  optimizer lbfgs(line_search=3)\n", "line_search"),
    "seed-negative": ("  seed -1\n", "seed must be"),
    "size-zero": ("  size 0\n", "size must be"),
    "size-million": ("  size 1000000\n", "size must be"),
    "noise-scale-negative": ("  init noise(scale=-1)\n", "noise scale"),
    "weight-overflow": ("  optimizer adam(steps=2)\n  loss = 1e308 * 1e308 * content(c2)\n",
                        "too large"),
}


def recipe_cases(full: bool):
    png = {"b64": base64.b64encode(_png(8, 8)).decode()}
    for name, (lines, fragment) in RECIPE_BAD.items():
        text = _recipe(lines)
        if "loss =" in lines:
            text = text.replace("  loss = content(c2)\n", "", 1)
        if "init noise" in lines:
            text = text.replace("  init content\n", "")
        yield case(f"recipe-{name}", "recipes", None, argv=["recipe", "r.recipe", "-o", "o.png"],
                   files={"r.recipe": {"text": text}, "c.png": png}, fragment=fragment,
                   outputs=["o.png"])
    base = {"r.recipe": {"text": TINY_RECIPE}, "c.png": png}
    for flags, fragment, code in [
        (["--set", "lr=abc"], "lr", 1),
        (["--set", "steps=-3"], "steps", 1),
        (["--set", "jitter=nan"], "finite", 2),
        (["--max-memory", "inf"], "--max-memory", 2),
        (["--max-memory", "-1G"], "--max-memory", 2),
        (["--max-memory", "0"], "--max-memory", 2),
        (["--size", "0"], "--size", 2),
        (["--size", "1000000"], "--size", 1),
        (["--steps", "-1"], "--steps", 2),
        (["--seed", "-1"], "--seed", 2),
        (["--save-every", "-2"], "--save-every", 2),
    ]:
        slug = "-".join(f.strip("-").replace("=", "-") for f in flags)
        yield case(f"recipe-flag-{slug}", "recipes", None,
                   argv=["recipe", "r.recipe", "-o", "o.png", *flags], files=base,
                   codes=(code,), fragment=fragment, located=False, outputs=["o.png"])
    small = _recipe("  optimizer adam(steps=2)\n  size 1\n").replace("  init content\n", "")
    yield case("recipe-size-1-shapes", "recipes", None,
               argv=["recipe", "r.recipe", "-o", "o.png"],
               files={"r.recipe": {"text": small}, "c.png": png}, fragment="too small",
               outputs=["o.png"])
    yield case("recipe-size-flag-2-shapes", "recipes", None,
               argv=["recipe", "r.recipe", "-o", "o.png", "--size", "2"], files=base,
               located=False, fragment="too small", outputs=["o.png"])
    big = _recipe("  optimizer adam(steps=2)\n  size 60000\n")
    yield case("recipe-size-60000-memory", "recipes", None,
               argv=["recipe", "r.recipe", "-o", "o.png", "--max-memory", "1G"],
               files={"r.recipe": {"text": big}, "c.png": png}, located=False,
               fragment="smaller --size", outputs=["o.png"])
    yield case("recipe-long-loss", "recipes", None, argv=["recipe", "r.recipe", "-o", "o.png",
                                                          "--steps", "1", "--size", "8"],
               files={"r.recipe": {"text": TINY_RECIPE.replace(
                   "loss = content(c2)", "loss = " + " + ".join(["content(c2)"] * 3000)).replace(
                   "  init content\n", "  init content\n  seed 1\n")}, "c.png": png},
               codes=(0, 1), located=False, slow=True, limit=60)
    # the command line of the spec commands
    spec = {"spec.net": {"text": net("image -> relu")}}
    for argv, code, fragment in [
        ([], 2, None),
        (["nonsense"], 2, None),
        (["check"], 2, None),
        (["check", "spec.net", "--max-nodes", "-1"], 2, "--max-nodes"),
        (["check", "spec.net", "--max-nodes", "abc"], 2, "--max-nodes"),
        (["check", "spec.net", "--max-depth", "0"], 2, "--max-depth"),
        (["check", "spec.net", "--max-memory", "lots"], 2, "--max-memory"),
        (["summary", "spec.net", "--depth", "0"], 1, "--depth"),
        (["compile", "spec.net"], 2, None),
        (["compile", "spec.net", "-o", ""], 1, "empty file name"),
        (["compile", "spec.net", "-o", "x.onnx", "--seed", "-1"], 2, "--seed"),
        (["check", "spec.net:nonet"], 1, "no net 'nonet'"),
    ]:
        slug = "-".join(a.strip("-") or "empty" for a in argv)[:40] or "none"
        yield case(f"cli-{slug}", "cli", None, argv=argv, files=spec, codes=(code,),
                   fragment=fragment, located=False, outputs=["x.onnx"])


# ---- 7. cost linear in the input -------------------------------------------------------------
def cost_cases(full: bool):
    n = 20_000 if full else 5_000
    yield case(f"repeated-labels-{n}", "cost", net(f"image -> (relu as r) * {n}"), codes=(0,),
               located=False, limit=20)
    m = 8000 if full else 1500
    yield case(f"residual-conv-{m}", "cost",
               net(f"image -> conv(8, 3, pad=1) -> residual(conv(8, 3, pad=1) -> bn, "
                   f"shortcut=conv) * {m}"), codes=(0,), located=False, limit=30)
    yield case("empty-times-1e9", "cost", net("image -> (relu * 0) * 1000000000 -> relu"),
               codes=(0,), located=False)
    yield case("empty-for-1e12", "cost",
               net("image -> ((relu * 0) for i in 1..1000000000000) -> relu"),
               fragment="makes nothing", limit=30)
    yield case("doubling-empty-defs", "cost", "def f0 = relu * 0\n" + "".join(
        f"def f{i} = f{i - 1} -> f{i - 1}\n" for i in range(1, 62)) + net("image -> f61"),
        fragment="makes nothing", limit=30)
    nodes = [] if full else ["--max-nodes", "5000"]  # the default run: the class, smaller
    yield case("doubling-defs-nodes", "cost", "def f0 = relu\n" + "".join(
        f"def f{i} = f{i - 1} -> f{i - 1}\n" for i in range(1, 62)) + net("image -> f61"),
        argv=["check", "spec.net", *nodes], fragment="grows past", limit=30)
    yield case("times-of-times", "cost", net("image -> " + "(" * 60 + "relu" +
                                             " * 2)" * 60), argv=["check", "spec.net", *nodes],
               fragment="grows past", limit=30)
    yield case("exponential-recursion", "cost",
               "def f(n) = if n == 0 then relu * 0 else f(n - 1) -> f(n - 1)\n"
               + net("image -> f(60)"), fragment="makes nothing", limit=30)
    yield case("arithmetic-growth", "cost",
               "def f(n) = if n < 0 then relu else f(n * n * n * n + 2)\n"
               + net("image -> f(2)"), fragment="digits")


# ---- 8. messages that must not mislead --------------------------------------------------------
def message_cases(full: bool):
    yield case("net-value-in-definition", "messages", "def f = x -> relu\n"
               + net("x = image -> relu\n  y = image -> f"), fragment="'x' is a value of the net")
    yield case("project-on-flat", "messages",
               net("image -> flatten -> residual(fc(10), shortcut=project)"),
               fragment="matches feature maps (CxHxW) only")
    yield case("batch-axis", "messages", "net n {\n  input image: 1x3x32x32\n"
               "  image -> conv(8, 3) -> relu\n}\n", fragment="shapes exclude the batch axis")
    yield case("quoted-layer", "messages", net('image -> "relu"'),
               fragment="write relu without quotes")
    yield case("is-a-directory", "messages", None, argv=["check", ""], located=False,
               fragment="SPEC is empty")
    k = 20_000 if full else 2_000
    yield case(f"errors-{k}", "messages", "net n {\n  input image: 3x8x8\n" + "".join(
        f"  x{i} = image -> conv(0, 3)\n" for i in range(k)) + "}\n",
        fragment=f"{k - 200:,} more errors not shown",
        limit=60)
    yield case("independent-errors", "messages",
               net("image -> conv(0, 3)\n  x = image -> bn(eps=-1)\n  y = image -> lrn(0)"),
               fragment="3 errors")


CLASSES = (parser_cases, recursion_cases, registry_cases, argument_cases, size_cases,
           file_cases, recipe_cases, cost_cases, message_cases, *commands.CLASSES,
           *inputs.CLASSES, *reach.CLASSES)


def all_cases(full: bool = False) -> list[dict]:
    """Every case for this run: the slow ones only when ``full``."""
    out = [c for make in CLASSES for c in make(full) if full or not c["slow"]]
    names = [c["name"] for c in out]
    assert len(names) == len(set(names)), "duplicate case names"
    return out
