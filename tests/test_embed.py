"""``netc embed``: t-SNE of CNN codes, the image grid (an assignment problem) and the scatter."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from netc.dsl.diagnostics import UserError
from netc.runtime.cli import main
from netc.runtime.views import tsne

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_grid_assignment_puts_every_image_once():
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(37, 2))
    rows, cols = tsne.grid_shape(37)
    assert rows * cols >= 37 and (rows, cols) == (6, 7)
    cells = tsne.assign_to_grid(pts, rows, cols)
    assert len(set(cells.tolist())) == 37 and cells.min() >= 0 and cells.max() < rows * cols


def test_grid_assignment_is_optimal_on_a_shuffled_grid():
    """Points that already form the grid (shuffled, stretched) go back to their own cells;
    a greedy nearest-free-cell rule would not guarantee that, the assignment does."""
    rows, cols = 5, 8
    gy, gx = np.mgrid[0:rows, 0:cols]
    pts = np.stack([gx.ravel() * 3.0 + 10, gy.ravel() * 0.5 - 4], 1)
    order = np.random.default_rng(1).permutation(rows * cols)
    cells = tsne.assign_to_grid(pts[order], rows, cols)
    np.testing.assert_array_equal(cells, order)


@pytest.mark.parametrize("n, perplexity, ok", [(100, 30, True), (12, 11, True), (12, 12, False),
                                               (12, 30, False), (4, 1, False), (50, 0, False)])
def test_perplexity_is_checked_against_the_number_of_images(n, perplexity, ok):
    if ok:
        tsne.check_perplexity(perplexity, n)
        return
    with pytest.raises(UserError) as err:
        tsne.check_perplexity(perplexity, n)
    assert str(n) in str(err.value)


def test_default_perplexity_fits_small_folders():
    assert tsne.default_perplexity(1000) == 30
    assert tsne.default_perplexity(13) == 4.0
    pts = tsne.embed(np.random.default_rng(0).normal(size=(13, 20)), tsne.default_perplexity(13))
    assert pts.shape == (13, 2)


@pytest.fixture(scope="module")
def lenet_weights(tmp_path_factory):
    """LeNet-5 trained on scikit-learn's digits as the README does (95% held out, seconds)."""
    folder = tmp_path_factory.mktemp("lenet")
    out = folder / "lenet5.safetensors"
    code = main(["train", "lenet5", "--data", "digits", "--optimizer", "adam", "--lr", "0.003",
                 "--epochs", "8", "--no-progress", "--threads", "1", "-o", str(out),
                 "--checkpoint", str(folder / "lenet5.ckpt.pt")])
    assert code == 0
    return out


def _knn(path):
    doc = json.loads(path.read_text())
    pts = np.array([[p["x"], p["y"]] for p in doc["points"]])
    return doc, tsne.knn_accuracy(pts, [p["label"] for p in doc["points"]])


def test_trained_codes_separate_the_digits_and_random_ones_do_not(cli, tmp_path, lenet_weights):
    """5-NN accuracy of the 2-D t-SNE points of LeNet-5's output codes on 500 digits. Measured
    (this machine, seed 0): trained 0.97, random weights 0.84–0.87 (seeds 0, 1). The random
    net's f6 codes reach 0.98 too: digits are easy for t-SNE, so the test uses the layer where
    random weights lose the information (a random 84 → 10 projection)."""
    trained, random_ = tmp_path / "t.json", tmp_path / "r.json"
    r = cli("embed", "lenet5", "--weights", lenet_weights, "--images", "digits:500",
            "--layer", "output", "--json", trained, "-o", tmp_path / "t.png")
    assert r.code == 0, r.err
    r2 = cli("embed", "lenet5", "--images", "digits:500", "--layer", "output", "--json",
             random_, "-o", tmp_path / "r.png")
    assert r2.code == 0, r2.err
    doc, acc_trained = _knn(trained)
    _, acc_random = _knn(random_)
    print(f"5-NN accuracy: trained {acc_trained:.3f}, random {acc_random:.3f}")
    assert acc_trained >= 0.93 and acc_random <= 0.90, (acc_trained, acc_random)
    assert f"5-NN accuracy of the 2-D points {acc_trained:.3f}" in r.out
    # every image once on the grid, and the grid is what the PNG shows
    rows, cols = doc["grid"]
    cells = {(p["row"], p["col"]) for p in doc["points"]}
    assert len(doc["points"]) == len(cells) == 500
    assert all(0 <= r_ < rows and 0 <= c < cols for r_, c in cells)
    assert doc["perplexity"] == 30
    with Image.open(tmp_path / "t.png") as im:
        assert im.width >= (cols + rows) * 32  # the grid and the class scatter side by side


def test_folder_with_class_subfolders_gets_a_scatter(cli, tmp_path):
    rng = np.random.default_rng(0)
    for cls in ("cats", "dogs"):
        (tmp_path / "img" / cls).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(
                tmp_path / "img" / cls / f"{i}.jpg")
    out, js = tmp_path / "e.png", tmp_path / "e.json"
    r = cli("embed", "lenet5", "--images", tmp_path / "img", "--layer", "c5", "--json", js,
            "-o", out, "--tile", "16")
    assert r.code == 0, r.err
    doc = json.loads(js.read_text())
    assert {p["label"] for p in doc["points"]} == {"cats", "dogs"}
    assert doc["perplexity"] == pytest.approx(11 / 3)
    assert "5-NN accuracy" in r.out


@pytest.mark.parametrize("extra, n, message", [
    (["--perplexity", "12"], 12, "--perplexity 12 must be above 0 and below the number of "
                                 "images (12)"),
    ([], 3, "t-SNE needs at least 5 images; got 3"),
    (["--layer", "nope"], 12, "lenet5 has no layer named 'nope'"),
    ([], 0, "no images found"),
])
def test_bad_inputs_are_one_line(cli, tmp_path, extra, n, message):
    folder = tmp_path / "img"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8)).save(folder / f"{i}.png")
    args = ["--layer", "f6"] + extra if "--layer" not in extra else extra
    r = cli("embed", "lenet5", "--images", folder, *args, "-o", tmp_path / "o.png")
    assert r.code == 1 and message in r.err, r.err
    assert r.err.strip().splitlines()[-1].startswith("netc: error: ")
    assert not (tmp_path / "o.png").exists()
