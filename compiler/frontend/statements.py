"""The statements of a net: inputs, bindings, outputs, ``let`` and ``with`` declarations.

Rules:

1. ``input image: 3x224x224, mean=..., std=..., scale=..., layout=...`` declares an input node
   (its shape CxHxW or a length, without the batch axis; ``--input`` may replace it) and how
   images are prepared for it.
2. ``x = chain`` binds a value of the net; ``output y = chain`` also declares an output, and
   ``output x`` declares a bound value one; a name is bound once. A name bound to a node of
   another name becomes an alias of that node.
3. ``training output aux = chain, weight=w`` is an output of the torch module in training mode
   only, with its share of the loss (GoogLeNet's 0.3 unless given).
4. ``let name = value`` binds a number, list or word for the statements after it; bound to
   a block, it names a *description*: each use of the name makes new layers (new weights).
   ``share name = block`` binds one set of layers instead: every use applies the layers (the
   weights) its first use made (:mod:`netc.compiler.frontend.sharing`).
5. ``with droppath(local=, global=)`` and ``with stochastic_depth(p_L=, mode=)`` are net-wide
   declarations of probabilities in [0, 1] (:class:`netc.compiler.ir.NetOptions`).
6. A chain on its own is computed; the last one is the net's output when it declares none.
"""

from __future__ import annotations

from typing import Any

from netc.compiler.frontend.application import Applier
from netc.compiler.frontend.arithmetic import is_num
from netc.compiler.frontend.builder import GraphBuilder
from netc.compiler.frontend.context import Context
from netc.compiler.frontend.expressions import Evaluator
from netc.compiler.frontend.values import (
    POISON,
    Block,
    Poison,
    ShareRecord,
    SharedBlock,
    Value,
    show,
    starts_with_value,
)
from netc.compiler.ir import InputSpec, Node
from netc.compiler.ops import Attrs, fmt_shape
from netc.compiler.ops.domains import MAX_SIZE
from netc.dsl import ast

# The loss weight of an auxiliary head (``training output``) unless it says: GoogLeNet's 0.3.
TRAINING_OUTPUT_WEIGHT = 0.3
INPUT_OPTIONS = {"mean", "std", "scale", "layout"}
# The net-wide declarations (``with droppath(0.15, 0.5)``) and their parameters, in order.
DECLARATIONS = {"droppath": ("local", "global"), "stochastic_depth": ("p_L", "mode")}


