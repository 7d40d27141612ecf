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
from functools import lru_cache
from importlib import resources

from lark import Lark, Token, v_args
from lark.exceptions import (
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
    VisitError,
)
from lark.visitors import Transformer_NonRecursive

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
    Shared by the netc grammar and the Caffe prototxt grammar.
    """
    grammar = resources.files(package).joinpath(filename).read_text(encoding="utf-8")
    return Lark(grammar, parser="lalr", propagate_positions=True, maybe_placeholders=False,
                cache=True, **options)


@lru_cache(maxsize=1)
def _lark() -> Lark:
    return load_grammar(__package__, "netc.lark", start=["start", "expr"])


@v_args(inline=True, meta=True)
class _ToAst(Transformer_NonRecursive):
    """One method per grammar alias; each builds one frozen AST node with its span.

    Non-recursive: a generated chain of 100,000 layers is a parse tree 100,000 deep, and Lark's
    recursive Transformer would stop at Python's recursion limit.
    """

    def __init__(self, file: str):
        super().__init__()
        self.file = file

    def _s(self, meta) -> Span:
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
        try:
            tree = _lark().parse(text, start="expr")
        except UnexpectedInput as err:
            c = col + max(getattr(err, "column", 1), 1) - 1
            raise DiagnosticError(Diagnostic(Span(self.file, line, c),
                                             f"cannot read {{{text}}} in this {where}")) from None
        return _Shifted(self.file, line, col - 1).transform(tree)


_INTERPOLATION = re.compile(r"\{([^{}\n]*)\}")
_DIMS = re.compile(r"\d+|\{[^{}\n]*\}")


class _Shifted(_ToAst):
    """Builds AST for an expression inside a label, with spans placed where it is written."""

    def __init__(self, file: str, line: int, col_offset: int):
        super().__init__(file)
        self.line, self.col_offset = line, col_offset

    def _s(self, meta) -> Span:
        return Span(self.file, self.line, meta.column + self.col_offset, self.line,
                    meta.end_column + self.col_offset)


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
    if tok.type == "NAME" and "ARROW" in err.expected:
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
    try:
        tree = _lark().parse(text, start="start")
    except UnexpectedInput as err:
        raise DiagnosticError(_syntax_diagnostic(err, text, file)) from None
    try:
        module = _ToAst(file).transform(tree)
    except VisitError as err:
        if isinstance(err.orig_exc, DiagnosticError):
            raise err.orig_exc from None
        raise
    check_nesting(module)
    return module
