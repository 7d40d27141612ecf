"""``netc serve``: a live page of a spec on 127.0.0.1 (issue 20, item 5).

The server runs as the user runs it, ``netc serve SPEC --port 0`` in a process of its own, and
is stopped with SIGINT (Ctrl-C). Its answers are read over HTTP, and in headless Chromium driven
over the DevTools protocol: one page stays open while the spec is edited, broken, fixed, and
its included file edited, and each change must show within a second.
"""

from __future__ import annotations

import json
import re
import selectors
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from netc.runtime.serve.server import LiveServer
from netc.runtime.serve.live import Live, watched_files

BLOCKS = "def block(ch) = conv(ch, 3, pad=1) -> bn -> relu\n"
SPEC = """# a small net for the netc serve tests
include "blocks.net"
net small {
  input image: 3x32x32
  image -> block(16) as stem -> gap -> flatten -> fc(10) as head
}
"""
# conv(8, 99) on a 32x32 map: the conv rule's located error, in the file being served
BROKEN = SPEC.replace("block(16) as stem", "block(16) as stem -> conv(8, 99)")
REDRAW_SECONDS = 1.0  # the promise: a save shows on the page within a second


def write_specs(folder: Path) -> Path:
    (folder / "blocks.net").write_text(BLOCKS)
    spec = folder / "a.net"
    spec.write_text(SPEC)
    return spec


