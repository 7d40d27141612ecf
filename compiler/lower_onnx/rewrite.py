"""Rewrites of a tape's recorded nodes before they are assembled: what a simplifier would do.

Consumers of netc's files ran simplifiers on them (onnxslim, onnx-simplifier) and found work
left over; a file should need none. Two rules, both on ONNX nodes (they see what the op faces
wrote, whatever op wrote it), run by :meth:`netc.compiler.lower_onnx.tape.Tape.finish` on a
graph and by the lowering on each function body:

1. **Nested Concats are one Concat.** A ``Concat`` input that is the output of another
   ``Concat`` on the same axis, read by nothing else and not an output, is replaced by that
   Concat's inputs, in order (Inception-v3's Mixed_7b/7c: ``concat[concat[a, b], concat[c, d],
   e, f]`` is one six-input Concat). Concatenation is associative, so the values are the same.
2. **No dead nodes.** A node none of whose outputs is read, on the way to an output, is
   dropped: a conv whose value only sets a ``crop``'s or ``resize``'s size (the op reads its
   shape, which the IR already knows, not its values), and the inner Concats of rule 1.

>>> from onnx import helper
>>> nodes = [helper.make_node("Concat", ["a", "b"], ["ab"], name="ab", axis=1),
...          helper.make_node("Relu", ["a"], ["unused"], name="unused"),
...          helper.make_node("Concat", ["ab", "c"], ["y"], name="y", axis=1)]
>>> [(n.name, list(n.input)) for n in tidy(nodes, ["y"])]
[('y', ['a', 'b', 'c'])]
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import onnx


def tidy(nodes: Sequence[onnx.NodeProto], outputs: Iterable[str]) -> list[onnx.NodeProto]:
    """``nodes`` (in order) with nested Concats merged and dead nodes dropped; the values
    named in ``outputs`` are kept and computed as before. The node protos are edited in place."""
    outputs = set(outputs)
    return live(merge_concats(nodes, outputs), outputs)


def merge_concats(nodes: Sequence[onnx.NodeProto], keep: set[str]) -> list[onnx.NodeProto]:
    """Rule 1 of the module docstring; merged inner Concats are left for :func:`live`."""
    reads = Counter(i for n in nodes for i in n.input)
    concats = {n.output[0]: n for n in nodes if _is_concat(n)}
    for node in nodes:  # in order: an inner Concat is already merged itself
        if not _is_concat(node):
            continue
        axis = _axis(node)
        inputs = []
        for value in node.input:
            inner = concats.get(value)
            if (inner is not None and _axis(inner) == axis and reads[value] == 1
                    and value not in keep):
                inputs.extend(inner.input)  # the inner node is dead now: reads move
            else:
                inputs.append(value)
        if len(inputs) != len(node.input):
            del node.input[:]
            node.input.extend(inputs)
    return list(nodes)


def live(nodes: Sequence[onnx.NodeProto], outputs: set[str]) -> list[onnx.NodeProto]:
    """Rule 2: the nodes some output depends on, in their order."""
    needed = set(outputs)
    kept = []
    for node in reversed(nodes):
        if any(o in needed for o in node.output):
            kept.append(node)
            needed.update(i for i in node.input if i)
    return kept[::-1]


def _is_concat(node: onnx.NodeProto) -> bool:
    return node.op_type == "Concat" and node.domain in ("", "ai.onnx")


def _axis(node: onnx.NodeProto) -> int:
    return next(a.i for a in node.attribute if a.name == "axis")
