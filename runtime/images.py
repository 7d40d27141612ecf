"""Images to network inputs, with Pillow, as the spec's ``input`` line declares.

An image becomes an input in four steps (:func:`prepare`):

1. resize so that the crop is ``crop`` of the shorter side (0.875: 256 → 224, the ImageNet
   habit; 1.0 resizes straight to the input size's aspect and crops nothing more than needed),
   with bilinear filtering;
2. cut the centre H×W out;
3. pixels in [0, 1] times ``scale`` (1 for torchvision models, 255 for Caffe ones), channels in
   ``layout`` order: rgb, bgr (Caffe) or gray (one channel);
4. (x − mean) / std per channel, where the spec (or the command line) gives them.

The result is float32 C×H×W.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from netc.dsl.diagnostics import UserError


@dataclass(frozen=True)
class Preprocess:
    """How to prepare images for one network input (from ``netc.compiler.ir.InputSpec``)."""

    shape: tuple[int, int, int]
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    scale: float = 1.0
    layout: str = "rgb"
    crop: float = 0.875

    @classmethod
    def from_spec(cls, spec, crop: float = 0.875) -> Preprocess:
        """From an ``InputSpec`` or the ``netc.inputs`` metadata dict of a compiled model."""
        get = spec.get if isinstance(spec, dict) else (lambda k: getattr(spec, k))
        shape = tuple(get("shape"))
        if len(shape) != 3:
            raise UserError(f"the model's input is not an image: its shape is {shape}")
        mean, std = get("mean"), get("std")
        layout = get("layout") or "rgb"
        if shape[0] == 1 and layout == "rgb":  # a one-channel input without a layout: grey
            layout = "gray"
        return cls(shape, tuple(mean) if mean else None, tuple(std) if std else None,
                   float(get("scale") or 1.0), layout, crop)


def load_image(path: str | Path, prep: Preprocess) -> np.ndarray:
    """One image file as a float32 C×H×W array (see the module docstring for the steps)."""
    return prepare(read_image(path, "L" if prep.layout == "gray" else "RGB"), prep)


GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")


def read_image(path: str | Path, mode: str | None = None):
    """An image file as an 8-bit Pillow image in ``mode`` (None: ``L`` for a grey picture,
    ``RGB`` for any other).

    The file is read by :func:`netc.runtime.files.open_image` (regular files only, a size cap,
    decompression bombs refused, every failure one line); here its pixels become 8-bit:
    Pillow's own conversion of a 16-bit grey image clips every value above 255, so a 16-bit
    PNG would read as a white page. CMYK, palette, alpha and bilevel images convert as Pillow
    converts them; an animation gives its first frame.
    """
    from netc.runtime.files import open_image

    img = open_image(path, None)  # decoded in its own mode (a palette made explicit)
    if mode is None:
        mode = "L" if img.mode in GREY_MODES else "RGB"
    return _eight_bit(img).convert(mode)


def _eight_bit(img):
    """``img`` with 8-bit channels: 16- and 32-bit grey scaled by their range, not clipped."""
    from PIL import Image

    if img.mode not in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        return img
    a = np.asarray(img, dtype=np.float64)
    if img.mode == "F":
        top = 1.0 if a.size and 0 <= a.min() and a.max() <= 1 else float(a.max(initial=1.0))
    elif img.mode.startswith("I;16") or a.max(initial=0) > 255:
        top = 65535.0 if a.max(initial=0) <= 65535 else float(a.max())
    else:
        top = 255.0
    a = np.nan_to_num(a / max(top, 1e-12) * 255.0 + 0.5, nan=0.0)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), "L")


def prepare(img, prep: Preprocess) -> np.ndarray:
    """A PIL image (RGB or L) as the network input described by ``prep``."""
    from PIL import Image

    c, h, w = prep.shape
    want = 1 if prep.layout == "gray" else 3
    if c != want:
        raise UserError(f"the model takes {c} channels; layout {prep.layout} gives {want}")
    if (prep.layout == "gray") != (img.mode == "L"):
        img = img.convert("L" if prep.layout == "gray" else "RGB")
    # Resize so the crop window is `crop` of the image in its tighter dimension.
    factor = max(h / (img.height * prep.crop), w / (img.width * prep.crop))
    size = (max(w, round(img.width * factor)), max(h, round(img.height * factor)))
    img = img.resize(size, Image.BILINEAR)
    left, top = (img.width - w) // 2, (img.height - h) // 2
    img = img.crop((left, top, left + w, top + h))
    x = np.asarray(img, dtype=np.float32) / 255.0 * prep.scale
    x = x[None] if x.ndim == 2 else x.transpose(2, 0, 1)
    if prep.layout == "bgr":
        x = x[::-1]
    if prep.mean is not None:
        x = x - np.asarray(prep.mean, np.float32).reshape(-1, 1, 1)
    if prep.std is not None:
        x = x / np.asarray(prep.std, np.float32).reshape(-1, 1, 1)
    return np.ascontiguousarray(x, dtype=np.float32)


def load_batch(paths: Sequence[str | Path], prep: Preprocess) -> np.ndarray:
    """Several images stacked as N×C×H×W."""
    return np.stack([load_image(p, prep) for p in paths])
