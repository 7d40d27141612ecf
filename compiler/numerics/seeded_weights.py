"""netc's own seeded initial weights, shared by the PyTorch and ONNX lowerings.

Each node draws from its own generator, seeded by (seed, crc32(node name)): adding a layer to a
spec does not change the weights of the others, and both lowerings receive identical arrays.
Keys are ``<node name>.<tensor>``, as in a PyTorch state dict (``conv1_1.weight``). A node
that shares another's weights (``Node.shares``) draws nothing and has no keys: its owner's
arrays are drawn once, under the owner's name.

Each op draws its own weights (its ``init_weights`` face); one rule looks at the graph: the
batch norm that ends a residual body starts with γ = 0 (Goyal et al. 2017, "Accurate, Large
Minibatch SGD", §5.1; torchvision's ``zero_init_residual``), so every block starts as its
shortcut. Without it a seeded net's activations grow with each block — the 1,202-layer CIFAR
ResNet gave logits near 4e5 in torch and NaN in ONNX Runtime — and a user who compiles a zoo net
to try it gets garbage.

Then every bn's running statistics are set to the mean and variance its input has on
standard-normal images, computed analytically from the drawn weights, node by node as they
arrive (:mod:`netc.compiler.analyses.seeded_stats`): fresh ones (mean 0, variance 1) leave eval
mode unnormalised, and MobileNet-V2's seeded logits were 5e-9, ResNet-1001's NaN,
DenseNet-121's 3e7. With both rules every zoo net's seeded output is of
ordinary size.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from netc.compiler.analyses.seeded_stats import BatchNormStatistics
from netc.compiler.ir import Graph
from netc.compiler.passes.fold_bn import source_at_eval
from netc.dsl.diagnostics import UserError


def init_weights(graph: Graph, seed: int = 0,
                 progress: Callable[[int, int], None] | None = None,
                 needed: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """All weights and buffers of ``graph``, as float32 numpy arrays keyed by state-dict name.

    ``progress(done, total)`` is called as nodes finish, counting weights and buffers drawn.
    ``needed`` (node names, closed under inputs: a backward slice) draws only those nodes',
    the same arrays as in the full draw; the ONNX lowering leaves out training-only heads.

    >>> from netc.compiler.frontend.loader import load
    >>> w = init_weights(load("vgg16"), seed=0)
    >>> w["conv1_1.weight"].shape
    (64, 3, 3, 3)
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise UserError(f"the seed must be a non-negative integer; got {seed!r}")

    def draw(node):
        if node.shares:  # a sharing node draws nothing: its owner's arrays are its own
            return {}
        rng = np.random.default_rng([seed, zlib.crc32(node.name.encode())])
        ins = [graph[i].shape for i in node.inputs]
        return node.opdef.init_weights(node.attrs, ins, node.shape, rng)

    keep = set(graph.nodes) if needed is None else set(needed)
    sharing = graph.sharing()
    keep |= {sharing[n] for n in keep if n in sharing}  # a kept sharer needs its owner's
    nodes = [n for n in graph if n.op != "input" and n.name in keep]
    zero_gamma = set(residual_body_ends(graph))
    stats = BatchNormStatistics.of(graph)
    sizes = ([0 if n.shares else graph.state_size(n) for n in nodes] if progress
             else [0] * len(nodes))  # what each draws: a sharing node, nothing
    total, done = sum(sizes), 0
    weights: dict[str, np.ndarray] = {}
    # Every node has its own generator, so drawing in threads gives the same numbers; numpy
    # releases the GIL while it draws, and ResNet-50's 25.6 M weights are most of a compile.
    # The nodes come back in graph order, and each one's batch-norm statistics are computed
    # as it arrives, while the pool draws the nodes after it.
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        for node, arrays, size in zip(nodes, pool.map(draw, nodes), sizes):
            if node.shares:  # seen by the statistics under its own name, then dropped
                arrays = {k[len(node.shares) + 1:]: a for k, a in weights.items()
                          if k.startswith(node.shares + ".")}
            weights.update((f"{node.name}.{key}", arr) for key, arr in arrays.items())
            if node.name in zero_gamma:
                weights[f"{node.name}.weight"] = np.zeros_like(weights[f"{node.name}.weight"])
            if stats is not None:
                stats.add(node, weights)
            if progress:
                done += size
                progress(done, total)
    return {k: a for k, a in weights.items() if k.rsplit(".", 1)[0] not in sharing}


