"""``netc draw``: the graph from the IR as SVG (collapsible groups) and PNG, without Graphviz."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
from PIL import Image

from netc.compiler.analyses import draw
from netc.compiler.frontend.loader import load
from netc.compiler.analyses.summary import summarize

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def models():
    return {n: draw.build_model(load(n)) for n in ("resnet18", "resnet50", "googlenet",
                                                     "fractalnet")}


def test_groups_are_the_calls_with_their_totals(models):
    m = models["resnet18"]
    assert m.groups["layer1.basic1"].title == "basic(ch=64, stride=1, shortcut=project)"
    # torchvision's resnet18: layer1 = 2 × (2 × 64·64·9 + 2 × 2·64) = 147,968 parameters.
    assert m.groups["layer1"].params == 147_968
    assert m.groups[""].params == 11_689_512 == summarize(load("resnet18")).params
    rows = summarize(load("resnet18")).rows
    for name in ("layer2", "layer3.basic1", "layer2.basic1.shortcut"):
        assert m.groups[name].macs == sum(r.macs for r in rows if r.name.startswith(name + "."))


def test_parallel_branches_get_their_own_columns(models):
    g = models["googlenet"].groups["inception_3a"]
    firsts = ["n-inception_3a.conv1x1", "n-inception_3a.conv3x3_reduce",
              "n-inception_3a.conv5x5_reduce", "n-inception_3a.pool"]
    assert sorted(g.col[m] for m in firsts) == [0, 1, 2, 3]
    assert {g.row[m] for m in firsts} == {0}
    assert g.row["n-inception_3a.output"] == 4  # below the longest branch (4 nodes)


def test_fractalnet_columns_are_visible(models):
    """f_{C+1}(z) = [(f_C ∘ f_C)(z)] ⊕ [conv(z)]: the deep column and the one-unit column side
    by side, the two f_C drawn as one box "× 2" when shut, the join under both."""
    m = models["fractalnet"]
    g = m.groups["block1"]
    deep = ["g-block1.fractal1", "g-block1.fractal2"]
    unit = ["n-block1.conv1", "n-block1.dropout1", "n-block1.bn1", "n-block1.relu1"]
    assert {g.col[x] for x in deep} == {0} and {g.col[x] for x in unit} == {1}
    assert g.col["n-block1.mean1"] == 0 and g.row["n-block1.mean1"] == 4
    assert g.runs == [deep]
    lay = draw.layout(m, {"block1.fractal1", "block1.fractal2"})
    assert lay.boxes["g-block1.fractal1"].times == 2 and "g-block1.fractal2" not in lay.boxes


def test_residual_shortcuts_bow_around_the_block(models):
    m = models["resnet18"]
    lay = draw.layout(m, set())
    bowed = [(a, b) for a, b, bow in lay.edges if bow]
    # the identity shortcuts of layer1.basic1 and layer1.basic2; the projection shortcuts of
    # layers 2-4 run in their own column and need no bow.
    assert len(bowed) == 2
    pool1, res = lay.boxes["n-pool1"], lay.boxes["n-layer1.basic1.residual1"]
    a, b = bowed[0]
    assert a == (pool1.x + pool1.w / 2, pool1.y + pool1.h) and b == (res.x + res.w / 2, res.y)
    g = m.groups["layer2.basic1"]
    assert g.col["g-layer2.basic1.shortcut"] != g.col["n-layer2.basic1.conv1"]


def test_repeated_blocks_show_once_with_times_n(models):
    m = models["resnet50"]
    run = m.groups["layer3"].runs
    assert run == [[f"g-layer3.bottleneck{i}" for i in range(2, 7)]]
    shut = draw.initially_shut(m, 2)
    lay = draw.layout(m, shut)
    assert lay.boxes["g-layer3.bottleneck2"].times == 5
    assert "g-layer3.bottleneck3" not in lay.boxes
    assert lay.boxes["g-layer3.bottleneck1"].times == 1  # stride 2: a different call
    # open one of the run: every member gets its own box again
    lay2 = draw.layout(m, shut - {"layer3.bottleneck4"})
    assert all(f"g-layer3.bottleneck{i}" in lay2.boxes for i in range(2, 7))
    assert lay2.boxes["g-layer3.bottleneck2"].times == 1


def test_depth_shuts_levels_and_shrinks_the_picture(models):
    m = models["resnet50"]
    full, d2, d1 = (draw.layout(m, draw.initially_shut(m, d)) for d in (None, 2, 1))
    assert full.height > d2.height > d1.height
    assert {b.id for b in d1.boxes.values() if b.shut} == {f"g-layer{i}" for i in range(1, 5)}


def test_svg_is_well_formed_and_names_every_node(tmp_path, cli):
    out = tmp_path / "g.svg"
    r = cli("draw", "googlenet", "-o", out, "--depth", "1")
    assert r.code == 0, r.err
    root = ET.parse(out).getroot()
    ids = {e.get("id") for e in root.iter() if e.get("id")}
    graph = load("googlenet")
    assert {"n-" + n.name for n in graph} <= ids
    assert {"g-" + c for c in graph.calls} <= ids
    data = json.loads(next(e for e in root.iter(SVG + "script")
                           if e.get("id") == "netc-model").text)
    assert data["shut"] == sorted(graph.calls)
    text = out.read_text()
    assert "inception(c1=64, r3=96, c3=128, r5=16, c5=32, pp=32)" in text
    assert "graphviz" not in text.lower()


def test_png_is_the_same_layout(tmp_path, cli):
    out = tmp_path / "r.png"
    r = cli("draw", "resnet18", "--depth", "2", "-o", out, "--scale", "1")
    assert r.code == 0, r.err
    m = draw.build_model(load("resnet18"))
    lay = draw.layout(m, draw.initially_shut(m, 2))
    with Image.open(out) as im:
        assert im.size == (int(lay.width + draw.BOW) + 1, int(lay.height) + 1)
        assert len(im.getcolors(1 << 16)) > 20  # boxes, text and edges, not a blank sheet


@pytest.mark.parametrize("args, message", [
    (["--depth", "0"], "--depth must be at least 1"),
    (["-o", "net.txt"], "say --format svg or png"),
    (["--scale", "100", "-o", "x.png"], "--scale must be between"),
])
def test_bad_arguments_are_one_line(cli, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    r = cli("draw", "lenet5", *args)
    assert r.code == 1 and message in r.err and len(r.err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_draw_does_not_import_torch(tmp_path):
    code = ("import sys; from netc.runtime.cli import main; "
            f"main(['draw', 'resnet18', '-o', {str(tmp_path / 'a.svg')!r}]); "
            f"main(['draw', 'resnet18', '-o', {str(tmp_path / 'a.png')!r}]); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip().endswith("False")


# ---- in a browser ----------------------------------------------------------------------------

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))
                 if p), None)

# The page opens the SVG file in an iframe, records the state the SVG's own script laid out,
# clicks a shut group, records again, clicks the group's header to shut it, and prints it all.
PAGE = """<!doctype html><html><body>
<iframe id="f" src="net.svg" width="1600" height="4000"></iframe><pre id="result">none</pre>
<script>
document.getElementById('f').addEventListener('load', () => {
  const d = document.getElementById('f').contentDocument, svg = d.documentElement;
  const g = d.getElementById('g-GROUP'), inner = d.getElementById('g-INNER');
  const state = () => ({
    height: svg.getAttribute('height'),
    open: getComputedStyle(g.querySelector(':scope>.open')).display !== 'none',
    shut: getComputedStyle(g.querySelector(':scope>.shut')).display !== 'none',
    inner: inner.getBoundingClientRect().width > 0,
    times: inner.querySelector(':scope>.shut>.times').textContent,
    edges: d.getElementById('edges').childElementCount,
    transforms: Array.from(d.querySelectorAll('.node,.grp')).filter(
      e => e.getBoundingClientRect().width > 0).map(e => [e.id, e.getAttribute('transform')])});
  const out = {loaded: state()};
  g.querySelector(':scope>.shut').dispatchEvent(new MouseEvent('click', {bubbles: true}));
  out.clicked = state();
  g.querySelector(':scope>.open>.hd').dispatchEvent(new MouseEvent('click', {bubbles: true}));
  out.again = state();
  document.getElementById('result').textContent = JSON.stringify(out);
});
</script></body></html>"""


def _same_positions(transforms, lay):
    """The script's translate() of every visible box equals Python's layout offset."""
    got = dict(transforms)
    assert set(got) == set(lay.boxes)
    for key, t in got.items():
        gx, gy = map(float, t[len("translate("):-1].split(","))
        wx, wy = lay.offsets[key]
        assert abs(gx - wx) < 0.06 and abs(gy - wy) < 0.06, key


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (.ci/run installs "
                    "Debian's chromium where apt-get can reach the archive)")
@pytest.mark.parametrize("net, group, inner, times", [
    ("resnet18", "layer1", "layer1.basic1", 2),      # two identical basic blocks
    ("fractalnet", "block2", "block2.fractal1", 2),  # f_C ∘ f_C in the deep column
])
def test_browser_click_expands_a_group(tmp_path, cli, net, group, inner, times):
    svg = tmp_path / "net.svg"
    assert cli("draw", net, "--depth", "1", "-o", svg).code == 0
    (tmp_path / "page.html").write_text(PAGE.replace("INNER", inner).replace("GROUP", group))
    run = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--allow-file-access-from-files", f"--user-data-dir={tmp_path / 'profile'}",
         "--dump-dom", (tmp_path / "page.html").as_uri()],
        capture_output=True, text=True, timeout=120)
    dom = run.stdout
    start = dom.index('<pre id="result">') + len('<pre id="result">')
    result = json.loads(dom[start:dom.index("</pre>", start)].replace("&quot;", '"')
                        .replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))
    loaded, clicked, again = result["loaded"], result["clicked"], result["again"]
    # At load the script lays out what Python wrote (the same arithmetic, twice).
    m = draw.build_model(load(net))
    shut = draw.initially_shut(m, 1)
    lay = draw.layout(m, shut)
    _same_positions(loaded["transforms"], lay)
    assert float(loaded["height"]) == pytest.approx(lay.height, abs=0.5)
    assert loaded["shut"] and not loaded["open"] and not loaded["inner"]
    # Clicking the group opens it: its identical blocks show as one "× n" box, and every box
    # moves to where Python's layout of the new state puts it.
    lay_open = draw.layout(m, shut - {group})
    assert clicked["open"] and not clicked["shut"] and clicked["inner"]
    assert clicked["times"] == f"× {times}"
    _same_positions(clicked["transforms"], lay_open)
    assert float(clicked["height"]) == pytest.approx(lay_open.height, abs=0.5)
    assert float(clicked["height"]) > float(loaded["height"])
    assert clicked["edges"] == len(lay_open.edges)
    # and clicking its header shuts it again ("times" inside a shut group is not shown)
    assert {**again, "times": ""} == {**loaded, "times": ""}
