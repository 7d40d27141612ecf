"""Reading a weights file, whatever it is, without ever hanging on it.

:func:`read_source` takes any path a user can type. The checks come before a byte is read:

1. the path must be a regular file (:func:`netc.dsl.sources.check_regular`): a FIFO would
   block the reader forever, ``/dev/zero`` never ends, a directory is no file; each refusal
   is one line;
2. the format is told by the file's first bytes where they say it (a safetensors header, a
   zip or a pickle for PyTorch), else by its suffix (``.caffemodel``, which has no magic);
3. a PyTorch file is read with ``torch.load(weights_only=True)``: a pickle that holds more
   than tensors and plain containers is refused before anything in it runs. Torch is
   imported only for such a file (``netc compile`` with a ``.safetensors`` never loads it);
4. a ``.safetensors`` file is opened lazily (memory-mapped): its header gives names and
   shapes, and a tensor is read when it is asked for, so a view of VGG-16's ``conv3_3`` reads
   none of its 123.6 M fc weights (fc6, fc7, fc8 in ``netc summary vgg16``).

Batch-norm ``num_batches_tracked`` counters are dropped: inference and netc's modules do not
need them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from netc.compiler.importers.pairing import Layer, Shape
from netc.dsl.diagnostics import UserError
from netc.dsl.sources import NotRegular, check_regular

COUNTER = "num_batches_tracked"
TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
# Wrappers that training scripts put around a state dict.
_WRAPPERS = ("state_dict", "model_state_dict", "model", "net", "weights", "params")


def check_file(path: str | Path) -> os.stat_result:
    """The stat of ``path`` if it is a regular file; else a one-line :class:`UserError`."""
    try:
        return check_regular(path)
    except NotRegular as err:
        raise UserError(f"cannot read weights: {err}") from None


@dataclass
class Source:
    """A weights file as read: tensor shapes and tensors by key and, for an ordered format
    (a caffemodel), its layers in net order with what the file says of each."""

    path: Path
    shapes: dict[str, Shape]
    tensors: Mapping[str, np.ndarray]  # float32; a safetensors file reads each on access
    ordered: list[Layer] | None = None  # a caffemodel's layers in net order; None: a tree
    strides: dict[str, tuple[int, int]] = field(default_factory=dict)  # known, by layer
    types: dict[str, str] = field(default_factory=dict)  # Caffe layer types, by layer
    format: str = "safetensors"
    renamed: dict = field(default_factory=dict)  # key -> rename.Renamed, for keys --rename changed

    @property
    def caffe(self) -> bool:
        return self.ordered is not None


def read_source(path: str | Path) -> Source:
    """Read any weights file netc knows (module docstring). Raises :class:`UserError`."""
    path = Path(path)
    check_file(path)
    kind = file_format(path)
    if kind == "caffemodel":
        return _read_caffemodel(path)
    tensors = _Safetensors(path) if kind == "safetensors" else _read_torch(path)
    shapes = {k: tuple(v.shape) for k, v in tensors.items()} if kind == "torch" else \
        dict(tensors.shapes)
    return Source(path, shapes, tensors, format=kind)


def read_tensors(path: str | Path) -> dict[str, np.ndarray]:
    """Every tensor of a ``.safetensors``, ``.pt``, ``.pth`` or ``.bin`` file, as float32."""
    source = read_source(path)
    if source.caffe:
        raise UserError(f"{path}: a caffemodel's blobs have no names of their own; map it onto "
                        "a spec with netc weights import")
    return dict(source.tensors.items())


def read_metadata(path: str | Path) -> dict[str, str]:
    """The metadata of a ``.safetensors`` file (``netc_net``, ``netc_fit``); {} for others."""
    path = Path(path)
    check_file(path)
    if file_format(path) != "safetensors":
        return {}
    return _Safetensors(path).metadata


def file_format(path: Path) -> str:
    """``safetensors``, ``torch`` or ``caffemodel``: by the first bytes, else the suffix."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
            size = os.fstat(f.fileno()).st_size
    except OSError as err:
        raise UserError(f"cannot read weights {path}: {err.strerror or err}") from None
    if len(head) >= 9 and head[8:9] == b"{" and 8 + int.from_bytes(head[:8], "little") <= size:
        return "safetensors"
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":  # a zip (torch.save), a pickle
        return "torch"
    suffix = path.suffix.lower()
    if suffix == ".caffemodel":
        return "caffemodel"
    if suffix == ".safetensors":
        return "safetensors"  # a damaged one: its reader says what is wrong
    if suffix in TORCH_SUFFIXES:
        return "torch"
    raise UserError(f"{path}: not a weights file netc knows; netc reads .safetensors, "
                    ".pt, .pth, .bin and .caffemodel")


