"""Pillow helpers the views share: maps as colours, labelled tiles, atomic PNGs, a progress bar."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import numpy as np

from netc.runtime.files import atomic_path


def font(size: int = 11):
    """Pillow's bundled scalable font (no system fonts needed)."""
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def to_image(a: np.ndarray):
    """A uint8 H×W×3 (or H×W) array as a PIL image."""
    from PIL import Image

    return Image.fromarray(np.ascontiguousarray(a))


def attribution_rgb(a: np.ndarray) -> np.ndarray:
    """A C×H×W attribution as a picture: each channel scaled by the largest magnitude, 0 at grey.

    This is how Zeiler–Fergus and Springenberg et al. show reconstructions: the signal itself,
    mid-grey where it is zero. The scale is the 99.5th percentile of |a| (a few extreme pixels
    would otherwise leave the rest grey), larger values are clipped.
    """
    m = _robust_max(np.abs(a))
    x = 0.5 + 0.5 * a / m
    x = np.repeat(x, 3, axis=0) if x.shape[0] == 1 else x[:3]
    return (np.clip(x.transpose(1, 2, 0), 0, 1) * 255 + 0.5).astype(np.uint8)


def _robust_max(a: np.ndarray) -> float:
    m = float(np.percentile(a, 99.5))
    return m if m > 0 else (float(a.max()) or 1.0)


def heat_rgb(a: np.ndarray) -> np.ndarray:
    """max_c |a| as a black–red–yellow–white heat map (H×W×3 uint8)."""
    h = np.abs(a).max(axis=0)
    h = np.clip(h / _robust_max(h), 0, 1)
    r = np.clip(3 * h, 0, 1)
    g = np.clip(3 * h - 1, 0, 1)
    b = np.clip(3 * h - 2, 0, 1)
    return (np.stack([r, g, b], -1) * 255 + 0.5).astype(np.uint8)


def fit_tile(a: np.ndarray, size: int):
    """A picture scaled (nearest for small ones, so pixels stay visible) into size×size."""
    from PIL import Image

    img = to_image(a)
    scale = size / max(img.width, img.height)
    new = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    return img.resize(new, Image.NEAREST if scale >= 2 else Image.BILINEAR)


def labelled_grid(cells, cols: int, size: int, captions=None, row_titles=None,
                  title: str | None = None, gap: int = 4):
    """Tiles (uint8 arrays, or None for an empty cell) on a grid with small captions.

    ``captions[i]`` goes under tile i, ``row_titles[r]`` left of row r, ``title`` on top.
    """
    from PIL import Image, ImageDraw

    rows = max(1, -(-len(cells) // cols))
    f = font(max(9, min(13, size // 6)))
    cap_h = (f.size + 3) if captions else 0
    left = (max(f.getlength(t) for t in row_titles) + 8) if row_titles else 0
    top = (f.size + 10) if title else 0
    w = int(left + cols * (size + gap) + gap)
    h = int(top + rows * (size + cap_h + gap) + gap)
    sheet = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((gap, 4), title, fill="black", font=f)
    for i, cell in enumerate(cells):
        r, c = divmod(i, cols)
        x = int(left + gap + c * (size + gap))
        y = int(top + gap + r * (size + cap_h + gap))
        if cell is not None:
            tile = fit_tile(cell, size)
            sheet.paste(tile, (x + (size - tile.width) // 2, y + (size - tile.height) // 2))
        if captions and captions[i]:
            text = _shorten(captions[i], f, size)
            draw.text((x, y + size + 1), text, fill="black", font=f)
    if row_titles:
        for r, t in enumerate(row_titles):
            y = top + gap + r * (size + cap_h + gap) + size // 2 - f.size // 2
            draw.text((gap, y), t, fill="black", font=f)
    return sheet


def _shorten(text: str, f, width: int) -> str:
    if f.getlength(text) <= width:
        return text
    while text and f.getlength(text + "…") > width:
        text = text[:-1]
    return text + "…"


def save_png(path: str | Path, image) -> None:
    """Write a PIL image as PNG, atomically (all or nothing)."""
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG", optimize=True)


@contextlib.contextmanager
def progress(description: str, total: int):
    """A rich progress bar on stderr (when it is a terminal); yields ``advance(n)``."""
    if not sys.stderr.isatty():
        yield lambda n=1: None
        return
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeRemainingColumn)

    with Progress(TextColumn(description), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)
