"""``netc compile --int8``: a netc model quantized to int8 with ONNX Runtime's tools.

- :mod:`~netc.runtime.int8.calibration`: the calibration and held-out inputs, through netc's
  own preprocessing, each checked;
- :mod:`~netc.runtime.int8.quantize`: ``quantize_static`` (QDQ, per-channel weights) and the
  ``--keep-float`` layer names mapped to ONNX nodes;
- :mod:`~netc.runtime.int8.report`: each layer's error and the fidelity line;
- :mod:`~netc.runtime.int8.pipeline`: the steps in order, as ``netc compile`` runs them.
"""
