"""``netc summary`` in a terminal: 100 columns, names cut from the left, ``--wide``, the
receptive field as a number, kernel/stride, trainable vs non-trainable, "connected to"."""

from __future__ import annotations

import json

import pytest

from netc.compiler.frontend.loader import load, zoo_index
from netc.compiler.analyses.summary import one_line, summarize


@pytest.mark.parametrize("net", sorted(zoo_index()))
def test_every_zoo_table_fits_100_columns(cli, net):
    r = cli("summary", net)
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    title = one_line(summarize(load(net)))  # on lines of its own, broken after a comma
    k = next(i for i, line in enumerate(lines) if line.startswith("name "))
    assert " ".join(line.strip() for line in lines[:k]) == title
    assert max(map(len, lines)) <= 100, max(lines, key=len)


def test_long_names_are_cut_from_the_left_and_wide_prints_them_whole(cli):
    narrow = cli("summary", "fractalnet").out
    wide = cli("summary", "fractalnet", "--wide").out
    names = [n.name for n in load("fractalnet")]
    cut = [line.split()[0] for line in narrow.splitlines() if line.startswith("…")]
    assert cut, "fractalnet has names longer than the column"
    for c in cut:  # each cut name is the end of a real one
        assert any(n.endswith(c[1:]) and len(n) > len(c) - 1 for n in names), c
    assert "--wide prints them whole" in narrow
    listed = {line.split()[0] for line in wide.splitlines()[2:] if line[:1].strip()}
    assert set(names) <= listed
    assert max(map(len, wide.splitlines())) > 100


def standard_rf(layers: list[tuple[int, int]]) -> int:
    """The textbook recurrence along one path of (kernel, stride): r += (k - 1)·j, j *= s."""
    r, j = 1, 1
    for k, s in layers:
        r, j = r + (k - 1) * j, j * s
    return r


def resnet50_path(stride_on_3x3: bool) -> list[tuple[int, int]]:
    """The longest path of ResNet-50 (He et al. Table 1) up to its last conv block's output:
    the stem, then each bottleneck's 1x1, 3x3, 1x1 (the shortcut is shorter)."""
    path = [(7, 2), (3, 2)]
    for blocks, stride in zip((3, 4, 6, 3), (1, 2, 2, 2)):
        for b in range(blocks):
            s = stride if b == 0 else 1
            path += [(1, 1), (3, s), (1, 1)] if stride_on_3x3 else [(1, s), (3, 1), (1, 1)]
    return path


def rf_column(out: str) -> dict[str, str]:
    return {line.split()[0]: line.split()[-1] for line in out.splitlines()
            if " relu " in line or " gap " in line}


@pytest.mark.parametrize("net, stride_on_3x3, published, last", [
    ("resnet50", False, 483, "layer4.bottleneck3.relu3"),
    ("resnet50_v1_5", True, 427, "layer4.bottleneck_v15_3.relu3")])
def test_receptive_field_is_the_number_past_the_input(cli, net, stride_on_3x3, published, last):
    # Araujo et al. (Distill 2019) give 483 for ResNet-50 v1; torchvision's v1.5, 427.
    assert standard_rf(resnet50_path(stride_on_3x3)) == published
    r = cli("summary", net, "--wide")
    rf = rf_column(r.out)
    assert rf[last] == str(published)
    # The global pool's outputs see all 7x7 units: 6 more jumps of 32 pixels.
    assert rf["pool5"] == str(published + 6 * 32)
    assert ">224" not in r.out and "larger than the input" not in r.out


def test_receptive_field_of_a_deep_net_is_printed_whole(cli):
    # cifar_resnet1202: a 3x3 stem, then 200 basic blocks (two 3x3 convs) per stage at
    # strides 1, 2, 2, then an 8x8 global pool.
    path = [(3, 1)]
    for stride in (1, 2, 2):
        path += [(3, stride), (3, 1)] + [(3, 1)] * 398
    last = standard_rf(path)
    assert last + 7 * 4 == 5625
    r = cli("summary", "cifar_resnet1202")
    rf = [line.split()[-1] for line in r.out.splitlines() if " relu " in line]
    assert rf[-1] == f"{last:,}"
    data = json.loads(cli("summary", "cifar_resnet1202", "--json").out)
    assert max(layer["rf"] or 0 for layer in data["layers"]) == 5625


def test_receptive_field_stops_where_a_reshape_moves_values(cli, tmp_path):
    spec = tmp_path / "view.net"
    spec.write_text("net view {\n  input x: 4x8x8\n  x -> conv(4, 3, pad=1) as c -> "
                    "reshape([1, 4, 64]) as flat -> reshape([4, 8, 8]) as back -> conv(4, 3) as d"
                    "\n}\n")
    rows = {r.name: r for r in summarize(load(str(spec))).rows}
    assert rows["c"].rf == 3
    assert rows["flat"].rf is None and rows["back"].rf is None and rows["d"].rf is None


def test_deconv_shows_its_own_kernel_and_stride(cli, tmp_path):
    spec = tmp_path / "up.net"
    spec.write_text("net up {\n  input x: 4x8x8\n"
                    "  x -> deconv(4, 4, stride=2, pad=1) as up2 -> deconv(4, 3, stride=3) as up3"
                    "\n    -> deconv(4, 2, stride=2, dilation=2) as up4\n}\n")
    r = cli("summary", spec)
    assert r.code == 0, r.err
    rows = {line.split()[0]: line.split() for line in r.out.splitlines() if "deconv" in line}
    assert rows["up2"][3] == "4/2" and rows["up3"][3] == "3/3"
    assert rows["up4"][3:5] == ["2/2", "d2"]


def test_kernel_stride_and_the_non_trainable_split(cli):
    r = cli("summary", "resnet50")
    rows = {line.split()[0]: line.split() for line in r.out.splitlines()[2:] if line[:1].strip()}
    assert rows["conv1"][3] == "7/2" and rows["pool1"][3] == "3/2"
    assert rows["layer1.bottleneck1.conv2"][3] == "3/1"
    # Keras's ResNet50 summary: "Non-trainable params: 53,120" (batch-norm moving statistics).
    assert "25,557,032 trainable, 53,120 non-trainable" in r.out
    assert summarize(load("vgg16")).buffers == 0


def test_joins_say_what_they_are_connected_to(cli):
    lines = cli("summary", "googlenet").out.splitlines()
    k = next(i for i, line in enumerate(lines) if line.startswith("inception_3a.output"))
    reads = [lines[k].split()[-1]] + [line.strip() for line in lines[k + 1:k + 4]]
    assert reads == ["relu_1x1", "relu_3x3", "relu_5x5", "relu_pool_proj"]
    data = json.loads(cli("summary", "resnet18", "--json").out)
    res = next(layer for layer in data["layers"] if layer["name"] == "layer1.basic1.residual1")
    assert res["inputs"] == ["layer1.basic1.bn2", "pool1"]
    conv = next(layer for layer in data["layers"] if layer["name"] == "conv1")
    assert conv["inputs"] == [] and conv["kernel"] == [7, 7] and conv["stride"] == [2, 2]
