"""Parse netc source text into :mod:`netc.dsl.ast` nodes.

The grammar lives in ``netc.lark`` beside this file. Lark's exceptions stop at this boundary:
:func:`parse` raises only :class:`~netc.dsl.diagnostics.DiagnosticError`.

>>> mod = parse("def two = conv(8, 3) -> relu", "<doc>")
>>> type(mod.items[0]).__name__, mod.items[0].name
('Definition', 'two')
"""

from __future__ import annotations

import math
import re
import threading
from functools import lru_cache
from importlib import resources

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import (
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
)

from netc.dsl import ast
from netc.dsl.diagnostics import SOURCES, Diagnostic, DiagnosticError, Span
from netc.dsl.nesting import check_nesting

MAX_DIGITS = 100  # the longest integer literal (the elaborator refuses larger results, too)

# How terminals read in "expected ..." messages.
_TERMINAL_WORDS = {
    "NAME": "a name",
    "INT": "an integer",
    "FLOAT": "a number",
    "STRING": "a string",
    "SHAPE": "a shape such as 3x224x224",
    "ARROW": "'->'",
    "CMP_OP": "a comparison",
    "ADD_OP": "'+' or '-'",
    "MUL_OP": "'*', '/', '//' or '%'",
    "LPAR": "'('",
    "RPAR": "')'",
    "LSQB": "'['",
    "RSQB": "']'",
    "LBRACE": "'{'",
    "RBRACE": "'}'",
    "COMMA": "','",
    "EQUAL": "'='",
    "COLON": "':'",
    "SEMICOLON": "';'",
    "$END": "end of file",
}


def load_grammar(package: str, filename: str, **options) -> Lark:
    """A Lark LALR parser for a grammar file shipped in ``package``, with positions.

    ``cache=True`` keeps the built LALR tables in the temp folder: a CLI process skips ~0.1 s.
    Shared by the netc grammar and the Caffe prototxt grammar; ``options`` add to or replace
    these.
    """
    grammar = resources.files(package).joinpath(filename).read_text(encoding="utf-8")
    settings = dict(parser="lalr", propagate_positions=True, maybe_placeholders=False,
                    cache=True)
    settings.update(options)
    return Lark(grammar, **settings)


# Terminals named in the grammar (NAME, ARROW, ...) reach the AST methods; the anonymous ones
# ("(", ",", "def") only bound a node's span, as Lark's propagate_positions counts them.
_NAMED_TERMINAL = re.compile(r"^([A-Z][A-Z0-9_]*)(?:\.\d+)?\s*:", re.MULTILINE)


_NAMED: frozenset[str] = frozenset()  # filled on the first parse


def _named_terminals() -> frozenset[str]:
    global _NAMED
    text = resources.files(__package__).joinpath("netc.lark").read_text(encoding="utf-8")
    _NAMED = frozenset(_NAMED_TERMINAL.findall(text))
    return _NAMED


@lru_cache(maxsize=1)
def _lark() -> Lark:
    """The netc parser, building the AST as it reduces (no parse tree: the 21 model_specs
    parse in 0.08 s of CPU against 0.13 s when a tree was built and then transformed, a
    20,000-layer chain in 0.46 s against 0.79 s).

    ``keep_all_tokens`` hands every token to :func:`_with_span`, which computes each node's
    span as Lark's ``propagate_positions`` would and passes the method only the named ones.
    """
    return load_grammar(__package__, "netc.lark", start=["start", "expr"],
                        propagate_positions=False, keep_all_tokens=True,
                        transformer=_BUILDER)


class _Meta:
    """The position of one reduction, read by the AST methods as Lark's ``meta`` would be."""

    __slots__ = ("line", "column", "end_line", "end_column")

    def __init__(self, line, column, end_line, end_column):
        self.line, self.column, self.end_line, self.end_column = line, column, end_line, end_column


