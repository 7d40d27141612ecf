"""The TextMate grammar of ``editors/vscode`` (issue 20, item 4).

Three checks: the committed grammar is what ``editors/build_grammar.py`` writes from the op
registry and ``dsl/netc.lark``; every zoo spec and example recipe, tokenized by
``vscode-textmate`` with ``vscode-oniguruma`` (VS Code's own engine, run by Node), gives each of
Lark's tokens the scope its kind calls for, at the same column with the same text; and a few
named tokens get the scope a reader expects. The Node half skips, saying why, where Node or the
npm packages (``npm ci`` in ``editors/vscode``, which ``.ci/run`` does) are missing.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
from functools import cache
from pathlib import Path

import pytest
from lark import Lark

from netc.compiler.ops import REGISTRY

ROOT = Path(__file__).resolve().parents[1]
VSCODE = ROOT / "editors" / "vscode"
GRAMMAR = VSCODE / "syntaxes" / "netc.tmLanguage.json"
MODULES = VSCODE / "node_modules"
TOKENIZE = ROOT / "tests" / "editors" / "tokenize.mjs"
FILES = [*sorted((ROOT / "model_specs").glob("*.net")), *sorted((ROOT / "examples").glob("*.net")),
         *sorted((ROOT / "examples").glob("*.recipe"))]

NODE = shutil.which("node")
needs_node = pytest.mark.skipif(
    NODE is None or not (MODULES / "vscode-textmate").is_dir()
    or not (MODULES / "vscode-oniguruma").is_dir(),
    reason="needs Node and vscode-textmate + vscode-oniguruma: run `npm ci` in editors/vscode "
           "(.ci/run does where npm is installed)")


def _builder():
    spec = importlib.util.spec_from_file_location("build_grammar", ROOT / "editors" /
                                                  "build_grammar.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build_grammar = _builder()


def test_committed_grammar_is_what_the_generator_writes():
    assert GRAMMAR.read_text(encoding="utf-8") == build_grammar.render(), \
        "run: python editors/build_grammar.py"


def test_generator_reads_ops_and_keywords_from_their_sources():
    grammar = json.loads(build_grammar.render())
    ops = grammar["repository"]["op"]["match"]
    assert all(f"|{name}|" in ops.replace("(?:", "|").replace(")", "|") for name in REGISTRY)
    words = build_grammar.keywords(build_grammar.lark_terminals())
    assert {"def", "net", "include", "as", "for", "if", "recipe", "with"} <= set(words)
    assert "conv" not in words and "->" not in words
    # a grammar with one more keyword gives one more keyword, without editing the builder
    extra = ROOT / "dsl" / "netc.lark"
    text = extra.read_text(encoding="utf-8").replace('"then" expr', '"then" "also" expr')
    assert "also" in build_grammar.keywords({t.name: t.pattern for t in Lark(
        text, parser="lalr").terminals})


def test_check_flag_fails_on_a_stale_grammar(tmp_path, monkeypatch):
    stale = tmp_path / "netc.tmLanguage.json"
    stale.write_text("{}\n")
    monkeypatch.setattr(build_grammar, "OUTPUT", stale)
    monkeypatch.setattr(build_grammar, "ROOT", tmp_path)
    assert build_grammar.main(["--check"]) == 1
    assert build_grammar.main([]) == 0
    assert build_grammar.main(["--check"]) == 0


@cache
def tokenized() -> dict[str, list[list]]:
    """file -> lines -> [start column, text, scopes] from vscode-textmate."""
    run = subprocess.run([NODE, str(TOKENIZE), str(MODULES), str(GRAMMAR), *map(str, FILES)],
                         capture_output=True, text=True, timeout=120, check=True)
    return json.loads(run.stdout)


def _token_at(path: Path, line: int, col: int):
    """The TextMate token starting at 1-based (line, col), or None."""
    for start, text, scopes in tokenized()[str(path)][line - 1]:
        if start == col - 1:
            return text, scopes[-1]
    return None


_COMMENTS: list = []  # Lark hands the comments it skips to a callback


@cache
def _lexer() -> tuple[Lark, frozenset[str]]:
    """Lark's lexer of the netc grammar, and the names of its keyword terminals."""
    lark = Lark((ROOT / "dsl" / "netc.lark").read_text(encoding="utf-8"), parser="lalr",
                lexer_callbacks={"COMMENT": _COMMENTS.append})
    words = set(build_grammar.keywords({t.name: t.pattern for t in lark.terminals}))
    return lark, frozenset(t.name for t in lark.terminals if t.pattern.value in words)


