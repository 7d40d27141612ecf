"""Reading weight files, mapping someone else's tensors onto a spec, writing the result.

A file is read into a :class:`Source`: ``.pt``/``.pth``/``.bin`` with
``torch.load(weights_only=True)`` (a pickle that holds more than tensors and plain containers
is refused before anything in it runs), ``.safetensors``, or a Caffe ``.caffemodel`` (its
layers in net order, each with netc's tensor names: :func:`netc.compiler.importers.caffe.caffemodel.
weight_groups`). :func:`map_weights` pairs its layers with the spec's:

1. ``num_batches_tracked`` counters are dropped; ``skip`` prefixes (``aux1``, ``loss1``) drop
   what the spec has no place for, and are reported;
2. a file whose keys are the spec's names is taken by name (a caffemodel: when every spec
   layer is a Caffe layer name, as for a prototxt imported by netc);
3. otherwise by structure (:mod:`netc.compiler.importers.pairing`): a state dict as a tree of module
   paths, whatever order the file stores its keys in; a caffemodel in its net order;
4. every shape is checked; a misfit is reported with the first spec layer that found no
   partner, both shapes, and the likely cause where it is a known one;
5. where the file says where a conv's stride is (a caffemodel's convolution_param; the
   torchvision layout, whose ResNet bottlenecks are all v1.5; netc's own zoo names), it must
   agree with the spec: ResNet v1 weights in a v1.5 spec, or the reverse, are refused.

Output is ``.safetensors``, written atomically.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from netc.compiler.ir import Graph
from netc.compiler.importers.pairing import (
    Layer,
    PairingError,
    file_groups,
    fits,
    pair_in_order,
    pair_tree,
    spec_layers,
    tensor_pairs,
)
from netc.dsl.diagnostics import UserError
from netc.runtime.files import atomic_path

# Wrappers that training scripts put around a state dict.
_WRAPPERS = ("state_dict", "model_state_dict", "model", "net", "weights", "params")
_COUNTER = "num_batches_tracked"


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
                        "netc reads .safetensors, .pt, .pth, .bin and .caffemodel")
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


@dataclass
class Source:
    """A weights file as read: tensors by key and, for an ordered format, its layers in order."""

    path: Path
    tensors: dict[str, np.ndarray]
    ordered: list[Layer] | None = None  # a caffemodel's layers in net order; None: a tree
    strides: dict[str, tuple[int, int]] = field(default_factory=dict)  # known, by layer
    types: dict[str, str] = field(default_factory=dict)  # Caffe layer types, by layer

    @property
    def caffe(self) -> bool:
        return self.ordered is not None


def read_source(path: str | Path) -> Source:
    """Read any weights file netc knows (see the module docstring). Raises UserError."""
    path = Path(path)
    if path.suffix != ".caffemodel":
        return Source(path, read_tensors(path))
    if not path.is_file():
        raise UserError(f"no such weights file: {path}")
    from netc.compiler.importers.caffe.caffemodel import read_caffemodel, weight_groups

    source = Source(path, {}, [])
    for lay, tensors in weight_groups(read_caffemodel(path)):
        source.ordered.append(Layer(lay.name, tuple((k, v.shape) for k, v in tensors.items()),
                                    lay.type))
        source.tensors.update({f"{lay.name}.{k}": v for k, v in tensors.items()})
        source.types[lay.name] = lay.type
        if lay.stride is not None:
            source.strides[lay.name] = lay.stride
    return source


@dataclass
class Mapped:
    """The result of :func:`map_weights`: the spec's tensors, and what happened to the file's."""

    tensors: dict[str, np.ndarray]
    pairs: list[tuple[str, str]]  # (spec layer, file layer)
    skipped: list[str] = field(default_factory=list)  # file layers left out by --skip
    ignored: list[str] = field(default_factory=list)  # caffemodel layers the prototxt lacks
    warnings: list[str] = field(default_factory=list)
    by_name: bool = False


def _matches(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith((prefix + ".", prefix + "/"))


def map_weights(graph: Graph, source: Source, skip: tuple[str, ...] = (),
                allow_stride_mismatch: bool = False) -> Mapped:
    """``source``'s tensors renamed to ``graph``'s state-dict names (module docstring).

    Raises :class:`UserError` with a report of the first layer that does not fit.
    """
    ours = spec_layers(graph)
    tensors = {k: v for k, v in source.tensors.items() if not k.endswith(_COUNTER)}
    groups = source.ordered if source.caffe else list(file_groups(
        {k: v.shape for k, v in tensors.items()}).values())
    skipped = []
    for prefix in skip:
        hit = [g.name for g in groups if _matches(g.name, prefix)]
        if not hit:
            shown = ", ".join(sorted({g.name.split(".")[0].split("/")[0] for g in groups})[:12])
            raise UserError(f"--skip {prefix}: no layer of {source.path} is named {prefix} or "
                            f"starts with {prefix}. or {prefix}/ (its top-level names: {shown})")
        skipped += hit
    groups = [g for g in groups if g.name not in set(skipped)]
    result = Mapped({}, [], skipped)
    pairs = _by_name(graph, ours, groups, source, result)
    if pairs is None:
        try:
            pairs = pair_in_order(ours, groups) if source.caffe else pair_tree(
                ours, {g.name: g for g in groups})
        except PairingError as err:
            raise UserError(_misfit(graph, ours, groups, source, err, bool(skipped))) from None
    for mine, other in pairs:
        for (k, shape), (fk, _) in tensor_pairs(mine, other):
            key = f"{other.name}.{fk}" if other.name else fk
            result.tensors[f"{mine.name}.{k}"] = tensors[key].reshape(shape)
        result.pairs.append((mine.name, other.name))
    _check_strides(graph, pairs, source, groups, allow_stride_mismatch, result)
    result.warnings += _caffe_convention(graph, source)
    return result


def _caffe_convention(graph: Graph, source: Source) -> list[str]:
    """Caffe's 3-channel nets take BGR pixels in 0..255 (minus a mean): a spec whose input
    says otherwise computes with the right weights on the wrong numbers. Conventions belong
    to the spec's input line, so this is a warning that says what to write."""
    spec = next(iter(graph.inputs.values()), None)
    if not source.caffe or spec is None or spec.shape[0] != 3:
        return []
    if spec.layout == "bgr" and spec.scale == 255:
        return []
    return [f"{source.path.name} is a Caffe model, and Caffe's nets take BGR pixels in 0..255 "
            f"minus a mean; {graph.name}'s input takes {spec.layout.upper()} in [0, "
            f"{spec.scale:g}]: give it `layout=bgr, scale=255, mean=[...]` (bvlc's ImageNet "
            "mean is [104, 117, 123]) unless the file was trained otherwise"]


