"""``netc fmt``: one canonical layout for specs and recipes, changing only whitespace.

The rules, gofmt's way: the writer's line breaks stay (runs of blank lines become one), and
everything else is computed.

- Spacing: one space around binary operators, ``->``, ``=`` of definitions and bindings and
  after commas; none inside brackets, before ``(`` of a call or ``[`` of a join, around a
  keyword argument's ``=``, after a unary minus, around ``..``. Two spaces before a trailing
  comment.
- Indentation: items at column 0, statements at two spaces per open ``{``. A line that goes on
  a statement is indented two more (four if it starts with ``for`` or ``as``, which go on the
  element before them). Inside brackets, a ``let``'s bindings and an ``else`` branch, a line
  lines up with the first element, or sits two past the opening line when the bracket ends
  its line, and two further where it goes on an element rather than starting one; a closing
  bracket that starts a line sits where its opening line does. A comment line is indented as
  the code after it would be.
- A line longer than :data:`WIDTH` breaks before ``->``, at the outermost level first.
- Tables line up: a list of equal-length flat lists over several lines gets columns (numbers
  right-aligned, words left-aligned), as do three or more one-line calls of one name on
  consecutive lines after the same words (GoogLeNet's Table 1), and consecutive one-line
  ``net a = b(...)`` aliases align their ``=``. A table that would pass WIDTH stays as it is.

Meaning is kept by construction and checked: the formatted text is lexed again and must give
the same tokens and comments, or nothing is written.

>>> print(format_text("def  f(x=1)=conv( x,3 )->relu # why\\n"), end="")
def f(x=1) = conv(x, 3) -> relu  # why
"""

from __future__ import annotations

from dataclasses import dataclass

from lark import Token

from netc.dsl.diagnostics import Diagnostic, DiagnosticError, Span
from netc.dsl.layout_scan import CLOSERS, NUMBERS, OPENERS, scan, token_types
from netc.dsl.parser import parse

WIDTH = 100
INDENT = 2

_NO_SPACE_BEFORE = frozenset({"COMMA", "SEMICOLON", "RPAR", "RSQB", "COLON"})
_OPERANDS = frozenset({"NAME", "RPAR", "RSQB"})  # what a call's ( or a join's [ follows
_RANGE = ".."
_POSTFIX = frozenset({"FOR", "AS"})


