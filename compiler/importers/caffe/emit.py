"""Writing an :class:`~netc.compiler.importers.caffe.net.ImportedNet` as readable netc text.

The layout rules:

1. A node read by exactly one layer is written inline, in its reader's expression: a linear run
   of layers becomes one ``->`` chain, and the branches of a Concat or Eltwise become the
   branches of a statement-level join (``concat[a -> conv(64, 1) as b, ...]``).
2. A node read by several layers (or twice by one) is bound to a value named like its label
   (``pool2_3x3_s2 = ...``), so the value name and the netc node name agree; a node nobody reads
   is an ``output``. Statements follow the order of the Caffe file.
3. An expression that fits in 100 columns is one line; otherwise each ``->`` step and each join
   branch gets a line of its own.
4. A chain longer than ``MAX_RUN`` steps is cut into statements of at most that many, so that
   no statement nests deeper than the parser and elaborator comfortably recurse.
"""

from __future__ import annotations

from dataclasses import dataclass

from netc.compiler.importers.caffe.net import ImportedNet, Node

WIDTH = 99
MAX_RUN = 60


@dataclass
class Step:
    """One op in a chain: ``conv(64, 3) as conv1``, with an optional trailing comment."""

    call: str
    label: str | None
    comment: str = ""

    def text(self) -> str:
        return f"{self.call} as {self.label}" if self.label else self.call


@dataclass
class Ref:
    name: str


@dataclass
class Join:
    kind: str
    branches: list
    label: str | None


@dataclass
class Chain:
    head: Ref | Join
    steps: list[Step]


Expr = Ref | Join | Chain
Line = tuple[str, str]  # (code, comment)


class Writer:
    """Builds the expression of each statement and lays it out (rules in the module docstring)."""

    def __init__(self, net: ImportedNet):
        self.net = net
        self.cuts = self.long_runs()

    def long_runs(self) -> set[int]:
        """Nodes that end a run of ``MAX_RUN`` inlined steps and are bound to cut it (rule 4)."""
        cuts: set[int] = set()
        run: dict[int, int] = {}
        for node in self.net.nodes:
            inlined = [i for i in node.inputs if not self.net.nodes[i].is_input
                       and self.net.nodes[i].consumers == 1 and i not in cuts]
            run[node.index] = len(node.calls) + sum(run[i] for i in inlined)
            if run[node.index] >= MAX_RUN and node.consumers == 1:
                cuts.add(node.index)
        return cuts

    def bound(self, node: Node) -> bool:
        return node.is_input or node.consumers != 1 or node.index in self.cuts

    def operand(self, index: int) -> Expr:
        node = self.net.nodes[index]
        return Ref(node.name) if self.bound(node) else self.expr(node)

    def expr(self, node: Node) -> Expr:
        steps = [Step(c, l) for c, l in zip(node.calls, node.labels)]
        steps[-1].comment = node.comment
        if node.join:
            head = Join(steps[0].call, [self.operand(i) for i in node.inputs], steps[0].label)
            return Chain(head, steps[1:])
        src = self.operand(node.inputs[0])
        if isinstance(src, Chain):
            return Chain(src.head, src.steps + steps)
        return Chain(src, steps)

    # ---- layout -----------------------------------------------------------------------------
    def flat(self, e: Expr) -> str | None:
        """The one-line form, or None where a comment needs a line end."""
        if isinstance(e, Ref):
            return e.name
        if isinstance(e, Join):
            parts = [self.flat(b) for b in e.branches]
            if any(p is None for p in parts):
                return None
            return f"{e.kind}[{', '.join(parts)}]" + (f" as {e.label}" if e.label else "")
        if any(s.comment for s in e.steps):
            return None
        head = self.flat(e.head)
        return None if head is None else " -> ".join([head] + [s.text() for s in e.steps])

    def lines(self, e: Expr, indent: int) -> list[Line]:
        """``e`` laid out at column ``indent``: the first line carries no indentation."""
        one = self.flat(e)
        if one is not None and indent + len(one) <= WIDTH:
            return [(one, "")]
        pad = " " * (indent + 4)
        if isinstance(e, Join):
            out: list[Line] = [(f"{e.kind}[", "")]
            for i, branch in enumerate(e.branches):
                sub = self.lines(branch, indent + 4)
                sub[0] = (pad + sub[0][0], sub[0][1])
                if i < len(e.branches) - 1:
                    sub[-1] = (sub[-1][0] + ",", sub[-1][1])
                out.extend(sub)
            out.append((" " * indent + "]" + (f" as {e.label}" if e.label else ""), ""))
            return out
        assert isinstance(e, Chain)
        out = self.lines(e.head, indent)
        out.extend((f"{pad}-> {s.text()}", s.comment) for s in e.steps)
        return out

    def statement(self, node: Node) -> list[str]:
        keyword = "output " if node.consumers == 0 else ""  # nobody reads it
        first = f"  {keyword}{node.name} = "
        body = self.lines(self.expr(node), 2)
        body[0] = (first + body[0][0], body[0][1])
        # ";" ends the statement: a label (`as pool2`) would otherwise run on into the next
        # statement's name, since a label may be several parts (`as conv{s}_{i}`).
        body[-1] = (body[-1][0] + ";", body[-1][1])
        return [f"{code}  # {comment}" if comment else code for code, comment in body]

    def write(self, source: str) -> str:
        net = self.net
        out = [
            f"# Imported from {source} by `netc import caffe`.",
            "# Caffe layer names are the labels: characters other than letters, digits and _",
            "# became _ (inception_3a/1x1 -> inception_3a_1x1). Pooling keeps Caffe's ceil",
            "# rounding (ceil=true); stride is always written, since Caffe's default is 1.",
            "# Weights: netc compile/weights import --weights FILE.caffemodel reads Caffe's by",
            "# layer name. A deploy file does not say how images were prepared (Caffe's ImageNet",
            "# nets take BGR pixels in 0..255 minus a mean): add layout=bgr, scale=255,",
            "# mean=[...] to the input to match (a train_val file's data layer says it).",
        ]
        if net.dropped:
            out.append("# From the train_val file, left out of this deploy net:")
            out.extend(f"#   {line}" for line in net.dropped)
        if net.renamed:
            out.append("# Renamed to stay unique or valid: " + ", ".join(
                f"{k} -> {v}" for k, v in net.renamed.items()))
        out.append(f"net {net.name} {{")
        for node in net.nodes:
            if node.is_input:
                c, h, w = node.shape
                out.append(f"  input {node.name}: {c}x{h}x{w}{node.options}")
        # Layers that share weights by param name: one block applied at each (param_sharing.py).
        out.extend(f"  share {name} = {call};" for name, call in net.shares.items())
        for node in net.nodes:
            if not node.is_input and self.bound(node):
                out.extend(self.statement(node))
        out.append("}")
        return "\n".join(out) + "\n"


def write_spec(net: ImportedNet, source: str) -> str:
    """The netc spec text of ``net``; ``source`` names the prototxt in the header comment."""
    return Writer(net).write(source)
