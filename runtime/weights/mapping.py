"""Mapping someone else's tensors onto a spec's layers.

:func:`map_weights` pairs a :class:`~netc.runtime.weights.read.Source`'s layers with the spec's:

1. ``--rename`` rules have already renamed the file's keys (:mod:`~netc.runtime.weights.rename`);
   ``skip`` prefixes (``aux1``, ``loss1``) drop what the spec has no place for, and are
   reported;
2. a file whose layers are the spec's names is taken by name (a caffemodel: when every spec
   layer is a Caffe layer name, as for a prototxt imported by netc);
3. otherwise by structure (:mod:`netc.compiler.importers.pairing`): a state dict as a tree of
   module paths, whatever order the file stores its keys in; a caffemodel in its net order;
4. every shape is checked; a misfit is reported with the first spec layer that found no
   partner, both shapes, and the likely cause where it is a known one
   (:mod:`netc.runtime.weights.misfit`); every tensor that was reshaped (a Linear as a 1x1
   conv, size-1 axes dropped or added) or renamed says so in :attr:`Mapped.rows`;
5. where the file says where a conv's stride is, it must agree with the spec: ResNet v1 weights
   in a v1.5 spec, or the reverse, are refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from netc.compiler.importers.pairing import (
    Layer,
    PairingError,
    Shape,
    conversion,
    file_groups,
    fits,
    pair_in_order,
    pair_tree,
    spec_layers,
    tensor_pairs,
)
from netc.compiler.ir import Graph
from netc.dsl.diagnostics import UserError
from netc.runtime.weights.misfit import caffe_convention, check_strides, dims, misfit, report
from netc.runtime.weights.read import COUNTER, Source
from netc.runtime.weights.rename import renamed_source, rules_from


@dataclass(frozen=True)
class Row:
    """One tensor of the pairing: the spec's key, the file's key as stored, both shapes, and
    what was done to it (``conversions``: reshapes, ``renamed by rule N``)."""

    layer: str
    key: str
    file_key: str
    shape: Shape
    file_shape: Shape
    conversions: tuple[str, ...] = ()


@dataclass
class Mapped:
    """The result of :func:`map_weights`: the spec's tensors, and what happened to the file's."""

    tensors: dict[str, np.ndarray]
    pairs: list[tuple[str, str]]  # (spec layer, file layer)
    skipped: list[str] = field(default_factory=list)  # file layers left out by --skip
    ignored: list[str] = field(default_factory=list)  # caffemodel layers the prototxt lacks
    warnings: list[str] = field(default_factory=list)
    by_name: bool = False
    rows: list[Row] = field(default_factory=list)


def _matches(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith((prefix + ".", prefix + "/"))


def map_weights(graph: Graph, source: Source, skip: tuple[str, ...] = (),
                allow_stride_mismatch: bool = False,
                ours: list[Layer] | None = None) -> Mapped:
    """``source``'s tensors renamed to ``graph``'s state-dict names (module docstring).

    ``ours`` are ``spec_layers(graph)`` when the caller has them already. Raises
    :class:`UserError` with a report of the first layer that does not fit.
    """
    ours = spec_layers(graph) if ours is None else ours
    groups = source.ordered if source.caffe else list(file_groups(source.shapes).values())
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
            raise UserError(misfit(graph, ours, groups, source, err, bool(skipped))) from None
    for mine, other in pairs:
        for (k, shape), (fk, file_shape) in tensor_pairs(mine, other):
            key = f"{other.name}.{fk}" if other.name else fk
            result.tensors[f"{mine.name}.{k}"] = source.tensors[key].reshape(shape)
            result.rows.append(_row(mine.name, k, key, shape, file_shape, source))
        result.pairs.append((mine.name, other.name))
    check_strides(graph, pairs, source, groups, allow_stride_mismatch, result.warnings)
    result.warnings += caffe_convention(graph, source)
    return result


def _row(layer: str, name: str, key: str, shape, file_shape, source: Source) -> Row:
    """The row of one tensor: where it came from and what was done to it."""
    done = [conversion(shape, file_shape)]
    renamed = source.renamed.get(key)
    if renamed is not None:
        key = renamed.original
        done.append("renamed by rule " + ", ".join(map(str, renamed.rules)))
    return Row(layer, f"{layer}.{name}", key, tuple(shape), tuple(file_shape),
               tuple(d for d in done if d))


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
            raise UserError(report(graph, f"layer {i + 1} of {len(ours)}, by name", mine,
                                   other))
    return pairs


def _labels(caffe_name: str) -> tuple[str, str]:
    """The label netc's prototxt import gives a Caffe layer: its plain spelling, or that with
    a ``_`` when the plain one is a netc keyword or op name (``output_``)."""
    from netc.compiler.importers.caffe.net import Labels

    plain = Labels.plain(caffe_name)
    return plain, plain + "_"


def map_by_structure(graph: Graph, tensors: dict[str, np.ndarray],
                     skip: tuple[str, ...] = (), rename=()) -> dict[str, np.ndarray]:
    """``tensors`` (a state dict in memory) renamed to ``graph``'s names; see
    :func:`map_weights`. ``rename``: ``REGEX=REPLACEMENT`` rules applied to the keys first
    (:mod:`~netc.runtime.weights.rename`)."""
    tensors = {k: np.asarray(v, np.float32) for k, v in tensors.items() if not k.endswith(COUNTER)}
    shapes = {k: tuple(v.shape) for k, v in tensors.items()}
    source, _ = renamed_source(Source(Path("<tensors>"), shapes, tensors), rules_from(rename))
    return map_weights(graph, source, skip).tensors


# ---- the pairing table of ``netc weights import --show`` ----------------------------------------
# One row per spec tensor, in graph order: the spec's key, the file's key as stored (before any
# --rename), both shapes ("=" where equal) and what was done: "reshape 1x1 (Linear as conv)",
# "reshape 1x1 (conv as Linear)", "squeezed"/"unsqueezed" (size-1 axes only), "renamed by rule
# N"; "-" for a tensor taken as it is.
HEADER = ("spec tensor", "file key", "file shape", "spec shape", "conversion")


def pairing_table(mapped: Mapped) -> str:
    """The table of ``mapped``'s rows (module docstring), columns aligned, with a header."""
    rows = [HEADER]
    for row in mapped.rows:
        shape = dims(row.shape) if row.shape != row.file_shape else "="
        rows.append((row.key, row.file_key, dims(row.file_shape), shape,
                     "; ".join(row.conversions) or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER) - 1)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths)) + "  " + r[-1]
                     for r in rows)


def conversions_line(mapped: Mapped) -> str | None:
    """One line counting the tensors that were reshaped or renamed; None when none was."""
    counts: dict[str, int] = {}
    for row in mapped.rows:
        for done in row.conversions:
            kind = "renamed by --rename" if done.startswith("renamed") else done
            counts[kind] = counts.get(kind, 0) + 1
    if not counts:
        return None
    return "converted: " + ", ".join(f"{n} {kind}" for kind, n in counts.items())
