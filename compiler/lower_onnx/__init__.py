"""Lowering to ONNX, straight from the IR: the model builder (``model``), the recorder every
op's ``to_onnx`` face writes through (``tape``), and older-opset forms of new ops
(``fallbacks``)."""
