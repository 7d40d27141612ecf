"""t-SNE of CNN codes (Karpathy's "t-SNE visualization of CNN codes"): images placed by codes.

Steps: the codes of a named layer for every image (streamed in batches; a feature map is
flattened), PCA to at most 50 dimensions, t-SNE to 2-D (scikit-learn), then

- a grid on which every image appears exactly once, nearest its t-SNE point: an assignment
  problem between images and grid cells, solved exactly by scipy's ``linear_sum_assignment``
  on squared distances;
- a scatter of the points coloured by class when the images have classes (sub-folders, digits).
"""

from __future__ import annotations

import math

import numpy as np

from netc.dsl.diagnostics import UserError

MIN_IMAGES = 5


def default_perplexity(n: int) -> float:
    """30 (scikit-learn's default) where there are enough images, else (n − 1)/3, which keeps
    the 3·perplexity nearest neighbours t-SNE calibrates on inside the data set."""
    return float(min(30.0, (n - 1) / 3))


def check_perplexity(perplexity: float, n: int) -> None:
    """t-SNE needs perplexity < n (scikit-learn refuses otherwise); say so in the user's
    terms."""
    if n < MIN_IMAGES:
        raise UserError(f"--images: t-SNE needs at least {MIN_IMAGES} images; got {n}")
    if not 0 < perplexity < n:
        raise UserError(f"--perplexity {perplexity:g} must be above 0 and below the number of "
                        f"images ({n}); about (images − 1)/3 = {(n - 1) / 3:.1f} or less works")


def embed(codes: np.ndarray, perplexity: float, seed: int = 0) -> np.ndarray:
    """N×D codes → N×2 t-SNE points (after PCA to ≤ 50 dimensions)."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    n = len(codes)
    check_perplexity(perplexity, n)
    x = codes.reshape(n, -1).astype(np.float64)
    dims = min(50, n, x.shape[1])
    if x.shape[1] > dims:
        x = PCA(n_components=dims, random_state=seed).fit_transform(x)
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed,
                learning_rate="auto")
    return tsne.fit_transform(x).astype(np.float32)


def grid_shape(n: int) -> tuple[int, int]:
    """(rows, cols) of the smallest near-square grid with n cells or more."""
    cols = math.ceil(math.sqrt(n))
    return math.ceil(n / cols), cols


def assign_to_grid(points: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """For each point, its cell ``row * cols + col``; every point gets its own cell, and the
    total squared distance from points (scaled to the grid) to their cells is the least."""
    from scipy.optimize import linear_sum_assignment

    n = len(points)
    if n > rows * cols:
        raise ValueError(f"{n} points do not fit a {rows}x{cols} grid")
    lo, hi = points.min(axis=0), points.max(axis=0)
    p = (points - lo) / np.where(hi > lo, hi - lo, 1.0)
    gy, gx = np.mgrid[0:rows, 0:cols]
    cells = np.stack([(gx.ravel() + 0.5) / cols, (gy.ravel() + 0.5) / rows], axis=1)
    cost = ((p[:, None, :] - cells[None, :, :]) ** 2).sum(-1)
    point_idx, cell_idx = linear_sum_assignment(cost)
    out = np.empty(n, np.int64)
    out[point_idx] = cell_idx
    return out


def knn_accuracy(points: np.ndarray, labels: list[str], k: int = 5) -> float:
    """k-nearest-neighbour accuracy of the labels from the 2-D points, cross-validated with
    scikit-learn's stratified 10-fold split (fewer folds when a class has fewer than 10
    points): how well the picture separates the classes (1.0: every point's neighbours share
    its class)."""
    from sklearn.model_selection import cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    y = np.asarray(labels)
    folds = min(10, int(np.unique(y, return_counts=True)[1].min()))
    if folds < 2:
        return float("nan")
    return float(cross_val_score(KNeighborsClassifier(k), points, y, cv=folds).mean())


PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf"]


def grid_picture(thumbs: list[np.ndarray], cells: np.ndarray, rows: int, cols: int,
                 size: int):
    """The images at their assigned cells (a 1-pixel white margin round each)."""
    from netc.runtime.views.pictures import fit_tile, to_image

    canvas = to_image(np.full((rows * size, cols * size, 3), 255, np.uint8))
    for thumb, cell in zip(thumbs, cells):
        r, c = divmod(int(cell), cols)
        tile = fit_tile(thumb, size - 2)
        canvas.paste(tile, (c * size + (size - tile.width) // 2,
                            r * size + (size - tile.height) // 2))
    return canvas


def scatter_picture(points: np.ndarray, labels: list[str], classes: list[str], side: int):
    """The 2-D points coloured by class, each class's name at its median point."""
    from PIL import Image, ImageDraw

    from netc.runtime.views.pictures import font

    img = Image.new("RGB", (side, side), "white")
    draw = ImageDraw.Draw(img)
    lo, hi = points.min(axis=0), points.max(axis=0)
    margin = 12
    p = margin + (points - lo) / np.where(hi > lo, hi - lo, 1.0) * (side - 2 * margin)
    colour = {c: PALETTE[i % len(PALETTE)] for i, c in enumerate(classes)}
    for (x, y), lab in zip(p, labels):
        draw.ellipse((x - 2.5, y - 2.5, x + 2.5, y + 2.5), fill=colour[lab])
    f = font(16)
    lab_arr = np.asarray(labels)
    for c in classes:
        mx, my = np.median(p[lab_arr == c], axis=0)
        draw.text((mx, my), c, fill="black", font=f, anchor="mm", stroke_width=2,
                  stroke_fill="white")
    return img


def side_by_side(images, title: str):
    from PIL import Image, ImageDraw

    from netc.runtime.views.pictures import font

    f = font(13)
    top = f.size + 10
    w = sum(i.width for i in images) + 8 * (len(images) + 1)
    h = max(i.height for i in images) + top + 8
    sheet = Image.new("RGB", (w, h), "white")
    ImageDraw.Draw(sheet).text((8, 4), title, fill="black", font=f)
    x = 8
    for i in images:
        sheet.paste(i, (x, top))
        x += i.width + 8
    return sheet