_SCOPE_OF_TYPE = {"INT": "constant.numeric.integer.netc", "FLOAT": "constant.numeric.float.netc",
                  "SHAPE": "constant.numeric.shape.netc", "STRING": "string.quoted.double.netc",
                  "COMMENT": "comment.line.number-sign.netc", "ARROW": "keyword.operator.arrow.netc"}
_DECLARED = {"DEF": "entity.name.function.netc", "NET": "entity.name.type.netc",
             "RECIPE": "entity.name.type.netc", "AS": "entity.name.tag.label.netc"}


def expected_scopes(text: str):
    """(line, col, text, scope) for each token Lark's lexer finds whose scope follows from its
    kind and neighbours: numbers, shapes, strings, comments, keywords, arrows, declared names
    and labels, and op names used as ops (not as ``name=`` or a declared name)."""
    lark, keyword_types = _lexer()
    _COMMENTS.clear()
    tokens = list(lark.lex(text))
    out = [(c.line, c.column, str(c), _SCOPE_OF_TYPE["COMMENT"]) for c in _COMMENTS]
    for i, tok in enumerate(tokens):
        before = tokens[i - 1].type if i else None
        after = tokens[i + 1].type if i + 1 < len(tokens) else None
        wordlike = tok.type in ("NAME", "LABEL") or tok.type in keyword_types
        if tok.type in _SCOPE_OF_TYPE:
            scope = _SCOPE_OF_TYPE[tok.type]
        elif wordlike and before in _DECLARED:  # `as output`: a label, though a keyword
            scope = _DECLARED[before]
        elif tok.type in keyword_types:
            scope = "keyword.control.netc"
        elif not wordlike:  # punctuation; (Lark's basic lexer reads every name as a LABEL)
            continue
        elif after == "EQUAL":
            scope = "variable.parameter.netc"
        elif str(tok) in REGISTRY:
            scope = "support.function.op.netc"
        else:
            continue
        out.append((tok.line, tok.column, str(tok), scope))
    return out


@needs_node
@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_token_gets_the_scope_of_its_kind(path):
    expected = expected_scopes(path.read_text(encoding="utf-8"))
    wrong = [(line, col, text, scope, _token_at(path, line, col))
             for line, col, text, scope in expected
             if _token_at(path, line, col) != (text, scope)]
    assert wrong == []
    assert len(expected) > 20 and "keyword.control.netc" in {scope for *_, scope in expected}


def test_the_corpus_has_every_kind_of_token():
    """The files tokenized above hold each kind this grammar scopes, so no check is vacuous."""
    kinds = {}
    for path in FILES:
        for *_, scope in expected_scopes(path.read_text(encoding="utf-8")):
            kinds[scope] = kinds.get(scope, 0) + 1
    assert set(kinds) == {*_SCOPE_OF_TYPE.values(), *_DECLARED.values(), "keyword.control.netc",
                          "variable.parameter.netc", "support.function.op.netc"}
    assert kinds["support.function.op.netc"] > 300 and kinds["constant.numeric.shape.netc"] > 10


# (file, a piece of one line of it, the token that is first at or after where the piece starts,
# its scope): found by content, not by line and column, so `netc fmt`'s re-layout of the zoo leaves the table right.
NAMED = [
    ("model_specs/resnet.net", "# ResNet: He et al.", "# ResNet: He et al. 2015, \"Deep "
     "Residual Learning for Image Recognition\", Table 1 and §4.2.", "comment.line.number-sign.netc"),
    ("model_specs/resnet.net", "def basic(", "def", "keyword.control.netc"),
    ("model_specs/resnet.net", "def basic(", "basic", "entity.name.function.netc"),
    ("model_specs/resnet.net", "basic(ch, stride=1", "stride", "variable.parameter.netc"),
    ("model_specs/resnet.net", "residual(conv(ch, 3, stride", "residual",
     "support.function.op.netc"),
    ("model_specs/resnet.net", "residual(conv(ch, 3, stride", "conv", "support.function.op.netc"),
    ("model_specs/resnet.net", "conv(ch, 3, stride", "3", "constant.numeric.integer.netc"),
    ("model_specs/resnet.net", "bias=false) -> bn -> relu", "false",
     "constant.language.boolean.netc"),
    ("model_specs/resnet.net", "bias=false) -> bn -> relu", "->", "keyword.operator.arrow.netc"),
    ("model_specs/resnet.net", "inline def stem", "inline", "keyword.control.netc"),
    ("model_specs/resnet.net", "as conv1", "conv1", "entity.name.tag.label.netc"),
    ("model_specs/resnet.net", "(block(64)", "block", "entity.name.function.call.netc"),
    ("model_specs/resnet.net", "input image: 3x224x224", "3x224x224",
     "constant.numeric.shape.netc"),
    ("model_specs/resnet.net", "mean=[0.485", "mean", "variable.parameter.netc"),  # an op too
    ("model_specs/resnet.net", "mean=[0.485", "0.485", "constant.numeric.float.netc"),
    ("model_specs/resnet.net", "net resnet18 ", "net", "keyword.control.netc"),
    ("model_specs/resnet.net", "net resnet18 ", "resnet18", "entity.name.type.netc"),
    ("examples/dream.recipe", "recipe dream(", "recipe", "keyword.control.netc"),
    ("examples/dream.recipe", "recipe dream(", "dream", "entity.name.type.netc"),
    ("examples/dream.recipe", "step=1.5", "1.5", "constant.numeric.float.netc"),
    ("examples/dream.recipe", 'content "astronaut"', '"astronaut"', "string.quoted.double.netc"),
]