def start_serve(folder: Path, *args: str, timeout: float = 60) -> tuple[subprocess.Popen, str]:
    """``netc serve`` started in ``folder``; (process, page URL) once it says where it is."""
    proc = subprocess.Popen([sys.executable, "-m", "netc.runtime.cli", "serve", *args],
                            cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            proc.kill()
            pytest.fail("netc serve printed nothing")
    line = proc.stdout.readline()
    found = re.search(r"http://127\.0\.0\.1:\d+/", line)
    if found is None:
        proc.kill()
        pytest.fail(f"netc serve said {line!r}; stderr: {proc.stderr.read()}")
    return proc, found.group(0)


def stop(proc: subprocess.Popen) -> tuple[int, str]:
    """Ctrl-C, as a user stops it: (exit status, stderr)."""
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("netc serve did not stop on SIGINT")
    return proc.returncode, err


def get(url: str, host: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def state(url: str, since: int) -> dict:
    code, body = get(f"{url}state?since={since}")
    assert code == 200, body
    return json.loads(body)


@pytest.fixture
def served(tmp_path):
    spec = write_specs(tmp_path)
    proc, url = start_serve(tmp_path, "a.net", "--port", "0")
    yield spec, url
    code, err = stop(proc)
    assert code == 0 and "Traceback" not in err, err
    assert "stopped" in err


def test_state_follows_edits_breaks_and_fixes(served):
    spec, url = served
    first = state(url, 0)
    assert first["ok"] and first["version"] == 1 and first["problems"] == []
    assert "stem.conv1" in first["summary"] and "16x32x32" in first["summary"]
    assert first["title"].startswith("small: 650 params")
    code, svg = get(f"{url}graph.svg")
    assert code == 200 and "stem.conv1: conv -&gt; 16x32x32" in svg
    assert '"shut":[]' in svg  # no --depth: every group open
    # the page asks for the groups its user shut; names of no group are ignored
    assert '"shut":["stem"]' in get(f"{url}graph.svg?v=1&shut=stem,nosuch.group")[1]
    assert '"shut":[]' in get(f"{url}graph.svg?v=1&shut=")[1]

    start = time.perf_counter()
    spec.write_text(SPEC.replace("block(16)", "block(24)"))
    edited = state(url, 1)  # the long poll answers when the new snapshot exists
    assert time.perf_counter() - start < REDRAW_SECONDS
    assert edited["ok"] and edited["version"] == 2 and "24x32x32" in edited["summary"]

    spec.write_text(BROKEN)
    broken = state(url, 2)
    assert not broken["ok"] and broken["graph_version"] == 2  # the last good graph stays
    (problem,) = broken["problems"]
    col = BROKEN.splitlines()[4].index("conv(8, 99)") + 1
    assert problem["where"] == f"a.net:5:{col}"
    assert problem["text"].startswith(f"a.net:5:{col}: error: conv:")
    assert "^" in problem["text"] and "99" in problem["message"]
    code, svg = get(f"{url}graph.svg")
    assert code == 200 and "24x32x32" in svg

    spec.write_text(SPEC)
    fixed = state(url, 3)
    assert fixed["ok"] and fixed["problems"] == [] and fixed["graph_version"] == 4


def test_a_save_of_an_included_file_redraws(served):
    spec, url = served
    assert state(url, 0)["version"] == 1
    (spec.parent / "blocks.net").write_text(BLOCKS.replace("-> relu", "-> relu -> dropout(0.1)"))
    after = state(url, 1)
    assert after["ok"] and "stem.dropout1" in after["summary"]


def test_a_page_waits_for_a_change_and_other_hosts_are_refused(served):
    spec, url = served
    start = time.perf_counter()
    code, body = get(f"{url}state?since=1&wait=1.5")
    assert code == 200 and json.loads(body)["version"] == 1  # nothing changed: the same one
    assert time.perf_counter() - start >= 1.5  # it waited (the long poll) before answering
    assert get(url, host="attacker.example:80")[0] == 403
    assert get(f"{url}state?since=x")[0] == 400
    assert get(f"{url}state?since=1&wait=nan")[0] == 200
    assert get(f"{url}nothing")[0] == 404
    code, html = get(url)
    assert code == 200 and "<iframe id=\"graph\"" in html


def test_ctrl_c_ends_it_while_a_page_waits(tmp_path):
    import threading

    write_specs(tmp_path)
    proc, url = start_serve(tmp_path, "a.net", "--port", "0")
    outcome = []

    def wait():  # a long poll that would wait 20 s for a change
        try:
            outcome.append(get(f"{url}state?since=1")[0])
        except OSError as err:  # the server went away before answering: as good
            outcome.append(type(err).__name__)

    waiting = threading.Thread(target=wait, daemon=True)
    waiting.start()
    time.sleep(0.5)
    start = time.perf_counter()
    code, err = stop(proc)
    assert code == 0 and err.strip() == "netc serve: stopped"
    assert time.perf_counter() - start < 5
    waiting.join(10)
    assert outcome  # the page's request ended too, answered or cut


def test_a_spec_broken_from_the_start_is_served_and_fixed(tmp_path):
    spec = write_specs(tmp_path)
    spec.write_text(BROKEN)
    proc, url = start_serve(tmp_path, "a.net", "--port", "0")
    try:
        first = state(url, 0)
        assert not first["ok"] and first["graph_version"] is None
        assert first["problems"][0]["where"].startswith("a.net:5:")
        assert get(f"{url}graph.svg")[0] == 404
        spec.write_text(SPEC)
        assert state(url, 1)["ok"]
    finally:
        assert stop(proc)[0] == 0


@pytest.mark.parametrize("args, code, message", [
    (["nosuch.net"], 1, "no such file or zoo net: 'nosuch.net'"),
    (["a.net", "--port", "70000"], 2, "expected a port from 0 to 65535"),
    (["a.net", "--port", "x"], 2, "expected a port number"),
    (["a.net", "--depth", "0"], 1, "--depth must be at least 1"),
    (["two.net"], 1, "two.net defines several nets; serve one of them: two.net:one, two.net:two"),
])
def test_bad_command_lines_are_one_line(tmp_path, args, code, message):
    write_specs(tmp_path)
    (tmp_path / "two.net").write_text("net one {\n  input x: 1x4x4\n  x -> flatten -> fc(2)\n}\n"
                                      "net two {\n  input x: 1x4x4\n  x -> flatten -> fc(3)\n}\n")
    run = subprocess.run([sys.executable, "-m", "netc.runtime.cli", "serve", *args],
                         cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert run.returncode == code and message in run.stderr
    assert "Traceback" not in run.stderr and run.stdout == ""


def test_a_port_in_use_is_one_line(served, tmp_path):
    _, url = served
    port = url.rstrip("/").rpartition(":")[2]
    run = subprocess.run([sys.executable, "-m", "netc.runtime.cli", "serve", "a.net",
                          "--port", port], cwd=tmp_path, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 1 and "the port is in use" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1


def test_binds_to_the_loopback_address_only(tmp_path):
    live = Live(None, write_specs(tmp_path), None)
    server = LiveServer(0, live, "a.net")
    try:
        assert server.server_address[0] == "127.0.0.1"
    finally:
        server.server_close()


def test_watched_files_follow_includes_and_survive_broken_ones(tmp_path):
    spec = write_specs(tmp_path)
    assert watched_files(spec) == ([spec.resolve(), (tmp_path / "blocks.net").resolve()], True)
    (tmp_path / "blocks.net").write_text("def block(ch) = conv(ch,\n")
    assert watched_files(spec) == ([spec.resolve(), (tmp_path / "blocks.net").resolve()], False)
    spec.write_text("net small {\n")  # the root itself unparsable: its includes are unknown
    assert watched_files(spec) == ([spec.resolve()], False)


# ---- in a browser ----------------------------------------------------------------------------

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))
                 if p), None)
try:
    import websocket  # websocket-client, in the test extra: the DevTools protocol's transport
except ImportError:
    websocket = None


