"""Issue 21's language under attack: token sequences, the new ops' shapes, their sizes, and
``share``.

Four classes, each case one located line (or exit 0 where the input is legal, if odd):

- ``token-shapes``: every new op on the shapes it does not take (attention whose heads do not
  divide D, on a map, on a vector; tokens of tokens; take_token past the end; permute with a
  repeated, missing or out-of-range axis; transpose(a, a); layernorm of an axis of 1), the old
  ops after ``tokens`` (the message names a token sequence, not a map or a vector), joins of
  tokens with maps, and the legal oddities (two class tokens, layer_scale on every rank);
- ``token-sizes``: 10**20, 2**62 and the largest size in linear, attention, mlp and position
  embeddings, and attention over 100,000 and 1,000,000 tokens: the L x L scores are in the
  memory estimate (``compiler/analyses/budget.py``), so the net is refused before anything is
  allocated, not killed by the OS;
- ``share``: undefined, twice, in a def, at file level, recursive, used before it is declared,
  applied where its weights do not fit, 10,000 uses, batch norm inside, ``--set``;
- ``token-commands``: summary, draw, compile, run and fmt of the new forms, and what a command
  does with a failing one (no output written), train in the full run.

The LSP replays every case with a ``spec.net`` text as an edit (tests/test_lsp_hostile.py).
"""

from __future__ import annotations

from hostile.base import case, make, net

# 3x32x32 -> 64x8x8 -> 64 tokens of width 64
TOK = "image -> conv(64, 4, stride=4) -> tokens"
IMG = {"img.png": make("image", mode="RGB", size=40)}
HYBRID = (TOK + " -> class_token -> pos_embedding -> residual(layernorm -> attention(4))"
          " -> residual(layernorm -> mlp(128)) -> layernorm -> take_token(0) -> linear(10)")


def _shape(name, body, fragment, shape="3x32x32", **kw):
    return case(name, "token-shapes", net(body, shape), fragment=fragment, **kw)


