"""``netc import caffe FILE.prototxt -o FILE.net``: a Caffe network definition as a netc spec.

The spec is checked (parsed and shape-checked by netc) before anything is written, and written
atomically, so a failed import never leaves a file behind. Without ``-o`` it goes to stdout.
"""

from __future__ import annotations

import sys
from pathlib import Path

FORMATS = ("caffe",)


def add_arguments(p):
    p.add_argument("format", choices=FORMATS, help="the source format (caffe: a .prototxt)")
    p.add_argument("file", metavar="FILE", help="the network definition, e.g. deploy.prototxt")
    p.add_argument("-o", "--output", metavar="OUT.net",
                   help="where to write the netc spec (default: standard output)")


def run(args) -> int:
    from compiler.caffe import check_spec, import_prototxt
    from compiler.summary import one_line, summarize
    from runtime.files import atomic_write_bytes

    text = import_prototxt(args.file)
    shown = args.output or str(Path(args.file).with_suffix(".net"))
    graph = check_spec(text, shown)
    if args.output is None:
        sys.stdout.write(text)
        return 0
    atomic_write_bytes(args.output, text.encode("utf-8"))
    print(f"wrote {args.output}: {one_line(summarize(graph))}",
          file=sys.stderr)
    return 0
