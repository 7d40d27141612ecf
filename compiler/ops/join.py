"""Ops with several inputs: joins of parallel branches and the residual addition.

The spec writes joins as ``concat[a, b]``, ``add[a, b]``, ``mean(droppath=0.15)[a, b]``,
``mul[...]``, ``max[...]``; ``residual(body, shortcut=...)`` becomes a ``residual`` node whose
inputs are (body output, shortcut output). Drop-path and stochastic depth are attributes here and
act in the PyTorch lowering (training); the ONNX lowering computes their inference forms.
"""

from __future__ import annotations

from compiler.ops import OpDef, Param, ShapeError, fmt_shape, register, spatial
from compiler.ops.domains import POSITIVE, PROBABILITY, SURVIVAL


def _same_shapes(op: str, ins) -> tuple:
    first = ins[0]
    for i, s in enumerate(ins[1:], start=2):
        if s != first:
            raise ShapeError(
                f"{op}: branch {i} gives {fmt_shape(s)}, branch 1 gives {fmt_shape(first)}; "
                f"{op} needs equal shapes"
            )
    return first


class _Elementwise(OpDef):
    min_inputs = 2
    max_inputs = None

    def infer_shape(self, a, ins):
        return _same_shapes(self.name, ins)


@register
class Concat(OpDef):
    name = "concat"
    doc = "concatenate branches along channels; spatial sizes must agree"
    min_inputs = 1
    max_inputs = None

    def infer_shape(self, a, ins):
        if any(len(s) != len(ins[0]) for s in ins):
            raise ShapeError("concat: cannot join feature maps and flat vectors: "
                             + ", ".join(fmt_shape(s) for s in ins))
        if len(ins[0]) == 3:
            sizes = {tuple(s[1:]) for s in ins}
            if len(sizes) > 1:
                listed = ", ".join(f"branch {i + 1} {fmt_shape(s)}" for i, s in enumerate(ins))
                raise ShapeError(f"concat: spatial sizes differ: {listed}")
            return (sum(s[0] for s in ins), ins[0][1], ins[0][2])
        return (sum(s[0] for s in ins),)

    def to_onnx(self, tape, node, inputs, weights):
        return tape.op("Concat", inputs, name=node.name, axis=1)

    def to_torch(self, a, ins, out):
        from compiler.torch_joins import Concat

        return Concat()


@register
class Add(_Elementwise):
    name = "add"
    doc = "element-wise sum of branches (Caffe Eltwise SUM)"

    def to_onnx(self, tape, node, inputs, weights):
        return tape.op("Add" if len(inputs) == 2 else "Sum", inputs, name=node.name)

    def to_torch(self, a, ins, out):
        from compiler.torch_joins import Add

        return Add()


@register
class Mul(_Elementwise):
    name = "mul"
    doc = "element-wise product of branches (Caffe Eltwise PROD)"

    def to_onnx(self, tape, node, inputs, weights):
        # ONNX Mul takes two inputs: a chain, left to right as torch multiplies.
        out = inputs[0]
        for i, other in enumerate(inputs[1:], start=1):
            last = i == len(inputs) - 1
            out = tape.op("Mul", [out, other], name=node.name if last else f"{node.name}/mul{i}")
        return out

    def to_torch(self, a, ins, out):
        from compiler.torch_joins import Mul

        return Mul()


@register
class Max(_Elementwise):
    name = "max"
    doc = "element-wise maximum of branches (Caffe Eltwise MAX)"

    def to_onnx(self, tape, node, inputs, weights):
        return tape.op("Max", inputs, name=node.name)

    def to_torch(self, a, ins, out):
        from compiler.torch_joins import Max

        return Max()


@register
class Mean(_Elementwise):
    name = "mean"
    doc = ("FractalNet join: element-wise mean of the inputs that survive drop-path; "
           "mean(droppath=p) drops each input with probability p while training, keeping one")
    min_inputs = 1
    params = (Param("droppath", "float", None, doc="local drop probability; default: the net's",
                    domain=PROBABILITY),)
    # Attribute set by the elaborator: ``columns``, the FractalNet column of each input
    # (1 = the shallowest), used by global drop-path and the deepest-column pass.

    def to_onnx(self, tape, node, inputs, weights):
        # Inference: no drop-path, the plain mean of every input (the Caffe join in TEST).
        return tape.op("Mean", inputs, name=node.name)

    def to_torch(self, a, ins, out):
        # ``a.droppath`` is the effective local probability: the lowering fills in the net's
        # ``with droppath(local=...)`` default before calling this face.
        from compiler.torch_joins import MeanJoin

        return MeanJoin(a.get("droppath"), a.get("columns"))


