"""Ops with several inputs: joins of parallel branches and the residual addition.

The spec writes joins as ``concat[a, b]``, ``add[a, b]``, ``mean(droppath=0.15)[a, b]``,
``mul[...]``, ``max[...]``; ``residual(body, shortcut=...)`` becomes a ``residual`` node whose
inputs are (body output, shortcut output). Drop-path and stochastic depth are attributes here and
act in the PyTorch lowering (training); the ONNX lowering computes their inference forms.
"""

from __future__ import annotations

import numpy as np

from netc.compiler.ops.base import ShapeError, fmt_shape, spatial
from netc.compiler.ops.domains import POSITIVE, PROBABILITY, SURVIVAL
from netc.compiler.ops.opdef import OpDef, register
from netc.compiler.ops.params import FLOAT, INT, Enum, Param


def _same_shapes(op: str, ins) -> tuple:
    first = ins[0]
    for i, s in enumerate(ins[1:], start=2):
        if s != first:
            raise ShapeError(
                f"{op}: branch {i} gives {fmt_shape(s)}, branch 1 gives {fmt_shape(first)}; "
                f"{op} needs equal shapes"
            )
    return first


def broadcast_shapes(op: str, ins) -> tuple:
    """The output of a broadcasting join (``add``, ``mul``, ``max``), or a ShapeError.

    The rule: a flat vector of C values stands for a Cx1x1 map (squeeze-and-excitation written
    with fc layers); then every axis must be equal across the inputs or 1, and an axis of 1
    stretches to the others' size (NumPy's and ONNX's rule). So CxHxW joins CxHxW, Cx1x1 (a
    weight per channel), 1xHxW (a weight per position: spatial attention) and 1x1x1.
    """
    if all(s == ins[0] for s in ins):
        return ins[0]
    rank = max(len(s) for s in ins)
    shapes = [tuple(s) + (1,) * (rank - len(s)) for s in ins]
    out = []
    for axis in range(rank):
        sizes = {s[axis] for s in shapes} - {1}
        if len(sizes) > 1:
            ref = next(k for k, s in enumerate(shapes) if s[axis] != 1)
            bad = next(k for k, s in enumerate(shapes) if s[axis] not in (1, shapes[ref][axis]))
            raise ShapeError(
                f"{op}: branch {bad + 1} gives {fmt_shape(ins[bad])}, branch {ref + 1} gives "
                f"{fmt_shape(ins[ref])}; {op} needs equal shapes, or shapes that broadcast: on "
                "each axis the same size or 1 (Cx1x1 or a flat C weighs channels, 1xHxW "
                "positions)")
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


class _Elementwise(OpDef):
    min_inputs = 2
    max_inputs = None
    join_head = True
    family = "join"
    broadcasts = False  # add, mul and max follow broadcast_shapes; mean needs equal shapes

    def seeded_moments(self, a, ins, out, w):
        # Inputs of the output's channel count combine (independent); a broadcast weight is
        # left to the first input's moments.
        if all(len(m) == out[0] for m, _ in ins):
            return self.moments_of(ins)
        return ins[0]

    def moments_of(self, ins):
        """Per-channel moments of the join of independent inputs of equal shape; by default
        (max) the first input's, an approximation."""
        return ins[0]

    def infer_shape(self, a, ins):
        if self.broadcasts:
            return broadcast_shapes(self.name, ins)
        return _same_shapes(self.name, ins)

    def torch_broadcast(self, ins, out):
        """The torch module for inputs of different shapes (None when all are equal)."""
        if all(s == out for s in ins):
            return None
        from netc.compiler.lower_torch.layers import Broadcast

        return Broadcast(self.name)

    def onnx_inputs(self, tape, node, inputs) -> list[str]:
        """The inputs with flat vectors of a feature-map join unsqueezed to Cx1x1."""
        if len(node.shape) != 3:
            return inputs
        out = []
        for k, x in enumerate(inputs, start=1):
            if len(tape.shape(x)) == 1:
                axes = tape.constant(f"{node.name}/map{k}.axes", np.array([2, 3], np.int64))
                x = tape.op("Unsqueeze", [x, axes], name=f"{node.name}/map{k}")
            out.append(x)
        return out


