"""``netc top-activations``: streaming top-k per unit with receptive-field crops."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch
from PIL import Image

from netc.compiler.frontend.loader import load
from netc.compiler.lower_torch.module import build_module
from netc.compiler.analyses.receptive import fields
from netc.runtime.images import Preprocess
from netc.runtime.views.sources import batches, open_source
from netc.runtime.views.top import TopK, crop

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("net", ["vgg16", "alexnet", "lenet5", "vgg11"])
def test_fields_of_a_chain_follow_the_textbook_recurrence(net):
    """Along a chain, r_out = r_in + (k − 1)·d·j_in and j_out = j_in·s (Araujo et al., Distill
    2019, eq. 2), written out here rather than read from netc's walk, which the summary's RF
    column also uses now; the branching nets' published fields are test_summary_table's."""
    g = load(net)
    got = fields(g)
    r, j, seen = 1, 1, 0
    for node in g:
        if node.op == "input":
            continue
        assert len(node.inputs) == 1, f"{net} is not a chain at {node.name}"
        if len(node.shape) != 3:
            break  # flattened: no field past here
        geometry = node.opdef.geometry(node.attrs, [g[i].shape for i in node.inputs])
        if geometry is not None:
            (k, _), (s, _), (d, _) = geometry
            r, j = r + (k - 1) * d * j, j * s
        assert (got[node.name].size[0], got[node.name].jump[0]) == (r, j), node.name
        seen += 1
    assert seen > 5 and r > 1


def test_vgg16_conv5_3_field_as_published():
    """Araujo et al. (Distill 2019), Table 1: VGG-16 conv5_3 has r = 196, stride 16 and
    effective padding 90, so the first unit's field is centred at −90 + (196 − 1)/2 = 7.5."""
    g = load("vgg16")
    f = fields(g)[g.resolve("conv5_3")]
    assert f.size == (196, 196) and f.jump == (16, 16) and f.start == (7.5, 7.5)
    assert f.box(0, 0) == (-90, -90, 106, 106)


def test_box_is_where_the_gradient_reaches(tmp_path):
    """With positive weights, the input pixels a unit depends on fill exactly its box."""
    spec = tmp_path / "n.net"
    spec.write_text("net n { input x: 1x23x23\n x -> conv(1, 3, pad=1) -> avgpool(2) "
                    "-> conv(1, 3, stride=2, pad=1) -> avgpool(2, stride=1) -> conv(1, 2) "
                    "as top }")
    g = load(str(spec))
    net = build_module(g)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.ones_like(p))
    f = fields(g)["top"]
    _, h, w = g["top"].shape
    for i, j in [(0, 0), (h // 2, w // 2), (h - 1, w - 1)]:
        x = torch.ones(1, 1, 23, 23, requires_grad=True)
        net(x, taps=["top"])["top"][0, 0, i, j].backward()
        rows, cols = np.nonzero(x.grad[0, 0].numpy())
        top, left, bottom, right = f.box(i, j)
        assert (rows.min(), cols.min()) == (max(top, 0), max(left, 0))
        assert (rows.max() + 1, cols.max() + 1) == (min(bottom, 23), min(right, 23))


def test_crop_pads_outside_the_image_with_grey():
    g = load("vgg16")
    f = fields(g)[g.resolve("pool1")]  # 6x6 fields, jump 2, start 0.5
    pic = np.zeros((224, 224, 3), np.uint8)
    c = crop(pic, f, 0, 0)
    assert c.shape == (6, 6, 3)
    assert (c[:2, :2] == 128).all() and (c[2:, 2:] == 0).all()


def test_topk_streams_and_equals_sorting_everything():
    rng = np.random.default_rng(0)
    acts = rng.normal(size=(300, 6, 5, 5)).astype(np.float32)
    pics = rng.integers(0, 255, (300, 8, 8, 3), dtype=np.uint8)
    names = [f"img{i}" for i in range(300)]
    top = TopK([1, 4, 5], 7, None)
    for s in range(0, 300, 32):
        top.add(names[s:s + 32], pics[s:s + 32], acts[s:s + 32])
        assert all(len(h) <= 7 for h in top.heaps.values())
    for u in (1, 4, 5):
        best = acts[:, u].reshape(300, -1).max(axis=1)
        want = [names[i] for i in np.argsort(-best, kind="stable")[:7]]
        assert [h.name for h in top.best(u)] == want


def _top_run(n):
    src = open_source(f"digits:{n}")
    prep = Preprocess((1, 32, 32), layout="gray", crop=1.0)
    g = load("lenet5")
    net = build_module(g).eval()
    top = TopK(list(range(16)), 4, fields(g)["c3"])
    tracemalloc.start()
    with torch.no_grad():
        for items, pics, x in batches(src.items, prep, 32):
            top.add([i.name for i in items], pics, net(torch.from_numpy(x), taps=["c3"])["c3"]
                    .numpy())
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak, top


def test_memory_does_not_grow_with_the_folder():
    small, _ = _top_run(200)
    large, top = _top_run(1797)
    assert top.seen == 1797
    assert large < 1.5 * small + 2**20, (small, large)
    assert all(h.crop.shape == (14, 14, 3) for u in top.units for h in top.best(u))


def _folder(tmp_path, n=6, size=(40, 40)):
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(
            folder / f"p{i}.png")
    return folder


def test_cli_writes_the_grid(cli, tmp_path):
    folder = _folder(tmp_path)
    out = tmp_path / "grid.png"
    r = cli("top-activations", "lenet5", "--images", folder, "--layer", "c3", "--units", "0-3",
            "--k", "3", "--size", "32", "-o", out)
    assert r.code == 0, r.err
    assert "4 units x 3 of 6 images" in r.out
    with Image.open(out) as im:
        assert im.width > 3 * 32 and im.height > 4 * 32
    r = cli("top-activations", "lenet5", "--images", "digits:40", "--layer", "f6", "--units",
            "0,5", "--k", "2", "-o", out)
    assert r.code == 0, r.err


@pytest.mark.parametrize("setup, args, message", [
    ("empty", [], "no images found"),
    ("text", [], "no images found (1 other file skipped)"),
    ("corrupt", [], "cannot read image"),
    ("missing", [], "no such folder"),
    ("ok", ["--layer", "c9"], "lenet5 has no layer named 'c9'"),
    ("ok", ["--units", "0-99"], "--units 0-99: unit 16 is out of range; the layer has 16 "
                                "channels (0..15)"),
    ("ok", ["--units", "a-b"], "expected numbers and ranges"),
    ("ok", ["--k", "0"], "--k must be at least 1"),
])
def test_cli_bad_inputs_are_one_line(cli, tmp_path, setup, args, message):
    folder = tmp_path / "imgs"
    if setup == "ok":
        folder = _folder(tmp_path, 2)
    elif setup != "missing":
        folder.mkdir()
    if setup == "text":
        (folder / "README.txt").write_text("hello")
    if setup == "corrupt":
        (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    argv = ["--layer", "c3"] + args if "--layer" not in args else args
    r = cli("top-activations", "lenet5", "--images", folder, *argv, "-o", tmp_path / "o.png")
    assert r.code == 1
    # (a broken file is found while streaming, after the random-weights warning line)
    lines = [x for x in r.err.strip().splitlines() if not x.startswith("warning: ")]
    assert len(lines) == 1 and lines[0].startswith("netc: error: ") and message in lines[0]
    assert "Traceback" not in r.err
    assert not (tmp_path / "o.png").exists()