def _by_name(graph, ours, groups, source, result) -> list[tuple[Layer, Layer]] | None:
    """Rule 2: pairs by name, or None when the file does not use the spec's names."""
    if source.caffe:
        theirs = {}
        for g in groups:  # the labels netc's prototxt import gives a Caffe layer name
            for label in _labels(g.name):
                theirs.setdefault(label, g)
        for l in ours:  # a Convolution with several bottoms is name, name_2, ... (shared)
            base = re.sub(r"_\d+$", "", l.name)
            if l.name not in theirs and base in theirs:
                theirs[l.name] = theirs[base]
        nodes = {n.name for n in graph}
        if any(l.name not in theirs for l in ours) or not any(
                label in nodes for g in groups for label in _labels(g.name)):
            return None
        used = {id(theirs[l.name]) for l in ours}
        result.ignored = [g.name for g in groups if id(g) not in used]
    else:
        theirs = {g.name: g for g in groups}
        if {l.name for l in ours} != set(theirs):
            return None
    result.by_name = True
    pairs = [(l, theirs[l.name]) for l in ours]
    for i, (mine, other) in enumerate(pairs):
        if not fits(mine, other):
            raise UserError(_report(graph, f"layer {i + 1} of {len(ours)}, by name", mine,
                                    other))
    return pairs


def _labels(caffe_name: str) -> tuple[str, str]:
    """The label netc's prototxt import gives a Caffe layer: its plain spelling, or that with
    a ``_`` when the plain one is a netc keyword or op name (``output_``)."""
    from netc.compiler.importers.caffe.net import Labels

    plain = Labels.plain(caffe_name)
    return plain, plain + "_"


# ---- reports -----------------------------------------------------------------------------------
def _shape(shape) -> str:
    return "x".join(map(str, shape)) or "scalar"


def _tensors(layer: Layer) -> str:
    return ", ".join(f"{k} {_shape(s)}" for k, s in layer.tensors) or "no tensors"


def _report(graph, where: str, mine: Layer, other: Layer | None) -> str:
    lines = [f"weights do not fit {graph.name}: {where}",
             f"  spec: {mine.name} ({mine.op}): {_tensors(mine)}"]
    if other is not None:
        lines.append(f"  file: {other.name or '(top level)'}: {_tensors(other)}")
    return "\n".join(lines)