def token_shape_cases(full: bool):
    yield _shape("attention-heads-not-dividing", TOK + " -> attention(5)",
                 "token width 64 is not divisible by heads=5")
    yield _shape("attention-on-map", "image -> attention(1)", "got a CxHxW feature map 3x32x32")
    yield _shape("attention-on-vector", "image -> flatten -> attention(1)", "got a flat vector")
    yield _shape("mlp-on-map", "image -> mlp(8)", "mlp needs a token sequence")
    yield _shape("tokens-of-tokens", TOK + " -> tokens", "got 64x64")
    yield _shape("tokens-of-vector", "image -> flatten -> tokens", "got 3072")
    yield _shape("take-token-past-end", TOK + " -> take_token(64)", "past the last of 64")
    yield _shape("take-token-negative", TOK + " -> take_token(-1)", "non-negative")
    yield _shape("take-token-1e20", TOK + " -> take_token(100000000000000000000)", "index")
    yield _shape("take-token-of-map", "image -> take_token(0)", "token sequence")
    yield _shape("class-token-on-map", "image -> class_token", "add tokens before it")
    yield _shape("pos-embedding-on-vector", "image -> flatten -> pos_embedding",
                 "got a flat vector 3072")
    yield _shape("permute-repeated", "image -> permute([0, 0, 1])", "each axis 0..2 once")
    yield _shape("permute-missing", "image -> permute([0, 1])", "orders 2 axes")
    yield _shape("permute-out-of-range", "image -> permute([0, 1, 3])", "0, 1 or 2")
    yield _shape("permute-negative", "image -> permute([-1, 0, 1])", "0, 1 or 2")
    yield _shape("permute-empty", "image -> permute([])", "orders 0 axes")
    yield _shape("permute-nested", "image -> permute([[0], 1, 2])", "list of integers")
    yield _shape("permute-of-vector", "image -> flatten -> permute([1, 0])", "has 1")
    yield _shape("permute-of-tokens-rank", TOK + " -> permute([2, 0, 1])", "has 2")
    yield _shape("transpose-same-axis", "image -> transpose(1, 1)", "must differ")
    yield _shape("transpose-of-vector", "image -> flatten -> transpose(0, 1)", "axes 0..0")
    yield _shape("transpose-tokens-axis-2", TOK + " -> transpose(0, 2)", "axes 0..1")
    yield _shape("layernorm-last-of-1", "image -> conv(8, 32) -> layernorm(over=last)",
                 "over=channels normalises C")
    yield _shape("layernorm-channels-of-1", "image -> conv(1, 1) -> layernorm", "axis of 1")
    yield _shape("layernorm-vector-of-1", "image -> conv(1, 32) -> flatten -> layernorm",
                 "axis of 1")
    yield _shape("layernorm-eps-zero", TOK + " -> layernorm(eps=0)", "eps")
    yield _shape("layer-scale-float32-overflow", "image -> layer_scale(1e39)", "float32")
    yield _shape("gelu-unknown-approximation", "image -> gelu(approximate=fast)", "none, tanh")
    yield _shape("residual-tokens-and-map", "image -> conv(64, 4, stride=4) -> residual(tokens)",
                 "body gives 64x64, shortcut gives 64x8x8")
    yield _shape("add-tokens-and-map", "x = image -> conv(64, 4, stride=4)\n  y = x -> tokens"
                 "\n  z = add[x, y]", "64x64")
    yield _shape("concat-tokens-and-map", "x = image -> conv(64, 4, stride=4)\n  y = x -> "
                 "tokens\n  z = concat[x, y]", "64x8x8, 64x64")
    yield _shape("project-shortcut-on-tokens", TOK + " -> residual(linear(32), shortcut=project)",
                 "feature maps (CxHxW) only")
    yield _shape("fc-after-tokens", TOK + " -> fc(10)", "add flatten")
    # The map ops after tokens: the message names the shape they got (64x64 here)
    for op in ("conv(8, 3)", "maxpool(2)", "gap", "upsample(2)", "lrn(5)",
               "channel_shuffle(2)"):
        name = op.split("(")[0]
        yield _shape(f"{name}-after-tokens", f"{TOK} -> {op}", "needs a CxHxW feature map")
    # Legal, if unusual: each is a shape nobody should be refused
    for name, body in [
        ("two-class-tokens", TOK + " -> class_token -> class_token -> take_token(1)"),
        ("layer-scale-on-tokens", TOK + " -> layer_scale"),
        ("layer-scale-on-map", "image -> layer_scale(0.5)"),
        ("layer-scale-on-vector", "image -> flatten -> layer_scale"),
        ("layernorm-last-of-map", "image -> layernorm(over=last)"),
        ("layernorm-of-vector", "image -> flatten -> layernorm"),
        ("layernorm-last-of-tokens", TOK + " -> layernorm(over=last)"),
        ("permute-of-vector-identity", "image -> flatten -> permute([0])"),
        ("bn-after-tokens", TOK + " -> bn"),  # BatchNorm1d(L): one statistic per token
        ("linear-of-map-last-axis", "image -> linear(7)"),
        ("hybrid-back-to-map", TOK + " -> transpose(0, 1) -> reshape([64, 8, 8]) -> conv(8, 3)"),
    ]:
        yield case(f"legal-{name}", "token-shapes", net(body), codes=(0,), located=False)


def token_size_cases(full: bool):
    big = {"1e20": "100000000000000000000", "2p62": str(2**62), "max": "2147483647"}
    for slug, n in big.items():
        for name, body in [("linear", f"image -> flatten -> linear({n})"),
                           ("linear-tokens", f"{TOK} -> linear({n})"),
                           ("mlp", f"{TOK} -> mlp({n})"),
                           ("attention-heads", f"{TOK} -> attention({n})")]:
            fragment = "--max-memory" if slug == "max" and name != "attention-heads" else None
            yield case(f"size-{name}-{slug}", "token-sizes", net(body), fragment=fragment)
    # the width and the sequence length from the input: weights and the L x L scores
    yield case("size-attention-width-1e9", "token-sizes",
               net("image -> tokens -> attention(1)", "1000000000x1x1"), fragment="--max-memory")
    yield case("size-pos-embedding-2e9-tokens", "token-sizes",
               net("image -> tokens -> pos_embedding", "3x50000x50000"),
               fragment="2,147,483,647")
    yield case("size-attention-100k-tokens", "token-sizes",
               net("image -> tokens -> attention(1)", "8x1000x100"),
               argv=["check", "spec.net", "--max-memory", "16G"],
               fragment="working memory 74.5 GiB while attention1 (attention) runs")
    yield case("size-attention-1m-tokens", "token-sizes",
               net("image -> tokens -> attention(1)", "4x1000x1000"), fragment="--max-memory")
    yield case("size-attention-100k-tokens-compile", "token-sizes",
               net("image -> tokens -> attention(1)", "8x1000x100"),
               argv=["compile", "spec.net", "-o", "out.onnx", "--max-memory", "16G"],
               fragment="working memory", outputs=["out.onnx"])
    yield case("size-mlp-hidden-of-1m-tokens", "token-sizes",
               net("image -> tokens -> mlp(10000)", "1x1000x1000"),
               argv=["check", "spec.net", "--max-memory", "16G"], fragment="mlp1 (mlp) runs")
    yield case("size-vit-b-16-fits-1g", "token-sizes", None,
               argv=["check", "vit_b_16", "--max-memory", "1G"], codes=(0,), located=False)


