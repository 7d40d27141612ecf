"""The eigenfaces figures over many splits and seeds, and a threshold set without the test faces.

One 80/20 split of lfw_subset's 100 faces gives one ROC AUC, and the fixed split (fit on faces
0–79, test on 80–99) happens to be a favourable one; :func:`detect_over_splits` refits the face
space on random 80-face subsets and reports the AUC's spread. :func:`identify_over_seeds` does
the same for the probes' random shifts and noise.

:func:`cross_validated_threshold` sets ``detect --images``'s threshold from data the test never
sees: the distances of faces 0–79, each measured from a face space fitted without it (k-fold),
against non-faces 100–149, at the equal-error point; the threshold is then scored on held-out
faces 80–99 and non-faces 150–199.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from netc.compiler.ir import Graph
from netc.runtime import eigenfaces as ef
from netc.runtime.fit import Images, fit_graph, lfw_rows

FACES = 100          # lfw_subset rows 0-99 are faces, 100-199 are not
FIT_SIZE = 80        # the 80/20 split of the faces, as the fixed split has
CALIBRATION = slice(100, 150)   # non-faces the threshold is set on
TEST_NON_FACES = slice(150, 200)  # ... and those it is scored on


def fit_on(graph: Graph, rows: np.ndarray, base: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The net's fitted layers solved on ``rows`` (images in [0, 1], n×25×25)."""
    images = Images(f"lfw_subset ({len(rows)} faces)", torch.from_numpy(rows[:, None] * 255.0))
    return fit_graph(graph, base, images, log=lambda line: None)


def distances(graph: Graph, weights, images: np.ndarray) -> np.ndarray:
    """Distance from face space (the net's ``pca_distance`` output) of each image."""
    return ef.run_net(graph, weights, images, ef._node(graph, "pca_distance"))[:, 0]


def _auc(faces: np.ndarray, others: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    label = np.r_[np.zeros(len(faces)), np.ones(len(others))]
    return float(roc_auc_score(label, np.r_[faces, others]))


def detect_over_splits(graph: Graph, splits: int, seed: int = 0,
                       advance: Callable[[], None] = lambda: None) -> np.ndarray:
    """ROC AUC of held-out faces vs the 100 non-faces, for ``splits`` random 80/20 splits of
    the faces (split i draws its permutation from ``seed + i``); the face space is refitted on
    each split's 80 faces."""
    from netc.compiler.numerics.seeded_weights import init_weights

    images = lfw_rows("0-199")
    base = init_weights(graph)
    aucs = []
    for i in range(splits):
        order = np.random.default_rng(seed + i).permutation(FACES)
        weights = fit_on(graph, images[order[:FIT_SIZE]], base)
        aucs.append(_auc(distances(graph, weights, images[order[FIT_SIZE:]]),
                         distances(graph, weights, images[ef.NON_FACES])))
        advance()
    return np.array(aucs)


def identify_over_seeds(graph: Graph, weights, seeds: int, copies: int, noise: float,
                        seed: int = 0) -> np.ndarray:
    """(code accuracy, raw accuracy) for probe seeds ``seed .. seed + seeds - 1``: n×2."""
    return np.array([ef.identify(graph, weights, copies, noise, seed + i) for i in range(seeds)])


@dataclass(frozen=True)
class Threshold:
    """A face/non-face threshold set on calibration data, and how it scores on test data."""

    value: float
    folds: int
    face_accuracy: float   # held-out faces 80-99 with distance below it
    other_accuracy: float  # non-faces 150-199 with distance at or above it


def _equal_error(faces: np.ndarray, others: np.ndarray) -> float:
    from sklearn.metrics import roc_curve

    label = np.r_[np.zeros(len(faces)), np.ones(len(others))]
    fpr, tpr, thr = roc_curve(label, np.r_[faces, others])
    return float(thr[int(np.argmin(np.abs(fpr - (1 - tpr))))])


def cross_validated_threshold(graph: Graph, weights, folds: int = 5) -> Threshold:
    """The equal-error threshold between out-of-fold distances of faces 0–79 (each from a face
    space refitted without its fold) and non-faces 100–149 (from ``weights``' face space),
    scored on faces 80–99 and non-faces 150–199, which neither the fit nor it has seen."""
    from netc.compiler.numerics.seeded_weights import init_weights

    images = lfw_rows("0-199")
    fit_rows = np.arange(FIT_SIZE)
    base = init_weights(graph)
    out_of_fold = np.empty(FIT_SIZE)
    for held in np.array_split(fit_rows, folds):
        kept = np.setdiff1d(fit_rows, held)
        out_of_fold[held] = distances(graph, fit_on(graph, images[kept], base), images[held])
    value = _equal_error(out_of_fold, distances(graph, weights, images[CALIBRATION]))
    faces = distances(graph, weights, images[ef.HELD_OUT])
    others = distances(graph, weights, images[TEST_NON_FACES])
    return Threshold(value, folds, float(np.mean(faces < value)),
                     float(np.mean(others >= value)))
