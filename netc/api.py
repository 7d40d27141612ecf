"""netc's public Python API: load a spec, check it, summarise it, lower it to torch and ONNX.

:func:`load` does what every ``netc`` command does with its SPEC argument (a zoo name, a
``.net`` path, ``FILE.net:NET`` or a Caffe ``.prototxt``, with ``--set`` as keyword arguments)
and returns a :class:`Net`. Every mistake in a spec or a call here ends in one exception type,
:class:`netc.NetcError`, whose ``diagnostics`` are records; :func:`check` returns them instead.

At the top this module imports only the standard library and netc's records: ``import netc``
stays as cheap as the command line's start; torch, onnx and numpy load when a function needs them.

    >>> import netc
    >>> net = netc.load("lenet5", classes=26)
    >>> net.outputs
    {'output': (26,)}
"""

from __future__ import annotations

import math
import operator
import os
from collections.abc import Callable, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, Union

from netc.dsl.diagnostics import Diagnostic, NetcError, UserError
from netc.summary import Shape, Summary, from_analysis

if TYPE_CHECKING:
    import numpy as np
    import onnx

    from netc.compiler.analyses import summary as analysis
    from netc.compiler.ir import Graph
    from netc.compiler.lower_torch.module import NetModule

__all__ = ["Net", "check", "load", "zoo"]

# What a net parameter can be set to from Python: what `--set NAME=VALUE` gives (a number,
# true/false, a name), and lists of them (DenseNet's `blocks=[6, 12, 24, 16]`).
ParamValue = Union[int, float, bool, str, Sequence["ParamValue"]]
PathLike = Union[str, "os.PathLike[str]"]
# Weights: a file (.safetensors, .pt/.pth/.bin, .caffemodel), or arrays by state-dict name.
Weights = Union[PathLike, Mapping[str, Any]]

T = TypeVar("T")


def load(spec: PathLike, /, *, input_shape: Shape | Mapping[str, Shape] | None = None,
         max_nodes: int | None = None, max_depth: int | None = None,
         max_memory: int | None = None, **params: ParamValue) -> Net:
    """Parse, elaborate and shape-check ``spec``; raise :class:`NetcError` for any mistake.

    ``spec`` is a zoo name (``"vgg16"``), a ``.net`` file, ``"FILE.net:NET"`` for one net of a
    file that defines several, or a Caffe ``.prototxt`` (imported on the fly). Keyword
    arguments set the net's parameters (``classes=10``; the command line's ``--set``).
    ``input_shape`` replaces the declared input shape: ``(3, 320, 320)`` for the first input,
    or a mapping from input name to shape (``--input``). ``max_nodes``, ``max_depth`` and
    ``max_memory`` (bytes of float32 weights and one sample's activations; default: this
    machine's RAM) bound what a spec may expand to, as the command line's flags of those names
    (None: their defaults).

    >>> netc.load("densenet", blocks=[6, 12, 24, 16], classes=10).summary().params
    6964106
    """
    from netc.compiler.frontend.loader import load as load_graph
    from netc.runtime.commands.common import physical_memory

    limits = {name: _positive(value, name) for name, value in
              (("max_nodes", max_nodes), ("max_depth", max_depth)) if value is not None}
    memory = physical_memory() if max_memory is None else _positive(max_memory, "max_memory")
    graph = load_graph(_spec(spec), _overrides(params), max_memory=memory,
                       input_shapes=_input_shapes(input_shape), **limits)
    return Net(graph)


def check(spec: PathLike, /, *, input_shape: Shape | Mapping[str, Shape] | None = None,
          max_nodes: int | None = None, max_depth: int | None = None,
          max_memory: int | None = None, **params: ParamValue) -> list[Diagnostic]:
    """The mistakes in ``spec``, as records; an empty list when it is a valid net.

    Takes :func:`load`'s arguments. A file that defines several nets is checked net by net,
    as ``netc check FILE`` does. Each :class:`Diagnostic` has ``file``, ``line``, ``column``
    (None for a mistake with no place in a spec, such as an unknown zoo name), ``message`` and
    ``notes``; ``str(diagnostic)`` is the text ``netc check`` prints, with the source line.

    >>> [d.message for d in netc.check("lenet5", classes=0)]
    ["fc: parameter 'out' must be a positive integer; got 0"]
    """
    from netc.compiler.frontend.loader import nets_of

    try:
        specs = nets_of(_spec(spec))
    except NetcError as err:
        return list(err.diagnostics)
    found: list[Diagnostic] = []
    for one in specs:
        try:
            load(one, input_shape=input_shape, max_nodes=max_nodes, max_depth=max_depth,
                 max_memory=max_memory, **params)
        except NetcError as err:
            found.extend(err.diagnostics)
    return found