# Positions of the values built so far in this parse: id -> (value, meta). A value's position
# includes the punctuation around it (a group's brackets), as Lark's containers do.
_POSITIONS: dict[int, tuple] = {}
# One parse at a time: the builder's file and offsets belong to the parse in progress; label
# fragments parse inside it (re-entrant).
_LOCK = threading.RLock()


def _position(child):
    if type(child) is Token:
        return child
    entry = _POSITIONS.get(id(child))
    return entry[1] if entry is not None and entry[0] is child else None


def _with_span(f, _data, children, _meta):
    """Lark's visit wrapper for :class:`_ToAst`: the span from the first and last positioned
    child, tokens included; the method gets the meta and the children that are not
    punctuation."""
    first = last = None
    for child in children:
        first = _position(child)
        if first is not None:
            break
    for child in reversed(children):
        last = _position(child)
        if last is not None:
            break
    meta = _Meta(first.line, first.column, last.end_line, last.end_column) if first else None
    named = _NAMED or _named_terminals()
    kept = [c for c in children if type(c) is not Token or c.type in named]
    result = f(meta, *kept)
    if meta is not None:
        _POSITIONS[id(result)] = (result, meta)
    return result


@v_args(wrapper=_with_span)
class _ToAst(Transformer):
    """One method per grammar alias; each builds one frozen AST node with its span.

    Lark calls the methods as it reduces (the transformer is given to the parser), so no parse
    tree is built and a chain of 100,000 layers needs no recursion. Inside a label or an input
    shape, ``shift`` places an ``{expr}``'s spans where it is written.
    """

    def __init__(self):
        super().__init__()
        self.file = "<string>"
        self.shift: tuple[int, int] | None = None  # (line, column offset) inside a fragment

    def _s(self, meta) -> Span:
        if self.shift is not None:
            line, offset = self.shift
            return Span(self.file, line, meta.column + offset, line, meta.end_column + offset)
        return Span.of(self.file, meta)

    # items
    def start(self, meta, *items):
        return ast.Module(Span(self.file, 1, 1), tuple(items))

    def include(self, meta, path):
        return ast.Include(self._s(meta), path[1:-1])

    def definition(self, meta, name, *rest):
        params, body = (rest[0], rest[1]) if len(rest) == 2 else ((), rest[0])
        return ast.Definition(self._s(meta), str(name), params, body)

    def inline_definition(self, meta, name, *rest):
        d = self.definition(meta, name, *rest)
        return ast.Definition(d.span, d.name, d.params, d.body, inline=True)

    def net_alias(self, meta, name, target, *args):
        pos, kw = _split_args(args)
        return ast.NetAlias(self._s(meta), str(name), str(target), pos, kw)

    def net(self, meta, name, *rest):
        params = ()
        if rest and isinstance(rest[0], tuple):
            params, rest = rest[0], rest[1:]
        return ast.Net(self._s(meta), str(name), params, tuple(rest))

    def recipe(self, meta, name, *rest):
        params = ()
        if rest and isinstance(rest[0], tuple):
            params, rest = rest[0], rest[1:]
        return ast.Recipe(self._s(meta), str(name), params, tuple(rest))

    def constant(self, meta, name, value):
        return ast.LetStmt(self._s(meta), str(name), value)

    def function(self, meta, name, params, value):
        return ast.LetStmt(self._s(meta), str(name), value, params)

    def recipe_net(self, meta, spec):
        return ast.RecipeSetting(self._s(meta), "net", (spec,), ())

    def recipe_let(self, meta, name, value):
        return ast.RecipeLet(self._s(meta), str(name), value)

    def recipe_setting(self, meta, name, *args):
        pos, kw = _split_args(args)
        return ast.RecipeSetting(self._s(meta), str(name), pos, kw)

    def params(self, meta, *items):
        return tuple(p for p in items if p is not None)

    def param(self, meta, name, default=None):
        return ast.Param(self._s(meta), str(name), default)

    # statements
    def input_stmt(self, meta, name, shape, *options):
        dims, col = [], shape.column
        for part in _DIMS.findall(str(shape)):  # 3x{size}x{size}: {expr} parts are parsed
            if part.startswith("{"):
                dims.append(self._fragment(part[1:-1], shape.line, col + 1, "input shape"))
            elif len(part) > MAX_DIGITS:
                raise DiagnosticError(Diagnostic(Span.of(self.file, shape),
                                                 "an axis of this shape has too many digits"))
            else:
                dims.append(int(part))
            col += len(part) + 1
        return ast.InputStmt(self._s(meta), str(name), tuple(dims), tuple(options))

    def training_output_stmt(self, meta, name, value, *options):
        return ast.OutputStmt(self._s(meta), str(name), value, training=True,
                              options=tuple(options))

    def let_stmt(self, meta, name, value):
        return ast.LetStmt(self._s(meta), str(name), value)

    def share_stmt(self, meta, name, value):
        return ast.ShareStmt(self._s(meta), str(name), value)

    def bind_stmt(self, meta, name, value):
        return ast.BindStmt(self._s(meta), str(name), value)

    def output_stmt(self, meta, name, value=None):
        return ast.OutputStmt(self._s(meta), str(name), value)

    def with_stmt(self, meta, name, *args):
        pos, kw = _split_args(args)
        return ast.WithStmt(self._s(meta), str(name), pos, kw)

    def expr_stmt(self, meta, value):
        return ast.ExprStmt(self._s(meta), value)

    # expressions
    def if_expr(self, meta, cond, then, orelse):
        return ast.IfExpr(self._s(meta), cond, then, orelse)

    def seq(self, meta, first, _arrow, then):
        return ast.Seq(self._s(meta), first, then)

    def or_expr(self, meta, left, right):
        return ast.BinOp(self._s(meta), "or", left, right)

    def and_expr(self, meta, left, right):
        return ast.BinOp(self._s(meta), "and", left, right)

    def not_expr(self, meta, operand):
        return ast.UnaryOp(self._s(meta), "not", operand)

    def compare(self, meta, left, op, right):
        return ast.BinOp(self._s(meta), str(op), left, right)

    def binop(self, meta, left, op, right):
        return ast.BinOp(self._s(meta), str(op), left, right)

    def unary_op(self, meta, op, operand):
        return ast.UnaryOp(self._s(meta), str(op), operand)

    def call(self, meta, func, *args):
        pos, kw = _split_args(args)
        return ast.Call(self._s(meta), func, pos, kw)

    def join(self, meta, head, *branches):
        return ast.Join(self._s(meta), head, tuple(b for b in branches if b is not None))

    def repeat(self, meta, body, var, lo, hi):
        return ast.Repeat(self._s(meta), body, str(var), lo, hi)

    def repeat_list(self, meta, body, *rest):
        *names, items = rest
        return ast.RepeatList(self._s(meta), body, tuple(str(n) for n in names), items)

    def let_expr(self, meta, *rest):
        *bindings, body = rest
        return ast.Let(self._s(meta), tuple(bindings), body)

    def binding(self, meta, name, value):
        return ast.Kwarg(self._s(meta), str(name), value)

    def name(self, meta, tok):
        return ast.Name(self._s(meta), str(tok))

    def int_lit(self, meta, tok):
        if len(tok) > MAX_DIGITS:  # int() refuses past 4,300 digits; no size needs 100
            raise DiagnosticError(Diagnostic(
                self._s(meta), f"this integer has {len(tok):,} digits; netc takes up to "
                               f"{MAX_DIGITS}"))
        return ast.Num(self._s(meta), int(tok))

    def float_lit(self, meta, tok):
        value = float(tok) if len(tok) <= 400 else float("inf")
        if not math.isfinite(value):
            raise DiagnosticError(Diagnostic(self._s(meta), f"{_excerpt(str(tok))} is too large "
                                                            "to be a number"))
        return ast.Num(self._s(meta), value)

    def string_lit(self, meta, tok):
        return ast.Str(self._s(meta), str(tok)[1:-1])

    def list_lit(self, meta, *items):
        return ast.ListLit(self._s(meta), tuple(i for i in items if i is not None))

    def group(self, meta, inner):
        return inner

    def kwarg(self, meta, name, value):
        return ast.Kwarg(self._s(meta), str(name), value)

    # labels: literal text and {expr} parts must touch, as in conv{s}_{i}
    def labelled(self, meta, target, tok):
        return ast.Labelled(self._s(meta), target, self._label_parts(tok))

    def _label_parts(self, tok: Token) -> tuple:
        """Split ``conv{s}_{i}`` into "conv", <expr s>, "_", <expr i>, parsing each {expr}."""
        text, parts, pos = str(tok), [], 0
        for m in _INTERPOLATION.finditer(text):
            if m.start() > pos:
                parts.append(text[pos:m.start()])
            col = tok.column + m.start() + 1  # the expression starts after "{"
            parts.append(self._fragment(m.group(1), tok.line, col))
            pos = m.end()
        if pos < len(text):
            parts.append(text[pos:])
        return tuple(parts)

    def _fragment(self, text: str, line: int, col: int, where: str = "label"):
        """The expression of one ``{text}`` in ``where`` (a label, an input shape)."""
        span = Span(self.file, line, col, line, col + len(text))
        if not text.strip():
            article = "an" if where[0] in "aeiou" else "a"
            raise DiagnosticError(Diagnostic(span, f"empty {{}} in {article} {where}"))
        saved = self.shift
        self.shift = (line, col - 1)
        try:
            return _lark().parse(text, start="expr")
        except UnexpectedInput as err:
            c = col + max(getattr(err, "column", 1), 1) - 1
            raise DiagnosticError(Diagnostic(Span(self.file, line, c),
                                             f"cannot read {{{text}}} in this {where}")) from None
        finally:
            self.shift = saved


