"""What ``netc fmt`` needs to know about a spec's text: its tokens, comments and roles.

The formatter (:mod:`netc.dsl.format`) only changes the whitespace between tokens, so it needs
the exact token stream the parser sees. Lark's contextual lexer decides a token's type by the
parser's state (``conv1`` after ``as`` is a LABEL, ``{ ... }`` is a net body or a label part), so
the text is lexed by parsing it with the project's own grammar: ``keep_all_tokens`` keeps every
punctuation token in the tree, and a lexer callback collects the comments the grammar ignores.
The tree then says what each token is for (a keyword argument's ``=`` or a binding's, a unary
or a binary minus, the ``let`` and ``in`` of a let-expression), where each statement starts, and
which lists are tables. The tree is walked with an explicit stack: a 100,000-layer chain is a
tree 100,000 deep.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import lru_cache

from lark import Token, Tree
from netc.dsl.parser import load_grammar

# Tree nodes whose first token starts an item or a statement (a line break before it ends
# the previous one; the formatter indents it at the level of its braces).
STATEMENTS = frozenset({
    "include", "definition", "inline_definition", "net", "net_alias", "recipe", "constant",
    "function", "input_stmt", "bind_stmt", "output_stmt", "training_output_stmt", "let_stmt",
    "share_stmt", "with_stmt", "expr_stmt", "recipe_net", "recipe_let", "recipe_setting",
})

OPENERS = frozenset({"LPAR", "LSQB"})
CLOSERS = frozenset({"RPAR", "RSQB"})
NUMBERS = frozenset({"INT", "FLOAT"})


@dataclass
class Scan:
    """A spec's tokens in order and what the tree says about them (keys are token indexes)."""

    tokens: list[Token]
    comments: list[Token]
    statement_starts: set[int] = field(default_factory=set)
    tight_equals: set[int] = field(default_factory=set)  # f(k=v), def f(x=1): no spaces
    unary: set[int] = field(default_factory=set)  # -1, rows[-1]
    let_opens: set[int] = field(default_factory=set)  # the `let` of `let a = 1 in ...`
    let_closes: set[int] = field(default_factory=set)  # and its `in`
    else_ends: dict[int, int] = field(default_factory=dict)  # `else` -> its branch's last token
    # table -> row -> cell -> token indexes; a list of lists, or calls on consecutive lines
    tables: list[list[list[list[int]]]] = field(default_factory=list)
    calls: list[tuple[int, int, list[list[int]]]] = field(default_factory=list)  # line, name
    aliases: dict[int, int] = field(default_factory=dict)  # one-line `net a = b(..)`: line -> =


class _Comments:
    """Collects the COMMENT tokens the grammar ignores; one parse at a time (a lock)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.found: list[Token] = []

    def __call__(self, token: Token) -> Token:
        self.found.append(token)
        return token


_COMMENTS = _Comments()


@lru_cache(maxsize=1)
def _lark():
    return load_grammar("netc.dsl", "netc.lark", start="start", keep_all_tokens=True,
                        lexer_callbacks={"COMMENT": _COMMENTS})


def lex(text: str) -> tuple[Tree, list[Token]]:
    """The parse tree of ``text`` with every token kept, and its comments in order.

    Raises Lark's ``UnexpectedInput`` on a syntax error: call :func:`netc.dsl.parser.parse`
    first for the located diagnostic.
    """
    parser = _lark()
    with _COMMENTS.lock:
        _COMMENTS.found = []
        try:
            tree = parser.parse(text)
        finally:
            comments, _COMMENTS.found = _COMMENTS.found, []
    return tree, comments


def token_types(text: str) -> tuple[list[tuple[str, str]], list[str]]:
    """``text``'s tokens as (type, text) pairs and its comments' text: what formatting keeps."""
    tree, comments = lex(text)
    return [(t.type, str(t)) for t in _tokens_of(tree)], [str(c).rstrip() for c in comments]


def _tokens_of(tree: Tree) -> list[Token]:
    out, stack = [], [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, Token):
            out.append(node)
        else:
            stack.extend(reversed(node.children))
    return out


def scan(text: str) -> Scan:
    """Lex and parse ``text`` (line ends already LF) and mark each token's role."""
    tree, comments = lex(text)
    result = Scan([], comments)
    index: dict[int, int] = {}  # id(token) -> position in result.tokens
    stack: list[Tree | Token] = [tree]
    later: list[Tree] = []  # nodes to mark once every token has its index
    while stack:
        node = stack.pop()
        if isinstance(node, Token):
            index[id(node)] = len(result.tokens)
            result.tokens.append(node)
            continue
        if node.data in STATEMENTS or node.data in _MARKED:
            later.append(node)
        stack.extend(reversed(node.children))
    for node in later:
        _mark(node, index, result)
    result.tables.extend(_call_tables(result.calls, result.tokens))
    return result


