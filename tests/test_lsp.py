"""`netc lsp` end to end: a real client (pytest-lsp) drives the server over stdio.

Diagnostics are compared with what `netc check`'s loader says for the same text; hovers,
completions, definitions, symbols and inlay hints are read from the protocol's answers.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types as lsp
from pygls import uris
from pygls.protocol import default_converter
from pytest_lsp import ClientServerConfig, LanguageClient
from pytest_lsp.client import DEFAULT_CLIENT_FEATURES, register_lsp_features

from netc.compiler.frontend.loader import load
from netc.dsl.diagnostics import DiagnosticError

ZOO = Path(__file__).resolve().parents[1] / "model_specs"
pytestmark = pytest.mark.asyncio(loop_scope="module")


def _record(ls, params: lsp.PublishDiagnosticsParams):
    ls.diagnostics[params.uri] = params.diagnostics
    ls.published.append(params)


def make_client() -> LanguageClient:
    """pytest-lsp's client, also keeping every publishDiagnostics with its version."""
    client = LanguageClient(converter_factory=default_converter)
    client.published = []
    register_lsp_features(client, {**DEFAULT_CLIENT_FEATURES,
                                   lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS: _record})
    return client


@pytest_lsp.fixture(scope="module", config=ClientServerConfig(
    server_command=[sys.executable, "-m", "netc.runtime.cli", "lsp"], client_factory=make_client))
async def client(lsp_client: LanguageClient):
    await lsp_client.initialize_session(lsp.InitializeParams(
        capabilities=pytest_lsp.client_capabilities("visual-studio-code")))
    yield
    await lsp_client.shutdown_session()


async def published(client, uri: str, version: int | None, limit: float = 30.0):
    """The diagnostics published for ``uri`` at ``version``, waiting up to ``limit`` s."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        for p in reversed(client.published):
            if p.uri == uri and (version is None or p.version == version):
                return p.diagnostics
        await asyncio.sleep(0.01)
    raise AssertionError(f"no diagnostics for {uri} version {version} within {limit} s")


def open_doc(client, path: Path, text: str | None = None, version: int = 1) -> str:
    uri = uris.from_fs_path(str(path))
    client.text_document_did_open(lsp.DidOpenTextDocumentParams(lsp.TextDocumentItem(
        uri, "netc", version, path.read_text() if text is None else text)))
    return uri


def change(client, uri: str, version: int, text: str) -> None:
    client.text_document_did_change(lsp.DidChangeTextDocumentParams(
        lsp.VersionedTextDocumentIdentifier(version=version, uri=uri),
        [lsp.TextDocumentContentChangeWholeDocument(text)]))


def where(text: str, needle: str, offset: int = 0) -> lsp.Position:
    """The position of ``needle``'s first occurrence (plus ``offset`` characters)."""
    before = text[:text.index(needle)]
    return lsp.Position(before.count("\n"), len(before) - (before.rfind("\n") + 1) + offset)


SMALL = """net small {
  input image: 3x32x32
  image -> conv(8, 3, pad=1)
        -> relu
        -> maxpool(2)
        -> flatten
        -> fc(10)
}
"""


async def test_broken_spec_gets_the_located_diagnostic_of_netc_check(client, tmp_path):
    path = tmp_path / "broken.net"
    text = SMALL.replace("maxpool(2)", "conv(16, 40)")
    path.write_text(text)
    with pytest.raises(DiagnosticError) as err:
        load(str(path))
    expected = err.value.diagnostics
    uri = open_doc(client, path)
    got = await published(client, uri, 1)
    assert [d.message.split("\nnote: ")[0] for d in got] == [d.message for d in expected]
    assert [(d.range.start.line + 1, d.range.start.character + 1) for d in got] == \
        [(d.line, d.column) for d in expected]
    assert "(32 + 2*0 - 40)/1 + 1" in got[0].message  # the conv rule, with its numbers

    change(client, uri, 2, text.replace("-> relu", "-> relu ->"))  # half-typed: a syntax error
    got = await published(client, uri, 2)
    assert len(got) == 1 and got[0].range.start.line == 4
    change(client, uri, 3, SMALL)  # fixed: the list empties
    assert list(await published(client, uri, 3)) == []


async def test_hover_on_a_conv_of_resnet18_reads_its_output_shape(client):
    path = ZOO / "resnet.net"
    text = path.read_text()
    uri = open_doc(client, path)
    await published(client, uri, 1, limit=60)
    at = where(text, "residual(conv(ch, 3", len("residual(c"))
    hover = await client.text_document_hover_async(lsp.HoverParams(
        lsp.TextDocumentIdentifier(uri), at))
    value = hover.contents.value
    assert "| resnet18 | layer1.basic1.conv1 (×2) | `64x56x56` | 36,864 |" in value
    assert "conv(out, kernel, stride=1" in value  # the op under the cursor, from the registry
    assert "| `stride` | pair | `1` | a positive integer |" in value  # parameters, domains
    assert "| `bias` | bool | `true` |" in value
    at = where(text, "def basic", len("def b"))
    hover = await client.text_document_hover_async(lsp.HoverParams(
        lsp.TextDocumentIdentifier(uri), at))
    assert "def basic(ch, stride=1, shortcut=project)" in hover.contents.value
    client.text_document_did_close(lsp.DidCloseTextDocumentParams(
        lsp.TextDocumentIdentifier(uri)))


