"""The lecture's three uses of eigenfaces, measured on scikit-image's lfw_subset (faces 0-79 fit
the face space; faces 80-99 and the non-faces 100-199 are never seen by the fit).

Measured when these tests were written (the thresholds leave a margin, the runs are
deterministic): is it a face — ROC AUC 0.963 with unitnorm, 0.511 on raw pixels (k=5); who is
it — 88% of shifted, noisy copies named by the nearest raw-pixel face-space code with k=20,
against 76% for the nearest raw image; occluded eyes — hidden-pixel RMSE 0.1243 from face space
against 0.1518 for the mean face (k=5)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from netc.compiler.frontend.loader import load
from netc.runtime import eigenfaces as ef

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def fitted(**overrides):
    graph = load("eigenfaces", overrides)
    return graph, ef.fitted_weights(graph, log=lambda line: None)


def test_is_it_a_face_needs_the_per_image_normalisation():
    d = ef.detect(*fitted())
    assert d.auc >= 0.94, d.auc
    assert d.face_distances.mean() < d.other_distances.mean()
    raw = ef.detect(*fitted(normalize=False))
    assert raw.auc <= 0.65, raw.auc  # brightness and contrast swamp the distance


def test_who_is_it_by_the_nearest_face_space_code():
    code, raw = ef.identify(*fitted(k=20, normalize=False))
    assert code >= 0.8, code       # 20 people: chance is 5%
    assert code > raw, (code, raw)


def test_an_occluded_face_is_reconstructed_from_the_eigenfaces(tmp_path, cli):
    graph, weights = fitted(normalize=False)
    faces = ef.lfw_rows("0-99")[ef.HELD_OUT]
    r = ef.reconstruct(graph, weights, faces, ef.eyes_mask())
    assert r.rank == 5
    assert r.rmse <= 0.13 and r.rmse <= 0.87 * r.mean_face_rmse, (r.rmse, r.mean_face_rmse)
    visible = ef.eyes_mask().ravel()
    np.testing.assert_array_equal(r.reconstructed.reshape(20, -1)[:, visible],
                                  faces.reshape(20, -1)[:, visible])
    # the command writes the Figure 13 picture: occluded / reconstructed / original
    out = tmp_path / "fig13.png"
    res = cli("eigenfaces", "reconstruct", "--set", "normalize=false", "-o", str(out))
    assert res.code == 0, res.err
    assert f"hidden-pixel RMSE {r.rmse:.4f}" in res.out
    with Image.open(out) as img:
        assert img.size == ((25 + 2) * 6 * 4 - 8, (25 + 2) * 3 * 4 - 8)


def test_occlusion_refuses_a_normalised_face_space(cli, tmp_path):
    res = cli("eigenfaces", "reconstruct", "-o", str(tmp_path / "x.png"))
    assert res.code == 1 and "normalize=false" in res.err
    assert not (tmp_path / "x.png").exists()


def test_the_commands_print_what_they_measured(cli, tmp_path):
    res = cli("eigenfaces", "detect")
    assert res.code == 0 and "ROC AUC 0.963" in res.out, res.out
    res = cli("eigenfaces", "show", "-o", str(tmp_path / "e.png"), "--set", "k=4")
    assert res.code == 0 and "the mean face and 4 eigenfaces" in res.out


def test_a_face_space_fitted_from_a_folder_of_images(tmp_path, cli):
    folder = tmp_path / "faces"
    folder.mkdir()
    for i, face in enumerate(ef.lfw_rows(ef.FIT_ROWS)):
        Image.fromarray((face * 255).round().astype(np.uint8)).save(folder / f"{i:03d}.png")
    out = tmp_path / "faces.safetensors"
    r = cli("fit", "eigenfaces", "--data", f"folder:{folder}", "-o", str(out))
    assert r.code == 0 and "80 images" in r.out, r.err
    from netc.runtime.weights import load_weights

    graph = load("eigenfaces")
    d = ef.detect(graph, load_weights(graph, out))
    assert abs(d.auc - ef.detect(*fitted()).auc) < 0.01  # 8-bit PNGs: nearly the same fit


def test_detect_scores_image_files_against_the_threshold(tmp_path, cli):
    rows = ef.lfw_rows("0-199")
    paths = []
    for i in (90, 150):  # a held-out face and a non-face
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray((rows[i] * 255).round().astype(np.uint8)).save(paths[-1])
    res = cli("eigenfaces", "detect", "--images", *paths)
    assert res.code == 0, res.err
    d = ef.detect(*fitted())
    lines = [line for line in res.out.splitlines() if line.startswith(str(tmp_path))]
    assert len(lines) == 2
    # the file's distance is the net's on the same (8-bit) pixels
    near = d.face_distances[90 - 80]
    got = float(lines[0].split("distance ")[1].split(":")[0])
    assert abs(got - near) < 0.01, (got, near)
    verdicts = [line.rsplit(": ", 1)[1].split(" (")[0] for line in lines]
    want = ["a face" if near < d.threshold else "not a face",
            "a face" if d.other_distances[50] < d.threshold else "not a face"]
    assert verdicts == want


def test_weights_fitted_for_another_net_are_refused(tmp_path, cli):
    weights = tmp_path / "faces.safetensors"
    assert cli("fit", "eigenfaces", "--data", "lfw:0-79", "-o", str(weights)).code == 0
    out = tmp_path / "x.png"
    res = cli("eigenfaces", "reconstruct", "--set", "normalize=false", "--weights", str(weights),
              "-o", str(out))
    assert res.code == 1 and "fitted for another net (prepared=unitnorm)" in res.err, res.err
    assert not out.exists()
    res = cli("eigenfaces", "detect", "--weights", str(weights))
    assert res.code == 0 and "ROC AUC 0.963" in res.out
