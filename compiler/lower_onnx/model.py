"""Lowering to ONNX, directly from the IR: no tracing, and no torch anywhere on this path.

:func:`lower` walks the IR graph in order and asks each op's registry entry for its ONNX nodes
(``OpDef.to_onnx``), recording them on a :class:`netc.compiler.lower_onnx.tape.Tape`:

- node and value names are the IR names (``layer1.basic1.conv1``), initializers are the weights
  under their state-dict names (``layer1.basic1.conv1.weight``): the same arrays the PyTorch
  lowering holds, from :func:`netc.compiler.numerics.seeded_weights.init_weights` or the
  caller's dict of arrays (``netc.runtime.weights.load_weights`` reads files);
- inference semantics: dropout writes no node, mean joins are plain means, batch norm is folded
  into the conv before it (:mod:`netc.compiler.passes.fold_bn`), stochastic depth scales each
  body by its survival p_l (folded into the body's last layer where it is linear);
- a layer that shares another's weights (``Node.shares``) reads the owner's initializers: one
  initializer, read by every node that applies it (unless folding a batch norm that is not
  shared made their weights differ: then each keeps its own, computing the same numbers);
- graph outputs carry the names the spec declares (``output y13 = ...``: value ``y13``, while
  its node keeps the IR name), or the IR names where it declares none;
- ``outputs`` adds intermediate values as extra graph outputs (names resolved like taps);
- ``functions=True`` turns every definition call (``layer1.basic1``, ``inception_4c``,
  ``block1.fractal1``) into a call of an ONNX model-local function, one function per distinct
  body, so the file keeps the structure the spec's author wrote; the flat default is what
  runs fastest. Both compute the same numbers;
- ``opset`` (13 to 18, default 18) is the ONNX opset the nodes are written in: each op face
  writes one attribute form and the tape puts it in the target opset's form
  (:mod:`netc.compiler.lower_onnx.tape`).

Before assembly the nodes are tidied (:mod:`netc.compiler.lower_onnx.rewrite`): nested Concats
on one axis are one Concat, and a node no output reads (a conv that only gives a ``crop`` its
size) is not written, nor its weights, so a simplifier finds nothing to remove. The model is
checked (``onnx.checker`` full check, shape inference against the IR) before it is returned;
the command line writes it atomically (``netc.runtime.files.save_onnx``).

    >>> from netc.compiler.frontend.loader import load
    >>> model = lower(load("resnet18"))
    >>> len(model.graph.node), model.graph.node[0].name
    (49, 'conv1')
"""

from __future__ import annotations

import json
from dataclasses import replace
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np
import onnx
from netc.compiler.ir import Graph, Node
from netc.compiler.lower_onnx.tape import MIN_OPSET, OPSET, FunctionTape, LoweringError, Tape
from netc.compiler.numerics.seeded_weights import init_weights
from netc.compiler.passes.fold_bn import fold_bn as fold_bn_pass
from netc.compiler.passes.fold_survival import fold_survival
from netc.dsl.diagnostics import UserError

__all__ = ["lower", "resolve_outputs", "LoweringError"]


