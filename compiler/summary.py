"""Per-node and total counts of a graph: shapes, parameters, MACs, receptive fields, memory.

Conventions (stated in the README): parameters are learnable weights (batch-norm running
statistics are buffers, not parameters); MACs are the multiply-accumulates of conv and fc layers
for one sample, the convention of the VGG and ResNet papers; activation memory is the float32
size of every node's output for one sample.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from compiler.ir import Graph
from compiler.ops import fmt_shape


@dataclass(frozen=True, slots=True)
class Row:
    name: str
    op: str
    shape: tuple[int, ...]
    params: int
    macs: int
    rf: int | None  # receptive field (height), None for flat vectors
    extra: str = ""  # survival p_l, drop-path, columns


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
            "layers": [
                {k: (list(v) if k == "shape" else v) for k, v in asdict(r).items()}
                for r in self.rows
            ],
        }


def receptive_fields(graph: Graph) -> dict[str, tuple[int, int] | None]:
    """(receptive field, jump) along the height axis for every feature-map node.

    rf_out = rf_in + d·(k − 1)·jump_in and jump_out = jump_in·s for windowed ops; joins take
    the largest field of their inputs, and the jump of those of the output's spatial size.
    """
    fields: dict[str, tuple[int, int] | None] = {}
    for node in graph:
        if node.op == "input":
            fields[node.name] = (1, 1) if len(node.shape) == 3 else None
            continue
        ins = [fields[i] for i in node.inputs]
        if len(node.shape) != 3 or any(f is None for f in ins):
            fields[node.name] = None
            continue
        shapes = [graph[i].shape for i in node.inputs]
        # A broadcast input (SE's Cx1x1 gate) adds its field but not its jump: the output's
        # pixels are spaced as the inputs of the output's own size.
        spaced = [f[1] for f, sh in zip(ins, shapes) if sh[1:] == node.shape[1:]]
        rf, jump = max(f[0] for f in ins), max(spaced or [f[1] for f in ins])
        geo = node.opdef.geometry(node.attrs, shapes)
        if geo is not None:
            (k, _), (s, _), (d, _) = geo
            rf, jump = rf + d * (k - 1) * jump, jump * s
        fields[node.name] = (rf, jump)
    return fields


def summarize(graph: Graph) -> Summary:
    rows = []
    fields = receptive_fields(graph)
    total_p = total_m = act = train_p = train_m = 0
    aux = training_only(graph)
    for node in graph:
        ins = [graph[i].shape for i in node.inputs]
        if node.op == "input":
            p = m = 0
        else:
            p = node.opdef.param_count(node.attrs, ins, node.shape)
            m = node.opdef.macs(node.attrs, ins, node.shape)
        if node.name in aux:
            train_p += p
            train_m += m
        else:
            total_p += p
            total_m += m
        size = 1
        for d in node.shape:
            size *= d
        act += 4 * size
        f = fields.get(node.name)
        rows.append(Row(node.name, node.op, node.shape, p, m, f[0] if f else None,
                        "training only" if node.name in aux else _extra(node)))
    names = graph.options.get("output_names") or tuple(graph.outputs)
    outputs = {n: graph[o].shape for n, o in zip(names, graph.outputs)}
    inputs = {k: v.shape for k, v in graph.inputs.items()}
    return Summary(graph.name, tuple(rows), inputs, outputs, total_p, total_m, act,
                   train_p, train_m)


def training_only(graph: Graph) -> set[str]:
    """Nodes that only ``training output``s need (auxiliary heads): absent at inference."""
    extra = graph.options.get("training_outputs") or {}
    if not extra:
        return set()
    needed = {n.name for n in graph.slice(list(graph.outputs))}
    return {n.name for n in graph.slice(list(extra.values()))} - needed


def _extra(node) -> str:
    if node.op == "residual" and node.attrs.get("survival", 1.0) < 1.0:
        return f"p={node.attrs['survival']:.4f}"
    if node.op == "mean" and node.attrs.get("columns"):
        return "columns " + ",".join(map(str, node.attrs["columns"]))
    return ""


def fold(summary: Summary, depth: int) -> list[Row]:
    """Rows folded to ``depth`` levels of the name hierarchy (as torchinfo's depth)."""
    groups: dict[str, list[Row]] = {}
    for r in summary.rows:
        key = ".".join(r.name.split(".")[:depth])
        groups.setdefault(key, []).append(r)
    out = []
    for key, rows in groups.items():
        if len(rows) == 1 and rows[0].name == key:
            out.append(rows[0])
            continue
        last = rows[-1]
        ops = {r.op for r in rows}
        op = rows[0].op if len(ops) == 1 else f"{len(rows)} nodes"
        out.append(Row(key, op, last.shape, sum(r.params for r in rows),
                       sum(r.macs for r in rows), last.rf))
    return out


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
