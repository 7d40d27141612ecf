"""``netc fmt``: one layout, idempotent, and the same nets (same IR) before and after.

Meaning is tested the strong way: every spec in the repository is first scrambled (each token
separated from the next by random spaces, tabs and line breaks, comments kept at their
tokens), then formatted, then elaborated; every net must give the same nodes (names, ops,
inputs, attributes, shapes) and counts as the file as shipped.
"""

from __future__ import annotations

import io
import json
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hostile.corpus import all_cases

from netc.compiler.analyses.summary import summarize
from netc.compiler.frontend.loader import load, read_program
from netc.dsl.diagnostics import DiagnosticError
from netc.dsl.format import WIDTH, format_text
from netc.dsl.layout_scan import scan, token_types

ROOT = Path(__file__).resolve().parents[1]
ZOO = sorted((ROOT / "model_specs").glob("*.net"))
SPECS = sorted([*ZOO, *(ROOT / "examples").glob("*.net"), *(ROOT / "examples").glob("*.recipe"),
                *(ROOT / "tests").rglob("*.net"), *(ROOT / "tests").rglob("*.recipe")])
LOADABLE = [p for p in SPECS if p.suffix == ".net" and p.name != "resnet_typo.net"]


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def scramble(text: str, seed: int) -> str:
    """``text``'s tokens and comments with random whitespace between them (never none)."""
    rng = random.Random(seed)
    found = scan(text.replace("\r\n", "\n"))
    comments = {c.line: str(c) for c in found.comments}
    tokens = found.tokens
    last_on_line = {n for n, tok in enumerate(tokens)
                    if n + 1 == len(tokens) or tokens[n + 1].line != tok.line}
    out, last_line = [], 0
    for n, tok in enumerate(tokens):
        for line in sorted(k for k in comments if last_line < k < tok.line):
            out.append(f"\n{comments.pop(line)}\n")  # a comment line before this token
        out.append(rng.choice([" ", "  ", "\t", "\n", "\n\n\n", " \t\n    "]) + str(tok))
        if tok.line in comments and n in last_on_line:
            out.append(f"  {comments.pop(tok.line)}\n")  # a trailing comment
        last_line = tok.line
    out.extend(f"\n{c}" for _, c in sorted(comments.items()))
    return "".join(out) + rng.choice(["", "\n", "\n\n"])


def facts(graph) -> tuple:
    s = summarize(graph)
    nodes = tuple((n.name, n.op, n.inputs, repr(n.attrs), n.shape) for n in graph)
    return nodes, s.params, s.macs, tuple(sorted(s.outputs.items()))


def net_names(path: Path) -> list[str]:
    program = read_program(path)
    return [n.name for n in program.nets.values() if Path(n.span.file).name == path.name]


# ---- the repository is formatted, and formatting keeps meaning --------------------------------
def test_zoo_and_examples_are_formatted(cli):
    """CI's check: `netc fmt --check model_specs/ examples/` lists nothing (a diff if it does)."""
    r = cli("fmt", "--check", "--diff", str(ROOT / "model_specs"), str(ROOT / "examples"))
    assert r.code == 0 and r.out == "", r.out


@pytest.mark.parametrize("path", SPECS, ids=rel)
def test_idempotent_and_token_preserving(path):
    text = path.read_text(encoding="utf-8")
    once = format_text(text, rel(path))
    assert format_text(once, rel(path)) == once
    assert token_types(once) == token_types(text)
    assert all(len(line) <= WIDTH or "#" in line or "->" not in line.strip()[2:]
               for line in once.splitlines())
    messy = format_text(scramble(text, seed=1), rel(path))
    assert format_text(messy, rel(path)) == messy
    assert token_types(messy) == token_types(text)


@pytest.mark.parametrize("path", LOADABLE, ids=rel)
def test_scrambled_then_formatted_is_the_same_net(path, tmp_path):
    """Every net of every loadable spec: same IR and counts after scramble + format. A file's
    includes are scrambled and formatted beside it (efficientnet.net includes mobilenet.net)."""
    for other in path.parent.glob("*.net"):
        (tmp_path / other.name).write_text(
            format_text(scramble(other.read_text(encoding="utf-8"), seed=7), other.name))
    names = net_names(path)
    assert names, path
    for name in names:
        want = facts(load(f"{path}:{name}"))
        got = facts(load(f"{tmp_path / path.name}:{name}"))
        assert got == want, name