def lower(graph: Graph, weights: Mapping[str, np.ndarray] | None = None, *, seed: int = 0,
          outputs: Iterable[str] = (), fold_bn: bool = True, fp16: bool = False,
          functions: bool = False, opset: int = OPSET,
          progress: Callable[[int, int], None] | None = None) -> onnx.ModelProto:
    """The checked ONNX model of ``graph`` (see the module docstring for each option).

    ``weights`` are keyed like :func:`netc.compiler.numerics.seeded_weights.init_weights`; None
    draws them with ``seed``. ``outputs`` are user names (``conv4_2``) added after the declared
    outputs.
    ``opset`` is the target ONNX opset, 13 to 18, emitted directly (no version converter).
    ``progress(done, total)`` follows the drawing of the weights (see ``init_weights``).
    """
    if not MIN_OPSET <= opset <= OPSET:
        raise UserError(f"--opset: netc writes ONNX opsets {MIN_OPSET} to {OPSET}; got {opset}")
    from netc.compiler.analyses.budget import check_int64

    check_int64(graph)  # before any weight is drawn: onnx.helper refuses integers past int64
    extra = resolve_outputs(graph, outputs)
    # The declared outputs as they are (one node may be two names' output: output_names
    # follows them one for one), then the extra ones not among them.
    graph = graph.copy(outputs=[*graph.outputs, *(n for n in dict.fromkeys(extra)
                                                  if n not in graph.outputs)])
    drawn = weights is None
    if drawn:  # only what the file holds: no training-only head (Inception-v3's aux: 12.7 MB)
        needed = {n.name: n for n in graph.slice(list(graph.outputs))}
        weights = init_weights(graph, seed, progress, needed)
        graph = graph.copy(nodes=needed, options=replace(
            graph.options, training_outputs={}, training_output_weights={}))
    shared = _shared_keys(graph, weights)
    weights = {**weights, **{key: weights[owner] for key, owner in shared.items()}}
    if fold_bn:
        graph, weights = fold_bn_pass(graph, weights)
    graph, weights = fold_survival(graph, weights)
    tape = Tape(np.float16 if fp16 else np.float32, opset=opset)
    lowering = _Lowering(graph, weights, graph.calls if functions else {})
    expected = lowering.run(tape)
    _merge_shared(tape, shared)
    inputs = {name: spec.shape for name, spec in graph.inputs.items()}
    outs = _name_outputs(tape, graph, expected)
    return tape.finish(graph.name, inputs, outs, expected, lowering.functions,
                       doc=f"{graph.name}, compiled by netc from {graph.source or 'a spec'}",
                       metadata=_metadata(graph, seed if drawn else None, list(outs)))


def resolve_outputs(graph: Graph, names: Iterable[str]) -> list[str]:
    """Node names for the user's ``--outputs`` names; an unknown or ambiguous one is a UserError."""
    found = []
    for name in names:
        node = graph.resolve(name)
        if node is None:
            close = graph.candidates(name)
            hint = (f"; it could be {', '.join(close[:6])}" if close
                    else "; `netc summary` lists the names")
            raise UserError(f"--outputs: no single layer is called {name!r}{hint}")
        if node in graph.inputs:
            raise UserError(f"--outputs: {name!r} is an input of the net, not a layer")
        found.append(node)
    return found


def _shared_keys(graph: Graph, weights: Mapping[str, np.ndarray]) -> dict[str, str]:
    """Each weight name of a sharing node -> its owner's (``tower_1.conv1.weight`` ->
    ``tower.conv1.weight``): the op faces read a node's weights by its own name."""
    keys: dict[str, str] = {}
    for name, owner in graph.sharing().items():
        prefix = owner + "."
        for key in weights:
            if key.startswith(prefix) and "." not in key[len(prefix):]:
                keys[name + key[len(owner):]] = key
    return keys


def _merge_shared(tape: Tape, shared: Mapping[str, str]) -> None:
    """One initializer for shared weights: the nodes (or function calls) that read a sharing
    node's copy read the owner's, where the two are still equal after folding."""
    init = tape.initializers
    same = {key: owner for key, owner in shared.items() if key in init and owner in init
            and np.array_equal(init[key], init[owner])}
    if not same:
        return
    for node in tape.nodes:
        for k, name in enumerate(node.input):
            if name in same:
                node.input[k] = same[name]
    for key in same:
        del init[key]