def format_text(text: str, file: str = "<string>") -> str:
    """``text`` in the canonical layout. Text that ``netc check`` would refuse to parse raises
    the same located DiagnosticError; the result always has the same tokens and comments."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    parse(text, file)  # the parser's own diagnostics: syntax, NUL bytes, labels, nesting
    found = scan(text)
    lines = _source_lines(text, found)
    writer = _Writer(found.tokens, found)
    out = writer.write(lines)
    # A table whose columns would push a line past WIDTH is left unaligned (the writer's line
    # breaks are kept, so padding could not be wrapped away).
    wide = [t for t in found.tables if any(i in writer.too_long for row in t for i in row[0])]
    if wide:
        found.tables = [t for t in found.tables if t not in wide]
        out = _Writer(found.tokens, found).write(lines)
    if out == text:
        return out  # already formatted: nothing to check
    kept = ([(t.type, str(t)) for t in found.tokens], [str(c).rstrip() for c in found.comments])
    if token_types(out) != kept:
        raise DiagnosticError(Diagnostic(Span(file, 1, 1), "netc fmt would change this file's "
                                         "tokens (a bug in netc fmt); the file is left as it is"))
    return out


@dataclass
class _Line:
    """One line of the source: its tokens (indexes), its comment, a blank line before it."""

    tokens: list[int]
    comment: str | None
    blank_before: bool


def _source_lines(text: str, found) -> list[_Line]:
    by_line: dict[int, _Line] = {}
    for i, tok in enumerate(found.tokens):
        by_line.setdefault(tok.line, _Line([], None, False)).tokens.append(i)
    for com in found.comments:
        by_line.setdefault(com.line, _Line([], None, False)).comment = str(com).rstrip()
    lines, previous = [], None
    for number in sorted(by_line):
        line = by_line[number]
        line.blank_before = previous is not None and number > previous + 1
        lines.append(line)
        previous = number
    return lines


@dataclass
class _Frame:
    """An open bracket or ``let``: where its elements line up and whether one just began."""

    line_indent: int
    column: int | None = None  # the column of its first element, when on the opening line
    element_start: bool = True
    ends_after: int | None = None  # an `else` branch ends after its last token


class _Writer:
    """Emits lines one at a time, keeping the state that indentation reads."""

    def __init__(self, tokens: list[Token], found):
        self.tok, self.found = tokens, found
        self.braces = 0
        self.frames: list[_Frame] = []
        self.out: list[str] = []
        self.too_long: set[int] = set()  # tokens on lines wider than WIDTH
        self.pad = _padding(tokens, found, self._cell_width)

    def write(self, lines: list[_Line]) -> str:
        """The formatted text of ``lines``."""
        pending: list[tuple[bool, str]] = []  # comment-only lines, indented by what follows
        for line in lines:
            if not line.tokens:
                pending.append((line.blank_before, line.comment))
                continue
            self._flush_comments(pending, self._comment_indent(line.tokens[0]))
            if line.blank_before and self.out:
                self.out.append("")
            self._emit(line.tokens, line.comment)
        self._flush_comments(pending, INDENT * self.braces)
        return "".join(s + "\n" for s in self.out)

    def _flush_comments(self, pending, indent: int) -> None:
        for blank, comment in pending:
            if blank and self.out:
                self.out.append("")
            self.out.append(" " * indent + comment)
        pending.clear()

    # ---- indentation ------------------------------------------------------------------------
    def _indent(self, i: int) -> int:
        """The indent of a line that starts with token ``i``."""
        kind = self.tok[i].type
        if kind == "RBRACE":
            return INDENT * max(self.braces - 1, 0)
        if i in self.found.statement_starts:
            return INDENT * self.braces
        if not self.frames:  # `for` and `as` go on the element before them
            return INDENT * self.braces + INDENT * (2 if kind in _POSTFIX else 1)
        frame = self.frames[-1]
        if kind in CLOSERS or i in self.found.let_closes:
            return frame.line_indent
        base = frame.column if frame.column is not None else frame.line_indent + INDENT
        return base + (0 if frame.element_start else INDENT)

    def _comment_indent(self, i: int) -> int:
        """A comment line's indent: that of a statement or element written where it stands."""
        kind = self.tok[i].type
        if kind == "RBRACE" or i in self.found.statement_starts:
            return INDENT * self.braces
        if (kind in CLOSERS or i in self.found.let_closes) and self.frames:
            frame = self.frames[-1]
            return frame.column if frame.column is not None else frame.line_indent + INDENT
        return self._indent(i)

    # ---- one source line, broken where it is too long ---------------------------------------
    def _emit(self, tokens: list[int], comment: str | None) -> None:
        start = 0  # tokens[start:] are still to write; slicing each time would be quadratic
        while True:
            indent = self._indent(tokens[start])
            pieces = self._render(tokens, start, indent)
            cut = _break_point(tokens, start, pieces, self.tok) if _width(pieces) > WIDTH \
                else None
            if cut is None:
                self._commit(tokens[start:], pieces, indent, comment)
                return
            self._commit(tokens[start:start + cut], pieces[:cut], indent, None)
            start += cut

    def _render(self, tokens: list[int], start: int, indent: int) -> list[tuple[int, str]]:
        """(column, text) of each token of ``tokens[start:]`` on a line that starts at
        ``indent``; past WIDTH it stops after the first ``->`` (the line breaks before then)."""
        pieces, col = [], indent
        for n in range(start, len(tokens)):
            i = tokens[n]
            if n > start:
                col += self._space(tokens[n - 1], i) + self.pad.get(i, 0)
                if col > WIDTH and self.tok[i].type == "ARROW":
                    pieces.append((col, str(self.tok[i])))
                    return pieces
            pieces.append((col, str(self.tok[i])))
            col += len(self.tok[i])
        return pieces

    def _space(self, a: int, b: int) -> int:
        ta, tb, found = self.tok[a], self.tok[b], self.found
        if tb.type in _NO_SPACE_BEFORE or ta.type in OPENERS:
            return 0
        if a in found.tight_equals or b in found.tight_equals or a in found.unary:
            return 0
        if str(ta) == _RANGE or str(tb) == _RANGE:
            return 0
        if tb.type in OPENERS and ta.type in _OPERANDS:
            return 0
        return 1

    def _cell_width(self, cell: list[int]) -> int:
        return sum(len(self.tok[i]) for i in cell) + sum(
            self._space(a, b) for a, b in zip(cell, cell[1:]))

    def _commit(self, tokens, pieces, indent: int, comment: str | None) -> None:
        """Write one line and update the brackets, braces and elements it opens and closes."""
        text = "".join(" " * (col - (pieces[n - 1][0] + len(pieces[n - 1][1]) if n else 0))
                       + s for n, (col, s) in enumerate(pieces))
        if len(text) > WIDTH:
            self.too_long.update(tokens)
        if comment:
            text += "  " + comment
        self.out.append(text)
        opened_here: _Frame | None = None
        for i, (col, _) in zip(tokens, pieces):
            kind = self.tok[i].type
            if opened_here is not None and opened_here.column is None:
                opened_here.column = col
            if self.frames:
                self.frames[-1].element_start = kind == "COMMA"
            if kind in OPENERS or i in self.found.let_opens or i in self.found.else_ends:
                opened_here = _Frame(indent, ends_after=self.found.else_ends.get(i))
                self.frames.append(opened_here)
            elif (kind in CLOSERS or i in self.found.let_closes) and self.frames:
                self.frames.pop()
                opened_here = None
            elif kind == "LBRACE":
                self.braces += 1
            elif kind == "RBRACE":
                self.braces = max(self.braces - 1, 0)
            while self.frames and self.frames[-1].ends_after == i:
                self.frames.pop()
                opened_here = None


