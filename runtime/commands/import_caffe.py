"""``netc import caffe FILE.prototxt -o FILE.net``: a Caffe network definition as a netc spec.

A deploy file imports as it is; a train_val file as the net Caffe tests with (TEST phase, the
stages given by ``--stage``), its data layer becoming the input (``--input CxHxW`` where the
file does not say the image size) and its losses and accuracy dropped: what was dropped is
printed. The spec is checked (parsed and shape-checked by netc) before anything is written,
and written atomically, so a failed import never leaves a file behind. Without ``-o`` it goes
to stdout.
"""

from __future__ import annotations

import sys
from pathlib import Path

from netc.runtime.commands.common import add_caffe_arguments, print_warnings
from netc.runtime.commands.options import add_input, add_output

FORMATS = ("caffe",)


def add_arguments(p):
    p.add_argument("format", choices=FORMATS, help="the source format (caffe: a .prototxt)")
    p.add_argument("file", metavar="FILE", help="the network definition: deploy.prototxt, or "
                                                "a train_val file")
    add_output(p, "netc spec", "OUT.net", default_text="standard output")
    add_input(p)
    add_caffe_arguments(p)


def run(args) -> int:
    from netc.compiler.frontend.loader import load_text
    from netc.compiler.importers.caffe import import_prototxt_net
    from netc.compiler.analyses.summary import one_line, summarize
    from netc.runtime.files import atomic_write_bytes

    text, net = import_prototxt_net(args.file, args.input_shapes, frozenset(args.stage),
                                    args.crop_offsets)
    shown = args.output or str(Path(args.file).with_suffix(".net"))
    graph = load_text(text, shown)
    for line in net.dropped:
        print(f"train_val: {line}", file=sys.stderr)
    print_warnings(net.warnings)
    if args.output is None:
        sys.stdout.write(text)
        return 0
    atomic_write_bytes(args.output, text.encode("utf-8"))
    print(f"wrote {args.output}: {one_line(summarize(graph))}",
          file=sys.stderr)
    return 0
