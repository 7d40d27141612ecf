"""The lecture's uses of eigenfaces (Turk & Pentland 1991), on a fitted eigenfaces net.

All three work on scikit-image's ``lfw_subset`` (200 images of 25×25: rows 0–99 faces, 100–199
not), which ships offline. The face space is fitted on faces 0–79 (:data:`FIT_ROWS`); faces
80–99 are held out, so every number is measured on faces the fit never saw.

- :func:`detect` — *is it a face*: the net's ``pca_distance`` output (distance from face space)
  for held-out faces and for the non-faces, and the ROC AUC of that score;
- :func:`identify` — *who is it*: the held-out faces are the known people (their face-space
  codes are the gallery); probes are copies shifted by a pixel or two with added noise, and
  each is named by the nearest gallery code (there is no many-images-per-person set offline);
- :func:`reconstruct` — *reconstruct an occluded face*: the code that best explains the visible
  pixels, ``min_y ‖M(μ + Wᵀy) − Mx‖`` (least squares with the pseudoinverse), then μ + Wᵀy fills
  the hidden ones; compared with the mean face on the hidden pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from netc.compiler.numerics.fitting import pinv_solve
from netc.compiler.ir import Graph
from netc.dsl.diagnostics import UserError
from netc.runtime.fit import Images, fit_graph, lfw_rows

FIT_ROWS = "0-79"
HELD_OUT = slice(80, 100)
NON_FACES = slice(100, 200)
EYES = (slice(7, 13), slice(3, 22))  # rows 7-12, columns 3-21 of a 25x25 face


def fitted_weights(graph: Graph, weights=None, log=print) -> dict[str, np.ndarray]:
    """``weights``, or the net's seeded weights with its fitted layers solved on faces 0–79."""
    if weights is not None:
        return weights
    from netc.compiler.numerics.seeded_weights import init_weights

    rows = lfw_rows(FIT_ROWS)
    images = Images(f"lfw_subset {FIT_ROWS}", torch.from_numpy(rows[:, None] * 255.0))
    return fit_graph(graph, init_weights(graph), images, log=log)


def _node(graph: Graph, op: str) -> str:
    names = [n.name for n in graph if n.op == op]
    if len(names) != 1:
        raise UserError(f"{graph.name} needs exactly one {op} layer for this; it has "
                        f"{len(names)}")
    return names[0]


def run_net(graph: Graph, weights, images: np.ndarray, layer: str) -> np.ndarray:
    """The net's ``layer`` for images in [0, 1] (n×25×25), through the torch module."""
    from netc.compiler.lower_torch.module import build_module
    from netc.runtime.data import make_batch

    module = build_module(graph, weights).eval()
    spec = next(iter(graph.inputs.values()))
    x = make_batch(torch.from_numpy(images[:, None] * 255.0), spec)
    with torch.no_grad():
        return module(x, taps=[layer])[layer].double().numpy()


@dataclass(frozen=True)
class Detection:
    """Distances from face space of the held-out faces and of the non-faces, their ROC AUC."""

    face_distances: np.ndarray
    other_distances: np.ndarray
    auc: float
    threshold: float  # the distance at the equal-error point of the ROC curve


def detect(graph: Graph, weights) -> Detection:
    """Distance from face space of held-out faces vs non-faces, and its ROC AUC."""
    from sklearn.metrics import roc_auc_score, roc_curve

    layer = _node(graph, "pca_distance")
    images = lfw_rows("0-199")
    faces = run_net(graph, weights, images[HELD_OUT], layer)[:, 0]
    others = run_net(graph, weights, images[NON_FACES], layer)[:, 0]
    score = np.r_[faces, others]
    label = np.r_[np.zeros(len(faces)), np.ones(len(others))]
    fpr, tpr, thr = roc_curve(label, score)
    eer = int(np.argmin(np.abs(fpr - (1 - tpr))))
    return Detection(faces, others, float(roc_auc_score(label, score)), float(thr[eer]))


def projections(graph: Graph, weights, rows=(80, 81, 82, 100, 101, 102)):
    """Images (3 held-out faces, 3 non-faces), their projections onto face space (each
    stretched to [0, 1] for a picture) and their distances from face space."""
    images = lfw_rows("0-199")[list(rows)]
    proj = run_net(graph, weights, images, _node(graph, "pca_reconstruct"))
    dist = run_net(graph, weights, images, _node(graph, "pca_distance"))[:, 0]
    side = images.shape[1]
    stretched = [(p - p.min()) / (np.ptp(p) or 1.0) for p in proj.reshape(-1, side, side)]
    return list(images), stretched, dist


def score_files(graph: Graph, weights, paths) -> np.ndarray:
    """Distance from face space of image files (grey, resized to the input straight, with
    no crop: a face should fill the picture as lfw_subset's do)."""
    from netc.compiler.lower_torch.module import build_module
    from netc.runtime.images import Preprocess, load_batch

    layer = _node(graph, "pca_distance")
    x = load_batch(list(paths), Preprocess.from_spec(next(iter(graph.inputs.values())), 1.0))
    module = build_module(graph, weights).eval()
    with torch.no_grad():
        return module(torch.from_numpy(x), taps=[layer])[layer][:, 0].double().numpy()