_INTERPOLATION = re.compile(r"\{([^{}\n]*)\}")
_DIMS = re.compile(r"\d+|\{[^{}\n]*\}")
_BUILDER = _ToAst()


def _excerpt(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."


def _split_args(args) -> tuple[tuple, tuple]:
    args = [a for a in args if a is not None]
    pos = tuple(a for a in args if not isinstance(a, ast.Kwarg))
    kw = tuple(a for a in args if isinstance(a, ast.Kwarg))
    return pos, kw


def _describe_expected(expected: set[str]) -> str:
    # Closing brackets first: at the end of a file they are what is usually missing.
    closers = [_TERMINAL_WORDS[t] for t in ("RBRACE", "RPAR", "RSQB") if t in expected]
    words = closers + sorted({_TERMINAL_WORDS.get(t, f"'{t.lower()}'") for t in expected
                              if t and t not in ("RBRACE", "RPAR", "RSQB")})
    if len(words) > 8:
        words = words[:8] + ["..."]
    return ", ".join(words)


_SHARE_BEFORE = re.compile(r"(?<![\w.])share[ \t]+\Z")  # `share` just before the token


def _syntax_diagnostic(err: UnexpectedInput, text: str, file: str) -> Diagnostic:
    lines = text.splitlines() or [""]
    if isinstance(err, UnexpectedEOF) or getattr(err, "line", -1) in (-1, None):
        # Lark reports end of input at line -1: point just past the last character.
        last = len(lines)
        span = Span(file, last, len(lines[-1]) + 1)
        expected = getattr(err, "expected", None) or []
        expected_text = _describe_expected(set(expected))
        return Diagnostic(span, f"unexpected end of file; expected {expected_text}")
    span = Span(file, err.line, err.column)
    if isinstance(err, UnexpectedCharacters):
        ch = text[err.pos_in_stream] if err.pos_in_stream < len(text) else "?"
        return Diagnostic(span, f"unexpected character {ch!r}")
    assert isinstance(err, UnexpectedToken)
    tok = err.token
    if tok.type == "$END":
        return Diagnostic(
            Span(file, len(lines), len(lines[-1]) + 1),
            f"unexpected end of file; expected {_describe_expected(err.expected)}",
        )
    span = Span.of(file, tok)
    hint = ""
    if str(tok) == "share" or (tok.type == "NAME"
                               and _SHARE_BEFORE.search(text, 0, tok.start_pos or 0)):
        # `def f = share t = ...` or a file-level share: share binds layers in a net only
        # (in a net, `share = relu` lacks its name: the expected words say so)
        hint = " (share NAME = block is a statement of a net, on a line of its own)"
    elif tok.type == "NAME" and "ARROW" in err.expected:
        hint = " (missing '->' between layers?)"
    return Diagnostic(
        span,
        f"unexpected {_excerpt(str(tok))!r}; expected {_describe_expected(err.expected)}{hint}",
    )


def parse(text: str, file: str = "<string>") -> ast.Module:
    """Parse one file's text. Raises :class:`DiagnosticError` on any syntax error.

    Line ends are normalised first (CR-only and CRLF files are located like LF files), and an
    expression nested deeper than :data:`netc.dsl.nesting.MAX_NESTING` is refused at its place, so
    nothing later depends on Python's recursion limit.
    """
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    SOURCES.texts[file] = text
    nul = text.find("\x00")
    if nul >= 0:
        line = text.count("\n", 0, nul) + 1
        col = nul - (text.rfind("\n", 0, nul) + 1) + 1
        raise DiagnosticError(Diagnostic(Span(file, line, col),
                                         "this is not a text file (NUL byte)"))
    with _LOCK:
        _BUILDER.file, _BUILDER.shift = file, None
        try:
            module = _lark().parse(text, start="start")
        except UnexpectedInput as err:
            raise DiagnosticError(_syntax_diagnostic(err, text, file)) from None
        finally:
            _POSITIONS.clear()
    check_nesting(module)
    return module


# Where a top-level item may begin: one of its keywords at the start of a line.
_ITEM_START = re.compile(r"^(?:include|def|inline|net|recipe|let)\b", re.MULTILINE)
_ITEMS: dict[tuple[str, int, str], tuple] = {}  # (file, first line, chunk) -> its items
MAX_CACHED_CHUNKS = 4096


def parse_incremental(text: str, file: str = "<string>") -> ast.Module:
    """:func:`parse`, reusing the items of the chunks of ``text`` parsed before (an editor's
    file after a one-character edit: only the edited item's chunk is parsed again).

    The text is cut before each line that starts with an item's keyword, and each chunk is
    parsed at its own lines. Where any chunk does not parse (a cut inside an item, or a
    mistake), the whole text is parsed as :func:`parse` does, so the result and every message
    are :func:`parse`'s.
    """
    starts = [m.start() for m in _ITEM_START.finditer(text)]
    if "\r" in text or len(starts) < 2:
        return parse(text, file)
    bounds = ([0] if starts[0] else []) + starts + [len(text)]
    items: list = []
    line = 1
    try:
        for lo, hi in zip(bounds, bounds[1:]):
            chunk = text[lo:hi]
            key = (file, line, chunk)
            if key not in _ITEMS:
                if len(_ITEMS) >= MAX_CACHED_CHUNKS:
                    _ITEMS.clear()
                _ITEMS[key] = parse("\n" * (line - 1) + chunk, file).items
            items.extend(_ITEMS[key])
            line += chunk.count("\n")
    except DiagnosticError:
        return parse(text, file)
    SOURCES.texts[file] = text  # diagnostics quote the whole text, not the last chunk
    return ast.Module(Span(file, 1, 1), tuple(items))
