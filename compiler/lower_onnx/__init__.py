"""Lowering to ONNX, straight from the IR: the model builder (``model``) and the recorder every
op's ``to_onnx`` face writes through (``tape``). Each op writes its own older-opset forms."""
