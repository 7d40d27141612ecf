"""Per-node and total counts of a graph: shapes, parameters, MACs, receptive fields, memory.

Conventions (stated in the README): parameters are learnable weights (batch-norm running
statistics are buffers, not parameters); MACs are the multiply-accumulates of conv and fc layers
for one sample, the convention of the VGG and ResNet papers; activation memory is the float32
size of every node's output for one sample. Non-trainable state (batch norm's running mean and
variance) is counted apart, as Keras's "non-trainable params" (ResNet-50: 53,120). Each row
also holds the op's window (kernel, stride, dilation) and, where a node does not simply read
the row above (joins, branches), the names it reads: Keras's "connected to". A layer that
shares another's weights (``share``; Caffe's ``param { name }``) counts its MACs but no
parameters, and its row says whose weights it uses: shared weights are counted once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from netc.compiler.analyses.receptive import fields
from netc.compiler.ir import Graph
from netc.compiler.ops import fmt_shape


@dataclass(frozen=True, slots=True)
class Row:
    name: str
    op: str
    shape: tuple[int, ...]
    params: int
    macs: int
    rf: int | None  # receptive field (height), None for flat vectors
    extra: str = ""  # survival p_l, drop-path, columns
    kernel: tuple[int, ...] | None = None  # window of conv and pool ops (None: pointwise)
    stride: tuple[int, ...] | None = None
    dilation: tuple[int, ...] | None = None
    inputs: tuple[str, ...] = ()  # what a node reads, where that is not just the row above


@dataclass(frozen=True, slots=True)
class Summary:
    name: str
    rows: tuple[Row, ...]
    inputs: dict[str, tuple[int, ...]]
    outputs: dict[str, tuple[int, ...]]
    params: int
    macs: int
    activation_bytes: int
    # Nodes only training-only outputs need (auxiliary heads): counted apart, not in the totals.
    training_params: int = 0
    training_macs: int = 0
    buffers: int = 0  # non-trainable state (batch-norm running statistics) at inference

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "inputs": {k: list(v) for k, v in self.inputs.items()},
            "outputs": {k: list(v) for k, v in self.outputs.items()},
            "params": self.params,
            "macs": self.macs,
            "activation_bytes": self.activation_bytes,
            "training_params": self.training_params,
            "training_macs": self.training_macs,
            "non_trainable": self.buffers,
            "layers": [
                {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(r).items()}
                for r in self.rows
            ],
        }


def receptive_fields(graph: Graph) -> dict[str, tuple[int, int] | None]:
    """(receptive field, jump) along the height axis for every feature-map node (None past a
    flat vector or a rearrangement): :func:`netc.compiler.analyses.receptive.fields`' height.

    rf_out = rf_in + d·(k − 1)·jump_in and jump_out = jump_in·s for windowed ops; joins take
    the largest field of their inputs, and the jump of those of the output's spatial size.
    """
    return {name: None if f is None else (f.size[0], f.jump[0])
            for name, f in fields(graph).items()}


def summarize(graph: Graph) -> Summary:
    """The per-node rows and the totals of ``graph`` (see the module docstring)."""
    rows = []
    rf_of = receptive_fields(graph)
    total_p = total_m = total_b = act = train_p = train_m = 0
    aux = training_only(graph)
    # An owner used first by a training output holds weights that inference uses too.
    owned = {n.shares for n in graph if n.shares and n.name not in aux}
    previous = None
    for node in graph:
        ins = [graph[i].shape for i in node.inputs]
        geo = None
        if node.op == "input":
            p = m = 0
        else:
            # A sharing layer's weights are its owner's, counted once, in the owner's row.
            p = 0 if node.shares else node.opdef.param_count(node.attrs, ins, node.shape)
            m = node.opdef.macs(node.attrs, ins, node.shape)
            geo = node.opdef.geometry(node.attrs, ins) if len(node.shape) == 3 else None
            if (node.name not in aux or node.name in owned) and not node.shares:
                total_b += node.opdef.buffer_count(node.attrs, ins, node.shape)
        if node.name in aux and node.name not in owned:
            train_p += p
        else:
            total_p += p
        if node.name in aux:
            train_m += m
        else:
            total_m += m
        size = 1
        for d in node.shape:
            size *= d
        act += 4 * size
        f = rf_of.get(node.name)
        # "connected to" (Keras): a join's inputs, or a node that does not read the row above.
        joined = tuple(node.inputs) if list(node.inputs) not in ([], [previous]) else ()
        kernel, stride, dilation = _window(node, geo)
        rows.append(Row(node.name, node.op, node.shape, p, m, f[0] if f else None,
                        "training only" if node.name in aux else _extra(node),
                        kernel, stride, dilation, joined))
        previous = node.name
    names = graph.options.output_names or tuple(graph.outputs)
    outputs = {n: graph[o].shape for n, o in zip(names, graph.outputs)}
    inputs = {k: v.shape for k, v in graph.inputs.items()}
    return Summary(graph.name, tuple(rows), inputs, outputs, total_p, total_m, act,
                   training_params=train_p, training_macs=train_m, buffers=total_b)


def _window(node, geo):
    """(kernel, stride, dilation) as the op was written, for the k/s column.

    ``geometry`` is what a receptive field needs, which is not always the op's own window: a
    deconv's is the ceil(F/S) input pixels one output pixel sees, at stride 1. Where the op
    has a kernel and a stride of its own, those are shown.
    """
    if geo is None:
        return None, None, None
    attrs = node.attrs
    kernel, stride = attrs.get("kernel"), attrs.get("stride")
    if isinstance(kernel, tuple) and isinstance(stride, tuple):
        dilation = attrs.get("dilation")
        return kernel, stride, dilation if isinstance(dilation, tuple) else geo[2]
    if geo == ((1, 1), (1, 1), (1, 1)):  # a value-to-value map (permute): no window to show
        return None, None, None
    return geo


def training_only(graph: Graph) -> set[str]:
    """Nodes that only ``training output``s need (auxiliary heads): absent at inference."""
    extra = graph.options.training_outputs
    if not extra:
        return set()
    needed = {n.name for n in graph.slice(list(graph.outputs))}
    return {n.name for n in graph.slice(list(extra.values()))} - needed


def _extra(node) -> str:
    if node.shares:
        return f"shares {node.shares}"
    if node.op == "residual" and node.attrs.get("survival", 1.0) < 1.0:
        return f"p={node.attrs['survival']:.4f}"
    if node.op == "mean" and node.attrs.get("columns"):
        return "columns " + ",".join(map(str, node.attrs["columns"]))
    if node.op == "fc" and node.attrs.get("fit") is not None:
        return f"fit={node.attrs['fit']}"  # solved by netc fit, not by training
    return ""


def fold(summary: Summary, depth: int) -> list[Row]:
    """Rows folded to ``depth`` levels of the name hierarchy (as torchinfo's depth)."""
    groups: dict[str, list[Row]] = {}
    above = {r.name: (summary.rows[k - 1].name if k else None)
             for k, r in enumerate(summary.rows)}
    for r in summary.rows:
        key = ".".join(r.name.split(".")[:depth])
        groups.setdefault(key, []).append(r)
    out = []
    before: set[str] = set()  # the names of the previous group
    for key, rows in groups.items():
        names = {r.name for r in rows}
        if len(rows) == 1 and rows[0].name == key:
            out.append(rows[0])
            before = names
            continue
        last = rows[-1]
        ops = {r.op for r in rows}
        op = rows[0].op if len(ops) == 1 else f"{len(rows)} nodes"
        # A group reads what its nodes read from outside it; reading only the previous group
        # is the plain chain, as for single nodes. (Row.inputs is empty for chains: the
        # node's own inputs are looked at.)
        reads = tuple(dict.fromkeys(i for r in rows for i in _reads(r, above[r.name])
                                    if i not in names))
        if set(reads) <= before:
            reads = ()
        before = names
        out.append(Row(key, op, last.shape, sum(r.params for r in rows),
                       sum(r.macs for r in rows), last.rf, inputs=reads))
    return out


def _reads(row: Row, above: str | None) -> tuple[str, ...]:
    if row.inputs:
        return row.inputs
    return (above,) if above and row.op != "input" else ()  # a chain reads the row above


def one_line(summary: Summary) -> str:
    """``vgg16: 138,357,544 params, 15.47 G MACs, 3x224x224 -> 1000``; a net with auxiliary
    heads adds ``(+3,326,696 in training-only outputs)`` after its inference count."""
    ins = ", ".join(fmt_shape(s) for s in summary.inputs.values())
    outs = ", ".join(fmt_shape(s) for s in summary.outputs.values())
    aux = (f" (+{summary.training_params:,} in training-only outputs)"
           if summary.training_params else "")
    return (f"{summary.name}: {summary.params:,} params{aux}, {human(summary.macs)} MACs, "
            f"{ins} -> {outs}")


def human(n: float) -> str:
    """``15.47 G``, ``724.41 M``, ``512.00 k``: counts as the papers write them."""
    for div, suffix in ((1e12, " T"), (1e9, " G"), (1e6, " M"), (1e3, " k")):
        if abs(n) >= div:
            return f"{n / div:.2f}{suffix}"
    return f"{n:g}"


def human_bytes(n: int) -> str:
    for div, suffix in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if n >= div:
            return f"{n / div:.1f} {suffix}"
    return f"{n} B"
