"""The language server: pygls handlers over :mod:`.analysis` and the request modules.

Checks run one at a time on a worker thread, so the protocol stays responsive. Versions:

1. every open or change records the document's newest version;
2. a check starts after a short pause (``DEBOUNCE``) only if no newer edit came meanwhile;
3. a newer edit cancels a running check (its :class:`Trace` asks at every 1,024 elaboration
   steps), and a check that finishes for an older version is dropped: its diagnostics are
   never published;
4. requests (hover, hints, definitions, symbols) wait briefly for the newest version's check,
   and completion reads the newest text with the last program that parsed.

Diagnostics are published for the document and every file it includes; a file's list is the
union of what each open document's check says about it.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lsprotocol import types as lsp
from pygls import uris
from pygls.lsp.server import LanguageServer

from netc.compiler.frontend.context import Cancelled
from netc.compiler.frontend.loader import Program
from netc.dsl.diagnostics import Diagnostic
from netc.runtime import __version__
from netc.runtime.lsp.analysis import Analysis, analyze, real
from netc.runtime.lsp.completion import complete
from netc.runtime.lsp.hover import hover
from netc.runtime.lsp.navigation import definition, inlay_hints, symbols
from netc.runtime.lsp.positions import to_range

DEBOUNCE = 0.01  # seconds an edit waits for the next keystroke before it is checked
WAIT = 5.0  # seconds a request waits for the check of the newest text before using the last
MAX_DIAGNOSTICS = 1000
log = logging.getLogger("netc.lsp")


def to_lsp(d: Diagnostic) -> lsp.Diagnostic:
    """One netc diagnostic as the protocol's: the message with its notes, at its span."""
    message = d.message + "".join(f"\nnote: {note}" for note in d.notes)
    severity = lsp.DiagnosticSeverity.Error if d.severity == "error" else \
        lsp.DiagnosticSeverity.Warning
    return lsp.Diagnostic(to_range(d.span), message, severity=severity, source="netc")


class NetcServer(LanguageServer):
    """pygls's server with the state of netc's checks (rules in the module docstring)."""

    def __init__(self):
        super().__init__("netc", __version__)
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="netc-check")
        self.latest: dict[str, int | None] = {}  # uri -> newest version edited
        self.results: dict[str, Analysis] = {}  # uri -> newest check published
        self.good: dict[str, Program] = {}  # uri -> last Program that parsed
        self.published: dict[str, dict[str, list[lsp.Diagnostic]]] = {}  # file -> root -> list
        self.closing = False
        self.budgets: dict = {}  # load()'s max_nodes, max_depth, max_memory (netc lsp's flags)

    def shutdown(self):
        """The connection is over (``exit``, or the editor gone): a running check stops at its
        next look at the version, so the process does not wait for it."""
        self.closing = True
        super().shutdown()

    def overlay(self) -> dict[Path, str]:
        """The texts of the open documents, by real path: they replace the files on disk."""
        docs = self.workspace.text_documents
        return {real(d.path): d.source for d in docs.values() if d.path}

    def program(self, uri: str, analysis: Analysis | None) -> Program | None:
        """The program of ``analysis``, or (while a line is half typed) the last that parsed."""
        return (analysis.program if analysis else None) or self.good.get(uri)

    def stale(self, uri: str, version: int | None) -> bool:
        """Whether a newer edit of ``uri`` came after ``version`` (or the server is closing)."""
        return self.closing or self.latest.get(uri, version) != version

    async def schedule(self, uri: str, version: int | None) -> None:
        """Check ``uri`` at ``version`` unless a newer edit overtakes it (rules 2 and 3)."""
        self.latest[uri] = version
        await asyncio.sleep(DEBOUNCE)
        if self.stale(uri, version):
            return
        doc = self.workspace.get_text_document(uri)
        if not doc.path:
            return
        overlay = self.overlay()
        loop = asyncio.get_running_loop()
        try:
            analysis = await loop.run_in_executor(self.worker, self.check, uri, doc.path,
                                                  overlay, version)
        except Cancelled:
            return
        if analysis is None or self.stale(uri, version):
            return  # an older text's result: never published
        self.results[uri] = analysis
        if analysis.program is not None:
            self.good[uri] = analysis.program
        self.publish(uri, analysis)
        for other, older in list(self.results.items()):  # documents that include this one
            if other != uri and analysis.path in older.files[1:]:
                asyncio.ensure_future(self.schedule(other, self.latest.get(other)))

    def check(self, uri: str, path: str, overlay, version) -> Analysis | None:
        """On the worker: the analysis, or a one-diagnostic analysis for a failure of netc's
        own (the server stays up whatever the text)."""
        if self.stale(uri, version):
            return None
        try:
            return analyze(Path(path), overlay, version, lambda: self.stale(uri, version),
                           self.budgets)
        except Cancelled:
            raise
        except (Exception, RecursionError, MemoryError) as err:  # noqa: BLE001 - stay up
            log.exception("netc lsp: check failed")
            message = f"netc lsp: internal error while checking: {type(err).__name__}: {err}"
            return Analysis(real(path), version, overlay.get(real(path), ""), None,
                            [Diagnostic(None, message[:1000])], [], overlay)

    def publish(self, uri: str, analysis: Analysis) -> None:
        """Publish the check's diagnostics for the document and each file it read; a file it
        no longer reads loses what this document's checks said about it."""
        lists: dict[str, list[lsp.Diagnostic]] = {}
        for path, diags in analysis.by_file().items():
            file_uri = uri if path == analysis.path else uris.from_fs_path(str(path))
            if file_uri is not None:
                lists[file_uri] = [to_lsp(d) for d in diags[:MAX_DIAGNOSTICS]]
        for file_uri, per_root in self.published.items():
            if file_uri not in lists and uri in per_root:
                lists[file_uri] = []
        # The document's own list last: a client that waits for its version has the rest.
        for file_uri, diags in sorted(lists.items(), key=lambda item: item[0] == uri):
            per_root = self.published.setdefault(file_uri, {})
            per_root[uri] = diags
            merged = [d for each in per_root.values() for d in each]
            version = analysis.version if file_uri == uri else None
            self.text_document_publish_diagnostics(
                lsp.PublishDiagnosticsParams(file_uri, merged, version=version))

    async def current(self, uri: str) -> Analysis | None:
        """The check of the newest text of ``uri``, waiting up to ``WAIT`` for it (rule 4)."""
        deadline = asyncio.get_running_loop().time() + WAIT
        while asyncio.get_running_loop().time() < deadline:
            result = self.results.get(uri)
            if result is not None and result.version == self.latest.get(uri):
                return result
            await asyncio.sleep(0.005)
        return self.results.get(uri)


