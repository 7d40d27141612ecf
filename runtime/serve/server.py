"""The HTTP side of ``netc serve``: stdlib ``ThreadingHTTPServer`` on 127.0.0.1 only.

Routes: ``/`` the page, ``/state?since=V`` a long poll answered as soon as a snapshot newer
than ``V`` exists, or with the current one after ``wait`` seconds (JSON), ``/graph.svg`` the
last good graph (``?shut=a,b``: with those groups shut). A request naming another host in
its ``Host`` header is refused, so a web page elsewhere cannot read the spec through a DNS
name that points at 127.0.0.1.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from netc.runtime.serve.page import page
from netc.runtime.serve.live import Live

HOST = "127.0.0.1"
LONG_POLL_SECONDS = 20.0  # a waiting page asks again after this; well under browsers' timeouts


class LiveServer(ThreadingHTTPServer):
    """One spec's live page. Handler threads are daemons: Ctrl-C does not wait on long polls."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, port: int, live: Live, spec: str):
        super().__init__((HOST, port), Handler)
        self.live, self.spec = live, spec
        self.port = self.server_address[1]

    def handle_error(self, request, client_address) -> None:
        """A page closed while its long poll waited is normal; anything else is reported."""
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)

    @property
    def url(self) -> str:
        """Where the page is."""
        return f"http://{HOST}:{self.port}/"


class Handler(BaseHTTPRequestHandler):
    """GET only; every answer is sent whole, with its length, and never cached."""

    server: LiveServer
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802 (the name http.server calls)
        if self.headers.get("Host") not in (f"{HOST}:{self.server.port}",
                                            f"localhost:{self.server.port}"):
            self._send(HTTPStatus.FORBIDDEN, "text/plain", b"netc serve answers 127.0.0.1 only")
            return
        url = urlsplit(self.path)
        query = parse_qs(url.query, keep_blank_values=True)
        if url.path == "/":
            self._send(HTTPStatus.OK, "text/html; charset=utf-8",
                       page(self.server.spec).encode())
        elif url.path == "/state":
            self._state(query)
        elif url.path == "/graph.svg":
            self._graph(query)
        else:
            self._send(HTTPStatus.NOT_FOUND, "text/plain", b"not found")

    def _state(self, query: dict[str, list[str]]) -> None:
        try:
            since = int(query.get("since", ["0"])[0])
            wait = float(query.get("wait", [LONG_POLL_SECONDS])[0])
        except ValueError:
            self._send(HTTPStatus.BAD_REQUEST, "text/plain", b"since and wait must be numbers")
            return
        wait = min(max(wait, 0.0), LONG_POLL_SECONDS) if wait == wait else 0.0  # NaN: no wait
        current, good = self.server.live.wait_newer(since, wait)
        body = json.dumps(current.to_json(good)).encode()
        self._send(HTTPStatus.OK, "application/json", body)

    def _graph(self, query: dict[str, list[str]]) -> None:
        """The last good graph; ``shut=a,b`` names the groups to draw shut (the page's)."""
        good = self.server.live.last_good
        if good is None:
            self._send(HTTPStatus.NOT_FOUND, "text/plain", b"no graph yet: the spec is broken")
            return
        shut = None
        if "shut" in query:
            shut = {name for value in query["shut"] for name in value.split(",")}
        self._send(HTTPStatus.OK, "image/svg+xml; charset=utf-8", good.svg(shut).encode())

    def _send(self, status: HTTPStatus, kind: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):  # noqa: A002 (http.server's signature)
        pass  # one line per long poll would bury the terminal; errors reach the page
