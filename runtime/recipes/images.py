"""Images for recipes: reading files and scikit-image's bundled samples, resizing, writing PNGs.

Images travel as float32 numpy arrays ``(H, W, 3)`` with values in [0, 1] (RGB; grey images are
repeated over the three channels). Nothing is downloaded: the sample names are the pictures that
ship inside the scikit-image wheel (``skimage/data/*.png``), read with Pillow without importing
scikit-image itself.

>>> img = load_image("brick")
>>> img.shape, img.dtype, float(img.min()) >= 0.0, float(img.max()) <= 1.0
((512, 512, 3), dtype('float32'), True, True)
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from netc.dsl.diagnostics import UserError
from netc.runtime.files import atomic_path

# Sample pictures bundled in the scikit-image wheel (no pooch download needed).
SAMPLES = ("astronaut", "brick", "gravel", "grass", "coffee", "chelsea", "camera", "rocket",
           "motorcycle_left", "hubble_deep_field", "retina", "text", "moon", "page")


def _sample_dir() -> Path | None:
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def sample_path(name: str) -> Path | None:
    """The file of a bundled sample picture, or None when ``name`` is not one."""
    if name not in SAMPLES or (folder := _sample_dir()) is None:
        return None
    for ext in (".png", ".jpg"):
        if (folder / f"{name}{ext}").exists():
            return folder / f"{name}{ext}"
    return None


def resolve(ref: str) -> Path:
    """The file a recipe or flag means: an existing path, else a sample name."""
    path = Path(ref).expanduser()
    if path.exists():
        return path
    sample = sample_path(ref)
    if sample is not None:
        return sample
    raise UserError(f"cannot read image {ref!r}: no such file, and not a sample image "
                    f"(samples: {', '.join(SAMPLES)})")


def load_image(ref: str) -> np.ndarray:
    """Read a picture as float32 RGB in [0, 1]; a :class:`UserError` if it cannot be read."""
    from netc.runtime.images import read_image

    rgb = read_image(resolve(ref), "RGB")
    return np.asarray(rgb, dtype=np.float32) / 255.0


def resize(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resample to exactly ``height`` × ``width`` (Pillow's bicubic filter)."""
    from PIL import Image

    if img.shape[:2] == (height, width):
        return img
    u8 = Image.fromarray(to_uint8(img))
    return np.asarray(u8.resize((width, height), Image.Resampling.BICUBIC),
                      dtype=np.float32) / 255.0


def fit(img: np.ndarray, size: int) -> np.ndarray:
    """Scale so the longer side is ``size`` pixels, keeping the aspect ratio."""
    h, w = img.shape[:2]
    scale = size / max(h, w)
    return resize(img, max(1, round(h * scale)), max(1, round(w * scale)))


def cover(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """Scale to cover ``height`` × ``width``, then crop the centre (for style images)."""
    h, w = img.shape[:2]
    scale = max(height / h, width / w)
    big = resize(img, max(height, round(h * scale)), max(width, round(w * scale)))
    top, left = (big.shape[0] - height) // 2, (big.shape[1] - width) // 2
    return big[top:top + height, left:left + width]


def to_uint8(img: np.ndarray) -> np.ndarray:
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def save_png(path: str | Path, img: np.ndarray) -> None:
    """Write ``img`` (values clipped to [0, 1]) as a PNG, atomically: all or nothing."""
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(to_uint8(img)).save(tmp, format="PNG")
