"""Protocol buffer text format (Caffe's ``.prototxt``) parsed into a generic message tree.

The grammar is ``prototxt.lark`` beside this file. The tree knows nothing about Caffe: a
:class:`Message` is an ordered list of :class:`Field` s, each a name with a :class:`Scalar` or a
nested message, all with source spans so that the layer reader can point at any field. Lark's
exceptions stop here: :func:`parse_prototxt` raises only
:class:`~netc.dsl.diagnostics.DiagnosticError`.

>>> msg = parse_prototxt('layer { name: "c1" convolution_param { kernel_size: 3 } }', "<doc>")
>>> layer = msg.one("layer").value
>>> param = layer.one("convolution_param").value
>>> layer.one("name").value.value, param.one("kernel_size").value.value
('c1', 3)
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from functools import lru_cache

from lark import Lark, Token, v_args
from lark.exceptions import (
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
    VisitError,
)
from lark.visitors import Transformer_NonRecursive

from netc.dsl.diagnostics import Diagnostic, DiagnosticError, Span
from netc.dsl.parser import load_grammar


@dataclass(frozen=True, slots=True)
class Scalar:
    """A field's value: ``kind`` is ``string``, ``number`` or ``identifier`` (enums, booleans)."""

    kind: str
    value: str | int | float
    span: Span


@dataclass(frozen=True, slots=True)
class Field:
    """``name: value`` or ``name { ... }``; ``span`` covers the name."""

    name: str
    value: Scalar | Message
    span: Span


@dataclass(frozen=True, slots=True)
class Message:
    """An ordered list of fields; a repeated field appears once per value, in file order."""

    fields: tuple[Field, ...]
    span: Span

    def all(self, name: str) -> list[Field]:
        """Every field called ``name`` (a repeated field), in order."""
        return [f for f in self.fields if f.name == name]

    def one(self, name: str) -> Field | None:
        """The field called ``name``, or None; a second one is a located error."""
        found = self.all(name)
        if len(found) > 1:
            raise DiagnosticError(Diagnostic(found[1].span, f"{name!r} is given twice "
                                             f"(first at line {found[0].span.line})"))
        return found[0] if found else None


# How terminals read in "expected ..." messages.
_TERMINAL_WORDS = {
    "NAME": "a field name",
    "NUMBER": "a number",
    "STRING": "a string",
    "LBRACE": "'{'",
    "RBRACE": "'}'",
    "LANGLE": "'<'",
    "RANGLE": "'>'",
    "COLON": "':'",
    "LSQB": "'['",
    "RSQB": "']'",
    "_SEP": "',' or ';'",
    "$END": "end of file",
}


@lru_cache(maxsize=1)
def _lark() -> Lark:
    # A basic lexer, so that lex() can find an unclosed brace after a parse error.
    return load_grammar(__package__, "prototxt.lark", lexer="basic")


@v_args(inline=True, meta=True)
class _ToTree(Transformer_NonRecursive):
    """One method per grammar alias; each builds a frozen node with its span. Non-recursive:
    messages nested 10,000 deep must not reach Python's recursion limit."""

    def __init__(self, file: str):
        super().__init__()
        self.file = file

    def start(self, meta, *fields):
        return Message(_flat(fields), Span(self.file, 1, 1))

    def scalar_field(self, meta, name, value):
        return Field(str(name), value, Span.of(self.file, name))

    def list_field(self, meta, name, *values):
        return [Field(str(name), v, v.span) for v in values]

    def message_field(self, meta, name, open_, *rest):
        fields, close = rest[:-1], rest[-1]
        span = Span(self.file, open_.line, open_.column, close.end_line, close.end_column)
        return Field(str(name), Message(_flat(fields), span), Span.of(self.file, name))

    def string(self, meta, *parts):
        span = Span(self.file, meta.line, meta.column, meta.end_line, meta.end_column)
        try:
            text = "".join(codecs.decode(p[1:-1], "unicode_escape") for p in parts)
        except UnicodeDecodeError:
            raise DiagnosticError(Diagnostic(span, "bad escape sequence in this string")) \
                from None
        return Scalar("string", text, span)

    def number(self, meta, tok):
        text = tok.rstrip("fF") if not tok.lower().endswith(("inf", "nan")) else tok
        if len(text) > 400:  # int() refuses 4,300 digits; no Caffe field holds such a number
            raise DiagnosticError(Diagnostic(Span.of(self.file, tok),
                                             f"a number of {len(text):,} characters"))
        try:
            value: int | float = int(text)
        except ValueError:
            value = float(text)
        return Scalar("number", value, Span.of(self.file, tok))

    def identifier(self, meta, tok):
        return Scalar("identifier", str(tok), Span.of(self.file, tok))


def _flat(items) -> tuple[Field, ...]:
    out: list[Field] = []
    for item in items:
        out.extend(item if isinstance(item, list) else [item])
    return tuple(out)


def parse_prototxt(text: str, file: str) -> Message:
    """Parse protobuf text into a :class:`Message`; syntax errors become located diagnostics."""
    try:
        tree = _lark().parse(text)
    except UnexpectedInput as err:
        raise DiagnosticError(_syntax_error(err, text, file)) from None
    try:
        return _ToTree(file).transform(tree)
    except VisitError as err:  # a callback's DiagnosticError, wrapped by lark
        raise err.orig_exc from None


def _syntax_error(err: UnexpectedInput, text: str, file: str) -> Diagnostic:
    if isinstance(err, UnexpectedCharacters):
        ch = text[err.pos_in_stream] if err.pos_in_stream < len(text) else "?"
        return Diagnostic(Span(file, err.line, err.column, err.line, err.column + 1),
                          f"unexpected character {ch!r}")
    at_end = isinstance(err, UnexpectedEOF) or (
        isinstance(err, UnexpectedToken) and err.token.type == "$END")
    if at_end:
        opener = _unclosed_brace(text, file)
        if opener is not None:
            return opener
        lines = text.splitlines() or [""]
        return Diagnostic(Span(file, len(lines), max(1, len(lines[-1]))),
                          "unexpected end of file")
    assert isinstance(err, UnexpectedToken)
    tok = err.token
    span = Span.of(file, tok)
    if tok.type in ("RBRACE", "RANGLE"):
        return Diagnostic(span, f"unmatched {str(tok)!r}: no message is open here")
    expected = sorted({_TERMINAL_WORDS.get(t, t) for t in err.expected})
    return Diagnostic(span, f"unexpected {str(tok)!r}; expected {' or '.join(expected)}")


def _unclosed_brace(text: str, file: str) -> Diagnostic | None:
    """The innermost ``{`` still open at the end of the file, if the tokens get that far."""
    stack: list[Token] = []
    try:
        for tok in _lark().lex(text):
            if tok.type in ("LBRACE", "LANGLE"):
                stack.append(tok)
            elif tok.type in ("RBRACE", "RANGLE") and stack:
                stack.pop()
    except UnexpectedInput:
        return None
    if not stack:
        return None
    tok = stack[-1]
    close = "}" if tok.type == "LBRACE" else ">"
    return Diagnostic(Span.of(file, tok), f"this {str(tok)!r} is never closed: "
                                            f"the file ends before its {close!r}")