def zoo() -> list[str]:
    """The names of the built-in nets (``netc zoo`` describes each), sorted.

    >>> "resnet50" in netc.zoo()
    True
    """
    from netc.compiler.frontend.loader import zoo_index

    return sorted(zoo_index())


class Net:
    """A checked network: one spec elaborated with its parameters bound, every shape known.

    Get one from :func:`load`. Its layer names (``layer2.basic1.conv1``) are the summary's
    rows, the PyTorch module's state-dict keys, and the ONNX graph's node names.
    """

    def __init__(self, graph: Graph) -> None:
        self._graph = graph

    @property
    def name(self) -> str:
        """The net's name (``resnet18``)."""
        return self._graph.name

    @property
    def graph(self) -> Graph:
        """The checked IR (:class:`netc.compiler.ir.Graph`): the nodes in order, for passes."""
        return self._graph

    @property
    def inputs(self) -> dict[str, Shape]:
        """Input name -> shape of one sample (``{'image': (3, 224, 224)}``)."""
        return dict(self._analysis.inputs)

    @property
    def outputs(self) -> dict[str, Shape]:
        """Output name -> shape of one sample, in the order the module returns them."""
        return dict(self._analysis.outputs)

    @cached_property
    def _analysis(self) -> analysis.Summary:
        from netc.compiler.analyses.summary import summarize

        return summarize(self._graph)

    def summary(self, depth: int | None = None) -> Summary:
        """Every layer's shape, parameters, MACs and receptive field, and the totals.

        ``depth`` folds the rows to that many levels of the name hierarchy (``layer1`` for
        ``layer1.basic1.conv1`` at depth 1). ``str()`` of the result is the table
        ``netc summary`` prints.

        >>> s = netc.load("lenet5").summary()
        >>> s.params, s.rows[1].name, s.rows[1].shape, s.rows[1].receptive_field
        (61750, 'c1', (6, 28, 28), 5)
        """
        if depth is None:
            return from_analysis(self._analysis)
        from netc.compiler.analyses.summary import fold

        return from_analysis(self._analysis, fold(self._analysis, _positive(depth, "depth")))

    def to_torch(self, weights: Weights | None = None, *, seed: int = 0,
                 compile: bool | str = False) -> NetModule:
        """The PyTorch module (an ``nn.Module``), in training mode as torch's modules start.

        ``weights`` is a weights file (see :meth:`import_weights` for the formats) or a mapping
        from state-dict name to array or tensor; without it, netc draws its seeded initial
        weights (the same numbers as :meth:`to_onnx` for the same ``seed``). ``module(x)``
        returns the declared outputs; ``module(x, taps=["c3", "f6"])`` returns a dict of those
        layers' activations and runs only what they need. ``compile=True`` (or a
        ``torch.compile`` backend's name) compiles it block by block
        (:meth:`~netc.compiler.lower_torch.module.NetModule.compile_blocks`), so that training
        still skips the blocks stochastic depth and drop-path drop.

        >>> import torch
        >>> module = netc.load("lenet5").to_torch(seed=1).eval()
        >>> module(torch.zeros(2, 1, 32, 32), taps=["c3"])["c3"].shape
        torch.Size([2, 16, 10, 10])
        """
        from netc.compiler.lower_torch.module import build_module

        arrays = None if weights is None else _weights(self._graph, weights)
        module = build_module(self._graph, arrays, seed=_seed(seed))
        if compile:
            module.compile_blocks(backend="inductor" if compile is True else str(compile))
        return module

    def to_onnx(self, path: PathLike | None = None, *, weights: Weights | None = None,
                seed: int = 0, outputs: str | Sequence[str] = (), opset: int | None = None,
                fold_bn: bool = True, fp16: bool = False) -> onnx.ModelProto:
        """The checked ONNX model (inference semantics), written atomically to ``path`` if given.

        ``weights`` and ``seed`` are as for :meth:`to_torch`. ``outputs`` adds layers as extra
        graph outputs (``["conv4_2"]``); ``opset`` is 13 to 18 (default: 18); ``fold_bn=False``
        keeps batch norms as nodes; ``fp16`` writes half-precision weights and values. This is
        ``netc compile``: torch is not imported, unless a ``.pt``/``.pth`` weights file needs it.

        >>> model = netc.load("lenet5").to_onnx(outputs=["c3"])
        >>> [o.name for o in model.graph.output]
        ['output', 'c3']
        """
        from netc.compiler.lower_onnx.model import lower

        arrays = None if weights is None else _checked(self._graph, _weights(self._graph, weights))
        extra: dict[str, Any] = {} if opset is None else {"opset": _positive(opset, "opset")}
        model = lower(self._graph, arrays, seed=_seed(seed), outputs=_names(outputs, "outputs"),
                      fold_bn=fold_bn, fp16=fp16, **extra)
        if path is not None:
            from netc.runtime.files import save_onnx

            _refusals_as_errors(lambda: save_onnx(model, _path(path)))
        return model

    def import_weights(self, file: PathLike, output: PathLike | None = None, *,
                       skip: str | Sequence[str] = (),
                       rename: Sequence[str | tuple[str, str]] = ()) -> dict[str, np.ndarray]:
        """Someone else's weights mapped onto this net: ``netc weights import``.

        ``file`` is a PyTorch state dict (``.pt``, ``.pth``, ``.bin``, ``.safetensors``, keys
        in any order, torchvision's layouts included) or a Caffe ``.caffemodel``; its layers
        are paired with the net's by structure and names, every shape checked. ``skip`` leaves
        out the file's layers under these prefixes (auxiliary heads: ``["aux1", "aux2"]``).
        ``rename`` rewrites the file's keys first, rule by rule, as ``--rename`` does:
        ``["^module\\.=", ("backbone\\.", "")]`` (Python regexes; a bad one is a NetcError).
        Returns the arrays by this net's state-dict names, ready for :meth:`to_torch` and
        :meth:`to_onnx`; ``output`` also writes them to a ``.safetensors`` file.
        """
        from netc.runtime.weights import import_weights as import_to_file

        prefixes = tuple(_names(skip, "skip"))
        rules = [rename] if isinstance(rename, str) else rename
        if not isinstance(rules, Sequence):
            raise UserError(f"rename is a rule or a list of rules; got {rename!r}")
        if output is None:
            return _read_weights(self._graph, _path(file), prefixes, rules)
        mapped = _refusals_as_errors(
            lambda: import_to_file(self._graph, _path(file), _path(output), prefixes,
                                   rename=rules))
        return mapped.tensors

    def __repr__(self) -> str:
        def shapes(named: dict[str, Shape]) -> str:
            return ", ".join(f"{k}: {_fmt(v)}" for k, v in named.items())

        return f"<netc.Net {self.name} ({shapes(self.inputs)}) -> ({shapes(self.outputs)})>"


