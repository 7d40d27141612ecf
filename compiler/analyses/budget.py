"""What a net would take to build, worked out from the IR before any weight is drawn.

A shape-checked net can still be one nobody can build: ``conv(2**31 - 1, 3)``, or an input of
1x100000x100000 followed by ``fc``. :func:`check_memory` adds up the float32 weights (the arrays
``compile`` draws and the ONNX file holds), the float32 activations of one sample (what a
forward pass writes) and the largest working memory one op holds while it runs (an op's
``workspace`` face: attention's L x L scores, quadratic in the tokens, where its output is
only L x D), and refuses a net past the ``--max-memory`` budget with a located error that
names the numbers and the node that weighs most. It also keeps every count inside int64, the
integer type of ONNX dims and attributes.

>>> from netc.compiler.frontend.loader import load
>>> e = estimate(load("lenet5"))
>>> e.weight_bytes == 4 * e.params
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from netc.compiler.ir import Graph, Node
from netc.dsl.diagnostics import Diagnostic, DiagnosticError

FLOAT = 4  # bytes of a float32
INT64_MAX = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Estimate:
    params: int
    activations: int  # values, one sample, every node's output
    heaviest: Node | None  # the node holding the most bytes (weights + output + workspace)
    heaviest_bytes: int
    workspace: int = 0  # values, one sample: the most any one node holds while it runs
    workspace_node: Node | None = None

    @property
    def weight_bytes(self) -> int:
        return FLOAT * self.params

    @property
    def activation_bytes(self) -> int:
        return FLOAT * self.activations

    @property
    def workspace_bytes(self) -> int:
        return FLOAT * self.workspace

    @property
    def total(self) -> int:
        return self.weight_bytes + self.activation_bytes + self.workspace_bytes


def workspace(node: Node, ins: list, out: tuple[int, ...] | None = None) -> int:
    """Values ``node`` holds while it runs besides its output (0 for most ops): the op's
    ``workspace`` face; ``ins`` and ``out`` may be the shapes of another input size (a
    recipe's working size), ``out`` the node's own by default."""
    return node.opdef.workspace(node.attrs, ins, node.shape if out is None else out)


def estimate(graph: Graph) -> Estimate:
    """Weights, one sample's activations and the largest working memory of ``graph``, with
    the heaviest node. Working memory is freed when its op ends, so only the largest counts."""
    params = acts = scratch = 0
    heaviest = scratch_node = None
    most = -1
    for node in graph:
        size = math.prod(node.shape)
        p = w = 0
        if node.op != "input":
            ins = [graph[i].shape for i in node.inputs]
            if not node.shares:  # shared weights are counted once
                p = node.opdef.param_count(node.attrs, ins, node.shape)
            w = workspace(node, ins)
        params += p
        acts += size
        if w > scratch:
            scratch, scratch_node = w, node
        if FLOAT * (p + size + w) > most:
            heaviest, most = node, FLOAT * (p + size + w)
    return Estimate(params, acts, heaviest, most, scratch, scratch_node)


def _ints(value):
    """Every integer inside an attribute value (ints, pairs, nested tuples)."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, bool):
            continue
        if isinstance(v, int):
            yield v
        elif isinstance(v, (tuple, list)):
            stack.extend(v)


def check_int64(graph: Graph) -> None:
    """A located DiagnosticError if a dim or an integer attribute does not fit ONNX's int64
    (the op domains keep netc's own ops far inside; this guards every op, new ones too)."""
    diags = []
    for node in graph:
        bad = [d for d in node.shape if not -INT64_MAX - 1 <= d <= INT64_MAX]
        for key in node.attrs:
            bad += [v for v in _ints(node.attrs[key]) if not -INT64_MAX - 1 <= v <= INT64_MAX]
        if bad:
            v = bad[0]
            shown = f"{v:,}" if v.bit_length() < 200 else f"an integer of {v.bit_length()} bits"
            diags.append(Diagnostic(node.span, f"{node.name} ({node.op}): {shown} does not "
                                               "fit the 64-bit integers of an ONNX model"))
    if diags:
        raise DiagnosticError(diags)


def check_memory(graph: Graph, max_bytes: int) -> Estimate:
    """The estimate, or a DiagnosticError at the heaviest node if it is past ``max_bytes``."""
    from netc.compiler.analyses.summary import human_bytes

    e = estimate(graph)
    if e.total <= max_bytes and max(e.params, e.activations, e.workspace) <= INT64_MAX:
        return e
    node = e.heaviest
    where = node.span if node is not None else None
    what = ""
    if node is not None:
        what = (f"; the largest part is {node.name} ({node.op}, output "
                f"{'x'.join(map(str, node.shape))}): {human_bytes(e.heaviest_bytes)}")
    raise DiagnosticError(Diagnostic(
        where, f"this net needs about {human_bytes(e.total)} for one sample "
               f"({e.params:,} parameters x 4 bytes = {human_bytes(e.weight_bytes)}, "
               f"activations {human_bytes(e.activation_bytes)}{_working(e)}), more than "
               f"--max-memory {human_bytes(max_bytes)}{what}"))


def _working(e: Estimate) -> str:
    """The working-memory part of the message, where a node has any."""
    from netc.compiler.analyses.summary import human_bytes

    if not e.workspace or e.workspace_node is None:
        return ""
    return (f", working memory {human_bytes(e.workspace_bytes)} while "
            f"{e.workspace_node.name} ({e.workspace_node.op}) runs")