def _name_outputs(tape: Tape, graph: Graph, expected: dict) -> dict[str, tuple[int, ...]]:
    """The graph's outputs (name -> shape) under the names the spec declares: the value a
    node computes is renamed (``conv1`` -> ``y13``), or copied by an Identity where it cannot
    be (an input, or a node two names declare); a declared name another value already has
    leaves the IR name."""
    declared = graph.options.output_names
    taken = {o for n in tape.nodes for o in n.output} | set(tape.initializers) | set(graph.inputs)
    renamed: dict[str, str] = {}
    outs: dict[str, tuple[int, ...]] = {}
    for k, node in enumerate(graph.outputs):
        want = declared[k] if k < len(declared) else node
        if want in outs or (want != node and want in taken):
            want = node  # a clash: the IR's own name
        if want == node and node not in renamed:
            outs[node] = graph[node].shape
            continue
        source = renamed.get(node, node)
        if node in renamed or node in graph.inputs or want == node:
            tape.op("Identity", [source], name=want)
        else:
            _rename_value(tape, expected, node, want)
            renamed[node] = want
        taken.add(want)
        outs[want] = graph[node].shape
    return outs


def _rename_value(tape: Tape, expected: dict, old: str, new: str) -> None:
    """Value ``old`` called ``new`` wherever the tape writes or reads it."""
    for node in tape.nodes:
        for field in (node.input, node.output):
            for k, name in enumerate(field):
                if name == old:
                    field[k] = new
    for table in (tape.shapes, tape.declared, expected):
        if old in table:
            table[new] = table.pop(old)


def _metadata(graph: Graph, seed: int | None, outputs: list[str]) -> dict[str, str]:
    """What ``netc run`` needs from the spec: how to prepare images, what the outputs are
    called, whether the weights are netc's random ones (``seed``; None: weights were given)."""
    inputs = {n: {"shape": list(s.shape), "mean": s.mean, "std": s.std, "scale": s.scale,
                  "layout": s.layout} for n, s in graph.inputs.items()}
    meta = {"netc.inputs": json.dumps(inputs), "netc.outputs": json.dumps(outputs)}
    if seed is not None:
        meta["netc.random_weights"] = str(seed)
    labels = class_names(graph)
    if labels:
        meta["netc.labels"] = labels
    return meta


def class_names(graph: Graph) -> str | None:
    """The shipped label set for ``graph``'s first output: ``imagenet1k`` for a zoo net whose
    first output has 1000 classes (its ImageNet nets), else None."""
    from netc.compiler.frontend.loader import zoo_dir

    source = Path(graph.source) if graph.source else None
    if source is None or source.parent.resolve() != zoo_dir().resolve():
        return None
    return "imagenet1k" if graph[graph.outputs[0]].shape == (1000,) else None


class _Scoped(Mapping):
    """The weights as seen inside a function: ``conv1.weight`` means ``<scope>.conv1.weight``."""

    def __init__(self, weights: Mapping[str, np.ndarray], prefix: str):
        self.weights, self.prefix = weights, prefix

    def __getitem__(self, key):
        return self.weights[self.prefix + key]

    def __contains__(self, key):
        return self.prefix + key in self.weights

    def __iter__(self):
        n = len(self.prefix)
        return (k[n:] for k in self.weights if k.startswith(self.prefix))

    def __len__(self):
        return sum(1 for _ in self)


