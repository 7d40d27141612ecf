"""The Tape: what it records, and that its checks catch a lowering that disagrees with the IR."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from netc.compiler.lower_onnx.tape import FunctionTape, LoweringError, Tape


def test_a_tape_records_named_nodes_and_typed_weights():
    tape = Tape(np.float16)
    w = tape.initializer("fc.weight", np.ones((2, 3)))  # float64 in, the tape's type out
    assert tape.op("Gemm", ["x", w], name="fc", transB=1, alpha=None) == "fc"
    model = tape.finish("t", inputs={"x": (3,)}, outputs={"fc": (2,)})
    (init,) = model.graph.initializer
    assert init.data_type == onnx.TensorProto.FLOAT16 and list(init.dims) == [2, 3]
    assert [a.name for a in model.graph.node[0].attribute] == ["transB"]  # None is left out
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", 3]


def test_a_shape_that_disagrees_with_the_ir_is_caught():
    tape = Tape()
    tape.op("Relu", [tape.op("MaxPool", ["x"], name="pool", kernel_shape=[2, 2],
                             strides=[2, 2])], name="relu")
    with pytest.raises(LoweringError, match=r"pool: ONNX shape inference gives \['batch', 3, 4, "
                                            r"4\], the IR says \['batch', 3, 5, 5\]"):
        tape.finish("t", inputs={"x": (3, 8, 8)}, outputs={"relu": (3, 4, 4)},
                    expected={"pool": (3, 5, 5)})
    with pytest.raises(LoweringError, match="fails onnx.checker"):  # a declared output
        tape.finish("t", inputs={"x": (3, 8, 8)}, outputs={"relu": (3, 5, 5)})


def test_a_broken_graph_or_a_repeated_name_is_caught():
    tape = Tape()
    tape.op("Relu", ["nowhere"], name="r")
    with pytest.raises(LoweringError, match="fails onnx.checker"):
        tape.finish("t", inputs={"x": (3,)}, outputs={"r": (3,)})
    with pytest.raises(LoweringError, match="two ONNX nodes are named 'r'"):
        tape.op("Relu", ["x"], name="r")


def test_a_function_tape_turns_weights_into_inputs_and_constants_into_nodes():
    parent = Tape()
    body = FunctionTape(parent, "block1.")
    w = body.initializer("conv.weight", np.zeros((4, 3, 1, 1), np.float32))
    k = body.float_constant("scale", 0.5)
    body.op("Mul", [body.op("Conv", ["input", w], name="conv"), k], name="out")
    fn = body.function("block", ["input"], ["out"])
    assert list(fn.input) == ["input", "conv.weight"]
    assert [n.op_type for n in fn.node] == ["Constant", "Conv", "Mul"]
    assert list(parent.initializers) == ["block1.conv.weight"]
    assert body.weights == [("conv.weight", "block1.conv.weight")]
