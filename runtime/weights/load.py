"""The one road for weights: every ``--weights`` of every command goes through :func:`load_weights`.

The road, in order (each refusal is a :class:`UserError`; those about the file are one line):

1. the path is a regular file (a FIFO, a directory or ``/dev/zero`` is refused at once, never
   opened for reading: :func:`netc.runtime.weights.read.check_file`);
2. its size is at most :data:`SIZE_FACTOR` times the spec's float32 weights plus
   :data:`SIZE_SLACK` (room for a training checkpoint's optimizer state, auxiliary heads, or a
   whole FractalNet loaded into its deepest column): a 40 GB file for LeNet is refused before
   it is read;
3. it is read in whatever format it is (:mod:`netc.runtime.weights.read`), and its keys are
   renamed by the ``--rename`` rules, if any (:mod:`netc.runtime.weights.rename`; a rule that
   matches nothing is a warning);
4. a file in the spec's own names (what ``netc train``, ``netc fit`` and ``netc weights
   import`` write) is checked name by name and shape by shape, and a misfit lists what is
   missing, what the spec does not have and what has the wrong shape;
5. any other file (a torchvision-layout ``.pth`` or ``.safetensors``, a ``.caffemodel``) is
   paired with the spec on the fly, as ``netc weights import`` pairs it
   (:mod:`netc.runtime.weights.mapping`: shapes, and the ResNet v1/v1.5 stride guard), and one
   line on stderr says what was paired and what was left out; a misfit names the command that
   maps the file with the options the road does not take (``--skip``,
   ``--allow-stride-mismatch``).

The lowerings never read files: they take the dict of arrays this returns.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Collection, Iterable, Sequence
from pathlib import Path

import numpy as np

from netc.compiler.importers.pairing import Layer, spec_layers
from netc.compiler.ir import Graph
from netc.dsl.diagnostics import UserError
from netc.runtime.files import atomic_path
from netc.runtime.weights.mapping import Mapped, conversions_line, map_weights
from netc.runtime.weights.misfit import dims
from netc.runtime.weights.read import COUNTER, Source, check_file, read_source
from netc.runtime.weights.rename import renamed_source, rules_from

SIZE_FACTOR = 8  # a file may be this many times the spec's float32 weights ...
SIZE_SLACK = 256 * 2**20  # ... plus this many bytes


def load_weights(graph: Graph, path: str | Path, *, layers: Iterable[str] | None = None,
                 optional: Collection[str] = (), allow_unused: bool = False,
                 skip: tuple[str, ...] = (), rename: Sequence | None = None,
                 say: Callable[[str], None] | None = None) -> dict[str, np.ndarray]:
    """The weights of ``graph`` from the file at ``path``: state-dict name -> float32 array.

    - ``layers``: node names whose tensors are returned (default: all). The whole file is still
      checked against the whole spec; a ``.safetensors`` file reads only those tensors.
    - ``optional``: node names whose tensors may be absent (``netc fit`` solves them).
    - ``allow_unused``: tensors the spec does not have are dropped instead of refused (a whole
      FractalNet's weights starting its deepest column).
    - ``skip``: prefixes of a foreign file's layers to leave out (auxiliary heads).
    - ``rename``: ``REGEX=REPLACEMENT`` rules for the file's keys (strings or
      :class:`~netc.runtime.weights.rename.RenameRule`); by default the rules a ``--weights``
      value carries (:class:`WeightsPath`), else none.
    - ``say``: where the one line about an on-the-fly pairing goes (default: stderr).

    Raises :class:`UserError` (see the module docstring).

    >>> from netc.compiler.frontend.loader import load
    >>> try:
    ...     load_weights(load("lenet5"), "/dev/zero")
    ... except UserError as err:
    ...     print(err)
    cannot read weights: /dev/zero is a device, not a file
    """
    say = say or _stderr
    rules = getattr(path, "rename_rules", ()) if rename is None else rename
    source, ours, want, warnings = _checked_source(graph, path, rules)
    for text in warnings:
        say(f"warning: {text}")
    if not source.caffe and _in_spec_names(source, want, optional):
        names, tensors = _by_name_or_paired(graph, source, ours, want, optional, allow_unused,
                                            skip, say)
    else:
        mapped = _paired(graph, source, ours, skip, say)
        names, tensors = list(mapped.tensors), mapped.tensors
    if layers is not None:
        owner = {f"{l.name}.{k}": l.name for l in ours for k, _ in l.tensors}
        keep = set(layers)
        names = [k for k in names if owner[k] in keep]
    return {k: tensors[k] for k in names}


class WeightsPath(str):
    """A ``--weights`` value that carries the command line's ``--rename`` rules to
    :func:`load_weights`, so that every command with a ``--weights`` takes them without
    passing them on (:func:`netc.runtime.commands.options.add_weights`)."""

    rename_rules: tuple = ()

    def __new__(cls, path: str, rename: Sequence = ()):
        self = super().__new__(cls, path)
        self.rename_rules = tuple(rename)
        return self


def _checked_source(graph: Graph, path: str | Path, rename: Sequence = ()
                    ) -> tuple[Source, list[Layer], dict, list[str]]:
    """Rules 1 to 3 of the module docstring, shared with :func:`import_weights`: the file
    read and renamed, the spec's layers, the spec's tensor shapes by state-dict name, and the
    warnings about rename rules."""
    rules = rules_from(rename)
    path = Path(path)
    size = check_file(path).st_size
    ours = spec_layers(graph)
    want = {f"{l.name}.{k}": s for l in ours for k, s in l.tensors}
    check_size(graph, path, size, want)
    source, warnings = renamed_source(read_source(path), rules)
    return source, ours, want, warnings


def check_size(graph: Graph, path: Path, size: int, want: dict[str, tuple[int, ...]]) -> None:
    """Refuse a file far larger than the spec's weights, before reading it (module docstring)."""
    from netc.compiler.analyses.summary import human_bytes

    spec_bytes = 4 * sum(int(np.prod(s, dtype=np.int64)) for s in want.values())
    cap = SIZE_FACTOR * spec_bytes + SIZE_SLACK
    if size > cap:
        raise UserError(f"cannot read weights: {path} is {human_bytes(size)}, more than "
                        f"{SIZE_FACTOR}x the {human_bytes(spec_bytes)} of weights {graph.name} "
                        f"has plus {human_bytes(SIZE_SLACK)}: the weights of another net?")