server = NetcServer()


@server.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
async def did_open(ls: NetcServer, params: lsp.DidOpenTextDocumentParams):
    """A document opened: check it."""
    await ls.schedule(params.text_document.uri, params.text_document.version)


@server.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
async def did_change(ls: NetcServer, params: lsp.DidChangeTextDocumentParams):
    """An edit: check the new text, cancelling the check of an older one."""
    await ls.schedule(params.text_document.uri, params.text_document.version)


@server.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: NetcServer, params: lsp.DidCloseTextDocumentParams):
    """A document closed: forget its checks and what they said about other files."""
    uri = params.text_document.uri
    ls.latest.pop(uri, None)
    ls.results.pop(uri, None)
    for file_uri, per_root in ls.published.items():
        if per_root.pop(uri, None) is not None:
            merged = [d for lists in per_root.values() for d in lists]
            ls.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(file_uri, merged))


@server.feature(lsp.TEXT_DOCUMENT_HOVER)
async def on_hover(ls: NetcServer, params: lsp.HoverParams):
    """Hover: :func:`netc.runtime.lsp.hover.hover` on the newest check."""
    analysis = await ls.current(params.text_document.uri)
    if analysis is None:
        return None
    program = ls.program(params.text_document.uri, analysis)
    defs = program.defs if program is not None else {}
    return hover(analysis, defs, params.position.line, params.position.character)


@server.feature(lsp.TEXT_DOCUMENT_INLAY_HINT)
async def on_inlay_hint(ls: NetcServer, params: lsp.InlayHintParams):
    """Inlay hints: each line's output shape in the range asked."""
    analysis = await ls.current(params.text_document.uri)
    if analysis is None:
        return []
    return inlay_hints(analysis, params.range.start.line, params.range.end.line)


@server.feature(lsp.TEXT_DOCUMENT_DEFINITION)
async def on_definition(ls: NetcServer, params: lsp.DefinitionParams):
    """Go to definition, across includes."""
    analysis = await ls.current(params.text_document.uri)
    if analysis is None:
        return None
    program = ls.program(params.text_document.uri, analysis)
    return definition(analysis, program, params.position.line, params.position.character)


@server.feature(lsp.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
async def on_symbols(ls: NetcServer, params: lsp.DocumentSymbolParams):
    """The outline: nets, definitions, constants and their labels."""
    analysis = await ls.current(params.text_document.uri)
    if analysis is None:
        return []
    good = ls.good.get(params.text_document.uri)  # while a line is half typed: the last parse
    module = analysis.module or (good.modules.get(analysis.path) if good else None)
    return symbols(module, analysis.text) if module is not None else []


@server.feature(lsp.TEXT_DOCUMENT_COMPLETION,
                lsp.CompletionOptions(trigger_characters=["(", ",", " "]))
def on_completion(ls: NetcServer, params: lsp.CompletionParams):
    """Completion on the newest text, with the names of the last program that parsed."""
    uri = params.text_document.uri
    text = ls.workspace.get_text_document(uri).source
    analysis = ls.results.get(uri)
    program = ls.program(uri, analysis)
    module = analysis.module if analysis else None
    return complete(text, params.position.line, params.position.character, program, module)


@server.feature(lsp.SHUTDOWN)
def on_shutdown(ls: NetcServer, params=None):
    """The client is leaving: a running check stops at its next look at the version."""
    ls.closing = True


def serve(budgets: dict | None = None) -> None:
    """Serve the protocol over stdin and stdout until the client exits; ``budgets`` are
    :func:`~netc.compiler.frontend.loader.load`'s ``max_nodes``, ``max_depth`` and
    ``max_memory``."""
    server.budgets = dict(budgets or {})
    server.start_io()