@register
class Residual(OpDef):
    name = "residual"
    doc = ("y = body + shortcut; with stochastic depth the body survives with probability "
           "`survival` in training and is scaled by it in inference")
    min_inputs = 2
    max_inputs = 2
    params = (Param("survival", "float", 1.0, domain=SURVIVAL),)

    def to_torch(self, a, ins, out):
        from compiler.torch_joins import ResidualJoin

        return ResidualJoin(a.get("survival", 1.0))

    def infer_shape(self, a, ins):
        body, short = ins
        if body != short:
            raise ShapeError(
                f"residual: body gives {fmt_shape(body)}, shortcut gives {fmt_shape(short)}; "
                "declare shortcut=project or shortcut=pad"
            )
        return body

    def to_onnx(self, tape, node, inputs, weights):
        # Stochastic depth at inference: shortcut + survival · body (Huang et al.). The
        # survival is usually folded into the body's last layer first (passes.fold_survival).
        body, short = inputs
        if node.attrs.survival != 1.0:
            scale = tape.float_constant(f"{node.name}.survival", node.attrs.survival)
            body = tape.op("Mul", [body, scale], name=f"{node.name}/scale")
        return tape.op("Add", [body, short], name=node.name)


@register
class ShortcutPad(OpDef):
    name = "shortcut_pad"
    doc = ("ResNet option A shortcut (no parameters): take every stride-th pixel "
           "(He et al., fb.resnet.torch) or average stride x stride windows (mode=avg, Huang et "
           "al.'s stochastic-depth code), then append zero channels: "
           "shortcut_pad(out, stride, mode=subsample)")
    params = (Param("out", "int", domain=POSITIVE), Param("stride", "int", 1, domain=POSITIVE),
              Param("mode", "enum", "subsample", choices=("subsample", "avg")))

    def to_torch(self, a, ins, out):
        from compiler.torch_joins import ShortcutPad

        return ShortcutPad(a.out, a.stride, a.mode)

    def infer_shape(self, a, ins):
        c, h, w = spatial(ins[0], "shortcut_pad")
        if a.out < c:
            raise ShapeError(f"shortcut_pad: cannot pad {c} channels down to {a.out}")
        if a.mode == "avg":  # windows of stride x stride, floored like any pool
            return (a.out, h // a.stride, w // a.stride)
        return (a.out, -(-h // a.stride), -(-w // a.stride))

    def geometry(self, a, ins):
        k = a.stride if a.mode == "avg" else 1
        return (k, k), (a.stride, a.stride), (1, 1)

    def to_onnx(self, tape, node, inputs, weights):
        # Every stride-th pixel from the first (a strided Slice), then zero channels appended
        # after the real ones (Pad on the channel axis), as fb.resnet.torch's option A.
        import numpy as np

        a, x = node.attrs, inputs[0]
        c = tape.shape(x)[0]
        n = node.name
        if a.stride == 1 and a.out == c:
            return tape.op("Identity", [x], name=n)
        if a.stride > 1 and a.mode == "avg":
            x = tape.op("AveragePool", [x], name=n if a.out == c else f"{n}/avg",
                        kernel_shape=[a.stride, a.stride], strides=[a.stride, a.stride])
        elif a.stride > 1:
            big = np.iinfo(np.int64).max

            def ints(key, values):
                return tape.constant(f"{n}.{key}", np.array(values, np.int64))
            x = tape.op("Slice", [x, ints("starts", [0, 0]), ints("ends", [big, big]),
                                  ints("axes", [2, 3]), ints("steps", [a.stride, a.stride])],
                        name=n if a.out == c else f"{n}/slice")
        if a.out > c:
            pads = np.array([0, 0, 0, 0, 0, a.out - c, 0, 0], np.int64)
            x = tape.op("Pad", [x, tape.constant(f"{n}.pads", pads)], name=n)
        return x
