"""Reading and writing weight files, and mapping someone else's state dict onto a spec.

A torchvision checkpoint or a converted Caffe model names its tensors its own way
(``layer2.0.downsample.0.weight``); a netc network names them after the spec
(``layer2.basic1.shortcut.conv1.weight``). :func:`map_by_structure` pairs them by structure:

1. the spec's parameterised layers (conv, fc, bn) in graph order, each with its tensors in the
   order its op declares them (``weight``, ``bias``, ``running_mean``, ``running_var``);
2. the file's layers: its keys grouped by prefix (``layer2.0.conv1``), in file order, with
   ``num_batches_tracked`` counters left out;
3. layer i of the spec takes layer i of the file; inside a layer, tensors pair by their last name
   when both sides use the same names, else in order. Every shape is checked, one by one, and
   the first disagreement is reported with both names and both shapes.

A file whose keys are already the spec's names is taken by name. ``.pt``/``.pth``/``.bin`` files
are read with ``torch.load(weights_only=True)``, which refuses any pickle that holds more than
tensors and plain containers — before anything in it runs. Output is ``.safetensors``, written
atomically.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from compiler.ir import Graph
from dsl.diagnostics import UserError
from runtime.files import atomic_path

# Wrappers that training scripts put around a state dict.
_WRAPPERS = ("state_dict", "model_state_dict", "model", "net", "weights", "params")
_COUNTER = "num_batches_tracked"


@dataclass(frozen=True)
class Layer:
    """One parameterised layer: its name (a node, or a key prefix) and its tensors in order."""

    name: str
    tensors: tuple[tuple[str, tuple[int, ...]], ...]  # (last name, shape)
    op: str = ""


def read_tensors(path: str | Path) -> dict[str, np.ndarray]:
    """The tensors of a ``.safetensors``, ``.pt``, ``.pth`` or ``.bin`` file, as float32 numpy.

    Raises :class:`UserError` for a missing or unreadable file and for a pickle that is not
    plain tensors (refused without running it).
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no such weights file: {path}")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        try:
            raw = load_file(str(path))
        except (OSError, SafetensorError, ValueError) as err:
            raise UserError(f"cannot read {path} as safetensors: {err}") from None
        return {k: _float(v) for k, v in raw.items() if not k.endswith(_COUNTER)}
    if path.suffix not in (".pt", ".pth", ".bin", ".ckpt"):
        raise UserError(f"{path}: unknown weights format {path.suffix!r}; "
                        "netc reads .safetensors, .pt, .pth and .bin")
    return _read_torch(path)


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
    for key, value in state.items():
        if torch.is_tensor(value) and not key.endswith(_COUNTER):
            out[key] = _float(value.detach().cpu().numpy())
    if not out:
        raise UserError(f"{path} holds no tensors")
    return out


def _unpickler_reason(err: Exception) -> str:
    """The one useful line of torch's long weights_only message (what it refused)."""
    import re

    text = str(err)
    found = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if found:
        return f"it would call {found.group(1)}, which is not a tensor or a plain container"
    return "torch.load(weights_only=True) found more than tensors and plain containers"


def _unwrap(obj):
    """The state dict inside ``obj``: itself, or under one of the usual wrapper keys."""
    import torch

    if isinstance(obj, dict):
        if any(torch.is_tensor(v) for v in obj.values()):
            return obj
        for key in _WRAPPERS:
            if isinstance(obj.get(key), dict):
                return _unwrap(obj[key])
    return None


def _float(a: np.ndarray) -> np.ndarray:
    return a.astype(np.float32) if a.dtype != np.float32 else a


def spec_layers(graph: Graph) -> list[Layer]:
    """The parameterised layers of ``graph`` in graph order (no random numbers drawn)."""
    rng = np.random.default_rng(0)
    layers = []
    for node in graph:
        if node.op == "input":
            continue
        ins = [graph[i].shape for i in node.inputs]
        arrays = node.opdef.init_weights(node.attrs, ins, node.shape, rng)
        if arrays:
            layers.append(Layer(node.name, tuple((k, tuple(a.shape)) for k, a in arrays.items()),
                                node.op))
    return layers


