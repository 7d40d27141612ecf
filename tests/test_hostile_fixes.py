"""The faults issue 23's hostile corpus found, each pinned where it was fixed.

The corpus (``test_hostile_corpus.py``) checks the command line's promise; these check the
pieces: the option parsers, the weights reader's refusals, the image reader's 8-bit pixels,
the unit ranges, the ResNet stride hint, and what the explain warning says about zero-γ
residual nets (with the map that proves it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pytest

from netc.dsl.diagnostics import UserError
from netc.runtime.commands import options

sys.path.insert(0, str(Path(__file__).parent))
from hostile import makers  # noqa: E402 - the corpus's file makers, shared

EDGES = ["nan", "inf", "-inf", "1e400", "NaN", "x", ""]


# ---- options: non-finite values end the command line ------------------------------------------
@pytest.mark.parametrize("parse", [options.finite_float, options.positive_float,
                                   options.non_negative_float, options.momentum,
                                   options.fraction, options.crop_fraction])
@pytest.mark.parametrize("text", EDGES)
def test_float_options_refuse_what_is_not_a_finite_number(parse, text):
    with pytest.raises(argparse.ArgumentTypeError, match="expected"):
        parse(text)


@pytest.mark.parametrize(("parse", "good", "bad"), [
    (options.positive_float, ["1e-9", "3"], ["0", "-1"]),
    (options.non_negative_float, ["0", "2.5"], ["-1e-9"]),
    (options.momentum, ["0", "0.99"], ["1", "-0.1"]),
    (options.fraction, ["0.2", "0.999"], ["0", "1"]),
    (options.crop_fraction, ["1", "0.875"], ["0", "1.5"]),
    (options.finite_float, ["-3", "0"], []),
])
def test_float_options_keep_their_bounds(parse, good, bad):
    assert [parse(t) for t in good] == [float(t) for t in good]
    for t in bad:
        with pytest.raises(argparse.ArgumentTypeError):
            parse(t)


def test_a_non_finite_option_is_exit_2_naming_it(capsys):
    from netc.runtime.cli import main

    for argv in (["train", "lenet5", "--lr", "nan"], ["embed", "lenet5", "--images", "digits",
                                                        "--layer", "c3", "--perplexity", "inf"],
                 ["run", "lenet5", "x.png", "--crop", "1e400"],
                 ["run", "lenet5", "x.png", "--mean", "nan,0,0"],
                 ["explain", "lenet5", "x.png", "--layer", "c3", "--size", str(2**63)]):
        with pytest.raises(SystemExit) as stop:
            main(argv)
        err = capsys.readouterr().err
        assert stop.value.code == 2, (argv, err)
        assert f"argument {argv[-2]}: expected" in err and "Traceback" not in err


# ---- the weights reader ---------------------------------------------------------------------------
def test_non_finite_weights_are_refused_naming_the_tensor(tmp_path):
    from netc.runtime.weights.read import read_tensors

    path = tmp_path / "w.safetensors"
    path.write_bytes(makers.lenet5_weights(scale=float("nan")))
    with pytest.raises(UserError, match=r"c1\.(weight|bias) holds (6|150) value\(s\) that are not finite"):
        read_tensors(path)
    path.write_bytes(makers.lenet5_weights(scale=1.0))
    assert all(np.isfinite(v).all() for v in read_tensors(path).values())


@pytest.mark.parametrize("kind", ["negative-dims", "overflow-dims", "huge-dims"])
def test_caffemodel_blob_shapes_that_lie_are_one_error(tmp_path, kind):
    from netc.compiler.importers.caffe.caffemodel import read_caffemodel

    path = tmp_path / "w.caffemodel"
    path.write_bytes(makers.caffemodel(kind))
    with pytest.raises(UserError, match="the blob's shape"):
        read_caffemodel(path)
    path.write_bytes(makers.caffemodel("good"))
    assert read_caffemodel(path).layers[0].blobs[0].shape == (6, 1, 5, 5)


def test_a_pickle_with_code_never_runs(tmp_path, monkeypatch):
    from netc.runtime.weights.read import read_source

    import pickle

    monkeypatch.chdir(tmp_path)
    pickle.loads(makers.pickle_code("touch live"))  # the payload is live: unpickled, it runs
    assert (tmp_path / "live").exists()
    for zipped in (False, True):
        path = tmp_path / f"w{int(zipped)}.pth"
        path.write_bytes(makers.pickle_code("touch pwned", zipped=zipped))
        with pytest.raises(UserError, match="refused without loading|cannot read"):
            read_source(path)
    assert not (tmp_path / "pwned").exists()


def test_the_zip_bomb_inflates_to_what_it_claims():
    import io
    import zipfile

    with zipfile.ZipFile(io.BytesIO(makers.zip_bomb(megabytes=8))) as z:
        info = z.getinfo("archive/data.pkl")
        assert info.file_size == 8 * 2**20 and info.compress_size < 2**16
        assert z.read(info) == b"\0" * (8 * 2**20)  # the CRC and sizes hold


# ---- images -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("mode", "fmt"), [("I;16", "PNG"), ("CMYK", "JPEG"), ("P", "PNG"),
                                           ("RGBA", "PNG"), ("1", "PNG"), ("L", "GIF")])
def test_odd_images_read_as_8_bit_pictures_of_their_content(tmp_path, mode, fmt):
    from netc.runtime.images import read_image

    path = tmp_path / f"x.{fmt.lower()}"
    path.write_bytes(makers.image(mode, size=16, fmt=fmt, frames=2 if fmt == "GIF" else 1))
    img = read_image(path)
    a = np.asarray(img)
    assert img.mode in ("L", "RGB") and a.dtype == np.uint8
    # A gradient stays a gradient: Pillow's own 16-bit conversion clipped it to white.
    assert a.min() < 64 and a.max() > 192, (mode, a.min(), a.max())


def test_an_image_folder_entry_that_is_a_fifo_is_refused_not_waited_for(tmp_path):
    import os

    from netc.runtime.views.sources import Item

    os.mkfifo(tmp_path / "x.png")
    with pytest.raises(UserError, match="FIFO"):
        Item("x.png", None, path=tmp_path / "x.png").open()


@pytest.mark.parametrize("bad", ["fifo", "bomb"])
def test_a_flat_image_folder_refuses_a_fifo_or_a_bomb_by_name(tmp_path, bad):
    import os

    from netc.runtime.data import read_flat_folder

    (tmp_path / "1.png").write_bytes(makers.image("L", size=30))
    assert read_flat_folder(tmp_path, (1, 25, 25)).shape == (1, 1, 25, 25)
    if bad == "fifo":
        os.mkfifo(tmp_path / "2.png")
    else:
        (tmp_path / "2.png").write_bytes(makers.png_header(100_000, 100_000))
    with pytest.raises(UserError, match="FIFO" if bad == "fifo" else "decompression bomb"):
        read_flat_folder(tmp_path, (1, 25, 25))


# ---- unit ranges ------------------------------------------------------------------------------
def test_a_unit_range_is_checked_before_it_is_listed():
    from netc.runtime.views.network import parse_units

    with pytest.raises(UserError, match="unit 16 is out of range"):
        parse_units("0-1000000000000", 16)
    assert parse_units("0-2,1,5", 16) == [0, 1, 2, 5]


# ---- the ResNet v1/v1.5 hint names zoo nets that exist ----------------------------------------
def test_the_stride_hint_names_the_zoo_net_of_the_depth():
    from netc.compiler.frontend.loader import load
    from netc.runtime.weights.misfit import ZOO_RESNETS, zoo_twin

    assert zoo_twin("resnet101", v15=True) == "resnet101_v1_5 (a zoo net)"
    assert zoo_twin("resnet152_v1_5", v15=False) == "resnet152 (a zoo net)"
    assert "resnet50_v1_5, resnet101_v1_5 or resnet152_v1_5" in zoo_twin("mine", v15=True)
    for pair in ZOO_RESNETS.values():
        for name in pair:
            assert load(name).name == name  # every name the hint gives is a zoo net


def test_the_readme_sends_torchvision_resnet101_152_to_the_zoo():
    text = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    assert "write the v1.5 net in a file" not in text
    assert "the zoo's `resnet101_v1_5` and `resnet152_v1_5`" in text


# ---- the explain warning on zero-gamma residual nets --------------------------------------------
RESNET_TINY = """net tiny {
  input image: 3x32x32
  image -> conv(8, 3, stride=2, pad=1) as stem -> bn -> relu
        -> residual(conv(16, 3, stride=2, pad=1) -> bn -> relu -> conv(16, 3, pad=1) -> bn,
                    shortcut=project) as block -> relu as out
}
"""


def test_the_warning_says_only_the_shortcuts_carry_gradient(tmp_path):
    from netc.compiler.frontend.loader import load
    from netc.runtime.views.network import random_weights_warning

    spec = tmp_path / "tiny.net"
    spec.write_text(RESNET_TINY)
    graph = load(str(spec))
    text = random_weights_warning(graph, gradients=True)
    assert "gamma = 0 (zero-init residual)" in text
    assert "only the shortcuts carry gradient to the image" in text
    assert "a grid of dots, 7x7 for resnet50_v1_5's fc at 224x224" in text
    assert "shortcuts carry gradient" not in random_weights_warning(graph, gradients=False)
    assert "gamma" not in random_weights_warning(load("lenet5"), gradients=True)


def test_what_the_warning_says_is_what_the_map_shows(tmp_path):
    """With the seeded (zero-γ) weights the saliency map of a unit after the block is what the
    shortcut alone sends back: the body contributes nothing."""
    from netc.compiler.frontend.loader import load
    from netc.runtime.views.attribution import attribute
    from netc.runtime.views.network import build_view_network

    spec = tmp_path / "tiny.net"
    spec.write_text(RESNET_TINY)
    graph = load(str(spec))
    net = build_view_network(graph, ["out"], None, seed=0, gradients=True)
    x = np.random.default_rng(0).standard_normal((3, 32, 32)).astype(np.float32)
    full = attribute(net, x, "out", "saliency")
    assert np.abs(full.map).sum() > 0
    # The map is zero wherever the stride-2 shortcut of a stride-2 stem reads no pixel's
    # neighbourhood: every 4th pixel's 3x3 window only.
    mask = np.zeros((32, 32), bool)
    for i in range(0, 32, 4):
        for j in range(0, 32, 4):
            mask[max(i - 1, 0):i + 2, max(j - 1, 0):j + 2] = True
    assert np.abs(full.map[:, ~mask]).max() == 0
