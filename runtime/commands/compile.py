"""``netc compile SPEC -o model.onnx``: the spec as an ONNX model, built without torch.

Weights are netc's seeded initial weights (``--seed``) or a ``.safetensors`` file
(``--weights``); the summary line and what was written are printed. This command never imports
torch, so it starts in a fraction of a second (a test checks ``sys.modules``).
"""

from __future__ import annotations

import sys
import time

from netc.runtime.commands.common import add_spec_arguments, load_graph


def add_arguments(p):
    add_spec_arguments(p)
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="the .onnx file to write")
    p.add_argument("--weights", metavar="FILE",
                   help="weights from a .safetensors file keyed by layer name, or a Caffe "
                        ".caffemodel (default: netc's seeded initial weights)")
    p.add_argument("--seed", type=int, default=0, help="seed of the initial weights (default 0)")
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


def run(args) -> int:
    from netc.compiler.lower_onnx.model import lower, read_safetensors
    from netc.runtime.files import save_onnx as save
    from netc.compiler.analyses.summary import human_bytes, one_line, summarize
    from netc.runtime.progress import Steps

    start = time.perf_counter()
    graph = load_graph(args)
    summary = summarize(graph)
    # A net of more than 64 MiB of weights (VGG-16: 528 MiB) takes seconds: say each step.
    size = (2 if args.fp16 else 4) * (summary.params + summary.buffers)
    steps = Steps(size > BIG)
    if steps.enabled:
        print(f"compiling {graph.name}: {human_bytes(size)} of weights", file=sys.stderr)
    weights = None
    if args.weights and args.weights.endswith(".caffemodel"):
        weights = _caffe_weights(graph, args.weights)
    elif args.weights:
        weights = read_safetensors(graph, args.weights)
    extra = [n.strip() for n in args.outputs.split(",") if n.strip()]
    what = "drawing weights, " if weights is None else ""
    with steps.step(f"{what}building and checking the ONNX graph") as update:
        model = lower(graph, weights, seed=args.seed, outputs=extra, fold_bn=args.fold_bn,
                      fp16=args.fp16, functions=args.functions, opset=args.opset,
                      progress=update)
    with steps.step(f"writing {args.output}", bytes_=True) as update:
        written = save(model, args.output, update)
    print(one_line(summary))
    kind = "functions, " if args.functions else ""
    print(f"wrote {args.output}: {len(model.graph.node)} nodes, {kind}opset "
          f"{model.opset_import[0].version}, {human_bytes(written)}, "
          f"{'float16' if args.fp16 else 'float32'} ({time.perf_counter() - start:.2f} s)")
    return 0


BIG = 64 << 20  # bytes of weights past which compile reports its steps


def _caffe_weights(graph, path: str):
    """A caffemodel's blobs mapped onto the spec (by Caffe layer name for an imported prototxt,
    else by structure), with one line saying what the file had that the spec does not."""
    from netc.runtime.weights_io import map_weights, read_source

    from netc.dsl.diagnostics import UserError

    try:
        mapped = map_weights(graph, read_source(path))
    except UserError as err:
        if "--skip" not in str(err):
            raise
        raise UserError(f"{err}\n  (compile takes a caffemodel as it is: leave layers out with "
                        f"netc weights import {graph.name} {path} --skip ... "
                        "-o W.safetensors, then compile --weights W.safetensors)") from None
    for text in mapped.warnings:
        print(f"warning: {text}", file=sys.stderr)
    if mapped.ignored:
        shown = ", ".join(mapped.ignored[:8]) + (" ..." if len(mapped.ignored) > 8 else "")
        print(f"{path}: {len(mapped.ignored)} layers not in the spec were left out: {shown}")
    return mapped.tensors