class _Lowering:
    """Walks the backward slice of the outputs, one region (the net, or a call) at a time.

    A region's nodes that belong to a definition call nested directly inside it become one call
    node; the call's body is lowered the same way into a :class:`FunctionTape`.
    """

    def __init__(self, graph: Graph, weights: Mapping[str, np.ndarray], calls: Mapping[str, str]):
        self.graph = graph
        self.weights = weights
        self.calls = calls
        self.nodes = graph.slice(list(graph.outputs))
        self.users: dict[str, set[str]] = {n.name: set() for n in self.nodes}
        for node in self.nodes:
            for i in node.inputs:
                self.users[i].add(node.name)
        self.outputs = set(graph.outputs)
        self.functions: list[onnx.FunctionProto] = []
        self._known: dict[tuple[str, bytes], str] = {}  # (definition, body) -> function name
        self._count: dict[str, int] = {}

    def run(self, tape: Tape) -> dict[str, tuple[int, ...]]:
        """Lower the net into ``tape``; return the IR shapes of the values it names."""
        env: dict[str, str] = {}
        for node in self.nodes:
            if node.op == "input":
                env[node.name] = node.name
                tape.shapes[node.name] = node.shape
        body = [n for n in self.nodes if n.op != "input"]
        self._region(tape, "", body, env)
        for name in self.graph.outputs:  # an output computed by no node of its own (dropout)
            if env[name] != name:
                tape.op("Identity", [env[name]], name=name)
        return {n.name: n.shape for n in body if env.get(n.name) == n.name}

    # -- regions -------------------------------------------------------------------------------
    def _child(self, name: str, scope: str) -> str | None:
        """The outermost call strictly inside ``scope`` that contains node ``name``."""
        parts = name.split(".")
        start = len(scope.split(".")) if scope else 0
        for k in range(start + 1, len(parts)):
            candidate = ".".join(parts[:k])
            if candidate in self.calls:
                return candidate
        return None

    def _region(self, tape: Tape, scope: str, nodes: list[Node], env: dict[str, str]) -> None:
        """Lower ``nodes`` (all inside ``scope``) into ``tape``; ``env`` maps IR -> ONNX names."""
        strip = len(scope) + 1 if scope else 0
        weights = _Scoped(self.weights, scope + ".") if scope else self.weights
        done: set[str] = set()
        i = 0
        while i < len(nodes):
            child = self._child(nodes[i].name, scope)
            if child is None:
                node = nodes[i]
                local = node.replace(name=node.name[strip:])
                out = node.opdef.to_onnx(tape, local, [env[x] for x in node.inputs], weights)
                env[node.name] = out
                tape.shapes[out] = node.shape
                i += 1
                continue
            if child in done:  # elaboration creates a call's nodes in one run
                raise LoweringError(f"the nodes of {child} are not contiguous")
            done.add(child)
            j = i
            while j < len(nodes) and self._child(nodes[j].name, scope) == child:
                j += 1
            self._call(tape, scope, child, nodes[i:j], env)
            i = j

    def _call(self, tape: Tape, scope: str, call: str, nodes: list[Node],
              env: dict[str, str]) -> None:
        """One call node of the function for ``call``'s body (made, or reused if identical)."""
        strip = len(scope) + 1 if scope else 0
        inside = {n.name for n in nodes}
        ext = list(dict.fromkeys(i for n in nodes for i in n.inputs if i not in inside))
        outs = [n.name for n in nodes
                if n.name in self.outputs or self.users[n.name] - inside]
        ftape = FunctionTape(tape, call[strip:] + ".")
        fenv = {}
        for k, x in enumerate(ext):
            fenv[x] = "input" if len(ext) == 1 else f"input{k + 1}"
            ftape.shapes[fenv[x]] = self.graph[x].shape
        self._region(ftape, call, nodes, fenv)
        local_outs = []
        for o in outs:
            local = o[len(call) + 1:]
            if fenv[o] != local:  # the value is an input or a pass-through: name it
                ftape.op("Identity", [fenv[o]], name=local)
            local_outs.append(local)
        ftape.tidy(local_outs)
        local_ins = [fenv[x] for x in ext]
        described = self.calls[call]
        definition = described.split("(")[0]
        key = (definition, ftape.body_key(local_ins, local_outs))
        fname = self._known.get(key)
        if fname is None:
            n = self._count[definition] = self._count.get(definition, 0) + 1
            fname = definition if n == 1 else f"{definition}_{n}"
            self._known[key] = fname
            self.functions.append(ftape.function(fname, local_ins, local_outs, doc=described))
        values = [o[strip:] for o in outs]
        tape.call(fname, [env[x] for x in ext] + [w for _, w in ftape.weights],
                  name=call[strip:], outputs=values)
        for o, v in zip(outs, values):
            env[o] = v
            tape.shapes[v] = self.graph[o].shape
            if ftape.declared:  # a Resize inside: inference loses the outputs' batch axis
                tape.declare(v, self.graph[o].shape)
