"""``netc compile SPEC -o model.onnx``: the spec as an ONNX model, built without torch.

Weights are netc's seeded initial weights (``--seed``) or any file
:func:`netc.runtime.weights.load_weights` reads (``--weights``); the summary line and what was
written are printed. This command never imports
torch, so it starts in a fraction of a second (a test checks ``sys.modules``).

``--int8 --calibrate DATA`` quantizes the model with ONNX Runtime's static quantizer (QDQ,
per-channel int8 weights) on calibration images prepared as netc prepares them, prints each
layer's error and a fidelity line against the fp32 model on held-out images, and writes only
the int8 model (:mod:`netc.runtime.int8`; the data sets it reads import torch).
"""

from __future__ import annotations

import sys
import time

from netc.runtime.commands.common import add_spec_arguments, load_graph
from netc.runtime.commands.options import (
    add_int8,
    add_output,
    add_seed,
    add_threads,
    add_weights,
)


def add_arguments(p):
    add_spec_arguments(p)
    add_output(p, "ONNX model", "OUT.onnx", required=True)
    add_weights(p)
    add_seed(p)
    p.add_argument("--outputs", default="", metavar="NAMES",
                   help="extra outputs, comma-separated layer names (conv4_2,inception_4c)")
    p.add_argument("--fp16", action="store_true",
                   help="half-precision weights, inputs and outputs (for GPUs)")
    p.add_argument("--functions", action="store_true",
                   help="keep each definition call as an ONNX model-local function")
    p.add_argument("--opset", type=int, default=18, metavar="N",
                   help="ONNX opset to write, 13 to 18 (default 18), for older runtimes")
    p.add_argument("--no-fold-bn", dest="fold_bn", action="store_false",
                   help="keep batch norm as its own node instead of folding it into the conv")
    add_int8(p)
    add_threads(p, "ONNX Runtime's, all cores (--int8's calibration and checks)")


def run(args) -> int:
    from netc.compiler.lower_onnx.model import lower
    from netc.runtime.files import save_onnx as save
    from netc.compiler.analyses.summary import human_bytes, one_line, summarize
    from netc.runtime.progress import Steps

    start = time.perf_counter()
    _check_int8(args)
    graph = load_graph(args)
    summary = summarize(graph)
    # A net of more than 64 MiB of weights (VGG-16: 528 MiB) takes seconds: say each step.
    size = (2 if args.fp16 else 4) * (summary.params + summary.buffers)
    steps = Steps(size > BIG)
    if steps.enabled:
        print(f"compiling {graph.name}: {human_bytes(size)} of weights", file=sys.stderr)
    weights = None
    if args.weights:
        from netc.runtime.weights import load_weights

        weights = load_weights(graph, args.weights)
    extra = [n.strip() for n in args.outputs.split(",") if n.strip()]
    what = "drawing weights, " if weights is None else ""
    with steps.step(f"{what}building and checking the ONNX graph") as update:
        model = lower(graph, weights, seed=args.seed, outputs=extra, fold_bn=args.fold_bn,
                      fp16=args.fp16, functions=args.functions, opset=args.opset,
                      progress=update)
    precision = "float16" if args.fp16 else "float32"
    if args.int8:
        model = _int8(graph, model, args)
        precision = "int8 (QDQ)"
    with steps.step(f"writing {args.output}", bytes_=True) as update:
        written = save(model, args.output, update)
    print(one_line(summary))
    kind = "functions, " if args.functions else ""
    print(f"wrote {args.output}: {len(model.graph.node)} nodes, {kind}opset "
          f"{model.opset_import[0].version}, {human_bytes(written)}, "
          f"{precision} ({time.perf_counter() - start:.2f} s)")
    return 0


def _check_int8(args) -> None:
    """What --int8 needs and what it cannot be combined with, before any work."""
    from netc.dsl.diagnostics import UserError

    if not args.int8:
        if args.calibrate or args.keep_float:
            raise UserError("--calibrate and --keep-float go with --int8")
        return
    if not args.calibrate:
        raise UserError("--int8 needs --calibrate DATA: images (digits, folder:PATH, "
                        "cifar10:PATH, a folder, samples) or an .npy file of inputs")
    for flag, given in (("--fp16", args.fp16), ("--functions", args.functions),
                        ("--no-fold-bn", not args.fold_bn)):
        if given:
            raise UserError(f"--int8 cannot be combined with {flag}")
    if args.opset < 13:
        raise UserError(f"--int8 writes per-channel QDQ, which needs opset 13 or later; "
                        f"got --opset {args.opset}")


def _int8(graph, model, args):
    """The fp32 ``model`` quantized, with its report printed (netc.runtime.int8)."""
    from netc.runtime.int8.pipeline import Int8Options, compile_int8

    options = Int8Options(args.calibrate, args.calibrate_images, args.keep_float,
                          args.quant_preprocess, args.threads)
    return compile_int8(graph, model, options)[0]


BIG = 64 << 20  # bytes of weights past which compile reports its steps
