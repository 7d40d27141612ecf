"""`netc lsp` stays up whatever the text: the hostile corpus replayed as edits, a 100,000-op
chain, and a newer edit that cancels a long check (whose result is then never published).

The server runs with ``--max-nodes 20000`` (netc check's flag, which the corpus also lowers for
some cases) so the node-budget cases end sooner; every other budget is check's default.
"""

from __future__ import annotations

import asyncio
import sys
import time

import pytest
import pytest_lsp
from lsprotocol import types as lsp
from pytest_lsp import ClientServerConfig, LanguageClient

from tests.hostile.corpus import all_cases
from tests.test_lsp import SMALL, change, make_client, open_doc, published

pytestmark = pytest.mark.asyncio(loop_scope="module")
CASES = [c for c in all_cases(False)
         if "text" in c["files"].get("spec.net", {}) and not c["slow"]]


@pytest_lsp.fixture(scope="module", config=ClientServerConfig(
    server_command=[sys.executable, "-m", "netc.runtime.cli", "lsp", "--max-nodes", "20000"],
    client_factory=make_client))
async def client(lsp_client: LanguageClient):
    await lsp_client.initialize_session(lsp.InitializeParams(
        capabilities=pytest_lsp.client_capabilities("visual-studio-code")))
    yield
    await lsp_client.shutdown_session()


async def alive(client, uri: str, version: int) -> None:
    """The server still answers: a good text gets no diagnostics, and a hover reads a shape."""
    change(client, uri, version, SMALL)
    assert list(await published(client, uri, version)) == []
    hover = await client.text_document_hover_async(lsp.HoverParams(
        lsp.TextDocumentIdentifier(uri), lsp.Position(4, 12)))
    assert "8x16x16" in hover.contents.value


async def test_the_hostile_corpus_as_edits_never_kills_the_server(client, tmp_path):
    path = tmp_path / "spec.net"
    path.write_text("")
    uri = open_doc(client, path, "")
    await published(client, uri, 1)
    version, times = 1, []
    for case in CASES:
        version += 1
        t = time.monotonic()
        change(client, uri, version, case["files"]["spec.net"]["text"])
        diagnostics = await published(client, uri, version, limit=case["limit"])
        times.append((time.monotonic() - t, case["name"]))
        if case["argv"] == ["check", "spec.net"] and case["codes"] == [1]:
            assert diagnostics, f"{case['name']}: netc check refuses it; no diagnostic came"
        for d in diagnostics:  # one located line each, as netc check gives it
            assert d.range.start.line >= 0 and d.message and "Traceback" not in d.message
            assert "internal error" not in d.message, (case["name"], d.message)
    assert len(times) == len(CASES) > 300
    await alive(client, uri, version + 1)


async def test_a_100000_op_chain_is_answered(client, tmp_path):
    path = tmp_path / "chain.net"
    text = "net n { input image: 3x8x8\n image" + " -> relu" * 100_000 + "\n}"
    uri = open_doc(client, path, text)
    diagnostics = await published(client, uri, 1, limit=120)
    assert [d.message for d in diagnostics] == [  # netc check's budget, at the layer past it
        "the network grows past 20,000 nodes; a recursion or repetition is too deep (raise the "
        "limit with --max-nodes)"]
    hints = await client.text_document_inlay_hint_async(lsp.InlayHintParams(
        lsp.TextDocumentIdentifier(uri), lsp.Range(lsp.Position(0, 0), lsp.Position(3, 0))))
    assert [h.label for h in hints][:1] == ["→ 3x8x8"]
    await alive(client, uri, 2)


HEAVY = """def f(n) = if n == 0 then relu * 0 else f(n - 1) -> f(n - 1)
net n {
  input image: 3x32x32
  image -> f(60)
}
"""


async def test_a_newer_edit_cancels_an_older_check_which_is_never_published(client, tmp_path):
    path = tmp_path / "edits.net"
    uri = open_doc(client, path, SMALL)
    await published(client, uri, 1)
    t = time.monotonic()
    change(client, uri, 2, HEAVY)  # seconds of elaboration, to the step budget
    assert "elaboration has taken" in (await published(client, uri, 2, limit=60))[0].message
    alone = time.monotonic() - t
    t = time.monotonic()
    change(client, uri, 3, HEAVY.replace("f(60)", "f(59)"))
    await asyncio.sleep(min(0.2, alone / 10))  # the check of version 3 is under way
    change(client, uri, 4, SMALL)
    assert list(await published(client, uri, 4, limit=60)) == []
    replaced = time.monotonic() - t
    assert replaced < alone / 2, (replaced, alone)
    await asyncio.sleep(0.5)
    assert not [p for p in client.published if p.uri == uri and p.version == 3]

    versions = []  # a burst of keystrokes: only the newest text's result may be published last
    for v in range(5, 25):
        change(client, uri, v, SMALL.replace("conv(8", f"conv({v}"))
    await published(client, uri, 24)
    versions = [p.version for p in client.published if p.uri == uri]
    assert versions == sorted(versions) and versions[-1] == 24
