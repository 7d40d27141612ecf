"""Write the TextMate grammar of netc specs (``.net``) and recipes (``.recipe``).

Nothing in the grammar is typed by hand that the project already knows:

- the op names come from the registry (``netc.compiler.ops.REGISTRY``);
- the keywords are the word-like string terminals of ``dsl/netc.lark``, read by Lark;
- numbers, shapes, strings and comments use the regexes of the grammar's own terminals
  (``INT``, ``FLOAT``, ``SHAPE``, ``STRING``, ``COMMENT``, ``LABEL``, ``NAME``), with word
  boundaries added (Lark's lexer sees whole tokens; a TextMate rule is tried at every column).

Run it after adding an op or a keyword; ``tests/test_editor_grammar.py`` fails while the
committed ``editors/vscode/syntaxes/netc.tmLanguage.json`` differs from what this writes::

    python editors/build_grammar.py            # rewrite the grammar
    python editors/build_grammar.py --check    # exit 1 if it is out of date
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from lark.lexer import PatternRE, PatternStr

from netc.runtime.files import atomic_write_bytes

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "editors" / "vscode" / "syntaxes" / "netc.tmLanguage.json"

# The spec language's two constants (compiler/frontend/expressions.py reads them as booleans);
# they are names to Lark, so the grammar file cannot tell us.
BOOLEANS = ("true", "false")

# Keywords whose following name is declared there, and the scope that name gets.
DECLARES = {"def": "entity.name.function.netc", "net": "entity.name.type.netc",
            "recipe": "entity.name.type.netc"}
LABEL_KEYWORD = "as"

WORD_START = r"(?<![A-Za-z0-9_])"  # no identifier character before
WORD_END = r"(?![A-Za-z0-9_])"  # nor after
KWARG_AHEAD = r"(?=\s*=(?!=))"  # `name=` (not `name ==`): a keyword argument or a binding


def lark_terminals() -> dict[str, PatternRE | PatternStr]:
    """The grammar's terminals by name, as Lark compiles them (anonymous ones included), from
    the parser's own loader of ``dsl/netc.lark``."""
    from netc.dsl.parser import load_grammar

    return {t.name: t.pattern for t in load_grammar("netc.dsl", "netc.lark").terminals}


def keywords(terminals) -> list[str]:
    """The grammar's keywords: its string terminals that are words (``def``, ``if``, ``as``)."""
    return sorted(p.value for p in terminals.values()
                  if isinstance(p, PatternStr) and re.fullmatch(r"[A-Za-z_]+", p.value))


def op_names() -> list[str]:
    """Every op of the registry, by the name a spec calls it."""
    from netc.compiler.ops import REGISTRY

    return sorted(REGISTRY)


def _words(names) -> str:
    # Longest first, so that no name is cut short by a name it starts with.
    alternatives = "|".join(re.escape(n) for n in sorted(names, key=lambda n: (-len(n), n)))
    return rf"{WORD_START}(?:{alternatives}){WORD_END}"


def build(terminals, ops: list[str]) -> dict:
    """The grammar as the JSON object VS Code, Shiki and vscode-textmate read."""
    words = keywords(terminals)
    missing = [w for w in [*DECLARES, LABEL_KEYWORD] if w not in words]
    if missing:
        raise SystemExit(f"dsl/netc.lark no longer has the keywords {missing}: update "
                         "editors/build_grammar.py")
    # Lark turns the grammar's `\n` into a newline character; written back as `\n` to read.
    rx = {name: terminals[name].value.replace("\n", r"\n") for name in
          ("INT", "FLOAT", "SHAPE", "STRING", "COMMENT", "LABEL", "NAME")}
    name = rx["NAME"]
    declare_rules = [
        {"match": rf"{WORD_START}({re.escape(kw)})\s+({name})",
         "captures": {"1": {"name": "keyword.control.netc"}, "2": {"name": scope}}}
        for kw, scope in DECLARES.items()]
    repository = {
        "comment": {"name": "comment.line.number-sign.netc", "match": rx["COMMENT"]},
        "string": {"name": "string.quoted.double.netc", "match": rx["STRING"]},
        "declaration": {"patterns": declare_rules},
        "label": {"match": rf"{WORD_START}({LABEL_KEYWORD})\s+({rx['LABEL']})",
                  "captures": {"1": {"name": "keyword.control.netc"},
                               "2": {"name": "entity.name.tag.label.netc"}}},
        "keyword": {"name": "keyword.control.netc", "match": _words(words)},
        "shape": {"name": "constant.numeric.shape.netc",
                  "match": rf"{WORD_START}{rx['SHAPE']}{WORD_END}"},
        "float": {"name": "constant.numeric.float.netc",
                  "match": rf"(?<![A-Za-z0-9_.])(?:{rx['FLOAT']}){WORD_END}"},
        "integer": {"name": "constant.numeric.integer.netc",
                    "match": rf"{WORD_START}{rx['INT']}{WORD_END}"},
        "boolean": {"name": "constant.language.boolean.netc", "match": _words(BOOLEANS)},
        "kwarg": {"name": "variable.parameter.netc", "match": rf"{WORD_START}{name}{KWARG_AHEAD}"},
        "op": {"name": "support.function.op.netc", "match": _words(ops)},
        "call": {"name": "entity.name.function.call.netc",
                 "match": rf"{WORD_START}{name}(?=\s*\()"},
        "operator": {"patterns": [
            {"name": "keyword.operator.arrow.netc", "match": re.escape(terminals["ARROW"].value)},
            {"name": "keyword.operator.range.netc", "match": r"\.\."},
            {"name": "keyword.operator.comparison.netc", "match": terminals["CMP_OP"].value},
            {"name": "keyword.operator.arithmetic.netc",
             "match": f"{terminals['MUL_OP'].value}|{terminals['ADD_OP'].value}"},
            {"name": "keyword.operator.assignment.netc", "match": "="}]},
        "punctuation": {"patterns": [
            {"name": "punctuation.separator.comma.netc", "match": ","},
            {"name": "punctuation.separator.colon.netc", "match": ":"},
            {"name": "punctuation.terminator.netc", "match": ";"},
            {"name": "punctuation.section.brackets.netc", "match": r"[\[\]{}()]"}]},
    }
    # At one column TextMate takes the first rule that matches: declarations and labels before
    # keywords, shapes before numbers, `name=` before an op of that name (``mean=[...]``).
    order = ["comment", "string", "declaration", "label", "keyword", "shape", "float",
             "integer", "boolean", "kwarg", "op", "call", "operator", "punctuation"]
    return {
        "$schema": "https://raw.githubusercontent.com/martinring/tmlanguage/master/"
                   "tmlanguage.json",
        "name": "netc",
        "scopeName": "source.netc",
        "fileTypes": ["net", "recipe"],
        "comment": "Generated by editors/build_grammar.py from dsl/netc.lark and the op "
                   "registry; do not edit by hand.",
        "patterns": [{"include": f"#{key}"} for key in order],
        "repository": repository,
    }


def render() -> str:
    """The grammar file's text."""
    return json.dumps(build(lark_terminals(), op_names()), indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if the committed grammar differs from what would be written")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current != text:
            print(f"{OUTPUT.relative_to(ROOT)} is out of date: run python editors/build_grammar.py",
                  file=sys.stderr)
            return 1
        return 0
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(OUTPUT, text.encode("utf-8"))  # an editor never reads half a grammar
    print(f"wrote {OUTPUT.relative_to(ROOT)}: {len(op_names())} ops, "
          f"{len(keywords(lark_terminals()))} keywords")
    return 0


if __name__ == "__main__":
    sys.exit(main())
