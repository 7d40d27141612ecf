"""Weights files in and out: one loader that every ``--weights`` goes through.

- :func:`load_weights` (:mod:`~netc.runtime.weights.load`): the spec's weights from any file
  netc reads, checked (regular files only, a size cap, names and shapes against the spec, the
  ResNet v1/v1.5 stride guard), a foreign layout paired on the fly;
- :func:`import_weights`: the same pairing, written to a ``.safetensors`` in the spec's names
  (``netc weights import``); :func:`write_safetensors` writes any dict of arrays atomically;
- :mod:`~netc.runtime.weights.read` reads the formats (``.safetensors``, PyTorch ``.pt``/
  ``.pth``/``.bin``, Caffe ``.caffemodel``), :mod:`~netc.runtime.weights.mapping` pairs a
  file's layers with the spec's, :mod:`~netc.runtime.weights.misfit` says why they do not fit,
  :mod:`~netc.runtime.weights.rename` applies ``--rename`` rules, and
  :func:`~netc.runtime.weights.mapping.pairing_table` is the table of ``--show``.

The lowerings (``build_module``, ``lower``) take the dict of arrays, never a path.
"""

from netc.runtime.weights.load import WeightsPath, import_weights, load_weights, write_safetensors
from netc.runtime.weights.mapping import Mapped, Row, map_by_structure, map_weights
from netc.runtime.weights.read import Source, read_metadata, read_source, read_tensors
from netc.runtime.weights.rename import RenameRule, parse_rule

__all__ = ["load_weights", "import_weights", "write_safetensors", "map_weights",
           "map_by_structure", "Mapped", "Row", "read_source", "read_tensors", "read_metadata",
           "Source", "WeightsPath", "RenameRule", "parse_rule"]
