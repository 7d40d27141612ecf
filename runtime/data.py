"""Image-classification data for ``netc train``: where it comes from and how a batch is made.

Three sources, named on the command line:

- ``digits``: scikit-learn's bundled 8×8 handwritten digits (1,797 images, 10 classes; no
  download), with a fixed held-out fifth;
- ``folder:PATH``: one sub-folder per class of image files read with Pillow; ``PATH/train`` and
  ``PATH/val`` (or ``PATH/test``) are used as the split when present, else a fixed held-out
  fraction;
- ``cifar10:PATH``: the python-pickle CIFAR-10 batches (``data_batch_1..5``, ``test_batch``) a
  user has on disk, read with an unpickler that accepts only numpy arrays and plain containers.

Images are kept as uint8 ``N×C×H×W`` tensors; :func:`make_batch` turns a batch into the network's
input: pixels in [0, 1], resized to the input's size, channels matched (grey ↔ colour), the
optional augmentation (random crop with zero padding, horizontal flip), then the input's
declared ``scale``, ``layout`` and ``(x − mean) / std``.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from netc.compiler.ir import InputSpec
from netc.dsl.diagnostics import UserError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".tif", ".tiff",
                  ".webp"}


@dataclass
class Dataset:
    """A train split and a held-out split of uint8 images with integer labels."""

    name: str
    train_x: torch.Tensor  # uint8 N×C×H×W
    train_y: torch.Tensor  # int64 N
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: list[str]

    def describe(self) -> str:
        c, h, w = self.train_x.shape[1:]
        return (f"{self.name}: {len(self.train_y):,} training and {len(self.test_y):,} held-out "
                f"images of {c}x{h}x{w}, {len(self.classes)} classes")


def load_dataset(source: str, input_shape: tuple[int, ...], holdout: float = 0.2,
                 flag: str = "--data") -> Dataset:
    """The data set named by ``source`` (``digits``, ``folder:PATH``, ``cifar10:PATH``);
    ``flag``, the option that named it, begins the errors about the name."""
    kind, _, arg = source.partition(":")
    if kind == "digits" and not arg:
        return _digits(holdout)
    if kind == "folder" and arg:
        return _folder(Path(arg), input_shape, holdout, flag)
    if kind == "cifar10" and arg:
        return _cifar10(Path(arg), flag)
    raise UserError(f"{flag} {source!r}: expected digits, folder:PATH or cifar10:PATH")


def _split(x: torch.Tensor, y: torch.Tensor, holdout: float, name: str, classes) -> Dataset:
    """A fixed split (seed 0, whatever the training seed), so held-out numbers compare."""
    if not 0 < holdout < 1:
        raise UserError(f"--holdout must be between 0 and 1; got {holdout}")
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    n_test = max(1, int(round(len(y) * holdout)))
    test, train = order[:n_test], order[n_test:]
    return Dataset(name, x[train], y[train], x[test], y[test], list(classes))


def _digits(holdout: float) -> Dataset:
    from sklearn.datasets import load_digits

    digits = load_digits()
    # Pixel values are 0..16; stretch to 0..255.
    x = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    return _split(torch.from_numpy(x), torch.from_numpy(digits.target.astype(np.int64)),
                  holdout, "digits", [str(c) for c in digits.target_names])


def _folder(root: Path, input_shape, holdout: float, flag: str) -> Dataset:
    if not root.is_dir():
        raise UserError(f"{flag} folder:{root}: no such folder")
    parts = {name: root / name for name in ("train", "val", "test") if (root / name).is_dir()}
    if "train" in parts and ("val" in parts or "test" in parts):
        held = parts.get("val", parts.get("test"))
        classes = _class_names(parts["train"])
        tx, ty = _read_images(parts["train"], classes, input_shape)
        vx, vy = _read_images(held, classes, input_shape)
        return Dataset(f"folder:{root}", tx, ty, vx, vy, classes)
    classes = _class_names(root)
    x, y = _read_images(root, classes, input_shape)
    return _split(x, y, holdout, f"folder:{root}", classes)


def _class_names(root: Path) -> list[str]:
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise UserError(f"{root}: expected one sub-folder per class (at least two); "
                        f"found {len(classes)}")
    return classes


def _read_images(root: Path, classes: list[str], input_shape) -> tuple[torch.Tensor, torch.Tensor]:
    from PIL import Image

    from netc.runtime.images import read_image

    c, h, w = input_shape if len(input_shape) == 3 else (1, *input_shape, 1)
    mode = "L" if c == 1 else "RGB"
    images, labels = [], []
    for label, name in enumerate(classes):
        folder = root / name
        if not folder.is_dir():
            raise UserError(f"{root}: class {name!r} has no folder here")
        for path in sorted(folder.rglob("*")):
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            img = read_image(path, mode).resize((w, h), Image.BILINEAR)
            arr = np.asarray(img, dtype=np.uint8)
            images.append(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1))
            labels.append(label)
    if not images:
        raise UserError(f"{root}: no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    return torch.from_numpy(np.stack(images)), torch.tensor(labels, dtype=torch.int64)


def read_flat_folder(root: Path, input_shape) -> torch.Tensor:
    """The images directly in ``root`` (a folder without class folders), uint8 N×C×H×W at the
    input's size, each read by :func:`netc.runtime.images.read_image`: a FIFO named ``x.png``
    or a header claiming 100k x 100k pixels is one error naming the file, not a hang or a
    traceback. Other files are skipped."""
    from netc.runtime.images import read_image

    c, h, w = input_shape if len(input_shape) == 3 else (1, *input_shape, 1)
    images = []
    for path in sorted(root.iterdir()):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        # Pillow's default filter, as fit has always resized a flat folder.
        arr = np.asarray(read_image(path, "L" if c == 1 else "RGB").resize((w, h)), np.uint8)
        images.append(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1))
    if not images:
        raise UserError(f"{root}: no images found (looked for "
                        f"{', '.join(sorted(IMAGE_SUFFIXES))})")
    return torch.from_numpy(np.stack(images))


class _ArraysOnly(pickle.Unpickler):
    """An unpickler for CIFAR's batches: numpy arrays and plain containers, nothing else."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"), ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused to load {module}.{name}")