class Browser:
    """One headless Chromium tab, driven over the DevTools protocol (a websocket)."""

    def __init__(self, profile: Path):
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file, deadline = profile / "DevToolsActivePort", time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.close()
                pytest.fail("Chromium did not open its DevTools port")
            time.sleep(0.05)
        port = port_file.read_text().split()[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30) as r:
            tab = next(t for t in json.load(r) if t["type"] == "page")
        self.ws = websocket.create_connection(tab["webSocketDebuggerUrl"], timeout=30,
                                              suppress_origin=True)
        self.next_id = 0

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == self.next_id:
                assert "error" not in reply, reply
                return reply["result"]

    def eval(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 10) -> float:
        """Seconds until ``expression`` is true on the page."""
        start = time.perf_counter()
        # an exception is "not yet": before the page has loaded, #summary is not there
        probe = f"(() => {{ try {{ return !!({expression}); }} catch (e) {{ return false; }} }})()"
        while not self.eval(probe):
            if time.perf_counter() - start > timeout:
                pytest.fail(f"the page never showed {expression}")
            time.sleep(0.02)
        return time.perf_counter() - start

    def close(self):
        if getattr(self, "ws", None) is not None:
            self.ws.close()
        self.proc.kill()
        self.proc.wait(timeout=30)


# What the page shows, as JavaScript expressions over its DOM (and the graph's iframe).
GRAPH = "document.getElementById('graph')"
SVG_DOC = f"{GRAPH}.contentDocument"


def node_says(node: str, text: str) -> str:
    """The graph's box for ``node`` is drawn, with ``text`` in its tooltip."""
    return (f"(() => {{ const d = {SVG_DOC}, n = d && d.getElementById('n-{node}'); "
            f"return !!n && n.querySelector('title').textContent.includes('{text}'); }})()")


STEM_SHUT = f"getComputedStyle({SVG_DOC}.querySelector('#g-stem>.shut')).display !== 'none'"


def summary_says(text: str) -> str:
    return f"document.getElementById('summary').textContent.includes('{text}')"


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (.ci/run installs "
                    "Debian's chromium where apt-get can reach the archive)")
@pytest.mark.skipif(websocket is None, reason="websocket-client (the test extra) is not "
                    "installed: it carries the DevTools protocol to Chromium")
def test_browser_page_redraws_on_save_and_shows_errors_located(served, tmp_path):
    spec, url = served
    browser = Browser(tmp_path / "profile")
    try:
        browser.call("Page.navigate", url=url)
        browser.wait_for(f"{node_says('stem.conv1', '16x32x32')} && {summary_says('16x32x32')}",
                         timeout=30)
        # the SVG's own script runs in the page: a click on the group's header shuts it
        browser.eval(f"{SVG_DOC}.querySelector('#g-stem>.open>.hd').dispatchEvent("
                     "new MouseEvent('click', {bubbles: true}))")
        assert browser.eval(STEM_SHUT)

        timings = {}
        spec.write_text(SPEC.replace("block(16)", "block(24)"))
        timings["edit"] = browser.wait_for(
            f"{node_says('stem.conv1', '24x32x32')} && {summary_says('24x32x32')}")
        assert browser.eval(STEM_SHUT)  # the redrawn graph keeps the group its user shut
        browser.eval(f"{SVG_DOC}.querySelector('#g-stem>.shut').dispatchEvent("
                     "new MouseEvent('click', {bubbles: true}))")
        assert not browser.eval(STEM_SHUT)

        spec.write_text(BROKEN)
        col = BROKEN.splitlines()[4].index("conv(8, 99)") + 1
        timings["break"] = browser.wait_for(
            f"!!document.querySelector('.problem[data-where=\"a.net:5:{col}\"]')")
        text = browser.eval("document.getElementById('problems').textContent")
        assert text.startswith(f"a.net:5:{col}: error: conv:") and "^" in text
        assert browser.eval(f"{GRAPH}.classList.contains('stale')")
        assert browser.eval(node_says("stem.conv1", "24x32x32"))  # the last good graph stays
        assert "1 error" in browser.eval("document.getElementById('status').textContent")

        spec.write_text(SPEC.replace("block(16)", "block(32)"))
        timings["fix"] = browser.wait_for(
            f"{node_says('stem.conv1', '32x32x32')} && !{GRAPH}.classList.contains('stale') "
            "&& document.getElementById('problems').childElementCount === 0")

        (spec.parent / "blocks.net").write_text(BLOCKS.replace("-> relu", "-> relu -> dropout"))
        timings["include"] = browser.wait_for(node_says("stem.dropout1", "32x32x32"))
        print("seconds from a save to the page showing it:", timings)
        assert all(t < REDRAW_SECONDS for t in timings.values()), timings
    finally:
        browser.close()