# -- the boundary: Python values in, the loader's values out, every mistake a NetcError ------

def _read_weights(graph: Graph, path: Path, skip: tuple[str, ...] = (),
                  rename: Sequence = ()) -> dict[str, np.ndarray]:
    """The one road from a weights file to arrays, the loader every ``--weights`` takes: a
    file in the spec's names is read by name, any other is paired with the spec by structure
    (``netc weights import``); either way every name and shape is checked. The line saying how
    a foreign file was paired goes to the ``netc`` logger, not to stderr: this is a library.
    """
    import logging

    from netc.runtime.weights import load_weights

    return load_weights(graph, path, skip=skip, rename=rename, say=logging.getLogger("netc").info)


def _weights(graph: Graph, weights: Weights) -> dict[str, Any]:
    """A weights file read, or a mapping's values as numpy arrays (torch tensors included)."""
    if isinstance(weights, (str, os.PathLike)):
        return _read_weights(graph, _path(weights))
    if not isinstance(weights, Mapping):
        raise UserError(f"weights must be a file or a mapping of names to arrays; got "
                        f"{type(weights).__name__}")
    import numpy as np

    arrays = {}
    for key, value in weights.items():
        if hasattr(value, "detach"):  # a torch tensor, perhaps on a GPU or needing grad
            value = value.detach().cpu().numpy()
        try:
            arrays[str(key)] = np.asarray(value, dtype=np.float32)
        except (TypeError, ValueError) as err:
            raise UserError(f"weights: {key} is not an array of numbers ({err})") from None
    return arrays