@needs_node
@pytest.mark.parametrize("file, piece, text, scope", NAMED)
def test_named_tokens(file, piece, text, scope):
    lines = (ROOT / file).read_text(encoding="utf-8").splitlines()
    line = next(i for i, t in enumerate(lines, 1) if piece in t)
    col = lines[line - 1].index(text, lines[line - 1].index(piece)) + 1  # first at or after it
    assert _token_at(ROOT / file, line, col) == (text, scope)


# ---- the VS Code extension folder ------------------------------------------------------------

def test_manifest_contributes_the_language_and_grammar():
    manifest = json.loads((VSCODE / "package.json").read_text(encoding="utf-8"))
    (language,) = manifest["contributes"]["languages"]
    (grammar,) = manifest["contributes"]["grammars"]
    assert set(language["extensions"]) == {".net", ".recipe"}
    assert grammar["language"] == language["id"]
    assert grammar["scopeName"] == json.loads(GRAMMAR.read_text())["scopeName"] == "source.netc"
    assert (VSCODE / grammar["path"]).resolve() == GRAMMAR
    config = json.loads((VSCODE / language["configuration"]).read_text(encoding="utf-8"))
    assert config["comments"]["lineComment"] == "#"
    assert ["(", ")"] in config["brackets"] and ["[", "]"] in config["brackets"]
    assert {"open": "{", "close": "}"} in config["autoClosingPairs"]
    assert (VSCODE / manifest["main"]).is_file()
    assert "vscode-languageclient" in manifest["dependencies"]
    lock = json.loads((VSCODE / "package-lock.json").read_text(encoding="utf-8"))
    locked = set(lock["packages"])
    assert {f"node_modules/{p}" for p in ("vscode-languageclient", "vscode-textmate",
                                          "vscode-oniguruma")} <= locked


@pytest.mark.skipif(NODE is None, reason="Node is not installed")
@pytest.mark.parametrize("setting, command", [
    (None, ["netc", "lsp"]),
    ('["/venv/bin/netc", "lsp"]', ["/venv/bin/netc", "lsp"]),
])
def test_extension_starts_netc_lsp_over_stdio(setting, command):
    """extension.js, run by Node with stand-ins for VS Code's API and the language client,
    starts the command of the ``netc.server.command`` setting for netc documents, and stops
    it on deactivation."""
    run = subprocess.run([NODE, str(ROOT / "tests" / "editors" / "extension_check.cjs"),
                          str(VSCODE / "extension.js"), *([setting] if setting else [])],
                         capture_output=True, text=True, timeout=60, check=True)
    seen = json.loads(run.stdout)
    assert seen["setting"] == "netc.server.command"
    assert [seen["server"]["run"]["command"], *seen["server"]["run"]["args"]] == command
    assert seen["server"]["run"]["transport"] == 0  # TransportKind.stdio
    assert seen["options"]["documentSelector"] == [{"scheme": "file", "language": "netc"}]
    assert (seen["started"], seen["stopped"], seen["subscriptions"]) == (1, 1, 1)
    assert "error" not in seen


@needs_node
def test_the_client_library_the_extension_requires_is_installed():
    found = subprocess.run([NODE, "-e", "console.log(require.resolve("
                            "'vscode-languageclient/node'))"], cwd=VSCODE,
                           capture_output=True, text=True, timeout=60)
    assert found.returncode == 0 and "vscode-languageclient" in found.stdout, found.stderr
