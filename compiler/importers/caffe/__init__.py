"""Import Caffe network definitions (``.prototxt``) as netc specs.

The pipeline, one module each:

- ``prototxt.lark`` + :mod:`.textformat`: protobuf text format into a generic
  message tree with spans (no Caffe, no compiled ``caffe.proto``);
- :mod:`.layers`: one function per Caffe layer type, giving netc op text and the
  output shape Caffe computes; :mod:`.fields` checks every parameter by name;
- :mod:`.net`: layers in file order, blobs tracked by name (in-place layers,
  Split, BatchNorm + Scale pairs);
- :mod:`.emit`: the readable netc text.

The importer knows nothing of the front end: it gives spec text (and an :class:`.net.ImportedNet`),
and the loader (:mod:`netc.compiler.frontend.loader`) parses and elaborates it, as it does for a
``.prototxt`` named as a spec (``load_text`` checks imported text as ``netc check`` would).

Both the V1 format (``layers { type: CONVOLUTION }``) and the current one
(``layer { type: "Convolution" }``) are read. Every mistake is a located diagnostic in the
prototxt (``file:line:col``), every error of a file in file order. A train_val file imports as
its TEST net (:mod:`.phases`). Weights (``.caffemodel``) are read by
:mod:`.caffemodel`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

from netc.dsl.diagnostics import SOURCES, Diagnostic, DiagnosticError, Span

__all__ = ["ImportOptions", "import_options", "import_prototxt", "import_prototxt_net",
           "import_prototxt_text"]

CROP_OFFSETS = ("caffe", "geometry")


@dataclass(frozen=True)
class ImportOptions:
    """How to read a prototxt where the file alone does not say.

    ``stages``: the NetState stages of include/exclude rules (``--stage``). ``crop_offsets``:
    ``caffe`` takes a Crop's offsets from its ``crop_param`` (0 where it has none, as BVLC
    Caffe does); ``geometry`` computes those of a Crop without ``crop_param`` from the layers'
    geometry, as the HED and FCN forks do (:mod:`.coord_maps`). ``warnings`` collects what an
    import inside :func:`import_options` warns about (a Crop without ``crop_param``).
    """

    stages: frozenset[str] = frozenset()
    crop_offsets: str = "caffe"
    warnings: list[Diagnostic] = field(default_factory=list, compare=False)


_CURRENT: ContextVar[ImportOptions] = ContextVar("caffe_import_options",
                                                 default=ImportOptions())


@contextmanager
def import_options(options: ImportOptions) -> Iterator[ImportOptions]:
    """Imports inside the block (a ``.prototxt`` the loader reads as a SPEC) use ``options``
    and add their warnings to ``options.warnings``: the command line's ``--stage`` and
    ``--crop-offsets`` reach the loader without passing through it."""
    token = _CURRENT.set(options)
    try:
        yield options
    finally:
        _CURRENT.reset(token)


def import_prototxt_text(text: str, file: str, net_name: str | None = None,
                         input_shapes: dict | None = None,
                         stages: frozenset[str] | None = None,
                         crop_offsets: str | None = None) -> str:
    """The netc spec text of the prototxt ``text`` (``file`` locates diagnostics).

    ``input_shapes`` (``--input``: name or None for the first input -> C, H, W) replace the
    file's input shapes, for a net whose input is "defined at runtime", and give a train_val
    data layer's; ``stages`` are the NetState stages of include/exclude rules (default: those
    of the enclosing :func:`import_options`, none outside one); ``crop_offsets`` is
    :class:`ImportOptions`'.

    >>> print(import_prototxt_text('''
    ... name: "tiny" input: "data" input_dim: 1 input_dim: 3 input_dim: 8 input_dim: 8
    ... layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
    ...         convolution_param { num_output: 4 kernel_size: 3 } }
    ... layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
    ... ''', "tiny.prototxt").split("net ", 1)[1])
    tiny {
      input data: 3x8x8
      output relu1 = data -> conv(4, 3) as conv1 -> relu as relu1;
    }
    <BLANKLINE>
    """
    return _import(text, file, net_name, input_shapes, _options(stages, crop_offsets))[0]


def _options(stages: frozenset[str] | None, crop_offsets: str | None = None) -> ImportOptions:
    """The context's options, with what the caller gave in place of its own."""
    current = _CURRENT.get()
    if stages is None and crop_offsets is None:
        return current
    return ImportOptions(current.stages if stages is None else frozenset(stages),
                         crop_offsets or current.crop_offsets, current.warnings)


def _import(text, file, net_name, input_shapes, options: ImportOptions):
    from netc.compiler.importers.caffe.emit import write_spec
    from netc.compiler.importers.caffe.net import read_net
    from netc.compiler.importers.caffe.textformat import parse_prototxt

    SOURCES.texts[file] = text
    root = parse_prototxt(text, file)
    net = read_net(root, net_name or Path(file).stem, input_shapes, options.stages,
                   crop_offsets=options.crop_offsets)
    options.warnings.extend(net.warnings)
    return write_spec(net, Path(file).name), net


def import_prototxt(path: str | Path, input_shapes: dict | None = None) -> str:
    """Read a ``.prototxt`` file and return its netc spec text. Raises DiagnosticError."""
    return import_prototxt_net(path, input_shapes)[0]


def import_prototxt_net(path: str | Path, input_shapes: dict | None = None,
                        stages: frozenset[str] | None = None, crop_offsets: str | None = None):
    """(spec text, :class:`.net.ImportedNet`) of a ``.prototxt`` file; the net
    says what a train_val file had that the deploy net does not, and what to warn about.
    ``stages`` and ``crop_offsets`` (see :class:`ImportOptions`) default to the enclosing
    :func:`import_options`'. Raises DiagnosticError."""
    path = Path(path)
    shown = _display(path)
    from netc.dsl.sources import NotRegular, read_regular

    try:
        raw = read_regular(path)  # a regular file of at most 16 MiB: no FIFO, no /dev/zero
    except NotRegular as e:
        raise DiagnosticError(Diagnostic(None, str(e))) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DiagnosticError(Diagnostic(Span(shown, line, 1), "this is not a UTF-8 text file "
                                         "(a binary .caffemodel? netc imports .prototxt text)"))
    return _import(text, shown, path.stem, input_shapes, _options(stages, crop_offsets))


def _display(path: Path) -> str:
    """Paths in diagnostics: relative to the working directory where possible."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