def _in_spec_names(source: Source, want: dict, optional: Collection[str]) -> bool:
    """Whether the file names its tensors as the spec does: every tensor the spec needs is
    there, or most are (a damaged file of the net, reported name by name). A torchvision file
    shares a few names with netc's ResNets (``conv1``, ``bn1``, ``fc``), never most."""
    needed = [k for k in want if k.rsplit(".", 1)[0] not in optional]
    found = sum(k in source.shapes for k in needed)
    return found == len(needed) or 2 * found > len(needed)


def _by_name_or_paired(graph, source, ours, want, optional, allow_unused, skip, say):
    """A file in (most of) the spec's names, checked name by name; where that fails it may
    still be a foreign file that shares most names (torchvision's ViT-B/16 with the zoo's,
    whose ``class_token`` is the spec's ``class_token.weight``): paired by structure if that
    fits, else the name-by-name report, which says more about a damaged file of the net."""
    try:
        # lazy: a tensor is read below only if it is kept
        return _check_by_name(graph, source, want, optional, allow_unused), source.tensors
    except UserError as by_name:
        if optional or allow_unused:
            raise
        try:
            mapped = _paired(graph, source, ours, skip, say)
        except UserError:
            raise by_name from None
        return list(mapped.tensors), mapped.tensors


def _check_by_name(graph: Graph, source: Source, want: dict, optional: Collection[str],
                   allow_unused: bool) -> list[str]:
    """The spec's tensor names the file holds; a UserError listing every kind of misfit."""
    have = source.shapes
    missing = sorted(k for k in want if k not in have and k.rsplit(".", 1)[0] not in optional)
    extra = [] if allow_unused else sorted(k for k in have if k not in want)
    wrong = sorted(f"{k} is {dims(have[k])}, the spec needs {dims(want[k])}"
                   for k in want if k in have and tuple(have[k]) != tuple(want[k]))
    problems = [f"missing: {_some(missing)}"] if missing else []
    problems += [f"not in the spec: {_some(extra)}"] if extra else []
    problems += wrong[:5]
    if problems:
        raise UserError(f"{source.path} does not fit {graph.name}: " + "; ".join(problems))
    return [k for k in want if k in have]


