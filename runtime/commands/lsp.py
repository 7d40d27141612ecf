"""``netc lsp``: the language server for editors, over stdin and stdout.

Diagnostics as ``netc check`` gives them on every change, hover (shapes, parameters, MACs,
receptive fields; definitions; ops and their parameters), inlay hints with each line's output
shape, go to definition across includes, document symbols and completion
(:mod:`netc.runtime.lsp`). Each check runs under ``netc check``'s budgets, with its flags.
"""

from __future__ import annotations

from netc.runtime.commands.options import add_max_memory, positive_int


def add_arguments(p):
    """``--stdio`` and check's budgets."""
    from netc.compiler.frontend.context import DEFAULT_MAX_DEPTH, DEFAULT_MAX_NODES, \
        MAX_DEPTH_LIMIT

    p.add_argument("--stdio", action="store_true",
                   help="talk the protocol over stdin and stdout (the default, and the only "
                        "transport; editors pass it by habit)")
    p.add_argument("--max-nodes", type=positive_int, default=DEFAULT_MAX_NODES,
                   help=f"refuse nets that expand past this many nodes (default "
                        f"{DEFAULT_MAX_NODES})")
    p.add_argument("--max-depth", type=positive_int, default=DEFAULT_MAX_DEPTH,
                   help="refuse definition calls nested deeper than this (default "
                        f"{DEFAULT_MAX_DEPTH}, at most {MAX_DEPTH_LIMIT})")
    add_max_memory(p)


def run(args) -> int:
    """Serve until the editor closes the connection."""
    from netc.runtime.commands.common import physical_memory
    from netc.runtime.lsp.server import serve

    serve({"max_nodes": args.max_nodes, "max_depth": args.max_depth,
           "max_memory": args.max_memory or physical_memory()})
    return 0
