"""``netc compile SPEC -o model.onnx``: the spec as an ONNX model, built without torch.

Weights are netc's seeded initial weights (``--seed``) or any file
:func:`netc.runtime.weights.load_weights` reads (``--weights``); the summary line and what was
written are printed. This command never imports
torch, so it starts in a fraction of a second (a test checks ``sys.modules``).
"""

from __future__ import annotations

import sys
import time

from netc.runtime.commands.common import add_spec_arguments, load_graph
from netc.runtime.commands.options import add_output, add_seed, add_weights


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


def run(args) -> int:
    from netc.compiler.lower_onnx.model import lower
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
    if args.weights:
        from netc.runtime.weights import load_weights

        weights = load_weights(graph, args.weights)
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