_MARKED = frozenset({"kwarg", "param", "unary_op", "let_expr", "list_lit", "call", "if_expr"})


def _first_token(node: Tree | Token) -> Token:
    while not isinstance(node, Token):
        node = node.children[0]
    return node


def _last_token(node: Tree | Token) -> Token:
    while not isinstance(node, Token):
        node = node.children[-1]
    return node


def _mark(node: Tree, index: dict[int, int], result: Scan) -> None:
    kind = node.data
    if kind in STATEMENTS:
        result.statement_starts.add(index[id(_first_token(node))])
        if kind == "net_alias" and node.meta.line == node.meta.end_line:
            equal = next(c for c in node.children if isinstance(c, Token) and c.type == "EQUAL")
            result.aliases[node.meta.line] = index[id(equal)]
    elif kind in ("kwarg", "param"):
        for child in node.children:
            if isinstance(child, Token) and child.type == "EQUAL":
                result.tight_equals.add(index[id(child)])
    elif kind == "unary_op":
        result.unary.add(index[id(node.children[0])])
    elif kind == "let_expr":
        for child in node.children:
            if isinstance(child, Token) and child.type in ("LET", "IN"):
                (result.let_opens if child.type == "LET" else result.let_closes).add(
                    index[id(child)])
    elif kind == "if_expr":
        else_token = next(c for c in node.children if isinstance(c, Token) and c.type == "ELSE")
        result.else_ends[index[id(else_token)]] = index[id(_last_token(node))]
    elif kind == "list_lit":
        table = _table(node, index)
        if table:
            result.tables.append(table)
    elif kind == "call" and node.meta.line == node.meta.end_line:
        func = node.children[0]
        cells = _cells(node.children[1:], index)  # from "(" to ")"
        if isinstance(func, Tree) and func.data == "name" and cells and len(cells) > 1:
            name = func.children[0]
            result.calls.append((node.meta.line, index[id(name)], cells))


def _table(node: Tree, index: dict[int, int]) -> list | None:
    """Rows of cells (token indexes) if ``node`` is a list of two or more flat lists of the same
    length written over several lines; None otherwise."""
    if node.meta.line == node.meta.end_line:
        return None
    rows = [c for c in node.children if isinstance(c, Tree)]
    if len(rows) < 2 or any(r.data != "list_lit" for r in rows):
        return None
    table = []
    for row in rows:
        cells = _cells(row.children, index)
        if not cells or (table and len(cells) != len(table[0])):
            return None
        table.append(cells)
    return table


def _cells(bracketed: list, index: dict[int, int]) -> list[list[int]] | None:
    """The comma-separated cells (token indexes) between the first and last of ``bracketed``
    (an opening and a closing bracket), or None if a cell has brackets of its own."""
    cells: list[list[int]] = [[]]
    for child in bracketed[1:-1]:
        for tok in _tokens_of(child) if isinstance(child, Tree) else [child]:
            if tok.type in OPENERS or tok.type in CLOSERS:
                return None
            if tok.type == "COMMA":
                cells.append([])
            else:
                cells[-1].append(index[id(tok)])
    if not cells[-1]:
        cells.pop()  # a trailing comma
    return cells if cells and all(cells) else None


def _call_tables(calls: list[tuple[int, int, list[list[int]]]], tokens: list[Token]) -> list:
    """Three or more calls of one name with as many arguments, one a line on consecutive lines
    after the same words (``-> inception( 64,  96, 128, ...)`` down a chain): a table. A line
    with two candidates has none."""
    lines: dict[int, list] = {}
    for line, name, cells in calls:
        lines.setdefault(line, []).append((name, len(cells), cells))
    for line, found in lines.items():  # one prefix a line: a line of 3,000 calls stays linear
        if len(found) == 1:
            name, count, cells = found[0]
            found[0] = (_line_prefix(tokens, name), count, cells)
    tables, run, key = [], [], None
    for line in sorted(lines):
        only = lines[line][0] if len(lines[line]) == 1 else None
        this = only[:2] if only else None
        if run and (this != key or line != run[-1][0] + 1):
            tables.append([cells for _, cells in run])
            run = []
        key = this
        if only:
            run.append((line, only[2]))
    tables.append([cells for _, cells in run])
    return [t for t in tables if len(t) > 2]


def _line_prefix(tokens: list[Token], i: int) -> tuple[str, ...]:
    """The text of the tokens before ``tokens[i]`` on its line, and its own."""
    start = i
    while start and tokens[start - 1].line == tokens[i].line:
        start -= 1
    return tuple(str(t) for t in tokens[start:i + 1])


__all__ = ["Scan", "lex", "scan", "token_types"]
