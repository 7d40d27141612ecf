"""The live page of ``netc serve``: one HTML document with a small script, no framework.

The script long-polls ``/state?since=V``: the server answers as soon as a snapshot newer than
``V`` exists (or after a while with the same one, and the script asks again). The graph is
``netc draw``'s own SVG in an iframe, so its collapsible groups work as in the file that
command writes; it is reloaded only when a newer graph exists, with the groups the user
shut still shut. While the spec is broken the
page lists its diagnostics and keeps the last good graph and table, greyed and marked stale.
The body's ``data-version`` and the iframe's ``data-loaded`` say what is shown (the browser
test reads them).
"""

from __future__ import annotations

from html import escape

STYLE = """
body{font-family:DejaVu Sans,Verdana,sans-serif;margin:0;color:#111}
header{padding:8px 14px;background:#eef2fa;border-bottom:1px solid #c8d3ea;display:flex;
  gap:18px;align-items:baseline;flex-wrap:wrap}
header h1{font-size:16px;margin:0}#status{font-size:13px}
#status.ok{color:#1a6b1a}#status.broken{color:#b02020;font-weight:bold}
#problems{margin:0;padding:0 14px}#problems:empty{display:none}
.problem{border-left:4px solid #b02020;background:#fff4f4;margin:8px 0;padding:4px 10px}
.problem pre{margin:4px 0;font-size:12px;white-space:pre-wrap}
main{display:flex;gap:10px;padding:10px 14px;align-items:flex-start}
#graph{flex:1 1 60%;min-width:300px;height:calc(100vh - 90px);border:1px solid #ddd}
#summary{flex:1 1 40%;overflow:auto;height:calc(100vh - 90px);margin:0;font-size:11px;
  border:1px solid #ddd;padding:6px}
.stale{opacity:.35;filter:grayscale(1)}
"""

SCRIPT = r"""
const el = id => document.getElementById(id);
let version = 0, graphVersion = null;
const sleep = ms => new Promise(r => setTimeout(r, ms));
el('graph').addEventListener('load', () => {
  el('graph').dataset.loaded = el('graph').dataset.want || '';
});
function show(s) {
  const status = el('status');
  status.className = s.ok ? 'ok' : 'broken';
  const n = s.problems.length;
  status.textContent = s.ok ? `OK, ${s.nodes} nodes, built in ${(1000 * s.seconds).toFixed(0)} ms`
    : `${n} error${n === 1 ? '' : 's'}` + (s.graph_version ? ': showing the last good graph' : '');
  const list = el('problems');
  list.textContent = '';
  for (const p of s.problems) {
    const div = document.createElement('div'), pre = document.createElement('pre');
    div.className = 'problem';
    div.dataset.where = p.where;
    pre.textContent = p.text;
    div.appendChild(pre);
    list.appendChild(div);
  }
  el('title').textContent = s.title || 'netc serve';
  el('summary').textContent = s.summary;
  for (const id of ['graph', 'summary']) el(id).classList.toggle('stale', !s.ok);
  if (s.graph_version !== null && s.graph_version !== graphVersion) {
    graphVersion = s.graph_version;
    el('graph').dataset.want = String(graphVersion);
    // keep the groups the user shut: the drawing's script publishes its set as netcShut
    const drawn = el('graph').contentWindow, shut = drawn && drawn.netcShut;
    el('graph').src = '/graph.svg?v=' + graphVersion +
      (shut ? '&shut=' + encodeURIComponent([...shut].join(',')) : '');
  }
  version = s.version;
  document.body.dataset.version = String(version);
}
async function poll() {
  for (;;) {
    try {
      const r = await fetch('/state?since=' + version, {cache: 'no-store'});
      if (!r.ok) throw new Error('HTTP ' + r.status);
      show(await r.json());
    } catch (err) {
      el('status').className = 'broken';
      el('status').textContent = 'netc serve is not answering (' + err.message + ')';
      await sleep(1000);
    }
  }
}
poll();
"""


def page(spec: str) -> str:
    """The page for ``spec`` (its name goes in the title until the first snapshot arrives)."""
    name = escape(spec)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{name} · netc serve</title>
<style>{STYLE}</style></head>
<body data-version="0">
<header><h1 id="title">{name}</h1><span id="status">loading…</span></header>
<div id="problems"></div>
<main><iframe id="graph" title="the network graph"></iframe><pre id="summary"></pre></main>
<script>{SCRIPT}</script>
</body></html>
"""
