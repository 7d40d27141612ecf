"""Zeiler and Fergus's Fig. 2: for each unit, the images (or image patches) that excite it most.

The folder is streamed a batch at a time. Per unit a min-heap keeps the k best images seen so
far, each with its score (the unit's strongest activation over the feature map) and its
receptive-field crop (:mod:`netc.compiler.analyses.receptive`), so memory is units × k small crops
whatever
the number of images.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import numpy as np
from netc.compiler.analyses.receptive import Field


@dataclass(order=True)
class Hit:
    """One image for one unit; ordered by score (then by arrival, so ties keep the first)."""

    score: float
    order: int
    name: str = field(compare=False)
    label: str | None = field(compare=False)
    position: tuple[int, ...] = field(compare=False)
    crop: np.ndarray = field(compare=False, repr=False)


def crop(picture: np.ndarray, f: Field | None, i: int, j: int) -> np.ndarray:
    """The receptive field of unit (i, j) cut from ``picture`` (H×W×3), grey where it covers
    padding outside the image, so every crop of a layer has the same size."""
    if f is None:
        return picture
    top, left, bottom, right = f.box(i, j)
    h, w = picture.shape[:2]
    out = np.full((bottom - top, right - left, 3), 128, np.uint8)
    t, lft, b, r = max(top, 0), max(left, 0), min(bottom, h), min(right, w)
    if t < b and lft < r:
        out[t - top:b - top, lft - left:r - left] = picture[t:b, lft:r]
    return out


class TopK:
    """The k strongest images per unit, fed batch by batch with :meth:`add`."""

    def __init__(self, units: list[int], k: int, f: Field | None):
        self.units, self.k, self.field = units, k, f
        self.heaps: dict[int, list[Hit]] = {u: [] for u in units}
        self.seen = 0

    def add(self, names: list[str], pictures: np.ndarray, acts: np.ndarray,
            labels: list[str | None] | None = None) -> None:
        """``acts`` is N×C×H×W (or N×C for a flat layer) for the N ``pictures``; ``labels``
        are their classes, when they have them."""
        n = len(names)
        flat = acts.reshape(n, acts.shape[1], -1)
        for u in self.units:
            best = flat[:, u].argmax(axis=1)
            scores = flat[np.arange(n), u, best]
            heap = self.heaps[u]
            for b in range(n):
                order = -(self.seen + b)  # earlier images win ties
                if len(heap) == self.k and (scores[b], order) <= (heap[0].score, heap[0].order):
                    continue
                pos = np.unravel_index(int(best[b]), acts.shape[2:]) if acts.ndim == 4 else ()
                pos = tuple(int(p) for p in pos)
                hit = Hit(float(scores[b]), order, names[b], labels[b] if labels else None, pos,
                          crop(pictures[b], self.field, *pos) if pos else pictures[b])
                if len(heap) < self.k:
                    heapq.heappush(heap, hit)
                else:
                    heapq.heapreplace(heap, hit)
        self.seen += n

    def best(self, unit: int) -> list[Hit]:
        """The unit's hits, strongest first."""
        return sorted(self.heaps[unit], reverse=True)


def top_picture(top: TopK, title: str, size: int = 64):
    """One row per unit: its k best crops, each captioned with its score (and class)."""
    from netc.runtime.views.pictures import labelled_grid

    cells, captions = [], []
    for u in top.units:
        hits = top.best(u)
        for i in range(top.k):
            cells.append(hits[i].crop if i < len(hits) else None)
            if i < len(hits):
                label = f" [{hits[i].label}]" if hits[i].label is not None else ""
                captions.append(f"{hits[i].score:.3g}{label}")
            else:
                captions.append("")
    return labelled_grid(cells, top.k, size, captions,
                         row_titles=[f"unit {u}" for u in top.units], title=title)
