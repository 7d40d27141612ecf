"""``netc weights import SPEC FILE -o OUT.safetensors``: someone else's weights, by structure.

The file (a torchvision checkpoint or any state dict: ``.pt``, ``.pth``, ``.bin``,
``.safetensors``; or Caffe's ``.caffemodel``) is mapped onto the spec's parameterised layers by
structure and names, whatever order it stores its keys in, every shape checked (see
:mod:`netc.runtime.weights`); the result is a ``.safetensors`` file keyed by the spec's names,
which every ``--weights`` (and ``netc train --init``) reads by name. Every ``--weights`` also
pairs such a file on the fly; this command saves the pairing, and takes ``--skip`` and
``--allow-stride-mismatch`` where the file has more than the spec. ``--rename REGEX=REPL``
rewrites the file's keys first (as on every ``--weights``); ``--show`` prints the pairing table
(:func:`netc.runtime.weights.mapping.pairing_table`): every tensor, both keys, both shapes and
what was done to it.
"""

from __future__ import annotations

import sys

from netc.runtime.commands.common import add_spec_arguments, load_graph
from netc.runtime.commands.options import add_output, add_rename


def add_arguments(p):
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    imp = sub.add_parser("import", help="map a foreign state dict or caffemodel onto a spec",
                         description="map a state dict (.pt/.pth/.bin/.safetensors, any key "
                                     "order) or a Caffe .caffemodel onto a spec's layers by "
                                     "structure and names, shapes checked one by one")
    add_spec_arguments(imp)
    imp.add_argument("file", metavar="FILE", help=".pt, .pth, .bin, .safetensors or .caffemodel")
    add_output(imp, "weights in the spec's names", "OUT.safetensors", required=True)
    imp.add_argument("--skip", default="", metavar="PREFIX,...",
                     help="leave out the file's layers under these prefixes (auxiliary heads: "
                          "aux1,aux2 or loss1,loss2); what is skipped is always reported")
    imp.add_argument("--allow-stride-mismatch", action="store_true",
                     help="load even where the file's conv strides (ResNet v1 vs v1.5) differ "
                          "from the spec's, with a warning")
    add_rename(imp)
    imp.add_argument("--show", action="store_true",
                     help="print the pairing table: each spec tensor, the file key it came "
                          "from, both shapes, and the conversion applied (a Linear reshaped "
                          "as a 1x1 conv, size-1 axes squeezed, renamed by a --rename rule)")


def run(args) -> int:
    from netc.runtime.weights import import_weights
    from netc.runtime.weights.mapping import conversions_line, pairing_table

    graph = load_graph(args)
    skip = tuple(p.strip() for p in args.skip.split(",") if p.strip())
    mapped = import_weights(graph, args.file, args.output, skip, args.allow_stride_mismatch,
                            args.rename)
    if args.show:
        print(pairing_table(mapped))
    elif converted := conversions_line(mapped):
        print(converted)
    for text in mapped.warnings:
        print(f"warning: {text}", file=sys.stderr)
    if mapped.skipped:
        print(f"skipped {len(mapped.skipped)} file layers (--skip): {_list(mapped.skipped)}")
    if mapped.ignored:
        print(f"ignored {len(mapped.ignored)} file layers the spec does not have: "
              f"{_list(mapped.ignored)}")
    n_values = sum(int(v.size) for v in mapped.tensors.values())
    how = "by name" if mapped.by_name else "by structure"
    print(f"{args.output}: {len(mapped.pairs)} layers ({how}), {len(mapped.tensors)} tensors, "
          f"{n_values:,} values for {graph.name} (from {args.file})")
    return 0


def _list(names: list[str], n: int = 8) -> str:
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")