async def test_completing_con_offers_conv_with_its_signature(client, tmp_path):
    path = tmp_path / "typing.net"
    text = SMALL.replace("-> fc(10)", "-> con")
    path.write_text(text)
    uri = open_doc(client, path)
    at = where(text, "-> con", len("-> con"))
    result = await client.text_document_completion_async(lsp.CompletionParams(
        lsp.TextDocumentIdentifier(uri), at))
    items = {i.label: i for i in result.items}
    assert "conv" in items and items["conv"].detail.startswith("conv(out, kernel, stride=1")
    assert all(label.startswith("con") for label in items)
    text2 = SMALL.replace("maxpool(2)", "maxpool(2, st")
    change(client, uri, 2, text2)
    result = await client.text_document_completion_async(lsp.CompletionParams(
        lsp.TextDocumentIdentifier(uri), where(text2, "maxpool(2, st", len("maxpool(2, st"))))
    assert "stride=" in {i.label for i in result.items}  # maxpool's keyword arguments


async def test_go_to_a_definition_in_an_included_file(client, tmp_path):
    (tmp_path / "lib.net").write_text("# blocks\n\ndef block(ch) =\n  conv(ch, 3, pad=1) -> relu\n")
    path = tmp_path / "main.net"
    text = 'include "lib.net"\n\nnet main {\n  input image: 3x8x8\n  image -> block(4)\n}\n'
    path.write_text(text)
    uri = open_doc(client, path)
    assert list(await published(client, uri, 1)) == []
    found = await client.text_document_definition_async(lsp.DefinitionParams(
        lsp.TextDocumentIdentifier(uri), where(text, "block(4)", 2)))
    location = found[0] if isinstance(found, list) else found
    assert location.uri == uris.from_fs_path(str((tmp_path / "lib.net").resolve()))
    assert location.range.start == lsp.Position(2, 4) and location.range.end == lsp.Position(2, 9)
    symbols = await client.text_document_document_symbol_async(lsp.DocumentSymbolParams(
        lsp.TextDocumentIdentifier(uri)))
    assert [s.name for s in symbols] == ["main"]


async def test_inlay_hints_give_every_line_of_a_net_its_shape(client, tmp_path):
    path = tmp_path / "hints.net"
    path.write_text(SMALL)
    uri = open_doc(client, path)
    await published(client, uri, 1)
    hints = await client.text_document_inlay_hint_async(lsp.InlayHintParams(
        lsp.TextDocumentIdentifier(uri), lsp.Range(lsp.Position(0, 0), lsp.Position(9, 0))))
    got = {h.position.line: h.label for h in hints}
    assert got == {1: "→ 3x32x32", 2: "→ 8x32x32", 3: "→ 8x32x32", 4: "→ 8x16x16",
                   5: "→ 2048", 6: "→ 10"}
    lines = SMALL.splitlines()
    assert all(h.position.character == len(lines[h.position.line]) for h in hints)


async def test_a_mistake_in_an_included_file_is_published_for_that_file(client, tmp_path):
    lib = tmp_path / "blocks.net"
    lib.write_text("def wide(ch) =\n  conv(ch, 9) -> relu\n")
    path = tmp_path / "uses.net"
    text = 'include "blocks.net"\nnet uses {\n  input image: 3x8x8\n  image -> wide(4)\n}\n'
    path.write_text(text)
    uri = open_doc(client, path)
    lib_uri = uris.from_fs_path(str(lib.resolve()))
    assert list(await published(client, uri, 1)) == []  # the mistake is not in this file
    got = await published(client, lib_uri, None)
    assert len(got) == 1 and got[0].range.start == lsp.Position(1, 2)
    assert "note: in wide(ch=4)" in got[0].message  # the expansion path, as check's note
    change(client, uri, 2, text.replace("3x8x8", "3x16x16"))
    await published(client, uri, 2)
    assert list(client.diagnostics[lib_uri]) == []


async def test_an_unsaved_edit_of_an_included_file_rechecks_the_file_that_includes_it(
        client, tmp_path):
    lib = tmp_path / "parts.net"
    lib.write_text("def part(ch) =\n  conv(ch, 3, pad=1) -> relu\n")
    path = tmp_path / "whole.net"
    path.write_text('include "parts.net"\nnet whole {\n  input image: 3x8x8\n  image -> part(4)\n}\n')
    uri = open_doc(client, path)
    assert list(await published(client, uri, 1)) == []
    lib_uri = open_doc(client, lib)
    await published(client, lib_uri, 1)
    change(client, lib_uri, 2, "def part(ch) =\n  conv(ch, 30) -> relu\n")  # not saved
    deadline = time.monotonic() + 30

    def messages():
        return [d.message for d in client.diagnostics.get(lib_uri, ())]

    while time.monotonic() < deadline and not any("(8 + 2*0 - 30)" in m for m in messages()):
        await asyncio.sleep(0.01)
    assert any("(8 + 2*0 - 30)/1 + 1" in m for m in messages()), messages()  # whole's check
    assert "this file defines no net" in messages()  # parts.net's own check, as netc check's