def file_layers(tensors: dict[str, np.ndarray]) -> list[Layer]:
    """The layers of a foreign state dict: keys grouped by prefix, in file order."""
    groups: dict[str, list[tuple[str, tuple[int, ...]]]] = {}
    for key, value in tensors.items():
        prefix, _, last = key.rpartition(".")
        groups.setdefault(prefix, []).append((last, tuple(value.shape)))
    return [Layer(name, tuple(items)) for name, items in groups.items()]


def map_by_structure(graph: Graph, tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``tensors`` renamed to ``graph``'s state-dict names (see the module docstring).

    Raises :class:`UserError` with a report of the first layer or tensor that does not fit.
    """
    tensors = {k: v for k, v in tensors.items() if not k.endswith(_COUNTER)}
    ours = spec_layers(graph)
    wanted = {f"{l.name}.{k}": s for l in ours for k, s in l.tensors}
    if set(tensors) == set(wanted):  # already netc names: take them by name
        for key, shape in wanted.items():
            if tuple(tensors[key].shape) != shape:
                raise UserError(_report(graph, f"tensor {key}", key, shape, key,
                                        tuple(tensors[key].shape)))
        return {k: tensors[k] for k in wanted}
    theirs = file_layers(tensors)
    out: dict[str, np.ndarray] = {}
    for i, (mine, other) in enumerate(zip(ours, theirs), start=1):
        where = f"layer {i} of {len(ours)} (in graph order)"
        if len(mine.tensors) != len(other.tensors):
            raise UserError(
                f"weights do not fit {graph.name}: {where}: the spec's {mine.name} ({mine.op}) "
                f"has {len(mine.tensors)} tensors ({_names(mine)}); the file's {other.name} has "
                f"{len(other.tensors)} ({_names(other)})")
        pairs = _pair(mine, other)
        for (k, shape), (fk, fshape) in pairs:
            if shape != fshape:
                raise UserError(_report(graph, where, f"{mine.name}.{k}", shape,
                                        f"{other.name}.{fk}", fshape))
            out[f"{mine.name}.{k}"] = tensors[f"{other.name}.{fk}" if other.name else fk]
    if len(ours) != len(theirs):
        n = min(len(ours), len(theirs))
        if len(ours) > len(theirs):
            rest = f"the spec's {ours[n].name} and {len(ours) - n - 1} more have no weights"
        else:
            rest = f"the file's {theirs[n].name} and {len(theirs) - n - 1} more are left over"
        raise UserError(f"weights do not fit {graph.name}: the spec has {len(ours)} "
                        f"parameterised layers, the file has {len(theirs)}; the first {n} "
                        f"fit, then {rest}")
    return out


def _pair(mine: Layer, other: Layer):
    """Tensors of two layers paired by last name when the names agree, else in order."""
    names = [k for k, _ in mine.tensors]
    theirs = dict(other.tensors)
    if sorted(names) == sorted(theirs):
        return [((k, s), (k, theirs[k])) for k, s in mine.tensors]
    return list(zip(mine.tensors, other.tensors))


def _names(layer: Layer) -> str:
    return ", ".join(k for k, _ in layer.tensors)


def _shape(shape) -> str:
    return "x".join(map(str, shape)) or "scalar"


def _report(graph, where, ours, shape, theirs, fshape) -> str:
    width = max(len(ours), len(theirs))
    return (f"weights do not fit {graph.name}: {where}\n"
            f"  spec: {ours:<{width}}  {_shape(shape)}\n"
            f"  file: {theirs:<{width}}  {_shape(fshape)}")


def write_safetensors(path: str | Path, tensors: dict[str, np.ndarray],
                      metadata: dict[str, str] | None = None) -> None:
    """Write ``tensors`` to ``path`` atomically (a temporary file, then one rename)."""
    from safetensors.numpy import save_file

    arrays = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(arrays, str(tmp), metadata=metadata)


def import_weights(graph: Graph, source: str | Path, dest: str | Path) -> dict[str, np.ndarray]:
    """Read ``source``, map it onto ``graph`` and write ``dest`` (.safetensors). Returns the
    mapped tensors."""
    if Path(dest).suffix != ".safetensors":
        raise UserError(f"{dest}: the output of weights import is a .safetensors file")
    mapped = map_by_structure(graph, read_tensors(source))
    write_safetensors(dest, mapped, {"netc_net": graph.name, "source": Path(source).name})
    return mapped
