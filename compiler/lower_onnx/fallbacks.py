"""Older-opset forms of ONNX ops that a target opset lacks (``netc compile --opset 13``).

An op face writes the op it means (``tape.op("HardSwish", ...)``); when the tape's target opset
has no such op, :meth:`netc.compiler.lower_onnx.tape.Tape.node` writes the entry of
:data:`FALLBACKS`
instead: the same function from ops every opset from 13 has, with the same final node name and
output, so names and shapes stay what the IR says. Each entry is the op's definition in the ONNX
operator specification:

- HardSwish (opset 14): x · HardSigmoid(x; α = 1/6, β = 1/2);
- Mish (opset 18): x · tanh(softplus(x));
- LayerNormalization (opset 17): (x − mean) / sqrt(var + ε) · scale + bias over the axes from
  ``axis`` to the last, with ReduceMean (whose ``axes`` the tape puts where each opset wants).
"""

from __future__ import annotations

from collections.abc import Callable


def hard_swish(tape, inputs, name, output, attrs) -> str:
    x = inputs[0]
    gate = tape.op("HardSigmoid", [x], name=f"{name}/hardsigmoid", alpha=1 / 6, beta=0.5)
    return tape.op("Mul", [x, gate], name=name, output=output)


def mish(tape, inputs, name, output, attrs) -> str:
    x = inputs[0]
    t = tape.op("Softplus", [x], name=f"{name}/softplus")
    t = tape.op("Tanh", [t], name=f"{name}/tanh")
    return tape.op("Mul", [x, t], name=name, output=output)


def layer_norm(tape, inputs, name, output, attrs) -> str:
    from netc.compiler.lower_onnx.tape import LoweringError

    x, scale, bias = (list(inputs) + ["", ""])[:3]
    axis = attrs.get("axis", -1)
    if axis >= 0:  # positive axes count the batch axis; the tape knows per-sample shapes
        if x not in tape.shapes:
            raise LoweringError(f"{name}: LayerNormalization with axis={axis} needs the rank")
        axis -= len(tape.shapes[x]) + 1
    axes = list(range(axis, 0))
    eps = tape.float_constant(f"{name}.epsilon", attrs.get("epsilon", 1e-5))
    mean = tape.op("ReduceMean", [x], name=f"{name}/mean", axes=axes, keepdims=1)
    d = tape.op("Sub", [x, mean], name=f"{name}/centre")
    var = tape.op("ReduceMean", [tape.op("Mul", [d, d], name=f"{name}/square")],
                  name=f"{name}/var", axes=axes, keepdims=1)
    std = tape.op("Sqrt", [tape.op("Add", [var, eps], name=f"{name}/eps")], name=f"{name}/std")
    y = tape.op("Div", [d, std], name=f"{name}/normed" if scale or bias else name,
                output=None if scale or bias else output)
    if scale:
        y = tape.op("Mul", [y, scale], name=f"{name}/scale" if bias else name,
                    output=None if bias else output)
    if bias:
        y = tape.op("Add", [y, bias], name=name, output=output)
    return y


FALLBACKS: dict[str, Callable] = {
    "HardSwish": hard_swish,
    "Mish": mish,
    "LayerNormalization": layer_norm,
}