def residual_body_ends(graph: Graph) -> list[str]:
    """The ``bn`` nodes that end a residual body (the body input of a ``residual`` node, maybe
    through ops that vanish at inference: dropout, identity), read by nothing else."""
    users = graph.consumers()
    ends = []
    for node in graph:
        if node.op != "residual":
            continue
        reader, src = source_at_eval(graph, node, users)
        if src.op == "bn" and users[src.name] == [reader]:
            ends.append(src.name)
    return ends


def check_weights(graph: Graph, tensors, source: str = "weights",
                  allow_unused: bool = False) -> dict:
    """``tensors`` (state-dict name -> array or tensor) narrowed to exactly the weights of
    ``graph``, each checked against its shape: the one check of given weights, for the torch
    module (:meth:`NetModule.load_named`) and the API's ONNX path alike. Batch norm's
    ``num_batches_tracked`` counters are neither needed nor unexpected, and are left out.
    Tensors the net does not have are an error unless ``allow_unused`` (a full FractalNet's
    weights loaded into its deepest column). Raises :class:`UserError` naming the first
    missing, unexpected or mis-shaped tensor."""
    want = expected_shapes(graph)
    tensors = _without_shared(graph, tensors, source)
    missing = [k for k in want if k not in tensors]
    if missing:
        raise UserError(f"{source}: no tensor for {missing[0]}{_more(missing)}")
    unexpected = [k for k in tensors
                  if k not in want and not k.endswith("num_batches_tracked")]
    if unexpected and not allow_unused:
        raise UserError(f"{source}: {unexpected[0]}{_more(unexpected)} is not a weight of "
                        f"{graph.name}")
    for key, shape in want.items():
        got = tuple(tensors[key].shape)
        if got != shape:
            raise UserError(f"{source}: {key} has shape {_dims(got)}; {graph.name} expects "
                            f"{_dims(shape)}")
    return {k: tensors[k] for k in want}


def _without_shared(graph: Graph, tensors, source: str):
    """``tensors`` without the copies a file keeps of shared weights (a caffemodel stores a
    shared blob in each layer that uses it): each must equal its owner's, and is dropped."""
    sharing = graph.sharing()
    if not sharing:
        return tensors
    kept = {}
    stand_in: dict[str, str] = {}  # owner's key absent -> the sharing copy that stands for it
    for key, value in tensors.items():
        node, _, local = key.rpartition(".")
        owner = sharing.get(node)
        if owner is None:
            kept[key] = value
            continue
        theirs = f"{owner}.{local}"
        if theirs not in tensors:  # only sharing layers' copies: the first is the owner's
            stand_in.setdefault(theirs, key)
            kept.setdefault(theirs, value)
        other = stand_in.get(theirs, theirs)
        if not np.array_equal(np.asarray(tensors[other]), np.asarray(value)):
            also = "" if other == theirs else f", both copies of {theirs}"
            raise UserError(f"{source}: {key} differs from {other}{also}, whose weights "
                            f"{node} shares")
    return kept


def _more(names: list[str]) -> str:
    return f" (and {len(names) - 1} more)" if len(names) > 1 else ""


def _dims(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape)) or "scalar"


def expected_shapes(graph: Graph) -> dict[str, tuple[int, ...]]:
    """The shape of every weight the graph needs (without drawing random numbers)."""
    rng = np.random.default_rng(0)
    shapes = {}
    for node in graph:
        if node.op == "input" or node.shares:  # a sharer's weights are its owner's
            continue
        ins = [graph[i].shape for i in node.inputs]
        for key, arr in node.opdef.init_weights(node.attrs, ins, node.shape, rng).items():
            shapes[f"{node.name}.{key}"] = tuple(arr.shape)
    return shapes