class NetStatements:
    """Runs the statements of one net (rules in the module docstring).

    ``input_shapes`` replace declared input shapes (``--input``: input name, or None for the
    first input -> shape). ``output_names`` collects the names outputs are declared with.
    """

    def __init__(self, ctx: Context, builder: GraphBuilder, evaluator: Evaluator,
                 applier: Applier, input_shapes: dict[str | None, tuple[int, ...]]):
        self.ctx = ctx
        self.error = ctx.error  # every diagnostic goes to the shared context
        self.builder = builder
        self.evaluator = evaluator
        self.applier = applier
        self.values = evaluator.values
        self.input_shapes = input_shapes
        self.output_names: list[str] = []
        self._rules = {
            ast.InputStmt: self.input, ast.WithStmt: self.declaration, ast.LetStmt: self.let,
            ast.ShareStmt: self.share,
            ast.BindStmt: self.bind, ast.OutputStmt: self.output, ast.ExprStmt: self.chain,
        }

    def run(self, stmt: ast.Node, env: dict[str, Any]) -> Value | Poison | None:
        """Run one statement; the value it computes (None for a declaration)."""
        return self._rules[type(stmt)](stmt, env)

    def expression(self, e: ast.Node, env) -> Value | Poison:
        """The value of a chain that starts from a value of the net."""
        block = self.evaluator.eval(e, env)
        if block is POISON:
            return POISON
        if not isinstance(block, Block):
            return self.evaluator.not_a_block(block, e)
        if not starts_with_value(block):
            return self.error(e.span, "this chain has no input: start it from a value, "
                                      "as in image -> ...")
        return self.applier.apply(block, None)

    # ---- values and outputs (rules 2, 3, 6) -------------------------------------------------
    def chain(self, stmt: ast.ExprStmt, env) -> Value | Poison:
        """A chain on its own (rule 6)."""
        return self.expression(stmt.value, env)

    def bind(self, stmt: ast.BindStmt | ast.OutputStmt, env) -> Value | Poison:
        """``name = chain``: the value, bound to ``name``."""
        if stmt.name in self.values:
            return self.error(stmt.span, f"{stmt.name!r} is already defined")
        v = self.expression(stmt.value, env)
        self.values[stmt.name] = v
        graph = self.ctx.graph
        if isinstance(v, Value) and stmt.name not in graph.nodes:
            graph.aliases[stmt.name] = v.node
        return v

    def output(self, stmt: ast.OutputStmt, env) -> Value | Poison | None:
        """``output name = chain`` or ``output name``: an output of the net."""
        if stmt.training:
            self.training_output(stmt, env)  # never the net's implicit last chain
            return None
        if stmt.value is not None:
            v = self.bind(stmt, env)
        else:
            v = self.values.get(stmt.name)
            if v is None:
                return self.error(stmt.span, f"output {stmt.name!r} is not a value of this net")
        if isinstance(v, Value):
            self.ctx.graph.outputs.append(v.node)
            self.output_names.append(stmt.name)
        return v

    def training_output(self, stmt: ast.OutputStmt, env) -> Value | Poison:
        """``training output aux1 = ...``: computed by the torch module in training mode only;
        absent at inference, from ONNX and from the totals (the summary counts it apart)."""
        if stmt.name in self.values:
            return self.error(stmt.span, f"{stmt.name!r} is already defined")
        weight = TRAINING_OUTPUT_WEIGHT
        for kw in stmt.options:
            value = self.evaluator.eval(kw.value, env)
            if kw.name != "weight":
                return self.error(kw.span, f"a training output takes weight=...; got {kw.name!r}")
            if not (is_num(value) and value >= 0):
                return self.error(kw.span, f"weight must be a number >= 0; got {show(value)}")
            weight = float(value)
        v = self.expression(stmt.value, env)
        self.values[stmt.name] = v
        if isinstance(v, Value):
            graph = self.ctx.graph
            if stmt.name not in graph.nodes:
                graph.aliases[stmt.name] = v.node
            options = graph.options
            graph.options = options.replace(
                training_outputs={**options.training_outputs, stmt.name: v.node},
                training_output_weights={**options.training_output_weights, stmt.name: weight})
        return v

    def let(self, stmt: ast.LetStmt, env) -> Poison | None:
        """``let table = [...]``: a number, list or word (rule 4)."""
        if stmt.name in env or stmt.name in self.values:
            return self.error(stmt.span, f"{stmt.name!r} is already defined")
        env[stmt.name] = self.evaluator.eval(stmt.value, env)
        return None

    def declare_shares(self, body: list[ast.Node]) -> None:
        """Note the names the net's ``share`` statements bind before any statement runs, so
        a use before its declaration says so (not "unknown layer")."""
        self.evaluator.shares_later.update(
            (s.name, s.span) for s in body if isinstance(s, ast.ShareStmt))

    def share(self, stmt: ast.ShareStmt, env) -> Poison | None:
        """``share tower = block``: one set of layers for every use of ``tower`` (rule 4)."""
        if stmt.name in env or stmt.name in self.values:
            return self.error(stmt.span, f"{stmt.name!r} is already defined")
        self.evaluator.shares_later.pop(stmt.name, None)
        self.evaluator.sharing = stmt.name  # its own name inside is a recursion
        try:
            block = self.evaluator.eval(stmt.value, env)
        finally:
            self.evaluator.sharing = None
        self.evaluator.shared.add(stmt.name)
        if block is not POISON and not isinstance(block, Block):
            block = self.error(stmt.value.span, f"share binds a block of layers; got "
                                                f"{show(block)}")
        elif block is not POISON and starts_with_value(block):
            block = self.error(stmt.value.span, "share binds layers to apply, not a value: "
                                                "write the chain without its input, then "
                                                f"x -> {stmt.name}")
        env[stmt.name] = block if block is POISON else \
            SharedBlock(block, stmt.name, ShareRecord(), stmt.span)
        return None

    # ---- inputs (rule 1) --------------------------------------------------------------------
    def input(self, stmt: ast.InputStmt, env) -> Poison | None:
        """``input image: 3x224x224, ...``: an input node and its :class:`InputSpec`."""
        if stmt.name in self.values:
            return self.error(stmt.span, f"{stmt.name!r} is already defined")
        shape = self.input_shape(stmt, env)
        problem = None if shape is None else _input_shape_problem(shape)
        if problem is not None:
            self.error(stmt.span, problem)
        spec = None
        if shape is not None and problem is None:
            stmt = ast.InputStmt(stmt.span, stmt.name, shape, stmt.options)
            spec = self.input_spec(stmt, env)
        if spec is None:
            # Known but failed: later uses stay quiet instead of "unknown layer 'image'".
            self.values[stmt.name] = POISON
            return POISON
        self.builder.record(Node(stmt.name, "input", (), Attrs(), stmt.shape, stmt.span))
        self.builder.used.add(stmt.name)
        self.ctx.graph.inputs[stmt.name] = spec
        self.values[stmt.name] = Value(stmt.name, stmt.shape)
        return None

    def input_shape(self, stmt: ast.InputStmt, env) -> tuple[int, ...] | None:
        """The declared shape with its ``{expr}`` dimensions evaluated, or the ``--input``
        shape given for this input (by name, or for the first input)."""
        key = stmt.name if stmt.name in self.input_shapes else None
        if key in self.input_shapes and (key is not None or not self.ctx.graph.inputs):
            return tuple(self.input_shapes[key])
        dims = []
        for d in stmt.shape:
            v = d if isinstance(d, int) else self.evaluator.eval(d, env)
            if v is POISON:
                return None
            if isinstance(v, bool) or not isinstance(v, int):
                self.error(d.span, f"an input dimension must be an integer; got {show(v)}")
                return None
            dims.append(v)
        return tuple(dims)

    def input_spec(self, stmt: ast.InputStmt, env) -> InputSpec | None:
        """How images are prepared for the input: its options checked, or None after an error."""
        opts = self.input_options(stmt, env)
        if opts is None:
            return None
        where = {kw.name: kw.span for kw in stmt.options}
        c = stmt.shape[0]
        for k in ("mean", "std"):
            if k in opts:
                v = opts[k]
                if is_num(v):
                    v = [v] * c
                if not (isinstance(v, list) and len(v) == c and all(is_num(i) for i in v)):
                    self.error(where[k], f"input {k} needs {c} finite numbers (one per "
                                         f"channel); got {show(opts[k])}")
                    return None
                if k == "std" and any(i <= 0 for i in v):
                    self.error(where[k], f"input std must be positive (it divides); got "
                                         f"{show(opts[k])}")
                    return None
                opts[k] = tuple(float(i) for i in v)
        scale = opts.get("scale", 1.0)
        if not (is_num(scale) and scale > 0):
            self.error(where.get("scale", stmt.span), "input scale must be a positive number "
                                                      f"(255 for Caffe); got {show(scale)}")
            return None
        layout = opts.get("layout", "rgb")
        if not (isinstance(layout, str) and layout in ("rgb", "bgr", "gray")):
            self.error(stmt.span, f"input layout must be rgb, bgr or gray; got {_quoted(layout)}")
            return None
        return InputSpec(stmt.name, stmt.shape, opts.get("mean"), opts.get("std"),
                         float(opts.get("scale", 1.0)), str(layout))

    def input_options(self, stmt: ast.InputStmt, env) -> dict[str, Any] | None:
        """The input's options evaluated, each given once and known; None after an error."""
        opts = {}
        for kw in stmt.options:
            if kw.name in opts:
                self.error(kw.span, f"input option {kw.name!r} given twice")
                return None
            v = self.evaluator.eval(kw.value, env)
            if v is POISON:
                return None
            opts[kw.name] = v
        for kw in stmt.options:
            if kw.name not in INPUT_OPTIONS:
                self.error(kw.span, f"input has no option {kw.name!r}; "
                                    f"it takes {', '.join(sorted(INPUT_OPTIONS))}")
                return None
        return opts

    # ---- declarations (rule 5) --------------------------------------------------------------
    def declaration(self, stmt: ast.WithStmt, env) -> None:
        """``with droppath(...)`` or ``with stochastic_depth(...)``."""
        graph = self.ctx.graph
        if stmt.name not in DECLARATIONS:
            self.error(stmt.span, f"unknown declaration {stmt.name!r}; netc knows "
                                  "droppath(local=, global=) and stochastic_depth(p_L=, mode=)")
            return
        params = self.declared(stmt, DECLARATIONS[stmt.name], env)
        if params is None:
            return
        if stmt.name == "stochastic_depth":
            mode = params.pop("mode", "batch")
            if not (isinstance(mode, str) and mode in ("batch", "row")):
                self.error(stmt.span, "stochastic_depth: mode must be batch (one draw per "
                                      f"block per mini-batch) or row (per sample); got "
                                      f"{_quoted(mode)}")
                return
            graph.options = graph.options.replace(stochastic_depth_mode=str(mode))
        for k, v in params.items():
            if not (is_num(v) and 0 <= v <= 1):
                self.error(stmt.span, f"{stmt.name}: {k} must be a probability in [0, 1]; "
                                      f"got {show(v)}")
                return
        if stmt.name == "droppath":
            graph.options = graph.options.replace(
                droppath_local=float(params.get("local", 0.15)),
                droppath_global=float(params.get("global", 0.5)))
        else:
            graph.options = graph.options.replace(stochastic_depth=float(params.get("p_L", 0.5)))

    def declared(self, stmt: ast.WithStmt, names: tuple[str, ...], env) -> dict | None:
        """The declaration's arguments by parameter name: each known and given once."""
        if len(stmt.args) > len(names):
            self.error(stmt.span, f"{stmt.name} takes ({', '.join(names)}); "
                                  f"got {len(stmt.args)} values")
            return None
        params = {k: self.evaluator.eval(a, env) for k, a in zip(names, stmt.args)}
        for kw in stmt.kwargs:
            if kw.name not in names:
                self.error(stmt.span, f"{stmt.name} has no parameter {kw.name!r}")
                return None
            if kw.name in params:
                self.error(kw.span, f"{stmt.name}: {kw.name} given twice")
                return None
            params[kw.name] = self.evaluator.eval(kw.value, env)
        return None if any(v is POISON for v in params.values()) else params


def _quoted(v: Any) -> str:
    """A value in a message: a word in quotes (as before), anything else as the spec writes it."""
    return repr(str(v)) if isinstance(v, str) else show(v)


def _input_shape_problem(shape: tuple[int, ...]) -> str | None:
    """Why an input shape cannot be, or None: CxHxW or a length, positive, buildable."""
    if len(shape) == 4 and shape[0] == 1:
        rest = fmt_shape(shape[1:])
        return (f"input shape {fmt_shape(shape)} has 4 axes; shapes exclude the batch axis: "
                f"write {rest}")
    if len(shape) not in (1, 3) or any(d <= 0 for d in shape):
        return f"input shape must be CxHxW (or a length); got {fmt_shape(shape)}"
    if any(d > MAX_SIZE for d in shape):
        return f"input shape {fmt_shape(shape)}: netc builds axes up to {MAX_SIZE:,}"
    return None
