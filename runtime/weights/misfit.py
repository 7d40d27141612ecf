"""What a misfit of a weights file says, and the checks that pass shapes but not meaning.

A file that does not pair with the spec is reported with the first spec layer that found no
partner, both shapes and the likely cause where it is a known one (torchvision's AlexNet for
Caffe's, auxiliary heads, a file of another zoo net). A file that pairs by shape can still
compute another network (rule 5 of :mod:`netc.runtime.weights.mapping`): where the file says
where a conv's stride is (a caffemodel's convolution_param; the torchvision layout, whose ResNet
bottlenecks are all v1.5; netc's own zoo names), it must agree with the spec.
"""

from __future__ import annotations

import math
import re

from netc.compiler.importers.pairing import Layer, PairingError, nearest, pair_in_order, \
    pair_tree, spec_layers
from netc.dsl.diagnostics import UserError
from netc.runtime.weights.read import Source

# ---- reports -----------------------------------------------------------------------------------
def dims(shape) -> str:
    """A tensor's shape as the reports write it: ``64x3x7x7``, ``scalar`` for ()."""
    return "x".join(map(str, shape)) or "scalar"


def _tensors(layer: Layer) -> str:
    return ", ".join(f"{k} {dims(s)}" for k, s in layer.tensors) or "no tensors"


def report(graph, where: str, mine: Layer, other: Layer | None) -> str:
    lines = [f"weights do not fit {graph.name}: {where}",
             f"  spec: {mine.name} ({mine.op}): {_tensors(mine)}"]
    if other is not None:
        lines.append(f"  file: {other.name or '(top level)'}: {_tensors(other)}")
    return "\n".join(lines)


def misfit(graph, ours, groups, source, err: PairingError, skipped: bool) -> str:
    """The first spec layer without a partner, both shapes, and the likely cause."""
    i, other = err.failure.index, err.failure.candidate
    head = (f"the spec has {len(ours)} parameterised layers, the file "
            f"{len(groups)}{' (after --skip)' if skipped else ''}")
    if err.budget_spent:
        text = f"weights do not fit {graph.name}: {head}; no layout of the file was found"
    elif 0 <= i < len(ours):
        where = f"layer {i + 1} of {len(ours)} (in graph order) has no partner in the file"
        text = report(graph, where, ours[i], other) + f"\n  ({head})"
        close = [g for g in nearest(ours[i], groups) if g is not other]
        text += "".join(f"\n  nearest in the file: {g.name or '(top level)'}: {_tensors(g)}"
                        for g in close)
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

    total = sum(math.prod(shape) for g in groups for _, shape in g.tensors)

    for name in sorted(zoo_index()):
        if name == current or name.startswith("cifar_resnet1202"):
            continue  # the 1202-layer nets take seconds to build; a file of one is rare
        try:
            graph = load(name)
        except Exception:  # noqa: BLE001 - a zoo net that fails to load is not this report's
            continue
        # Count layers and values cheaply first: spec_layers draws every weight (VGG's 138 M
        # values, over a GiB with numpy's float64 draws, where the file is a small net's).
        sizes = [_values(graph, n) for n in graph if n.op != "input" and not n.shares]
        count = sum(1 for params, _ in sizes if params > 0)
        values = sum(params + buffers for params, buffers in sizes)
        if count != len(groups) or abs(values - total) > len(groups):  # slack: bn's counters
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


def _values(graph, node) -> tuple[int, int]:
    """A node's learnable parameters and buffers, from its op's counts (nothing drawn)."""
    ins = [graph[i].shape for i in node.inputs]
    op = node.opdef
    return (op.param_count(node.attrs, ins, node.shape),
            op.buffer_count(node.attrs, ins, node.shape))


# ---- where the stride is ---------------------------------------------------------------
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


# The zoo's ResNets by depth, v1 (He et al.) and v1.5 (torchvision): what a stride hint names.
ZOO_RESNETS = {"50": ("resnet50", "resnet50_v1_5"), "101": ("resnet101", "resnet101_v1_5"),
               "152": ("resnet152", "resnet152_v1_5")}


def zoo_twin(name: str, v15: bool) -> str:
    """The zoo net to use instead of ``name`` for a file of the other ResNet version: the one of
    the same depth when ``name`` is a zoo ResNet, else all three (and the generic form)."""
    depth = re.fullmatch(r"resnet(50|101|152)(_v1_5)?", name)
    if depth:
        return f"{ZOO_RESNETS[depth.group(1)][v15]} (a zoo net)"
    names = [pair[v15] for pair in ZOO_RESNETS.values()]
    generic = ", or resnet(bottleneck_v15, ...)" if v15 else ""
    return f"{', '.join(names[:-1])} or {names[-1]} (zoo nets, by depth){generic}"


def check_strides(graph, pairs, source, groups, allow: bool, warnings: list[str]) -> None:
    """Refuse pairs whose convs agree in shape but not in stride (ResNet v1 vs v1.5); with
    ``allow``, add a warning instead."""
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
    text = (f"the file's {other.name} has stride {dims(stride)} ({why}), the spec's "
            f"{mine.name} (a {dims(kernel)} conv) stride {dims(spec)}; "
            f"{len(wrong)} conv(s) disagree")
    if kernel in ((1, 1), (3, 3)) and any(graph[m.name].attrs.kernel == (1, 1)
                                         for m, *_ in wrong):
        spec_v1 = any(graph[m.name].attrs.kernel == (1, 1) and s != (1, 1)
                      for m, _, s, _, _ in wrong)
        text += ("\n  likely cause: ResNet v1 vs v1.5: " +
                 ("the spec is v1 (He et al.: stride on the first 1x1) and the file is v1.5 "
                  "(stride on the 3x3, as every torchvision ResNet-50/101/152): use "
                  f"{zoo_twin(graph.name, v15=True)}" if spec_v1 else
                  "the spec is v1.5 (stride on the 3x3) and the file is v1 (He et al.'s "
                  f"Caffe ResNets: stride on the first 1x1): use "
                  f"{zoo_twin(graph.name, v15=False)}"))
    if not allow:
        raise UserError(f"weights do not fit {graph.name}: the layers fit by shape but "
                        f"compute another network: {text}\n  (netc weights import "
                        "--allow-stride-mismatch maps them anyway)")
    warnings.append(f"loaded although the strides disagree: {text}")


def caffe_convention(graph, source: Source) -> list[str]:
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
