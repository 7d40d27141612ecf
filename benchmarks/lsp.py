"""How live is `netc lsp`? One-character edits, end to end through a real LSP client.

For ``resnet50`` and ``preact_resnet1001`` (each written as one file: the zoo's definitions and
one net, whose ``classes`` default is the character edited, 1000 <-> 1001 and 10 <-> 11) and a
chain of 100,000 ops on one line (its input 3x8x8 <-> 3x8x9), a pygls client runs ``netc lsp``
as a subprocess, opens the file, then per turn:

- A: sends a ``didChange`` with the edited text and times until the server publishes the
  diagnostics of that version (a re-parse of the edited file and the full check of its net:
  the 10 ms debounce, the protocol and the JSON included);
- B, the baseline: ``netc check FILE`` on the same text, in this process
  (``netc.runtime.cli.main``, the file written first; no process start counted);

A first on even turns and B first on odd ones, so load from other jobs hits both alike. Each
turn gives one ratio A/B; we report medians, p90s and the ratios' median and p10-p90.

    python benchmarks/lsp.py                 # both nets, writes the `lsp` section of RESULTS.md
    python benchmarks/lsp.py --turns 5 --no-write
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lsprotocol import types as lsp  # noqa: E402
from pygls import uris  # noqa: E402
from pygls.lsp.client import LanguageClient  # noqa: E402

from benchmarks._results import machine, publish  # noqa: E402

ZOO = ROOT / "model_specs"
CHAIN = 99_999  # relus after the input: 100,000 nodes, netc check's default budget


def zoo_net(file: str, cut: str, net: str):
    """The zoo file's definitions (its text before ``cut``) and one net."""
    def text() -> str:
        whole = (ZOO / file).read_text()
        return whole[:whole.index(cut)] + net
    return text


# name: (the spec's text, the one-character edit (old, new), default turns, target in s)
NETS = {
    "resnet50": (zoo_net("resnet.net", "net resnet(", """net resnet50(classes=1000) {
  input image: 3x224x224, mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]
  image -> resnet_layers(bottleneck, 3, 4, 6, 3, classes)
}
"""), ("classes=1000", "classes=1001"), 30, 0.100),
    "preact_resnet1001": (zoo_net("preact_resnet.net", "net preact_resnet(", """net preact_resnet1001(classes=10) {
  input image: 3x32x32
  image -> preact_cifar(preact_bottleneck, 111, [16, 32, 64], classes)
}
"""), ("classes=10)", "classes=11)"), 12, 1.0),
    "chain of 100,000 ops": (lambda: "net chain {\n  input image: 3x8x8\n  image"
                             + " -> relu" * CHAIN + "\n}\n", ("3x8x8", "3x8x9"), 2, None),
}


def spec_text(name: str) -> str:
    """The text of one benchmark spec."""
    return NETS[name][0]()


