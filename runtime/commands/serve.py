"""``netc serve SPEC [--port N]``: a live page of the spec on 127.0.0.1, redrawn on every save.

The page shows ``netc draw``'s graph (collapsible groups), ``netc summary``'s table and
``netc check``'s diagnostics; a save of the spec or of a file it includes redraws it within a
second. A broken spec shows its located errors and the server keeps serving; Ctrl-C ends it.
"""

from __future__ import annotations

import argparse

from netc.runtime.commands.common import add_spec_arguments
from netc.runtime.commands.options import add_depth, check_depth

DEFAULT_PORT = 8765


def port_number(text: str) -> int:
    """A TCP port, 0 to 65535 (0: any free port)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number; got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 0 to 65535; got {value}")
    return value


def add_arguments(p):
    add_spec_arguments(p)
    p.add_argument("--port", type=port_number, default=DEFAULT_PORT,
                   help=f"the port on 127.0.0.1 (default {DEFAULT_PORT}; 0: any free port)")
    add_depth(p, "start the graph with the groups at level N and deeper collapsed")


def run(args) -> int:
    """Serve until Ctrl-C; a spec that cannot be found at all is an error before serving."""
    import errno
    import sys

    from netc.compiler.frontend.loader import resolve_spec
    from netc.dsl.diagnostics import UserError
    from netc.dsl.sources import NotRegular, check_regular
    from netc.runtime.serve.server import LiveServer
    from netc.runtime.serve.live import Live

    check_depth(args.depth)
    root, _ = resolve_spec(args.spec)  # a missing file or unknown zoo name: one located line
    try:
        check_regular(root)  # a FIFO would block the watcher's every read; a folder never parses
    except NotRegular as err:
        raise UserError(f"netc serve: {err}") from None
    _refuse_a_family(args.spec)
    live = Live(args, root, args.depth)
    try:
        server = LiveServer(args.port, live, args.spec)
    except OSError as err:
        if err.errno == errno.EADDRINUSE:
            raise UserError(f"--port {args.port}: the port is in use; choose another, or "
                            "--port 0 for any free one") from None
        raise
    first = live.start()
    state = "OK" if first.ok else f"{len(first.problems)} error(s) shown on the page"
    print(f"netc serve: {args.spec} at {server.url} ({state}); Ctrl-C stops", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        print("netc serve: stopped", file=sys.stderr)
    finally:
        live.stop()
        server.server_close()
    return 0


def _refuse_a_family(spec: str) -> None:
    """A file of several nets is served one net at a time: say which names to use, now
    rather than on the page. A file that does not parse yet is served (its errors shown)."""
    from netc.compiler.frontend.loader import nets_of
    from netc.dsl.diagnostics import DiagnosticError, UserError

    try:
        specs = nets_of(spec)
    except DiagnosticError:
        return
    if len(specs) > 1:
        raise UserError(f"{spec} defines several nets; serve one of them: "
                        + ", ".join(specs[:6]) + (", ..." if len(specs) > 6 else ""))