def test_a_spec_that_does_not_check_keeps_its_error(tmp_path):
    """examples/resnet_typo.net is meant to fail: the same error, at the same place."""
    path = ROOT / "examples" / "resnet_typo.net"
    formatted = tmp_path / path.name
    formatted.write_text(format_text(path.read_text(), path.name))
    errors = []
    for spec in (path, formatted):
        with pytest.raises(DiagnosticError) as err:
            load(str(spec))
        errors.append([(d.line, d.column, d.message) for d in err.value.diagnostics])
    assert errors[0] == errors[1]


def readme_specs() -> list[str]:
    """The README's untagged (or ```net) code blocks that parse as specs."""
    blocks, inside, current = [], False, []
    for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines(keepends=True):
        if line.startswith("```"):
            if inside and current is not None:
                blocks.append("".join(current))
            inside, current = not inside, [] if line.strip() in ("```", "```net") else None
            continue
        if inside and current is not None:
            current.append(line)
    return [b for b in blocks if re.match(r"\s*(#.*\n\s*)*(net|def|inline|let|include|recipe)\b",
                                          b) and _parses(b)]


def _parses(text: str) -> bool:
    try:
        scan(text)
    except Exception:
        return False
    return True


def test_readme_specs_format_idempotently(tmp_path):
    specs = readme_specs()
    assert len(specs) >= 3
    for n, text in enumerate(specs):
        once = format_text(text)
        assert format_text(once) == once and token_types(once) == token_types(text)
        if "input " not in text:
            continue  # a fragment (a definition without a net)
        (tmp_path / "a.net").write_text(text)
        (tmp_path / "b.net").write_text(once)
        for name in net_names(tmp_path / "a.net"):
            if "=" in name:
                continue
            try:
                want = facts(load(f"{tmp_path / 'a.net'}:{name}"))
            except DiagnosticError:
                continue  # the README's error example
            assert facts(load(f"{tmp_path / 'b.net'}:{name}")) == want


# ---- the layout's rules -----------------------------------------------------------------------
def test_spacing_rules():
    text = ("net  a(k=1 ,m = 2){\ninput x:3x8x8 ,mean=[ 0.5 ]\n"
            "x->conv( 8,3 , pad=- 1 )as c{ k }->concat[relu ,identity]->"
            "(relu for i in 1 .. k)->rows[ -1 ]\n"
            "let t=let a=1 ,b=2 in a+b*-3\n}\n")
    assert format_text(text) == (
        "net a(k=1, m=2) {\n"
        "  input x: 3x8x8, mean=[0.5]\n"
        "  x -> conv(8, 3, pad=-1) as c{ k } -> concat[relu, identity] -> (relu for i in 1..k)"
        " -> rows[-1]\n"
        "  let t = let a = 1, b = 2 in a + b * -3\n"
        "}\n")


def test_comments_are_kept_in_place_and_blank_lines_collapse():
    text = ("# head\n\n\n\n# second\ndef a = conv(8, 3)   # trailing\n"
            "   # before the arrow\n     -> relu\n\n\n# last\n")
    out = format_text(text)
    assert out == ("# head\n\n# second\ndef a = conv(8, 3)  # trailing\n"
                   "  # before the arrow\n  -> relu\n\n# last\n")
    assert [c for c in token_types(out)[1]] == ["# head", "# second", "# trailing",
                                                "# before the arrow", "# last"]


def test_every_comment_of_the_zoo_survives_scrambling():
    for path in SPECS:
        text = path.read_text(encoding="utf-8")
        want = [str(c).rstrip() for c in scan(text).comments]
        got = [str(c).rstrip() for c in scan(format_text(scramble(text, 3))).comments]
        assert got == want, path


def test_a_long_chain_breaks_before_arrows_at_the_outermost_level():
    layers = " -> ".join(f"conv({8 * k}, 3, pad=1) as c{k}" for k in range(1, 13))
    text = f"net a {{\n  input x: 3x8x8\n  x -> (relu -> relu) -> {layers} -> gap\n}}\n"
    out = format_text(text)
    lines = out.splitlines()
    assert all(len(line) <= WIDTH for line in lines)
    assert len(lines) > 5 and all(line.startswith("    -> ") for line in lines[3:-1])
    assert "(relu -> relu)" in out  # not broken inside the brackets
    assert format_text(out) == out