def share_cases(full: bool):
    tower = "share tower = conv(8, 3) -> relu\n  "
    yield case("share-undefined", "share", net("image -> tower"), fragment="'tower'")
    yield case("share-twice", "share", net(tower + "share tower = relu\n  image -> tower"),
               fragment="'tower' is already defined")
    yield case("share-after-let", "share", net("let tower = relu\n  " + tower + "image -> tower"),
               fragment="'tower' is already defined")
    yield case("share-input-name", "share", net("share image = relu\n  image -> relu"),
               fragment="'image' is already defined")
    yield case("share-inside-def", "share", "def f = share t = relu\n" + net("image -> f"),
               fragment="share NAME = block is a statement of a net")
    yield case("share-at-file-level", "share", "share t = relu\n" + net("image -> t"),
               fragment="spec.net:1:1: error: unexpected 'share'")
    yield case("share-missing-equals", "share", net("share t relu\n  image -> t"),
               fragment="expected '='")
    yield case("share-recursive", "share", net("share tower = conv(8, 3) -> tower\n"
                                               "  image -> tower"),
               fragment="uses 'tower' inside its own block")
    yield case("share-seen-from-def", "share", "def g = tower\n" + net(
        "share tower = conv(8, 3)\n  image -> g"), fragment="a definition sees only its")
    yield case("share-through-def-parameter", "share", "def g(t) = t -> t\n" + net(
        "share tower = conv(3, 3, pad=1)\n  image -> g(tower)"), codes=(0,), located=False)
    # before its declaration: 'tower' named, at the use (and, with the elaborator's call to
    # declare_shares, the line of the share: tests/test_hostile_reach.py)
    yield case("share-used-before-declared", "share",
               net("x = image -> tower\n  " + tower + "y = x"), fragment="spec.net:3:16:")
    yield case("share-channels-differ", "share", net(tower + "a = image -> tower\n  b = a -> tower"),
               fragment="spec.net:5:12: error: shared block 'tower'")
    yield case("share-fc-length-differs", "share", net(
        "share head = flatten -> fc(10)\n  a = image -> head\n  b = image -> maxpool(2) -> head"),
        fragment="its input 768")
    yield case("share-set-mismatch", "share", "net n(c=8) {\n  input image: 3x32x32\n"
               "  share t = conv(c, 3, pad=1)\n  a = image -> t\n  b = a -> t\n}\n",
               argv=["check", "spec.net", "--set", "c=4"], fragment="spec.net:5:12:")
    yield case("share-set-fits", "share", "net n(c=8) {\n  input image: 3x32x32\n"
               "  share t = conv(c, 3, pad=1)\n  a = image -> t\n  b = a -> t\n}\n",
               argv=["check", "spec.net", "--set", "c=3"], codes=(0,), located=False)
    yield case("share-a-value", "share", net("share t = image -> relu\n  image -> t"),
               fragment="not a value")
    yield case("share-a-number", "share", net("share t = 3\n  image -> t"), fragment="got 3")
    yield case("share-too-big", "share", net("share t = flatten -> fc(2147483647)\n"
                                             "  image -> t"), fragment="--max-memory")
    yield case("share-times-1e9", "share", net("share t = conv(3, 3, pad=1)\n"
                                               "  image -> t * 1000000000"),
               fragment="grows past", limit=30)
    n = 10_000
    uses = net("share t = conv(3, 3, pad=1) -> bn\n  image" + " -> t" * n)
    yield case(f"share-{n}-uses", "share", uses, codes=(0,), located=False, limit=40)
    yield case(f"share-{n}-uses-summary", "share", uses, argv=["summary", "spec.net"],
               codes=(0,), located=False, limit=40, slow=True)
    yield case("share-2000-uses-compile", "share",
               net("share t = conv(3, 3, pad=1) -> bn\n  image" + " -> t" * 2000),
               argv=["compile", "spec.net", "-o", "out.onnx"], codes=(0,), located=False,
               limit=60, slow=not full)
    for name, body in [("in-residual", "image -> residual(t) -> t"),
                       ("nested", "share u = t -> t\n  image -> u -> u -> t"),
                       ("labelled", "image -> t as t -> t as t"),
                       ("bn-two-branches", "a = image -> t\n  b = image -> t\n"
                                           "  output o = add[a, b]"),
                       ("in-a-loop", "image -> (t as b{i} for i in 1..3)"),
                       ("join-branches", "image -> concat[t, t] -> mean(droppath=0.5)[relu, relu]"),
                       ("as-shortcut", "image -> residual(t, shortcut=t)"),
                       ("stochastic-depth", "with stochastic_depth(p_L=0.5)\n"
                                            "  image -> residual(t) -> residual(t)"),
                       ("let-of-it", "let u = t -> t\n  image -> u -> u"),
                       ("training-output", "x = image -> t\n  training output aux = x -> t -> "
                                           "gap -> flatten -> fc(10)\n  output y = x -> gap "
                                           "-> flatten -> fc(10)")]:
        yield case(f"share-{name}", "share", net("share t = conv(3, 3, pad=1) -> bn\n  " + body),
                   codes=(0,), located=False)