def _width(pieces) -> int:
    col, text = pieces[-1]
    return col + len(text)


def _break_point(tokens: list[int], start: int, pieces, tok) -> int | None:
    """Where to break a too-long line: before the last ``->`` that fits, at the outermost
    bracket level among those that fit; before the first ``->`` if none fits; None if the line
    has no ``->`` after its first token."""
    depth, fitting, first = 0, [], None
    for n, (i, _) in enumerate(zip(tokens[start:start + len(pieces)], pieces)):
        kind = tok[i].type
        if kind == "ARROW" and n:
            first = n if first is None else first
            if pieces[n - 1][0] + len(pieces[n - 1][1]) <= WIDTH:
                fitting.append((depth, n))
        depth += kind in OPENERS
        depth -= kind in CLOSERS
    if not fitting:
        return first
    outermost = min(d for d, _ in fitting)
    return max(n for d, n in fitting if d == outermost)


def _padding(tokens: list[Token], found, width) -> dict[int, int]:
    """Extra spaces before tokens: table columns and aligned ``=`` of net aliases."""
    pad: dict[int, int] = {}
    for table in found.tables:
        _align_table(table, tokens, pad, width)
    run: list[int] = []
    for line in sorted(found.aliases):
        if run and line != run[-1] + 1:
            _align_aliases(run, found.aliases, tokens, pad)
            run = []
        run.append(line)
    _align_aliases(run, found.aliases, tokens, pad)
    return pad


def _align_aliases(run: list[int], aliases: dict[int, int], tokens, pad) -> None:
    if len(run) < 2:
        return
    names = {line: len(tokens[aliases[line] - 1]) for line in run}
    widest = max(names.values())
    for line in run:
        pad[aliases[line]] = widest - names[line]


def _align_table(table, tokens, pad, width) -> None:
    """Columns of equal width: numbers padded on the left, words on the right (as spaces
    before the next cell, or before the next row when a word ends its row)."""
    widths = [max(width(row[c]) for row in table) for c in range(len(table[0]))]
    numeric = [all(_is_number(row[c], tokens) for row in table) for c in range(len(widths))]
    for r, row in enumerate(table):
        for c, cell in enumerate(row):
            short = widths[c] - width(cell)
            if numeric[c]:
                pad[cell[0]] = pad.get(cell[0], 0) + short
            elif c + 1 < len(row):
                pad[row[c + 1][0]] = pad.get(row[c + 1][0], 0) + short
            elif r + 1 < len(table) and tokens[table[r + 1][0][0] - 1].type == "LSQB":
                nxt = table[r + 1][0][0] - 1  # the next row's "[" (rows of calls end lines)
                pad[nxt] = pad.get(nxt, 0) + short


def _is_number(cell: list[int], tokens) -> bool:
    return tokens[cell[-1]].type in NUMBERS and all(
        tokens[i].type == "ADD_OP" for i in cell[:-1])