@register
class Concat(OpDef):
    name = "concat"
    doc = ("concatenate branches along channels; spatial sizes must agree, or "
           "concat(fit=crop) cuts every branch to the smallest (U-Net's copy and crop) and "
           "concat(fit=pad) zero-pads to the largest, centred, the odd pixel at the bottom/right")
    min_inputs = 1
    max_inputs = None
    params = (Param("fit", Enum("crop", "pad"), None,
                    doc="crop or pad the branches to one spatial size"),)
    join_head = True
    family = "join"

    def seeded_moments(self, a, ins, out, w):
        return np.concatenate([m for m, _ in ins]), np.concatenate([v for _, v in ins])

    def infer_shape(self, a, ins):
        if any(len(s) != len(ins[0]) for s in ins):
            raise ShapeError("concat: cannot join shapes of different kinds (CxHxW maps, LxD "
                             "token sequences, flat vectors): "
                             + ", ".join(fmt_shape(s) for s in ins))
        if a.get("fit"):
            from netc.compiler.ops.resize import fit_target

            return (sum(s[0] for s in ins), *fit_target("concat", a.fit, ins))
        if len(ins[0]) == 3:
            sizes = {tuple(s[1:]) for s in ins}
            if len(sizes) > 1:
                listed = ", ".join(f"branch {i + 1} {fmt_shape(s)}" for i, s in enumerate(ins))
                raise ShapeError(f"concat: spatial sizes differ: {listed}; "
                                 "concat(fit=crop) or concat(fit=pad) makes them agree")
            return (sum(s[0] for s in ins), ins[0][1], ins[0][2])
        if len(ins[0]) == 2:  # token sequences: one after another (axis 0), of one width D
            if len({s[1] for s in ins}) > 1:
                raise ShapeError("concat: token sequences of different widths: "
                                 + ", ".join(fmt_shape(s) for s in ins)
                                 + "; concat puts sequences one after another, of one width D")
            return (sum(s[0] for s in ins), ins[0][1])
        return (sum(s[0] for s in ins),)

    def to_onnx(self, tape, node, inputs, weights):
        if node.attrs.get("fit"):
            inputs = self._fit_onnx(tape, node, inputs)
        return tape.op("Concat", inputs, name=node.name, axis=1)

    def _fit_onnx(self, tape, node, inputs):
        from netc.compiler.ops.resize import fit_offsets, onnx_slice

        target, fitted = node.shape[1:], []
        for k, x in enumerate(inputs, start=1):
            shape, n = tape.shape(x), f"{node.name}/fit{k}"
            t, left, b, r = fit_offsets(shape, target, node.attrs.fit)
            if (t, left, b, r) == (0, 0, 0, 0):
                fitted.append(x)
            elif node.attrs.fit == "crop":
                fitted.append(onnx_slice(tape, n, x, [t, left],
                                         [t + target[0], left + target[1]], [2, 3]))
            else:
                pads = tape.constant(f"{n}.pads", np.array([0, 0, t, left, 0, 0, b, r],
                                                           np.int64))
                fitted.append(tape.op("Pad", [x, pads], name=n))
        return fitted

    def to_torch(self, a, ins, out):
        from netc.compiler.lower_torch.joins import Concat

        if not a.get("fit"):
            return Concat()
        from netc.compiler.ops.resize import fit_offsets
        from netc.compiler.lower_torch.layers import FitConcat

        return FitConcat(a.fit, [fit_offsets(s, out[1:], a.fit) for s in ins], out[1:])


@register
class Add(_Elementwise):
    name = "add"
    doc = ("element-wise sum of branches (Caffe Eltwise SUM); shapes broadcast: a Cx1x1, 1xHxW "
           "or flat C branch adds to every position or channel")
    broadcasts = True

    def moments_of(self, ins):
        return sum(m for m, _ in ins), sum(v for _, v in ins)

    def to_onnx(self, tape, node, inputs, weights):
        inputs = self.onnx_inputs(tape, node, inputs)
        return tape.op("Add" if len(inputs) == 2 else "Sum", inputs, name=node.name)

    def to_torch(self, a, ins, out):
        from netc.compiler.lower_torch.joins import Add

        return self.torch_broadcast(ins, out) or Add()