def _misfit(graph, ours, groups, source, err: PairingError, skipped: bool) -> str:
    """Rule 4: the first spec layer without a partner, both shapes, and the likely cause."""
    i, other = err.failure.index, err.failure.candidate
    head = (f"the spec has {len(ours)} parameterised layers, the file "
            f"{len(groups)}{' (after --skip)' if skipped else ''}")
    if err.budget_spent:
        text = f"weights do not fit {graph.name}: {head}; no layout of the file was found"
    elif 0 <= i < len(ours):
        where = f"layer {i + 1} of {len(ours)} (in graph order) has no partner in the file"
        text = _report(graph, where, ours[i], other) + f"\n  ({head})"
    else:
        text = (f"weights do not fit {graph.name}: {head}; every spec layer found a partner "
                "and file layers are left over")
    causes = likely_causes(graph, ours, groups, source)
    return text + "".join(f"\n  likely cause: {c}" for c in causes)


def likely_causes(graph, ours: list[Layer], groups: list[Layer], source: Source) -> list[str]:
    """Known reasons for a misfit: a named source net, auxiliary heads, another zoo net."""
    out = []
    names = [g.name for g in groups]
    first = next((g for g in groups if len(g.tensors[0][1]) == 4), None)
    spec_first = next((l for l in ours if l.op == "conv"), None)
    if first and spec_first:
        f, s = first.tensors[0][1], spec_first.tensors[0][1]
        if f == (64, 3, 11, 11) and s == (96, 3, 11, 11):
            out.append("the file is torchvision's AlexNet (conv1 64x3x11x11, no groups); the "
                       "spec is Caffe's bvlc_alexnet (96 filters, groups=2): use alexnet_tv")
        if f == (96, 3, 11, 11) and s == (64, 3, 11, 11):
            out.append("the file is Caffe's AlexNet (conv1 96x3x11x11, groups=2); the spec is "
                       "torchvision's one-GPU AlexNet: use alexnet")
    if any(n.startswith("inception3a.") for n in names) and \
            any(l.name.startswith("inception_3a.") for l in ours):
        out.append("the file is torchvision's GoogLeNet (batch norm after every conv, a 3x3 "
                   "where Caffe's 5x5 branch is); the zoo's googlenet is Caffe's "
                   "bvlc_googlenet, whose weights are bvlc_googlenet.caffemodel")
    if source.caffe and any(re.match(r"res\d+[a-z]\d*_branch1$", n) for n in names):
        out.append("the file is one of He et al.'s Caffe ResNets, which store each block's "
                   "projection (branch1) before its body and give conv1 a bias: use its "
                   "deploy prototxt (ResNet-50-deploy.prototxt) as the spec, which takes the "
                   "file by layer name")
    heads = _auxiliary_heads(names, len(groups) - len(ours))
    if heads:
        out.append(f"the file carries auxiliary heads ({', '.join(heads)}) that the spec has "
                   f"no place for: add --skip {','.join(heads)}")
    others = _zoo_fits(graph.name, groups, source)
    if others:
        out.append(f"the file fits the zoo's {', '.join(others)}: a file of another net?")
    return out


def _auxiliary_heads(names: list[str], extra: int) -> list[str]:
    """Prefixes named like auxiliary heads (``aux1``, ``loss2``) whose layers number exactly
    the ``extra`` the file has: bvlc_googlenet's ``loss3/classifier`` is its real classifier,
    so ``loss1`` and ``loss2`` are the heads, not all three."""
    from itertools import combinations

    counts: dict[str, int] = {}
    for n in names:
        top = re.split(r"[./]", n)[0]
        if re.fullmatch(r"(aux|loss)\d+", top):
            counts[top] = counts.get(top, 0) + 1
    if extra <= 0 or not counts or len(counts) > 8:
        return []
    for k in range(1, len(counts) + 1):
        for subset in combinations(sorted(counts), k):
            if sum(counts[h] for h in subset) == extra:
                return list(subset)
    return []


def _zoo_fits(current: str, groups: list[Layer], source: Source) -> list[str]:
    """The zoo nets (other than ``current``, at most 3) the file's layers fit."""
    found = []
    from netc.compiler.frontend.loader import load, zoo_index

    for name in sorted(zoo_index()):
        if name == current or name.startswith("cifar_resnet1202"):
            continue  # the 1202-layer nets take seconds to build; a file of one is rare
        try:
            graph = load(name)
        except Exception:  # noqa: BLE001 - a zoo net that fails to load is not this report's
            continue
        # Count the layers cheaply first (spec_layers draws every weight).
        count = sum(1 for n in graph if n.op != "input" and n.opdef.param_count(
            n.attrs, [graph[i].shape for i in n.inputs], n.shape) > 0)
        if count != len(groups):
            continue
        theirs = spec_layers(graph)
        try:
            if source.caffe:
                pair_in_order(theirs, groups)
            else:
                pair_tree(theirs, {g.name: g for g in groups})
        except PairingError:
            continue
        found.append(name)
        if len(found) == 3:
            break
    return found