class _Safetensors(Mapping):
    """A ``.safetensors`` file as a mapping name -> float32 array, each read on access."""

    def __init__(self, path: Path):
        from safetensors import SafetensorError, safe_open

        self.path = path
        _know_bfloat16()
        try:
            self._file = safe_open(str(path), framework="np")
            keys = [k for k in self._file.keys() if not k.endswith(COUNTER)]
            self.shapes = {k: tuple(self._file.get_slice(k).get_shape()) for k in keys}
            self.metadata = dict(self._file.metadata() or {})
        except (OSError, SafetensorError, ValueError) as err:
            raise UserError(f"cannot read {path} as safetensors: {err}") from None

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in self.shapes:
            raise KeyError(key)
        from safetensors import SafetensorError

        try:
            return _float(self._file.get_tensor(key), key, self.path)
        except (SafetensorError, TypeError, ValueError) as err:  # a dtype numpy lacks
            raise UserError(f"cannot read {key} from {self.path}: {err}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self.shapes)

    def __len__(self) -> int:
        return len(self.shapes)


def _know_bfloat16() -> None:
    """Give numpy the ``bfloat16`` dtype (ml_dtypes), so a bfloat16 file reads the same in
    every command: onnx registers it on import, so without this only the commands that had
    imported onnx read one (``compile`` did, ``explain`` did not)."""
    import ml_dtypes  # noqa: F401 - imported for its side effect


def _read_torch(path: Path) -> dict[str, np.ndarray]:
    import pickle
    import warnings

    import torch

    try:
        with warnings.catch_warnings():  # torch's notes on pickle protocols are not for users
            warnings.simplefilter("ignore")
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise UserError(f"{path} is not a plain tensor file and was refused without loading "
                        f"it ({_unpickler_reason(err)})") from None
    except (RuntimeError, EOFError, OSError, ValueError, AttributeError, KeyError,
            IndexError, TypeError) as err:
        # A file that is not a checkpoint at all fails deep inside the unpickler with any of
        # these (random bytes gave a KeyError).
        raise UserError(f"cannot read {path} as a PyTorch file: "
                        f"{type(err).__name__}: {err}") from None
    state = _unwrap(obj)
    if state is None:
        raise UserError(f"{path} holds no state dict (a mapping of names to tensors)")
    out = {}
    for key, value in state.items():  # a tensor under a number or a tuple has no layer name
        if isinstance(key, str) and torch.is_tensor(value) and not key.endswith(COUNTER):
            out[key] = _float(value.detach().cpu().float().numpy(), key, path)
    if not out:
        raise UserError(f"{path} holds no tensors under names")
    return out


def _unpickler_reason(err: Exception) -> str:
    """The one useful line of torch's long weights_only message (what it refused)."""
    import re

    found = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
    if found:
        return f"it would call {found.group(1)}, which is not a tensor or a plain container"
    return "torch.load(weights_only=True) found more than tensors and plain containers"


def _unwrap(obj):
    """The state dict inside ``obj``: itself, or under one of the usual wrapper keys (followed
    as a loop that stops at a dict seen before: a pickle can hold a dict inside itself)."""
    import torch

    seen = set()
    while isinstance(obj, dict) and id(obj) not in seen:
        seen.add(id(obj))
        if any(torch.is_tensor(v) for v in obj.values()):
            return obj
        obj = next((obj[k] for k in _WRAPPERS if isinstance(obj.get(k), dict)), None)
    return None


def _read_caffemodel(path: Path) -> Source:
    """A caffemodel's blobs under ``<layer>.<netc tensor name>``, its layers in net order."""
    from netc.compiler.importers.caffe.caffemodel import read_caffemodel, weight_groups

    tensors: dict[str, np.ndarray] = {}
    source = Source(path, {}, tensors, [], format="caffemodel")
    for lay, blobs in weight_groups(read_caffemodel(path)):
        source.ordered.append(Layer(lay.name, tuple((k, v.shape) for k, v in blobs.items()),
                                    lay.type))
        tensors.update({f"{lay.name}.{k}": _float(v, f"{lay.name}.{k}", path)
                        for k, v in blobs.items()})
        source.types[lay.name] = lay.type
        if lay.stride is not None:
            source.strides[lay.name] = lay.stride
    source.shapes = {k: tuple(v.shape) for k, v in tensors.items()}
    return source


def _float(a: np.ndarray, key: str = "", path: Path | None = None) -> np.ndarray:
    """``a`` as float32, refused if any value is not finite: a net with one NaN weight computes
    NaN everywhere downstream, and a value past float32's range becomes inf here."""
    with np.errstate(over="ignore", invalid="ignore"):
        out = a.astype(np.float32) if a.dtype != np.float32 else a
    if out.size and not np.isfinite(out).all():
        bad = int(out.size - np.count_nonzero(np.isfinite(out)))
        where = f"{path}: " if path is not None else ""
        raise UserError(f"{where}{key or 'a tensor'} holds {bad:,} value(s) that are not finite "
                        "(nan or inf, or past float32's range): no network computes with them")
    return out
