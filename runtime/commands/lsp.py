"""``netc lsp``: the language server for editors, over stdin and stdout.

Diagnostics as ``netc check`` gives them on every change, hover (shapes, parameters, MACs,
receptive fields; definitions; ops and their parameters), inlay hints with each line's output
shape, go to definition across includes, document symbols and completion
(:mod:`netc.runtime.lsp`). Each check runs under ``netc check``'s budgets, with its flags.
"""

from __future__ import annotations

from netc.runtime.commands.common import add_budgets


def add_arguments(p):
    """``--stdio`` and check's budgets."""
    p.add_argument("--stdio", action="store_true",
                   help="talk the protocol over stdin and stdout (the default, and the only "
                        "transport; editors pass it by habit)")
    add_budgets(p)


def run(args) -> int:
    """Serve until the editor closes the connection."""
    from netc.runtime.commands.common import physical_memory
    from netc.runtime.lsp.server import serve

    serve({"max_nodes": args.max_nodes, "max_depth": args.max_depth,
           "max_memory": args.max_memory or physical_memory()})
    return 0
