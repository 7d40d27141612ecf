"""Where the views' images come from, read a batch at a time so memory stays bounded.

``--images`` names one of:

- a folder: every image file under it (sorted); when the images sit in sub-folders, the first
  sub-folder is the image's class (``DIR/cat/1.jpg`` is a ``cat``);
- ``digits`` or ``digits:N``: scikit-learn's bundled 8×8 handwritten digits (the first N of
  1,797), labelled 0–9;
- ``samples``: the pictures that ship inside scikit-image (astronaut, coffee, chelsea, ...).

Nothing is downloaded. A file whose suffix says image but which Pillow cannot read is a one-line
error naming it; files with other suffixes are skipped (and counted in the "no images" error).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from netc.dsl.diagnostics import UserError
from netc.runtime.data import IMAGE_SUFFIXES
from netc.runtime.images import Preprocess, prepare


@dataclass(frozen=True)
class Item:
    """One image: a display name, its class (None without class folders), and where it is."""

    name: str
    label: str | None
    path: Path | None = None
    pixels: np.ndarray | None = None  # uint8 H×W (digits) when there is no file

    def open(self):
        """The picture as a PIL image (RGB, or L for a grey one), read only if it is a regular
        image file (:func:`netc.runtime.images.read_image`): a FIFO named ``x.png`` would
        block Pillow's reader forever, a header claiming 100k x 100k pixels is a bomb."""
        from PIL import Image

        from netc.runtime.images import read_image

        if self.pixels is not None:
            return Image.fromarray(self.pixels)
        return read_image(self.path)


@dataclass(frozen=True)
class Source:
    """A list of images (not yet read) and their classes, if any."""

    name: str
    items: tuple[Item, ...]

    @property
    def classes(self) -> list[str] | None:
        labels = {i.label for i in self.items}
        if None in labels or len(labels) < 2:
            return None
        return sorted(labels, key=_natural)


def _natural(s: str):
    return (0, int(s), "") if s.isdigit() else (1, 0, s)


def open_source(ref: str, flag: str = "--images") -> Source:
    """The images ``ref`` names (see the module docstring); a one-line error when there are
    none, begun by ``flag``, the option that named them."""
    kind, _, arg = ref.partition(":")
    if kind == "digits" and not Path(ref).exists():
        return _digits(ref, arg, flag)
    if ref == "samples" and not Path(ref).exists():
        return _samples(flag)
    root = Path(ref).expanduser()
    if not root.exists():
        raise UserError(f"{flag} {ref}: no such folder (or use digits, digits:N or samples)")
    if not root.is_dir():
        raise UserError(f"{flag} {ref}: not a folder")
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    if not images:
        other = f" ({len(files)} other file{'s' * (len(files) != 1)} skipped)" if files else ""
        raise UserError(f"{flag} {ref}: no images found{other}; looked for "
                        f"{', '.join(sorted(IMAGE_SUFFIXES))}")
    items = []
    for p in images:
        rel = p.relative_to(root)
        label = rel.parts[0] if len(rel.parts) > 1 else None
        items.append(Item(str(rel), label, path=p))
    return Source(str(root), tuple(items))


def _digits(ref: str, arg: str, flag: str) -> Source:
    from sklearn.datasets import load_digits

    digits = load_digits()
    n = len(digits.target)
    if arg:
        try:
            n = int(arg)
        except ValueError:
            raise UserError(f"{flag} {ref}: expected digits or digits:N") from None
        if not 1 <= n <= len(digits.target):
            raise UserError(f"{flag} {ref}: N must be 1..{len(digits.target)}")
    pixels = np.round(digits.images[:n] * (255.0 / 16.0)).astype(np.uint8)
    return Source("digits", tuple(Item(f"digit {i}", str(digits.target[i]), pixels=pixels[i])
                                  for i in range(n)))


def _samples(flag: str) -> Source:
    from netc.runtime.recipes.images import SAMPLES, sample_path

    items = tuple(Item(name, None, path=path) for name in SAMPLES
                  if (path := sample_path(name)) is not None)
    if not items:
        raise UserError(f"{flag} samples: scikit-image's sample pictures are not installed")
    return Source("samples", items)


def display_and_input(img, prep: Preprocess) -> tuple[np.ndarray, np.ndarray]:
    """The picture as the net sees it: (uint8 H×W×3 for showing, float32 C×H×W input)."""
    x = prepare(img, prep)
    shown = Preprocess((3, *prep.shape[1:]), crop=prep.crop)
    rgb = prepare(img.convert("RGB"), shown).transpose(1, 2, 0)
    return (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8), x


def batches(items, prep: Preprocess, size: int = 32
            ) -> Iterator[tuple[list[Item], np.ndarray, np.ndarray]]:
    """(items, uint8 N×H×W×3 pictures, float32 N×C×H×W inputs), ``size`` images at a time."""
    for start in range(0, len(items), size):
        chunk = list(items[start:start + size])
        pairs = [display_and_input(item.open(), prep) for item in chunk]
        yield chunk, np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
