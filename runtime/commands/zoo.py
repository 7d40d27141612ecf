"""``netc zoo``: the built-in nets with their source, input, parameters and MACs.

``netc zoo NAME`` shows one net and its file; ``netc zoo NAME --spec`` prints the file that
defines it (a valid spec to copy and edit: ``netc zoo resnet18 --spec > mine.net``).
"""

from __future__ import annotations

from netc.dsl.diagnostics import UserError


def add_arguments(p):
    p.add_argument("name", metavar="NAME", nargs="?", help="one net (default: all of them)")
    p.add_argument("--spec", action="store_true", help="print the spec file that defines NAME")


def run(args) -> int:
    from netc.compiler.frontend.loader import zoo_index

    index = zoo_index()
    if args.spec and not args.name:
        raise UserError("--spec needs a NAME: netc zoo resnet18 --spec")
    if args.name is None:
        names = sorted(index)
    elif args.name in index:
        names = [args.name]
    else:
        import difflib

        close = difflib.get_close_matches(args.name, index, n=4)
        hint = f"; did you mean {', '.join(close)}?" if close else "; `netc zoo` lists them"
        raise UserError(f"no zoo net is called {args.name[:80]!r}{hint}")
    if args.spec:
        print(index[args.name].read_text(encoding="utf-8"), end="")
        return 0
    rows = [_row(name, index[name]) for name in names]
    header = ("net", "source", "input", "params", "MACs", "file")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        print("  ".join(c.rjust(w) if i in (3, 4) else c.ljust(w)
                        for i, (c, w) in enumerate(zip(r, widths))).rstrip())
    if args.name is None:
        print("netc summary NAME: its layers; netc zoo NAME --spec: its spec")
    return 0


def source_of(name: str, path) -> str:
    """Where a zoo net comes from: ``netc.model_specs.SOURCES``, else its file's first comment
    line (which names the paper by convention)."""
    from netc.model_specs import SOURCES

    if name in SOURCES:
        return SOURCES[name]
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            text = line.lstrip("# ").split(":", 1)[-1].strip()
            return text if len(text) <= 40 else text[:39] + "…"
    return ""


def _row(name: str, path) -> tuple[str, ...]:
    from netc.compiler.frontend.loader import load
    from netc.compiler.ops import fmt_shape
    from netc.compiler.analyses.summary import human, summarize

    s = summarize(load(name))
    ins = ", ".join(fmt_shape(v) for v in s.inputs.values())
    return (name, source_of(name, path), ins, f"{s.params:,}", human(s.macs), path.name)
