"""``netc check SPEC``: parse and shape-check; one OK line with totals, or the diagnostics."""

from __future__ import annotations

from netc.runtime.commands.common import add_spec_arguments, load_graph


def add_arguments(p):
    add_spec_arguments(p)


def run(args) -> int:
    """Check the spec; a file of several nets has each of them checked, errors of all."""
    from netc.compiler.frontend.loader import nets_of
    from netc.compiler.analyses.summary import one_line, summarize
    from netc.dsl.diagnostics import DiagnosticError

    specs = nets_of(args.spec)
    errors, seen = [], set()
    for spec in specs:
        args.spec = spec
        try:
            graph = load_graph(args)
        except DiagnosticError as err:
            new = [d for d in err.diagnostics if d not in seen]  # a set: 20,000 errors, no n²
            seen.update(new)
            errors.extend(new)
            continue
        print(f"OK {one_line(summarize(graph))}, {len(graph)} nodes")
    if errors:
        raise DiagnosticError(errors)
    return 0