def test_brackets_line_up_and_hang():
    text = ("def a = concat[\n conv(8, 1),\nconv(8, 1)\n-> relu,\n     identity\n      ]\n"
            "def b = residual(conv(8, 3) -> bn\n -> relu, shortcut=project)\n")
    assert format_text(text) == (
        "def a = concat[\n  conv(8, 1),\n  conv(8, 1)\n    -> relu,\n  identity\n]\n"
        "def b = residual(conv(8, 3) -> bn\n                   -> relu, shortcut=project)\n")


def test_an_else_branch_and_a_repetition_hold_their_continuations():
    """Lines that go on an `else` branch sit under it; `for` and `as` on a line of their own go
    on the element before them, two further than a `->`."""
    text = ("def a(d) =\n  if d == 0 then relu\n  else relu\n-> relu\n"
            "net n {\ninput x: 3x8x8\nx -> relu -> (relu)\nfor i in 1..2\n-> relu\n}\n")
    assert format_text(text) == (
        "def a(d) =\n  if d == 0 then relu\n  else relu\n         -> relu\n"
        "net n {\n  input x: 3x8x8\n  x -> relu -> (relu)\n      for i in 1..2\n    -> relu\n}\n")


def test_tables_align_their_columns():
    text = ("let rows = [[1, 16, true, RE], [6, 240, false, HS],\n"
            "  [3, 8, true, RE], [-1, 2.5, false, HS]]\n"
            "net resnet18 = resnet(basic)\nnet resnet101_v1_5 = resnet(b)  # tv\n"
            "def t = x\n  -> f( 64, 1) -> g(1)\n  -> f(128,  96)\n  -> f(2, 3) as c\n")
    assert format_text(text) == (
        "let rows = [[ 1,  16, true,  RE], [ 6, 240, false, HS],\n"
        "            [ 3,   8, true,  RE], [-1, 2.5, false, HS]]\n"
        "net resnet18       = resnet(basic)\nnet resnet101_v1_5 = resnet(b)  # tv\n"
        "def t = x\n  -> f( 64,  1) -> g(1)\n  -> f(128, 96)\n  -> f(  2,  3) as c\n")


def test_a_table_too_wide_to_align_stays_as_written():
    row = ", ".join(f"[{k}, 1]" for k in range(1, 15))
    text = f"let r = [{row},\n         [100000, 2]]\n"
    assert format_text(text) == text


# ---- the command --------------------------------------------------------------------------
MESSY = "def  a=conv(8,3)->relu\n"
TIDY = "def a = conv(8, 3) -> relu\n"


def test_check_lists_what_would_change_and_writes_nothing(cli, tmp_path):
    (tmp_path / "tidy.net").write_text(TIDY)
    (tmp_path / "messy.recipe").write_text(MESSY)
    (tmp_path / "notes.txt").write_text(MESSY)
    r = cli("fmt", "--check", str(tmp_path))
    assert r.code == 1 and r.out == f"{tmp_path / 'messy.recipe'}\n"
    assert (tmp_path / "messy.recipe").read_text() == MESSY
    r = cli("fmt", "--check", "--diff", str(tmp_path / "messy.recipe"))
    assert r.code == 1 and f"+{TIDY}" in r.out and f"-{MESSY}" in r.out
    assert cli("fmt", "--check", str(tmp_path / "tidy.net")).code == 0


def test_writes_only_the_files_that_change(cli, tmp_path):
    tidy, messy = tmp_path / "tidy.net", tmp_path / "sub" / "messy.net"
    messy.parent.mkdir()
    tidy.write_text(TIDY)
    messy.write_text(MESSY)
    before = tidy.stat().st_ino, tidy.stat().st_mtime_ns
    r = cli("fmt", str(tmp_path))
    assert r.code == 0 and "1 file formatted, 1 unchanged" in r.err
    assert messy.read_text() == TIDY
    assert (tidy.stat().st_ino, tidy.stat().st_mtime_ns) == before  # not rewritten
    assert [p.name for p in messy.parent.iterdir()] == ["messy.net"]  # no temporary left


def test_a_syntax_error_is_located_and_the_file_untouched(cli, tmp_path):
    bad, good = tmp_path / "bad.net", tmp_path / "good.net"
    bad.write_text("def a = conv(8, 3) ->\nnet b {\n")
    good.write_text(MESSY)
    r = cli("fmt", str(bad), str(good))
    assert r.code == 1 and f"{bad}:2:5: error: unexpected 'b'" in r.err
    assert "Traceback" not in r.err and r.err.count("error:") == 1
    assert bad.read_text() == "def a = conv(8, 3) ->\nnet b {\n"
    assert good.read_text() == TIDY  # the other files are still formatted


