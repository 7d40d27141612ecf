"""``netc weights import SPEC FILE -o OUT.safetensors``: someone else's weights, by structure.

The file (a torchvision checkpoint, a converted Caffe model: ``.pt``, ``.pth``, ``.bin`` or
``.safetensors``) is mapped onto the spec's parameterised layers in graph order, every shape
checked (see :mod:`runtime.weights_io`); the result is a ``.safetensors`` file keyed by the
spec's names, which ``netc train --weights``, ``netc compile`` and ``NetModule.load_safetensors``
read by name.
"""

from __future__ import annotations

from runtime.commands.common import add_spec_arguments, load_graph


def add_arguments(p):
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    imp = sub.add_parser("import", help="map a foreign state dict onto a spec by structure",
                         description="map a foreign state dict onto a spec by structure: "
                                     "parameterised layers in graph order, shapes checked "
                                     "one by one")
    add_spec_arguments(imp)
    imp.add_argument("file", metavar="FILE", help=".pt, .pth, .bin or .safetensors")
    imp.add_argument("-o", "--output", required=True, metavar="OUT.safetensors")
    imp.add_argument("--show", action="store_true", help="print which file tensor went where")


def run(args) -> int:
    from runtime.weights_io import file_layers, import_weights, read_tensors, spec_layers

    graph = load_graph(args)
    mapped = import_weights(graph, args.file, args.output)
    layers = spec_layers(graph)
    if args.show:
        theirs = file_layers(read_tensors(args.file))
        width = max(len(l.name) for l in layers)
        for mine, other in zip(layers, theirs):
            print(f"{mine.name:<{width}}  <-  {other.name}")
    n_values = sum(int(v.size) for v in mapped.values())
    print(f"{args.output}: {len(layers)} layers, {len(mapped)} tensors, {n_values:,} values "
          f"for {graph.name} (from {args.file})")
    return 0