def _cifar10(root: Path, flag: str) -> Dataset:
    names = [f"data_batch_{i}" for i in range(1, 6)]
    if not (root / "test_batch").is_file():
        if (root / "cifar-10-batches-py" / "test_batch").is_file():
            root = root / "cifar-10-batches-py"
        else:
            raise UserError(f"{flag} cifar10:{root}: expected data_batch_1..5 and test_batch "
                            "(the python version of CIFAR-10) in that folder")
    train = [_cifar_batch(root / n) for n in names if (root / n).is_file()]
    if not train:
        raise UserError(f"{root}: no data_batch_* files")
    tx = torch.cat([b[0] for b in train])
    ty = torch.cat([b[1] for b in train])
    vx, vy = _cifar_batch(root / "test_batch")
    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
               "truck"]
    meta = root / "batches.meta"
    if meta.is_file():
        with open(meta, "rb") as f:
            info = _ArraysOnly(f, encoding="bytes").load()
        names_b = info.get(b"label_names") or info.get("label_names")
        if names_b:
            classes = [n.decode() if isinstance(n, bytes) else str(n) for n in names_b]
    return Dataset(f"cifar10:{root}", tx, ty, vx, vy, classes)


def _cifar_batch(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        with open(path, "rb") as f:
            batch = _ArraysOnly(f, encoding="bytes").load()
        data = batch.get(b"data", batch.get("data"))
        labels = batch.get(b"labels", batch.get("labels"))
        x = np.asarray(data, dtype=np.uint8).reshape(-1, 3, 32, 32)
        y = np.asarray(labels, dtype=np.int64)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ValueError,
            TypeError) as err:
        raise UserError(f"cannot read CIFAR-10 batch {path}: {err}") from None
    return torch.from_numpy(x.copy()), torch.from_numpy(y)


# ---- batches ----------------------------------------------------------------------------


def make_batch(images: torch.Tensor, spec: InputSpec, augment: bool = False) -> torch.Tensor:
    """The network input for uint8 ``images`` (see the module docstring for the steps).

    Augmentation draws from torch's global generator, so a seeded run repeats exactly.
    """
    x = images.float() / 255.0
    if len(spec.shape) == 1:  # a flat input (an MLP): the images as vectors
        if x[0].numel() != spec.shape[0]:
            raise UserError(f"the images have {x[0].numel()} values; the net's flat input "
                            f"needs {spec.shape[0]}")
        x = x.flatten(1) * spec.scale
        return x
    c, h, w = spec.shape
    if tuple(x.shape[2:]) != (h, w):
        x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False,
                          antialias=x.shape[2] > h)
    if x.shape[1] != c:
        if x.shape[1] == 1:
            x = x.expand(-1, c, -1, -1)
        elif c == 1:
            x = x.mean(dim=1, keepdim=True)
        else:
            raise UserError(f"the data has {x.shape[1]} channels; the net's input needs {c}")
    if augment:
        x = random_crop_flip(x, pad=max(1, h // 8))
    x = x * spec.scale
    if spec.layout == "bgr" and c == 3:
        x = x.flip(1)
    if spec.mean is not None:
        x = x - torch.tensor(spec.mean, dtype=x.dtype).view(1, -1, 1, 1)
    if spec.std is not None:
        x = x / torch.tensor(spec.std, dtype=x.dtype).view(1, -1, 1, 1)
    return x.contiguous()


def random_crop_flip(x: torch.Tensor, pad: int) -> torch.Tensor:
    """The standard CIFAR augmentation: zero-pad by ``pad``, crop back to size at a random
    offset per image, and flip half of the images left to right."""
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,))
    dx = torch.randint(0, 2 * pad + 1, (n,))
    flip = torch.rand(n) < 0.5
    rows = dy[:, None] + torch.arange(h)[None, :]                                 # n×h
    cols = dx[:, None] + torch.arange(w)[None, :]                                 # n×w
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    idx = torch.arange(n)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[idx, rows[:, :, None], cols[:, None, :]]  # n×h×w×c
    return out.permute(0, 3, 1, 2)