def shifted_copies(faces: np.ndarray, copies: int, noise: float, seed: int = 0):
    """Each face ``copies`` times, shifted by up to 2 pixels (edges repeated) plus Gaussian
    noise of std ``noise``, clipped to [0, 1]; returns (images, identity of each)."""
    rng = np.random.default_rng(seed)
    out, who = [], []
    for i, face in enumerate(faces):
        for _ in range(copies):
            dy, dx = rng.integers(-2, 3, size=2)
            moved = np.roll(np.pad(face, 2, mode="edge"), (dy, dx), axis=(0, 1))[2:-2, 2:-2]
            out.append(np.clip(moved + rng.normal(0, noise, face.shape), 0, 1))
            who.append(i)
    return np.stack(out), np.array(who)


def identify(graph: Graph, weights, copies: int = 5, noise: float = 0.05,
             seed: int = 0) -> tuple[float, float]:
    """(accuracy by nearest face-space code, accuracy by nearest raw image) on shifted, noisy
    copies of the 20 held-out faces."""
    layer = _node(graph, "pca")
    gallery = lfw_rows("0-99")[HELD_OUT]
    probes, who = shifted_copies(gallery, copies, noise, seed)
    g = run_net(graph, weights, gallery, layer)
    p = run_net(graph, weights, probes, layer)
    nearest = np.argmin(((p[:, None] - g[None]) ** 2).sum(-1), axis=1)
    raw = np.argmin(((probes.reshape(len(probes), 1, -1) - gallery.reshape(1, len(gallery), -1))
                     ** 2).sum(-1), axis=1)
    return float(np.mean(nearest == who)), float(np.mean(raw == who))


@dataclass(frozen=True)
class Reconstruction:
    """Occluded faces filled from face space, and the hidden-pixel errors."""

    occluded: np.ndarray        # n×25×25, hidden pixels set to 0
    reconstructed: np.ndarray   # n×25×25: visible pixels kept, hidden ones from face space
    rmse: float                 # on the hidden pixels, over all images
    mean_face_rmse: float       # the mean face's, on the same pixels
    rank: int


def _raw_face_space(graph: Graph, weights) -> tuple[np.ndarray, np.ndarray]:
    name = _node(graph, "pca")
    up = graph.slice([name])
    if any(n.op == "unitnorm" for n in up):
        raise UserError(f"{graph.name}: occlusion needs a face space on raw pixels (unitnorm "
                        "depends on the hidden pixels too); set normalize=false, e.g. "
                        "--set normalize=false")
    return np.asarray(weights[f"{name}.mean"], np.float64), \
        np.asarray(weights[f"{name}.components"], np.float64)


def reconstruct(graph: Graph, weights, faces: np.ndarray, mask: np.ndarray) -> Reconstruction:
    """Fill the pixels where ``mask`` is False from the face space (module docstring)."""
    mean, comps = _raw_face_space(graph, weights)
    vis = mask.ravel()
    if vis.all() or not vis.any():
        raise UserError("the occlusion mask must hide some pixels and show some")
    x = faces.reshape(len(faces), -1)
    sol = pinv_solve(comps[:, vis].T, (x - mean)[:, vis].T)
    rec = mean + sol.x.T @ comps
    filled = np.where(vis, x, rec)
    hidden = ~vis
    rmse = float(np.sqrt(np.mean((rec - x)[:, hidden] ** 2)))
    base = float(np.sqrt(np.mean((mean - x)[:, hidden] ** 2)))
    occluded = np.where(vis, x, 0.0)
    shape = (len(faces), *faces.shape[1:])
    return Reconstruction(occluded.reshape(shape), filled.reshape(shape), rmse, base, sol.rank)


def eyes_mask(shape=(25, 25)) -> np.ndarray:
    """Visible pixels (True) of a face with a band across the eyes hidden."""
    mask = np.ones(shape, bool)
    mask[EYES] = False
    return mask


def write_panel(path: str | Path, rows: list[list[np.ndarray]], scale: int = 4) -> None:
    """A grid of grey images in [0, 1] (each row a list), enlarged ``scale`` times, as a PNG
    written atomically (the lecture's Figure 13 is one row: occluded | reconstructed)."""
    from PIL import Image

    from netc.runtime.files import atomic_path

    gap = 2
    h, w = rows[0][0].shape
    cols = max(len(r) for r in rows)
    canvas = np.ones((len(rows) * (h + gap) - gap, cols * (w + gap) - gap))
    for i, row in enumerate(rows):
        for j, img in enumerate(row):
            canvas[i * (h + gap):i * (h + gap) + h, j * (w + gap):j * (w + gap) + w] = img
    pixels = (np.clip(canvas, 0, 1) * 255).round().astype(np.uint8)
    image = Image.fromarray(pixels).resize((pixels.shape[1] * scale, pixels.shape[0] * scale),
                                           Image.NEAREST)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")


def eigenface_images(graph: Graph, weights) -> list[np.ndarray]:
    """The mean face and the eigenfaces, each stretched to [0, 1], for a picture."""
    name = _node(graph, "pca")
    side = int(round(np.sqrt(weights[f"{name}.mean"].size)))
    out = []
    for v in [weights[f"{name}.mean"], *weights[f"{name}.components"]]:
        v = np.asarray(v, np.float64).reshape(side, side)
        out.append((v - v.min()) / (np.ptp(v) or 1.0))
    return out