def test_not_a_file_and_not_text(cli, tmp_path):
    (tmp_path / "bin.net").write_bytes(b"def a = conv(8, 3)\xff\n")
    r = cli("fmt", str(tmp_path / "bin.net"))
    assert r.code == 1 and "bin.net:1:1: error: this is not a UTF-8 text file" in r.err
    r = cli("fmt", str(tmp_path / "missing.net"))
    assert r.code == 1 and r.err.startswith("netc: error: netc fmt: cannot read")
    (tmp_path / "empty").mkdir()
    r = cli("fmt", str(tmp_path / "empty"))
    assert r.code == 1 and "empty: a directory with no .net or .recipe files in it" in r.err
    with pytest.raises(SystemExit) as done:  # no FILES: argparse's one line
        cli("fmt")
    assert done.value.code == 2


def test_stdin_to_stdout(cli, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(MESSY.encode())))
    r = cli("fmt", "-")
    assert r.code == 0 and r.out == TIDY and r.err == ""
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(MESSY.encode())))
    r = cli("fmt", "--check", "-")
    assert r.code == 1 and r.out == "<stdin>\n"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"def a = (\n")))
    r = cli("fmt", "-")
    assert r.code == 1 and r.out == "" and "<stdin>:1:10: error:" in r.err


@pytest.mark.parametrize("raw, want", [
    (b"def a = conv(8, 3)\r\n\r\n\r\n-> relu  # x\r\n", "def a = conv(8, 3)\n\n  -> relu  # x\n"),
    (b"def\ta\t=\tconv(8,\t3)", "def a = conv(8, 3)\n"),  # tabs, no final newline
    (b"\n\n# only a comment \t", "# only a comment\n"),
    (b"", ""),
])
def test_hostile_but_valid_text(raw, want):
    assert format_text(raw.decode()) == want


def test_what_the_parser_refuses_after_lexing_is_refused_too():
    """The same checks as `netc check`: a 101-digit integer lexes, but is not a number."""
    with pytest.raises(DiagnosticError) as err:
        format_text("def a = conv(" + "9" * 101 + ", 3)\n", "big.net")
    assert "digits" in err.value.diagnostics[0].message


def test_the_hostile_corpus_formats_or_is_refused_in_one_diagnostic():
    """Every spec of tests/hostile (up to 20,000 characters; the 100,000-layer chain below is
    the long case): formatted idempotently with its tokens kept, or a DiagnosticError."""
    formatted = refused = 0
    for case in all_cases(False):
        for name, file in case["files"].items():
            text = file.get("text")
            if not name.endswith((".net", ".recipe")) or text is None or len(text) > 20_000:
                continue
            try:
                out = format_text(text, name)
            except DiagnosticError:
                refused += 1
                continue
            assert format_text(out, name) == out, case["name"]
            assert token_types(out) == token_types(text.replace("\r\n", "\n")), case["name"]
            formatted += 1
    assert formatted > 1000 and refused > 10


def test_a_nul_byte_is_a_located_error():
    with pytest.raises(DiagnosticError) as err:
        format_text("def a = conv(8, 3)\n-> re\x00lu\n", "nul.net")
    (d,) = err.value.diagnostics
    assert (d.line, d.column) == (2, 6) and "NUL" in d.message


def test_a_100000_layer_chain_formats_in_bounded_time_and_memory(tmp_path):
    """In a fresh process (its peak memory is its own): no recursion limit, linear work."""
    script = (
        "import json, resource, sys, time\n"
        "from netc.dsl.format import format_text\n"
        "text = 'net big {\\n  input x: 3x8x8\\n  x -> ' + ' -> '.join(['relu'] * 100000)"
        " + '\\n}\\n'\n"
        "t = time.perf_counter(); out = format_text(text, 'big.net')\n"
        "print(json.dumps({'s': time.perf_counter() - t, 'lines': out.count('\\n'),"
        " 'rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,"
        " 'widest': max(map(len, out.splitlines()))}))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=600, check=True)
    got = json.loads(done.stdout)
    assert got["widest"] <= WIDTH and got["lines"] > 100000 * 7 // WIDTH
    assert got["rss_mb"] < 2000, got
    assert got["s"] < 300, got