# ---- rule 5: where the stride is ---------------------------------------------------------------
_TV_BOTTLENECK = re.compile(r"^(layer[2-4])\.0\.conv([12])$")
_NETC_V1 = re.compile(r"^layer[2-4]\.bottleneck1\.conv([12])$")
_NETC_V15 = re.compile(r"^layer[2-4]\.bottleneck_v15_?1\.conv([12])$")


def file_strides(source: Source, groups: list[Layer]) -> dict[str, tuple[tuple[int, int], str]]:
    """The stride each file layer is known to have, with where that knowledge comes from."""
    if source.caffe:
        return {n: (s, "the caffemodel's convolution_param") for n, s in source.strides.items()}
    names = {g.name for g in groups}
    out = {}
    for name in names:
        m = _TV_BOTTLENECK.match(name)
        if m and f"{m.group(1)}.0.conv3" in names:  # a torchvision Bottleneck: always v1.5
            out[name] = ((2, 2) if m.group(2) == "2" else (1, 1),
                         "torchvision's layout (its Bottleneck strides the 3x3: v1.5)")
        m = _NETC_V1.match(name) or _NETC_V15.match(name)
        if m:
            v15 = bool(_NETC_V15.match(name))
            on_3x3 = m.group(1) == "2"
            out[name] = ((2, 2) if on_3x3 == v15 else (1, 1),
                         f"netc's zoo names ({'bottleneck_v15' if v15 else 'bottleneck'})")
    return out


def _check_strides(graph, pairs, source, groups, allow: bool, result: Mapped) -> None:
    known = file_strides(source, groups)
    wrong = []
    for mine, other in pairs:
        if mine.op != "conv" or other.name not in known:
            continue
        stride, why = known[other.name]
        spec = tuple(graph[mine.name].attrs.stride)
        if spec != stride:
            wrong.append((mine, other, spec, stride, why))
    if not wrong:
        return
    mine, other, spec, stride, why = wrong[0]
    kernel = graph[mine.name].attrs.kernel
    text = (f"the file's {other.name} has stride {_shape(stride)} ({why}), the spec's "
            f"{mine.name} (a {_shape(kernel)} conv) stride {_shape(spec)}; "
            f"{len(wrong)} conv(s) disagree")
    if kernel in ((1, 1), (3, 3)) and any(graph[m.name].attrs.kernel == (1, 1)
                                         for m, *_ in wrong):
        spec_v1 = any(graph[m.name].attrs.kernel == (1, 1) and s != (1, 1)
                      for m, _, s, _, _ in wrong)
        text += ("\n  likely cause: ResNet v1 vs v1.5: " +
                 ("the spec is v1 (He et al.: stride on the first 1x1) and the file is v1.5 "
                  "(stride on the 3x3, as every torchvision ResNet-50/101/152): use "
                  "resnet50_v1_5, or resnet(bottleneck_v15, ...)" if spec_v1 else
                  "the spec is v1.5 (stride on the 3x3) and the file is v1 (He et al.'s "
                  "Caffe ResNets: stride on the first 1x1): use resnet50/101/152"))
    if not allow:
        raise UserError(f"weights do not fit {graph.name}: the layers fit by shape but "
                        f"compute another network: {text}\n  (--allow-stride-mismatch loads "
                        "them anyway)")
    result.warnings.append(f"loaded although the strides disagree: {text}")

def write_safetensors(path: str | Path, tensors: dict[str, np.ndarray],
                      metadata: dict[str, str] | None = None) -> None:
    """Write ``tensors`` to ``path`` atomically (a temporary file, then one rename)."""
    from safetensors.numpy import save_file

    arrays = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(arrays, str(tmp), metadata=metadata)


def import_weights(graph: Graph, source: str | Path, dest: str | Path,
                   skip: tuple[str, ...] = (), allow_stride_mismatch: bool = False) -> Mapped:
    """Read ``source``, map it onto ``graph`` and write ``dest`` (.safetensors)."""
    if Path(dest).suffix != ".safetensors":
        raise UserError(f"{dest}: the output of weights import is a .safetensors file")
    mapped = map_weights(graph, read_source(source), skip, allow_stride_mismatch)
    write_safetensors(dest, mapped.tensors, {"netc_net": graph.name,
                                             "source": Path(source).name})
    return mapped


def map_by_structure(graph: Graph, tensors: dict[str, np.ndarray],
                     skip: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """``tensors`` (a state dict) renamed to ``graph``'s names; see :func:`map_weights`."""
    return map_weights(graph, Source(Path("<tensors>"), tensors), skip).tensors