def _checked(graph: Graph, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``arrays`` with exactly the net's weights, each of its shape (the ONNX lowering looks
    them up by name); batch norm's ``num_batches_tracked`` counters are dropped."""
    from netc.compiler.numerics.seeded_weights import check_weights

    return check_weights(graph, arrays)


def _fmt(shape: Sequence[int]) -> str:
    return "x".join(map(str, shape))


def _spec(spec: PathLike) -> str:
    if isinstance(spec, os.PathLike):
        return os.fspath(spec)
    if not isinstance(spec, str):
        raise UserError(f"a spec is a zoo name, a path or FILE.net:NET; got "
                        f"{type(spec).__name__}")
    return spec


def _path(path: PathLike) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise UserError(f"expected a file name; got {type(path).__name__}")
    return Path(path)


def _names(names: str | Sequence[str], what: str) -> list[str]:
    """Layer names or prefixes: one string, or a sequence of strings."""
    if isinstance(names, str):
        return [names]
    if not isinstance(names, Sequence) or not all(isinstance(n, str) for n in names):
        raise UserError(f"{what} is a name or a list of names; got {names!r}")
    return list(names)


def _overrides(params: Mapping[str, ParamValue]) -> dict[str, Any]:
    """Net parameters as the elaborator holds them: tuples become lists, anything that
    ``--set`` could not give is refused by name."""

    def value(v: Any, name: str) -> Any:
        if isinstance(v, (list, tuple)):
            return [value(item, name) for item in v]
        if isinstance(v, float) and not math.isfinite(v):
            raise UserError(f"parameter {name}={v!r} is not a finite number")
        if isinstance(v, (bool, int, float, str)):
            return v
        raise UserError(f"parameter {name} is a {type(v).__name__}; a net parameter is a "
                        f"number, a bool, a name or a list of them")

    return {name: value(v, name) for name, v in params.items()}


def _input_shapes(shape: Shape | Mapping[str, Shape] | None) -> dict[str | None, Shape]:
    """``--input``'s mapping: {None: shape} for the first input, or {name: shape}."""
    if shape is None:
        return {}
    named = shape.items() if isinstance(shape, Mapping) else [(None, shape)]
    out: dict[str | None, Shape] = {}
    for name, dims in named:
        what = f"input_shape[{name!r}]" if name is not None else "input_shape"
        if isinstance(dims, (str, bytes)) or not isinstance(dims, Sequence) \
                or len(dims) not in (1, 3):
            raise UserError(f"{what} is (channels, height, width) or (features,); got {dims!r}")
        out[name] = tuple(_positive(d, what) for d in dims)
    return out


def _positive(value: Any, what: str) -> int:
    """``value`` as an int of at least 1, or a NetcError naming ``what``."""
    try:
        number = operator.index(value)  # int and numpy integers, never a float or a bool
    except TypeError:
        number = None
    if isinstance(value, bool) or number is None or number < 1:
        raise UserError(f"{what} must be a positive integer; got {value!r}")
    return number


def _seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise UserError(f"seed must be an integer in 0..2**63-1; got {seed!r}")
    return seed


def _refusals_as_errors(action: Callable[[], T]) -> T:
    """``action()``, with the operating system's refusal (no such folder, no permission, a
    full disk) as a NetcError naming the file, as the command line reports it."""
    try:
        return action()
    except OSError as err:
        where = f"{err.filename}: " if err.filename else ""
        raise UserError(f"{where}{err.strerror or err}") from None