@register
class Mean(_Elementwise):
    name = "mean"
    doc = ("FractalNet join: element-wise mean of the inputs that survive drop-path; "
           "mean(droppath=p) drops each input with probability p while training, keeping one")
    min_inputs = 1
    params = (Param("droppath", FLOAT, None, doc="local drop probability; default: the net's",
                    domain=PROBABILITY),)
    # Attribute set by the elaborator: ``columns``, the FractalNet column of each input
    # (1 = the shallowest), used by global drop-path and the deepest-column pass.

    def moments_of(self, ins):
        n = len(ins)  # the average of independent inputs (inference: no drop-path)
        return sum(m for m, _ in ins) / n, sum(v for _, v in ins) / n ** 2

    def to_onnx(self, tape, node, inputs, weights):
        # Inference: no drop-path, the plain mean of every input (the Caffe join in TEST).
        return tape.op("Mean", inputs, name=node.name)

    def to_torch(self, a, ins, out):
        # ``a.droppath`` is the effective local probability: the lowering fills in the net's
        # ``with droppath(local=...)`` default before calling this face.
        from netc.compiler.lower_torch.joins import MeanJoin

        return MeanJoin(a.get("droppath"), a.get("columns"))


@register
class Mul(_Elementwise):
    name = "mul"
    doc = ("element-wise product of branches (Caffe Eltwise PROD); shapes broadcast: "
           "mul[identity, gap -> ... -> sigmoid] is squeeze-and-excitation's channel scaling")
    broadcasts = True

    def moments_of(self, ins):
        # E[xy] = μx·μy and E[x²y²] = E[x²]·E[y²] (squeeze-excitation gates)
        m2 = np.prod([m for m, _ in ins], axis=0)
        s2 = np.prod([v + m * m for m, v in ins], axis=0)
        return m2, np.maximum(s2 - m2 * m2, 0.0)

    def to_onnx(self, tape, node, inputs, weights):
        # ONNX Mul takes two inputs: a chain, left to right as torch multiplies.
        inputs = self.onnx_inputs(tape, node, inputs)
        out = inputs[0]
        for i, other in enumerate(inputs[1:], start=1):
            last = i == len(inputs) - 1
            out = tape.op("Mul", [out, other], name=node.name if last else f"{node.name}/mul{i}")
        return out

    def to_torch(self, a, ins, out):
        from netc.compiler.lower_torch.joins import Mul

        return self.torch_broadcast(ins, out) or Mul()


@register
class Max(_Elementwise):
    name = "max"
    doc = "element-wise maximum of branches (Caffe Eltwise MAX); shapes broadcast as add's"
    broadcasts = True

    def to_onnx(self, tape, node, inputs, weights):
        return tape.op("Max", self.onnx_inputs(tape, node, inputs), name=node.name)

    def to_torch(self, a, ins, out):
        from netc.compiler.lower_torch.joins import Max

        return self.torch_broadcast(ins, out) or Max()


@register
class Residual(OpDef):
    name = "residual"
    doc = ("y = body + shortcut; with stochastic depth the body survives with probability "
           "`survival` in training and is scaled by it in inference (per-sample mode=row: "
           "kept bodies scaled by 1/survival in training, none in inference)")
    min_inputs = 2
    max_inputs = 2
    params = (Param("survival", FLOAT, 1.0, domain=SURVIVAL),)
    family = "join"

    def seeded_moments(self, a, ins, out, w):
        # body + shortcut, the body scaled by its survival as in eval mode
        s = a.survival if a.get("mode", "batch") == "batch" else 1.0
        (mb, vb), (ms, vs) = ins
        return s * mb + ms, s * s * vb + vs

    def to_torch(self, a, ins, out):
        from netc.compiler.lower_torch.joins import ResidualJoin

        return ResidualJoin(a.get("survival", 1.0), a.get("mode", "batch"))

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
        # Per-sample stochastic depth (mode=row) rescales in training instead: a plain sum here.
        body, short = inputs
        if node.attrs.survival != 1.0 and node.attrs.get("mode", "batch") == "batch":
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
    params = (Param("out", INT, domain=POSITIVE), Param("stride", INT, 1, domain=POSITIVE),
              Param("mode", Enum("subsample", "avg"), "subsample"))

    def seeded_moments(self, a, ins, out, w):
        mu, var = ins[0]
        zeros = np.zeros(out[0] - len(mu))  # the appended channels
        return np.concatenate([mu, zeros]), np.concatenate([var, zeros])

    def to_torch(self, a, ins, out):
        from netc.compiler.lower_torch.joins import ShortcutPad

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
