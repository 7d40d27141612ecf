"""``netc fmt [--check [--diff]] FILES...``: rewrite specs and recipes in the canonical layout.

FILES are ``.net`` and ``.recipe`` files or folders (searched for both, hidden folders
skipped); ``-`` reads stdin and writes the result to stdout, as an editor calls a formatter.
Only files whose text changes are written, each atomically (:mod:`netc.runtime.files`). A file
that does not parse is reported with its located syntax error and left untouched; the others
are still formatted, and the exit status is 1. ``--check`` writes nothing: it lists the files
that would change (``--diff``: with a unified diff) and exits 1 if there is one.
"""

from __future__ import annotations

import difflib
import sys
from pathlib import Path

from netc.dsl.diagnostics import Diagnostic, DiagnosticError, Span, UserError
from netc.dsl.format import format_text
from netc.dsl.sources import MAX_SOURCE_BYTES
from netc.runtime.files import atomic_write_bytes, read_file

SUFFIXES = (".net", ".recipe")
STDIN = "-"
DIFF_LINES = 60  # a longer diff is cut, with the count of what was left out


def add_arguments(p):
    p.add_argument("paths", metavar="FILES", nargs="+",
                   help=".net and .recipe files or folders of them; - for stdin to stdout")
    p.add_argument("--check", action="store_true",
                   help="write nothing; list the files that would change, exit 1 if any")
    p.add_argument("--diff", action="store_true",
                   help="with --check: show a unified diff of each change")


def run(args) -> int:
    """Format every file named; 1 if a file does not parse or (--check) would change."""
    check = args.check or args.diff
    errors: list[Diagnostic] = []
    changed = unchanged = 0
    for path in _files(args.paths):
        try:
            old, new = _format_one(path)
        except DiagnosticError as err:
            errors.extend(err.diagnostics)
            continue
        shown = "<stdin>" if path == STDIN else path
        if old == new:
            unchanged += 1
        elif check:
            changed += 1
            print(shown)
            if args.diff:
                _print_diff(shown, old, new)
        else:
            changed += 1
            if path != STDIN:
                atomic_write_bytes(path, new.encode("utf-8"))
        if path == STDIN and not check:
            sys.stdout.write(new)
    if not check and STDIN not in args.paths:
        print(f"{changed} file{'s' * (changed != 1)} formatted, {unchanged} unchanged",
              file=sys.stderr)
    if errors:
        raise DiagnosticError(errors)
    return 1 if check and changed else 0


def _files(paths: list[str]) -> list[str]:
    """The files named: each file itself, each folder's .net and .recipe files, sorted."""
    out: list[str] = []
    for name in paths:
        path = Path(name)
        if name == STDIN or not path.is_dir():
            out.append(name)
            continue
        found = [p for p in path.rglob("*") if p.suffix in SUFFIXES and p.is_file()
                 and not any(part.startswith(".") for part in p.relative_to(path).parts)]
        if not found:
            raise UserError(f"{name}: a directory with no .net or .recipe files in it")
        out.extend(str(p) for p in sorted(found))
    return out


def _format_one(path: str) -> tuple[str, str]:
    """The text as read (line ends as they are) and as formatted."""
    if path == STDIN:
        raw = sys.stdin.buffer.read(MAX_SOURCE_BYTES + 1)
        if len(raw) > MAX_SOURCE_BYTES:
            raise UserError(f"stdin is more than {MAX_SOURCE_BYTES:,} bytes; netc reads up "
                            f"to {MAX_SOURCE_BYTES:,}")
        shown = "<stdin>"
    else:
        raw, shown = read_file(path, "netc fmt"), path
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[:err.start].count(b"\n") + 1
        raise DiagnosticError(Diagnostic(Span(shown, line, 1),
                                         "this is not a UTF-8 text file (binary data?)")) from None
    return text, format_text(text, shown)


def _print_diff(path: str, old: str, new: str) -> None:
    lines = list(difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                      f"{path} (as it is)", f"{path} (formatted)", n=2))
    for line in lines[:DIFF_LINES]:
        sys.stdout.write(line if line.endswith("\n") else line + "\n")
    if len(lines) > DIFF_LINES:
        print(f"... {len(lines) - DIFF_LINES} more diff lines")