class Client:
    """A pygls client that times each version's diagnostics."""

    def __init__(self):
        self.client = LanguageClient("netc-bench", "1")
        self.arrived: dict[tuple[str, int], tuple[float, list]] = {}
        self.event = asyncio.Event()

        @self.client.feature(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        def published(ls, params: lsp.PublishDiagnosticsParams):
            if params.version is not None:
                self.arrived[(params.uri, params.version)] = (time.perf_counter(),
                                                              params.diagnostics)
                self.event.set()

    async def start(self):
        """Start `netc lsp` and initialise the session."""
        await self.client.start_io(sys.executable, "-m", "netc.runtime.cli", "lsp")
        await self.client.initialize_async(lsp.InitializeParams(
            capabilities=lsp.ClientCapabilities()))
        self.client.initialized(lsp.InitializedParams())

    async def wait(self, uri: str, version: int, limit: float = 120.0) -> tuple[float, list]:
        """When the diagnostics of ``version`` arrived, and what they were."""
        deadline = time.perf_counter() + limit
        while (uri, version) not in self.arrived:  # woken by each publication, no polling
            self.event.clear()
            try:
                await asyncio.wait_for(self.event.wait(), deadline - time.perf_counter())
            except TimeoutError:
                raise RuntimeError(f"no diagnostics for version {version} in {limit} s") from None
        return self.arrived[(uri, version)]

    async def stop(self):
        """Shut the server down."""
        await self.client.shutdown_async(None)
        self.client.exit(None)
        await self.client.stop()


def check_in_process(path: Path, text: str) -> float:
    """B: `netc check FILE` in this process, on ``text``."""
    from netc.runtime.cli import main

    path.write_text(text)
    out = io.StringIO()
    t = time.perf_counter()
    with contextlib.redirect_stdout(out):
        code = main(["check", str(path)])
    elapsed = time.perf_counter() - t
    assert code == 0 and out.getvalue().startswith("OK"), out.getvalue()
    return elapsed


async def edit(client: Client, uri: str, version: int, text: str) -> float:
    """A: one didChange, timed until its diagnostics arrive."""
    t = time.perf_counter()
    client.client.text_document_did_change(lsp.DidChangeTextDocumentParams(
        lsp.VersionedTextDocumentIdentifier(version=version, uri=uri),
        [lsp.TextDocumentContentChangeWholeDocument(text)]))
    arrived, diagnostics = await client.wait(uri, version, limit=300)
    assert not diagnostics, diagnostics
    return arrived - t


async def bench_net(client: Client, name: str, turns: int, folder: Path) -> dict:
    """Open the net's file, then alternate A and B turn by turn."""
    text = spec_text(name)
    old, new = NETS[name][1]
    path = folder / f"{name.split()[0]}.net"
    path.write_text(text)
    check_path = folder / f"{name.split()[0]}_check.net"
    uri = uris.from_fs_path(str(path))
    client.client.text_document_did_open(lsp.DidOpenTextDocumentParams(
        lsp.TextDocumentItem(uri, "netc", 0, text)))
    await client.wait(uri, 0, limit=300)
    check_in_process(check_path, text)  # warm: imports, the registry
    a, b = [], []
    for turn in range(turns):
        edited = text.replace(old, new) if turn % 2 == 0 else text
        if turn % 2 == 0:
            a.append(await edit(client, uri, turn + 1, edited))
            b.append(check_in_process(check_path, edited))
        else:
            b.append(check_in_process(check_path, edited))
            a.append(await edit(client, uri, turn + 1, edited))
    return {"a": a, "b": b}


def p90(xs: list[float]) -> float:
    """The 90th percentile."""
    return statistics.quantiles(xs, n=10)[-1] if len(xs) > 1 else xs[0]


def table(results: dict) -> str:
    """The RESULTS.md table: one row per net."""
    rows = ["| net | `netc lsp`, edit -> diagnostics: median / p90 | `netc check` in-process: "
            "median / p90 | ratio lsp/check: median (p10-p90) | target |",
            "|---|---|---|---|---|"]
    for name, r in results.items():
        ratios = [x / y for x, y in zip(r["a"], r["b"])]
        q = statistics.quantiles(ratios, n=10) if len(ratios) > 1 else [ratios[0]] * 9
        med, target = statistics.median(r["a"]), NETS[name][3]
        ok = "-" if target is None else \
            f"<= {target * 1e3:.0f} ms: {'met' if med <= target else '**missed**'}"
        rows.append(f"| {name} ({len(r['a'])} turns) | {med * 1e3:.0f} / {p90(r['a']) * 1e3:.0f} ms"
                    f" | {statistics.median(r['b']) * 1e3:.0f} / {p90(r['b']) * 1e3:.0f} ms | "
                    f"{statistics.median(ratios):.2f} ({q[0]:.2f}-{q[-1]:.2f}) | {ok} |")
    return "\n".join(rows)


async def run(names: list[str], turns: int | None) -> dict:
    """Start the server, run each net's turns, stop it."""
    client = Client()
    await client.start()
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for name in names:
            results[name] = await bench_net(client, name, turns or NETS[name][2], Path(folder))
    await client.stop()
    return results


def main() -> None:
    """Run, print and write the RESULTS.md section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", nargs="+", choices=list(NETS), default=list(NETS))
    parser.add_argument("--turns", type=int, default=None, help="turns per net (default: 30 "
                        "for resnet50, 12 for preact_resnet1001, 2 for the chain)")
    parser.add_argument("--no-write", action="store_true", help="print, do not write RESULTS.md")
    args = parser.parse_args()
    results = asyncio.run(run(args.nets, args.turns))
    text = f"""## `netc lsp`: one-character edits end to end (`benchmarks/lsp.py`)

Machine: {machine()}, shared with other jobs (load moves both sides of a turn alike: the ratio
is the steadier figure). A pygls client drives `netc lsp` over stdio: each turn sends one
`didChange` that toggles one character (the net's `classes` default; the chain's input width)
and times until that version's diagnostics are published; the baseline is `netc check FILE` on
the same text in the benchmark's own process (no process start). Command: `python benchmarks/lsp.py`.

{table(results)}
"""
    publish("lsp", text, not args.no_write)


if __name__ == "__main__":
    main()