def token_command_cases(full: bool):
    hybrid = net(HYBRID)
    for name, argv in [("summary", ["summary", "spec.net"]),
                       ("draw", ["draw", "spec.net", "-o", "out.svg"]),
                       ("compile-opset-13", ["compile", "spec.net", "-o", "out.onnx", "--opset",
                                             "13"]),
                       ("run", ["run", "spec.net", "img.png"]),
                       ("fmt", ["fmt", "spec.net"]),
                       ("check-other-input", ["check", "spec.net", "--input", "3x64x64"])]:
        yield case(f"hybrid-{name}", "token-commands", hybrid, argv=argv, files=IMG, codes=(0,),
                   located=False)
    shared = net("share t = conv(3, 3, pad=1) -> bn\n  image -> t -> t -> " + TOK[9:]
                 + " -> attention(4) -> take_token")
    for argv in (["compile", "spec.net", "-o", "out.onnx"], ["run", "spec.net", "img.png"]):
        yield case(f"shared-{argv[0]}", "token-commands", shared, argv=argv, files=IMG,
                   codes=(0,), located=False)
    # position embeddings are made for one input size: weights of 32x32 at --input 64x64
    weights = {"w.safetensors": make("spec_weights", text=hybrid), **IMG}
    yield case("pos-embedding-weights-other-input", "token-commands", hybrid,
               argv=["compile", "spec.net", "--weights", "w.safetensors", "--input", "3x64x64",
                     "-o", "out.onnx"], files=weights, located=False,
               fragment="pos_embedding1.weight", outputs=["out.onnx"])
    yield case("pos-embedding-weights-same-input", "token-commands", hybrid,
               argv=["run", "spec.net", "img.png", "--weights", "w.safetensors"], files=weights,
               codes=(0,), located=False)
    # failing runs write nothing: a broken share under fmt, compile and draw
    broken = net("share t = conv(8, 3)\n  a = image -> t\n  b = a -> t")
    for argv, out in ((["fmt", "spec.net"], "spec.net"),
                      (["compile", "spec.net", "-o", "out.onnx"], "out.onnx"),
                      (["draw", "spec.net", "-o", "out.svg"], "out.svg")):
        yield case(f"broken-share-{argv[0]}", "token-commands", broken, argv=argv,
                   codes=(0,) if argv[0] == "fmt" else (1,), outputs=[] if argv[0] == "fmt"
                   else [out], located=argv[0] != "fmt")
    syntax = net("share t = (relu\n  image -> t")
    yield case("broken-share-syntax-fmt", "token-commands", syntax, argv=["fmt", "spec.net"],
               outputs=["spec.net"], fragment="spec.net:")
    yield case("train-shared-bn-tokens", "token-commands",
               net("share t = conv(8, 3, pad=1) -> bn -> relu\n  image -> conv(8, 1) -> t -> t"
                   " -> conv(16, 2, stride=2) -> tokens -> class_token -> pos_embedding"
                   " -> attention(2) -> take_token -> linear(10)", "1x8x8"),
               argv=["train", "spec.net", "--data", "digits", "--epochs", "1",
                     "--steps-per-epoch", "1", "-o", "out.safetensors", "--no-progress"],
               codes=(0,), located=False, limit=90, slow=True)


CLASSES = (token_shape_cases, token_size_cases, share_cases, token_command_cases)
