"""Calibration and held-out inputs for ``netc compile --int8``, prepared the way netc prepares.

``--calibrate DATA`` takes the forms netc's other commands take:

- ``digits``, ``folder:PATH`` (one sub-folder per class) and ``cifar10:PATH``: ``netc train``'s
  data sets (:mod:`netc.runtime.data`), through its :func:`~netc.runtime.data.make_batch`, so a
  net trained with ``netc train`` is calibrated on exactly what it saw; calibration images come
  from the training split and the fidelity check uses the held-out split;
- a folder of images (classes from sub-folders when it has them), ``digits:N`` or ``samples``:
  what ``netc embed`` reads (:mod:`netc.runtime.views.sources`), prepared as ``netc run``
  prepares an image (:mod:`netc.runtime.images`, centre crop 0.875); a fixed fifth is held out;
- an ``.npy`` file of network inputs (N×C×H×W, already preprocessed); a fixed fifth held out.

Every input is checked before anything is quantized: no images, an array of the wrong shape, an
unreadable file and a non-finite value are each one error naming the file or image.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from netc.compiler.ops.base import fmt_shape
from netc.dsl.diagnostics import UserError

DATASETS = ("digits", "folder", "cifar10")  # the --data forms of netc train (runtime/data.py)
HELD_OUT = 0.2  # the fraction held out of a source without a split of its own
BATCH = 64  # images prepared at a time


@dataclass(frozen=True)
class Calibration:
    """Network inputs (float32 N×C×H×W) to calibrate on, and others held out to check on."""

    source: str
    calibrate: np.ndarray
    held_out: np.ndarray
    labels: np.ndarray | None  # the held-out images' class indices, where the data has them

    def describe(self) -> str:
        return (f"{self.source}: {len(self.calibrate)} calibration and {len(self.held_out)} "
                f"held-out inputs of {fmt_shape(self.calibrate.shape[1:])}")


def load_calibration(ref: str, spec, count: int) -> Calibration:
    """The inputs ``--calibrate ref`` names for the net input ``spec`` (an ``InputSpec``):
    at most ``count`` to calibrate on and at most ``count`` held out."""
    if count < 1:
        raise UserError(f"--calibrate-images must be at least 1; got {count}")
    kind, sep, arg = ref.partition(":")
    if ref.lower().endswith(".npy"):
        found = _from_npy(Path(ref), spec, count)
    elif kind in DATASETS and (arg if kind != "digits" else not sep) and not Path(ref).exists():
        found = _from_dataset(ref, spec, count)
    else:
        found = _from_images(ref, spec, count)
    _check_finite(found.calibrate, f"{ref} (calibration input")
    _check_finite(found.held_out, f"{ref} (held-out input")
    return found


def _from_dataset(ref: str, spec, count: int) -> Calibration:
    """``netc train``'s data sets, through its own preprocessing (make_batch)."""
    import torch

    from netc.runtime.data import load_dataset, make_batch

    # a flat input (an MLP) takes the images as vectors
    data = load_dataset(ref, spec.shape, flag="--calibrate")

    def prepared(images: torch.Tensor) -> np.ndarray:
        parts = [make_batch(images[i:i + BATCH], spec).numpy() for i in range(0, len(images),
                                                                             BATCH)]
        return np.concatenate(parts).astype(np.float32, copy=False)

    with torch.no_grad():
        calibrate = prepared(data.train_x[:count])
        held = prepared(data.test_x[:count])
    return Calibration(data.name, calibrate, held, data.test_y[:count].numpy())


def _from_images(ref: str, spec, count: int) -> Calibration:
    """A folder of images, ``digits:N`` or ``samples``, prepared as ``netc run`` prepares."""
    from netc.runtime.images import Preprocess, prepare
    from netc.runtime.views.sources import open_source

    if len(spec.shape) != 3:
        raise UserError(f"--calibrate {ref}: images need an image input; {spec.name} has shape "
                        f"{fmt_shape(spec.shape)} (give an .npy file of inputs)")
    source = open_source(ref, "--calibrate")
    items = source.items
    _check_count(ref, len(items), "images")
    calibrate_at, held_at = _split(len(items), count)
    prep = Preprocess.from_spec(spec)
    inputs = {}
    for i in sorted(set(calibrate_at) | set(held_at)):
        x = prepare(items[i].open(), prep)
        if not np.isfinite(x).all():
            raise UserError(f"{items[i].path or ref}: {items[i].name} gives non-finite inputs "
                            "(check the spec's mean and std)")
        inputs[i] = x
    classes = source.classes
    labels = None
    if classes:  # a folder of class folders: indices in the order netc train gives them
        labels = np.array([classes.index(items[i].label) for i in held_at])
    return Calibration(source.name, np.stack([inputs[i] for i in calibrate_at]),
                       np.stack([inputs[i] for i in held_at]), labels)


def _from_npy(path: Path, spec, count: int) -> Calibration:
    """An .npy array of network inputs, N×(the input's shape), finite numbers."""
    import io

    from netc.runtime.files import read_file

    data = read_file(path, f"--calibrate {path}", limit=MAX_NPY_BYTES)
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise UserError(f"{path}: not an .npy array numpy can read ({err})") from None
    if array.dtype.kind not in "fiub":
        raise UserError(f"{path}: expected real numbers; the array holds {array.dtype}")
    want = tuple(spec.shape)
    if array.shape == want:
        array = array[None]
    if array.shape[1:] != want:
        raise UserError(f"{path}: an array of shape {fmt_shape(array.shape)}; "
                        f"{spec.name} takes Nx{fmt_shape(want)}")
    _check_count(str(path), len(array), "inputs")
    array = array.astype(np.float32)
    _check_finite(array, f"{path} (input")
    calibrate_at, held_at = _split(len(array), count)
    return Calibration(str(path), array[calibrate_at], array[held_at], None)


MAX_NPY_BYTES = 4 << 30  # an .npy of inputs larger than this is not calibration data


def _check_count(ref: str, n: int, what: str) -> None:
    if n < 2:
        raise UserError(f"--calibrate {ref}: {n} {what}; at least 2 are needed, some to "
                        "calibrate on and others held out to check the int8 model against")


def _split(n: int, count: int) -> tuple[list[int], list[int]]:
    """A fixed (seed 0) split: a fifth held out (at least one), each side at most ``count``."""
    order = np.random.default_rng(0).permutation(n)
    held = max(1, int(round(n * HELD_OUT)))
    return sorted(order[held:][:count].tolist()), sorted(order[:held][:count].tolist())


def _check_finite(array: np.ndarray, where: str) -> None:
    """One error naming the first input with a NaN or an infinity."""
    bad = ~np.isfinite(array.reshape(len(array), -1)).all(axis=1)
    if bad.any():
        i = int(np.argmax(bad))
        raise UserError(f"{where} {i}) has non-finite values; int8 ranges cannot be "
                        "calibrated on NaN or infinity")
