"""``netc summary`` in a terminal: 100 columns, names cut from the left, ``--wide``, a capped
receptive-field column, kernel/stride, trainable vs non-trainable, "connected to"."""

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


def test_receptive_field_is_capped_at_the_input_and_exact_in_json(cli):
    r = cli("summary", "cifar_resnet1202")
    rf = [line.split()[-1] for line in r.out.splitlines() if " relu " in line]
    assert rf[-1] == ">32" and all(x.startswith(">") or int(x) <= 32 for x in rf)
    assert ">32: larger than the input" in r.out
    data = json.loads(cli("summary", "cifar_resnet1202", "--json").out)
    assert max(layer["rf"] or 0 for layer in data["layers"]) == 5625  # uncapped


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
