"""Issue 21's language under attack, beyond the corpus's one-line cases (``hostile/reach.py``,
run by tests/test_hostile_corpus.py): what needs a look inside.

- ``netc fmt`` on every new syntax form: idempotent, every comment kept, the same net after;
- the editor's hover, go to definition and completion at every place of every reach case;
- attention's L x L scores and mlp's hidden layer in the memory estimate;
- a shared block's name used before its ``share``, inside itself, or from a def;
- a shared block holding batch norm, in training: what it does, as written in sharing.py;
- bugs whose fixes were in files that branch did not own (concat of sequences, a shared
  net's weights file, recipes over tokens).
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from hostile.base import net
from hostile.corpus import all_cases
from netc.compiler.analyses.budget import estimate
from netc.compiler.frontend.loader import load, load_text
from netc.compiler.lower_torch.module import build_module
from netc.compiler.numerics.seeded_weights import init_weights
from netc.dsl.diagnostics import DiagnosticError
from netc.dsl.format import format_text


def test_the_corpus_holds_issue_21s_classes():
    classes = {}
    for c in all_cases(False):
        classes[c["klass"]] = classes.get(c["klass"], 0) + 1
    assert classes["token-shapes"] >= 50 and classes["token-sizes"] >= 15
    assert classes["share"] >= 20 and classes["token-commands"] >= 10


# ---- netc fmt ---------------------------------------------------------------------------------
FORMS = {
    "share": "net n {\n  input image: 3x32x32\n  share   tower=conv(8,3)->relu   # the tower\n"
             "  a = image -> tower\n  b = image -> tower as right   # second use\n}\n",
    "share-comments-inside": "net n {\n  input image: 3x8x8\n  share # c1\n   tower # c2\n"
                             " = # c3\n relu # c4\n  image -> tower\n}\n",
    "share-semicolon": "net n {\n  input image: 3x8x8\n  share t = relu;\n  image -> t\n}\n",
    "tokens": "net n {\n  input image: 3x32x32\n  image -> conv(64,4,stride=4) -> tokens -> "
              "class_token(init=normal,std=0.5) # cls\n    -> pos_embedding -> residual("
              "layernorm->attention(4,dropout=0.1)) -> residual(layernorm(over=last,eps=1e-6)"
              " -> mlp(128, dropout=0.1)) -> layernorm -> take_token(0) -> linear(10,bias=false)"
              "\n}\n",
    "convnext": "def cnblock(dim) = residual(\n  conv(dim, 7, pad=3, groups=dim) -> permute([1,2,"
                "0]) # to HxWxC\n  -> layernorm(over=last, eps=1e-6) -> linear(4*dim) -> gelu("
                "approximate=tanh)\n  -> linear(dim) -> permute([2, 0, 1]) -> layer_scale(1e-6)"
                ")\nnet n {\n  input image: 3x32x32\n  image -> conv(16, 4, stride=4) -> "
                "cnblock(16) -> transpose(1, 2)\n}\n",
}


@pytest.mark.parametrize("name", list(FORMS))
def test_fmt_is_idempotent_keeps_comments_and_the_net(name):
    text = FORMS[name]
    once = format_text(text, "f.net")
    assert format_text(once, "f.net") == once
    assert re.findall(r"#.*", text) == [c.rstrip() for c in re.findall(r"#.*", once)]
    before, after = load_text(text, "f.net"), load_text(once, "f.net")
    assert [(n.name, n.shape, n.shares) for n in before] == \
           [(n.name, n.shape, n.shares) for n in after]


# ---- the editor: every request at every place of every case ---------------------------------
def test_the_editor_answers_everywhere_in_every_case(tmp_path):
    """netc lsp's answers, in process, at each character of each case of hostile/reach.py
    (test_lsp_hostile.py replays them as edits through the server): hover, go to definition
    and completion never raise, whatever the text; shapes are hinted on a legal token net."""
    from hostile import reach

    from netc.runtime.lsp.analysis import analyze
    from netc.runtime.lsp.completion import complete
    from netc.runtime.lsp.hover import hover
    from netc.runtime.lsp.navigation import definition, inlay_hints, symbols

    path = tmp_path / "spec.net"
    path.write_text("")
    texts = [c["files"]["spec.net"]["text"] for make in reach.CLASSES for c in make(False)
             if "text" in c["files"].get("spec.net", {})]
    texts = [t for t in texts if len(t) < 3000]
    assert len(texts) > 80
    for text in texts:
        a = analyze(path, {path: text}, 1, budgets={"max_nodes": 20_000, "max_memory": 2**34})
        program = a.program
        defs = program.defs if program is not None else {}
        lines = text.splitlines()
        for line0, line in enumerate(lines):
            for char in range(len(line) + 1):
                hover(a, defs, line0, char)
                definition(a, program, line0, char)
                complete(text, line0, char, program, a.module)
        inlay_hints(a, 0, len(lines))
        if a.module is not None:
            symbols(a.module, text)
    a = analyze(path, {path: net(reach.TOK)}, 2)
    assert [h.label for h in inlay_hints(a, 0, 5)] == ["→ 3x32x32", "→ 64x64"]


# ---- memory: what an op holds while it runs --------------------------------------------------
def test_attentions_scores_are_in_the_estimate_and_vit_b_16_fits():
    e = estimate(load("vit_b_16"))
    length, d, heads = 197, 768, 12  # 14x14 patches and the class token
    assert e.workspace == 3 * length * d + 2 * heads * length * length  # > mlp's 2·L·3072
    assert e.workspace_node.op == "attention"
    assert e.total == 4 * (e.params + e.activations + e.workspace) < 2**30


def test_100000_tokens_are_refused_at_the_attention_before_anything_is_drawn(tmp_path):
    spec = tmp_path / "a.net"
    spec.write_text("net n {\n  input image: 8x1000x100\n  image -> tokens -> attention(2)\n}\n")
    with pytest.raises(DiagnosticError) as err:
        load(str(spec), max_memory=2**30)
    d = err.value.diagnostics[0]
    assert d.span.line == 3 and "attention1 (attention" in d.message
    assert "working memory 149.0 GiB" in d.message  # 2 heads x 2 x 10^10 values x 4 bytes


# ---- share: names -------------------------------------------------------------------------
def test_a_shared_name_used_before_its_share_says_where_it_is_declared():
    text = ("net n {\n  input image: 3x8x8\n  x = image -> tower\n  share tower = relu\n"
            "  y = x -> tower\n}\n")
    with pytest.raises(DiagnosticError) as err:
        load_text(text, "s.net")
    [d] = err.value.diagnostics
    assert (d.span.line, d.span.col) == (3, 16)
    assert d.message.startswith("'tower' is declared by share on line 4, after this use")


def test_a_shared_block_that_uses_itself_is_refused_at_the_name():
    text = "net n {\n  input image: 3x8x8\n  share t = conv(3, 1) -> t\n  image -> t\n}\n"
    with pytest.raises(DiagnosticError) as err:
        load_text(text, "s.net")
    [d] = err.value.diagnostics
    assert (d.span.line, d.span.col) == (3, 27) and "inside its own block" in d.message


# ---- share: batch norm in training ------------------------------------------------------------
def test_a_shared_batch_norm_in_training_normalises_each_use_by_its_batch_and_updates_once_per_use():
    """sharing.py rule 5: one nn.BatchNorm2d, called at each use. In training each use
    normalises by its own batch's statistics, and the one set of running statistics takes a
    momentum step per use, in the order of the uses (torch's behaviour for one module called
    twice); in eval both uses read the same running statistics."""
    graph = load_text("net n {\n  input image: 3x8x8\n  share t = conv(3, 3, pad=1) -> bn\n"
                      "  image -> t -> t\n}\n", "s.net")
    module = build_module(graph, init_weights(graph, 0)).train()
    bns = [m for m in module.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(bns) == 1
    bn, conv = bns[0], module.get_submodule("t.conv1")
    mean0 = bn.running_mean.clone()
    x = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = module(x)
        # the same computation by hand: the first use's batch, then the second's
        h1 = conv(x)
        m1 = h1.mean((0, 2, 3))
        u1 = torch.nn.functional.batch_norm(h1, None, None, bn.weight, bn.bias, True, 0.0,
                                            bn.eps)
        h2 = conv(u1)
        m2 = h2.mean((0, 2, 3))
        u2 = torch.nn.functional.batch_norm(h2, None, None, bn.weight, bn.bias, True, 0.0,
                                            bn.eps)
    assert torch.allclose(y, u2, atol=1e-5)
    p = bn.momentum
    want = (1 - p) * ((1 - p) * mean0 + p * m1) + p * m2
    assert torch.allclose(bn.running_mean, want, atol=1e-6)
    assert bn.num_batches_tracked.item() == 2


# ---- found here, fixed elsewhere (edits in the report) --------------------------------------
def test_concat_of_token_sequences_keeps_them_sequences():
    graph = load_text("net n {\n  input image: 3x32x32\n  image -> conv(64, 4, stride=4) -> "
                      "tokens -> concat[relu, relu]\n}\n", "c.net")
    y = build_module(graph).eval()(torch.randn(1, 3, 32, 32))
    assert graph[graph.outputs[0]].shape == tuple(y.shape[1:]) == (128, 64)


def test_a_shared_nets_weights_file_loads_back(tmp_path):
    from safetensors.numpy import save_file

    from netc.runtime.weights.load import load_weights

    graph = load_text("net n {\n  input image: 3x8x8\n  share t = conv(3, 3, pad=1) -> bn\n"
                      "  image -> t -> t\n}\n", "s.net")
    weights = init_weights(graph, 0)  # the owner's tensors only, as netc train writes them
    assert not [k for k in weights if k.startswith("t_1.")]
    save_file(weights, tmp_path / "w.safetensors")
    loaded = load_weights(graph, tmp_path / "w.safetensors")
    assert all(np.array_equal(loaded[k], weights[k]) for k in weights)


RECIPE = """net small {{
  input image: 3x32x32
  image -> conv(16, 4, stride=4) as c1 -> tokens {middle} as a1 -> layernorm as n1
}}
recipe r {{
  net small
  content "c.png"
  init content
  size {size}
  optimizer adam(steps=1)
  loss = content(n1)
}}
"""


def _recipe(tmp_path, cli, monkeypatch, middle: str, size: int):
    from PIL import Image

    Image.new("RGB", (64, 64), (120, 80, 40)).save(tmp_path / "c.png")
    (tmp_path / "r.recipe").write_text(RECIPE.format(middle=middle, size=size))
    monkeypatch.chdir(tmp_path)
    r = cli("recipe", "r.recipe", "-o", "o.png", "--max-memory", "4G")
    first = next((line for line in r.err.splitlines() if "error:" in line), "")
    assert r.code == 1 and "Traceback" not in r.err and not (tmp_path / "o.png").exists()
    return first


def test_a_position_embedding_given_another_size_by_a_recipe_is_one_line(tmp_path, cli,
                                                                          monkeypatch):
    first = _recipe(tmp_path, cli, monkeypatch, "-> pos_embedding -> attention(2)", 64)
    # the plan refuses the size before the module runs: a tapped layer past tokens fixes it
    assert first == ("netc: error: recipe r reads a layer past a flatten or tokens of small, "
                     "so the image must be 32x32; --size 64 cannot be used")


def test_a_recipe_whose_attention_would_take_8_tb_is_refused(tmp_path):
    # 4000x4000 / 4x4 patches: 10^6 tokens, 2 heads of 10^12 scores. In a process capped at
    # 3 GB of address space, as the corpus runs: a machine that overcommits memory would
    # otherwise hand the 8 TB out and kill the test run when it is touched.
    import resource
    import subprocess
    import sys

    from PIL import Image

    Image.new("RGB", (64, 64), (120, 80, 40)).save(tmp_path / "c.png")
    (tmp_path / "r.recipe").write_text(RECIPE.format(middle="-> attention(2)", size=4000))

    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, 3 * 2**30))

    r = subprocess.run([sys.executable, "-m", "netc.runtime.cli", "recipe", "r.recipe", "-o",
                        "o.png", "--max-memory", "2G"], cwd=tmp_path, capture_output=True,
                       text=True, preexec_fn=cap, timeout=120)
    first = next((line for line in r.stderr.splitlines() if "error:" in line), "")
    assert r.returncode == 1 and "Traceback" not in r.stderr and "4000" in first
    assert not (tmp_path / "o.png").exists()
