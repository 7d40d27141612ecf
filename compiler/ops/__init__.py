"""The operator registry: every op of the language, declared once with all its faces.

An op is a subclass of :class:`OpDef` (:mod:`~netc.compiler.ops.opdef`) registered with
:func:`register` under its spec-language name, in a module of this package. Each declares, side
by side:

- ``params``: its parameters (:mod:`~netc.compiler.ops.params`: name, kind, default, domain),
  checked when a spec calls it: a numeric parameter declares its
  :mod:`~netc.compiler.ops.domains` domain (``POSITIVE``, ``PROBABILITY``, ``between(0, 1)``...)
  and a value outside it, or a relation between values that ``normalise`` refuses, is the
  spec's located error;
- its categories, the facts other code asks about: ``join_head``, ``vanishes_at_eval``,
  ``folds_bn``, ``scales_with_weights``, ``running_statistics``, ``probability_output``,
  ``family`` (nothing outside this package lists op names);
- ``infer_shape``: the output shape from the input shapes, raising :class:`ShapeError` with the
  numbers that disagree;
- ``param_count`` and ``macs``: learnable parameters and multiply-accumulates (only weight
  layers count MACs: the convention of the VGG and ResNet papers); ``workspace``: the values
  it holds while it runs besides its output (attention's L x L scores), for ``--max-memory``;
- ``init_weights``: netc's own seeded initial weights (numpy), the arrays both lowerings use;
- ``seeded_moments``: how its output's per-channel mean and variance follow from its input's,
  for the seeded batch-norm statistics (pointwise ops give their ``numpy`` form instead);
- ``to_torch``: an ``nn.Module`` computing the op (PyTorch lowering);
- ``to_onnx``: the ONNX nodes computing the op (ONNX lowering), including the older-opset form
  where it writes an ONNX op newer than the target opset.

Adding an op is one source file here and one row in ``tests/test_onnx_ops.py``'s table: every
module of this package is imported when the package is, so ``@register`` is all the wiring;
``tests/test_registry.py`` names any face or declaration the new op lacks. Arithmetic that
several ops (and the Caffe importer) share is in :mod:`~netc.compiler.ops.formulas`.

Shapes exclude the batch axis: ``(C, H, W)`` for feature maps, ``(L, D)`` for token sequences,
``(F,)`` for flat vectors (``permute`` and ``linear`` also see a channels-last ``(H, W, C)``).
"""

from __future__ import annotations

import importlib
import pkgutil

from netc.compiler.ops.base import ArgError, Attrs, Shape, ShapeError, fmt_shape, spatial
from netc.compiler.ops.opdef import REGISTRY, OpDef, join_heads, keep_moments, register
from netc.compiler.ops.params import (
    ANY,
    BOOL,
    FLOAT,
    FLOATS,
    INT,
    INTS,
    PADS,
    PAIR,
    SCALE,
    Enum,
    Kind,
    Param,
    SpecValue,
    Symbol,
    check_argument,
)

__all__ = ["ANY", "BOOL", "FLOAT", "FLOATS", "INT", "INTS", "PADS", "PAIR", "REGISTRY", "SCALE",
           "VALUE_CALLS", "ArgError", "Attrs", "Enum", "Kind", "OpDef", "Param", "Shape",
           "ShapeError", "SpecValue", "Symbol", "check_argument", "fmt_shape", "join_heads",
           "keep_moments", "register", "spatial"]


def _import_op_modules() -> None:
    """Import every module of the package: the ``@register`` in each fills :data:`REGISTRY`.

    The registry's order is then the modules' alphabetical order, each module's ops in the order
    it defines them, whichever module imported which first.
    """
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    ordered = sorted(REGISTRY.items(), key=lambda item: type(item[1]).__module__)
    REGISTRY.clear()
    REGISTRY.update(ordered)


_import_op_modules()

# Calls that make an argument value, not a layer: fc(10, fit=ridge(0.1)). name -> maker(args,
# kwargs), raising ArgError.
from netc.compiler.ops.fitted import VALUE_CALLS  # noqa: E402
