"""Source spans and diagnostics: the one way netc reports a user's mistake.

Every user error becomes a :class:`Diagnostic` with a :class:`Span`; a list of them travels in a
:class:`DiagnosticError`. :func:`render` prints them the way compilers do::

    vgg.net:4:21: error: conv: (W + 2P - F)/S + 1 = (2 + 2*0 - 3)/1 + 1 = 0 is not positive
        image -> conv(64, 3) -> ...
                 ^~~~~~~~~~~
      note: in stage(ch=64, n=2)
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Span:
    """A region of a source file; lines and columns count from 1."""

    file: str
    line: int
    col: int
    end_line: int | None = None
    end_col: int | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"

    @classmethod
    def of(cls, file: str, where) -> Span:
        """The span of a Lark token or tree ``meta`` (both carry line/column/end_*)."""
        return cls(file, where.line, where.column, where.end_line, where.end_column)


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One message about one place in a spec; ``notes`` add context such as the expansion path.

    ``file``, ``line`` and ``column`` read the span (None for a message about no place, such as
    an unknown zoo name); ``str(diagnostic)`` is what ``netc check`` prints for it.
    """

    span: Span | None
    message: str
    severity: str = "error"
    notes: tuple[str, ...] = ()

    @property
    def file(self) -> str | None:
        """The spec file the message is about, as it is shown (relative where it can be)."""
        return self.span.file if self.span else None

    @property
    def line(self) -> int | None:
        """The line, counted from 1."""
        return self.span.line if self.span else None

    @property
    def column(self) -> int | None:
        """The column, counted from 1."""
        return self.span.col if self.span else None

    def __str__(self) -> str:
        return render_one(self)


class NetcError(Exception):
    """A user's mistake, whatever its kind: the one exception type netc raises for one.

    ``diagnostics`` holds the mistakes as records (each with file, line, column, message and
    notes where it has a place in a spec); ``str(err)`` is their messages, one a line.
    """

    def __init__(self, message: str, diagnostics: list[Diagnostic] | None = None):
        super().__init__(message)
        self.diagnostics: list[Diagnostic] = (
            list(diagnostics) if diagnostics is not None else [Diagnostic(None, message)])


class DiagnosticError(NetcError):
    """Raised with every diagnostic found; the command line renders them and exits 1."""

    def __init__(self, diagnostics: list[Diagnostic] | Diagnostic):
        if isinstance(diagnostics, Diagnostic):
            diagnostics = [diagnostics]
        diagnostics = list(diagnostics)
        super().__init__("\n".join(d.message for d in diagnostics), diagnostics)

    def __reduce__(self):  # pickled with its records, not with the joined message
        return type(self), (self.diagnostics,)


@dataclass
class SourceCache:
    """Texts of the files read so far, so diagnostics can quote the offending line."""

    texts: dict[str, str] = field(default_factory=dict)
    _lines: dict[str, tuple[str, list[str]]] = field(default_factory=dict, repr=False)

    def line(self, file: str, line: int) -> str | None:
        text = self.texts.get(file)
        if text is None:
            from netc.dsl.sources import NotRegular, read_regular

            try:  # a regular file only: a diagnostic must not block on a FIFO
                text = read_regular(file).decode("utf-8", errors="replace")
            except NotRegular:
                return None
            self.texts[file] = text
        cached = self._lines.get(file)
        if cached is None or cached[0] is not text:  # split once per text, not per diagnostic
            cached = self._lines[file] = (text, text.splitlines())
        lines = cached[1]
        return lines[line - 1] if 1 <= line <= len(lines) else None


SOURCES = SourceCache()


def render_one(diag: Diagnostic, sources: SourceCache = SOURCES) -> str:
    """Render one diagnostic: location, message, the source line with a caret, then notes."""
    where = f"{diag.span}: " if diag.span else ""
    message = diag.message if len(diag.message) <= 1000 else diag.message[:997] + "..."
    out = [f"{where}{diag.severity}: {message}"]
    if diag.span is not None:
        text = sources.line(diag.span.file, diag.span.line)
        if text is not None:
            text = text.replace("\t", " ")
        if text is not None and text.isprintable():  # never echo binary garbage
            col = max(diag.span.col, 1)
            width = 1
            if diag.span.end_line == diag.span.line and diag.span.end_col:
                width = max(1, diag.span.end_col - col)
            width = min(width, max(1, len(text) - col + 1))
            text, col, width = _excerpt(text, col, width)
            out.append("    " + text)
            out.append("    " + " " * (col - 1) + "^" + "~" * (width - 1))
    out.extend(f"  note: {note}" for note in diag.notes)
    return "\n".join(out)


EXCERPT = 100  # columns of a source line shown around the caret


def _excerpt(text: str, col: int, width: int) -> tuple[str, int, int]:
    """A window of a long line around ``col`` (1-based), with "..." where it was cut, and the
    caret's column and width in the window: a 1,000,000-character line is not echoed."""
    if len(text) <= EXCERPT:
        return text, col, width
    start = max(0, min(col - 1 - EXCERPT // 3, len(text) - EXCERPT))
    window = text[start:start + EXCERPT]
    left = "..." if start > 0 else ""
    right = "..." if start + EXCERPT < len(text) else ""
    new_col = col - start + len(left)
    width = max(1, min(width, EXCERPT - (col - 1 - start)))
    return left + window + right, new_col, width


MAX_SHOWN = 200  # diagnostics rendered; a generated file with 20,000 mistakes shows the first


def render(diagnostics: list[Diagnostic], sources: SourceCache = SOURCES,
           limit: int = MAX_SHOWN) -> str:
    """Render the diagnostics sorted by place (the first ``limit`` of them, then a count)."""

    def key(d: Diagnostic):
        s = d.span
        return (s.file, s.line, s.col) if s else ("", 0, 0)

    ordered = sorted(diagnostics, key=key)
    out = [render_one(d, sources) for d in ordered[:limit]]
    if len(ordered) > limit:
        out.append(f"... and {len(ordered) - limit:,} more errors not shown")
    return "\n".join(out)


class UserError(NetcError):
    """A user's mistake that is not about a place in a spec (an unreadable image, a bad flag).

    The command line prints ``netc: error: <message>`` and exits 1, without a traceback.
    """

    def __init__(self, message: str):
        super().__init__(message)