def _paired(graph: Graph, source: Source, ours: list[Layer], skip: tuple[str, ...],
            say: Callable[[str], None]) -> Mapped:
    """A foreign file mapped onto the spec, with one line saying what was paired."""
    try:
        mapped = map_weights(graph, source, skip, ours=ours)
    except UserError as err:
        raise UserError(f"{err}\n  (netc weights import SPEC {source.path} -o W.safetensors "
                        "--show prints the pairing, and takes --skip PREFIX,...; --rename "
                        "'REGEX=REPLACEMENT' renames the file's keys here too)") from None
    how = "by name" if mapped.by_name else "by structure"
    left = mapped.ignored + mapped.skipped
    line = (f"{source.path}: {len(mapped.pairs)} layers paired with {graph.name}'s {how} "
            f"({_KINDS[source.format]})")
    if left:
        line += f"; {len(left)} file layers not in the spec were left out: {_some(left, 8)}"
    converted = conversions_line(mapped)
    if converted:
        line += f"; {converted}"
    say(line)
    for text in mapped.warnings:
        say(f"warning: {text}")
    return mapped


_KINDS = {"safetensors": "a .safetensors file", "torch": "a PyTorch file",
          "caffemodel": "a Caffe model"}


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def _some(names: list[str], n: int = 5) -> str:
    return ", ".join(names[:n]) + (" …" if len(names) > n else "")


# ---- writing ------------------------------------------------------------------------------------
def write_safetensors(path: str | Path, tensors: dict[str, np.ndarray],
                      metadata: dict[str, str] | None = None) -> None:
    """Write ``tensors`` to ``path`` atomically (a temporary file, then one rename)."""
    from safetensors import SafetensorError
    from safetensors.numpy import save_file

    arrays = {k: np.ascontiguousarray(v) for k, v in tensors.items() if not k.endswith(COUNTER)}
    with atomic_path(path) as tmp:
        try:
            save_file(arrays, str(tmp), metadata=metadata)
        except SafetensorError as err:  # its I/O errors (a full disk) come as this type
            raise UserError(f"cannot write {path}: {str(err).splitlines()[0]}") from None


def import_weights(graph: Graph, source: str | Path, dest: str | Path,
                   skip: tuple[str, ...] = (), allow_stride_mismatch: bool = False,
                   rename: Sequence = ()) -> Mapped:
    """Read ``source``, map it onto ``graph`` and write ``dest`` (.safetensors), as ``netc
    weights import`` does: the same checks as :func:`load_weights`, and every file (even one
    in the spec's names) goes through the pairing, so ``--show`` lists each layer.
    ``rename``: ``REGEX=REPLACEMENT`` rules applied to the file's keys first; a rule that
    matches nothing is one of the returned :attr:`Mapped.warnings`."""
    if Path(dest).suffix != ".safetensors":
        raise UserError(f"{dest}: the output of weights import is a .safetensors file")
    read, ours, _, warnings = _checked_source(graph, source, rename)
    mapped = map_weights(graph, read, skip, allow_stride_mismatch, ours)
    mapped.warnings[:0] = warnings
    write_safetensors(dest, mapped.tensors, {"netc_net": graph.name,
                                             "source": Path(source).name})
    return mapped
