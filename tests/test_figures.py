"""The README's seed- and split-dependent figures: each is printed by a command, with its spread
(tests/test_readme_figures.py checks that the README states it so, with the command).

The eigenfaces numbers are checked against an independent numpy/scikit-learn reimplementation
(unitnorm, PCA by SVD, distance from face space, ROC AUC) on the same random splits.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _faces():
    from skimage import data

    return data.lfw_subset().reshape(200, -1).astype(np.float64)


def _distance(fit: np.ndarray, x: np.ndarray, k: int, normalize: bool) -> np.ndarray:
    def prep(a):
        if not normalize:
            return a
        a = a - a.mean(1, keepdims=True)
        return a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-8)

    fit, x = prep(fit), prep(x)
    mu = fit.mean(0)
    w = np.linalg.svd(fit - mu, full_matrices=False)[2][:k]
    c = x - mu
    return np.linalg.norm(c - (c @ w.T) @ w, axis=1)


def _auc_over_splits(splits: int, seed: int, k: int = 5, normalize: bool = True) -> list[float]:
    from sklearn.metrics import roc_auc_score

    x = _faces()
    aucs = []
    for i in range(splits):
        order = np.random.default_rng(seed + i).permutation(100)
        faces = _distance(x[order[:80]], x[order[80:]], k, normalize)
        others = _distance(x[order[:80]], x[100:], k, normalize)
        aucs.append(roc_auc_score(np.r_[np.zeros(20), np.ones(100)], np.r_[faces, others]))
    return aucs


def test_detect_over_splits_matches_a_numpy_reimplementation(cli):
    r = cli("eigenfaces", "detect", "--splits", "4", "--seed", "7")
    assert r.code == 0, r.err
    ref = _auc_over_splits(4, 7)
    line = re.search(r"ROC AUC (\S+) ± (\S+) \(mean ± sd over 4 random 80/20 splits", r.out)
    assert line, r.out
    assert float(line.group(1)) == pytest.approx(np.mean(ref), abs=6e-4)
    assert float(line.group(2)) == pytest.approx(np.std(ref, ddof=1), abs=6e-4)
    fixed = float(re.search(r"ROC AUC (\S+) \(the fixed split", r.out).group(1))
    assert fixed == pytest.approx(0.963, abs=6e-4)


def test_detect_threshold_is_set_without_the_test_faces(cli, tmp_path):
    """The threshold ``detect --images`` uses comes from out-of-fold distances of the fitted
    faces and non-faces 100-149; faces 80-99 and non-faces 150-199 only score it."""
    from PIL import Image
    from sklearn.metrics import roc_curve

    x = _faces()
    oof = np.empty(80)
    for held in np.array_split(np.arange(80), 5):
        kept = np.setdiff1d(np.arange(80), held)
        oof[held] = _distance(x[kept], x[held], 5, True)
    others = _distance(x[:80], x[100:150], 5, True)
    fpr, tpr, thr = roc_curve(np.r_[np.zeros(80), np.ones(50)], np.r_[oof, others])
    expected = thr[int(np.argmin(np.abs(fpr - (1 - tpr))))]
    face = tmp_path / "face.png"
    Image.fromarray((x[90].reshape(25, 25) * 255).round().astype(np.uint8)).save(face)
    r = cli("eigenfaces", "detect", "--images", face)
    assert r.code == 0, r.err
    found = float(re.search(r"^threshold (\S+): equal error between faces 0-79", r.out,
                            re.M).group(1))
    assert found == pytest.approx(expected, abs=2e-4)
    accept = float(re.search(r"on faces 80-99 it accepts (\d+)%", r.out).group(1))
    assert accept == pytest.approx(100 * np.mean(_distance(x[:80], x[80:100], 5, True)
                                                 < expected), abs=0.5)
    assert re.search(rf"face.png: distance \S+: a face \(threshold {found:.4f}\)", r.out)


def test_identify_over_seeds_prints_mean_and_sd(cli):
    one = [cli("eigenfaces", "identify", "--seed", str(s)).out for s in (3, 4)]
    both = cli("eigenfaces", "identify", "--seed", "3", "--seeds", "2").out
    codes = [float(re.search(r"code names (\S+)%", o).group(1)) for o in one]
    m = re.search(r"code names (\S+) ± (\S+)% of 100 probes.*over 2 seeds from 3", both)
    assert m, both
    assert float(m.group(1)) == pytest.approx(np.mean(codes), abs=0.051)
    assert float(m.group(2)) == pytest.approx(np.std(codes, ddof=1), abs=0.051)


def test_embed_seeds_prints_the_spread(cli, tmp_path):
    r = cli("embed", "lenet5", "--images", "digits:60", "--layer", "output", "--seeds", "2",
            "-o", tmp_path / "t.png")
    assert r.code == 0, r.err
    assert re.search(r"5-NN accuracy of the 2-D points \S+ \(over seeds 0-1: \S+ ± \S+", r.out)


def test_figures_script_runs_small():
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "figures.py"), "--quick"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr + done.stdout
    assert "AUC, k=5, unitnorm" in done.stdout and "t-SNE 5-NN, random weights" in done.stdout
    assert done.stdout.count("±") >= 4
